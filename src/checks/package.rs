//! `package:` checks over dpkg (`status`, distroless `status.d/*`) and apk
//! databases, with each manager's own version ordering.

use super::version::{Constraint, Scheme};
use super::{Status, TestResult, expected};
use crate::facts::Facts;
use crate::facts::compile::{APK_DB, DPKG_STATUS, DPKG_STATUS_D};
use crate::facts::parse::{Package, apk, dpkg};
use crate::policy::model::{PackageCheck, PackageManager};

/// The installed packages of a target and the scheme their versions follow.
struct Db {
    scheme: Scheme,
    source: &'static str,
    packages: Vec<Package>,
    truncated: bool,
}

/// A package database that exists and could not be read (then "not
/// installed" would be a guess, not evidence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnreadableDatabase(String);

/// Every installed package of a target (dpkg and apk databases), name →
/// version; `Err` when a database that exists could not be read.
pub fn installed(
    facts: &Facts,
) -> Result<std::collections::BTreeMap<String, String>, UnreadableDatabase> {
    Ok(databases(facts, PackageManager::Auto)
        .map_err(UnreadableDatabase)?
        .into_iter()
        .flat_map(|db| db.packages)
        .map(|p| (p.key(), p.version))
        .collect())
}

/// The package databases of a target. `Err` when a database that exists
/// could not be read: then "not installed" would be a guess, not evidence.
fn databases(facts: &Facts, manager: PackageManager) -> Result<Vec<Db>, String> {
    let mut out = Vec::new();
    if matches!(manager, PackageManager::Auto | PackageManager::Dpkg) {
        let mut packages = Vec::new();
        let mut found = false;
        let mut truncated = false;
        if let Some(f) = facts.files.get(DPKG_STATUS)
            && let Some(c) = f
                .evidence()
                .map_err(|why| why.at(DPKG_STATUS).to_string())?
        {
            found = true;
            truncated |= f.truncated;
            packages.extend(dpkg(&c.text()));
        }
        if let Some(dir) = facts.dir_of(DPKG_STATUS_D).map_err(|e| e.to_string())? {
            for (name, f) in dir {
                let c = f
                    .evidence()
                    .map_err(|why| why.at(format!("{DPKG_STATUS_D}/{name}")).to_string())?;
                // Only regular files are entries (a symlink in status.d is
                // listed by lstat and is no database).
                if let Some(c) = c {
                    found = true;
                    truncated |= f.truncated;
                    packages.extend(dpkg(&c.text()));
                }
            }
        }
        if found {
            out.push(Db {
                scheme: Scheme::Dpkg,
                source: "dpkg",
                packages,
                truncated,
            });
        }
    }
    if matches!(manager, PackageManager::Auto | PackageManager::Apk)
        && let Some(f) = facts.files.get(APK_DB)
        && let Some(c) = f.evidence().map_err(|why| why.at(APK_DB).to_string())?
    {
        out.push(Db {
            scheme: Scheme::Apk,
            source: "apk",
            packages: apk(&c.text()),
            truncated: f.truncated,
        });
    }
    Ok(out)
}

pub(super) fn package(c: &PackageCheck, facts: &Facts) -> Vec<TestResult> {
    let subject = format!("Package {}", c.package);
    let dbs = match databases(facts, c.manager) {
        Ok(dbs) => dbs,
        Err(why) => {
            return vec![TestResult::error(
                format!("{subject} is inspected"),
                format!("the package database could not be read ({why})"),
            )];
        }
    };
    let mut out = Vec::new();
    if dbs.is_empty() {
        let desc = match c.expect.installed {
            Some(false) => format!("{subject} is expected not to be installed"),
            _ => format!("{subject} is expected to be installed"),
        };
        out.push(TestResult::skipped(
            desc,
            "no package database (dpkg status, status.d or apk installed) in this image",
        ));
        return out;
    }
    let found = dbs.iter().find_map(|db| {
        db.packages
            .iter()
            .find(|p| p.name == c.package)
            .map(|p| (db, p))
    });
    let truncated = dbs.iter().any(|d| d.truncated);
    if let Some(want) = c.expect.installed {
        let desc = expected(&subject, want, "be installed");
        match found {
            Some((db, p)) => out.push(TestResult::check(
                want,
                desc,
                format!("installed {} ({})", p.version, db.source),
            )),
            None if truncated => out.push(TestResult::error(
                desc,
                "the package database was larger than the read cap",
            )),
            None => out.push(TestResult::check(!want, desc, "not installed")),
        }
    }
    if let Some(text) = &c.expect.version {
        let desc = format!("{subject} version is expected to be {text}");
        match (Constraint::parse(text), found) {
            (None, _) => out.push(TestResult::error(desc, "the constraint cannot be parsed")),
            (Some(_), None) => out.push(TestResult::check(false, desc, "not installed")),
            (Some(con), Some((db, p))) => {
                let ok = con.matches(db.scheme, &p.version);
                out.push(TestResult {
                    location: None,
                    not_applicable: false,
                    status: if ok { Status::Passed } else { Status::Failed },
                    message: format!("{desc}, got {} ({} ordering)", p.version, db.source),
                    code_desc: desc,
                });
            }
        }
    }
    out
}
