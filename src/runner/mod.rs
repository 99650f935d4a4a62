//! Running a plan: scan every target, bounded by the policy's concurrency,
//! evaluate, write one HDF per target and a run summary.
//!
//! # Guarantees
//!
//! - Every planned target ends with exactly one summary entry and one HDF
//!   file; a target that cannot be scanned is recorded as an error (its
//!   controls carry the reason), never dropped.
//! - One failing target never stops the others.
//! - `limits.concurrency` worker threads take targets through an
//!   [`admission::Admission`] that also holds `perNamespace` and `perNode`.

pub mod admission;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::facts::{FactRequest, compile::compile, rootfs};
use crate::plan::{PlannedTarget, PolicyPlan};
use crate::policy::model::{Approach, Profile, ScanPolicy};
use crate::policy::{Loaded, PolicySet};
use crate::report::findings::findings_of;
use crate::report::output::{RunOutput, Written};
use crate::report::summary::ControlStatus;
use crate::report::threshold::{Threshold, Verdict};
use crate::report::{Evaluation, PreparedProfile, evaluate_target, hdf, hdf_file_name};

/// Per-status control counts of a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct StatusCounts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub no_impact: usize,
    pub error: usize,
}

impl From<&crate::report::summary::Counts> for StatusCounts {
    fn from(counts: &crate::report::summary::Counts) -> StatusCounts {
        let n = |st: ControlStatus| counts.count(st.as_str(), "total");
        StatusCounts {
            passed: n(ControlStatus::Passed),
            failed: n(ControlStatus::Failed),
            skipped: n(ControlStatus::Skipped),
            no_impact: n(ControlStatus::NoImpact),
            error: n(ControlStatus::Error),
        }
    }
}

/// One target's line in the run summary.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// Target id.
    pub id: String,
    /// Scan id (UUIDv7).
    pub scan_id: String,
    /// Approach used.
    pub approach: Approach,
    /// How far its facts can be trusted: `local`, `probe`, `api`,
    /// `external` or `imported`.
    pub evidence: crate::policy::model::Evidence,
    /// `scanned`, or `error` when the target could not be scanned at all.
    pub status: &'static str,
    /// Why it could not be scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Control counts.
    pub counts: StatusCounts,
    /// SAF compliance, percent.
    pub compliance: u32,
    /// Threshold verdict, when the policy (or `--threshold`) has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Verdict>,
    /// The HDF file written for it.
    pub hdf: Written,
    /// Seconds the scan took.
    pub duration: f64,
    /// Attempts made (more than 1 after transient errors; 0 when never started).
    pub attempts: u32,
    /// Its failed and error controls (errors first, then by severity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<crate::report::findings::Finding>,
    /// Every control, for CI report formats (not in the JSON summary).
    #[serde(skip)]
    pub controls: Vec<crate::report::findings::Finding>,
}

/// What happened over a whole run, beyond the per-target results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    /// Attempts beyond the first, over every target.
    pub retries: u32,
    /// Targets that ended because a scan hit scanTimeout.
    pub timeouts: usize,
    /// Targets per approach actually used.
    pub approaches: BTreeMap<&'static str, usize>,
}

impl RunStats {
    fn of(targets: &[TargetSummary]) -> RunStats {
        let mut st = RunStats::default();
        for t in targets {
            st.retries += t.attempts.saturating_sub(1);
            if t.error.as_deref().is_some_and(|e| e.contains(TIMEOUT_MARK)) {
                st.timeouts += 1;
            }
            *st.approaches.entry(t.approach.as_str()).or_default() += 1;
        }
        st
    }
}

