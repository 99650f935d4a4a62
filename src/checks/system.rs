//! `os:`, `config:`, `process:` and `command:` checks.

use super::version::{Constraint, Scheme};
use super::{Context, TestResult, list_some, principal_text};
use crate::facts::Facts;
use crate::facts::compile::OS_RELEASE;
use crate::facts::parse;
use crate::policy::model::{CommandCheck, ConfigCheck, ConfigFormat, OsCheck, ProcessCheck};

pub(super) fn os(c: &OsCheck, facts: &Facts) -> Vec<TestResult> {
    // The first os-release that exists is the evidence; one that exists
    // but cannot be read is an error, not "absent".
    let mut release = None;
    for p in OS_RELEASE {
        match facts.content_of(p) {
            Ok(Some(c)) => {
                release = Some(parse::os_release(&c.text()));
                break;
            }
            Ok(None) => {}
            Err(why) => {
                return vec![TestResult::error(
                    "OS release is expected to be readable".into(),
                    why.to_string(),
                )];
            }
        }
    }
    let e = &c.expect;
    let Some(rel) = release else {
        return vec![TestResult::check(
            false,
            "OS release is expected to be readable".into(),
            "no /etc/os-release or /usr/lib/os-release",
        )];
    };
    let id = rel.get("ID").cloned().unwrap_or_default();
    let like: Vec<String> = rel
        .get("ID_LIKE")
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    if !e.id.is_empty() {
        out.push(TestResult::check(
            e.id.contains(&id),
            format!("OS id is expected to be one of {}", e.id.join(", ")),
            id.clone(),
        ));
    }
    if !e.family.is_empty() {
        let ok = e.family.contains(&id) || like.iter().any(|l| e.family.contains(l));
        let got = if like.is_empty() {
            id.clone()
        } else {
            format!("{id} (like {})", like.join(" "))
        };
        out.push(TestResult::check(
            ok,
            format!("OS family is expected to be one of {}", e.family.join(", ")),
            got,
        ));
    }
    if let Some(text) = &e.version {
        let desc = format!("OS version is expected to be {text}");
        let got = rel.get("VERSION_ID").cloned().unwrap_or_default();
        match Constraint::parse(text) {
            Some(con) => out.push(TestResult::check(
                con.matches(Scheme::Dpkg, &got),
                desc,
                if got.is_empty() {
                    "no VERSION_ID".into()
                } else {
                    got
                },
            )),
            None => out.push(TestResult::error(desc, "the constraint cannot be parsed")),
        }
    }
    out
}

pub(super) fn config(c: &ConfigCheck, facts: &Facts) -> Vec<TestResult> {
    let subject = format!("Config {}", c.config);
    let content = match facts.content_of(&c.config) {
        Ok(c) => c,
        Err(why) => {
            return vec![TestResult::error(
                format!("{subject} is read"),
                why.to_string(),
            )];
        }
    };
    let Some(content) = content else {
        return vec![TestResult::check(
            false,
            format!("{subject} is expected to exist"),
            "no such file",
        )];
    };
    let values = parse::config(
        &content.text(),
        c.format == ConfigFormat::Equals,
        c.ignore_case,
    );
    let mut out = Vec::new();
    for (key, e) in &c.expect {
        let lookup = if c.ignore_case {
            key.to_ascii_lowercase()
        } else {
            key.clone()
        };
        let raw = values.get(&lookup);
        let value = raw.cloned().or_else(|| e.default.clone());
        let shown = match (raw, &value) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => format!("{d} (unset; the default)"),
            (None, None) => "unset".into(),
        };
        if let Some(absent) = e.absent {
            let desc = if absent {
                format!("{subject} {key} is expected to be unset")
            } else {
                format!("{subject} {key} is expected to be set")
            };
            out.push(TestResult::check(
                raw.is_none() == absent,
                desc,
                shown.clone(),
            ));
        }
        if let Some(want) = &e.equals {
            out.push(TestResult::check(
                value.as_deref() == Some(want.as_str()),
                format!("{subject} {key} is expected to be {want}"),
                shown.clone(),
            ));
        }
        if let Some(re) = &e.matches {
            let desc = format!("{subject} {key} is expected to match /{re}/");
            match super::regex(re) {
                Ok(r) => out.push(TestResult::check(
                    value.as_deref().is_some_and(|v| r.is_match(v)),
                    desc,
                    shown.clone(),
                )),
                Err(err) => out.push(TestResult::error(desc, err.to_string())),
            }
        }
        for (bound, is_min) in [(e.min, true), (e.max, false)] {
            let Some(bound) = bound else { continue };
            let desc = format!(
                "{subject} {key} is expected to be {} {bound}",
                if is_min { "at least" } else { "at most" }
            );
            let num = value.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
            let ok = num.is_some_and(|n| if is_min { n >= bound } else { n <= bound });
            out.push(TestResult::check(ok, desc, shown.clone()));
        }
    }
    out
}

