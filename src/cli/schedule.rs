//! `vigil schedule`: run policies on their schedules from this machine.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::schedule::Plan;

const AFTER_HELP: &str = "\
Examples:
  vigil schedule --list policies/
  vigil schedule policies/ --signing-key signer.key.pem --out results

Each run is a `vigil run` child process (it gets this command's --out,
--signing-key, --plaintext). A run due while the previous one of the same
policy is still going is skipped and logged. SIGTERM/SIGINT stops
scheduling and forwards SIGTERM to runs in flight, which finish or cancel
cleanly. The last fire per policy is kept in OUT/<policy>/.vigil-schedule
for catchUp after downtime; output.keep bundles are kept per policy.";

/// Run policies on their schedules (cron, timezone, catch-up, jitter).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// Policy and profile files or directories.
    #[arg(required = true, value_name = "POLICY")]
    paths: Vec<PathBuf>,
    /// Print each scheduled policy's next fire times and exit.
    #[arg(long)]
    list: bool,
    /// Results directory (default: each policy's `output.dir`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Signing key passed to each run.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Passed to each run: write results unencrypted.
    #[arg(long)]
    plaintext: bool,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let (set, diags) = crate::policy::load(&args.paths);
    if super::report_diagnostics(&diags) {
        return Err(InvalidInput("the policies are invalid; fix the errors above".into()).into());
    }
    let mut plans = Vec::new();
    for p in &set.policies {
        if let Some(plan) = Plan::of(&p.value)
            .map_err(|e| InvalidInput(format!("policy {}: schedule: {e}", p.value.metadata.name)))?
        {
            plans.push(plan);
        }
    }
    if plans.is_empty() {
        return Err(InvalidInput("no policy has a spec.schedule".into()).into());
    }
    if args.list {
        let now = chrono::Utc::now();
        let mut out = String::new();
        for p in &plans {
            out.push_str(&format!(
                "{}: `{}` ({}): {}\n",
                p.policy,
                p.expression,
                p.tz,
                p.describe()
            ));
            let mut t = now;
            for _ in 0..5 {
                let Some(next) = p.next_after(t) else { break };
                out.push_str(&format!("  {}\n", next.with_timezone(&p.tz).to_rfc3339()));
                t = next;
            }
        }
        print_stdout(&out)?;
        return Ok(Exit::Success);
    }
    crate::schedule::supervise::serve(
        &set,
        plans,
        &crate::schedule::supervise::Runs {
            paths: args.paths.clone(),
            out: args.out.clone(),
            signing_key: args.signing_key.clone(),
            plaintext: args.plaintext,
        },
    )
    .map_err(|e| match e {
        crate::schedule::supervise::ServeError::Invalid(m) => anyhow::Error::from(InvalidInput(m)),
        other => anyhow::Error::from(other),
    })?;
    Ok(Exit::Success)
}
