//! What failed, where people look: the failed and error controls of a
//! target, read from its HDF document (vigil's own, an external scanner's
//! or an imported one) with the same Heimdall status rules that count it,
//! and rendered under the target's row by `vigil run` and `vigil open`.

use std::cmp::Ordering;

use serde::Serialize;

use super::import::{Control, Hdf};
use super::summary::ControlStatus;

/// A failed or error control, as the run summary lists it and the terminal
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Control id.
    pub id: String,
    /// `failed` or `error` (in [`all_controls`]: any control status).
    pub status: ControlStatus,
    /// Severity (`critical` … `none`): tagged, else from impact.
    pub severity: super::summary::Severity,
    /// The control's title.
    pub title: String,
    /// The first line of the message that says why (an escaped excerpt).
    pub message: String,
    /// Where a manifest field decided it: file, line, column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::facts::workload::Location>,
    /// Its NIST SP 800-53 controls (for OSCAL; not in the JSON summary).
    #[serde(skip)]
    pub nist: Vec<String>,
    /// Its waiver (for OSCAL; not in the JSON summary).
    #[serde(skip)]
    pub waiver: Option<super::import::ControlWaiver>,
    /// How its facts were obtained, when its document says (for OSCAL).
    #[serde(skip)]
    pub evidence: Option<crate::policy::model::Evidence>,
}

/// Most characters of a message kept in a finding.
const MAX_MESSAGE_CHARS: usize = 200;

/// Every control of an HDF document as a [`Finding`] (any status), in
/// document order: what CI report formats list, one test case each.
pub(crate) fn all_controls(hdf: &Hdf) -> Vec<Finding> {
    hdf.controls.iter().map(finding).collect()
}

/// Control id → its status (Heimdall's rules), for every control.
pub(crate) fn control_statuses(hdf: &Hdf) -> std::collections::BTreeMap<String, ControlStatus> {
    hdf.controls
        .iter()
        .map(|c| (c.id.to_string(), c.status))
        .collect()
}

fn finding(c: &Control) -> Finding {
    Finding {
        id: crate::safeio::excerpt(&c.id, 80),
        status: c.status,
        severity: c.severity,
        title: crate::safeio::excerpt(&c.title, 120),
        message: shorten(&crate::safeio::printable(&c.message), MAX_MESSAGE_CHARS),
        location: c.location.clone(),
        nist: c.nist.clone(),
        waiver: c.waiver.clone(),
        evidence: c.evidence,
    }
}

/// `text` in at most `max` characters (and an ellipsis per cut), keeping
/// what decided the result: a list of clauses (`none satisfied: A; B`)
/// keeps a share of every clause, and a clause too long for its share
/// keeps its start (what was checked) and its end (what was found, the
/// `got …`), cut in the middle.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    fn middle(s: &str, max: usize) -> String {
        let n = s.chars().count();
        if n <= max {
            return s.to_string();
        }
        let head = max / 2;
        let tail = max.saturating_sub(head + 1);
        let h: String = s.chars().take(head).collect();
        let t: String = s.chars().skip(n - tail).collect();
        format!("{h}…{t}")
    }
    if text.chars().count() <= max {
        return text.to_string();
    }
    let (prefix, body) = ["none satisfied: ", "but found: ", "satisfied: "]
        .iter()
        .find_map(|p| text.strip_prefix(p).map(|b| (*p, b)))
        .unwrap_or(("", text));
    let clauses: Vec<&str> = body.split("; ").collect();
    let budget = max.saturating_sub(prefix.len() + 2 * clauses.len().saturating_sub(1));
    let share = (budget / clauses.len()).max(24);
    let out = clauses
        .iter()
        .map(|c| middle(c, share))
        .collect::<Vec<_>>()
        .join("; ");
    // Too many clauses to give each a useful share: the whole, cut in the
    // middle, still ends with the last clause's finding.
    middle(&format!("{prefix}{out}"), max)
}

/// The failed and error controls of an HDF document: errors first, then by
/// severity (critical first), then by id in natural order.
pub(crate) fn findings(hdf: &Hdf) -> Vec<Finding> {
    let mut out = Findings::default();
    hdf.controls.iter().for_each(|c| out.add(c));
    out.sorted()
}

