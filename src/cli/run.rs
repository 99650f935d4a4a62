//! `vigil run`: scan the planned targets and write results.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Exit, InvalidInput, print_stdout};
use sha2::{Digest, Sha256};

use crate::report::output::RunOutput;
use crate::report::threshold::Threshold;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::access::RunAccess;
use crate::approach::KubeCollector;
use crate::policy::model::Approach;
use crate::runner::{LocalCollector, Progress, RunOptions, RunSummary, output_dir, run_policy};
use crate::seal::bundle::SealedDir;
use crate::seal::keys::{Signer, parse_recipients};

const AFTER_HELP: &str = "\
Examples:
  vigil run policies/demo.yaml policies/profiles/
  vigil run policies/ --policy demo --out /tmp/results --threshold threshold.yml

Results land in OUT/<policy>/<run-id>/, a sealed bundle: one age-encrypted
HDF file per target under targets/, summary.json.age, and, written last,
statement.dsse.json (an in-toto statement signed with ed25519). Check it with
`vigil verify`, read it with `vigil open`. Exit 0 when every threshold holds,
1 when one fails, 2 on invalid input, 3 when a target could not be scanned.";

/// Scan targets, evaluate controls, write HDF results and a summary.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    input: super::PlanInput,
    /// Results directory (default: each policy's `output.dir`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A SAF CLI threshold file (YAML or JSON) that replaces the policies' thresholds.
    #[arg(long, value_name = "FILE")]
    threshold: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Ed25519 signing key (PKCS#8 PEM, mode 0600); overrides `output.signingKey`
    /// and the VIGIL_SIGNING_KEY environment variable.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Run without a signing key: the bundle's statement carries no signature
    /// and `vigil verify` will reject it.
    #[arg(long)]
    unsigned: bool,
    /// Write results unencrypted (allowed only when the policy names no recipients).
    #[arg(long)]
    plaintext: bool,
    /// Which failed and error controls to list under each target: of
    /// targets that fail their threshold or have errors (failed), of every
    /// target (all), or none.
    #[arg(long, value_enum, default_value_t = crate::report::findings::Details::Failed)]
    details: crate::report::findings::Details,
    /// At most this many controls listed per target ("and N more").
    #[arg(long, value_name = "N", default_value_t = 10)]
    details_limit: usize,
    /// Also write a CI report, in plaintext (the sealed bundle stays the
    /// record): junit=PATH (JUnit XML), sarif=PATH (SARIF 2.1.0) or
    /// markdown=PATH; repeatable.
    #[arg(long = "report", value_name = "FORMAT=PATH")]
    reports: Vec<crate::report::ci::Request>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A table per policy.
    Text,
    /// The run summaries as JSON.
    Json,
}

/// Threshold files larger than this are refused (a real one is a few lines).
const MAX_THRESHOLD_BYTES: u64 = 1024 * 1024;

/// Read a SAF threshold file.
pub fn read_threshold(path: &std::path::Path) -> anyhow::Result<Threshold> {
    let text = crate::safeio::read_to_string(path, MAX_THRESHOLD_BYTES, "threshold file")
        .map_err(|e| InvalidInput(e.to_string()))?;
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| {
        InvalidInput(format!(
            "threshold file {} is not YAML/JSON: {}",
            path.display(),
            e.without_snippet()
        ))
    })?;
    for (pointer, why) in crate::report::threshold::saf_differences(&value, 1) {
        tracing::warn!(
            "threshold file {}{}: {why}",
            crate::safeio::printable(&path.display().to_string()),
            if pointer.is_empty() {
                String::new()
            } else {
                format!(" at {pointer}")
            }
        );
    }
    Threshold::parse(&value).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        InvalidInput(format!(
            "threshold file {}: {}",
            path.display(),
            msgs.join("; ")
        ))
        .into()
    })
}

/// The audit log as written, its chain head and its entry count.
type SealedAudit = (crate::report::output::Written, String, u64);

