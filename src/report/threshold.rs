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
        for (key, pointer, v) in flat {
            match classify(&key, v) {
                Ok((prefix, bound)) => t.rules.entry(prefix).or_default().push(bound),
                Err(message) => errors.push(ThresholdError { pointer, message }),
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
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