/// Errors of scans that ran out of time contain this.
pub const TIMEOUT_MARK: &str = "did not finish within scanTimeout";

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id (UUIDv7).
    pub run_id: String,
    /// Policy name.
    pub policy: String,
    /// vigil version.
    pub vigil_version: &'static str,
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub ended: DateTime<Utc>,
    /// Targets, sorted by id.
    pub targets: Vec<TargetSummary>,
    /// `pass` (every threshold held, no errors), `fail` (a threshold failed)
    /// or `error` (a target could not be scanned).
    pub verdict: &'static str,
    /// False when a signal stopped the run before every target was started.
    pub complete: bool,
    /// Targets not scanned because of that signal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<String>,
    /// Retries, timeouts, approaches.
    pub stats: RunStats,
    /// Set when the results were produced elsewhere and imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<Imported>,
    /// The plan this run scanned (all of it, or one shard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanRef>,
}

/// Which plan a run scanned: the digest of the whole plan's target ids, how
/// many targets it has, and the shard when the run covered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRef {
    /// `PolicyPlan::plan_sha256`.
    pub sha256: String,
    /// Targets in the whole plan.
    pub targets: usize,
    /// The shard scanned, when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::plan::shard::Shard>,
}

impl PlanRef {
    fn of(plan: &PolicyPlan) -> PlanRef {
        PlanRef {
            sha256: plan.plan_sha256.clone(),
            targets: plan.planned_targets,
            shard: plan.shard,
        }
    }
}

/// Results produced elsewhere (`vigil import`): who sealed them and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imported {
    /// Who imported them: the signing key's id (or `unsigned`), and the
    /// operator's own label when given.
    pub by: String,
    /// Where they came from (`--source`), e.g. a CI job URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The original file names.
    pub files: Vec<String>,
}

impl TargetSummary {
    /// One word for its threshold outcome: `error` (not scanned), `none`
    /// (no threshold), `pass` or `fail`.
    pub fn threshold_word(&self) -> &'static str {
        match (&self.error, &self.threshold) {
            (Some(_), _) => "error",
            (None, None) => "none",
            (None, Some(v)) if v.passed => "pass",
            (None, Some(_)) => "fail",
        }
    }
}

impl RunSummary {
    /// Returns true if and only if some target could not be scanned.
    pub fn has_errors(&self) -> bool {
        self.targets.iter().any(|t| t.status == "error")
    }

    /// Returns true if and only if some threshold failed.
    pub fn threshold_failed(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.threshold.as_ref().is_some_and(|v| !v.passed))
    }
}

/// How the error of a target skipped because of a signal starts.
pub const NOT_SCANNED: &str = "not scanned:";

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

/// What a collector gathered, and through which approach: for `auto`, the
/// one it settled on, which the results and the statement record.
#[derive(Debug)]
pub struct Gathered {
    /// The facts.
    pub facts: crate::facts::Facts,
    /// The approach that gathered them.
    pub approach: Approach,
    /// Attempts it took (1 unless transient errors were retried).
    pub attempts: u32,
}

/// Why a target could not be gathered, after how many attempts.
#[derive(Debug)]
pub struct Failure {
    /// A sentence for the result.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            attempts: 1,
        }
    }
}

/// Gathers the facts of one target, whatever the approach.
pub trait Collector: Sync {
    /// Collect `req` from `target` for scan `scan_id`; the error says why it
    /// could not.
    fn collect(
        &self,
        target: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
    ) -> Result<Gathered, Failure>;
}

/// Local root filesystems only; any other approach is an error result.
#[derive(Debug, Default)]
pub struct LocalCollector;

impl Collector for LocalCollector {
    fn collect(&self, t: &PlannedTarget, req: &FactRequest, _: &str) -> Result<Gathered, Failure> {
        match (&t.approach, &t.rootfs) {
            (Approach::Local, Some(root)) => rootfs::collect(root, req)
                .map(|facts| Gathered {
                    facts,
                    approach: Approach::Local,
                    attempts: 1,
                })
                .map_err(|e| {
                    Failure::from(format!(
                        "cannot open root {}: {}",
                        root.display(),
                        crate::safeio::io_reason(&e)
                    ))
                }),
            (approach, _) => Err(Failure::from(format!(
                "the {} approach needs a connection to the cluster, which this run does not have",
                approach.as_str()
            ))),
        }
    }
}

