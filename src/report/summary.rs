//! Control statuses and counts with Heimdall's and the SAF CLI's semantics,
//! so that vigil's summary and threshold verdicts agree with what
//! `saf view summary` and `saf validate threshold` say about the same HDF.
//!
//! Control status (inspecjs `compute_status`): any result `error` → error;
//! waived or impact 0 → not applicable (`no_impact`); no results → error;
//! any `failed` → failed; any `passed` → passed; otherwise (all skipped) →
//! not reviewed (`skipped`).
//!
//! Compliance (SAF `calculateCompliance`): `round(100 × passed / (passed +
//! failed + skipped + error))`, 0 when that total is 0. Skipped controls
//! therefore lower compliance, and not-applicable ones do not count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::{Status, TestResult};

/// A control's status, in SAF threshold names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlStatus {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
    /// Not reviewed: every result skipped.
    Skipped,
    /// Not applicable: impact 0 or waived.
    NoImpact,
    /// Profile error: a result errored, or there were no results.
    Error,
}

impl std::fmt::Display for ControlStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ControlStatus {
    /// SAF threshold name (`passed`, `failed`, `skipped`, `no_impact`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            ControlStatus::Passed => "passed",
            ControlStatus::Failed => "failed",
            ControlStatus::Skipped => "skipped",
            ControlStatus::NoImpact => "no_impact",
            ControlStatus::Error => "error",
        }
    }

    /// All statuses, in SAF's order.
    pub const ALL: [ControlStatus; 5] = [
        ControlStatus::Passed,
        ControlStatus::Failed,
        ControlStatus::Skipped,
        ControlStatus::NoImpact,
        ControlStatus::Error,
    ];

    /// The status a SAF name means.
    pub fn from_name(name: &str) -> Option<ControlStatus> {
        ControlStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Compute a control's status from its results.
pub(crate) fn control_status(results: &[TestResult], impact: f64, waived: bool) -> ControlStatus {
    if results.iter().any(|r| r.status == Status::Error) {
        ControlStatus::Error
    } else if waived || impact == 0.0 {
        ControlStatus::NoImpact
    } else if results.is_empty() {
        ControlStatus::Error
    } else if results.iter().any(|r| r.status == Status::Failed) {
        ControlStatus::Failed
    } else if results.iter().any(|r| r.status == Status::Passed) {
        ControlStatus::Passed
    } else {
        ControlStatus::Skipped
    }
}

/// A severity band, or `total` (every band), as SAF thresholds name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Every band.
    Total,
    /// Impact 0.9 and up.
    Critical,
    /// 0.7 and up.
    High,
    /// 0.4 and up.
    Medium,
    /// 0.1 and up.
    Low,
    /// Below 0.1.
    None,
}

impl Severity {
    /// The band of an impact (inspecjs).
    pub fn of_impact(impact: f64) -> Severity {
        if impact >= 0.9 {
            Severity::Critical
        } else if impact >= 0.7 {
            Severity::High
        } else if impact >= 0.4 {
            Severity::Medium
        } else if impact >= 0.1 {
            Severity::Low
        } else {
            Severity::None
        }
    }

