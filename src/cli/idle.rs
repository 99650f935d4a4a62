//! `vigil idle`: the main process of the scanner sidecar. It does nothing
//! until SIGTERM or SIGINT; scans exec `vigil probe` next to it.

use super::Exit;

/// Wait, using no CPU, until SIGTERM or SIGINT (the scanner sidecar's main process).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The sidecar that `vigil render sidecar` adds runs this; each scan execs\n`vigil probe --container-id ID` in the sidecar."
)]
pub(super) struct Args {}

pub(super) fn run(_: Args) -> anyhow::Result<Exit> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = async {
                // Handlers are installed: say so (the pod log shows it).
                eprintln!("vigil idle: waiting for scans; SIGTERM stops");
                std::future::pending::<()>().await
            } => {}
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        anyhow::Ok(())
    })?;
    Ok(Exit::Success)
}
