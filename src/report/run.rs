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

/// Per-status control counts of a target, as the summary and the signed
/// statement record them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The image as the target names it: a container's as its pod spec
    /// says, an image target's source (`registry:…`, `oci-dir:…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The inventory file written for it (`report::inventory`), when its
    /// facts were gathered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Written>,
    /// Its failed and error controls (errors first, then by severity):
    /// once the target is finished, in the run's spool file
    /// (`report::spool`) rather than in memory.
    #[serde(skip_serializing_if = "crate::report::spool::Findings::is_empty")]
    pub findings: crate::report::spool::Findings,
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
    /// How much of what the policy's targets matched was scanned, and why
    /// the rest was not.
    pub coverage: Coverage,
    /// The threshold's `coverage` rules over it, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_threshold: Option<Verdict>,
}

/// How much of what a run was to scan it scanned: the coverage gate
/// (`coverage.min` in a threshold) and the "not scanned, and why" lines of
/// every report. Large runs lose targets quietly (a container the sidecar
/// cannot read, a 403, a timeout); this counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Targets the run was to scan: every planned target, and every
    /// matched container the run loses for a reason ([`Gap::counts`]).
    pub expected: usize,
    /// Of those, scanned (status `scanned`).
    pub scanned: usize,
    /// Not scanned, per reason (most first), with the first ids of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapGroup>,
    /// Left out by the policy's own settings (not counted), per reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<GapGroup>,
}

/// How many targets share one reason for not being scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapGroup {
    /// The reason.
    pub reason: Gap,
    /// How many.
    pub count: usize,
    /// The first [`GAP_EXAMPLES`] of them, by id.
    pub examples: Vec<String>,
}

/// How many ids a [`GapGroup`] lists: the count is exact, the list is a
/// pointer for whoever investigates (the summary has every target).
pub(crate) const GAP_EXAMPLES: usize = 10;

/// Why a target the run was to scan was not scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gap {
    /// The API server refused the run's identity.
    Forbidden,
    /// Its scan ran out of `scanTimeout`.
    Timeout,
    /// No usable shell for the api approach.
    NoShell,
    /// Transient errors outlasted the retries.
    Transient,
    /// A signal or the run deadline came first.
    NotScanned,
    /// Any other error.
    Error,
    /// A Windows pod.
    Windows,
    /// Its pod runs, it does not.
    ContainerNotRunning,
    /// No approach the policy allows reaches it.
    NoApproach,
    /// An init container (policy's choice).
    InitContainer,
    /// An ephemeral container (policy's choice).
    EphemeralContainer,
    /// Its pod is not running (policy's choice).
    PodNotRunning,
}

impl Gap {
    /// The word in reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Gap::Forbidden => "forbidden",
            Gap::Timeout => "timeout",
            Gap::NoShell => "no-shell",
            Gap::Transient => "transient",
            Gap::NotScanned => "not-scanned",
            Gap::Error => "error",
            Gap::Windows => "windows",
            Gap::ContainerNotRunning => "container-not-running",
            Gap::NoApproach => "no-approach",
            Gap::InitContainer => "init-container",
            Gap::EphemeralContainer => "ephemeral-container",
            Gap::PodNotRunning => "pod-not-running",
        }
    }

    /// Whether it counts against coverage (false: the policy's own choice).
    pub(crate) fn counts(self) -> bool {
        !matches!(
            self,
            Gap::InitContainer | Gap::EphemeralContainer | Gap::PodNotRunning
        )
    }
}

impl From<crate::plan::SkipCode> for Gap {
    fn from(code: crate::plan::SkipCode) -> Gap {
        use crate::plan::SkipCode;
        match code {
            SkipCode::InitContainer => Gap::InitContainer,
            SkipCode::EphemeralContainer => Gap::EphemeralContainer,
            SkipCode::PodNotRunning => Gap::PodNotRunning,
            SkipCode::ContainerNotRunning => Gap::ContainerNotRunning,
            SkipCode::Windows => Gap::Windows,
            SkipCode::NoApproach => Gap::NoApproach,
        }
    }
}

