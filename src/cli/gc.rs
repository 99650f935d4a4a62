//! `vigil gc`: delete access objects left behind by runs that were killed
//! before they could clean up.

use super::{Exit, print_stdout};

const AFTER_HELP: &str = "\
Examples:
  vigil gc                      # current kubeconfig context
  vigil gc --context prod-eu --dry-run

Deletes ServiceAccounts, Roles, RoleBindings and anchor Secrets labelled
app.kubernetes.io/managed-by=vigil whose vigil.dev/expires-at has passed
(anchors first). Objects of runs that may still be going are kept.";

/// Delete leftover vigil access objects whose time has passed.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// kubeconfig context (default: the current one).
    #[arg(long, value_name = "CONTEXT")]
    context: Option<String>,
    /// Only list what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Accept a kubeconfig that disables TLS verification.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let session = super::connect(args.context.as_deref(), args.insecure_skip_tls_verify)?;
    let (deleted, kept) = session.runtime.block_on(crate::access::gc(
        &session.caller,
        chrono::Utc::now(),
        args.dry_run,
    ))?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut out = String::new();
    for d in &deleted {
        out.push_str(&format!("{verb} {d}\n"));
    }
    print_stdout(&out)?;
    eprintln!(
        "vigil: gc: {} {verb}, {} kept (not expired yet)",
        deleted.len(),
        kept.len()
    );
    Ok(Exit::Success)
}
