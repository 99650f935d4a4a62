//! Threshold verdicts: a parsed `policy::threshold::Threshold` evaluated
//! over one target's counts with SAF CLI semantics.

use crate::policy::threshold::{Bound, Threshold};

/// `failed.critical`, `passed` (= `passed.total`) as a status and severity;
/// `None` for names no count has (parsing already refused those).
fn typed_prefix(
    prefix: &str,
) -> Option<(
    crate::report::summary::ControlStatus,
    crate::report::summary::Severity,
)> {
    let (status, sev) = prefix.split_once('.').unwrap_or((prefix, "total"));
    Some((
        crate::report::summary::ControlStatus::from_name(status)?,
        crate::report::summary::Severity::from_name(sev)?,
    ))
}

/// One evaluated rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Check {
    /// `compliance.min`, `failed.critical.max`, `passed.total.controls`, …
    pub path: String,
    /// Whether it holds.
    pub passed: bool,
    /// What it found and wanted, e.g. `compliance 85% < min 90%`.
    pub detail: String,
}

/// The verdict of a threshold over one target's counts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// True if and only if every rule held.
    pub passed: bool,
    /// Every rule, in key order.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// What each rule that did not hold found, joined.
    pub(crate) fn failed_details(&self) -> String {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.as_str())
            .collect();
        failed.join("; ")
    }
}

impl Threshold {
    /// Evaluate every rule against a target's counts (SAF semantics: `min`
    /// and `max` are inclusive; `controls` must match the set of control ids
    /// exactly, so an empty list means "no such controls"). `None` when
    /// the threshold has no rule for a target (only `coverage`).
    pub fn evaluate(&self, counts: &crate::report::summary::Counts) -> Option<Verdict> {
        let mut checks = Vec::new();
        // `coverage` is the run's, not a target's: `evaluate_coverage`.
        for (prefix, bounds) in self.rules.iter().filter(|(p, _)| *p != "coverage") {
            let (actual, unit) = if prefix == "compliance" {
                (f64::from(counts.compliance()), "%")
            } else {
                let ids = typed_prefix(prefix).map_or(&[][..], |(st, sev)| counts.ids(st, sev));
                (ids.len() as f64, "")
            };
            for b in bounds {
                let (path, passed, detail) = match b {
                    Bound::Min(m) => (
                        format!("{prefix}.min"),
                        actual >= *m,
                        format!("{prefix} {actual}{unit}, min {m}{unit}"),
                    ),
                    Bound::Max(m) => (
                        format!("{prefix}.max"),
                        actual <= *m,
                        format!("{prefix} {actual}{unit}, max {m}{unit}"),
                    ),
                    Bound::Exact(m) => (
                        prefix.clone(),
                        actual == *m,
                        format!("{prefix} {actual}, expected exactly {m}"),
                    ),
                    Bound::Controls(ids) => {
                        let got =
                            typed_prefix(prefix).map_or(&[][..], |(st, sev)| counts.ids(st, sev));
                        let missing: Vec<&String> =
                            ids.iter().filter(|i| !got.contains(i)).collect();
                        let unexpected: Vec<&String> =
                            got.iter().filter(|i| !ids.contains(i)).collect();
                        let ok = missing.is_empty() && unexpected.is_empty();
                        (
                            format!("{prefix}.controls"),
                            ok,
                            format!(
                                "{prefix} controls: missing {missing:?}, unexpected {unexpected:?}"
                            ),
                        )
                    }
                };
                checks.push(Check {
                    path,
                    passed,
                    detail,
                });
            }
        }
        (!checks.is_empty()).then(|| Verdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        })
    }
}