impl From<Option<FailureKind>> for Gap {
    fn from(kind: Option<FailureKind>) -> Gap {
        match kind {
            Some(FailureKind::Forbidden) => Gap::Forbidden,
            Some(FailureKind::Timeout) => Gap::Timeout,
            Some(FailureKind::NoShell) => Gap::NoShell,
            Some(FailureKind::Transient) => Gap::Transient,
            Some(FailureKind::NotScanned) => Gap::NotScanned,
            Some(FailureKind::Other) | None => Gap::Error,
        }
    }
}

impl Coverage {
    /// The coverage of `targets`, with the matched containers the plan
    /// skipped (`skipped`: id and why).
    pub(crate) fn of<'a>(
        targets: &[TargetSummary],
        skipped: impl IntoIterator<Item = (&'a str, Gap)>,
    ) -> Coverage {
        let mut groups: BTreeMap<Gap, (usize, Vec<String>)> = BTreeMap::new();
        let mut note = |gap: Gap, id: &str| {
            let g = groups.entry(gap).or_default();
            g.0 += 1;
            if g.1.len() < GAP_EXAMPLES {
                g.1.push(id.to_string());
            }
        };
        let mut scanned = 0;
        for t in targets {
            match t.status {
                TargetStatus::Scanned => scanned += 1,
                TargetStatus::Error => note(Gap::from(t.failure), &t.id),
            }
        }
        let mut lost = 0;
        for (id, gap) in skipped {
            lost += usize::from(gap.counts());
            note(gap, id);
        }
        let mut cov = Coverage {
            expected: targets.len() + lost,
            scanned,
            ..Coverage::default()
        };
        for (reason, (count, mut examples)) in groups {
            examples.sort_by(|a, b| crate::report::findings::natural_cmp(a, b));
            let group = GapGroup {
                reason,
                count,
                examples,
            };
            if reason.counts() {
                cov.gaps.push(group);
            } else {
                cov.excluded.push(group);
            }
        }
        cov.gaps
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        cov.excluded
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        cov
    }

    /// Adds another part of the same run (a shard) to this one.
    pub(crate) fn add(&mut self, other: &Coverage) {
        self.expected += other.expected;
        self.scanned += other.scanned;
        for (mine, theirs) in [
            (&mut self.gaps, &other.gaps),
            (&mut self.excluded, &other.excluded),
        ] {
            for g in theirs {
                match mine.iter_mut().find(|m| m.reason == g.reason) {
                    Some(m) => {
                        m.count += g.count;
                        m.examples.extend(g.examples.iter().cloned());
                        m.examples
                            .sort_by(|a, b| crate::report::findings::natural_cmp(a, b));
                        m.examples.truncate(GAP_EXAMPLES);
                    }
                    None => mine.push(g.clone()),
                }
            }
            mine.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        }
    }

    /// The reasons, labelled as reports show them: what the run lost, then
    /// what the policy left out.
    pub(crate) fn groups(&self) -> [(&'static str, &[GapGroup]); 2] {
        [
            ("not scanned", &self.gaps),
            ("left out by the policy", &self.excluded),
        ]
    }

    /// Scanned as a share of expected, percent (0 when nothing was
    /// expected: a run of nothing covers nothing).
    pub(crate) fn percent(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.scanned as f64 * 100.0 / self.expected as f64
        }
    }
}

pub(crate) use crate::approach::ScannerImageCheck;

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

    /// Returns true if and only if some threshold failed: a target's, or
    /// the run's coverage gate.
    pub fn threshold_failed(&self) -> bool {
        self.coverage_threshold.as_ref().is_some_and(|v| !v.passed)
            || self
                .targets
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// The one rule every run's verdict follows (a scan, an import, a
    /// merge): an error, or a run of nothing, beats a failed threshold,
    /// which beats a pass.
    pub fn judge(errors: bool, threshold_failed: bool) -> RunVerdict {
        if errors {
            RunVerdict::Error
        } else if threshold_failed {
            RunVerdict::Fail
        } else {
            RunVerdict::Pass
        }
    }

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
