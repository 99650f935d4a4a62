//! The api approach: ONE `pods/exec` per container runs the generated
//! gatherer script (`facts::shell`) as the run's scoped ServiceAccount and
//! returns every fact; upstream tools spend one round trip per check.

use super::{GatherError, MAX_OUTPUT, Scan, random_nonce};
use crate::facts::{FactRequest, Facts, shell};

/// Linux refuses a single argument longer than 32 pages (`MAX_ARG_STRLEN`,
/// 128 KiB); scripts are cut into chunks well below it.
const MAX_ARG_CHUNK: usize = 96 * 1024;

/// All arguments together must stay below `ARG_MAX` (commonly 2 MiB, a
/// quarter of the stack limit, shared with the environment).
const MAX_SCRIPT: usize = 1536 * 1024;

/// The command that runs `script`: `sh -c SCRIPT` when it fits one
/// argument, else `sh -c 'IFS=; s="$*"; unset IFS; eval "$s"' vigil
/// CHUNK…` — the chunks joined with nothing between them. Not stdin: signalling its end needs the v5
/// stream protocol (on by default only from Kubernetes 1.30,
/// kubernetes/kubernetes#123281, KEP-4006); on a v4 connection kube-rs can
/// only close the whole WebSocket, and the output would be lost.
pub fn command(script: &str) -> Result<Vec<String>, GatherError> {
    if script.len() <= MAX_ARG_CHUNK {
        return Ok(vec![SHELL.into(), "-c".into(), script.into()]);
    }
    if script.len() > MAX_SCRIPT {
        return Err(GatherError::Other(format!(
            "the gatherer script for this profile is {} KiB, more than an exec can carry ({} KiB); split the profile's paths over fewer controls or use the debug approach",
            script.len() / 1024,
            MAX_SCRIPT / 1024
        )));
    }
    let mut argv = vec![
        SHELL.into(),
        "-c".into(),
        // Join with no separator, then restore default word splitting,
        // which the script relies on.
        "IFS=; s=\"$*\"; unset IFS; eval \"$s\"".into(),
        "vigil-gatherer".into(),
    ];
    let mut rest = script;
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_ARG_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        argv.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    Ok(argv)
}

/// The shell the gatherer runs in.
const SHELL: &str = "/bin/sh";

/// Returns true if and only if an exec's status says the shell itself could
/// not be run: `sh` exit 126 (not executable) or 127 (not found), or the
/// runtime's own refusal to start it (`InternalError` naming a missing
/// executable). Empty output, an OOM kill (137), a timeout or any other
/// exit is not "no shell": those are errors, and `auto` must not answer
/// them by adding an ephemeral container to the pod for good.
pub fn means_no_shell(out: &crate::cluster::ExecOutput) -> bool {
    if matches!(out.exit_code, Some(126 | 127)) {
        return true;
    }
    // The runtime's refusal must be about the shell: a message such as
    // "container not found" (the container went away) or a missing
    // working directory is not a missing shell.
    let message = out.status_message.as_deref().unwrap_or_default();
    out.status_reason.as_deref() == Some("InternalError")
        && message.contains(SHELL)
        && ["executable file not found", "no such file or directory"]
            .iter()
            .any(|m| message.contains(m))
}

