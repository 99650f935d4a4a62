//! SAF CLI thresholds as configuration: the file format `saf validate threshold` reads,
//! nested (`failed: {critical: {max: 0}}`) or flattened
//! (`failed.critical.max: 0`), or a mix of both.
//!
//! Keys: `compliance.{min,max}`, vigil's own `coverage.{min,max}` (the
//! share of a run's targets scanned: `report::run::Coverage`) and
//! `{passed,failed,skipped,no_impact,error}.{total,critical,high,medium,low}.{min,max,controls}`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Control statuses a threshold can count (SAF names).
pub const STATUSES: [&str; 5] = ["passed", "failed", "skipped", "no_impact", "error"];
/// Severity bands, plus `total`.
/// `none` is impact below 0.1 (impact-0 controls count as `no_impact`),
/// which SAF CLI accepts too (`no_impact.none.max`).
pub const SEVERITIES: [&str; 6] = ["total", "critical", "high", "medium", "low", "none"];

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

/// A policy's `spec.threshold` that is not SAF threshold syntax: only a
/// policy that skipped lint gets here, and its run is refused rather than
/// judged without its gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.threshold{}: {}", first.pointer, first.message)]
pub struct InvalidThreshold {
    /// The first problem (lint lists them all).
    pub first: ThresholdError,
}

impl Threshold {
    /// A policy's own threshold (`spec.threshold`), if it has one. Lint
    /// checked it when the policy was loaded; one that does not parse is an
    /// error, never a run without its gate.
    pub fn of_policy(
        spec: &crate::policy::model::PolicySpec,
    ) -> Result<Option<Threshold>, InvalidThreshold> {
        spec.threshold
            .as_ref()
            .map(|t| {
                Threshold::parse(t).map_err(|mut errors| InvalidThreshold {
                    first: errors.swap_remove(0),
                })
            })
            .transpose()
    }

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

/// Where SAF CLI 1.5.3's `saf validate threshold` gives another verdict
/// than vigil for this threshold, each as (JSON pointer, what differs).
/// vigil keeps the plain meaning of every key; these say, for a gate moved
/// from SAF to vigil (or checked by both), where the verdicts can part.
/// `profiles` is how many profiles the results carry (SAF reads only the
/// first profile of an HDF file).
pub fn saf_differences(value: &Value, profiles: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(obj) = value.as_object() else {
        return out;
    };
    let mut flat = Vec::new();
    flatten(obj, &mut Vec::new(), &mut String::new(), &mut flat);
    let has_controls = flat.iter().any(|(k, _, _)| k.ends_with(".controls"));
    for (key, pointer, v) in &flat {
        if key == "compliance.max" && v.as_f64() == Some(0.0) {
            out.push((
                pointer.clone(),
                "SAF CLI ignores `compliance.max: 0` (0 is false there); vigil enforces it".into(),
            ));
        }
        if key.starts_with("coverage.") {
            out.push((
                pointer.clone(),
                "SAF CLI has no `coverage` (it sees one report, not a run's plan); vigil checks it over the run".into(),
            ));
        }
        if key.starts_with("no_impact.total") {
            out.push((
                pointer.clone(),
                "SAF CLI never checks `no_impact.total`; vigil does".into(),
            ));
        }
        if key.ends_with(".controls") && v.as_array().is_some_and(|a| a.is_empty()) {
            out.push((pointer.clone(), "SAF CLI always fails an empty `controls` list; vigil reads it as \"no controls with this status and severity\"".into()));
        }
        if has_controls && key == "compliance.min" && pointer.contains("compliance.min") {
            out.push((pointer.clone(), "SAF CLI skips a flat `compliance.min` when the threshold also has a `controls` list; vigil checks it".into()));
        }
    }
    // Flat `a.b.min` and `a.b.max` for the same `a.b`: SAF keeps only one.
    let flat_keys: Vec<&(String, String, &Value)> = flat
        .iter()
        .filter(|(k, p, _)| p.trim_start_matches('/') == crate::policy::yaml::escape_segment(k))
        .collect();
    for (key, pointer, _) in &flat_keys {
        if let Some(prefix) = key.strip_suffix(".max")
            && flat_keys
                .iter()
                .any(|(k, _, _)| k == &format!("{prefix}.min"))
        {
            out.push((pointer.clone(), format!("SAF CLI keeps only the last of the flat keys `{prefix}.min` and `{prefix}.max`; vigil checks both")));
        }
    }
    if profiles > 1 && !flat.is_empty() {
        out.push((String::new(), format!("SAF CLI evaluates a threshold over the first profile of an HDF file only; vigil over all {profiles} profiles of a target")));
    }
    out
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
        [share @ ("compliance" | "coverage"), bound @ ("min" | "max")] => {
            let n = number("a percentage")?;
            if n > 100.0 {
                return Err(format!("`{key}` is a percentage and must be at most 100"));
            }
            let b = if *bound == "min" {
                Bound::Min(n)
            } else {
                Bound::Max(n)
            };
            Ok(((*share).into(), b))
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
            "`{key}` is not a SAF threshold key; use compliance.min/max, coverage.min/max or <status>.<severity>.<min|max|controls> with status one of {} and severity one of {}",
            STATUSES.join(", "),
            SEVERITIES.join(", ")
        )),
    }
}

/// A threshold file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdFileError(String);

/// Read a SAF threshold file (YAML or JSON, at most 1 MiB): the threshold,
/// and a warning for each place the SAF CLI would read it differently.
pub fn read_file(path: &std::path::Path) -> Result<(Threshold, Vec<String>), ThresholdFileError> {
    const MAX_THRESHOLD_BYTES: u64 = 1024 * 1024;
    let text = crate::safeio::read_to_string(path, MAX_THRESHOLD_BYTES, "threshold file")
        .map_err(|e| ThresholdFileError(e.to_string()))?;
    let value: Value = serde_saphyr::from_str(&text).map_err(|e| {
        ThresholdFileError(format!(
            "threshold file {} is not YAML/JSON: {}",
            path.display(),
            e.without_snippet()
        ))
    })?;
    let shown = crate::safeio::printable(&path.display().to_string()).into_owned();
    let warnings = saf_differences(&value, 1)
        .into_iter()
        .map(|(pointer, why)| {
            if pointer.is_empty() {
                format!("threshold file {shown}: {why}")
            } else {
                format!("threshold file {shown} at {pointer}: {why}")
            }
        })
        .collect();
    let threshold = Threshold::parse(&value).map_err(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
        ThresholdFileError(format!(
            "threshold file {}: {}",
            path.display(),
            msgs.join("; ")
        ))
    })?;
    Ok((threshold, warnings))
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

#[cfg(test)]
mod saf_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_saf_quirk_is_named() {
        let d = saf_differences(
            &json!({
                "compliance.max": 0, "compliance.min": 50,
                "no_impact": {"total": {"max": 3}},
                "failed.high.min": 0, "failed.high.max": 2,
                "passed": {"critical": {"controls": []}}
            }),
            2,
        );
        let text: Vec<&str> = d.iter().map(|(_, m)| m.as_str()).collect();
        for want in [
            "compliance.max: 0",
            "no_impact.total",
            "empty `controls`",
            "flat `compliance.min`",
            "`failed.high.min` and `failed.high.max`",
            "first profile",
        ] {
            assert!(text.iter().any(|m| m.contains(want)), "{want}: {text:?}");
        }
        // Nested min and max of one key are fine for SAF.
        assert!(saf_differences(&json!({"failed": {"high": {"min": 0, "max": 2}}}), 1).is_empty());
    }
}
