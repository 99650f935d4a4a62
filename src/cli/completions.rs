//! `vigil completions` and `vigil man`: shell completions and a man page,
//! generated from the same definitions as `--help`, so they never drift.

use super::Exit;

/// Print shell completions for vigil.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  vigil completions bash > /etc/bash_completion.d/vigil\n  vigil completions zsh > \"${fpath[1]}/_vigil\"\n  vigil completions fish > ~/.config/fish/completions/vigil.fish"
)]
pub struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the man page (roff) for vigil.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  vigil man > vigil.1 && man ./vigil.1")]
pub struct ManArgs {}

pub fn run(args: Args, mut cmd: clap::Command) -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "vigil", &mut out);
    super::print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Success)
}

pub fn man(_: ManArgs, cmd: clap::Command) -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    super::print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Success)
}