/// Settings that do not come from the policy.
pub struct RunOptions {
    /// Run id (UUIDv7).
    pub run_id: String,
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
}

/// Errors that stop a run before any target is scanned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The worker pool could not start.
    #[error("cannot start worker threads: {0}")]
    Pool(String),
    /// The summary could not be written.
    #[error("cannot write {name}: {source}")]
    Write {
        /// File.
        name: String,
        /// Cause.
        #[source]
        source: std::io::Error,
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
    let started = Utc::now();
    let spec = &policy.value.spec;
    let threshold = threshold_for(opts, spec);
    let requests = fact_requests(set, spec, plan);
    let targets = scan_all(plan, &spec.limits, opts, &|t: &PlannedTarget| {
        let (profiles, req) = &requests[&t.profiles];
        scan_target(
            t,
            profiles,
            req,
            &spec.waivers,
            threshold.as_ref(),
            &opts.run_id,
            output,
            collector,
            &opts.cancel,
            opts.deadline,
        )
    })?;
    finish(
        &opts.run_id,
        &policy.value.metadata.name,
        started,
        targets,
        None,
        Some(PlanRef::of(plan)),
        output,
    )
}

/// Write a target's HDF result; a failed write is recorded (the target's
/// error says so), never lost silently.
fn write_result(output: &dyn RunOutput, target: &str, bytes: &[u8]) -> (Written, Option<String>) {
    let name = format!("targets/{}", hdf_file_name(target).display());
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

/// The threshold a run judges by: `--threshold`, else the policy's
/// (validated at load time; a policy that got here parses).
fn threshold_for(opts: &RunOptions, spec: &crate::policy::model::PolicySpec) -> Option<Threshold> {
    match &opts.threshold {
        Some(t) => Some(t.clone()),
        None => spec
            .threshold
            .as_ref()
            .and_then(|t| Threshold::parse(t).ok()),
    }
}

/// Scan every target of `plan` with `scan` on `limits.concurrency` worker
/// threads, through an admission that holds the per-namespace and per-node
/// caps; report progress after each.
fn scan_all(
    plan: &PolicyPlan,
    limits: &crate::policy::model::Limits,
    opts: &RunOptions,
    scan: &(dyn Fn(&PlannedTarget) -> TargetSummary + Sync),
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
    let admission =
        admission::Admission::new(&plan.targets, &order, limits.per_namespace, limits.per_node);
    let taken = AtomicUsize::new(0);
    let total = plan.targets.len();
    let workers = (limits.concurrency.max(1) as usize).min(total.max(1));
    let results: Mutex<Vec<TargetSummary>> = Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|scope| -> Result<(), RunError> {
        for w in 0..workers {
            std::thread::Builder::new()
                .name(format!("vigil-scan-{w}"))
                .spawn_scoped(scope, || {
                    while let Some(i) = admission.next() {
                        taken.fetch_add(1, Ordering::Relaxed);
                        let t = &plan.targets[i];
                        let s = scan(t);
                        admission.done(i);
                        // Number and report under one lock: "[i/n]" lines
                        // then come in completion order, never [6/n]
                        // before [5/n].
                        let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
                        let n = results.len() + 1;
                        let in_flight = taken.load(Ordering::Relaxed).saturating_sub(n);
                        (opts.progress)(
                            &s,
                            Tally {
                                done: n,
                                in_flight,
                                total,
                            },
                        );
                        results.push(s);
                    }
                })
                .map_err(|e| RunError::Pool(e.to_string()))?;
        }
        Ok(())
    })?;
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Sort the targets, derive the run's stats, completeness and verdict, and
/// write `summary.json` after syncing everything written before it.
pub fn finish(
    run_id: &str,
    policy: &str,
    started: DateTime<Utc>,
    mut targets: Vec<TargetSummary>,
    imported: Option<Imported>,
    plan: Option<PlanRef>,
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
        verdict: "pass",
        complete: true,
        not_scanned: Vec::new(),
        stats: RunStats::default(),
        imported,
        plan,
    };
    summary.stats = RunStats::of(&summary.targets);
    summary.not_scanned = summary
        .targets
        .iter()
        .filter(|t| {
            t.error
                .as_deref()
                .is_some_and(|e| e.starts_with(NOT_SCANNED))
        })
        .map(|t| t.id.clone())
        .collect();
    summary.complete = summary.not_scanned.is_empty();
    summary.verdict = if summary.has_errors() {
        "error"
    } else if summary.threshold_failed() {
        "fail"
    } else {
        "pass"
    };
    let bytes = serde_json::to_vec_pretty(&summary).expect("summary serializes");
    output.sync().map_err(|source| RunError::Write {
        name: "results (sync)".into(),
        source,
    })?;
    let written = output
        .write(crate::seal::bundle::SUMMARY_FILE, &bytes)
        .map_err(|source| RunError::Write {
            name: crate::seal::bundle::SUMMARY_FILE.into(),
            source,
        })?;
    Ok((summary, written))
}

