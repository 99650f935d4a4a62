//! Running a plan: scan every target, bounded by the policy's concurrency,
//! evaluate, write one HDF per target and a run summary.
//!
//! # Guarantees
//!
//! - Every planned target ends with exactly one summary entry and one HDF
//!   file; a target that cannot be scanned is recorded as an error (its
//!   controls carry the reason), never dropped.
//! - One failing target never stops the others.
//! - `limits.concurrency` scan slots take targets through an
//!   [`admission::Admission`] that also holds `perNamespace` and `perNode`
//!   ([`slots`]: threads for local work, futures polled on one thread for
//!   the cluster's).

pub(crate) mod admission;
pub(crate) mod lifecycle;
pub mod pipeline;
pub mod scanner;
pub mod session;
mod slots;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::facts::{FactRequest, compile::compile};
use crate::plan::{PlannedTarget, PolicyPlan};
use crate::policy::model::{Approach, Profile, ScanPolicy};
use crate::policy::threshold::Threshold;
use crate::policy::{Loaded, PolicySet};
use crate::report::findings::{Findings, findings_of};
use crate::report::output::{RunOutput, Written};
use crate::report::spool::Spool;
use crate::report::summary::Counts;
use crate::report::{Evaluation, PreparedProfile, evaluate_target, hdf};

// The run's result types live in `report::run` (sealing and merging read
// them without depending on the runner).
pub use crate::report::run::{
    FailureKind, Imported, PlanRef, RunStats, RunSummary, RunVerdict, StatusCounts, TargetStatus,
    TargetSummary,
};

pub use crate::approach::collector::{Collected, Collector, Failure, Gathered, LocalCollector};

/// Called after each target with (its summary, targets done, total).
pub type Progress = Box<dyn Fn(&TargetSummary, Tally) + Send + Sync>;

/// Where a run stands when a target ends.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Targets done, this one included.
    pub done: usize,
    /// Targets being scanned now.
    pub in_flight: usize,
    /// Targets in the plan.
    pub total: usize,
}

/// Settings that do not come from the policy.
pub struct RunOptions {
    /// Run id (UUIDv7).
    pub run_id: String,
    /// `--run-label`s: on every object the run creates, and in the signed
    /// statement (a pipeline id, for example).
    pub labels: BTreeMap<String, String>,
    /// Threshold overriding the policy's (`--threshold FILE`).
    pub threshold: Option<Threshold>,
    /// Called after each target with (summary, done, total).
    pub progress: Progress,
    /// Set by a signal handler: targets not started yet are recorded as
    /// not scanned; in-flight ones get the collector's grace period.
    pub cancel: std::sync::Arc<AtomicBool>,
    /// The policy's runDeadline from the start: targets not started by then
    /// are recorded as not scanned.
    pub deadline: Option<std::time::Instant>,
    /// `--scanner-key` and friends: how scanner images are verified.
    pub scanner: scanner::ScannerTrust,
    /// Keep every control of every target in the summary (`--report`
    /// formats list them all). Without it a target keeps only its failed
    /// and error findings once it is scanned, so a run's memory follows
    /// its failures, not its controls.
    pub keep_controls: bool,
}

/// Errors that stop a run before any target is scanned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The worker pool could not start.
    #[error("cannot start worker threads: {0}")]
    Pool(String),
    /// The policy's threshold does not parse (a policy that skipped lint).
    #[error(transparent)]
    Threshold(crate::policy::threshold::InvalidThreshold),
    /// The summary could not be written.
    #[error("cannot write {name}: {cause}")]
    Write {
        /// File.
        name: String,
        /// Cause.
        cause: std::io::Error,
    },
}

/// The prepared profiles and the fact request of each distinct profile list
/// in `plan`: targets that evaluate the same profiles gather the same facts.
pub fn fact_requests<'a>(
    set: &'a PolicySet,
    spec: &crate::policy::model::PolicySpec,
    plan: &PolicyPlan,
) -> BTreeMap<Vec<String>, (Vec<PreparedProfile<'a>>, FactRequest)> {
    let mut requests = BTreeMap::new();
    for t in &plan.targets {
        requests.entry(t.profiles.clone()).or_insert_with(|| {
            let profiles: Vec<&Loaded<Profile>> =
                t.profiles.iter().filter_map(|n| set.profile(n)).collect();
            let req = compile(
                profiles.iter().flat_map(|p| p.value.controls.iter()),
                spec.limits.max_file_bytes,
            );
            (
                profiles.into_iter().map(PreparedProfile::new).collect(),
                req,
            )
        });
    }
    requests
}

