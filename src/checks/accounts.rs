//! `users:` and `groups:` checks over passwd, shadow and group.

use std::collections::BTreeMap;

use super::{TestResult, expected, list_some, subject_of};
use crate::facts::Facts;
use crate::facts::compile::{GROUP, PASSWD, SHADOW};
use crate::facts::parse::{GroupEntry, PasswdEntry, group, passwd, shadow};
use crate::policy::model::{GroupsCheck, UsersCheck};

fn text<'a>(facts: &'a Facts, path: &str) -> Result<Option<std::borrow::Cow<'a, str>>, String> {
    facts
        .content_of(path)
        .map(|c| c.map(|c| c.text()))
        .map_err(|e| e.to_string())
}

/// Duplicated keys of a list, shown as `key (a, b)`.
fn duplicates<K: Ord + std::fmt::Display>(items: impl Iterator<Item = (K, String)>) -> Vec<String> {
    let mut by: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (k, n) in items {
        by.entry(k).or_default().push(n);
    }
    by.into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| format!("{k} ({})", v.join(", ")))
        .collect()
}

fn found(bad: &[String], what: &str) -> String {
    if bad.is_empty() {
        format!("no {what}")
    } else {
        format!("{} {what}: {}", bad.len(), list_some(bad, 10))
    }
}

pub(super) fn users(c: &UsersCheck, facts: &Facts) -> Vec<TestResult> {
    let (subject, all) = subject_of("Users", "User", &c.users);
    let passwd_text = match text(facts, PASSWD) {
        Ok(t) => t,
        Err(e) => return vec![TestResult::error(format!("{subject} are inspected"), e)],
    };
    let (entries, _) = passwd(passwd_text.as_deref().unwrap_or(""));
    let selected: Vec<&PasswdEntry> = entries
        .iter()
        .filter(|u| all || u.name == c.users)
        .collect();
    let e = &c.expect;
    let mut out = Vec::new();
    if let Some(want) = e.exists {
        let desc = expected(&subject, want, "exist");
        let got = match selected.first() {
            Some(u) => format!("uid {}", u.uid),
            None if passwd_text.is_none() => "no /etc/passwd".into(),
            None => "no such user".into(),
        };
        out.push(TestResult::check(selected.is_empty() != want, desc, got));
        if !want {
            return out;
        }
    }
    if !all && selected.is_empty() && (e.uid.is_some() || e.shell.is_some()) {
        out.push(TestResult::check(
            false,
            format!("{subject} is expected to exist"),
            "no such user",
        ));
        return out;
    }
    if let (Some(want), Some(u)) = (e.uid, selected.first()) {
        out.push(TestResult::check(
            u.uid == want,
            format!("{subject} uid is expected to be {want}"),
            u.uid.to_string(),
        ));
    }
    if let (Some(want), Some(u)) = (&e.shell, selected.first()) {
        out.push(TestResult::check(
            &u.shell == want,
            format!("{subject} shell is expected to be {want}"),
            u.shell.clone(),
        ));
    }
    if e.uid0_only_root {
        let bad: Vec<String> = selected
            .iter()
            .filter(|u| u.uid == 0 && u.name != "root")
            .map(|u| u.name.clone())
            .collect();
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} with uid 0 are expected to be only root"),
            found(&bad, "other uid-0 accounts"),
        ));
    }
    if e.no_empty_passwords {
        let desc = format!("{subject} are expected to have no empty password");
        match text(facts, SHADOW) {
            Err(why) => out.push(TestResult::error(desc, why)),
            Ok(shadow_text) => {
                let hashes = shadow(shadow_text.as_deref().unwrap_or(""));
                let bad: Vec<String> = selected
                    .iter()
                    .filter(|u| {
                        u.password.is_empty() || hashes.get(&u.name).is_some_and(|h| h.is_empty())
                    })
                    .map(|u| u.name.clone())
                    .collect();
                out.push(TestResult::check(
                    bad.is_empty(),
                    desc,
                    found(&bad, "accounts with an empty password"),
                ));
            }
        }
    }
    if e.unique_uids {
        let bad = duplicates(selected.iter().map(|u| (u.uid, u.name.clone())));
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected to have unique uids"),
            found(&bad, "shared uids"),
        ));
    }
    if e.unique_names {
        let bad = duplicates(selected.iter().map(|u| (u.name.clone(), u.uid.to_string())));
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected to have unique names"),
            found(&bad, "duplicated names"),
        ));
    }
    if !e.shells_allowed.is_empty() {
        // System accounts (uid 1–999) are left to their packages.
        let bad: Vec<String> = selected
            .iter()
            .filter(|u| (u.uid == 0 || u.uid >= 1000) && !e.shells_allowed.contains(&u.shell))
            .map(|u| format!("{} ({})", u.name, u.shell))
            .collect();
        out.push(TestResult::check(
            bad.is_empty(),
            format!(
                "{subject} login shells are expected to be one of {}",
                e.shells_allowed.join(", ")
            ),
            found(&bad, "accounts with other shells"),
        ));
    }
    out
}

pub(super) fn groups(c: &GroupsCheck, facts: &Facts) -> Vec<TestResult> {
    let (subject, all) = subject_of("Groups", "Group", &c.groups);
    let group_text = match text(facts, GROUP) {
        Ok(t) => t,
        Err(e) => return vec![TestResult::error(format!("{subject} are inspected"), e)],
    };
    let (entries, _) = group(group_text.as_deref().unwrap_or(""));
    let selected: Vec<&GroupEntry> = entries
        .iter()
        .filter(|g| all || g.name == c.groups)
        .collect();
    let e = &c.expect;
    let mut out = Vec::new();
    if let Some(want) = e.exists {
        let desc = expected(&subject, want, "exist");
        let got = selected
            .first()
            .map_or_else(|| "no such group".to_string(), |g| format!("gid {}", g.gid));
        out.push(TestResult::check(selected.is_empty() != want, desc, got));
        if !want {
            return out;
        }
    }
    if !all && selected.is_empty() && (e.gid.is_some() || e.members_allowed.is_some()) {
        out.push(TestResult::check(
            false,
            format!("{subject} is expected to exist"),
            "no such group",
        ));
        return out;
    }
    if let (Some(want), Some(g)) = (e.gid, selected.first()) {
        out.push(TestResult::check(
            g.gid == want,
            format!("{subject} gid is expected to be {want}"),
            g.gid.to_string(),
        ));
    }
    if e.unique_gids {
        let bad = duplicates(selected.iter().map(|g| (g.gid, g.name.clone())));
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected to have unique gids"),
            found(&bad, "shared gids"),
        ));
    }
    if e.unique_names {
        let bad = duplicates(selected.iter().map(|g| (g.name.clone(), g.gid.to_string())));
        out.push(TestResult::check(
            bad.is_empty(),
            format!("{subject} are expected to have unique names"),
            found(&bad, "duplicated names"),
        ));
    }
    if let Some(allowed) = &e.members_allowed {
        let bad: Vec<String> = selected
            .iter()
            .flat_map(|g| {
                g.members
                    .iter()
                    .filter(|m| !allowed.contains(m))
                    .map(move |m| format!("{m} in {}", g.name))
            })
            .collect();
        let desc = if allowed.is_empty() {
            format!("{subject} is expected to have no members")
        } else {
            format!(
                "{subject} members are expected to be among {}",
                allowed.join(", ")
            )
        };
        out.push(TestResult::check(
            bad.is_empty(),
            desc,
            found(&bad, "other members"),
        ));
    }
    out
}
