//! The `vigil` binary: parse arguments, run, print the final error once,
//! and pick the exit code (see `vigil::cli::Exit`).

use std::process::ExitCode;

fn main() -> ExitCode {
    vigil::cli::main()
}
