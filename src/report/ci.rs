//! Results in the formats CI systems read: JUnit XML (one `<testsuites>`,
//! a suite per target, a test case per control) and a markdown summary for
//! `$GITHUB_STEP_SUMMARY` and merge-request comments.
//!
//! These are plaintext copies written only where the user asks
//! (`--report FORMAT=PATH`); the sealed bundle stays the record.

use crate::report::ControlStatus;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::findings::{Finding, render};

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// JUnit XML.
    Junit,
    /// Markdown.
    Markdown,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// OSCAL 1.1 assessment results (JSON).
    Oscal,
}

/// One `--report FORMAT=PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The format.
    pub format: Format,
    /// Where to write it.
    pub path: PathBuf,
}

impl std::str::FromStr for Request {
    type Err = String;

    fn from_str(s: &str) -> Result<Request, String> {
        let (format, path) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: use FORMAT=PATH, e.g. junit=results.xml"))?;
        let format = match format {
            "junit" => Format::Junit,
            "markdown" | "md" => Format::Markdown,
            "sarif" => Format::Sarif,
            "oscal" => Format::Oscal,
            other => {
                return Err(format!(
                    "unknown report format `{other}`; use junit, sarif, markdown or oscal"
                ));
            }
        };
        if path.is_empty() {
            return Err(format!("`{s}`: the path is empty"));
        }
        Ok(Request {
            format,
            path: PathBuf::from(path),
        })
    }
}

use super::view::ReportRun;

/// One target's controls, as a report shows them.
#[derive(Debug, Clone)]
pub(crate) struct TargetControls<'a> {
    /// The policy the target belongs to.
    pub policy: &'a str,
    /// Target id.
    pub id: &'a str,
    /// Why it could not be scanned, if so.
    pub error: Option<&'a str>,
    /// Every control.
    pub controls: &'a [Finding],
}

/// Text safe inside XML: the five entities escaped, and characters XML 1.0
/// cannot carry (other control characters) shown as `\u{..}`.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: `<testsuites>`, a `<testsuite>` per target (classname the
/// target), a `<testcase>` per control; failed controls carry `<failure>`,
/// error controls and unscanned targets `<error>`, skipped and
/// not-applicable ones `<skipped>`.
pub(crate) fn junit(targets: &[TargetControls<'_>], runs: &[ReportRun]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"vigil\">\n");
    // Per run, one `coverage` case: failed when the coverage gate failed,
    // its text saying what was not scanned and why.
    for r in runs {
        let Some(c) = &r.coverage else { continue };
        let suite = format!("{}/coverage", r.policy);
        let failed = r.coverage_passed == Some(false);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"1\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
            xml(&suite),
            u8::from(failed)
        );
        let text = super::text::coverage(c, None);
        let _ = writeln!(
            out,
            "    <testcase classname=\"{}\" name=\"coverage\">",
            xml(&suite)
        );
        if failed {
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"coverage\"/>",
                xml(text.lines().next().unwrap_or_default().trim())
            );
        }
        let _ = writeln!(
            out,
            "      <system-out>{}</system-out>\n    </testcase>\n  </testsuite>",
            xml(&text)
        );
    }
    for t in targets {
        let count = |s: ControlStatus| t.controls.iter().filter(|c| c.status == s).count();
        let (failures, mut errors) = (count(ControlStatus::Failed), count(ControlStatus::Error));
        let skipped = count(ControlStatus::Skipped) + count(ControlStatus::NoImpact);
        let mut tests = t.controls.len();
        if t.error.is_some() {
            errors += 1;
            tests += 1;
        }
        let suite = format!("{}/{}", t.policy, t.id);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
            xml(&suite)
        );
        if let Some(e) = t.error {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"scan\">\n      <error message=\"{}\"/>\n    </testcase>",
                xml(&suite),
                xml(e)
            );
        }
        for c in t.controls {
            let name = if c.title.is_empty() {
                c.id.clone()
            } else {
                format!("{} {}", c.id, c.title)
            };
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&suite),
                xml(&name)
            );
            match c.status {
                ControlStatus::Failed => {
                    let _ = write!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"{}\"/>\n    </testcase>\n",
                        xml(&c.message),
                        c.severity
                    );
                }
                ControlStatus::Error => {
                    let _ = write!(
                        out,
                        ">\n      <error message=\"{}\" type=\"{}\"/>\n    </testcase>\n",
                        xml(&c.message),
                        c.severity
                    );
                }
                ControlStatus::Skipped | ControlStatus::NoImpact => {
                    let _ = write!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                        if c.status == ControlStatus::NoImpact {
                            "not applicable"
                        } else {
                            "not reviewed"
                        }
                    );
                }
                ControlStatus::Passed => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A markdown summary: the verdict, a table, and the failed and error