/// Findings gathered one control at a time (as [`super::import::read_each`]
/// gives them), so a caller keeps only the failing controls.
#[derive(Default)]
pub(crate) struct Findings(Vec<(f64, Finding)>);

impl Findings {
    /// Keep `c` if it failed or errored.
    pub(crate) fn add(&mut self, c: &Control) {
        if matches!(c.status, ControlStatus::Failed | ControlStatus::Error) {
            self.0.push((c.impact, finding(c)));
        }
    }

    /// Errors first, then by severity (critical first), then by id in
    /// natural order.
    pub(crate) fn sorted(self) -> Vec<Finding> {
        let mut out = self.0;
        out.sort_by(|(ia, a), (ib, b)| {
            (b.status == ControlStatus::Error)
                .cmp(&(a.status == ControlStatus::Error))
                .then(ib.partial_cmp(ia).unwrap_or(Ordering::Equal))
                .then_with(|| natural_cmp(&a.id, &b.id))
        });
        out.into_iter().map(|(_, f)| f).collect()
    }
}

/// The findings and every control of an HDF document.
pub(crate) fn findings_of(hdf: &Hdf) -> (Vec<Finding>, Vec<Finding>) {
    (findings(hdf), all_controls(hdf))
}

/// Which findings to print under a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Details {
    /// None.
    None,
    /// The failed and error controls of targets that fail their threshold
    /// or have errors.
    #[default]
    Failed,
    /// The failed and error controls of every target.
    All,
}

impl Details {
    /// Whether a target's findings are listed under it: one rule for `vigil
    /// run` and `vigil open`.
    pub(crate) fn shows(self, threshold_failed: bool, errors: usize) -> bool {
        match self {
            Details::None => false,
            Details::Failed => threshold_failed || errors > 0,
            Details::All => true,
        }
    }
}

/// The lines printed under a target's row: at most `limit` findings, then
/// "and N more". `show` says whether this target's findings are printed.
pub(crate) fn render(findings: &[Finding], limit: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for f in findings.iter().take(limit) {
        // The control on one line; why, under it (the message is the long
        // part: on its own line it reads whole, and wraps if it must).
        let _ = write!(out, "      {} {} ({})", f.id, f.status.as_str(), f.severity);
        if !f.title.is_empty() {
            let _ = write!(out, " {}", f.title);
        }
        out.push('\n');
        if !f.message.is_empty() {
            let _ = writeln!(out, "          {}", f.message);
        }
    }
    if findings.len() > limit {
        let _ = writeln!(out, "      and {} more", findings.len() - limit);
    }
    out
}

