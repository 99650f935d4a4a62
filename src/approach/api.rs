//! The api approach: ONE `pods/exec` per container runs the generated
//! gatherer script (`facts::shell`) as the run's scoped ServiceAccount and
//! returns every fact; upstream tools spend one round trip per check.

use super::{GatherError, MAX_OUTPUT, Scan, random_nonce};
use crate::facts::{FactRequest, Facts, shell};

/// Run the gatherer in the target container with one exec.
pub async fn gather(scan: &Scan<'_>, req: &FactRequest) -> Result<Facts, GatherError> {
    let (ns, pod, container) = scan.coordinates()?;
    let mut req = req.clone();
    req.nonce = random_nonce();
    let script = shell::script(&req);
    let out = scan
        .audited(
            "exec",
            format!("pods/exec {ns}/{pod}/{container} (gatherer)"),
            scan.client.exec(
                ns,
                pod,
                container,
                vec!["/bin/sh".into(), "-c".into(), script],
                MAX_OUTPUT,
            ),
        )
        .await?;
    match shell::parse(&req, &out.stdout) {
        Ok(facts) => Ok(facts),
        Err(shell::GatherError::NoOutput) => {
            // What the runtime said, and what the container printed (which
            // is the container's: it goes through redaction like any error).
            let stderr: String = String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(200)
                .collect();
            let why = match (out.status_message, stderr.is_empty()) {
                (Some(m), true) => m,
                (Some(m), false) => format!("{m}; stderr: {stderr:?}"),
                (None, _) => stderr,
            };
            Err(GatherError::NoShell(why))
        }
        // The stream was cut midway: another attempt may get it whole.
        Err(e @ shell::GatherError::Truncated) => Err(GatherError::Transient(
            format!("gatherer output refused: {e}"),
            None,
        )),
        Err(e) => Err(GatherError::Other(format!("gatherer output refused: {e}"))),
    }
}
