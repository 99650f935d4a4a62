//! The sidecar approach: the pod carries a vigil scanner sidecar and shares
//! its process namespace (`vigil render sidecar` prints the patch). One
//! `pods/exec` into the sidecar runs `vigil probe --container-id ID`, which
//! finds the target container's processes by their cgroups (see
//! `facts::procfs`) and reads `/proc/<pid>/root`. As in the debug approach,
//! the probe encrypts its output to a one-time key of this scan, so what
//! passes through the kubelet and the API server is ciphertext. The plan
//! uses a sidecar only when it runs the pinned scanner image and can read
//! the target (`plan::reach`).

use super::{GatherError, MAX_OUTPUT, Scan, probe_command, probe_decoder, random_nonce};
use crate::cluster::Stdout;
use crate::facts::{FactRequest, Facts, procfs};

/// Exec the probe in the pod's sidecar.
pub(crate) async fn gather(scan: &Scan<'_>, req: &FactRequest) -> Result<Facts, GatherError> {
    let (ns, pod, container) = scan.coordinates()?;
    let t = scan.target;
    let sidecar = t.sidecar.as_deref().unwrap_or("vigil-scanner");
    let id = t.container_id.as_deref().map(procfs::bare_container_id).ok_or_else(|| {
        format!("the pod status gives no containerID for {container} (is it running?); the sidecar finds a container by its ID")
    })?;
    let mut req = req.clone();
    req.nonce = random_nonce();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let command = probe_command(&["--container-id", id, "--recipient", &recipient], &req);
    let attributes = [(
        crate::audit::COMMAND_SHA256.to_string(),
        crate::audit::command_sha256(&command),
    )]
    .into();
    // Decrypted and parsed as it streams: the scan holds the frame's body,
    // not the output.
    let (chunks, decoded) = probe_decoder(req.nonce.clone(), identity);
    let (out, decoded) = tokio::join!(
        scan.audited_with(
            crate::audit::Call::Exec {
                namespace: ns.into(),
                pod: pod.into(),
                container: sidecar.into(),
            },
            format!("pods/exec {ns}/{pod}/{sidecar} (probe for {container})"),
            attributes,
            scan.client.exec_streaming(
                ns,
                pod,
                sidecar,
                command,
                MAX_OUTPUT,
                Stdout::Channel(chunks)
            ),
        ),
        decoded
    );
    let (out, decoded) = decoded.with_stream(out)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: String = stderr.trim().chars().take(300).collect();
    // A frame counts only from a probe that finished: exit 0.
    if out.exit_code != Some(0) {
        let code = out
            .exit_code
            .map_or("no exit status".to_string(), |c| format!("exit code {c}"));
        return Err(GatherError::Other(format!(
            "the probe in the sidecar did not finish cleanly ({code}); its output is not taken as evidence; stderr: {stderr:?}"
        )));
    }
    decoded.map_err(|e| match e {
        GatherError::Other(m) if !stderr.is_empty() => {
            GatherError::Other(format!("{m}; stderr: {stderr:?}"))
        }
        other => other,
    })
}
