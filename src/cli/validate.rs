//! `vigil validate`: check policy and profile files.

use std::path::PathBuf;

use super::{Exit, print_stdout, report_diagnostics};
use crate::diag;

const AFTER_HELP: &str = "\
Examples:
  vigil validate policies/
  vigil validate policies/payments.yaml policies/profiles/ --format json

Exits 0 when everything is valid (warnings allowed), 2 when anything is invalid.";

/// Check policy and profile files against the schemas and semantic rules.
///
/// Reads files and directories (recursively, *.yaml and *.yml), reports
/// every problem with file:line:column, the source line and a hint.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// Policy/profile files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// Readable diagnostics with source snippets, on stderr (`human` is
    /// its old name).
    #[value(alias = "human")]
    Text,
    /// Machine-readable diagnostics on stdout, for CI annotations.
    Json,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let (set, diags) = crate::policy::load(&args.paths);
    let failed = diags.iter().any(|d| d.is_error());
    match args.format {
        Format::Json => print_stdout(&(crate::redact::redact(&diag::to_json(&diags)) + "\n"))?,
        Format::Text => {
            report_diagnostics(&diags);
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.len() - errors;
            if failed {
                eprintln!(
                    "vigil: {errors} error(s), {warnings} warning(s) in {} file(s)",
                    set.files
                );
            } else {
                eprintln!(
                    "vigil: {} file(s) valid: {} policy(ies), {} profile(s), {warnings} warning(s)",
                    set.files,
                    set.policies.len(),
                    set.profiles.len()
                );
            }
        }
    }
    Ok(if failed { Exit::Invalid } else { Exit::Success })
}
