//! The probe: the fact collector the debug and sidecar approaches run
//! inside a pod (`vigil probe`), on its own. It reads one fact request,
//! gathers the facts of a root filesystem or of a running process's root
//! (through `/proc/PID/root`, with the same inside-the-root resolution),
//! lists that process's PID namespace when asked, and returns one frame,
//! encrypted to the approach's one-time key when given.

use std::path::{Path, PathBuf};

use super::{FactRequest, frame, procfs, rootfs};

/// Requests larger than this are refused (a real one is a few KiB).
pub(crate) const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

/// What the probe reads.
#[derive(Debug, Clone)]
pub(crate) enum ProbeTarget {
    /// A root filesystem directory.
    Root(PathBuf),
    /// The root of this process, and the processes of its PID namespace.
    Pid(u32),
    /// The container with this id (runtime prefix optional), found among
    /// the processes of a shared PID namespace by their cgroups.
    Container(String),
}

/// Why the probe gathered nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// The request is not a fact request the probe can answer (bad input).
    #[error("{0}")]
    Request(String),
    /// The container id is not an id (bad input).
    #[error(transparent)]
    ContainerId(procfs::ProcError),
    /// The target's processes could not be found or listed.
    #[error(transparent)]
    Proc(procfs::ProcError),
    /// The root could not be opened.
    #[error("cannot open root {root}: {reason}{hint}")]
    Root {
        /// The root.
        root: PathBuf,
        /// Why, in words.
        reason: String,
        /// What to check, when the kernel refused a process's root.
        hint: &'static str,
    },
}

impl ProbeError {
    /// Whether the request or the arguments are at fault (exit 2).
    pub(crate) fn is_bad_input(&self) -> bool {
        matches!(self, ProbeError::Request(_) | ProbeError::ContainerId(_))
    }
}

/// Parse a request as the probe takes it: at most [`MAX_REQUEST_BYTES`],
/// JSON, with a nonce of letters, digits and '-' (it is printed in the
/// frame's header lines).
pub(crate) fn parse_request(bytes: &[u8]) -> Result<FactRequest, ProbeError> {
    if bytes.len() as u64 > MAX_REQUEST_BYTES {
        return Err(ProbeError::Request(format!(
            "request is larger than {} MiB",
            MAX_REQUEST_BYTES >> 20
        )));
    }
    let req: FactRequest = serde_json::from_slice(bytes)
        .map_err(|e| ProbeError::Request(format!("invalid fact request: {e}")))?;
    if req.nonce.is_empty()
        || !req
            .nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ProbeError::Request(
            "the request needs a nonce of letters, digits and '-'".into(),
        ));
    }
    Ok(req)
}

/// Gather `req` from `target` (`proc` is the proc filesystem: `/proc`, or
/// a constructed tree in tests) and return the frame, encrypted to
/// `recipient` when given.
pub(crate) fn probe(
    target: &ProbeTarget,
    proc: &Path,
    req: &FactRequest,
    recipient: Option<&age::x25519::Recipient>,
) -> Result<Vec<u8>, ProbeError> {
    // The root to read, and the processes to list (none for a plain root).
    let (root, pids): (PathBuf, Option<Option<Vec<u32>>>) = match target {
        ProbeTarget::Root(root) => (root.clone(), None),
        ProbeTarget::Pid(pid) => (proc.join(pid.to_string()).join("root"), Some(None)),
        ProbeTarget::Container(id) => {
            let mine = procfs::container_pids(proc, id).map_err(|e| match e {
                procfs::ProcError::BadId(_) => ProbeError::ContainerId(e),
                other => ProbeError::Proc(other),
            })?;
            (
                proc.join(mine[0].to_string()).join("root"),
                Some(Some(mine)),
            )
        }
    };
    let mut facts = rootfs::collect(&root, req).map_err(|e| ProbeError::Root {
        root: root.clone(),
        reason: crate::safeio::io_reason(&e),
        // The kernel's ptrace access check on /proc/<pid>/root.
        hint: if pids.is_some() && e.kind() == std::io::ErrorKind::PermissionDenied {
            " (the probe may read another process's root only as its uid and gid, holding at least its capabilities)"
        } else {
            ""
        },
    })?;
    if req.processes
        && let Some(only) = pids
    {
        facts.processes = Some(procfs::processes(proc, only.as_deref()).map_err(ProbeError::Proc)?);
    }
    let out = frame::encode(&req.nonce, &facts);
    Ok(match recipient {
        Some(r) => frame::encrypt(&out, r),
        None => out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(nonce: &str, paths: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&FactRequest {
            nonce: nonce.into(),
            max_file_bytes: 1024,
            stat: paths.iter().map(|p| p.to_string()).collect(),
            read: paths.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_request_needs_a_plain_nonce_and_a_bounded_size() {
        assert!(parse_request(&request("n-1", &[])).is_ok());
        for bad in [
            request("", &[]),
            request("a b", &[]),
            request("x\nVIGIL-END", &[]),
            b"not json".to_vec(),
        ] {
            let e = parse_request(&bad).unwrap_err();
            assert!(e.is_bad_input(), "{e}");
        }
        let big = vec![b' '; MAX_REQUEST_BYTES as usize + 1];
        assert!(
            parse_request(&big)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
    }

    #[test]
    fn a_root_is_gathered_into_one_frame_and_a_missing_root_is_an_error() {
        let dir = std::env::temp_dir().join(format!("vigil-probe-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/hostname"), "h\n").unwrap();
        let req = parse_request(&request("n1", &["/etc/hostname"])).unwrap();
        let out = probe(
            &ProbeTarget::Root(dir.clone()),
            Path::new("/proc"),
            &req,
            None,
        )
        .unwrap();
        let facts = frame::decode("n1", &out).unwrap();
        assert!(facts.files["/etc/hostname"].lstat.is_some());
        let gone = probe(
            &ProbeTarget::Root(dir.join("missing")),
            Path::new("/proc"),
            &req,
            None,
        )
        .unwrap_err();
        assert!(!gone.is_bad_input());
        assert!(gone.to_string().starts_with("cannot open root"), "{gone}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
