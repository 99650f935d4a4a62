//! OSCAL assessment results (NIST OSCAL 1.1, JSON): what assessors and
//! GRC tools read. One `result` per run; its targets are inventory items,
//! each control result on each target an observation (method `TEST`, the
//! target's HDF document as relevant evidence, by digest), and each
//! control that is not satisfied (failed, or not evaluable: error) a
//! finding whose target is the control's first NIST SP 800-53 tag (as an
//! OSCAL control id, `AC-6(1)` → `ac-6.1`) or else vigil's control id.
//! `docs/reports.md` has the mapping field by field.
//!
//! Every UUID is derived from the run id and the target and control it
//! stands for (SHA-256, written as a version-5 UUID), so converting the
//! same bundle twice gives the same document.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::ControlStatus;
use super::findings::Finding;
use super::view::{ReportRun, ReportTarget};

/// The namespace of vigil's own property names.
const NS: &str = "https://vigil.dev/ns/oscal";

/// The OSCAL model version written.
pub(crate) const OSCAL_VERSION: &str = "1.1.2";

/// The OSCAL assessment-results format.
pub(crate) struct Oscal;

impl super::render::Render for Oscal {
    fn render(&self, runs: &[ReportRun], _: &super::render::Context<'_>) -> String {
        assessment_results(runs)
    }
}

/// The assessment-results document for `runs`, pretty JSON.
pub(crate) fn assessment_results(runs: &[ReportRun]) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    let last = runs
        .iter()
        .map(|r| r.ended.as_str())
        .max()
        .unwrap_or("1970-01-01T00:00:00+00:00");
    let policies: Vec<&str> = runs.iter().map(|r| r.policy.as_str()).collect();
    let resources: Vec<Value> = runs.iter().map(policy_resource).collect();
    let plan = runs.first().map_or_else(
        || uuid(&["plan", &ids.join(",")]),
        |r| uuid(&["policy", &r.run_id, &r.policy]),
    );
    let doc = json!({
        "assessment-results": {
            "uuid": uuid(&["assessment-results", &ids.join(",")]),
            "metadata": {
                "title": line(&format!("vigil assessment results: {}", policies.join(", "))),
                "last-modified": last,
                "version": env!("CARGO_PKG_VERSION"),
                "oscal-version": OSCAL_VERSION,
            },
            // The plan the assessment followed is the policy and its
            // profiles, which the bundle's statement names by digest.
            "import-ap": {"href": format!("#{plan}")},
            "results": runs.iter().map(result).collect::<Vec<_>>(),
            "back-matter": {"resources": resources},
        }
    });
    let mut out = serde_json::to_string_pretty(&doc).expect("JSON values serialize");
    out.push('\n');
    out
}

/// The back-matter resource standing for a run's policy.
fn policy_resource(r: &ReportRun) -> Value {
    json!({
        "uuid": uuid(&["policy", &r.run_id, &r.policy]),
        "title": line(&format!("vigil ScanPolicy {}", r.policy)),
        "description": "The policy and the profiles of its controls, named by digest in the run's signed statement (statement.json); they are the plan this assessment followed.",
        "props": [prop("run-id", &r.run_id)],
    })
}