pub(super) fn process(c: &ProcessCheck, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    let subject = format!("Processes matching /{}/", c.process);
    let Some(procs) = &facts.processes else {
        return vec![TestResult::skipped(
            format!("{subject} are inspected"),
            format!(
                "the {} approach cannot see processes; use debug or sidecar",
                ctx.approach.as_str()
            ),
        )];
    };
    let re = match super::regex(&c.process) {
        Ok(r) => r,
        Err(e) => {
            return vec![TestResult::error(
                format!("{subject} are inspected"),
                e.to_string(),
            )];
        }
    };
    let matching: Vec<_> = procs.iter().filter(|p| re.is_match(&p.cmdline)).collect();
    let names = ctx.names(facts);
    let e = &c.expect;
    let mut out = Vec::new();
    let shown: Vec<String> = matching
        .iter()
        .map(|p| format!("pid {} as {}", p.pid, names.show(p.uid, true)))
        .collect();
    if let Some(want) = e.running {
        let desc = if want {
            format!("{subject} are expected to be running")
        } else {
            format!("{subject} are expected not to be running")
        };
        out.push(TestResult::check(
            matching.is_empty() != want,
            desc,
            if shown.is_empty() {
                "none".into()
            } else {
                list_some(&shown, 5)
            },
        ));
    }
    for (u, not) in [(&e.user, ""), (&e.not_user, "not ")] {
        if let Some(u) = u
            && let Some(why) = names.unresolvable(u, true)
        {
            return vec![TestResult::error(
                format!(
                    "{subject} are expected {not}to run as {}",
                    principal_text(u)
                ),
                why,
            )];
        }
    }
    if let Some(u) = &e.user {
        let bad: Vec<String> = matching
            .iter()
            .filter(|p| !names.is(p.uid, u, true))
            .map(|p| format!("pid {} as {}", p.pid, names.show(p.uid, true)))
            .collect();
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected to run as {}", principal_text(u)),
            if bad.is_empty() {
                "all do".into()
            } else {
                list_some(&bad, 5)
            },
        ));
    }
    if let Some(u) = &e.not_user {
        let bad: Vec<String> = matching
            .iter()
            .filter(|p| names.is(p.uid, u, true))
            .map(|p| format!("pid {}", p.pid))
            .collect();
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected not to run as {}", principal_text(u)),
            if bad.is_empty() {
                "none do".into()
            } else {
                list_some(&bad, 5)
            },
        ));
    }
    out
}

pub(super) fn command(c: &CommandCheck, facts: &Facts, ctx: &Context) -> Vec<TestResult> {
    let subject = format!("Command `{}`", c.command);
    let Some(results) = &facts.commands else {
        return vec![TestResult::skipped(
            format!("{subject} is run"),
            format!(
                "the {} approach cannot run commands; command controls need the api approach",
                ctx.approach.as_str()
            ),
        )];
    };
    let Some(r) = results.get(&c.command) else {
        return vec![TestResult::error(
            format!("{subject} is run"),
            "the collector returned no result for it",
        )];
    };
    let e = &c.expect;
    let mut out = Vec::new();
    if let Some(want) = e.exit_status {
        out.push(TestResult::check(
            r.exit_status == want,
            format!("{subject} exit status is expected to be {want}"),
            r.exit_status.to_string(),
        ));
    }
    for (re, should) in [(&e.stdout_matches, true), (&e.stdout_not_matches, false)] {
        let Some(re) = re else { continue };
        let desc = format!(
            "{subject} stdout is expected {}to match /{re}/",
            if should { "" } else { "not " }
        );
        match super::regex(re) {
            Ok(rx) => out.push(TestResult::check(
                rx.is_match(&r.stdout) == should,
                desc,
                if rx.is_match(&r.stdout) {
                    "a match"
                } else {
                    "no match"
                },
            )),
            Err(err) => out.push(TestResult::error(desc, err.to_string())),
        }
    }
    out
}