/// SIGINT and SIGTERM, registered before the first scan starts (so an
/// early signal never meets the default handler, which would kill the run
/// with no statement).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn register(rt: &tokio::runtime::Handle) -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let _guard = rt.enter();
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    /// The one signal path of every run: the first signal starts no new
    /// scans; in-flight ones get `grace` — a second signal, or the end of
    /// the grace period, sends `abort`. Cleanup and sealing run either way.
    async fn watch(
        mut self,
        cancel: Arc<AtomicBool>,
        grace: std::time::Duration,
        abort: tokio::sync::watch::Sender<bool>,
    ) {
        self.next().await;
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "signal received: starting no new scans; scans in flight get {}s to finish (a second signal stops them now), then cleanup",
            grace.as_secs()
        );
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            _ = self.next() => tracing::warn!("second signal: stopping the scans in flight, then cleanup"),
            _ = tokio::time::sleep(grace) => tracing::warn!("grace period over: stopping the scans in flight, then cleanup"),
        }
        let _ = abort.send(true);
    }
}

/// Watch signals for a local run, which has no runtime of its own: a small
/// one on a thread of its own, stopped when the returned guard drops. Local
/// scans are bounded reads that finish on their own; the bundle is sealed
/// with every target not started marked as not scanned.
struct LocalSignals {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalSignals {
    fn start(cancel: Arc<AtomicBool>, grace: std::time::Duration) -> anyhow::Result<LocalSignals> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let signals = Signals::register(rt.handle())?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("vigil-signals".into())
            .spawn(move || {
                let (abort_tx, _abort) = tokio::sync::watch::channel(false);
                rt.block_on(async move {
                    tokio::select! {
                        _ = signals.watch(cancel, grace, abort_tx) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(LocalSignals {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for LocalSignals {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Set up the run's access, scan, and clean up whatever happens (errors and
/// SIGINT/SIGTERM included: a signal stops new scans and gives in-flight
/// ones a grace period — a second signal ends it — then cleanup runs and
/// the bundle is sealed).
fn run_in_cluster(
    session: &super::Session,
    set: &crate::policy::PolicySet,
    policy: &crate::policy::Loaded<crate::policy::model::ScanPolicy>,
    pp: &crate::plan::PolicyPlan,
    opts: &RunOptions,
    output: &SealedDir,
    cancel: Arc<AtomicBool>,
) -> anyhow::Result<(
    RunSummary,
    crate::report::output::Written,
    Option<SealedAudit>,
)> {
    let rt = &session.runtime;
    let audit = crate::audit::AuditLog::new(&opts.run_id);
    // First signal: start nothing new; in-flight scans get a grace period.
    // A second signal, or the end of the grace period, aborts them. Cleanup
    // and sealing run either way.
    let (abort_tx, abort) = tokio::sync::watch::channel(false);
    let grace = policy.value.spec.limits.grace_period();
    let signals = Signals::register(rt.handle())?;
    let watcher = rt.spawn(signals.watch(cancel, grace, abort_tx));
    let mut access = rt
        .block_on(RunAccess::setup(&session.caller, &policy.value, pp, &audit))
        .map_err(|e| anyhow::anyhow!("cannot set up the run's access: {e}"))?;
    for w in &access.warnings {
        tracing::warn!("{w}");
    }
    let scan_timeout = policy.value.spec.limits.scan_timeout();
    // Tokens are renewed in the background while scans run.
    let (stop_renewal, renewal_stopped) = tokio::sync::watch::channel(false);
    let result = std::thread::scope(|scope| {
        let access = &access;
        scope.spawn(|| {
            rt.block_on(access.keep_tokens_fresh(&session.caller, &audit, renewal_stopped))
        });
        // Stops the renewer however the scans end (a panic included), so
        // the scope can join it.
        struct StopOnDrop(tokio::sync::watch::Sender<bool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                let _ = self.0.send(true);
            }
        }
        let _stop = StopOnDrop(stop_renewal);
        match &policy.value.spec.scanner {
            // An existing InSpec profile, run by the team's own scanner over
            // this run's access.
            Some(scanner) => {
                let external = crate::approach::external::ExternalRun {
                    runtime: rt.handle().clone(),
                    access,
                    audit: &audit,
                    scan_timeout,
                    scanner,
                    base_dir: policy.base_dir(),
                    abort,
                };
                crate::runner::run_external(policy, pp, opts, output, &|t, scan_id| {
                    external.scan(t, scan_id)
                })
            }
            None => {
                let collector = KubeCollector {
                    audit: &audit,
                    scan_timeout,
                    runtime: rt.handle().clone(),
                    access,
                    debug: policy.value.spec.debug.as_ref(),
                    retries: policy.value.spec.limits.retries,
                    abort,
                };
                run_policy(set, policy, pp, opts, output, &collector)
            }
        }
    });
    let leftovers = rt.block_on(access.cleanup(&session.caller, &audit));
    watcher.abort();
    for l in &leftovers {
        tracing::warn!("cleanup failed: {l} (run `vigil gc` to remove leftovers)");
    }
    let (summary, summary_file) = result?;
    // The audit trail is sealed with the results; its chain head goes into
    // the signed statement.
    let (bytes, final_hash, entries) = audit.finish();
    let written = output
        .write("audit.jsonl", &bytes)
        .map_err(|e| anyhow::anyhow!("cannot write the audit log: {e}"))?;
    Ok((summary, summary_file, Some((written, final_hash, entries))))
}

/// The age/ssh recipients of a policy's results; none only with `plaintext`.
pub(super) fn recipients_for(
    policy: &crate::policy::Loaded<crate::policy::model::ScanPolicy>,
    plaintext: bool,
) -> anyhow::Result<Vec<Box<dyn age::Recipient + Send + Sync>>> {
    let recipients =
        parse_recipients(&policy.value.spec.output.recipients).map_err(InvalidInput)?;
    if recipients.is_empty() && !plaintext {
        return Err(InvalidInput(format!(
            "policy {} names no output.recipients: results would be readable by anyone; add an age or ssh recipient, or pass --plaintext",
            policy.value.metadata.name
        ))
        .into());
    }
    Ok(recipients)
}

/// Create the bundle directory `OUT/<policy>/<run-id>/` for a run.
pub(super) fn open_bundle(
    policy: &crate::policy::Loaded<crate::policy::model::ScanPolicy>,
    out: Option<&PathBuf>,
    run_id: &str,
    recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
) -> anyhow::Result<SealedDir> {
    let out = output_dir(&policy.value, out);
    SealedDir::create(
        &out,
        &policy.value.metadata.name,
        run_id,
        recipients,
        policy.value.spec.output.armor,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot create the bundle directory under {}: {}",
            crate::safeio::printable(&out.display().to_string()),
            crate::safeio::io_reason(&e)
        )
    })
}

/// The signing key for a policy: `--signing-key`, else VIGIL_SIGNING_KEY,
/// else the policy's `output.signingKey` (relative to the policy file).
fn signer_for(
    args: &Args,
    policy: &crate::policy::Loaded<crate::policy::model::ScanPolicy>,
) -> anyhow::Result<Option<Signer>> {
    load_signer(args.signing_key.as_deref(), args.unsigned, policy)
}

/// The signing key: `signing_key`, else VIGIL_SIGNING_KEY, else the
/// policy's `output.signingKey`; none only when `unsigned` allows it.
pub(super) fn load_signer(
    signing_key: Option<&std::path::Path>,
    unsigned: bool,
    policy: &crate::policy::Loaded<crate::policy::model::ScanPolicy>,
) -> anyhow::Result<Option<Signer>> {
    let loaded = if let Some(path) = signing_key {
        Some(Signer::from_file(path))
    } else if let Some(r) = Signer::from_env() {
        Some(r)
    } else {
        policy
            .value
            .spec
            .output
            .signing_key
            .as_ref()
            .map(|k| Signer::from_file(&policy.base_dir().join(k)))
    };
    match loaded {
        Some(r) => Ok(Some(r.map_err(|e| InvalidInput(e.to_string()))?)),
        None if unsigned => Ok(None),
        None => Err(InvalidInput(format!(
            "policy {} has no signing key: set output.signingKey, pass --signing-key FILE or VIGIL_SIGNING_KEY, or run with --unsigned",
            policy.value.metadata.name
        ))
        .into()),
    }
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
    crate::report::ci::check_paths(&args.reports).map_err(InvalidInput)?;
    let run_id = uuid::Uuid::now_v7().to_string();
    args.input.run_id = run_id.clone();
    let (set, plan, session) = super::load_plan(&args.input)?;
    // Check every policy's keys and recipients before scanning anything.
    let mut prepared = Vec::new();
    for pp in &plan.policies {
        let policy = set
            .policies
            .iter()
            .find(|p| p.value.metadata.name == pp.policy)
            .expect("planned policies come from the set");
        let signer = signer_for(&args, policy)?;
        let recipients = recipients_for(policy, args.plaintext)?;
        prepared.push((pp, policy, signer, recipients));
    }
    let mut summaries = Vec::new();
    for (pp, policy, signer, recipients) in prepared {
        let run_id = run_id.clone();
        let output = open_bundle(policy, args.out.as_ref(), &run_id, recipients)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let opts = RunOptions {
            run_id,
            threshold: threshold.clone(),
            progress: progress(&pp.policy, pp.targets.len()),
            cancel: cancel.clone(),
            deadline: Some(std::time::Instant::now() + policy.value.spec.limits.run_deadline()),
        };
        let needs_cluster = pp.targets.iter().any(|t| t.approach != Approach::Local);
        let (summary, summary_file, audit) = match (&session, needs_cluster) {
            (Some(session), true) => {
                run_in_cluster(session, &set, policy, pp, &opts, &output, cancel)?
            }
            _ => {
                let _signals =
                    LocalSignals::start(cancel, policy.value.spec.limits.grace_period())?;
                let (s, f) = run_policy(&set, policy, pp, &opts, &output, &LocalCollector)?;
                (s, f, None)
            }
        };
        let policy_sha = crate::facts::frame::hex(&Sha256::digest(policy.source.text.as_bytes()));
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
    let text = match args.format {
        Format::Text => summaries
            .iter()
            .map(|(s, unsigned)| {
                crate::report::text::table(s, *unsigned, args.details, args.details_limit)
            })
            .collect::<String>(),
        Format::Json => {
            serde_json::to_string_pretty(&summaries.iter().map(|(s, _)| s).collect::<Vec<_>>())?
                + "\n"
        }
    };
    print_stdout(&text)?;
    let all: Vec<crate::report::ci::ReportRun> = summaries.iter().map(|(s, _)| s.into()).collect();
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
    )?;
    Ok(if summaries.iter().any(|(s, _)| s.has_errors()) {
        Exit::RunErrors
    } else if summaries.iter().any(|(s, _)| s.threshold_failed()) {
        Exit::Failed
    } else {
        Exit::Success
    })
}

/// A progress bar on a terminal, plain lines otherwise (both on stderr).
fn progress(policy: &str, total: usize) -> Progress {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(policy.to_string());
        let failed = Mutex::new(0usize);
        Box::new(move |s, tally| {
            if s.status == crate::report::run::TargetStatus::Error {
                *failed.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            bar.set_position(tally.done as u64);
            bar.set_message(format!(
                "failed {} in flight {}",
                failed.lock().map_or(0, |g| *g),
                tally.in_flight
            ));
            if tally.done == tally.total {
                bar.finish_and_clear();
            }
        })
    } else {
        let policy = policy.to_string();
        Box::new(move |s, tally| {
            let (done, total, in_flight) = (tally.done, tally.total, tally.in_flight);
            let c = &s.counts;
            match &s.error {
                Some(e) => tracing::warn!(
                    policy = %policy, done, total, in_flight, target_id = %s.id, approach = s.approach.as_str(),
                    attempts = s.attempts, error = %e,
                    "{policy} [{done}/{total}] {}: {}", printable(&s.id), printable(e)
                ),
                None => tracing::info!(
                    policy = %policy, done, total, in_flight, target_id = %s.id, approach = s.approach.as_str(),
                    attempts = s.attempts, passed = c.passed, failed = c.failed, skipped = c.skipped,
                    errors = c.error, compliance = s.compliance, duration = s.duration,
                    "{policy} [{done}/{total}] {}: {} passed, {} failed, {} skipped, {} error, {}%",
                    printable(&s.id), c.passed, c.failed, c.skipped, c.error, s.compliance
                ),
            }
        })
    }
}

/// Untrusted text (target ids from directory names and imported reports,
/// error messages quoting containers) as it may appear on a terminal.
use crate::safeio::printable;