#[allow(clippy::too_many_arguments)]
fn scan_target(
    t: &PlannedTarget,
    profiles: &[PreparedProfile],
    req: &FactRequest,
    waivers: &[crate::policy::model::Waiver],
    threshold: Option<&Threshold>,
    run_id: &str,
    output: &dyn RunOutput,
    collector: &dyn Collector,
    cancel: &AtomicBool,
    deadline: Option<std::time::Instant>,
) -> TargetSummary {
    let scan_id = uuid::Uuid::now_v7().to_string();
    let started = Utc::now();
    let late = deadline.is_some_and(|d| std::time::Instant::now() >= d);
    let gathered = if cancel.load(Ordering::Relaxed) || late {
        Err(Failure {
            message: if late {
                format!(
                    "{NOT_SCANNED} the run deadline (runDeadline) passed before this target started"
                )
            } else {
                format!("{NOT_SCANNED} the run was interrupted (signal) before this target started")
            },
            attempts: 0,
        })
    } else {
        // Errors end up in results and summaries: never let a secret through.
        collector.collect(t, req, &scan_id).map_err(|f| Failure {
            message: crate::audit::redact::redact(&f.message),
            ..f
        })
    };
    let (approach, attempts) = match &gathered {
        Ok(g) => (g.approach, g.attempts),
        Err(f) => (t.approach, f.attempts),
    };
    let facts = gathered.map(|g| g.facts).map_err(|f| f.message);
    let ev = Evaluation {
        run_id,
        scan_id: &scan_id,
        target_id: &t.id,
        approach,
        profiles,
        waivers,
        now: Utc::now(),
        started,
    };
    let report = evaluate_target(&ev, facts.as_ref().map_err(String::as_str));
    let counts = report.counts();
    let sc = StatusCounts::from(&counts);
    let hdf_bytes = hdf::to_vec(&report);
    let (findings, controls) = crate::report::findings::findings_of(&hdf_bytes);
    let (hdf_written, write_error) = write_result(output, &t.id, &hdf_bytes);
    let error = facts.err().or(write_error);
    TargetSummary {
        id: t.id.clone(),
        scan_id,
        approach,
        evidence: approach.evidence(),
        attempts,
        status: if error.is_some() { "error" } else { "scanned" },
        error,
        compliance: counts.compliance(),
        threshold: threshold.map(|th| th.evaluate(&counts)),
        counts: sc,
        hdf: hdf_written,
        duration: report.duration,
        findings,
        controls,
    }
}

