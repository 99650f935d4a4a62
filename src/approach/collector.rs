//! The contract between the runner and the approaches: a [`Collector`]
//! gathers one target's facts or says why not, as a typed [`Failure`].
//! The runner schedules collectors; it never needs to know how they work.

use crate::facts::{FactRequest, rootfs};
use crate::plan::PlannedTarget;
use crate::policy::model::Approach;

/// What a collector gathered, and through which approach: for `auto`, the
/// one it settled on, which the results and the statement record.
#[derive(Debug)]
pub struct Gathered {
    /// What it brought back.
    pub collected: Collected,
    /// The approach that gathered them.
    pub approach: Approach,
    /// Attempts it took (1 unless transient errors were retried).
    pub attempts: u32,
}

/// What a collector brings back from a target. (One lives per target in
/// flight, moved, never copied: boxing the facts would buy nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Collected {
    /// Facts, which vigil's checks evaluate against the target's profiles.
    Facts(crate::facts::Facts),
    /// An HDF report another scanner produced about the target (an
    /// external scanner, `spec.scanner`): counted and judged as it came,
    /// bound to the run, target and scan.
    Report(Vec<u8>),
}

/// Why a target could not be gathered, after how many attempts.
#[derive(Debug)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// A sentence for the result.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

impl Failure {
    /// A failure of `kind`, after one attempt.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            attempts: 1,
        }
    }

    /// A scan of `what` that ran out of `scanTimeout`.
    pub fn timeout(what: &str, limit: std::time::Duration) -> Failure {
        Failure::new(
            FailureKind::Timeout,
            format!(
                "{what} did not finish within scanTimeout ({})",
                crate::policy::duration::format(limit)
            ),
        )
    }

    /// A target not scanned (or stopped in flight), and why.
    pub fn not_scanned(why: &str) -> Failure {
        Failure {
            attempts: 0,
            ..Failure::new(FailureKind::NotScanned, format!("not scanned: {why}"))
        }
    }

    /// Stopped in flight by a second signal or the end of the grace period.
    pub fn stopped_in_flight() -> Failure {
        Failure::new(
            FailureKind::NotScanned,
            "not scanned: stopped in flight after a signal (second signal or end of the grace period)",
        )
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(FailureKind::Other, message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(FailureKind::Other, message)
    }
}

/// A collection in progress, as [`Collector::collect_polled`] gives it.
pub type Polled<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Gathered, Failure>> + Send + 'a>>;

/// Gathers the facts of one target, whatever the approach.
pub trait Collector: Sync {
    /// Collect `req` from `target` for scan `scan_id`; the error says why it
    /// could not.
    fn collect(
        &self,
        target: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
    ) -> Result<Gathered, Failure>;

    /// The runtime on which `target`'s collection can be polled as a
    /// future ([`Collector::collect_polled`]), when it waits on the network
    /// rather than on this machine. `None` (the default): the runner gives
    /// each collection a thread of its own, and calls
    /// [`Collector::collect`].
    fn polled_on(&self, _target: &PlannedTarget) -> Option<&tokio::runtime::Handle> {
        None
    }

    /// [`Collector::collect`] as a future, for the targets
    /// [`Collector::polled_on`] names a runtime for: the runner polls every
    /// scan in flight on one thread, so a run holds one stack however many
    /// scans wait on the cluster (64 blocked threads held 8 MB of stacks).
    /// The default calls `collect` when first polled, which blocks the
    /// polling thread: implement both or neither.
    fn collect_polled<'a>(
        &'a self,
        target: &'a PlannedTarget,
        req: &'a FactRequest,
        scan_id: &'a str,
    ) -> Polled<'a> {
        Box::pin(async move { self.collect(target, req, scan_id) })
    }

    /// The signature checks of the scanner images this collector runs
    /// (none for collectors that add no image).
    fn scanner_images(&self) -> Vec<super::ScannerImageCheck> {
        Vec::new()
    }

    /// How far its results can be trusted when it reached a target through
    /// `approach` (another scanner's report is that scanner's word).
    fn evidence(&self, approach: Approach) -> crate::policy::model::Evidence {
        approach.evidence()
    }
}

/// Local root filesystems and images only; any other approach is an
/// error result.
#[derive(Debug, Default)]
pub struct LocalCollector {
    /// How registry images are reached (plain-HTTP hosts, deadlines, the
    /// run's stop).
    pub registry: crate::image::Access,
}