/// controls of every target that has them.
pub(crate) fn markdown(runs: &[ReportRun]) -> String {
    let cell = markdown_text;
    let mut out = String::new();
    for s in runs {
        let _ = writeln!(
            out,
            "## vigil: policy `{}` — verdict **{}**\n\nRun `{}`\n",
            cell(&s.policy),
            s.verdict,
            cell(&s.run_id)
        );
        if let Some(c) = &s.coverage {
            let gate = match s.coverage_passed {
                Some(true) => " (threshold pass)",
                Some(false) => " (threshold **fail**)",
                None => "",
            };
            let _ = writeln!(
                out,
                "Coverage: {} of {} targets scanned ({:.1}%){gate}\n",
                c.scanned,
                c.expected,
                c.percent()
            );
            for (label, groups) in c.groups() {
                for g in groups {
                    let ids: Vec<String> = g.examples.iter().take(5).map(|i| cell(i)).collect();
                    let _ = writeln!(
                        out,
                        "- {label}, {}: {} ({})",
                        g.reason.as_str(),
                        g.count,
                        ids.join(", ")
                    );
                }
            }
            if !c.gaps.is_empty() || !c.excluded.is_empty() {
                out.push('\n');
            }
        }
        out.push_str("| target | approach | evidence | passed | failed | skipped | n/a | error | compliance | threshold |\n");
        out.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
        for t in &s.targets {
            let [passed, failed, skipped, no_impact, error] = t.counts;
            let verdict = match t.threshold {
                crate::report::run::ThresholdOutcome::Fail => "**fail**",
                w => w.as_str(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {passed} | {failed} | {skipped} | {no_impact} | {error} | {}% | {verdict} |",
                cell(&t.id),
                t.approach,
                t.evidence,
                t.compliance
            );
        }
        for t in s
            .targets
            .iter()
            .filter(|t| !t.findings.is_empty() || t.error.is_some())
        {
            let _ = writeln!(out, "\n### {}\n", cell(&t.id));
            if let Some(e) = &t.error {
                let _ = writeln!(out, "could not be scanned: {}\n", cell(e));
            }
            if !t.findings.is_empty() {
                out.push_str(&markdown_fence(&render(&t.findings, 50)));
            }
        }
        out.push('\n');
    }
    out
}

/// Untrusted text (target ids, policy names, messages) as literal
/// markdown: control characters made visible, and every ASCII punctuation
/// character backslash-escaped (CommonMark allows it before any of them),
/// so nothing in it can open a link, an image, HTML, emphasis or a table
/// cell.
fn markdown_text(s: &str) -> String {
    let mut out = String::new();
    for c in crate::safeio::printable(s).chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fenced code block around untrusted text: the fence is longer than any
/// run of backticks inside, so the text cannot close it (CommonMark: a
/// closing fence is at least as long as the opening one).
fn markdown_fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("{fence}text\n{text}{newline}{fence}\n")
}

/// Where a control is defined: the profile file as given and the line of
/// its `id` (SARIF results point there).
pub(crate) type Locations = std::collections::BTreeMap<String, (String, u32)>;

/// The locations of every control of the loaded profiles.
pub(crate) fn locations(set: &crate::policy::PolicySet) -> Locations {
    let mut out = Locations::new();
    for p in &set.profiles {
        for (i, c) in p.value.controls.iter().enumerate() {
            let line = p
                .doc
                .value_position(&format!("/controls/{i}/id"))
                .line
                .max(1);
            out.entry(c.id.clone())
                .or_insert_with(|| (p.source.path.display().to_string(), line));
        }
    }
    out
}

/// SARIF's `security-severity` (GitHub maps it to critical ≥ 9, high ≥ 7,
/// medium ≥ 4, low > 0).
fn security_severity(severity: &str) -> &'static str {
    match severity {
        "critical" => "9.5",
        "high" => "8.0",
        "medium" => "5.5",
        "low" => "3.0",
        _ => "0.0",
    }
}

/// SARIF 2.1.0: a rule per failed or error control (title, severity), a
/// result per failed or error control of each target, located at the
/// control's definition (else the policy's source), fingerprinted by target
/// and control so a code-scanning alert follows the same finding across
/// runs.
pub(crate) fn sarif(
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
                    (ControlStatus::Error, _) | (_, "critical" | "high") => "error",
                    (_, "medium") => "warning",
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
                    "properties": {"target": t.id, "policy": s.policy, "evidence": t.evidence}
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

/// A report path refused before a run (the path is shown escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReportPathError {
    /// Reports never overwrite unless asked to.
    #[error(
        "report {0} already exists; reports never overwrite: choose another path, or pass --force to replace it"
    )]
    Exists(String),
    /// Its directory is missing.
    #[error("report {0}: its directory does not exist")]
    NoDirectory(String),
}

