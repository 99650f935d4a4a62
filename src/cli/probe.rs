//! `vigil probe`: the fact collector on its own, printing framed facts.
//!
//! This is the agent the debug and sidecar approaches run inside a pod; run
//! locally it reads a root filesystem directory.

use std::io::Read;
use std::path::PathBuf;

use super::{Exit, InvalidInput};

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

use crate::facts::probe::{MAX_REQUEST_BYTES, ProbeError, ProbeTarget};

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

/// A probe error as the CLI reports it (bad input exits 2).
fn cli_error(e: ProbeError) -> anyhow::Error {
    if e.is_bad_input() {
        InvalidInput(e.to_string()).into()
    } else {
        e.into()
    }
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
    let req = crate::facts::probe::parse_request(&read_request(&args)?).map_err(cli_error)?;
    let target = match (&args.root, args.pid, &args.container_id) {
        (Some(root), _, _) => ProbeTarget::Root(root.clone()),
        (None, Some(pid), _) => ProbeTarget::Pid(pid),
        (None, None, Some(id)) => ProbeTarget::Container(id.clone()),
        (None, None, None) => unreachable!("clap requires one target"),
    };
    let out = crate::facts::probe::probe(&target, &args.proc_dir, &req, recipient.as_ref())
        .map_err(cli_error)?;
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(&out)?;
    w.flush()?;
    Ok(Exit::Success)
}