impl LocalCollector {
    /// An image target: its layers indexed and read, never extracted, and
    /// only when the image is still the digest that was planned.
    fn image(&self, t: &PlannedTarget, req: &FactRequest) -> Result<Gathered, Failure> {
        let spec = t
            .image_source
            .as_deref()
            .ok_or("an image target without a source")?;
        let source = crate::image::Source::parse(spec, std::path::Path::new("/"))
            .map_err(|e| e.to_string())?;
        let opened = crate::image::open_with(&source, &self.registry).map_err(|e| e.to_string())?;
        // Planned by the manifest's digest, or by an index it was reached
        // through (a multi-platform image pinned by its index digest).
        if let Some(planned) = &t.image_digest
            && *planned != opened.resolved.digest
            && !opened.resolved.indexes.contains(planned)
        {
            return Err(Failure::from(format!(
                "{source} is now {}, not the {planned} that was planned; plan again",
                opened.resolved.digest
            )));
        }
        let scanned = opened.scan(&source, req).map_err(|e| e.to_string())?;
        Ok(Gathered {
            collected: Collected::Facts(scanned.facts),
            approach: Approach::Image,
            attempts: 1,
        })
    }
}

/// The paths whose absence together says a directory or archive is not a
/// container root: no `/etc`, no `/bin` and no OS release file. An
/// unextracted image, a wrong path or an empty directory has none, and
/// every "must not exist" control would pass on it.
const ROOT_MARKERS: [&str; 4] = ["/etc", "/bin", "/etc/os-release", "/usr/lib/os-release"];

/// `facts` of a local root, refused when the root has none of
/// [`ROOT_MARKERS`]: its controls are errors, never passes on nothing.
fn looks_like_a_root(
    facts: crate::facts::Facts,
    root: &std::path::Path,
) -> Result<crate::facts::Facts, Failure> {
    let present = ROOT_MARKERS
        .iter()
        .any(|p| facts.files.get(*p).is_some_and(|f| f.lstat.is_some()));
    if present {
        Ok(facts)
    } else {
        Err(Failure::from(format!(
            "{} does not look like a container root: it has no /etc, no /bin and no OS release file (an image not unpacked, or the wrong path?); its controls would pass on nothing",
            crate::safeio::printable(&root.display().to_string())
        )))
    }
}

impl Collector for LocalCollector {
    fn collect(&self, t: &PlannedTarget, req: &FactRequest, _: &str) -> Result<Gathered, Failure> {
        if t.approach == Approach::Image {
            return self.image(t, req);
        }
        if t.approach == Approach::Manifest {
            // A manifest declares a pod; no filesystem is behind it. Its
            // workload controls are judged on the spec either way.
            return if req.needs_nothing() {
                Ok(Gathered {
                    collected: Collected::Facts(crate::facts::Facts::default()),
                    approach: Approach::Manifest,
                    attempts: 1,
                })
            } else {
                Err(Failure::from(
                    "a manifest has no filesystem to read: only workload controls (pod_security, workload) apply to it",
                ))
            };
        }
        // The markers are stat'ed with the rest, so a root is judged from
        // the same read as its controls.
        let with_markers;
        let req = if t.rootfs.is_some() && ROOT_MARKERS.iter().any(|p| !req.stat.contains(*p)) {
            let mut r = req.clone();
            r.stat.extend(ROOT_MARKERS.iter().map(|p| p.to_string()));
            with_markers = r;
            &with_markers
        } else {
            req
        };
        let local = |facts| Gathered {
            collected: Collected::Facts(facts),
            approach: Approach::Local,
            attempts: 1,
        };
        match (&t.approach, &t.rootfs) {
            // A root filesystem archive: its headers carry the modes and
            // owners, whatever the machine and umask it was unpacked on.
            (Approach::Local, Some(root)) if root.is_file() => {
                crate::image::scan_archive(root, req)
                    .map_err(|e| {
                        Failure::from(format!("root filesystem archive {}: {e}", root.display()))
                    })
                    .and_then(|scanned| looks_like_a_root(scanned.facts, root))
                    .map(local)
            }
            (Approach::Local, Some(root)) => rootfs::collect(root, req)
                .map_err(|e| {
                    Failure::from(format!(
                        "cannot open root {}: {}",
                        root.display(),
                        crate::safeio::io_reason(&e)
                    ))
                })
                .and_then(|facts| looks_like_a_root(facts, root))
                .map(local),
            (approach, _) => Err(Failure::from(format!(
                "the {} approach needs a connection to the cluster, which this run does not have",
                approach.as_str()
            ))),
        }
    }
}

/// What ended a target that was not scanned: the runner counts timeouts,
/// lists the targets never started and seals both by this, never by the
/// text of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The scan ran out of `scanTimeout`.
    Timeout,
    /// Never started, or stopped in flight, because of a signal or the run
    /// deadline.
    NotScanned,
    /// Errors worth retrying, still failing after the last retry.
    Transient,
    /// The container has no usable shell for the api approach.
    NoShell,
    /// The API server refused the run's identity (403).
    Forbidden,
    /// Anything else.
    Other,
}