/// Refuse, before a run, report paths that exist (reports never overwrite)
/// or whose directory does not.
pub(crate) fn check_paths(requests: &[Request], force: bool) -> Result<(), ReportPathError> {
    for r in requests {
        let shown = crate::safeio::printable(&r.path.display().to_string()).into_owned();
        match std::fs::symlink_metadata(&r.path) {
            // --force replaces a regular file, and nothing else.
            Ok(m) if force && m.file_type().is_file() => {}
            Ok(_) => return Err(ReportPathError::Exists(shown)),
            Err(_) => {}
        }
        if let Some(dir) = r.path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(ReportPathError::NoDirectory(shown));
        }
    }
    Ok(())
}

/// Write every requested report for the run summaries (mode 0600: they are
/// plaintext results).
pub(crate) fn write(
    requests: &[Request],
    runs: &[ReportRun],
    locations: &Locations,
    policy_files: &std::collections::BTreeMap<String, String>,
    force: bool,
) -> std::io::Result<()> {
    for r in requests {
        let text = match r.format {
            Format::Junit => {
                let targets: Vec<TargetControls<'_>> = runs
                    .iter()
                    .flat_map(|s| {
                        s.targets.iter().map(|t| TargetControls {
                            policy: &s.policy,
                            id: &t.id,
                            error: t.error.as_deref(),
                            controls: &t.controls,
                        })
                    })
                    .collect();
                junit(&targets, runs)
            }
            Format::Markdown => markdown(runs),
            Format::Sarif => sarif(runs, locations, policy_files),
            Format::Oscal => super::oscal::assessment_results(runs),
        };
        crate::safeio::write_private(&r.path, text.as_bytes(), force).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot write report {}: {}",
                    r.path.display(),
                    crate::safeio::io_reason(&e)
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, status: &str, message: &str) -> Finding {
        Finding {
            location: None,
            id: id.into(),
            status: ControlStatus::from_name(status).unwrap(),
            severity: "high",
            title: format!("title <{id}>"),
            message: message.into(),
            nist: Vec::new(),
            waiver: None,
            evidence: None,
        }
    }

    #[test]
    fn markdown_keeps_hostile_text_literal() {
        let text = markdown_text("a|b ![x](http://e/) <img> `c` *d*\n");
        assert_eq!(
            text,
            "a\\|b \\!\\[x\\]\\(http\\:\\/\\/e\\/\\) \\<img\\> \\`c\\` \\*d\\*\\\\u\\{a\\}"
        );
        let fenced = markdown_fence("x\n```\n# out\n``````\n");
        let fence = "```````";
        assert!(fenced.starts_with(&format!("{fence}text\n")), "{fenced}");
        assert!(fenced.ends_with(&format!("\n{fence}\n")), "{fenced}");
        assert_eq!(markdown_fence("y"), "```text\ny\n```\n");
    }

    #[test]
    fn junit_counts_and_escapes() {
        let controls = [
            f("A", "passed", ""),
            f("B", "failed", "got \"x\" & <y>"),
            f("C", "error", "walk stopped"),
            f("D", "skipped", ""),
            f("E", "no_impact", ""),
        ];
        let xml = junit(
            &[TargetControls {
                policy: "p",
                id: "ns/pod\u{1b}/c",
                error: None,
                controls: &controls,
            }],
            &[],
        );
        assert!(
            xml.contains("tests=\"5\" failures=\"1\" errors=\"1\" skipped=\"2\""),
            "{xml}"
        );
        assert!(xml.contains("got &quot;x&quot; &amp; &lt;y&gt;"), "{xml}");
        assert!(xml.contains("name=\"B title &lt;B&gt;\""), "{xml}");
        assert!(!xml.contains('\u{1b}'), "{xml}");
    }

    #[test]
    fn report_requests_parse() {
        let r: Request = "junit=out/r.xml".parse().unwrap();
        assert_eq!(
            (r.format, r.path),
            (Format::Junit, PathBuf::from("out/r.xml"))
        );
        assert_eq!("sarif=x".parse::<Request>().unwrap().format, Format::Sarif);
        assert!("html=x".parse::<Request>().is_err());
        assert!("junit".parse::<Request>().is_err());
    }
}