impl Threshold {
    /// Evaluate the `coverage` rules over a run that scanned `scanned` of
    /// the `expected` targets (`report::run::Coverage`); `None` when the
    /// threshold has none. The bounds are inclusive and compared exactly
    /// (`scanned × 100 ≥ min × expected`), never on a rounded percentage;
    /// a run that expected nothing meets no `coverage.min` above 0.
    pub(crate) fn evaluate_coverage(&self, scanned: usize, expected: usize) -> Option<Verdict> {
        let bounds = self.rules.get("coverage")?;
        let percent = if expected == 0 {
            0.0
        } else {
            scanned as f64 * 100.0 / expected as f64
        };
        let shown = format!("coverage {percent:.1}% ({scanned} of {expected} targets scanned)");
        let (nothing, scanned, expected) = (expected == 0, scanned as f64 * 100.0, expected as f64);
        let checks: Vec<Check> = bounds
            .iter()
            .filter_map(|b| match b {
                Bound::Min(m) => Some(Check {
                    path: "coverage.min".into(),
                    passed: scanned >= m * expected && (!nothing || *m == 0.0),
                    detail: format!("{shown}, min {m}%"),
                }),
                Bound::Max(m) => Some(Check {
                    path: "coverage.max".into(),
                    passed: scanned <= m * expected,
                    detail: format!("{shown}, max {m}%"),
                }),
                // Parsing gives `coverage` only min and max.
                Bound::Exact(_) | Bound::Controls(_) => None,
            })
            .collect();
        Some(Verdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluation_per_key() {
        use crate::report::summary::{ControlStatus, Counts};
        let mut c = Counts::default();
        c.add("A", ControlStatus::Passed, 0.9);
        c.add("B", ControlStatus::Failed, 0.9);
        c.add("C", ControlStatus::Failed, 0.5);
        c.add("D", ControlStatus::Skipped, 0.3);
        c.add("E", ControlStatus::Error, 0.7);
        c.add("F", ControlStatus::NoImpact, 0.0);
        let eval = |t: serde_json::Value| Threshold::parse(&t).unwrap().evaluate(&c).unwrap();
        assert!(!eval(json!({"compliance.min": 21})).passed, "1 of 5 = 20%");
        assert!(eval(json!({"compliance": {"min": 20, "max": 20}})).passed);
        // A range nothing can meet is refused, in any spelling.
        for impossible in [
            json!({"compliance": {"min": 90, "max": 10}}),
            json!({"compliance.min": 50.5, "compliance.max": 50}),
            json!({"failed": {"critical": {"min": 3}}, "failed.critical.max": 1}),
        ] {
            let errs = Threshold::parse(&impossible).unwrap_err();
            assert_eq!(errs.len(), 1, "{impossible}");
            assert!(
                errs[0].message.contains("is greater than"),
                "{}",
                errs[0].message
            );
            assert!(errs[0].pointer.contains("min"), "{}", errs[0].pointer);
        }
        assert!(eval(json!({"failed.critical.max": 1, "failed.total.max": 2})).passed);
        assert!(!eval(json!({"failed.critical.max": 0})).passed);
        assert!(eval(json!({"failed.medium.min": 1, "skipped.low.min": 1})).passed);
        assert!(!eval(json!({"error.high.max": 0})).passed);
        assert!(eval(json!({"no_impact.total.min": 1})).passed);
        // SAF accepts severity `none` (impact < 0.1): so does vigil.
        assert!(eval(json!({"no_impact.none.max": 1})).passed);
        // An empty controls list means "none": 1 of 5 failed here.
        assert!(!eval(json!({"failed": {"total": {"controls": []}}})).passed);
        assert!(eval(json!({"no_impact": {"critical": {"controls": []}}})).passed);
        assert!(eval(json!({"no_impact": {"none": {"min": 0}}})).passed);
        assert!(
            eval(json!({"passed": {"total": 1}})).passed,
            "legacy exact total"
        );
        assert!(!eval(json!({"passed": {"total": 2}})).passed);
        assert!(
            eval(json!({"failed": {"total": {"controls": ["C", "B"]}}})).passed,
            "exact set, any order"
        );
        assert!(
            !eval(json!({"failed": {"total": {"controls": ["B"]}}})).passed,
            "C unexpected"
        );
    }

    /// `coverage` takes min and max as percentages, and nothing else; it
    /// never judges a target; a run that expected nothing meets no minimum.
    #[test]
    fn coverage_is_a_run_rule_with_exact_bounds() {
        for bad in [
            json!({"coverage.min": 101}),
            json!({"coverage": {"total": 3}}),
            json!({"coverage.controls": ["A"]}),
            json!({"coverage": 90}),
            json!({"coverage.min": -1}),
        ] {
            assert!(Threshold::parse(&bad).is_err(), "{bad}");
        }
        let t = Threshold::parse(&json!({"coverage": {"min": 95, "max": 100}})).unwrap();
        let counts = crate::report::summary::Counts::default();
        assert_eq!(t.evaluate(&counts), None, "no rule for a target");
        let held = |s, e| t.evaluate_coverage(s, e).unwrap().passed;
        assert!(held(19, 20), "95% exactly");
        assert!(!held(18, 19), "94.7%");
        assert!(held(1000, 1000));
        assert!(!held(0, 0), "nothing expected meets no minimum");
        let zero = Threshold::parse(&json!({"coverage.min": 0})).unwrap();
        assert!(zero.evaluate_coverage(0, 0).unwrap().passed);
        assert_eq!(Threshold::default().evaluate_coverage(1, 2), None);
        // SAF has no coverage: said where a gate moves between the two.
        let said = crate::policy::threshold::saf_differences(&json!({"coverage.min": 95}), 1);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].1.contains("no `coverage`"), "{said:?}");
    }
}
