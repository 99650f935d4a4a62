//! SAF CLI thresholds: the file format `saf validate threshold` reads,
//! nested (`failed: {critical: {max: 0}}`) or flattened
//! (`failed.critical.max: 0`), or a mix of both.
//!
//! Keys: `compliance.{min,max}` and
//! `{passed,failed,skipped,no_impact,error}.{total,critical,high,medium,low}.{min,max,controls}`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Control statuses a threshold can count (SAF names).
pub const STATUSES: [&str; 5] = ["passed", "failed", "skipped", "no_impact", "error"];
/// Severity bands, plus `total`.
pub const SEVERITIES: [&str; 5] = ["total", "critical", "high", "medium", "low"];

/// One bound: `min`, `max` or an expected `controls` list.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// At least this many (or this percentage for compliance).
    Min(f64),
    /// At most this many.
    Max(f64),
    /// Exactly these control ids have this status and severity.
    Controls(Vec<String>),
    /// Exactly this many (SAF's legacy `passed.total: N` form).
    Exact(f64),
}

/// A parsed threshold: flattened key prefix (`failed.critical`,
/// `compliance`) to its bounds, sorted for stable output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Threshold {
    /// Key prefix → bounds.
    pub rules: BTreeMap<String, Vec<Bound>>,
}

/// A key or value that is not SAF threshold syntax, with the JSON pointer
/// (relative to the threshold object) where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdError {
    /// Pointer suffix, e.g. `/failed/critical/maxx`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl Threshold {
    /// Parse a threshold object; collects every problem.
    pub fn parse(value: &Value) -> Result<Threshold, Vec<ThresholdError>> {
        let mut flat = Vec::new();
        let mut errors = Vec::new();
        let Some(obj) = value.as_object() else {
            return Err(vec![ThresholdError {
                pointer: String::new(),
                message: "a threshold must be a mapping".into(),
            }]);
        };
        flatten(obj, &mut Vec::new(), &mut String::new(), &mut flat);
        let mut t = Threshold::default();
        // Per prefix: the largest min and the smallest max, with where each
        // stands, to refuse a range nothing can fall in.
        let mut ranges: BTreeMap<String, [Option<(f64, String)>; 2]> = BTreeMap::new();
        for (key, pointer, v) in flat {
            match classify(&key, v) {
                Ok((prefix, bound)) => {
                    let r = ranges.entry(prefix.clone()).or_default();
                    match bound {
                        Bound::Min(n) if r[0].as_ref().is_none_or(|(m, _)| n > *m) => {
                            r[0] = Some((n, pointer))
                        }
                        Bound::Max(n) if r[1].as_ref().is_none_or(|(m, _)| n < *m) => {
                            r[1] = Some((n, pointer))
                        }
                        _ => {}
                    }
                    t.rules.entry(prefix).or_default().push(bound)
                }
                Err(message) => errors.push(ThresholdError { pointer, message }),
            }
        }
        for (prefix, r) in ranges {
            if let [Some((min, pointer)), Some((max, _))] = r
                && min > max
            {
                errors.push(ThresholdError {
                    pointer,
                    message: format!(
                        "`{prefix}.min` {min} is greater than `{prefix}.max` {max}: no result can \
                         meet this threshold; swap or correct the bounds"
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }
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

impl Threshold {
    /// Evaluate every rule against a target's counts (SAF semantics: `min`
    /// and `max` are inclusive; `controls` must match the set of control ids
    /// exactly; an empty `controls` list is ignored).
    pub fn evaluate(&self, counts: &crate::report::summary::Counts) -> Verdict {
        let mut checks = Vec::new();
        for (prefix, bounds) in &self.rules {
            let (actual, unit) = if prefix == "compliance" {
                (f64::from(counts.compliance()), "%")
            } else {
                let (status, sev) = prefix.split_once('.').unwrap_or((prefix, "total"));
                (counts.count(status, sev) as f64, "")
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
                    Bound::Controls(ids) if ids.is_empty() => continue,
                    Bound::Controls(ids) => {
                        let (status, sev) = prefix.split_once('.').unwrap_or((prefix, "total"));
                        let got = counts.ids(status, sev);
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
        Verdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }
}

fn flatten<'a>(
    obj: &'a serde_json::Map<String, Value>,
    path: &mut Vec<String>,
    pointer: &mut String,
    out: &mut Vec<(String, String, &'a Value)>,
) {
    for (k, v) in obj {
        let plen = pointer.len();
        pointer.push('/');
        pointer.push_str(&crate::policy::yaml::escape_segment(k));
        path.extend(k.split('.').map(str::to_string));
        let n = k.split('.').count();
        match v {
            Value::Object(inner) => flatten(inner, path, pointer, out),
            _ => out.push((path.join("."), pointer.clone(), v)),
        }
        path.truncate(path.len() - n);
        pointer.truncate(plen);
    }
}

fn classify(key: &str, v: &Value) -> Result<(String, Bound), String> {
    let parts: Vec<&str> = key.split('.').collect();
    let number = |what: &str| -> Result<f64, String> {
        v.as_f64()
            .filter(|n| *n >= 0.0)
            .ok_or_else(|| format!("`{key}` must be a non-negative number ({what})"))
    };
    match parts.as_slice() {
        ["compliance", "min"] | ["compliance", "max"] => {
            let n = number("a percentage")?;
            if n > 100.0 {
                return Err(format!("`{key}` is a percentage and must be at most 100"));
            }
            let b = if parts[1] == "min" {
                Bound::Min(n)
            } else {
                Bound::Max(n)
            };
            Ok(("compliance".into(), b))
        }
        [status, "total"] if STATUSES.contains(status) => {
            Ok((format!("{status}.total"), Bound::Exact(number("a count")?)))
        }
        [status, sev, bound] if STATUSES.contains(status) && SEVERITIES.contains(sev) => {
            let prefix = format!("{status}.{sev}");
            match *bound {
                "min" => Ok((prefix, Bound::Min(number("a count")?))),
                "max" => Ok((prefix, Bound::Max(number("a count")?))),
                "controls" => {
                    let ids = v
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|x| x.as_str().map(str::to_string))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| format!("`{key}` must be a list of control ids"))?;
                    Ok((prefix, Bound::Controls(ids)))
                }
                other => Err(format!(
                    "`{key}`: unknown bound `{other}`; use min, max or controls"
                )),
            }
        }
        _ => Err(format!(
            "`{key}` is not a SAF threshold key; use compliance.min/max or <status>.<severity>.<min|max|controls> with status one of {} and severity one of {}",
            STATUSES.join(", "),
            SEVERITIES.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flattened_mean_the_same() {
        let nested = Threshold::parse(
            &json!({"compliance": {"min": 90}, "failed": {"critical": {"max": 0}}}),
        )
        .unwrap();
        let flat =
            Threshold::parse(&json!({"compliance.min": 90, "failed.critical.max": 0})).unwrap();
        let mixed =
            Threshold::parse(&json!({"compliance": {"min": 90}, "failed": {"critical.max": 0}}))
                .unwrap();
        assert_eq!(nested, flat);
        assert_eq!(nested, mixed);
        assert_eq!(nested.rules["failed.critical"], vec![Bound::Max(0.0)]);
    }

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
        let eval = |t: serde_json::Value| Threshold::parse(&t).unwrap().evaluate(&c);
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
        assert!(
            Threshold::parse(&json!({"no_impact.none.max": 1})).is_err(),
            "none is not a SAF severity key"
        );
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
        assert!(
            eval(json!({"failed": {"total": {"controls": []}}})).passed,
            "empty list ignored"
        );
    }

    #[test]
    fn controls_lists_and_errors() {
        let t = Threshold::parse(&json!({"passed": {"total": {"controls": ["A", "B"]}}})).unwrap();
        assert_eq!(
            t.rules["passed.total"],
            vec![Bound::Controls(vec!["A".into(), "B".into()])]
        );
        let errs = Threshold::parse(&json!({
            "compliance": {"min": 120},
            "failed": {"severe": {"max": 0}, "high": {"maxx": 1}},
            "passed.total.min": -1
        }))
        .unwrap_err();
        let pointers: Vec<&str> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/compliance/min",
                "/failed/high/maxx",
                "/failed/severe/max",
                "/passed.total.min"
            ]
        );
    }
}
