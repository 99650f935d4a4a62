//! JUnit XML: `<testsuites>`, a `<testsuite>` per target, a
//! `<testcase>` per control, and a `coverage` case per run.

use std::fmt::Write as _;

use super::findings::Finding;
use super::render::{Context, Render};
use super::summary::ControlStatus;
use super::view::ReportRun;

/// The JUnit XML format.
pub(crate) struct Junit;

impl Render for Junit {
    fn render(&self, runs: &[ReportRun], _: &Context<'_>) -> String {
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
}

/// One target's controls, as a report shows them.
#[derive(Debug, Clone)]
struct TargetControls<'a> {
    /// The policy the target belongs to.
    policy: &'a str,
    /// Target id.
    id: &'a str,
    /// Why it could not be scanned, if so.
    error: Option<&'a str>,
    /// Every control.
    controls: &'a [Finding],
}

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
fn junit(targets: &[TargetControls<'_>], runs: &[ReportRun]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::Severity;

    fn f(id: &str, status: &str, message: &str) -> Finding {
        Finding {
            location: None,
            id: id.into(),
            status: ControlStatus::from_name(status).unwrap(),
            severity: Severity::High,
            title: format!("title <{id}>"),
            message: message.into(),
            nist: Vec::new(),
            waiver: None,
            evidence: None,
        }
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
}