/// One run as one OSCAL result.
fn result(r: &ReportRun) -> Value {
    let mut observations = Vec::new();
    let mut findings = Vec::new();
    let items: Vec<Value> = r.targets.iter().map(|t| inventory_item(r, t)).collect();
    for t in &r.targets {
        let subject = uuid(&["target", &r.run_id, &t.id]);
        for (i, c) in t.controls.iter().enumerate() {
            let index = i.to_string();
            let key = ["", &r.run_id, &t.id, &c.id, &index];
            let observation = uuid(&[&["observation"], &key[1..]].concat());
            observations.push(observation_of(r, t, c, &observation, &subject));
            if matches!(c.status, ControlStatus::Failed | ControlStatus::Error) {
                let finding = uuid(&[&["finding"], &key[1..]].concat());
                findings.push(finding_of(t, c, &finding, &observation));
            }
        }
    }
    let mut props = vec![
        prop("verdict", r.verdict.as_str()),
        prop("policy", &r.policy),
    ];
    if r.imported {
        props.push(prop("evidence-source", "imported"));
    }
    if let Some(c) = &r.coverage {
        props.push(prop("coverage-expected", &c.expected.to_string()));
        props.push(prop("coverage-scanned", &c.scanned.to_string()));
        props.extend(c.gaps.iter().map(|g| {
            prop(
                &format!("not-scanned-{}", g.reason.as_str()),
                &g.count.to_string(),
            )
        }));
        if let Some(held) = r.coverage_passed {
            props.push(prop(
                "coverage-threshold",
                if held { "pass" } else { "fail" },
            ));
        }
    }
    let mut out = json!({
        "uuid": uuid(&["result", &r.run_id]),
        "title": line(&format!("Policy {}, run {}", r.policy, r.run_id)),
        "description": format!(
            "vigil scanned {} target(s) with the controls of policy {}; the run's verdict is {}.",
            r.targets.len(),
            line(&r.policy),
            r.verdict
        ),
        "start": r.started,
        "end": r.ended,
        "props": props,
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
    });
    if !items.is_empty() {
        out["local-definitions"] = json!({"inventory-items": items});
    }
    if !observations.is_empty() {
        out["observations"] = Value::Array(observations);
    }
    if !findings.is_empty() {
        out["findings"] = Value::Array(findings);
    }
    out
}

/// A target as an inventory item: its id, approach, evidence level and
/// image digest.
fn inventory_item(r: &ReportRun, t: &ReportTarget) -> Value {
    let mut props = vec![
        prop("target-id", &t.id),
        prop("approach", t.approach.as_str()),
        prop("evidence", t.evidence_name()),
    ];
    if let Some(d) = &t.image_digest {
        props.push(prop("image-digest", d));
    }
    let mut item = json!({
        "uuid": uuid(&["target", &r.run_id, &t.id]),
        "description": format!(
            "Target {} (approach {}, evidence {}).",
            line(&t.id),
            t.approach.as_str(),
            t.evidence_name()
        ),
        "props": props,
    });
    if let Some(e) = &t.error {
        item["remarks"] = Value::String(format!("It could not be scanned: {}", line(e)));
    }
    item
}

/// One control's result on one target.
fn observation_of(
    r: &ReportRun,
    t: &ReportTarget,
    c: &Finding,
    uuid: &str,
    subject: &str,
) -> Value {
    // A control's own level (a workload control on a live pod is `spec`),
    // except that imported results are the producer's word throughout.
    let evidence = match c.evidence {
        Some(e) if t.evidence != Some(crate::policy::model::Evidence::Imported) => e.as_str(),
        _ => t.evidence_name(),
    };
    let mut props = vec![
        prop("control-id", &c.id),
        prop("result", c.status.as_str()),
        prop("severity", c.severity.as_str()),
        prop("evidence", evidence),
    ];
    props.extend(c.nist.iter().map(|n| prop("nist-control", n)));
    let mut remarks = Vec::new();
    if let Some(w) = &c.waiver {
        props.push(prop("waived", if w.active { "true" } else { "expired" }));
        if !w.expires.trim().is_empty() {
            props.push(prop("waiver-expires", &w.expires));
        }
        remarks.push(format!("Waiver: {}", line(&w.justification)));
    }
    if !c.message.trim().is_empty() {
        remarks.push(line(&c.message));
    }
    let (file, sha256) = &t.hdf;
    let mut evidence = json!({
        "description": format!(
            "The results of control {} in the target's HDF document {} (sha256 {sha256}).",
            line(&c.id),
            line(file)
        ),
        "props": [prop("sha256", sha256)],
    });
    if is_uri_path(file) {
        evidence["href"] = Value::String(file.clone());
    }
    let mut out = json!({
        "uuid": uuid,
        "title": line(&format!("{} on {}", c.id, t.id)),
        "description": if c.title.trim().is_empty() { line(&c.id) } else { line(&c.title) },
        "props": props,
        "methods": ["TEST"],
        "subjects": [{"subject-uuid": subject, "type": "inventory-item"}],
        "relevant-evidence": [evidence],
        "collected": r.ended,
    });
    if !remarks.is_empty() {
        out["remarks"] = Value::String(remarks.join("\n\n"));
    }
    out
}

