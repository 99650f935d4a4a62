//! The one view of a run that every report format renders: built from a
//! run's summary (`vigil run`) or from a verified statement and its
//! decrypted results (`vigil open`).

use super::findings::Finding;
use super::run::{RunSummary, RunVerdict, StatusCounts, ThresholdOutcome};
use crate::policy::model::{Approach, Evidence};

/// A run as the reports show it: built from a run's summary (`vigil run`)
/// or from a bundle's signed statement and decrypted results (`vigil
/// open`), so both commands write the same reports.
#[derive(Debug, Clone)]
pub(crate) struct ReportRun {
    /// Policy name.
    pub policy: String,
    /// Run id.
    pub run_id: String,
    /// The run's verdict.
    pub verdict: RunVerdict,
    /// When it started and ended (RFC 3339).
    pub started: String,
    /// See `started`.
    pub ended: String,
    /// Its results were imported (another tool's word), not gathered.
    pub imported: bool,
    /// Its targets.
    pub targets: Vec<ReportTarget>,
    /// How much of what it was to scan it scanned (absent in bundles from
    /// before vigil counted it).
    pub coverage: Option<super::run::Coverage>,
    /// The coverage gate: held or not, absent without one.
    pub coverage_passed: Option<bool>,
}

/// One target of a [`ReportRun`].
#[derive(Debug, Clone)]
pub(crate) struct ReportTarget {
    /// Target id.
    pub id: String,
    /// Approach.
    pub approach: Approach,
    /// Evidence level; `None` only for bundles sealed before vigil
    /// recorded it.
    pub evidence: Option<Evidence>,
    /// The image digest scanned (images) or the kubelet reports (containers).
    pub image_digest: Option<String>,
    /// Its HDF document in the bundle: file name and plaintext sha256.
    pub hdf: (String, String),
    /// Its controls by status.
    pub counts: StatusCounts,
    /// Compliance, percent.
    pub compliance: u32,
    /// `pass`, `fail`, `none` or `error`.
    pub threshold: ThresholdOutcome,
    /// Why it could not be scanned, if so.
    pub error: Option<String>,
    /// Failed and error controls.
    pub findings: Vec<Finding>,
    /// Every control.
    pub controls: Vec<Finding>,
}

impl TryFrom<&RunSummary> for ReportRun {
    type Error = super::spool::SpoolError;

    /// The report model of a run; fails only when a target's findings
    /// cannot be read back from the run's spool.
    fn try_from(s: &RunSummary) -> Result<ReportRun, Self::Error> {
        Ok(ReportRun {
            policy: s.policy.clone(),
            run_id: s.run_id.clone(),
            verdict: s.verdict,
            started: s.started.to_rfc3339(),
            ended: s.ended.to_rfc3339(),
            imported: s.imported.is_some(),
            coverage: Some(s.coverage.clone()),
            coverage_passed: s.coverage_threshold.as_ref().map(|v| v.passed),
            targets: s
                .targets
                .iter()
                .map(|t| {
                    Ok(ReportTarget {
                        id: t.id.clone(),
                        approach: t.approach,
                        evidence: Some(t.evidence),
                        image_digest: t.image_digest.clone(),
                        hdf: (t.hdf.name.clone(), t.hdf.sha256.clone()),
                        counts: t.counts.clone(),
                        compliance: t.compliance,
                        threshold: t.threshold_outcome(),
                        error: t.error.clone(),
                        findings: t.findings.get()?.into_owned(),
                        controls: t.controls.clone(),
                    })
                })
                .collect::<Result<_, Self::Error>>()?,
        })
    }
}

impl ReportTarget {
    /// Its evidence level's name (`unrecorded` for bundles sealed before
    /// vigil recorded it).
    pub(crate) fn evidence_name(&self) -> &'static str {
        self.evidence.map_or("unrecorded", Evidence::as_str)
    }
}
