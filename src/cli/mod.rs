//! Command-line interface: argument definitions and dispatch only. Each
//! subcommand lives in its own file with its `Args` and a `run` that calls
//! into the library.

mod attest;
mod audit_check;
mod completions;
mod drift;
mod gc;
mod idle;
mod import;
mod input;
use input::load_one_policy;
mod keygen;
mod merge;
mod open;
mod plan;
mod probe;
mod progress;
mod render;
mod run;
mod scanner_args;
mod schedule;
mod seal_args;
mod trust_args;
mod validate;
mod verify;
mod verify_attestation;
mod verify_image;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostic;
use input::{PlanInput, connect, load_plan};

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
    /// How progress, warnings and errors are written to stderr: text lines,
    /// or one JSON object per line. Both are passed through secret redaction.
    #[arg(long, value_enum, global = true, default_value = "text")]
    log_format: crate::log::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Plan(plan::Args),
    Run(run::Args),
    Verify(verify::Args),
    VerifyImage(verify_image::Args),
    VerifyAttestation(verify_attestation::Args),
    Attest(attest::Args),
    AuditCheck(audit_check::Args),
    Drift(drift::Args),
    Open(open::Args),
    Keygen(keygen::Args),
    Gc(gc::Args),
    Render(render::Args),
    Probe(probe::Args),
    Idle(idle::Args),
    Import(import::Args),
    Merge(merge::Args),
    Schedule(schedule::Args),
    Completions(completions::Args),
    Man(completions::ManArgs),
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
    crate::log::init(cli.log_format);
    let result = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Run(a) => run::run(a),
        Command::Verify(a) => verify::run(a),
        Command::VerifyImage(a) => verify_image::run(a),
        Command::VerifyAttestation(a) => verify_attestation::run(a),
        Command::Attest(a) => attest::run(a),
        Command::AuditCheck(a) => audit_check::run(a),
        Command::Drift(a) => drift::run(a),
        Command::Open(a) => open::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Gc(a) => gc::run(a),
        Command::Render(a) => render::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Idle(a) => idle::run(a),
        Command::Import(a) => import::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Schedule(a) => schedule::run(a),
        Command::Completions(a) => completions::run(a, <Cli as clap::CommandFactory>::command()),
        Command::Man(a) => completions::man(a, <Cli as clap::CommandFactory>::command()),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            if is_broken_pipe(&e) {
                return Exit::Success.into();
            }
            // The log writer redacts too; this keeps the message itself clean.
            tracing::error!("{}", crate::redact::redact(&format!("{e:#}")));
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
    if crate::log::is_json() {
        // One JSON line each, with the diagnostic's fields.
        for d in diags {
            let file = d
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            let hint = d.hint.as_deref().unwrap_or_default();
            if d.is_error() {
                tracing::error!(code = d.code, file = %file, line = d.line, column = d.column, hint = %hint, "{}", d.message);
            } else {
                tracing::warn!(code = d.code, file = %file, line = d.line, column = d.column, hint = %hint, "{}", d.message);
            }
        }
        return diags.iter().any(Diagnostic::is_error);
    }
    let stderr = std::io::stderr();
    let mut w = stderr.lock();
    for d in diags {
        // A policy may quote a pasted key; its snippet must not show it.
        let _ = write!(w, "{}", crate::redact::redact(&d.render()));
        let _ = writeln!(w);
    }
    diags.iter().any(Diagnostic::is_error)
}

/// Write to stdout, turning a closed pipe into a quiet exit.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(text.as_bytes())?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests_support {
    /// Returns true if and only if the command at `path` ("vigil keygen
    /// age") takes `--flag`.
    pub(super) fn takes(cmd: &clap::Command, path: &str, flag: &str) -> bool {
        let mut c = cmd;
        for part in path.split(' ').skip(1) {
            match c.find_subcommand(part) {
                Some(s) => c = s,
                None => return false,
            }
        }
        c.get_arguments().any(|a| a.get_long() == Some(flag))
    }
}

#[cfg(test)]
mod vocabulary {
    use std::collections::BTreeMap;

    /// Each long flag's shape in one command: its value names and the values
    /// it accepts (none for a switch).
    fn shape(a: &clap::Arg) -> String {
        let names: Vec<String> = a
            .get_value_names()
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let mut values: Vec<String> = a
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_string())
            .collect();
        values.sort();
        let takes = a.get_num_args().is_none_or(|n| n.takes_values());
        if !takes || matches!(a.get_action(), clap::ArgAction::SetTrue) {
            return "switch".into();
        }
        format!("{} [{}]", names.join(" "), values.join("|"))
    }

    fn walk(
        path: &str,
        cmd: &clap::Command,
        out: &mut BTreeMap<String, BTreeMap<String, Vec<String>>>,
    ) {
        for a in cmd.get_arguments() {
            if let Some(long) = a.get_long() {
                out.entry(long.to_string())
                    .or_default()
                    .entry(shape(a))
                    .or_default()
                    .push(path.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(&format!("{path} {}", sub.get_name()), sub, out);
        }
    }

    /// One flag name, one meaning: every command that takes `--NAME` takes
    /// the same kind of value (value name and accepted values). A flag that
    /// means different things in different commands is how users mistype a
    /// pipeline; the few deliberate exceptions are listed with why.
    #[test]
    fn one_flag_name_one_meaning() {
        let mut cmd = <super::Cli as clap::CommandFactory>::command();
        cmd.build();
        let mut flags = BTreeMap::new();
        walk("vigil", &cmd, &mut flags);
        // Deliberate exceptions: (flag, command, why).
        const ALLOWED: &[(&str, &str, &str)] = &[
            (
                "format",
                "vigil plan",
                "plan also prints the plan's objects as YAML",
            ),
            (
                "out",
                "vigil keygen signing",
                "a path prefix: the key pair is two files",
            ),
            (
                "out",
                "vigil keygen age",
                "a path prefix: the identity and recipient are two files",
            ),
        ];
        let mut clashes = Vec::new();
        for (name, shapes) in &mut flags {
            for shape in shapes.values_mut() {
                shape.retain(|cmd| !ALLOWED.iter().any(|(f, c, _)| f == name && c == cmd));
            }
            shapes.retain(|_, cmds| !cmds.is_empty());
            if shapes.len() > 1 {
                clashes.push(format!("--{name}: {shapes:?}"));
            }
        }
        // Every exception is still needed (a stale one hides nothing).
        for (f, c, _) in ALLOWED {
            assert!(
                super::tests_support::takes(&cmd, c, f),
                "{c} no longer takes --{f}: remove it from ALLOWED"
            );
        }
        assert!(clashes.is_empty(), "{}", clashes.join("\n"));
    }
}
