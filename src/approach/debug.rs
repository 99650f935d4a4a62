//! The debug approach: add an ephemeral container running `vigil probe --pid
//! 1` to the target's pod, targeting the container (so it shares its PID
//! namespace and PID 1 is the target's entrypoint), wait for it to
//! terminate, and read the framed facts from its log.
//!
//! The ephemeral container runs with a strict securityContext: the target's
//! uid when the pod spec tells it (reading `/proc/1/root` of a process with
//! the same uid needs no capability), `runAsNonRoot` unless that uid is 0,
//! no privilege escalation, every capability dropped, a read-only root
//! filesystem and the RuntimeDefault seccomp profile.
//!
//! Two limits of Kubernetes itself, said plainly:
//! - an ephemeral container can never be removed from a pod; it stays as a
//!   terminated entry until the pod is replaced. vigil names it
//!   `vigil-<12 hex of the scan id>`, so each entry leads back to one scan
//!   in the signed results and the audit log;
//! - the API refuses `resources` on ephemeral containers (they use the
//!   pod's spare resources), so `spec.debug.resources` cannot apply here;
//!   the probe bounds itself instead (read caps, walk limits, the scan
//!   timeout).

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod, SecurityContext};

use super::{
    GatherError, MAX_OUTPUT, Scan, decode_encrypted_probe_output, probe_command, random_nonce,
};
use crate::facts::{FactRequest, Facts};
use crate::policy::model::ScannerSpec;

/// Waiting reasons that mean the container will not start by itself.
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerError",
    "CreateContainerConfigError",
];

/// The ephemeral container's name for a scan: the random tail of the scan id
/// (a UUIDv7's head is a timestamp shared by scans started together).
pub fn container_name(scan_id: &str) -> String {
    let hex: String = scan_id.chars().filter(char::is_ascii_hexdigit).collect();
    format!("vigil-{}", &hex[hex.len().saturating_sub(12)..]).to_ascii_lowercase()
}

/// The hardened ephemeral container for one scan. The probe encrypts its
/// output to `recipient`, the scan's one-time key: the container's log —
/// kept by the kubelet for the pod's lifetime, readable with `get
/// pods/log` and shipped by node log collectors — holds only ciphertext.
pub fn ephemeral_container(
    name: &str,
    target_container: &str,
    run_as_user: Option<i64>,
    spec: &ScannerSpec,
    req: &FactRequest,
    recipient: &age::x25519::Recipient,
) -> EphemeralContainer {
    let recipient = recipient.to_string();
    EphemeralContainer {
        name: name.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        target_container_name: Some(target_container.to_string()),
        command: Some(probe_command(
            &["--pid", "1", "--recipient", &recipient],
            req,
        )),
        termination_message_policy: Some("File".into()),
        security_context: Some(match run_as_user {
            Some(uid) => crate::plan::manifests::hardened_security_context(uid),
            None => SecurityContext {
                run_as_user: None,
                // The image's own non-root user (65532 in vigil's image).
                run_as_non_root: Some(true),
                ..crate::plan::manifests::hardened_security_context(65532)
            },
        }),
        ..EphemeralContainer::default()
    }
}

/// How the ephemeral container ended: its exit code, or why it never ran.
fn outcome(pod: &Pod, name: &str) -> Option<Result<i32, String>> {
    let status = pod
        .status
        .as_ref()?
        .ephemeral_container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)?;
    let state = status.state.as_ref()?;
    if let Some(t) = &state.terminated {
        return Some(Ok(t.exit_code));
    }
    if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        if STUCK.contains(&reason) {
            return Some(Err(format!(
                "the debug container cannot start: {reason}: {}",
                w.message.as_deref().unwrap_or_default()
            )));
        }
    }
    None
}

/// Scan the target through an ephemeral container.
pub async fn gather(
    scan: &Scan<'_>,
    req: &FactRequest,
    spec: &ScannerSpec,
) -> Result<Facts, GatherError> {
    let (ns, pod, container) = scan.coordinates()?;
    let mut req = req.clone();
    req.nonce = random_nonce();
    // A retried scan adds a new container: ephemeral containers cannot be
    // changed or reused.
    let name = match scan.attempt {
        1 => container_name(scan.scan_id),
        n => format!("{}-{n}", container_name(scan.scan_id)),
    };
    // A one-time key for this scan's output, in memory only.
    let identity = age::x25519::Identity::generate();
    let ec = ephemeral_container(
        &name,
        container,
        scan.target.run_as_user,
        spec,
        &req,
        &identity.to_public(),
    );
    let patched = scan
        .audited(
            "patch",
            format!("pods/ephemeralcontainers {ns}/{pod} (add {name} targeting {container})"),
            scan.client.add_ephemeral_container(ns, pod, &ec),
        )
        .await?;
    let version = patched
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let exit = scan
        .audited(
            "watch",
            format!("pods {ns}/{pod} (until {name} terminates)"),
            scan.client
                .wait_for_pod(ns, pod, &version, |p| outcome(p, &name)),
        )
        .await?
        .map_err(GatherError::Other)?;
    let log = scan
        .audited(
            "get",
            format!("pods/log {ns}/{pod}/{name}"),
            scan.client.container_log(ns, pod, &name, MAX_OUTPUT),
        )
        .await?;
    // A frame counts only from a probe that finished: exit 0.
    if exit != 0 {
        let tail = super::output_tail(log.as_bytes());
        return Err(GatherError::Other(format!(
            "the debug container exited with code {exit}; its output is not taken as evidence; it printed: {tail:?}"
        )));
    }
    decode_encrypted_probe_output(&req.nonce, log.as_bytes(), &identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_random_tail_of_the_scan_id() {
        let a = container_name("019ac1d2-7f3e-7a11-8b2c-0123456789ab");
        assert_eq!(a, "vigil-0123456789ab");
        assert!(a.len() <= 63);
    }

    #[test]
    fn the_container_is_hardened_and_targets_the_container() {
        let spec = ScannerSpec {
            image: "registry.example/vigil@sha256:00".into(),
            resources: Default::default(),
        };
        let req = FactRequest::default();
        let key = age::x25519::Identity::generate().to_public();
        let ec = ephemeral_container("vigil-x", "app", Some(1000), &spec, &req, &key);
        assert_eq!(ec.target_container_name.as_deref(), Some("app"));
        assert!(ec.resources.is_none(), "the API refuses resources here");
        let sc = ec.security_context.unwrap();
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let root = ephemeral_container("vigil-x", "app", Some(0), &spec, &req, &key);
        assert_eq!(root.security_context.unwrap().run_as_non_root, Some(false));
        let cmd = ec.command.unwrap();
        assert_eq!(
            &cmd[..6],
            &[
                super::super::PROBE_BINARY,
                "probe",
                "--pid",
                "1",
                "--recipient",
                &key.to_string()
            ]
        );
    }
}
