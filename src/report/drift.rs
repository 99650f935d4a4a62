//! Drift between an image and a container running it: controls whose
//! status changed, and files and packages added, removed or modified at
//! runtime, within what both scans looked at.

use std::collections::BTreeMap;

use serde::Serialize;

use super::inventory::{Entry, Inventory};

/// One side of the comparison, as read from a verified bundle.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Side {
    /// The bundle directory.
    pub bundle: String,
    /// Its run id.
    pub run_id: String,
    /// The target id.
    pub target: String,
    /// The image digest (scanned, or reported by the kubelet).
    pub digest: String,
    /// Control id → status.
    #[serde(skip)]
    pub statuses: BTreeMap<String, crate::report::ControlStatus>,
    /// What the scan saw.
    #[serde(skip)]
    pub inventory: Inventory,
}

/// A control whose status differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ControlChange {
    /// Control id.
    pub id: String,
    /// Status in the image.
    pub image: crate::report::ControlStatus,
    /// Status at runtime.
    pub runtime: crate::report::ControlStatus,
}

/// A path whose metadata or content differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileChange {
    /// Path.
    pub path: String,
    /// In the image.
    pub image: Entry,
    /// At runtime.
    pub runtime: Entry,
}

/// A package whose version differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PackageChange {
    /// Name.
    pub name: String,
    /// Version in the image.
    pub image: String,
    /// Version at runtime.
    pub runtime: String,
}

/// The drift of one running container from its image.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Drift {
    /// The image scan.
    pub image: Side,
    /// The container scan.
    pub runtime: Side,
    /// Controls whose status changed.
    pub controls: Vec<ControlChange>,
    /// Paths present at runtime only.
    pub files_added: Vec<String>,
    /// Paths present in the image only.
    pub files_removed: Vec<String>,
    /// Paths in both that differ.
    pub files_modified: Vec<FileChange>,
    /// Packages installed at runtime only (name → version).
    pub packages_added: BTreeMap<String, String>,
    /// Packages in the image only.
    pub packages_removed: BTreeMap<String, String>,
    /// Packages in both, at other versions.
    pub packages_changed: Vec<PackageChange>,
    /// What could not be compared (a package database unreadable on a side).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomparable: Vec<String>,
}

impl Drift {
    /// Returns true if and only if anything drifted (or could not be compared).
    pub(crate) fn drifted(&self) -> bool {
        !(self.controls.is_empty()
            && self.files_added.is_empty()
            && self.files_removed.is_empty()
            && self.files_modified.is_empty()
            && self.packages_added.is_empty()
            && self.packages_removed.is_empty()
            && self.packages_changed.is_empty()
            && self.incomparable.is_empty())
    }
}

/// Compare a container's scan with its image's.
pub(crate) fn compare(image: Side, runtime: Side) -> Drift {
    let controls = image
        .statuses
        .iter()
        .filter_map(|(id, st)| {
            let rt = runtime.statuses.get(id)?;
            (rt != st).then(|| ControlChange {
                id: id.clone(),
                image: *st,
                runtime: *rt,
            })
        })
        .collect();
    let (a, b) = (&image.inventory, &runtime.inventory);
    let packages_comparable = a.packages_error.is_none() && b.packages_error.is_none();
    // Package databases are compared as packages (when both could be read).
    let is_db = |p: &str| {
        use crate::facts::compile::{APK_DB, DPKG_STATUS, DPKG_STATUS_D};
        packages_comparable
            && (p == DPKG_STATUS || p == APK_DB || p.starts_with(&format!("{DPKG_STATUS_D}/")))
    };
    // Only paths both scans looked at: elsewhere absence is not evidence.
    let both = |p: &str| a.covers(p) && b.covers(p) && !is_db(p);
    let files_added = b
        .files
        .keys()
        .filter(|p| both(p) && !a.files.contains_key(*p))
        .cloned()
        .collect();
    let files_removed = a
        .files
        .keys()
        .filter(|p| both(p) && !b.files.contains_key(*p))
        .cloned()
        .collect();
    let files_modified = a
        .files
        .iter()
        .filter(|(p, _)| !is_db(p))
        .filter_map(|(p, ea)| {
            let eb = b.files.get(p)?;
            // A digest missing on one side (content not read there) is not a change.
            let same_content = ea.sha256.is_none() || eb.sha256.is_none() || ea.sha256 == eb.sha256;
            let same = ea.kind == eb.kind
                && ea.mode == eb.mode
                && ea.uid == eb.uid
                && ea.gid == eb.gid
                && ea.size == eb.size
                && same_content;
            (!same).then(|| FileChange {
                path: p.clone(),
                image: ea.clone(),
                runtime: eb.clone(),
            })
        })
        .collect();
    let mut incomparable = Vec::new();
    for (side, inv) in [("image", a), ("runtime", b)] {
        if let Some(e) = &inv.packages_error {
            incomparable.push(format!(
                "packages: the {side} scan could not read them ({e})"
            ));
        }
    }
    let comparable = incomparable.is_empty();
    let pick = |from: &Inventory, other: &Inventory| -> BTreeMap<String, String> {
        if !comparable {
            return BTreeMap::new();
        }
        from.packages
            .iter()
            .filter(|(n, _)| !other.packages.contains_key(*n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    };
    let packages_added = pick(b, a);
    let packages_removed = pick(a, b);
    let packages_changed = if comparable {
        a.packages
            .iter()
            .filter_map(|(n, va)| {
                let vb = b.packages.get(n)?;
                (va != vb).then(|| PackageChange {
                    name: n.clone(),
                    image: va.clone(),
                    runtime: vb.clone(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Drift {
        image,
        runtime,
        controls,
        files_added,
        files_removed,
        files_modified,
        packages_added,
        packages_removed,
        packages_changed,
        incomparable,
    }
}

/// A table of drifts, one block per container; text from the bundles is
/// escaped.
pub(crate) fn render(drifts: &[Drift]) -> String {
    use std::fmt::Write as _;
    let p = |s: &str| crate::safeio::printable(s).into_owned();
    let mut out = String::new();
    for d in drifts {
        let _ = writeln!(
            out,
            "{} (image {}) vs {}: {}",
            p(&d.runtime.target),
            p(&d.image.digest),
            p(&d.image.target),
            if d.drifted() { "DRIFTED" } else { "no drift" }
        );
        for c in &d.controls {
            let _ = writeln!(
                out,
                "  control  {:<12} {} -> {}",
                p(&c.id),
                c.image,
                c.runtime
            );
        }
        for f in &d.files_added {
            let _ = writeln!(out, "  file     added     {}", p(f));
        }
        for f in &d.files_removed {
            let _ = writeln!(out, "  file     removed   {}", p(f));
        }
        for f in &d.files_modified {
            let _ = writeln!(out, "  file     modified  {}", p(&f.path));
        }
        for (n, v) in &d.packages_added {
            let _ = writeln!(out, "  package  added     {} {}", p(n), p(v));
        }
        for (n, v) in &d.packages_removed {
            let _ = writeln!(out, "  package  removed   {} {}", p(n), p(v));
        }
        for c in &d.packages_changed {
            let _ = writeln!(
                out,
                "  package  changed   {} {} -> {}",
                p(&c.name),
                p(&c.image),
                p(&c.runtime)
            );
        }
        for i in &d.incomparable {
            let _ = writeln!(out, "  not compared: {}", p(i));
        }
    }
    if drifts.is_empty() {
        out.push_str(
            "no container of the runtime bundle runs an image of the image bundle (by digest)\n",
        );
    }
    out
}
