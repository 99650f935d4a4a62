//! The summary of a run: per-target outcomes, counts, stats and the plan
//! it followed. The runner produces it; `seal` signs it and `merge` and
//! `verify` read it back, none of them through the runner.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::plan::PolicyPlan;
use crate::policy::model::Approach;
use crate::report::output::Written;
use crate::report::summary::ControlStatus;
use crate::report::threshold::Verdict;

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
        let n = |st: ControlStatus| counts.count(st, crate::report::summary::Severity::Total);
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
    pub status: TargetStatus,
    /// Why it could not be scanned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure that was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
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
    /// The image digest: for image targets the one scanned, for containers
    /// the one their kubelet reports (`imageID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The inventory file written for it (`report::inventory`), when its
    /// facts were gathered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Written>,
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
    pub(crate) fn of(targets: &[TargetSummary]) -> RunStats {
        let mut st = RunStats::default();
        for t in targets {
            st.retries += t.attempts.saturating_sub(1);
            if t.failure == Some(FailureKind::Timeout) {
                st.timeouts += 1;
            }
            *st.approaches.entry(t.approach.as_str()).or_default() += 1;
        }
        st
    }
}

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
    pub verdict: RunVerdict,
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
    /// `--run-label`s (a pipeline id, for example).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The scanner images' signature checks, made before any scan used them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scanner_images: Vec<ScannerImageCheck>,
}

pub use crate::approach::ScannerImageCheck;

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
    pub(crate) fn of(plan: &PolicyPlan) -> PlanRef {
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
    /// Its threshold outcome: `error` (not scanned), `none` (no
    /// threshold), `pass` or `fail`.
    pub fn threshold_outcome(&self) -> ThresholdOutcome {
        match (&self.error, &self.threshold) {
            (Some(_), _) => ThresholdOutcome::Error,
            (None, None) => ThresholdOutcome::None,
            (None, Some(v)) if v.passed => ThresholdOutcome::Pass,
            (None, Some(_)) => ThresholdOutcome::Fail,
        }
    }
}

impl RunSummary {
    /// Returns true if and only if some target could not be scanned, or
    /// the run scanned nothing at all.
    pub fn has_errors(&self) -> bool {
        self.scanned_nothing() || self.targets.iter().any(|t| t.status == TargetStatus::Error)
    }

    /// Returns true if and only if the whole run had no target: a run of
    /// nothing says nothing complies, so its verdict is `error`. (One shard
    /// of a sharded plan may be empty while the plan is not: that shard
    /// is not a run of nothing, and the merged run counts the rest.)
    pub fn scanned_nothing(&self) -> bool {
        self.targets.is_empty() && self.plan.as_ref().is_none_or(|p| p.targets == 0)
    }

    /// Returns true if and only if some threshold failed.
    pub fn threshold_failed(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.threshold.as_ref().is_some_and(|v| !v.passed))
    }
}

/// Whether a target was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetStatus {
    /// Its controls were evaluated on gathered facts.
    Scanned,
    /// It could not be scanned at all (every control is `error`).
    Error,
}

impl TargetStatus {
    /// The word in summaries and statements.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Scanned => "scanned",
            TargetStatus::Error => "error",
        }
    }
}

/// One target's threshold outcome, as reports show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdOutcome {
    /// Its threshold was met.
    Pass,
    /// Its threshold was not met.
    Fail,
    /// The policy sets no threshold.
    None,
    /// It could not be scanned.
    Error,
}

impl ThresholdOutcome {
    /// The word reports show.
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdOutcome::Pass => "pass",
            ThresholdOutcome::Fail => "fail",
            ThresholdOutcome::None => "none",
            ThresholdOutcome::Error => "error",
        }
    }
}

impl std::fmt::Display for ThresholdOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's verdict: `error` when any target could not be scanned, else
/// `fail` when a threshold failed, else `pass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    /// Every target scanned, every threshold met.
    Pass,
    /// A threshold failed.
    Fail,
    /// A target could not be scanned.
    Error,
}

impl RunVerdict {
    /// The word in summaries and statements.
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
            RunVerdict::Error => "error",
        }
    }
}

pub use crate::approach::collector::FailureKind;

impl std::fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