/// Scan every target of `plan` and write the results through `output`.
/// Returns the summary and the summary file as written.
pub fn run_policy(
    set: &PolicySet,
    policy: &Loaded<ScanPolicy>,
    plan: &PolicyPlan,
    opts: &RunOptions,
    output: &dyn RunOutput,
    collector: &dyn Collector,
) -> Result<(RunSummary, Written), RunError> {
    scan_policy(set, policy, plan, opts, output, collector)?.finish(&opts.run_id, output)
}

/// Every target scanned and its files written; the summary not yet.
/// A cluster run cleans up its access between the two (the tokens die as
/// soon as the last scan ends, and the summary's sync does not delay it).
struct Scanned {
    policy: String,
    started: DateTime<Utc>,
    targets: Vec<TargetSummary>,
    origin: Origin,
}

impl Scanned {
    /// Judge the run and write its summary (see [`finish`]).
    fn finish(
        self,
        run_id: &str,
        output: &dyn RunOutput,
    ) -> Result<(RunSummary, Written), RunError> {
        finish(
            run_id,
            &self.policy,
            self.started,
            self.targets,
            self.origin,
            output,
        )
    }
}

/// [`run_policy`] up to the summary.
fn scan_policy(
    set: &PolicySet,
    policy: &Loaded<ScanPolicy>,
    plan: &PolicyPlan,
    opts: &RunOptions,
    output: &dyn RunOutput,
    collector: &dyn Collector,
) -> Result<Scanned, RunError> {
    let started = Utc::now();
    let spec = &policy.value.spec;
    let threshold = threshold_for(opts, spec)?;
    let requests = fact_requests(set, spec, plan);
    let spool = findings_spool(opts, output);
    let judged = |t: &PlannedTarget, g: Gathering| {
        let (profiles, req) = &requests[&t.profiles];
        let judged = Judged {
            collector,
            profiles,
            req,
            spec,
            threshold: threshold.as_ref(),
            run_id: &opts.run_id,
        };
        finish_target(t, g, &judged, output)
    };
    let blocking = |t: &PlannedTarget| {
        let (_, req) = &requests[&t.profiles];
        gather_target(t, req, collector, &opts.cancel, opts.deadline)
    };
    let polled = slots::polled(|t| {
        let (_, req) = &requests[&t.profiles];
        Box::pin(gather_one(
            t,
            req,
            collector,
            &opts.cancel,
            opts.deadline,
            true,
        ))
    });
    // Polled when every target's collection can be (a cluster run whose
    // targets are all in the cluster).
    let every = plan.targets.iter().map(|t| collector.polled_on(t));
    let gather = match every.reduce(|a, b| a.and(b)) {
        Some(Some(runtime)) => slots::Gather::Polled {
            runtime,
            gather: &polled,
        },
        _ => slots::Gather::Blocking(&blocking),
    };
    let targets = slots::scan_all(plan, &spec.limits, opts, gather, &judged, spool.as_ref())?;
    Ok(Scanned {
        policy: policy.value.metadata.name.clone(),
        started,
        targets,
        origin: Origin {
            scanner_images: collector.scanner_images(),
            ..Origin::of_plan(plan, opts, threshold)
        },
    })
}

/// Write a target's HDF result; a failed write is recorded (the target's
/// error says so), never lost silently.
fn write_result(output: &dyn RunOutput, target: &str, bytes: &[u8]) -> (Written, Option<String>) {
    let name = crate::seal::layout::target_result(target);
    match output.write(&name, bytes) {
        Ok(w) => (w, None),
        Err(e) => (
            Written {
                name: name.clone(),
                sha256: String::new(),
                size: 0,
            },
            Some(format!("cannot write {name}: {e}")),
        ),
    }
}

/// The threshold a run judges by: `--threshold`, else the policy's (a
/// policy's threshold that does not parse stops the run before any scan).
fn threshold_for(
    opts: &RunOptions,
    spec: &crate::policy::model::PolicySpec,
) -> Result<Option<Threshold>, RunError> {
    match &opts.threshold {
        Some(t) => Ok(Some(t.clone())),
        None => Threshold::of_policy(spec).map_err(RunError::Threshold),
    }
}

