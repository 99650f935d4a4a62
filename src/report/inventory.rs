//! A target's inventory: what its facts say is there — each requested,
//! listed or walked path with its type, mode, owner, size and content
//! digest, and the installed packages — sealed beside its HDF result so
//! that `vigil drift` can compare an image with the containers running it.
//! Content itself never goes in: only its sha256.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::facts::{Facts, Kind, StatFact};

/// What a target holds, by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Absolute path → what is there.
    pub files: BTreeMap<String, Entry>,
    /// Installed package → version (dpkg or apk), keyed `name:arch` where
    /// the database records the architecture (multiarch installs one
    /// package for several).
    pub packages: BTreeMap<String, String>,
    /// Why the package databases could not be read, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_error: Option<String>,
    /// Image scans: other digests naming the same image (the indexes a
    /// multi-platform image is pulled by), for pairing with containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_digests: Vec<String>,
    /// What was looked at: each requested path, and each listed or fully
    /// walked directory as `DIR/` (everything under it was seen). A path
    /// outside the scope is not known to be absent.
    pub scope: std::collections::BTreeSet<String>,
}

/// One path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Type (`file`, `directory`, `symlink`, …).
    pub kind: Kind,
    /// `mode & 0o7777`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (regular files and symlinks; a directory's size says nothing
    /// portable and is 0 here).
    pub size: u64,
    /// sha256 of the content, when it was read whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn entry(st: &StatFact, content: Option<Vec<u8>>) -> Entry {
    Entry {
        kind: st.kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: if st.kind == Kind::Directory {
            0
        } else {
            st.size
        },
        sha256: content.map(|c| format!("sha256:{}", crate::encoding::hex(&Sha256::digest(c)))),
    }
}

impl Inventory {
    /// Returns true if and only if `path` was looked at.
    pub fn covers(&self, path: &str) -> bool {
        self.scope.contains(path)
            || self
                .scope
                .iter()
                .any(|s| s.ends_with('/') && path.starts_with(s.as_str()))
    }

    /// The inventory of a target's facts, gathered for `req`.
    pub fn of(facts: &Facts, req: &crate::facts::FactRequest) -> Inventory {
        let dir = |d: &str| format!("{}/", d.trim_end_matches('/'));
        let scope = req
            .stat
            .iter()
            .chain(&req.read)
            .cloned()
            .chain(req.read_dirs.iter().map(|d| dir(d)))
            .chain(req.walks.iter().filter(|w| w.all).map(|w| dir(&w.path)))
            .collect();
        let mut files = BTreeMap::new();
        let whole = |f: &crate::facts::FileFact| {
            f.content
                .as_ref()
                .filter(|_| !f.truncated)
                .map(|c| c.bytes())
        };
        for (path, f) in &facts.files {
            if let Some(st) = &f.stat {
                files.insert(path.clone(), entry(st, whole(f)));
            }
        }
        for (dir, listing) in &facts.dirs {
            for (name, f) in listing {
                if let Some(st) = &f.stat {
                    files.insert(
                        format!("{}/{name}", dir.trim_end_matches('/')),
                        entry(st, whole(f)),
                    );
                }
            }
        }
        for walk in facts.walks.values() {
            for e in &walk.entries {
                files
                    .entry(e.path.clone())
                    .or_insert_with(|| entry(&e.stat, None));
            }
        }
        let (packages, packages_error) = match crate::checks::installed_packages(facts) {
            Ok(p) => (p, None),
            Err(e) => (BTreeMap::new(), Some(e.to_string())),
        };
        Inventory {
            files,
            packages,
            packages_error,
            index_digests: facts
                .image
                .as_ref()
                .map(|i| i.index_digests.clone())
                .unwrap_or_default(),
            scope,
        }
    }
}
