//! `vigil run`: scan the planned targets and write results.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::report::view::ReportRun;
use sha2::{Digest, Sha256};

use crate::policy::threshold::Threshold;
use crate::report::output::RunOutput;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::runner::RunOptions;

const AFTER_HELP: &str = "\
Examples:
  vigil run policies/demo.yaml policies/profiles/
  vigil run policies/ --policy demo --out /tmp/results --threshold threshold.yml
  vigil run policies/demo.yaml policies/profiles/ --image oci-dir:fixtures/images/demo:v1
  vigil run examples/manifests/policy.yaml policies/profiles/ --manifest examples/manifests/k8s

Results land in OUT/<policy>/<run-id>/, a sealed bundle: one age-encrypted
HDF file per target under targets/, summary.json.age, and, written last,
statement.dsse.json (an in-toto statement signed with ed25519). Check it with
`vigil verify`, read it with `vigil open`. Exit 0 when every threshold holds,
1 when one fails, 2 on invalid input, 3 when a target could not be scanned.";

/// Scan targets, evaluate controls, write HDF results and a summary.
#[derive(Debug, clap::Args)]
// A run makes its own run id: `--run-id` (plan and render) is not shown,
// and given anyway it is refused with the reason.
#[command(after_help = AFTER_HELP, mut_arg("run_id", |a| a.hide(true)))]
pub struct Args {
    #[command(flatten)]
    input: super::PlanInput,
    #[command(flatten)]
    seal: super::seal_args::SealArgs,
    #[command(flatten)]
    scanner: super::scanner_args::ScannerArgs,
    /// A SAF CLI threshold file (YAML or JSON) that replaces the policies' thresholds.
    #[arg(long, value_name = "FILE")]
    threshold: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which failed and error controls to list under each target: of
    /// targets that fail their threshold or have errors (failed), of every
    /// target (all), or none.
    #[arg(long, value_enum, default_value_t = crate::report::findings::Details::Failed)]
    details: crate::report::findings::Details,
    /// At most this many controls listed per target ("and N more").
    #[arg(long, value_name = "N", default_value_t = 10)]
    details_limit: usize,
    /// Also write a report, in plaintext (the sealed bundle stays the
    /// record): junit=PATH (JUnit XML), sarif=PATH (SARIF 2.1.0),
    /// markdown=PATH or oscal=PATH (OSCAL 1.1 assessment results);
    /// repeatable.
    #[arg(long = "report", value_name = "FORMAT=PATH")]
    reports: Vec<crate::report::ci::Request>,
    /// Replace --report files that exist (regular files only; without it,
    /// reports never overwrite).
    #[arg(long)]
    force: bool,
    /// A label for this run (a pipeline id, for example): put on every
    /// Kubernetes object the run creates and recorded in the signed
    /// statement; repeatable.
    #[arg(long = "run-label", value_name = "KEY=VALUE", value_parser = crate::policy::selector::parse_run_label)]
    run_labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum Format {
    /// A table per policy.
    Text,
    /// The run summaries as JSON.
    Json,
}

/// A SAF threshold file (`--threshold FILE`), its departures from what
/// the SAF CLI accepts warned about.
pub fn read_threshold(path: &std::path::Path) -> anyhow::Result<Threshold> {
    let (threshold, warnings) =
        crate::policy::threshold::read_file(path).map_err(|e| InvalidInput(e.to_string()))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(threshold)
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let threshold = args
        .threshold
        .as_ref()
        .map(|p| read_threshold(p))
        .transpose()?;
    // One run id for this invocation: it names the per-run access objects
    // (planned below), the bundles and the audit log, so concurrent runs —
    // shards of one plan included — never collide.
    let mut args = args;
    if args.input.run_id != "plan" {
        return Err(InvalidInput(
            "vigil run takes a fresh UUIDv7 run id for every run (it names the bundle and the access objects, so two runs never collide); --run-id is for plan and render".into(),
        )
        .into());
    }
    crate::report::ci::check_paths(&args.reports, args.force)
        .map_err(|e| InvalidInput(e.to_string()))?;
    let run_id = uuid::Uuid::now_v7().to_string();
    args.input.run_id = run_id.clone();
    let scanner = args.scanner.trust()?;
    let (set, plan, session) = super::load_plan(&args.input)?;
    // Check every policy's keys and recipients before scanning anything.
    let mut prepared = Vec::new();
    for pp in &plan.policies {
        let policy = set
            .policies
            .iter()
            .find(|p| p.value.metadata.name == pp.policy)
            .expect("planned policies come from the set");
        let signer = args.seal.signer(policy)?;
        let recipients = args.seal.recipients(policy)?;
        prepared.push((pp, policy, signer, recipients));
    }
    let mut summaries = Vec::new();
    for (pp, policy, signer, recipients) in prepared {
        let output = args.seal.open_bundle(policy, &run_id, recipients)?;
        let opts = RunOptions {
            run_id: run_id.clone(),
            labels: args.run_labels.iter().cloned().collect(),
            threshold: threshold.clone(),
            progress: super::progress::progress(&pp.policy, pp.targets.len()),
            cancel: Arc::new(AtomicBool::new(false)),
            deadline: Some(std::time::Instant::now() + policy.value.spec.limits.run_deadline()),
            scanner: scanner.clone(),
            keep_controls: !args.reports.is_empty(),
        };
        let needs_cluster = pp.targets.iter().any(|t| !t.approach.is_local());
        let (summary, summary_file, audit) = match (&session, needs_cluster) {
            (Some(session), true) => crate::runner::lifecycle::run_in_cluster(
                &session.runtime,
                &session.caller,
                &set,
                policy,
                pp,
                &opts,
                &output,
            )?,
            _ => {
                let (s, f) = crate::runner::lifecycle::run_local(&set, policy, pp, &opts, &output)?;
                (s, f, None)
            }
        };
        let policy_sha = crate::encoding::hex(&Sha256::digest(policy.source.text.as_bytes()));
        output
            .seal(
                &summary,
                &summary_file,
                &policy_sha,
                signer.as_ref(),
                audit.as_ref().map(|(w, h, n)| (w, h.clone(), *n)),
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot write the statement in {}: {e}",
                    output.location().display()
                )
            })?;
        let enc = if output.encrypted() {
            "encrypted"
        } else {
            "NOT ENCRYPTED"
        };
        match &signer {
            Some(s) => tracing::info!(
                policy = %pp.policy,
                bundle = %output.location().display(),
                "{}: sealed bundle {} ({enc}, signed by {})",
                pp.policy,
                output.location().display(),
                crate::seal::keys::keyid(&s.verifying_key())
            ),
            None => tracing::warn!(
                policy = %pp.policy,
                bundle = %output.location().display(),
                "{}: bundle {} is UNSIGNED ({enc}); `vigil verify` rejects it and nobody can tell whether it was altered",
                pp.policy,
                output.location().display()
            ),
        }
        summaries.push((summary, signer.is_none()));
    }
    print_summaries(&args, &summaries)?;
    if args.reports.is_empty() {
        return Ok(exit_of(&summaries));
    }
    let all: Vec<ReportRun> = summaries.iter().map(|(s, _)| s.into()).collect();
    let policy_files = set
        .policies
        .iter()
        .map(|p| {
            (
                p.value.metadata.name.clone(),
                p.source.path.display().to_string(),
            )
        })
        .collect();
    crate::report::ci::write(
        &args.reports,
        &all,
        &crate::report::ci::locations(&set),
        &policy_files,
        args.force,
    )?;
    Ok(exit_of(&summaries))
}

/// Print the runs' summaries to stdout in the chosen format.
fn print_summaries(
    args: &Args,
    summaries: &[(crate::runner::RunSummary, bool)],
) -> anyhow::Result<()> {
    match args.format {
        Format::Text => print_stdout(
            &summaries
                .iter()
                .map(|(s, unsigned)| {
                    crate::report::text::table(s, *unsigned, args.details, args.details_limit)
                })
                .collect::<String>(),
        )?,
        // Streamed: a big run's summaries are never held whole as text.
        Format::Json => {
            use std::io::Write as _;
            let stdout = std::io::stdout();
            let mut w = stdout.lock();
            crate::report::output::write_json_pretty(
                &mut w,
                &summaries.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
    }
    Ok(())
}

/// How `vigil run` exits after its runs.
fn exit_of(summaries: &[(crate::runner::RunSummary, bool)]) -> Exit {
    if summaries.iter().any(|(s, _)| s.has_errors()) {
        Exit::RunErrors
    } else if summaries.iter().any(|(s, _)| s.threshold_failed()) {
        Exit::Failed
    } else {
        Exit::Success
    }
}