/// Where a run keeps its finished targets' findings: a spool file beside
/// the run's directory, unless `--report` formats keep every control in
/// memory anyway (`keep_controls`) or the file cannot be made (then in
/// memory, as before).
fn findings_spool(opts: &RunOptions, output: &dyn RunOutput) -> Option<Arc<Spool>> {
    if opts.keep_controls {
        return None;
    }
    let dir = output.location().parent()?;
    Spool::create(dir)
        .inspect_err(|e| {
            tracing::debug!(
                "findings held in memory: no spool file in {}: {e}",
                dir.display()
            );
        })
        .ok()
}

/// Where a run's results came from: an import, a plan (and shard), and
/// the caller's labels.
pub struct Origin {
    /// Set for `vigil import`.
    pub imported: Option<Imported>,
    /// The plan scanned.
    pub plan: Option<PlanRef>,
    /// `--run-label`s.
    pub labels: BTreeMap<String, String>,
    /// The scanner images' signature checks.
    pub scanner_images: Vec<crate::report::run::ScannerImageCheck>,
    /// The matched containers the plan did not make targets, and why:
    /// what the run's coverage counts beside its targets.
    pub skipped: Vec<(String, crate::report::run::Gap)>,
    /// The threshold whose `coverage` rules judge the run.
    pub threshold: Option<Threshold>,
}

impl Origin {
    /// A run of `plan`, judged by `threshold`.
    fn of_plan(plan: &PolicyPlan, opts: &RunOptions, threshold: Option<Threshold>) -> Origin {
        Origin {
            imported: None,
            plan: Some(PlanRef::of(plan)),
            labels: opts.labels.clone(),
            scanner_images: Vec::new(),
            skipped: plan
                .skipped
                .iter()
                .map(|s| (s.id.clone(), s.code.into()))
                .collect(),
            threshold,
        }
    }
}

/// Sort the targets, derive the run's stats, completeness and verdict, and
/// write `summary.json` after syncing everything written before it.
pub fn finish(
    run_id: &str,
    policy: &str,
    started: DateTime<Utc>,
    mut targets: Vec<TargetSummary>,
    origin: Origin,
    output: &dyn RunOutput,
) -> Result<(RunSummary, Written), RunError> {
    targets.sort_by(|a, b| crate::report::findings::natural_cmp(&a.id, &b.id));
    let mut summary = RunSummary {
        run_id: run_id.to_string(),
        policy: policy.to_string(),
        vigil_version: env!("CARGO_PKG_VERSION"),
        started,
        ended: Utc::now(),
        targets,
        verdict: RunVerdict::Pass,
        complete: true,
        not_scanned: Vec::new(),
        stats: RunStats::default(),
        imported: origin.imported,
        plan: origin.plan,
        labels: origin.labels,
        scanner_images: origin.scanner_images,
        coverage: Default::default(),
        coverage_threshold: None,
    };
    summary.stats = RunStats::of(&summary.targets);
    summary.coverage = crate::report::run::Coverage::of(
        &summary.targets,
        origin.skipped.iter().map(|(id, gap)| (id.as_str(), *gap)),
    );
    summary.coverage_threshold = origin
        .threshold
        .as_ref()
        .and_then(|t| t.evaluate_coverage(summary.coverage.scanned, summary.coverage.expected));
    summary.not_scanned = summary
        .targets
        .iter()
        .filter(|t| t.failure == Some(FailureKind::NotScanned))
        .map(|t| t.id.clone())
        .collect();
    summary.complete = summary.not_scanned.is_empty();
    if summary.scanned_nothing() {
        tracing::error!(
            policy = %summary.policy,
            "{}: the run had no target to scan (no selector matched a running container), so it says nothing complies: its verdict is error",
            summary.policy
        );
    }
    summary.verdict = RunVerdict::judge(summary.has_errors(), summary.threshold_failed());
    output.sync().map_err(|source| RunError::Write {
        name: "results (sync)".into(),
        cause: source,
    })?;
    // Streamed: a big run's summary is never held whole as text.
    let written = output
        .write_from(crate::seal::bundle::SUMMARY_FILE, &mut |w| {
            crate::report::output::write_json_pretty(w, &summary)
        })
        .map_err(|source| RunError::Write {
            name: crate::seal::bundle::SUMMARY_FILE.into(),
            cause: source,
        })?;
    Ok((summary, written))
}

/// A target's facts as collected, before they are judged.
struct Gathering {
    scan_id: String,
    started: DateTime<Utc>,
    gathered: Result<Gathered, Failure>,
}

/// What a run judges every target by.
struct Judged<'a> {
    collector: &'a dyn Collector,
    profiles: &'a [PreparedProfile<'a>],
    req: &'a FactRequest,
    spec: &'a crate::policy::model::PolicySpec,
    threshold: Option<&'a Threshold>,
    run_id: &'a str,
}

