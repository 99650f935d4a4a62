//! The life of one run around the scans: signals and the grace period,
//! the run's access (set up, tokens kept fresh, always cleaned up), the
//! choice of collector, and the audit trail sealed with the results. The
//! CLI builds the inputs and calls [`run_in_cluster`] or [`run_local`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::access::RunAccess;
use crate::approach::KubeCollector;
use crate::audit::AuditLog;
use crate::cluster::{Cluster, ClusterError};
use crate::plan::PolicyPlan;
use crate::policy::model::ScanPolicy;
use crate::policy::{Loaded, PolicySet};
use crate::report::output::{RunOutput, Written};

use super::{LocalCollector, RunError, RunOptions, RunSummary, run_policy};

/// Why a run could not go on (its targets' own errors are results, not
/// these).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// SIGINT/SIGTERM handlers could not be installed.
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
    /// The run's ServiceAccount, Role, RoleBinding, anchor or token.
    #[error("cannot set up the run's access: {0}")]
    Access(ClusterError),
    /// The scans could not run or their summary not be written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The audit trail could not be written into the bundle.
    #[error("cannot write the audit log: {0}")]
    Audit(std::io::Error),
}

/// Scan local targets (root filesystems) with signals watched: the first
/// stops new scans, and every target not started is recorded as not
/// scanned.
pub(crate) fn run_local(
    set: &PolicySet,
    policy: &Loaded<ScanPolicy>,
    pp: &PolicyPlan,
    opts: &RunOptions,
    output: &dyn RunOutput,
) -> Result<(RunSummary, Written), LifecycleError> {
    let (_signals, abort) =
        LocalSignals::start(opts.cancel.clone(), policy.value.spec.limits.grace_period())
            .map_err(LifecycleError::Signals)?;
    let collector = LocalCollector {
        registry: crate::image::Access {
            insecure: opts.scanner.insecure_registries.clone(),
            deadlines: policy
                .value
                .spec
                .limits
                .registry_deadlines(&opts.scanner.registry_deadlines),
            abort: Some(abort),
        },
    };
    Ok(run_policy(set, policy, pp, opts, output, &collector)?)
}

/// The audit log as written, its chain head and its entry count.
pub(crate) type SealedAudit = (crate::report::output::Written, String, u64);

