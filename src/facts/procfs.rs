//! A running container seen through a proc filesystem: which processes are
//! its own, what they run, and its root filesystem (`/proc/<pid>/root`).
//!
//! Used by `vigil probe` inside a pod: as an ephemeral container targeting a
//! container (it shares that container's PID namespace, so the target is
//! PID 1) or as a sidecar in a pod with `shareProcessNamespace: true` (all
//! containers' processes are visible; the target's are found by its
//! container ID).
//!
//! # Finding a container's processes in a shared PID namespace
//!
//! The pod status gives every container's ID (`containerStatuses[].containerID`,
//! e.g. `containerd://4f1c…`). Every container runtime puts each container
//! in its own cgroup whose last path component carries that ID:
//! `…/cri-containerd-<id>.scope` (containerd, systemd driver),
//! `…/crio-<id>.scope` (CRI-O), `…/pod<uid>/<id>` (cgroupfs driver), and
//! `/proc/<pid>/cgroup` shows that path for every process. A process belongs
//! to the container when the last component of one of its cgroup paths
//! contains the ID. IDs shorter than 12 hex digits are refused: they could
//! match by accident.
//!
//! Everything read from `/proc` belongs to the scanned container and is
//! parsed as hostile: reads are capped, non-UTF-8 bytes are replaced, and a
//! process that vanishes mid-read is skipped.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::ProcessFact;

/// Cap on bytes read from one `/proc/<pid>/{cgroup,status,cmdline}`.
const MAX_PROC_FILE_BYTES: u64 = 64 * 1024;
/// Cap on a command line kept in the facts.
const MAX_CMDLINE_CHARS: usize = 4096;
/// Cap on processes listed.
const MAX_PROCESSES: usize = 10_000;

/// Why the target could not be found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcError {
    /// The proc directory cannot be listed.
    #[error("cannot list {dir}: {cause}")]
    List {
        /// The directory.
        dir: PathBuf,
        /// Cause.
        cause: io::Error,
    },
    /// The container id is not a plausible id.
    #[error(
        "container id {0:?} is not an id of at least 12 hex digits (pass containerStatuses[].containerID without the runtime prefix)"
    )]
    BadId(String),
    /// No process carries the container id.
    #[error(
        "no process in {dir} belongs to container {id} (is shareProcessNamespace on, and is the container running?)"
    )]
    NotFound {
        /// The proc directory.
        dir: PathBuf,
        /// The container id.
        id: String,
    },
}

/// Strip a runtime prefix (`containerd://`, `cri-o://`, `docker://`) from a
/// container status's `containerID`.
pub(crate) fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, bare)| bare)
}

fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_PROC_FILE_BYTES)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Every numeric entry of `proc`, ascending.
fn pids(proc: &Path) -> Result<Vec<u32>, ProcError> {
    let entries = std::fs::read_dir(proc).map_err(|source| ProcError::List {
        dir: proc.to_path_buf(),
        cause: source,
    })?;
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Returns true if and only if one line of a `/proc/<pid>/cgroup` puts the
/// process in a cgroup whose last path component contains `id`.
fn cgroup_matches(cgroup: &str, id: &str) -> bool {
    cgroup.lines().any(|line| {
        // hierarchy-ID:controller-list:cgroup-path
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        path.rsplit('/')
            .next()
            .is_some_and(|last| last.contains(id))
    })
}

/// The processes of container `id` among those in `proc`, ascending.
pub(crate) fn container_pids(proc: &Path, id: &str) -> Result<Vec<u32>, ProcError> {
    let id = bare_container_id(id);
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ProcError::BadId(id.to_string()));
    }
    let mine: Vec<u32> = pids(proc)?
        .into_iter()
        .filter(|pid| {
            read_capped(&proc.join(pid.to_string()).join("cgroup"))
                .is_ok_and(|c| cgroup_matches(&String::from_utf8_lossy(&c), id))
        })
        .collect();
    if mine.is_empty() {
        return Err(ProcError::NotFound {
            dir: proc.to_path_buf(),
            id: id.to_string(),
        });
    }
    Ok(mine)
}

/// What a process runs and as whom; `None` when it vanished or its proc
/// files do not parse.
fn process(proc: &Path, pid: u32) -> Option<ProcessFact> {
    let dir = proc.join(pid.to_string());
    let status = read_capped(&dir.join("status")).ok()?;
    let status = String::from_utf8_lossy(&status);
    // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let raw = read_capped(&dir.join("cmdline")).ok()?;
    let mut cmdline: String = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if cmdline.is_empty() {
        // Kernel threads and zombies have no command line; show the name.
        cmdline = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map(|n| format!("[{}]", n.trim()))
            .unwrap_or_default();
    }
    if cmdline.chars().count() > MAX_CMDLINE_CHARS {
        cmdline = cmdline.chars().take(MAX_CMDLINE_CHARS).collect();
    }
    Some(ProcessFact { pid, uid, cmdline })
}

/// The processes with these pids (all of `proc` when `only` is `None`),
/// skipping any that vanish while being read.
pub(crate) fn processes(proc: &Path, only: Option<&[u32]>) -> Result<Vec<ProcessFact>, ProcError> {
    let all;
    let list = match only {
        Some(p) => p,
        None => {
            all = pids(proc)?;
            &all
        }
    };
    Ok(list
        .iter()
        .take(MAX_PROCESSES)
        .filter_map(|&pid| process(proc, pid))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_of_every_runtime_layout_match_by_last_component() {
        let id = "4f1c2a9be0d3";
        for line in [
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-4f1c2a9be0d3aa.scope",
            "0::/kubepods/besteffort/pod1234/4f1c2a9be0d3aa",
            "12:memory:/kubepods/burstable/pod1234/crio-4f1c2a9be0d3aa.scope",
        ] {
            assert!(cgroup_matches(line, id), "{line}");
        }
        for line in [
            // The id in a parent component (a pod uid that happens to match) is not enough.
            "0::/kubepods/pod4f1c2a9be0d3aa/other",
            "0::/",
            "garbage",
        ] {
            assert!(!cgroup_matches(line, id), "{line}");
        }
        assert_eq!(bare_container_id("containerd://abc"), "abc");
        assert_eq!(bare_container_id("abc"), "abc");
    }
}