/// Collect one target's facts (the part of a scan that loads the cluster)
/// on this thread, through [`Collector::collect`].
fn gather_target(
    t: &PlannedTarget,
    req: &FactRequest,
    collector: &dyn Collector,
    cancel: &AtomicBool,
    deadline: Option<std::time::Instant>,
) -> Gathering {
    use futures_util::FutureExt;
    gather_one(t, req, collector, cancel, deadline, false)
        .now_or_never()
        .expect("a collection through `collect` is over when first polled")
}

/// Collect one target's facts through [`Collector::collect_polled`] when
/// `polled`, else [`Collector::collect`] (which blocks when polled). A
/// collector's panic fails this target, never the run (and with it the
/// cleanup of the run's access); errors end up in results and summaries,
/// so their text is redacted.
async fn gather_one(
    t: &PlannedTarget,
    req: &FactRequest,
    collector: &dyn Collector,
    cancel: &AtomicBool,
    deadline: Option<std::time::Instant>,
    polled: bool,
) -> Gathering {
    use futures_util::FutureExt;
    let scan_id = uuid::Uuid::now_v7().to_string();
    let started = Utc::now();
    let gathered = match not_started(cancel, deadline) {
        Some(why) => Err(why),
        None => {
            let collecting = if polled {
                collector.collect_polled(t, req, &scan_id)
            } else {
                Box::pin(async { collector.collect(t, req, &scan_id) })
            };
            std::panic::AssertUnwindSafe(collecting)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panicked(panic)))
                .map_err(redacted)
        }
    };
    Gathering {
        scan_id,
        started,
        gathered,
    }
}

/// Why a target must not start: the run was stopped, or its deadline
/// passed.
fn not_started(cancel: &AtomicBool, deadline: Option<std::time::Instant>) -> Option<Failure> {
    let late = deadline.is_some_and(|d| std::time::Instant::now() >= d);
    (cancel.load(Ordering::Relaxed) || late).then(|| {
        Failure::not_scanned(if late {
            "the run deadline (runDeadline) passed before this target started"
        } else {
            "the run was interrupted (signal) before this target started"
        })
    })
}

/// Evaluate a target's facts, write its HDF and inventory, and summarize.
fn finish_target(
    t: &PlannedTarget,
    g: Gathering,
    judged: &Judged<'_>,
    output: &dyn RunOutput,
) -> TargetSummary {
    let Gathering {
        scan_id,
        started,
        gathered,
    } = g;
    let Judged {
        collector,
        profiles,
        req,
        spec,
        threshold,
        run_id,
    } = *judged;
    let (approach, attempts, failure) = match &gathered {
        Ok(g) => (g.approach, g.attempts, None),
        Err(f) => (t.approach, f.attempts, Some(f.kind)),
    };
    let evidence = collector.evidence(approach);
    // Another scanner's report, or why it could not produce one: judged
    // as it came, never through vigil's profiles.
    let facts = match gathered {
        Ok(Gathered {
            collected: Collected::Report(bytes),
            ..
        }) => return finish_report(t, &scan_id, Ok(bytes), judged, output),
        Err(f) if evidence == crate::policy::model::Evidence::External => {
            return finish_report(t, &scan_id, Err(f), judged, output);
        }
        Ok(Gathered {
            collected: Collected::Facts(f),
            ..
        }) => Ok(f),
        Err(f) => Err(f.message),
    };
    let ev = Evaluation {
        run_id,
        scan_id: &scan_id,
        target_id: &t.id,
        approach,
        profiles,
        waivers: &spec.waivers,
        now: Utc::now(),
        started,
        workload: t.workload.as_deref(),
        pod_security_version: spec.pod_security_version.as_deref(),
    };
    let report = evaluate_target(&ev, facts.as_ref().map_err(String::as_str));
    let counts = report.counts();
    let sc = StatusCounts::from(&counts);
    let hdf_bytes = hdf::to_vec(&report);
    // The findings are read back from the bytes written, with the code
    // that `vigil open` and `verify` read them with.
    let (findings, controls) = crate::report::import::read(&hdf_bytes)
        .map(|h| findings_of(&h))
        .unwrap_or_default();
    let (hdf_written, mut write_error) = write_result(output, &t.id, &hdf_bytes);
    // The inventory, for `vigil drift`: only what the facts showed.
    // A manifest has no filesystem, so no inventory: nothing for drift.
    let inventory = facts
        .as_ref()
        .ok()
        .filter(|_| approach != Approach::Manifest)
        .map(|f| {
            let bytes = serde_json::to_vec(&crate::report::inventory::Inventory::of(f, req))
                .expect("inventories serialize");
            let name = crate::seal::layout::target_inventory(&t.id);
            output
                .write(&name, &bytes)
                .map_err(|e| format!("cannot write {name}: {e}"))
        });
    let inventory = match inventory {
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            write_error = write_error.or(Some(e));
            None
        }
        None => None,
    };
    let failure = failure.or(write_error.as_ref().map(|_| FailureKind::Other));
    let error = facts.err().or(write_error);
    TargetSummary {
        id: t.id.clone(),
        scan_id,
        approach,
        evidence,
        attempts,
        status: if error.is_some() {
            TargetStatus::Error
        } else {
            TargetStatus::Scanned
        },
        error,
        failure,
        compliance: counts.compliance(),
        threshold: threshold.and_then(|th| th.evaluate(&counts)),
        counts: sc,
        hdf: hdf_written,
        duration: report.duration,
        image_digest: report
            .image
            .as_ref()
            .map(|i| i.1.clone())
            .or_else(|| t.image_digest.clone()),
        image: t.image.clone().or_else(|| t.image_source.clone()),
        inventory,
        findings: findings.into(),
        controls,
    }
}

