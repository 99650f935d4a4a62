//! Parsers for the files facts carry: passwd, group, shadow, os-release,
//! the dpkg and apk package databases, and key/value configuration files.
//!
//! All of them read untrusted text from a container: they never panic,
//! skip malformed lines (counting them), and allocate in proportion to
//! their (already capped) input.

use std::collections::BTreeMap;

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub(crate) struct PasswdEntry {
    pub name: String,
    /// The password field (`x` when the hash is in shadow).
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// Parse `/etc/passwd`. Returns entries and the number of malformed lines.
pub(crate) fn passwd(text: &str) -> (Vec<PasswdEntry>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in records(text) {
        let f: Vec<&str> = line.split(':').collect();
        match (
            f.len(),
            f.get(2).and_then(|u| u.parse().ok()),
            f.get(3).and_then(|g| g.parse().ok()),
        ) {
            (7, Some(uid), Some(gid)) => out.push(PasswdEntry {
                name: f[0].to_string(),
                password: f[1].to_string(),
                uid,
                gid,
                home: f[5].to_string(),
                shell: f[6].to_string(),
            }),
            _ => bad += 1,
        }
    }
    (out, bad)
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub(crate) struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parse `/etc/group`.
pub(crate) fn group(text: &str) -> (Vec<GroupEntry>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in records(text) {
        let f: Vec<&str> = line.split(':').collect();
        match (f.len(), f.get(2).and_then(|g| g.parse().ok())) {
            (4, Some(gid)) => out.push(GroupEntry {
                name: f[0].to_string(),
                gid,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            }),
            _ => bad += 1,
        }
    }
    (out, bad)
}

/// `/etc/shadow`: user name → password hash field.
pub(crate) fn shadow(text: &str) -> BTreeMap<String, String> {
    records(text)
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// os-release: `KEY=value` with optional shell quoting.
pub(crate) fn os_release(text: &str) -> BTreeMap<String, String> {
    key_values(text, true)
        .into_iter()
        .map(|(k, v)| (k, unquote(&v)))
        .collect()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let stripped = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
    match stripped {
        Some(s) => s
            .replace("\\\"", "\"")
            .replace("\\$", "$")
            .replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

/// Key/value configuration: `KEY VALUE` (login.defs, sshd_config) or
/// `KEY=VALUE`. Comments (`#`) and blank lines are skipped; the first
/// occurrence of a key wins (as sshd does). With `ignore_case`, keys are
/// lower-cased.
pub(crate) fn config(text: &str, equals: bool, ignore_case: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in key_values(text, equals) {
        let k = if ignore_case {
            k.to_ascii_lowercase()
        } else {
            k
        };
        out.entry(k).or_insert(v);
    }
    out
}

fn key_values(text: &str, equals: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split = if equals {
            line.split_once('=')
        } else {
            line.split_once(|c: char| c.is_whitespace() || c == '=')
        };
        if let Some((k, v)) = split {
            let v = v.trim().trim_start_matches('=').trim();
            out.push((k.trim().to_string(), v.to_string()));
        } else if !equals {
            out.push((line.to_string(), String::new()));
        }
    }
    out
}

/// Non-empty, non-comment lines.
fn records(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    /// Package name.
    pub name: String,
    /// Version as the manager records it.
    pub version: String,
    /// Architecture (dpkg `Architecture`, apk `A:`), when recorded: dpkg
    /// installs one package for several architectures (multiarch).
    pub arch: Option<String>,
}

impl Package {
    /// The package's identity in an inventory: `name:arch` as dpkg names a
    /// multiarch package, or the name when no architecture is recorded.
    pub(crate) fn key(&self) -> String {
        match &self.arch {
            Some(a) => format!("{}:{a}", self.name),
            None => self.name.clone(),
        }
    }
}

/// dpkg's `status` (or one `status.d/*` file): paragraphs of `Field: value`.
/// Only packages whose `Status` is `install ok installed` count; distroless
/// `status.d` entries carry no `Status` field and count as installed.
pub(crate) fn dpkg(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut status = None;
        let mut arch = None;
        for line in para.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue; // continuation of a multi-line field
            }
            if let Some((k, v)) = line.split_once(':') {
                match k {
                    "Package" => name = Some(v.trim().to_string()),
                    "Version" => version = Some(v.trim().to_string()),
                    "Status" => status = Some(v.trim().to_string()),
                    "Architecture" => arch = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let installed = status
            .as_deref()
            .is_none_or(|s| s.ends_with(" installed") && s.starts_with("install "));
        if let (Some(name), Some(version), true) = (name, version, installed) {
            out.push(Package {
                name,
                version,
                arch,
            });
        }
    }
    out
}

/// apk's `lib/apk/db/installed`: paragraphs of `X:value` lines, `P:` name,
/// `V:` version.
pub(crate) fn apk(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("P:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("V:") {
                version = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("A:") {
                arch = Some(v.trim().to_string());
            }
        }
        if let (Some(name), Some(version)) = (name, version) {
            out.push(Package {
                name,
                version,
                arch,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_group_shadow() {
        let (users, bad) = passwd(
            "root:x:0:0:root:/root:/bin/bash\n# c\nbroken\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\nx:x:NaN:0::/:/bin/sh\n",
        );
        assert_eq!(bad, 2);
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].shell, "/usr/sbin/nologin");
        let (groups, _) = group("root:x:0:\nshadow:x:42:alice,bob\n");
        assert_eq!(groups[1].members, vec!["alice", "bob"]);
        assert_eq!(
            shadow("root:*:19000:0:99999:7:::\nbob::1:::::\n")["bob"],
            ""
        );
    }

    #[test]
    fn a_package_installed_for_two_architectures_is_two_packages() {
        let both = dpkg(
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36\n",
        );
        let keys: Vec<String> = both.iter().map(Package::key).collect();
        assert_eq!(keys, ["libc6:amd64", "libc6:i386"]);
        let apk = apk("P:musl\nV:1.2.4-r2\nA:x86_64\n\nP:old\nV:1\n");
        assert_eq!(
            apk.iter().map(Package::key).collect::<Vec<_>>(),
            ["musl:x86_64", "old"]
        );
    }

    #[test]
    fn os_release_quotes() {
        let m = os_release(
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nID_LIKE=\"rhel fedora\"\n",
        );
        assert_eq!(m["VERSION_ID"], "12");
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["ID_LIKE"], "rhel fedora");
    }

    #[test]
    fn config_styles() {
        let c = config(
            "# comment\nPASS_MAX_DAYS\t99999\nUMASK  022\nPermitRootLogin no\nPermitRootLogin yes\n",
            false,
            true,
        );
        assert_eq!(c["pass_max_days"], "99999");
        assert_eq!(c["permitrootlogin"], "no", "first occurrence wins");
        let e = config("a=1\nb = two\n", true, false);
        assert_eq!(e["b"], "two");
    }

    #[test]
    fn dpkg_and_apk() {
        let st = "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nDescription: x\n more\n\nPackage: telnet\nStatus: deinstall ok config-files\nVersion: 0.17+2.4-2\n\nPackage: base-files\nVersion: 12.4+deb12u5\n";
        let p = dpkg(st);
        assert_eq!(
            p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            vec!["bash", "base-files"]
        );
        let a = apk("C:Q1abc\nP:musl\nV:1.2.4-r2\n\nP:busybox\nV:1.36.1-r5\n");
        assert_eq!(
            a[1],
            Package {
                name: "busybox".into(),
                version: "1.36.1-r5".into(),
                arch: None,
            }
        );
    }
}
