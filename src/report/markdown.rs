//! A markdown summary for `$GITHUB_STEP_SUMMARY` and merge-request
//! comments: a table per run, the failing controls per target, every
//! piece of untrusted text escaped.

use std::fmt::Write as _;

use super::findings::render;
use super::render::{Context, Render};
use super::view::ReportRun;

/// The markdown format.
pub(crate) struct Markdown;

impl Render for Markdown {
    fn render(&self, runs: &[ReportRun], _: &Context<'_>) -> String {
        markdown(runs)
    }
}

/// A markdown summary: the verdict, a table, and the failed and error
/// controls of every target that has them.
fn markdown(runs: &[ReportRun]) -> String {
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
            let crate::report::run::StatusCounts {
                passed,
                failed,
                skipped,
                no_impact,
                error,
            } = t.counts;
            let verdict = match t.threshold {
                crate::report::run::ThresholdOutcome::Fail => "**fail**",
                w => w.as_str(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {passed} | {failed} | {skipped} | {no_impact} | {error} | {}% | {verdict} |",
                cell(&t.id),
                t.approach.as_str(),
                t.evidence_name(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
