//! `vigil probe`: the fact collector on its own, printing framed facts.
//!
//! This is the agent the debug and sidecar approaches run inside a pod; run
//! locally it reads a root filesystem directory.

use std::io::Read;
use std::path::PathBuf;

use super::{Exit, InvalidInput};
use crate::facts::{FactRequest, frame, procfs, rootfs};

const AFTER_HELP: &str = "\
Examples:
  vigil probe --root fixtures/rootfs/debian --request request.json
  vigil probe --root / --request - < request.json
  # In an ephemeral container targeting a container (its PID 1):
  vigil probe --pid 1 --request-json '{...}'
  # In a sidecar of a pod with shareProcessNamespace: true:
  vigil probe --container-id 4f1c2a9be0d3... --request-json '{...}'

Prints one frame: `VIGIL-FACTS v1 <nonce> <length>`, the facts as JSON, and
`VIGIL-END <nonce> <sha256>`. With --pid or --container-id the target's
filesystem is read through /proc/<pid>/root with the same inside-the-root
resolution as --root, and its processes are listed.";

/// Gather facts from a root filesystem or a running process's root and
/// print them as one framed JSON document.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["root", "pid", "container_id"])))]
#[command(group(clap::ArgGroup::new("req").required(true).args(["request", "request_json"])))]
pub(super) struct Args {
    /// The root filesystem to read (every path resolves inside it).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Read the root of this process (`/proc/PID/root`) and list the
    /// processes of its PID namespace.
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Find the container with this ID (from the pod status, runtime prefix
    /// optional) among the processes of a shared PID namespace, by their
    /// cgroups, and read its root.
    #[arg(long, value_name = "ID")]
    container_id: Option<String>,
    /// The proc filesystem to use (tests give a constructed tree).
    #[arg(long = "proc", value_name = "DIR", default_value = "/proc")]
    proc_dir: PathBuf,
    /// The fact request as JSON: a file, or - for standard input.
    #[arg(long, value_name = "FILE")]
    request: Option<PathBuf>,
    /// The fact request as a JSON argument (for containers without stdin).
    #[arg(long, value_name = "JSON")]
    request_json: Option<String>,
    /// Encrypt the output to this age X25519 recipient (ASCII armored): the
    /// debug approach passes a one-time key, so facts never sit in
    /// plaintext in the pod's log.
    #[arg(long, value_name = "AGE1…")]
    recipient: Option<String>,
}

/// Requests larger than this are refused (a real one is a few KiB).
const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

fn read_request(args: &Args) -> anyhow::Result<Vec<u8>> {
    if let Some(json) = &args.request_json {
        return Ok(json.clone().into_bytes());
    }
    let path = args.request.as_deref().unwrap_or(std::path::Path::new("-"));
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_REQUEST_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        return crate::safeio::read(path, MAX_REQUEST_BYTES, "request")
            .map_err(|e| InvalidInput(e.to_string()).into());
    };
    read.map_err(|e| {
        InvalidInput(format!(
            "cannot read request {}: {}",
            path.display(),
            crate::safeio::io_reason(&e)
        ))
    })?;
    Ok(bytes)
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    // First of all: processes of the same uid (the target's, in the debug
    // and sidecar approaches) may not ptrace the probe or read its /proc
    // entries (environ, mem). What remains is the window between exec and
    // this call, before the probe has read anything.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| anyhow::anyhow!("cannot make the probe non-dumpable: {e}"))?;
    let recipient = args
        .recipient
        .as_deref()
        .map(|r| {
            r.parse::<age::x25519::Recipient>().map_err(|_| {
                InvalidInput("--recipient is not an age X25519 recipient (age1…)".into())
            })
        })
        .transpose()?;
    let bytes = read_request(&args)?;
    if bytes.len() as u64 > MAX_REQUEST_BYTES {
        return Err(InvalidInput(format!(
            "request is larger than {} MiB",
            MAX_REQUEST_BYTES >> 20
        ))
        .into());
    }
    let req: FactRequest = serde_json::from_slice(&bytes)
        .map_err(|e| InvalidInput(format!("invalid fact request: {e}")))?;
    if req.nonce.is_empty()
        || !req
            .nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(
            InvalidInput("the request needs a nonce of letters, digits and '-'".into()).into(),
        );
    }
    // The root to read, and the processes to list (none for a plain root).
    let (root, pids): (PathBuf, Option<Option<Vec<u32>>>) =
        match (&args.root, args.pid, &args.container_id) {
            (Some(root), _, _) => (root.clone(), None),
            (None, Some(pid), _) => (args.proc_dir.join(pid.to_string()).join("root"), Some(None)),
            (None, None, Some(id)) => {
                let mine = procfs::container_pids(&args.proc_dir, id).map_err(|e| match e {
                    procfs::ProcError::BadId(_) => anyhow::Error::from(InvalidInput(e.to_string())),
                    other => other.into(),
                })?;
                (
                    args.proc_dir.join(mine[0].to_string()).join("root"),
                    Some(Some(mine)),
                )
            }
            (None, None, None) => unreachable!("clap requires one target"),
        };
    let mut facts = rootfs::collect(&root, &req).map_err(|e| {
        // The kernel's ptrace access check on /proc/<pid>/root.
        let hint = if pids.is_some() && e.kind() == std::io::ErrorKind::PermissionDenied {
            " (the probe may read another process's root only as its uid and gid, holding at least its capabilities)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "cannot open root {}: {}{hint}",
            root.display(),
            crate::safeio::io_reason(&e)
        )
    })?;
    if req.processes
        && let Some(only) = pids
    {
        facts.processes = Some(procfs::processes(&args.proc_dir, only.as_deref())?);
    }
    let mut out = frame::encode(&req.nonce, &facts);
    if let Some(r) = &recipient {
        out = frame::encrypt(&out, r);
    }
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(&out)?;
    w.flush()?;
    Ok(Exit::Success)
}