pub use crate::seal::layout::output_dir;

/// Seal HDF documents produced elsewhere as one run: each file becomes a
/// target (its `platform.target_id`, else `imported/<file name>`), counted
/// with Heimdall's rules, judged by `threshold`, written as it came.
/// Returns an error naming the file when one is not HDF or two describe the
/// same target.
pub fn import(
    run_id: &str,
    policy: &str,
    files: &[(String, Vec<u8>)],
    threshold: Option<&Threshold>,
    imported: Imported,
    output: &dyn RunOutput,
) -> Result<(RunSummary, Written), ImportError> {
    let started = Utc::now();
    let mut targets: Vec<TargetSummary> = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        // Counted and listed as read: an import keeps the failing
        // controls, never every control (it writes no CI report).
        let (mut counts, mut failing) = (Counts::default(), Findings::default());
        let doc = crate::report::import::read_each(bytes, &mut |c| {
            counts.add_with_severity(&c.id, c.status, c.severity);
            failing.add(&c);
        })
        .map_err(|reason| ImportError::Invalid {
            file: name.clone(),
            reason: reason.to_string(),
        })?;
        let stem = std::path::Path::new(name)
            .file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".json").to_string())
            .unwrap_or_else(|| name.clone());
        let id = doc.target_id.unwrap_or_else(|| format!("imported/{stem}"));
        if !crate::report::fits_a_file_name(&id) {
            return Err(ImportError::Invalid {
                file: name.clone(),
                reason: format!(
                    "its target id ({} characters) cannot name a result file; give the report \
                     a shorter platform.target_id",
                    id.chars().count()
                ),
            });
        }
        if targets.iter().any(|t| t.id == id) {
            return Err(ImportError::Duplicate {
                file: name.clone(),
                id,
            });
        }
        let hdf_name = crate::seal::layout::target_result(&id);
        let hdf = output.write(&hdf_name, bytes).map_err(|source| {
            ImportError::Run(RunError::Write {
                name: hdf_name.clone(),
                cause: source,
            })
        })?;
        targets.push(TargetSummary {
            id,
            scan_id: uuid::Uuid::now_v7().to_string(),
            approach: Approach::Imported,
            evidence: crate::policy::model::Evidence::Imported,
            status: TargetStatus::Scanned,
            error: None,
            failure: None,
            counts: StatusCounts::from(&counts),
            compliance: counts.compliance(),
            threshold: threshold.and_then(|th| th.evaluate(&counts)),
            hdf,
            duration: 0.0,
            attempts: 0,
            image_digest: None,
            image: None,
            inventory: None,
            findings: failing.sorted().into(),
            controls: Vec::new(),
        });
    }
    finish(
        run_id,
        policy,
        started,
        targets,
        Origin {
            imported: Some(imported),
            plan: None,
            labels: BTreeMap::new(),
            scanner_images: Vec::new(),
            skipped: Vec::new(),
            threshold: threshold.cloned(),
        },
        output,
    )
    .map_err(ImportError::Run)
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file is not HDF.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// Two files describe the same target.
    #[error("{file}: describes target {id} again; import one report per target")]
    Duplicate {
        /// The second file.
        file: String,
        /// The target.
        id: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The policy's key, recipients or bundle, or the statement.
    #[error(transparent)]
    Sealing(pipeline::PipelineError),
    /// The policy's threshold does not parse.
    #[error(transparent)]
    Threshold(crate::policy::threshold::InvalidThreshold),
}

