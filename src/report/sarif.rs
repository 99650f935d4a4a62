//! SARIF 2.1.0, as GitHub code scanning reads it.

use super::render::{Context, Locations, Render};
use super::summary::{ControlStatus, Severity};
use super::view::ReportRun;

/// The SARIF format.
pub(crate) struct Sarif;

impl Render for Sarif {
    fn render(&self, runs: &[ReportRun], ctx: &Context<'_>) -> String {
        sarif(runs, ctx.locations, ctx.policy_files)
    }
}

/// SARIF's `security-severity` (GitHub maps it to critical ≥ 9, high ≥ 7,
/// medium ≥ 4, low > 0).
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::None | Severity::Total => "0.0",
    }
}

/// SARIF 2.1.0: a rule per failed or error control (title, severity), a
/// result per failed or error control of each target, located at the
/// control's definition (else the policy's source), fingerprinted by target
/// and control so a code-scanning alert follows the same finding across
/// runs.
fn sarif(
    summaries: &[ReportRun],
    locations: &Locations,
    policy_files: &std::collections::BTreeMap<String, String>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut rules: Vec<serde_json::Value> = Vec::new();
    let mut rule_index: std::collections::BTreeMap<String, usize> = Default::default();
    let mut results = Vec::new();
    for s in summaries {
        for t in &s.targets {
            for f in &t.findings {
                let idx = *rule_index.entry(f.id.clone()).or_insert_with(|| {
                    rules.push(serde_json::json!({
                        "id": f.id,
                        "name": f.id,
                        "shortDescription": {"text": if f.title.is_empty() { f.id.clone() } else { f.title.clone() }},
                        "fullDescription": {"text": if f.title.is_empty() { f.id.clone() } else { f.title.clone() }},
                        "properties": {"security-severity": security_severity(f.severity), "tags": ["security", "compliance"]}
                    }));
                    rules.len() - 1
                });
                // A manifest's finding lands on the field that decided it;
                // others on the control's definition.
                let (uri, line, column) = match &f.location {
                    Some(l) => (l.file.clone(), l.line.max(1), l.column),
                    None => {
                        let (uri, line) = locations.get(&f.id).cloned().unwrap_or_else(|| {
                            (
                                policy_files
                                    .get(&s.policy)
                                    .cloned()
                                    .unwrap_or_else(|| "vigil-policy".into()),
                                1,
                            )
                        });
                        (uri, line, 0)
                    }
                };
                let region = if column > 0 {
                    serde_json::json!({"startLine": line, "startColumn": column})
                } else {
                    serde_json::json!({"startLine": line})
                };
                let level = match (f.status, f.severity) {
                    (ControlStatus::Error, _) | (_, Severity::Critical | Severity::High) => "error",
                    (_, Severity::Medium) => "warning",
                    _ => "note",
                };
                let fingerprint = crate::encoding::hex(&Sha256::digest(
                    format!("{}\0{}\0{}", s.policy, t.id, f.id).as_bytes(),
                ));
                results.push(serde_json::json!({
                    "ruleId": f.id,
                    "ruleIndex": idx,
                    "level": level,
                    "message": {"text": format!("{} {} on {}: {}", f.id, f.status, crate::safeio::printable(&t.id), f.message)},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": region
                    }}],
                    "partialFingerprints": {"vigilTargetControl/v1": fingerprint},
                    "properties": {"target": t.id, "policy": s.policy, "evidence": t.evidence_name()}
                }));
            }
        }
    }
    // A run that missed its coverage gate is a result too, on its policy.
    let coverage: Vec<serde_json::Value> = summaries
        .iter()
        .filter_map(|s| Some((s, s.coverage.as_ref()?)))
        .map(|(s, c)| {
            if s.coverage_passed == Some(false) {
                let text = super::text::coverage(c, None);
                let idx = *rule_index.entry("vigil/coverage".into()).or_insert_with(|| {
                    rules.push(serde_json::json!({
                        "id": "vigil/coverage",
                        "name": "coverage",
                        "shortDescription": {"text": "The run scanned less of its targets than its threshold's coverage gate requires"},
                        "fullDescription": {"text": "Targets the policy matched were not scanned (errors, unreachable containers); the coverage gate (coverage.min) failed."},
                        "properties": {"security-severity": "7.0", "tags": ["security", "compliance"]}
                    }));
                    rules.len() - 1
                });
                results.push(serde_json::json!({
                    "ruleId": "vigil/coverage",
                    "ruleIndex": idx,
                    "level": "error",
                    "message": {"text": format!("policy {}: {}", crate::safeio::printable(&s.policy), text.trim())},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": policy_files.get(&s.policy).cloned().unwrap_or_else(|| "vigil-policy".into())},
                        "region": {"startLine": 1}
                    }}],
                    "partialFingerprints": {"vigilTargetControl/v1": crate::encoding::hex(&Sha256::digest(format!("{}\0coverage", s.policy).as_bytes()))},
                    "properties": {"policy": s.policy}
                }));
            }
            serde_json::json!({"policy": s.policy, "coverage": c, "threshold": s.coverage_passed})
        })
        .collect();
    let log = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "vigil",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://vigil.dev",
                "rules": rules
            }},
            "results": results,
            "properties": {"vigil": {"coverage": coverage}}
        }]
    });
    serde_json::to_string_pretty(&log).expect("SARIF serializes") + "\n"
}
