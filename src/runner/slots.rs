//! The scan slots of a run: targets admitted under every limit at once
//! ([`Admission`]), gathered, then finished (evaluated, written, reported)
//! once their slot is free, so the next target's requests never wait for
//! this one's local work.
//!
//! Gathering that waits on this machine (a local root, an image, an
//! external scanner) takes a thread per slot. Gathering that waits on the
//! cluster is polled: every scan in flight is a future on one thread, and
//! one finishing thread per core takes what they gathered, so a run of 64
//! slots holds one stack for them, not 64 (8 MB of a 2,000-target run's
//! 66 MB were those stacks).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::admission::{Admission, Turn};
use super::{RunError, RunOptions, Tally, TargetSummary};
use crate::plan::{PlannedTarget, PolicyPlan};
use crate::report::spool::Spool;

/// A target's gathering as a future (see [`Gather::Polled`]).
pub(super) type GatherFuture<'t, G> = Pin<Box<dyn Future<Output = G> + Send + 't>>;

/// `gather` typed as [`Gather::Polled`] takes it, its futures borrowing
/// the targets for as long as the caller's data lives (`'t`).
pub(super) fn polled<'t, G, F>(gather: F) -> F
where
    F: Fn(&'t PlannedTarget) -> GatherFuture<'t, G> + Sync,
{
    gather
}

/// How a run gathers each target.
pub(super) enum Gather<'a, 't, G> {
    /// A call that blocks its thread until the target is gathered.
    Blocking(&'a (dyn Fn(&PlannedTarget) -> G + Sync)),
    /// A future, polled with every other scan in flight on `runtime`.
    Polled {
        /// Where the futures' I/O and timers live.
        runtime: &'a tokio::runtime::Handle,
        /// The target's gathering.
        gather: &'a (dyn Fn(&'t PlannedTarget) -> GatherFuture<'t, G> + Sync),
    },
}

/// Scan every target of `plan`: `gather` under the admission that holds
/// `limits.concurrency` and the per-namespace and per-node caps (the load
/// on the cluster), then `finish` (evaluate, write) after its slot is
/// freed; report progress after each.
///
/// There are `concurrency` slots plus one finishing worker per core: while
/// as many targets as there are cores are being finished, every slot can
/// still be gathering; beyond that the slots wait, which bounds the
/// gathered facts held in memory. A finished target's findings go to
/// `spool`, when there is one, so what the run holds per target is its
/// counts and file names.
pub(super) fn scan_all<'t, G: Send>(
    plan: &'t PolicyPlan,
    limits: &crate::policy::model::Limits,
    opts: &RunOptions,
    gather: Gather<'_, 't, G>,
    finish: &(dyn Fn(&PlannedTarget, G) -> TargetSummary + Sync),
    spool: Option<&Arc<Spool>>,
) -> Result<Vec<TargetSummary>, RunError> {
    // The plan's batch order interleaves namespaces and nodes.
    let index: HashMap<&str, usize> = plan
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let order: Vec<usize> = plan
        .batches
        .iter()
        .flatten()
        .filter_map(|id| index.get(id.as_str()).copied())
        .collect();
    drop(index);
    let concurrency = limits.concurrency.max(1);
    let admission = Admission::new(&plan.targets, &order, limits.per_namespace, limits.per_node)
        .at_most(concurrency);
    let total = plan.targets.len();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let done = Finished {
        taken: AtomicUsize::new(0),
        results: Mutex::new(Vec::with_capacity(total)),
        total,
        opts,
        finish,
        spool,
    };
    match gather {
        Gather::Blocking(gather) => {
            let workers = (concurrency as usize + cores).min(total.max(1));
            let work = || {
                while let Some(i) = admission.next() {
                    done.taken.fetch_add(1, Ordering::Relaxed);
                    let t = &plan.targets[i];
                    let gathered = gather(t);
                    admission.done(i);
                    done.target(t, gathered);
                }
            };
            with_workers("scan", workers, work, || ())?;
        }
        Gather::Polled { runtime, gather } => {
            let finishers = cores.min(total.max(1));
            let (tx, rx) = tokio::sync::mpsc::channel::<(usize, G)>(finishers);
            let rx = Mutex::new(rx);
            let work = || {
                // One worker waits on the channel, the others on its lock.
                while let Some((i, gathered)) = {
                    let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                    rx.blocking_recv()
                } {
                    done.target(&plan.targets[i], gathered);
                }
            };
            let taken = &done.taken;
            let admission = &admission;
            let poll = move || {
                runtime.block_on(poll_all(plan, admission, gather, tx, finishers, taken));
            };
            with_workers("finish", finishers, work, poll)?;
        }
    }
    Ok(done.results.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// `workers` threads running `work` while this thread runs `meanwhile`,
/// all joined before this returns. Should a thread fail to start,
/// `meanwhile` is dropped unrun (and with it whatever the workers wait
/// on), and the ones started are joined.
fn with_workers<R>(
    name: &str,
    workers: usize,
    work: impl Fn() + Sync,
    meanwhile: impl FnOnce() -> R,
) -> Result<R, RunError> {
    let work = &work;
    std::thread::scope(|scope| {
        for w in 0..workers {
            std::thread::Builder::new()
                .name(format!("vigil-{name}-{w}"))
                .spawn_scoped(scope, work)
                .map_err(|e| RunError::Pool(e.to_string()))?;
        }
        Ok(meanwhile())
    })
}

/// Admit targets and poll their gathering until every one is gathered and
/// handed to a finishing worker through `tx`. Admission stops while
/// `finishers` gathered targets wait for a worker, as a blocked slot would.
async fn poll_all<'t, G>(
    plan: &'t PolicyPlan,
    admission: &Admission<'_>,
    gather: &(dyn Fn(&'t PlannedTarget) -> GatherFuture<'t, G> + Sync),
    tx: tokio::sync::mpsc::Sender<(usize, G)>,
    finishers: usize,
    taken: &AtomicUsize,
) {
    let mut running = FuturesUnordered::new();
    let mut ready: VecDeque<(usize, G)> = VecDeque::new();
    loop {
        while ready.len() < finishers {
            let Turn::Scan(i) = admission.try_next() else {
                break;
            };
            taken.fetch_add(1, Ordering::Relaxed);
            let gathering = gather(&plan.targets[i]);
            running.push(async move { (i, gathering.await) });
        }
        // Nothing running means nothing holds a slot: admission had no
        // target left (a cap cannot hold with no scan in flight).
        if running.is_empty() && ready.is_empty() {
            return;
        }
        tokio::select! {
            Some((i, gathered)) = running.next(), if !running.is_empty() => {
                admission.done(i);
                ready.push_back((i, gathered));
            }
            permit = tx.reserve(), if !ready.is_empty() => match permit {
                Ok(permit) => permit.send(ready.pop_front().expect("not empty")),
                // Every finishing worker is gone (a panic, which the
                // scope reports when it joins them).
                Err(_) => return,
            },
        }
    }
}

/// What every finished target goes through, whichever way it was gathered.
struct Finished<'a, G> {
    taken: AtomicUsize,
    results: Mutex<Vec<TargetSummary>>,
    total: usize,
    opts: &'a RunOptions,
    finish: &'a (dyn Fn(&PlannedTarget, G) -> TargetSummary + Sync),
    spool: Option<&'a Arc<Spool>>,
}

impl<G> Finished<'_, G> {
    /// Finish `t`, keep its summary (findings spooled) and report progress.
    fn target(&self, t: &PlannedTarget, gathered: G) {
        let mut s = (self.finish)(t, gathered);
        if !self.opts.keep_controls {
            s.controls = Vec::new();
        }
        if let Some(spool) = self.spool {
            s.findings = std::mem::take(&mut s.findings).spool(spool);
        }
        // Number and report under one lock: "[i/n]" lines then come in
        // completion order, never [6/n] before [5/n].
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        let n = results.len() + 1;
        let in_flight = self.taken.load(Ordering::Relaxed).saturating_sub(n);
        (self.opts.progress)(
            &s,
            Tally {
                done: n,
                in_flight,
                total: self.total,
            },
        );
        results.push(s);
    }
}