/// Run the gatherer in the target container with one exec.
pub async fn gather(scan: &Scan<'_>, req: &FactRequest) -> Result<Facts, GatherError> {
    let (ns, pod, container) = scan.coordinates()?;
    let mut req = req.clone();
    req.nonce = random_nonce();
    let script = shell::script(&req);
    // Parsed as it streams: a line no answer can have, or a record that is
    // refused, ends the exec at once, and memory holds the facts kept, not
    // the output.
    let mut parser = shell::Parser::new(&req);
    let mut refused: Option<shell::OutputError> = None;
    let argv = command(&script)?;
    let attributes = [(
        crate::audit::COMMAND_SHA256.to_string(),
        crate::audit::command_sha256(&argv),
    )]
    .into();
    let streamed = scan
        .audited_with(
            crate::audit::Call::Exec {
                namespace: ns.into(),
                pod: pod.into(),
                container: container.into(),
            },
            format!("pods/exec {ns}/{pod}/{container} (gatherer)"),
            attributes,
            scan.client.exec_streaming(
                ns,
                pod,
                container,
                argv,
                MAX_OUTPUT,
                crate::cluster::Stdout::Each(&mut |chunk| match parser.push(chunk) {
                    Ok(_) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                }),
            ),
        )
        .await;
    if let Some(e) = refused {
        return Err(GatherError::Other(format!("gatherer output refused: {e}")));
    }
    let out = streamed?;
    let parsed = parser.finish();
    match parsed {
        Ok(facts) => Ok(facts),
        Err(shell::OutputError::NoOutput) => {
            // What the runtime said, and what the container printed (which
            // is the container's: it goes through redaction like any error).
            let stderr: String = String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(200)
                .collect();
            let status = match (&out.exit_code, &out.status_message) {
                (_, Some(m)) => m.clone(),
                (Some(c), None) => format!("exit code {c}"),
                (None, None) => "no exit status".into(),
            };
            let why = if stderr.is_empty() {
                status
            } else {
                format!("{status}; stderr: {stderr:?}")
            };
            if means_no_shell(&out) {
                Err(GatherError::NoShell(why))
            } else {
                Err(GatherError::Other(format!(
                    "the gatherer produced no output ({why}); not taken as a missing shell"
                )))
            }
        }
        // The stream was cut midway: another attempt may get it whole.
        Err(e @ shell::OutputError::Truncated) => Err(GatherError::transient(format!(
            "gatherer output refused: {e}"
        ))),
        Err(e) => Err(GatherError::Other(format!("gatherer output refused: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ExecOutput;

    fn out(exit: Option<i32>, reason: Option<&str>, message: Option<&str>) -> ExecOutput {
        ExecOutput {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: exit,
            status_reason: reason.map(str::to_string),
            status_message: message.map(str::to_string),
        }
    }

    #[test]
    fn only_a_shell_that_cannot_run_means_no_shell() {
        let internal = Some("InternalError");
        for (o, no_shell) in [
            (out(Some(127), Some("NonZeroExitCode"), None), true),
            (out(Some(126), Some("NonZeroExitCode"), None), true),
            (
                out(
                    None,
                    internal,
                    Some(
                        "Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"/bin/sh\": stat /bin/sh: no such file or directory: unknown",
                    ),
                ),
                true,
            ),
            (
                out(
                    None,
                    internal,
                    Some(
                        "Internal error occurred: error executing command in container: container_linux.go:380: starting container process caused: exec: \"/bin/sh\": executable file not found in $PATH",
                    ),
                ),
                true,
            ),
            // Empty output with success, an OOM kill, another exit, a lost
            // status, another internal error: errors, not "no shell".
            (out(Some(0), None, None), false),
            (out(Some(137), Some("NonZeroExitCode"), None), false),
            (out(Some(1), Some("NonZeroExitCode"), None), false),
            (out(None, None, None), false),
            (
                out(
                    None,
                    internal,
                    Some(
                        "Internal error occurred: error executing command in container: container is not running",
                    ),
                ),
                false,
            ),
            // The container went away, or another path is missing: not
            // the shell.
            (
                out(
                    None,
                    internal,
                    Some(
                        "Internal error occurred: error executing command in container: failed to exec in container: container \"0123abcd\" not found",
                    ),
                ),
                false,
            ),
            (
                out(
                    None,
                    internal,
                    Some(
                        "Internal error occurred: error executing command in container: failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/app\") set in config.json failed: no such file or directory: unknown",
                    ),
                ),
                false,
            ),
        ] {
            assert_eq!(means_no_shell(&o), no_shell, "{o:?}");
        }
    }

    #[test]
    fn long_scripts_go_as_argument_chunks_that_join_back() {
        assert_eq!(command("echo hi").unwrap(), ["/bin/sh", "-c", "echo hi"]);
        let script = "é".repeat(150_000) + "\necho done\n";
        let argv = command(&script).unwrap();
        assert_eq!(argv[3], "vigil-gatherer");
        assert!(argv[4..].iter().all(|a| a.len() <= MAX_ARG_CHUNK));
        assert_eq!(argv[4..].concat(), script);
        assert!(command(&"x".repeat(MAX_SCRIPT + 1)).is_err());
    }
}
