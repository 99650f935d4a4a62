//! `vigil completions` and `vigil man`: shell completions and a man page,
//! generated from the same definitions as `--help`, so they never drift.

use super::Exit;

/// Print shell completions for vigil.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  vigil completions bash > /etc/bash_completion.d/vigil\n  vigil completions zsh > \"${fpath[1]}/_vigil\"\n  vigil completions fish > ~/.config/fish/completions/vigil.fish"
)]
pub(super) struct Args {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the man page (roff) for vigil or one of its commands, or write
/// them all.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  vigil man > vigil.1\n  vigil man run > vigil-run.1\n  vigil man --out man/   # every page, for man -M man vigil-run"
)]
pub(super) struct ManArgs {
    /// The command whose page to print (`run`, `render rbac` as `render-rbac`).
    #[arg(value_name = "COMMAND", conflicts_with = "out")]
    command: Option<String>,
    /// Write every page (`vigil.1`, `vigil-run.1`, …) into DIR/man1 (the
    /// layout `man -M DIR` reads).
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
}

/// Every page: (`vigil-run`, its command), the main one first; nested
/// commands as `vigil-render-rbac`, the names the main page refers to.
fn pages(cmd: clap::Command) -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix}-{}", sub.get_name());
            out.push((
                name.clone(),
                sub.clone()
                    .display_name(name.clone())
                    .bin_name(name.clone()),
            ));
            walk(&name, sub, out);
        }
    }
    let cmd = cmd.name("vigil");
    // Built, so the generated `help` commands the pages list are there.
    let mut cmd = cmd;
    cmd.build();
    let mut out = vec![("vigil".to_string(), cmd.clone())];
    walk("vigil", &cmd, &mut out);
    out
}

pub(super) fn run(args: Args, mut cmd: clap::Command) -> anyhow::Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "vigil", &mut out);
    super::print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Success)
}

pub(super) fn man(args: ManArgs, cmd: clap::Command) -> anyhow::Result<Exit> {
    let render = |cmd: clap::Command| -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        Ok(out)
    };
    let pages = pages(cmd);
    if let Some(dir) = &args.out {
        let dir = dir.join("man1");
        std::fs::create_dir_all(&dir)?;
        for (name, cmd) in pages {
            std::fs::write(dir.join(format!("{name}.1")), render(cmd)?)?;
        }
        return Ok(Exit::Success);
    }
    let want = match &args.command {
        Some(c) => format!("vigil-{}", c.replace(' ', "-")),
        None => "vigil".into(),
    };
    let Some((_, cmd)) = pages.into_iter().find(|(n, _)| *n == want) else {
        return Err(super::InvalidInput(format!(
            "no command `{}`; `vigil --help` lists them",
            crate::safeio::printable(args.command.as_deref().unwrap_or_default())
        ))
        .into());
    };
    super::print_stdout(&String::from_utf8_lossy(&render(cmd)?))?;
    Ok(Exit::Success)
}