/// A collector's panic as its target's failure.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Failure {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    Failure::from(format!(
        "internal error while collecting (a bug in vigil, please report it): {why}"
    ))
}

/// A failure's message with anything secret-looking redacted.
fn redacted(f: Failure) -> Failure {
    Failure {
        message: crate::redact::redact(&f.message),
        ..f
    }
}

/// Finish a target another scanner reported on: its report bound to the
/// run, target and scan, counted with Heimdall's rules and judged by the
/// threshold like vigil's own results; when it produced none, an empty
/// report so the target has its file, and the reason as its error.
fn finish_report(
    t: &PlannedTarget,
    scan_id: &str,
    result: Result<Vec<u8>, Failure>,
    judged: &Judged<'_>,
    output: &dyn RunOutput,
) -> TargetSummary {
    let begun = std::time::Instant::now();
    let run_id = judged.run_id;
    let (report, error, attempts, failure) = match result.and_then(|bytes| {
        bind_report(&bytes, run_id, &t.id, scan_id)
            .map_err(|e| Failure::from(format!("the scanner's report: {e}")))
    }) {
        Ok(bytes) => (bytes, None, 1, None),
        Err(f) => (
            bind_report(br#"{"profiles": []}"#, run_id, &t.id, scan_id)
                .expect("an empty report binds"),
            Some(f.message),
            f.attempts,
            Some(f.kind),
        ),
    };
    let doc = crate::report::import::read(&report).expect("bound reports are HDF");
    let counts = doc.counts();
    let (hdf, write_error) = write_result(output, &t.id, &report);
    let failure = failure.or(write_error.as_ref().map(|_| FailureKind::Other));
    let error = error.or(write_error);
    let (findings, controls) = findings_of(&doc);
    TargetSummary {
        id: t.id.clone(),
        scan_id: scan_id.to_string(),
        approach: t.approach,
        evidence: crate::policy::model::Evidence::External,
        status: if error.is_some() {
            TargetStatus::Error
        } else {
            TargetStatus::Scanned
        },
        threshold: if error.is_some() {
            None
        } else {
            judged.threshold.and_then(|th| th.evaluate(&counts))
        },
        error,
        failure,
        counts: StatusCounts::from(&counts),
        compliance: counts.compliance(),
        image_digest: None,
        image: None,
        inventory: None,
        findings: findings.into(),
        controls,
        hdf,
        duration: begun.elapsed().as_secs_f64(),
        attempts,
    }
}

/// An HDF report with vigil's run, target and scan ids in its `platform`
/// block (what `vigil verify` checks), everything else as the scanner
/// wrote it.
fn bind_report(
    bytes: &[u8],
    run_id: &str,
    target_id: &str,
    scan_id: &str,
) -> Result<Vec<u8>, String> {
    crate::report::import::read(bytes).map_err(|e| e.to_string())?;
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if !doc["platform"].is_object() {
        doc["platform"] = serde_json::json!({"name": "unknown", "release": ""});
    }
    doc["platform"]["target_id"] = target_id.into();
    // The report is the external scanner's word about the target.
    doc["platform"]["evidence"] = crate::policy::model::Evidence::External.as_str().into();
    doc["platform"]["run_id"] = run_id.into();
    doc["platform"]["scan_id"] = scan_id.into();
    Ok(serde_json::to_vec(&doc).expect("JSON values serialize"))
}

/// Every distinct gatherer script of `plan`, each headed by the policy and
/// profiles it serves (`vigil render gatherer`).
pub fn gatherer_scripts(set: &PolicySet, plan: &crate::plan::Plan) -> String {
    let mut out = String::new();
    for p in &plan.policies {
        let Some(policy) = set
            .policies
            .iter()
            .find(|l| l.value.metadata.name == p.policy)
        else {
            continue;
        };
        for (profiles, (_, mut req)) in fact_requests(set, &policy.value.spec, p) {
            req.nonce = "NONCE".into();
            out.push_str(&format!(
                "# vigil policy {}, profiles {}\n",
                p.policy,
                profiles.join(", ")
            ));
            out.push_str(&crate::facts::shell::script(&req));
        }
    }
    out
}

#[cfg(test)]
mod tests;