/// Where a policy's results go: `--out` if given, else the policy's `output.dir`.
pub fn output_dir(policy: &ScanPolicy, out: Option<&PathBuf>) -> PathBuf {
    out.cloned()
        .unwrap_or_else(|| PathBuf::from(&policy.spec.output.dir))
}

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
        let doc = crate::report::import::read(bytes).map_err(|reason| ImportError::Invalid {
            file: name.clone(),
            reason,
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
        let (findings, controls) = findings_of(bytes);
        let hdf_name = format!("targets/{}", hdf_file_name(&id).display());
        let hdf = output.write(&hdf_name, bytes).map_err(|source| {
            ImportError::Run(RunError::Write {
                name: hdf_name.clone(),
                source,
            })
        })?;
        targets.push(TargetSummary {
            id,
            scan_id: uuid::Uuid::now_v7().to_string(),
            approach: Approach::Imported,
            evidence: crate::policy::model::Evidence::Imported,
            status: "scanned",
            error: None,
            counts: StatusCounts::from(&doc.counts),
            compliance: doc.counts.compliance(),
            threshold: threshold.map(|th| th.evaluate(&doc.counts)),
            hdf,
            duration: 0.0,
            attempts: 0,
            findings,
            controls,
        });
    }
    finish(
        run_id,
        policy,
        started,
        targets,
        Some(imported),
        None,
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
}

/// An external scanner's work for one target and scan id: its HDF report.
pub type ExternalScan<'a> = dyn Fn(&PlannedTarget, &str) -> Result<Vec<u8>, Failure> + Sync + 'a;

/// Run an external scanner (`spec.scanner`) over every target of `plan`:
/// `scan` returns the HDF report it produced for a target, or why not.
/// Reports are counted with Heimdall's rules and judged by the threshold
/// like vigil's own results; each is bound to its run, target and scan in
/// its `platform` block.
pub fn run_external(
    policy: &Loaded<ScanPolicy>,
    plan: &PolicyPlan,
    opts: &RunOptions,
    output: &dyn RunOutput,
    scan: &ExternalScan<'_>,
) -> Result<(RunSummary, Written), RunError> {
    let started = Utc::now();
    let spec = &policy.value.spec;
    let threshold = threshold_for(opts, spec);
    let targets = scan_all(plan, &spec.limits, opts, &|t: &PlannedTarget| {
        let scan_id = uuid::Uuid::now_v7().to_string();
        let begun = std::time::Instant::now();
        let late = opts
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d);
        let result = if opts.cancel.load(Ordering::Relaxed) || late {
            Err(Failure {
                message: format!(
                    "{NOT_SCANNED} the run was interrupted or its deadline passed before this target started"
                ),
                attempts: 0,
            })
        } else {
            scan(t, &scan_id).map_err(|f| Failure {
                message: crate::audit::redact::redact(&f.message),
                ..f
            })
        };
        let (report, error, attempts) = match result.and_then(|bytes| {
            bind_report(&bytes, &opts.run_id, &t.id, &scan_id).map_err(Failure::from)
        }) {
            Ok(bytes) => (bytes, None, 1),
            Err(f) => (
                bind_report(br#"{"profiles": []}"#, &opts.run_id, &t.id, &scan_id)
                    .expect("an empty report binds"),
                Some(f.message),
                f.attempts,
            ),
        };
        let counts = crate::report::import::tally(
            &serde_json::from_slice(&report).expect("bound reports are JSON"),
        );
        let (hdf, write_error) = write_result(output, &t.id, &report);
        let error = error.or(write_error);
        let (findings, controls) = findings_of(&report);
        TargetSummary {
            id: t.id.clone(),
            scan_id,
            approach: t.approach,
            evidence: crate::policy::model::Evidence::External,
            status: if error.is_some() { "error" } else { "scanned" },
            threshold: if error.is_some() {
                None
            } else {
                threshold.as_ref().map(|th| th.evaluate(&counts))
            },
            error,
            counts: StatusCounts::from(&counts),
            compliance: counts.compliance(),
            findings,
            controls,
            hdf,
            duration: begun.elapsed().as_secs_f64(),
            attempts,
        }
    })?;
    finish(
        &opts.run_id,
        &policy.value.metadata.name,
        started,
        targets,
        None,
        Some(PlanRef::of(plan)),
        output,
    )
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
    crate::report::import::read(bytes)?;
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
