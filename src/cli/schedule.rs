//! `vigil schedule`: run policies on their schedules from this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Exit, InvalidInput, print_stdout};
use crate::schedule::{Clock, Event, Plan, RunFuture};

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
pub struct Args {
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

pub fn run(args: Args) -> anyhow::Result<Exit> {
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
    // What each run will need, checked now: a policy that cannot be sealed
    // (no recipients, no signing key) is refused at start, not at its
    // first fire hours later.
    for p in set
        .policies
        .iter()
        .filter(|p| plans.iter().any(|pl| pl.policy == p.value.metadata.name))
    {
        let name = &p.value.metadata.name;
        crate::seal::options::signer(args.signing_key.as_deref(), false, p)
            .map_err(|e| InvalidInput(format!("policy {name}: {e}")))?;
        crate::seal::options::recipients(p, args.plaintext)
            .map_err(|e| InvalidInput(format!("policy {name}: {e}")))?;
    }
    let out_dirs: BTreeMap<String, PathBuf> = set
        .policies
        .iter()
        .map(|p| {
            let base = crate::runner::output_dir(&p.value, args.out.as_ref());
            (
                p.value.metadata.name.clone(),
                base.join(&p.value.metadata.name),
            )
        })
        .collect();
    let keep: BTreeMap<String, u32> = set
        .policies
        .iter()
        .filter_map(|p| {
            p.value
                .spec
                .output
                .keep
                .map(|k| (p.value.metadata.name.clone(), k))
        })
        .collect();
    // spec.monitoring: audit-check after each run, attested with the key
    // that signs the runs.
    let monitoring: BTreeMap<String, crate::policy::model::Monitoring> = set
        .policies
        .iter()
        .filter_map(|p| {
            Some((
                p.value.metadata.name.clone(),
                p.value.spec.monitoring.clone()?,
            ))
        })
        .collect();
    let signer = match (&args.signing_key, monitoring.keys().next()) {
        (Some(k), Some(_)) => Some(Arc::new(
            crate::seal::keys::Signer::from_file(k).map_err(|e| InvalidInput(e.to_string()))?,
        )),
        (None, Some(policy)) => {
            return Err(InvalidInput(format!(
                "policy {policy} sets spec.monitoring: its audit-check is attested with the key that signs the runs; pass --signing-key"
            ))
            .into());
        }
        _ => None,
    };
    let state = |policy: &str| out_dirs[policy].join(".vigil-schedule");
    let last: BTreeMap<String, chrono::DateTime<chrono::Utc>> = plans
        .iter()
        .filter_map(|p| {
            let text =
                crate::safeio::read_to_string(&state(&p.policy), 4096, "schedule state").ok()?;
            let t = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
            Some((p.policy.clone(), t.with_timezone(&chrono::Utc)))
        })
        .collect();
    let exe = std::env::current_exe()?;
    let children: Arc<Mutex<BTreeSet<u32>>> = Arc::default();
    let runner = {
        let (exe, paths, children) = (exe.clone(), args.paths.clone(), children.clone());
        let (out, key, plaintext) = (args.out.clone(), args.signing_key.clone(), args.plaintext);
        let (out_dirs, keep) = (out_dirs.clone(), keep.clone());
        let (monitoring, signer) = (monitoring.clone(), signer.clone());
        Arc::new(move |policy: &str| -> RunFuture {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.arg("run").args(&paths).args(["--policy", policy]);
            if let Some(o) = &out {
                cmd.arg("--out").arg(o);
            }
            if let Some(k) = &key {
                cmd.arg("--signing-key").arg(k);
            }
            if plaintext {
                cmd.arg("--plaintext");
            }
            let children = children.clone();
            let dir = out_dirs[policy].clone();
            let keep = keep.get(policy).copied();
            let monitor = monitoring.get(policy).cloned().zip(signer.clone());
            let policy = policy.to_string();
            Box::pin(async move {
                let Ok(mut child) = cmd.spawn() else {
                    tracing::error!(policy = %policy, "cannot start `vigil run`");
                    return false;
                };
                let pid = child.id();
                if let Some(pid) = pid {
                    children
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(pid);
                }
                let status = child.wait().await;
                if let Some(pid) = pid {
                    children
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&pid);
                }
                // 0: pass, 1: a threshold failed — both sealed a bundle.
                let ok = status.is_ok_and(|s| matches!(s.code(), Some(0 | 1)));
                if ok {
                    crate::schedule::after_run(&policy, dir, keep, monitor).await;
                }
                ok
            })
        })
    };
    let events = {
        let out_dirs = out_dirs.clone();
        Arc::new(move |e: Event| match e {
            Event::Started {
                policy,
                fire,
                catch_up,
            } => {
                let _ = std::fs::create_dir_all(&out_dirs[&policy]);
                let _ =
                    std::fs::write(out_dirs[&policy].join(".vigil-schedule"), fire.to_rfc3339());
                tracing::info!(policy = %policy, fire = %fire.to_rfc3339(), catch_up, "{policy}: run for {fire}{}", if catch_up { " (catching up)" } else { "" });
            }
            Event::Skipped { policy, fire } => {
                tracing::warn!(policy = %policy, fire = %fire.to_rfc3339(), "{policy}: skipped the run due {fire}: the previous run is still going");
            }
            Event::Finished { policy, ok } => {
                tracing::info!(policy = %policy, ok, "{policy}: run finished{}", if ok { "" } else { " with errors" });
            }
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = async {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::warn!("signal received: no new runs; runs in flight get SIGTERM and finish or cancel cleanly");
            for pid in children.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        };
        for p in &plans {
            if let Some(next) = p.next_after(chrono::Utc::now()) {
                tracing::info!(policy = %p.policy, next = %next.to_rfc3339(), "{}: next run {}", p.policy, next.with_timezone(&p.tz).to_rfc3339());
            }
        }
        crate::schedule::daemon(plans, Clock::starting_at(chrono::Utc::now()), last, runner, events, stop).await;
        anyhow::Ok(())
    })?;
    Ok(Exit::Success)
}
