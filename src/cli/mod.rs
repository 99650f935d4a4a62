//! Command-line interface: argument definitions and dispatch only. Each
//! subcommand lives in its own file with its `Args` and a `run` that calls
//! into the library.

mod keygen;
mod open;
mod plan;
mod probe;
mod render;
mod run;
mod validate;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostic;

/// Exit codes, documented in the README and kept by every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Success = 0,
    /// A compliance threshold or a verification failed.
    Failed = 1,
    /// Invalid input or usage.
    Invalid = 2,
    /// A run had errors (some targets could not be scanned).
    RunErrors = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that means "the user's input is wrong" (exit 2) rather than a
/// failed run (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

const AFTER_HELP: &str = "\
Examples:
  vigil run policies/demo.yaml policies/profiles/
  vigil validate policies/
  vigil plan policies/ --inventory fixtures/cluster/snapshot.json
  vigil render rbac policies/ --inventory fixtures/cluster/snapshot.json > rbac.yaml

Exit codes: 0 success, 1 threshold or verification failed,
            2 invalid input or usage, 3 the run had errors.";

/// Least-privilege container compliance scanning with sealed, verifiable results.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, after_help = AFTER_HELP, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Plan(plan::Args),
    Run(run::Args),
    Verify(verify::Args),
    Open(open::Args),
    Keygen(keygen::Args),
    Render(render::Args),
    Probe(probe::Args),
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Invalid.into()
            } else {
                Exit::Success.into()
            };
        }
    };
    let result = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Run(a) => run::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Open(a) => open::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Render(a) => render::run(a),
        Command::Probe(a) => probe::run(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            if is_broken_pipe(&e) {
                return Exit::Success.into();
            }
            eprintln!("vigil: error: {e:#}");
            if e.downcast_ref::<InvalidInput>().is_some() {
                Exit::Invalid.into()
            } else {
                Exit::RunErrors.into()
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print diagnostics to stderr (human form). Returns true if and only if
/// any of them is an error.
fn report_diagnostics(diags: &[Diagnostic]) -> bool {
    let stderr = std::io::stderr();
    let mut w = stderr.lock();
    for d in diags {
        let _ = write!(w, "{}", d.render());
        let _ = writeln!(w);
    }
    diags.iter().any(Diagnostic::is_error)
}

/// Inputs shared by `plan` and `render`.
#[derive(Debug, clap::Args)]
pub struct PlanInput {
    /// Policy and profile files or directories.
    #[arg(required = true, value_name = "POLICY")]
    paths: Vec<std::path::PathBuf>,
    /// Cluster snapshot: the JSON of `kubectl get pods -A -o json`.
    #[arg(long, value_name = "FILE")]
    inventory: Option<std::path::PathBuf>,
    /// Only these policies (by metadata.name); all when not given.
    #[arg(long = "policy", value_name = "NAME")]
    only: Vec<String>,
    /// Run id used in per-run object names (a real run uses a fresh UUIDv7).
    #[arg(long, value_name = "ID", default_value = "plan")]
    run_id: String,
}

/// Load policies and the inventory and compute the plan; diagnostics go to
/// stderr, and any error becomes [`InvalidInput`].
fn load_plan(input: &PlanInput) -> anyhow::Result<(crate::policy::PolicySet, crate::plan::Plan)> {
    let (set, diags) = crate::policy::load(&input.paths);
    if report_diagnostics(&diags) {
        return Err(InvalidInput(
            "the policies are invalid; fix the errors above (`vigil validate` shows them too)"
                .into(),
        )
        .into());
    }
    let snapshot = match &input.inventory {
        Some(path) => Some(
            crate::inventory::Snapshot::from_path(path).map_err(|e| InvalidInput(e.to_string()))?,
        ),
        None => None,
    };
    let inventory = snapshot
        .as_ref()
        .map(|s| s as &dyn crate::inventory::Inventory);
    let options = crate::plan::PlanOptions {
        run_id: input.run_id.clone(),
    };
    match crate::plan::plan(&set, &input.only, inventory, &options) {
        Ok((plan, warnings)) => {
            report_diagnostics(&warnings);
            Ok((set, plan))
        }
        Err(diags) => {
            report_diagnostics(&diags);
            Err(InvalidInput("cannot plan; fix the errors above".into()).into())
        }
    }
}

/// Write to stdout, turning a closed pipe into a quiet exit.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(text.as_bytes())?;
    w.flush()?;
    Ok(())
}
