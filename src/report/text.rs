//! A run summary as text for a terminal: one row per target (fitting 100
//! columns for ids up to 30 characters), and under it what needs reading —
//! the threshold checks that failed, why the target could not be scanned,
//! and its failed and error controls. Every piece of text that came from a
//! target or a report is escaped.

use std::fmt::Write as _;

use super::findings::{Details, render};
use crate::report::run::{RunSummary, ThresholdOutcome};
use crate::report::view::ReportTarget;
use crate::safeio::printable;

/// The summary table of one policy's run.
pub(crate) fn table(s: &RunSummary, unsigned: bool, details: Details, limit: usize) -> String {
    let mut out = String::new();
    write_table(&mut out, s, unsigned, details, limit).expect("writing to a String cannot fail");
    out
}

/// [`table`], written to `out` as it is made: a run of thousands of
/// targets is never held whole as text (its findings are read back from
/// the spool one target at a time).
pub(crate) fn write_table(
    out: &mut dyn std::fmt::Write,
    s: &RunSummary,
    unsigned: bool,
    details: Details,
    limit: usize,
) -> std::fmt::Result {
    if unsigned {
        writeln!(
            out,
            "!! UNSIGNED RUN: these results carry no signature and cannot be verified !!"
        )?;
    }
    writeln!(
        out,
        "policy {} run {} ({} targets)",
        printable(&s.policy),
        printable(&s.run_id),
        s.targets.len()
    )?;
    let w = s
        .targets
        .iter()
        .map(|t| printable(&t.id).chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "  {:<w$}  {:<8} {:>6} {:>6} {:>7} {:>4} {:>5} {:>10}  THRESHOLD",
        "TARGET", "APPROACH", "PASSED", "FAILED", "SKIPPED", "N/A", "ERROR", "COMPLIANCE"
    )?;
    for t in &s.targets {
        let c = &t.counts;
        let verdict = t.threshold_outcome();
        writeln!(
            out,
            "  {:<w$}  {:<8} {:>6} {:>6} {:>7} {:>4} {:>5} {:>9}%  {verdict}",
            printable(&t.id),
            t.approach.as_str(),
            c.passed,
            c.failed,
            c.skipped,
            c.no_impact,
            c.error,
            t.compliance,
        )?;
        if let Some(e) = &t.error {
            // One cause, said once: every control of the target is an
            // error for it, and listing each would repeat it.
            writeln!(out, "      error: {}", printable(e))?;
            writeln!(
                out,
                "      ({} controls not evaluated: the target could not be scanned)",
                c.error
            )?;
            continue;
        }
        let mut threshold_failed = false;
        if let Some(v) = t.threshold.as_ref().filter(|v| !v.passed) {
            threshold_failed = true;
            writeln!(out, "      threshold: {}", v.failed_details())?;
        }
        if details.shows(threshold_failed, c.error) {
            match t.findings.get() {
                Ok(f) => out.write_str(&render(&f, limit))?,
                Err(e) => {
                    writeln!(out, "      {e}")?;
                }
            }
        }
    }
    let approaches: Vec<String> = s
        .stats
        .approaches
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect();
    writeln!(
        out,
        "  {} targets ({}); {} retries, {} timeouts",
        s.targets.len(),
        approaches.join(", "),
        s.stats.retries,
        s.stats.timeouts
    )?;
    let gate = s
        .coverage_threshold
        .as_ref()
        .map(|v| (v.passed, v.failed_details()));
    out.write_str(&coverage(&s.coverage, gate))?;
    writeln!(out, "  verdict: {}\n", s.verdict)
}

/// One target of an opened bundle, in lines: its counts, compliance and
/// threshold, then why it could not be scanned, or its findings as
/// `details` asks.
pub(crate) fn opened_target(t: &ReportTarget, details: Details, limit: usize) -> String {
    let c = &t.counts;
    let mut out = format!(
        "  {}: {} passed, {} failed, {} skipped, {} n/a, {} error, compliance {}%{}\n",
        printable(&t.id),
        c.passed,
        c.failed,
        c.skipped,
        c.no_impact,
        c.error,
        t.compliance,
        match t.threshold {
            ThresholdOutcome::Pass => ", threshold pass",
            ThresholdOutcome::Fail => ", threshold FAIL",
            ThresholdOutcome::None | ThresholdOutcome::Error => "",
        }
    );
    if t.error.is_some() {
        // One cause for every control: said once, not per control.
        let _ = writeln!(
            out,
            "      the target could not be scanned: its {} controls are errors ({})",
            c.error,
            t.findings.first().map_or("no reason recorded", |f| f
                .message
                .trim_start_matches("the target could not be scanned: "))
        );
    } else if details.shows(t.threshold == ThresholdOutcome::Fail, c.error) {
        out.push_str(&render(&t.findings, limit));
    }
    out
}

/// The run's coverage, in lines under its table: how many of the targets
/// it was to scan it scanned, the coverage gate's outcome (held or not, and
/// what failed), then each reason a target was not scanned with how many
/// and the first ids, and what the policy's own settings left out.
pub(crate) fn coverage(c: &super::run::Coverage, gate: Option<(bool, String)>) -> String {
    let mut out = String::new();
    let gate = match gate {
        None => String::new(),
        Some((true, _)) => ", coverage threshold pass".into(),
        Some((false, why)) if why.is_empty() => ", coverage threshold FAIL".into(),
        Some((false, why)) => format!(", coverage threshold FAIL: {why}"),
    };
    let _ = writeln!(
        out,
        "  coverage: {} of {} targets scanned ({:.1}%){gate}",
        c.scanned,
        c.expected,
        c.percent()
    );
    for (label, groups) in c.groups() {
        if groups.is_empty() {
            continue;
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|g| {
                let shown: Vec<String> = g
                    .examples
                    .iter()
                    .take(3)
                    .map(|id| printable(id).into_owned())
                    .collect();
                let more = if g.count > shown.len() { ", …" } else { "" };
                format!(
                    "{} {} ({}{more})",
                    g.count,
                    g.reason.as_str(),
                    shown.join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "    {label}: {}", parts.join("; "));
    }
    out
}