/// Compare strings with runs of digits compared as numbers, so `host2`
/// sorts before `host10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let ny = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|b| **b == b'0').count();
                let ty = dy.iter().skip_while(|b| **b == b'0').count();
                let ord = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: serde_json::Value) -> Hdf {
        crate::report::import::read(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["host10", "host2", "host1", "a", "host02x", "host2a"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a", "host1", "host2", "host2a", "host02x", "host10"]);
    }

    #[test]
    fn findings_are_the_failed_and_error_controls_in_order() {
        let hdf = json!({"profiles": [{"controls": [
            {"id": "C-10", "title": "ten", "impact": 0.5, "results": [{"status": "failed", "message": "got x\nsecond line"}]},
            {"id": "C-2", "title": "two", "impact": 0.5, "results": [{"status": "failed", "message": "got y"}]},
            {"id": "C-9", "title": "nine", "impact": 0.9, "results": [{"status": "passed"}, {"status": "failed", "message": "bad"}]},
            {"id": "E-1", "title": "err", "impact": 0.3, "results": [{"status": "error", "message": "walk stopped after 100000 entries"}]},
            {"id": "P-1", "title": "ok", "impact": 0.9, "results": [{"status": "passed"}]},
            {"id": "W-1", "title": "waived", "impact": 0.9, "waiver_data": {"skipped_due_to_waiver": true}, "results": [{"status": "failed"}]}
        ]}]});
        let f = findings(&read(hdf));
        let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["E-1", "C-9", "C-2", "C-10"]);
        assert_eq!(f[0].message, "walk stopped after 100000 entries");
        assert_eq!(f[1].severity, crate::report::summary::Severity::Critical);
        assert_eq!(f[3].message, "got x", "first line only");
        let text = render(&f, 2);
        assert!(
            text.contains(
                "      E-1 error (low) err\n          walk stopped after 100000 entries\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("      and 2 more\n"), "{text}");
    }

    /// A long message keeps what decided it: every clause's finding (its
    /// `got …`) survives the cut.
    #[test]
    fn shortened_messages_keep_every_clause_finding() {
        let clause = |i: usize| {
            format!(
                "Config /etc/ssh/sshd_config.d/{i}-hardening.conf PermitRootLogin is expected to be one of no, prohibit-password, got value-{i}"
            )
        };
        let text = format!(
            "none satisfied: {}; {}; {}",
            clause(1),
            clause(2),
            clause(3)
        );
        assert!(text.chars().count() > 300);
        let short = shorten(&text, MAX_MESSAGE_CHARS);
        assert!(short.chars().count() <= MAX_MESSAGE_CHARS, "{short}");
        assert!(short.starts_with("none satisfied: Config"), "{short}");
        for i in 1..=3 {
            assert!(short.contains(&format!("got value-{i}")), "{short}");
        }
        // One long clause: its start and its finding.
        let one = format!("{} and more words{}", clause(9), ", got the-finding");
        let long = format!("{}{}", "x".repeat(400), one);
        let short = shorten(&long, MAX_MESSAGE_CHARS);
        assert!(short.ends_with("got the-finding"), "{short}");
        assert_eq!(shorten("short", 200), "short");
    }

    #[test]
    fn hostile_text_is_escaped() {
        let hdf = json!({"profiles": [{"controls": [
            {"id": "X\u{1b}[2J", "title": "t\u{7}", "impact": 0.5, "results": [{"status": "failed", "message": "m\u{1b}]0;x"}]}
        ]}]});
        let text = render(&findings(&read(hdf)), 10);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
}

#[cfg(test)]
mod heimdall_tests {
    use super::*;
    use serde_json::json;

    fn read(v: serde_json::Value) -> Hdf {
        crate::report::import::read(v.to_string().as_bytes()).unwrap()
    }

    /// Heimdall's (inspecjs) rules: a backtrace makes a result an error;
    /// severityoverride, then severity, then impact.
    #[test]
    fn backtraces_and_severity_tags_count_as_heimdall_counts_them() {
        let hdf = json!({"profiles": [{"controls": [
            {"id": "B", "impact": 0.5, "results": [{"status": "passed", "backtrace": ["x.rb:1"]}]},
            {"id": "E", "impact": 0.5, "results": [{"status": "passed", "backtrace": []}]},
            {"id": "N", "impact": 0.5, "results": [{"status": "passed", "backtrace": null}]},
            {"id": "S", "impact": 0.5, "tags": {"severity": "High"}, "results": [{"status": "failed"}]},
            {"id": "O", "impact": 0.5, "tags": {"severity": "low", "severityoverride": "critical"}, "results": [{"status": "failed"}]},
            {"id": "U", "impact": 0.95, "tags": {"severity": "moderate"}, "results": [{"status": "failed"}]}
        ]}]});
        let hdf = read(hdf);
        let c = &hdf.controls;
        let st: Vec<ControlStatus> = c.iter().map(|c| c.status).collect();
        assert_eq!(
            &st[..3],
            [
                ControlStatus::Error,
                ControlStatus::Error,
                ControlStatus::Passed
            ]
        );
        let sev: Vec<&str> = c.iter().map(|c| c.severity.as_str()).collect();
        assert_eq!(&sev[3..], ["high", "critical", "critical"]);
        let counts = hdf.counts();
        assert_eq!(
            counts.count(ControlStatus::Failed, super::super::summary::Severity::High),
            1
        );
        assert_eq!(
            counts.count(
                ControlStatus::Failed,
                crate::report::summary::Severity::Critical
            ),
            2
        );
    }
}