/// A control that is not satisfied on a target.
fn finding_of(t: &ReportTarget, c: &Finding, uuid: &str, observation: &str) -> Value {
    let target = c
        .nist
        .iter()
        .find_map(|n| oscal_control_id(n))
        .unwrap_or_else(|| token(&c.id));
    let reason = if c.status == ControlStatus::Failed {
        "fail"
    } else {
        "other"
    };
    let mut props = vec![prop("control-id", &c.id), prop("result", c.status.as_str())];
    props.extend(c.nist.iter().map(|n| prop("nist-control", n)));
    json!({
        "uuid": uuid,
        "title": line(&format!("{} not satisfied on {}", c.id, t.id)),
        "description": if c.message.trim().is_empty() {
            format!("Control {} {} on target {}.", line(&c.id), c.status.as_str(), line(&t.id))
        } else {
            line(&c.message)
        },
        "props": props,
        "target": {
            "type": "objective-id",
            "target-id": target,
            "status": {"state": "not-satisfied", "reason": reason},
        },
        "related-observations": [{"observation-uuid": observation}],
    })
}

/// A property in vigil's namespace. OSCAL property values are one line
/// without leading or trailing space; an empty value becomes `none`.
fn prop(name: &str, value: &str) -> Value {
    let value = line(value);
    json!({
        "name": name,
        "ns": NS,
        "value": if value.is_empty() { "none".to_string() } else { value },
    })
}

/// Text on one line (OSCAL `markup-line` and property values): control
/// characters become spaces, runs of spaces one, no space at either end.
fn line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An OSCAL token (`^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`) for an id: other
/// characters become `_`, and one that does not start with a letter gets
/// a leading `_`.
fn token(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
    {
        out.insert(0, '_');
    }
    out
}

/// A NIST SP 800-53 control as the OSCAL catalog names it: `AC-6` →
/// `ac-6`, `AC-6(1)` → `ac-6.1`, `AC-6 (1)` alike. Anything else: none.
fn oscal_control_id(tag: &str) -> Option<String> {
    let t: String = tag.chars().filter(|c| !c.is_whitespace()).collect();
    let (family, rest) = t.split_once('-')?;
    if family.len() != 2 || !family.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let (base, enhancement) = match rest.split_once('(') {
        Some((b, e)) => (b, Some(e.strip_suffix(')')?)),
        None => (rest, None),
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit());
    if !number(base) || !enhancement.is_none_or(number) {
        return None;
    }
    let mut id = format!(
        "{}-{}",
        family.to_ascii_lowercase(),
        base.trim_start_matches('0')
    );
    if let Some(e) = enhancement {
        id.push('.');
        id.push_str(e.trim_start_matches('0'));
    }
    Some(id)
}

/// A relative path that is a URI reference as written (no escaping needed).
fn is_uri_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