/// SIGINT and SIGTERM, registered before the first scan starts (so an
/// early signal never meets the default handler, which would kill the run
/// with no statement).
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn register(rt: &tokio::runtime::Handle) -> std::io::Result<Signals> {
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
    /// Returns the guard, and a receiver set when the run must stop now (a
    /// second signal, or the grace period over): blocking waits (a registry
    /// fetch) select on it.
    fn start(
        cancel: Arc<AtomicBool>,
        grace: std::time::Duration,
    ) -> std::io::Result<(LocalSignals, tokio::sync::watch::Receiver<bool>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let signals = Signals::register(rt.handle())?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (abort_tx, abort) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("vigil-signals".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = signals.watch(cancel, grace, abort_tx) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok((
            LocalSignals {
                stop: Some(stop),
                thread: Some(thread),
            },
            abort,
        ))
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

/// Run `cleanup`, then hand back what the work returned, or go on with
/// its panic: cleanup never depends on how the work ended.
fn cleanup_then<R>(work: std::thread::Result<R>, cleanup: impl FnOnce()) -> R {
    cleanup();
    match work {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Set up the run's access, scan, and clean up whatever happens (errors and
/// SIGINT/SIGTERM included: a signal stops new scans and gives in-flight
/// ones a grace period — a second signal ends it — then cleanup runs and
/// the bundle is sealed).
pub(crate) fn run_in_cluster(
    rt: &tokio::runtime::Runtime,
    caller: &Cluster,
    set: &PolicySet,
    policy: &Loaded<ScanPolicy>,
    pp: &PolicyPlan,
    opts: &RunOptions,
    output: &dyn RunOutput,
) -> Result<(RunSummary, Written, Option<SealedAudit>), LifecycleError> {
    let cancel = opts.cancel.clone();
    let audit = crate::audit::AuditLog::new(&opts.run_id);
    // Before any pod sees a scanner image: who signed it.
    let scanner_images = rt.block_on(super::scanner::check(policy, pp, &opts.scanner));
    for c in &scanner_images {
        match (&c.verified, &c.refused) {
            (Some(v), _) => tracing::info!(
                "{} scanner image {} verified: signed by key {}",
                c.role,
                v.image,
                v.key
            ),
            (_, Some(why)) => tracing::error!(
                "{} scanner image refused, its targets will be errors: {why}",
                c.role
            ),
            _ => {}
        }
    }
    // First signal: start nothing new; in-flight scans get a grace period.
    // A second signal, or the end of the grace period, aborts them. Cleanup
    // and sealing run either way.
    let (abort_tx, abort) = tokio::sync::watch::channel(false);
    let grace = policy.value.spec.limits.grace_period();
    let signals = Signals::register(rt.handle()).map_err(LifecycleError::Signals)?;
    let watcher = rt.spawn(signals.watch(cancel, grace, abort_tx));
    let mut access = rt
        .block_on(RunAccess::setup_labelled(
            caller,
            &policy.value,
            pp,
            &audit,
            &opts.labels,
        ))
        .map_err(LifecycleError::Access)?;
    for w in &access.warnings {
        tracing::warn!("{w}");
    }
    let scan_timeout = policy.value.spec.limits.scan_timeout();
    // Tokens are renewed in the background while scans run.
    let (stop_renewal, renewal_stopped) = tokio::sync::watch::channel(false);
    // Whatever the scans do, a panic included, the run's access is cleaned
    // up before this returns or the panic goes on (`cleanup_then`).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::scope(|scope| {
            let access = &access;
            scope.spawn(|| rt.block_on(access.keep_tokens_fresh(caller, &audit, renewal_stopped)));
            // Stops the renewer however the scans end (a panic included), so
            // the scope can join it.
            struct StopOnDrop(tokio::sync::watch::Sender<bool>);
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    let _ = self.0.send(true);
                }
            }
            let _stop = StopOnDrop(stop_renewal);
            let kube;
            let external;
            let collector: &dyn super::Collector = match &policy.value.spec.scanner {
                // An existing InSpec profile, run by the team's own scanner
                // over this run's access: a collector whose evidence is its
                // report.
                Some(scanner) => {
                    external = crate::approach::external::ExternalRun {
                        runtime: rt.handle().clone(),
                        access,
                        audit: &audit,
                        scan_timeout,
                        scanner,
                        base_dir: policy.base_dir(),
                        abort,
                    };
                    &external
                }
                None => {
                    kube = KubeCollector {
                        audit: &audit,
                        scan_timeout,
                        runtime: rt.handle().clone(),
                        access,
                        debug: policy.value.spec.debug.as_ref(),
                        scanner_images,
                        retries: policy.value.spec.limits.retries,
                        abort,
                    };
                    &kube
                }
            };
            super::scan_policy(set, policy, pp, opts, output, collector)
        })
    }));
    let result = cleanup_then(result, || {
        let leftovers = rt.block_on(access.cleanup(caller, &audit));
        watcher.abort();
        for l in &leftovers {
            tracing::warn!("cleanup failed: {l} (run `vigil gc` to remove leftovers)");
        }
    });
    let (summary, summary_file) = result
        .and_then(|scanned| scanned.finish(&opts.run_id, output))
        .map_err(LifecycleError::Run)?;
    let trail = write_trail(&audit, output).map_err(LifecycleError::Audit)?;
    Ok((summary, summary_file, Some(trail)))
}

/// The audit trail, sealed with the results (streamed to its file): the
/// file, and its chain head and length for the signed statement.
fn write_trail(
    audit: &AuditLog,
    output: &dyn RunOutput,
) -> std::io::Result<(Written, String, u64)> {
    let mut head = (String::new(), 0);
    let written = output.write_from("audit.jsonl", &mut |w| {
        head = audit.write_jsonl(w)?;
        Ok(())
    })?;
    Ok((written, head.0, head.1))
}

#[cfg(test)]
mod tests {
    use super::cleanup_then;

    #[test]
    fn cleanup_runs_before_a_panic_goes_on() {
        let cleaned = std::cell::Cell::new(false);
        let work = std::panic::catch_unwind(|| -> u32 { panic!("a bug while scanning") });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cleanup_then(work, || cleaned.set(true))
        }));
        assert!(cleaned.get(), "cleanup ran");
        let panic = outcome.unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"a bug while scanning"));
        let cleaned = std::cell::Cell::new(false);
        assert_eq!(cleanup_then(Ok(7), || cleaned.set(true)), 7);
        assert!(cleaned.get());
    }
}
