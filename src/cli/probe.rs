//! `vigil probe`: the fact collector on its own, printing framed facts.
//!
//! This is the agent the debug and sidecar approaches run inside a pod; run
//! locally it reads a root filesystem directory.

use std::io::Read;
use std::path::PathBuf;

use super::{Exit, InvalidInput};
use crate::facts::{FactRequest, frame, rootfs};

const AFTER_HELP: &str = "\
Examples:
  vigil probe --root fixtures/rootfs/debian --request request.json
  echo '{\"nonce\":\"n1\",\"max_file_bytes\":1048576,\"stat\":[\"/etc/passwd\"],\"read\":[],\"read_dirs\":[],\"walks\":[],\"processes\":false,\"commands\":[]}' \\
    | vigil probe --root / --request -

Prints one frame: `VIGIL-FACTS v1 <nonce> <length>`, the facts as JSON, and
`VIGIL-END <nonce> <sha256>`.";

/// Gather facts from a root filesystem and print them as one framed JSON document.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The root filesystem to read (every path resolves inside it).
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The fact request as JSON: a file, or - for standard input.
    #[arg(long, value_name = "FILE")]
    request: PathBuf,
}

/// Requests larger than this are refused (a real one is a few KiB).
const MAX_REQUEST_BYTES: u64 = 4 * 1024 * 1024;

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let mut bytes = Vec::new();
    let read = if args.request.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_REQUEST_BYTES + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(&args.request)
            .and_then(|f| f.take(MAX_REQUEST_BYTES + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| {
        InvalidInput(format!(
            "cannot read request {}: {}",
            args.request.display(),
            crate::policy::source::io_reason(&e)
        ))
    })?;
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
    let facts = rootfs::collect(&args.root, &req).map_err(|e| {
        anyhow::anyhow!(
            "cannot open root {}: {}",
            args.root.display(),
            crate::policy::source::io_reason(&e)
        )
    })?;
    let out = frame::encode(&req.nonce, &facts);
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(&out)?;
    w.flush()?;
    Ok(Exit::Success)
}