/// A version-5-shaped UUID from SHA-256 of the parts: stable for the same
/// bundle, different for any other run, target or control.
fn uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"vigil/oscal");
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = crate::encoding::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(id: &str, evidence: Option<crate::policy::model::Evidence>) -> Finding {
        Finding {
            id: id.into(),
            status: ControlStatus::Failed,
            severity: crate::report::summary::Severity::High,
            title: "t".into(),
            message: "m".into(),
            location: None,
            nist: vec!["AC-6(1)".into()],
            waiver: None,
            evidence,
        }
    }

    fn target(
        id: &str,
        evidence: crate::policy::model::Evidence,
        controls: Vec<Finding>,
    ) -> ReportTarget {
        ReportTarget {
            id: id.into(),
            approach: crate::policy::model::Approach::Debug,
            evidence: Some(evidence),
            image_digest: None,
            hdf: ("targets/x.hdf.json".into(), "00".repeat(32)),
            counts: crate::report::run::StatusCounts {
                failed: controls.len(),
                ..Default::default()
            },
            compliance: 0,
            threshold: crate::report::run::ThresholdOutcome::None,
            error: None,
            findings: controls.clone(),
            controls,
        }
    }

    /// A control's own evidence level is its observation's (a workload
    /// control on a live pod is `spec`), but an imported target's results
    /// are `imported` whatever a control's tag claims.
    #[test]
    fn observations_carry_each_controls_evidence_level() {
        use crate::policy::model::Evidence;
        let run = ReportRun {
            policy: "p".into(),
            run_id: "r".into(),
            verdict: crate::report::run::RunVerdict::Fail,
            started: "2026-12-07T00:00:00+00:00".into(),
            ended: "2026-12-07T00:01:00+00:00".into(),
            imported: false,
            coverage: None,
            coverage_passed: None,
            targets: vec![
                target(
                    "ns/pod/app",
                    Evidence::Probe,
                    vec![
                        control("FS-1", Some(Evidence::Probe)),
                        control("W-1", Some(Evidence::Spec)),
                    ],
                ),
                target(
                    "imported/x",
                    Evidence::Imported,
                    vec![control("I-1", Some(Evidence::Probe))],
                ),
            ],
        };
        let doc: Value = serde_json::from_str(&assessment_results(&[run])).unwrap();
        let r = &doc["assessment-results"]["results"][0];
        let evidence: Vec<(String, String)> = r["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let p = |name: &str| {
                    o["props"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|p| p["name"] == name)
                        .unwrap()["value"]
                        .as_str()
                        .unwrap()
                        .to_string()
                };
                (p("control-id"), p("evidence"))
            })
            .collect();
        assert_eq!(
            evidence,
            [
                ("FS-1".to_string(), "probe".to_string()),
                ("W-1".to_string(), "spec".to_string()),
                ("I-1".to_string(), "imported".to_string())
            ]
        );
        let findings = r["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 3);
        assert!(
            findings
                .iter()
                .all(|f| f["target"]["target-id"] == "ac-6.1")
        );
    }

    #[test]
    fn nist_tags_become_oscal_control_ids() {
        for (tag, want) in [
            ("AC-6", Some("ac-6")),
            ("AC-6(1)", Some("ac-6.1")),
            ("SI-7 (15)", Some("si-7.15")),
            ("cm-07", Some("cm-7")),
            ("Rev_4", None),
            ("AC-", None),
            ("AC-6(x)", None),
            ("ACX-1", None),
        ] {
            assert_eq!(oscal_control_id(tag).as_deref(), want, "{tag}");
        }
        assert_eq!(token("CB-01"), "CB-01");
        assert_eq!(token("1 bad/id"), "_1_bad_id");
    }

    #[test]
    fn uuids_are_stable_version_5_shaped_and_distinct() {
        let a = uuid(&["finding", "run", "t", "c", "0"]);
        assert_eq!(a, uuid(&["finding", "run", "t", "c", "0"]));
        assert_ne!(a, uuid(&["finding", "run", "t", "c", "1"]));
        // Parts are separated: ("ab", "c") is not ("a", "bc").
        assert_ne!(uuid(&["ab", "c"]), uuid(&["a", "bc"]));
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&a), "{a}");
        assert_eq!(line(" a\n\tb\u{1b}c  "), "a b c");
    }
}
