//! `vigil audit-check`: reconcile the API server's audit log with a sealed run.

use std::path::PathBuf;

use super::{Exit, InvalidInput, print_stdout};
use crate::monitor::{self, Severity};
use crate::seal::keys::Signer;
use crate::seal::verify::verify;

const AFTER_HELP: &str = "\
Examples:
  B=results/live/RUN_ID K=signer.pub.pem
  vigil audit-check $B --audit-log audit.log --trusted-key $K --identity reader.key
  vigil audit-check $B --audit-log old.log.gz --audit-log audit.log --trusted-key $K --fail-on high

Every request made with the run's credentials (its tokens' credential ids,
its ServiceAccounts) must match a line of the run's signed audit trail;
everything else is a finding (docs/monitoring.md lists them). A log that does
not cover the run, or lacks what a check needs, is a finding too.

Exit 0 when clean, 1 when a finding is at or above --fail-on, 2 on bad input
(a bundle that does not verify, an unreadable log).";

/// Reconcile the API server's audit log with a sealed run.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(super) struct Args {
    /// The bundle directory (OUT/<policy>/<run-id>).
    #[arg(value_name = "BUNDLE")]
    bundle: PathBuf,
    /// An API server audit log (JSON lines, plain or gzip); repeat for rotated files.
    #[arg(long = "audit-log", value_name = "FILE", required = true)]
    logs: Vec<PathBuf>,
    #[command(flatten)]
    trusted: super::trust_args::TrustedKeys,
    #[command(flatten)]
    identities: super::trust_args::Identities,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Fail (exit 1) on findings at or above this severity.
    #[arg(long = "fail-on", value_enum, default_value = "medium")]
    fail_on: FailOn,
    /// Write the result into the bundle as a signed statement
    /// (audit-check.dsse.json, checked by `vigil verify`).
    #[arg(long, requires = "signing_key")]
    attest: bool,
    /// The Ed25519 key that signs the attestation (PKCS#8 PEM).
    #[arg(long = "signing-key", value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// A table for people (`table` is its old name).
    #[value(alias = "table")]
    Text,
    /// The report as JSON.
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FailOn {
    Low,
    Medium,
    High,
    Critical,
}

pub(super) fn run(args: Args) -> anyhow::Result<Exit> {
    let trusted = args.trusted.load()?;
    let identities = args.identities.load()?;
    let signer = match &args.signing_key {
        Some(p) => Some(Signer::from_file(p).map_err(|e| InvalidInput(e.to_string()))?),
        None => None,
    };
    let v = verify(&args.bundle, &trusted, &identities);
    let run = monitor::run_of(&v).map_err(|e| InvalidInput(e.to_string()))?;
    let report = monitor::check(&run, &args.logs).map_err(|e| InvalidInput(e.to_string()))?;
    match args.format {
        Format::Text => print_stdout(&monitor::render_table(&report))?,
        Format::Json => print_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?,
    }
    let fail_on = match args.fail_on {
        FailOn::Low => Severity::Low,
        FailOn::Medium => Severity::Medium,
        FailOn::High => Severity::High,
        FailOn::Critical => Severity::Critical,
    };
    if let (true, Some(signer)) = (args.attest, &signer) {
        let predicate = monitor::attestation_predicate(&report, fail_on);
        let path = crate::seal::attest::write(&args.bundle, predicate, signer)
            .map_err(|e| InvalidInput(e.to_string()))?;
        eprintln!("vigil: audit-check: attested in {}", path.display());
    }
    Ok(match monitor::verdict(&report, fail_on) {
        monitor::AuditVerdict::Clean => Exit::Success,
        monitor::AuditVerdict::Findings => Exit::Failed,
    })
}