    /// The SAF name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Total => "total",
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::None => "none",
        }
    }

    /// The band a control severity names (`critical` … `none`, any case,
    /// as Heimdall reads tags); `total` is no control's severity.
    pub(crate) fn of_control_tag(name: &str) -> Option<Severity> {
        Severity::from_name(&name.to_ascii_lowercase()).filter(|s| *s != Severity::Total)
    }

    /// The band a SAF name means.
    pub fn from_name(name: &str) -> Option<Severity> {
        [
            Severity::Total,
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::None,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Control counts of one target: (status, severity) → control ids, where
/// every control is also counted under [`Severity::Total`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// The control ids of each status and severity.
    pub controls: BTreeMap<(ControlStatus, Severity), Vec<String>>,
}

impl Counts {
    /// Add one control.
    pub fn add(&mut self, id: &str, status: ControlStatus, impact: f64) {
        self.add_with_severity(id, status, Severity::of_impact(impact));
    }

    /// Count a control whose severity is known (an HDF document's own
    /// `severityoverride` or `severity` tag, as Heimdall reads it).
    pub fn add_with_severity(&mut self, id: &str, status: ControlStatus, band: Severity) {
        for sev in [Severity::Total, band] {
            self.controls
                .entry((status, sev))
                .or_default()
                .push(id.to_string());
        }
    }

    /// Number of controls with `status` and `severity`.
    pub fn count(&self, status: ControlStatus, severity: Severity) -> usize {
        self.controls.get(&(status, severity)).map_or(0, Vec::len)
    }

    /// Control ids with `status` and `severity`.
    pub fn ids(&self, status: ControlStatus, severity: Severity) -> &[String] {
        self.controls
            .get(&(status, severity))
            .map_or(&[], Vec::as_slice)
    }

    /// SAF compliance, an integer percentage.
    pub fn compliance(&self) -> u32 {
        let total_of = |s| self.count(s, Severity::Total);
        let p = total_of(ControlStatus::Passed);
        let total = p
            + total_of(ControlStatus::Failed)
            + total_of(ControlStatus::Skipped)
            + total_of(ControlStatus::Error);
        if total == 0 {
            return 0;
        }
        // Math.round in JavaScript rounds halves up.
        ((100.0 * p as f64 / total as f64) + 0.5).floor() as u32
    }
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(status: Status) -> TestResult {
        TestResult {
            location: None,
            not_applicable: false,
            status,
            code_desc: String::new(),
            message: String::new(),
        }
    }

    #[test]
    fn status_precedence_matches_heimdall() {
        use Status::*;
        assert_eq!(
            control_status(&[r(Passed), r(Error)], 0.5, false),
            ControlStatus::Error
        );
        assert_eq!(
            control_status(&[r(Error)], 0.0, true),
            ControlStatus::Error,
            "error beats waiver"
        );
        assert_eq!(
            control_status(&[r(Failed)], 0.5, true),
            ControlStatus::NoImpact
        );
        assert_eq!(
            control_status(&[r(Failed)], 0.0, false),
            ControlStatus::NoImpact
        );
        assert_eq!(control_status(&[], 0.5, false), ControlStatus::Error);
        assert_eq!(
            control_status(&[r(Passed), r(Failed)], 0.5, false),
            ControlStatus::Failed
        );
        assert_eq!(
            control_status(&[r(Passed), r(Skipped)], 0.5, false),
            ControlStatus::Passed
        );
        assert_eq!(
            control_status(&[r(Skipped)], 0.5, false),
            ControlStatus::Skipped
        );
    }

    #[test]
    fn severities_and_compliance() {
        assert_eq!(
            [0.95, 0.7, 0.5, 0.1, 0.05].map(|i| Severity::of_impact(i).as_str()),
            ["critical", "high", "medium", "low", "none"]
        );
        let mut c = Counts::default();
        assert_eq!(c.compliance(), 0, "no controls");
        c.add("a", ControlStatus::Passed, 0.9);
        c.add("b", ControlStatus::Failed, 0.5);
        c.add("n", ControlStatus::NoImpact, 0.0);
        assert_eq!(c.compliance(), 50, "not applicable does not count");
        c.add("s", ControlStatus::Skipped, 0.5);
        assert_eq!(c.compliance(), 33, "skipped lowers compliance");
        let mut h = Counts::default();
        for i in 0..179 {
            h.add(&format!("p{i}"), ControlStatus::Passed, 0.5);
        }
        for i in 0..21 {
            h.add(&format!("f{i}"), ControlStatus::Failed, 0.5);
        }
        assert_eq!(h.compliance(), 90, "89.5 rounds up like Math.round");
        assert_eq!(h.count(ControlStatus::Failed, Severity::Medium), 21);
        assert_eq!(
            c.ids(ControlStatus::Passed, Severity::Critical),
            ["a".to_string()]
        );
    }
}
