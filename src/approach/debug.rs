//! The debug approach: add an ephemeral container running `vigil probe
//! --container-id ID` to the target's pod, targeting the container, wait
//! for it to terminate, and read the framed facts from its log.
//!
//! The probe finds the target by its container ID, never as PID 1: in a pod
//! with `shareProcessNamespace: true` an ephemeral container joins the
//! pod's PID namespace, where PID 1 is the `pause` container.
//!
//! Linux lets one process read another's `/proc/<pid>/root` only if it
//! passes the ptrace access check (`__ptrace_may_access` in
//! `kernel/ptrace.c`): the same uid *and* gid, and — `cap_ptrace_access_check`
//! in `security/commoncap.c` — the target's permitted capabilities a subset
//! of its own; or `CAP_SYS_PTRACE`, which vigil never asks for. So the
//! ephemeral container runs as exactly the target's uid and gid (from the
//! kubelet's `status.containerStatuses[].user.linux`, else the pod spec's
//! `runAsUser`/`runAsGroup`); when they are unknown the scan is an error
//! result that says so, not a container that cannot read its target. A
//! non-root target has no permitted capabilities after exec, so the probe
//! drops them all; a root target keeps its capability set (the runtime
//! default, or what its spec adds and drops), and the probe mirrors it —
//! never more than the target already holds.
//!
//! Otherwise the ephemeral container is strict: `runAsNonRoot` unless the
//! uid is 0, no privilege escalation, a read-only root filesystem and the
//! RuntimeDefault seccomp profile.
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

use super::{GatherError, MAX_OUTPUT, Scan, probe_command, probe_decoder, random_nonce};
use crate::cluster::Stdout;
use crate::facts::{FactRequest, Facts, procfs};
use crate::plan::PlannedTarget;
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
pub(crate) fn container_name(scan_id: &str) -> String {
    let hex: String = scan_id.chars().filter(char::is_ascii_hexdigit).collect();
    format!("vigil-{}", &hex[hex.len().saturating_sub(12)..]).to_ascii_lowercase()
}

/// The identity and capabilities the probe needs to read the target's
/// root (see the module doc), or why they cannot be known.
pub(crate) fn scanner_security_context(
    target: &PlannedTarget,
) -> Result<SecurityContext, super::GatherError> {
    let container = target.container.as_deref().unwrap_or_default();
    let (Some(uid), Some(gid)) = (target.run_as_user, target.run_as_group) else {
        return Err(super::GatherError::Other(format!(
            "the debug approach needs the uid and gid that {container} runs as: Linux lets the probe read another container's /proc/PID/root only with the same uid and gid (the ptrace access check), and neither the pod status (status.containerStatuses[].user, Kubernetes 1.31+) nor the pod spec (runAsUser and runAsGroup) tells them; set both in the container's securityContext, or scan it with the api or sidecar approach"
        )));
    };
    let mut sc = crate::plan::manifests::hardened_security_context(uid);
    sc.run_as_group = Some(gid);
    if uid == 0 {
        // A root target's permitted set is its bounding set: the runtime
        // default adjusted by its spec. Hold the same, no more.
        sc.capabilities = target.capabilities.clone();
    }
    Ok(sc)
}

/// The ephemeral container for one scan. The probe encrypts its output to
/// `recipient`, the scan's one-time key: the container's log — kept by the
/// kubelet for the pod's lifetime, readable with `get pods/log` and shipped
/// by node log collectors — holds only ciphertext.
pub(crate) fn ephemeral_container(
    name: &str,
    target: &PlannedTarget,
    spec: &ScannerSpec,
    req: &FactRequest,
    recipient: &age::x25519::Recipient,
) -> Result<EphemeralContainer, super::GatherError> {
    let container = target.container.as_deref().unwrap_or_default();
    let id = target
        .container_id
        .as_deref()
        .map(procfs::bare_container_id)
        .ok_or_else(|| {
            super::GatherError::Other(format!("the pod status gives no containerID for {container} (is it running?); the debug probe finds its target by that ID"))
        })?;
    let recipient = recipient.to_string();
    Ok(EphemeralContainer {
        name: name.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        target_container_name: Some(container.to_string()),
        command: Some(probe_command(
            &["--container-id", id, "--recipient", &recipient],
            req,
        )),
        termination_message_policy: Some("File".into()),
        security_context: Some(scanner_security_context(target)?),
        ..EphemeralContainer::default()
    })
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
            // A pull failure is the node's credentials: ephemeral
            // containers pull with the pod's imagePullSecrets.
            let hint = if reason.contains("ImagePull") || reason == "InvalidImageName" {
                "; the node pulls the scanner image with the pod's imagePullSecrets: check that the image reference and digest exist and that those secrets (or the node's credentials) can read its registry"
            } else {
                ""
            };
            return Some(Err(format!(
                "the debug container cannot start: {reason}: {}{hint}",
                w.message.as_deref().unwrap_or_default()
            )));
        }
    }
    None
}

/// Scan the target through an ephemeral container.
pub(crate) async fn gather(
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
    let ec = ephemeral_container(&name, scan.target, spec, &req, &identity.to_public())?;
    let attributes = [(
        crate::audit::IMAGE.to_string(),
        ec.image.clone().unwrap_or_default(),
    )]
    .into();
    let patched = scan
        .audited_with(
            crate::audit::Call::AddEphemeral {
                namespace: ns.into(),
                pod: pod.into(),
            },
            format!("pods/ephemeralcontainers {ns}/{pod} (add {name} targeting {container})"),
            attributes,
            scan.client.add_ephemeral_container(ns, pod, &ec),
        )
        .await
        .map_err(|e| match e {
            // Pod Security admission, not RBAC: it judges the whole pod of
            // an ephemeral-container update, so a pod that itself breaks
            // its namespace's level refuses every debug container.
            GatherError::Forbidden(m) if m.contains("violates PodSecurity") => {
                GatherError::Other(format!(
                    "Pod Security admission refused the debug container ({m}). It judges the whole pod, its own containers included, against the namespace's enforce level, so a pod that breaks that level cannot be scanned with the debug approach: use the api approach (if the image has a shell) or a vigil sidecar"
                ))
            }
            other => other,
        })?;
    let version = patched
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let exit = scan
        .audited(
            crate::audit::Call::WatchPod {
                namespace: ns.into(),
                pod: pod.into(),
            },
            format!("pods {ns}/{pod} (until {name} terminates)"),
            scan.client
                .wait_for_pod(ns, pod, &version, |p| outcome(p, &name)),
        )
        .await?
        .map_err(GatherError::Other)?;
    // Decrypted and parsed as it streams: the scan holds the frame's body,
    // not the log.
    let (chunks, decoded) = probe_decoder(req.nonce.clone(), identity);
    let (log, decoded) = tokio::join!(
        scan.audited(
            crate::audit::Call::PodLog {
                namespace: ns.into(),
                pod: pod.into(),
                container: name.clone(),
            },
            format!("pods/log {ns}/{pod}/{name}"),
            scan.client
                .container_log(ns, pod, &name, MAX_OUTPUT, Stdout::Channel(chunks)),
        ),
        decoded
    );
    let ((), facts) = decoded.with_stream(log)?;
    // A frame counts only from a probe that finished: exit 0.
    if exit != 0 {
        let printed = match facts {
            Err(e) => format!("; {e}"),
            Ok(_) => String::new(),
        };
        return Err(GatherError::Other(format!(
            "the debug container exited with code {exit}; its output is not taken as evidence{printed}"
        )));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Capabilities;

    #[test]
    fn names_come_from_the_random_tail_of_the_scan_id() {
        let a = container_name("019ac1d2-7f3e-7a11-8b2c-0123456789ab");
        assert_eq!(a, "vigil-0123456789ab");
        assert!(a.len() <= 63);
    }

    fn target(uid: Option<i64>, gid: Option<i64>, caps: Option<Capabilities>) -> PlannedTarget {
        PlannedTarget {
            id: "ns/p/app".into(),
            approach: crate::policy::model::Approach::Debug,
            namespace: Some("ns".into()),
            pod: Some("p".into()),
            container: Some("app".into()),
            run_as_user: uid,
            run_as_group: gid,
            capabilities: caps,
            container_id: Some("containerd://4f1c2a9be0d3".into()),
            ..PlannedTarget::default()
        }
    }

    #[test]
    fn the_container_runs_as_the_target_and_finds_it_by_container_id() {
        let spec = ScannerSpec {
            image: "registry.example/vigil@sha256:00".into(),
            verify: None,
            resources: Default::default(),
        };
        let req = FactRequest::default();
        let key = age::x25519::Identity::generate().to_public();
        let ec = ephemeral_container(
            "vigil-x",
            &target(Some(1000), Some(3000), None),
            &spec,
            &req,
            &key,
        )
        .unwrap();
        assert_eq!(ec.target_container_name.as_deref(), Some("app"));
        assert!(ec.resources.is_none(), "the API refuses resources here");
        let sc = ec.security_context.unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1000), Some(3000)));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let cmd = ec.command.unwrap();
        assert_eq!(
            &cmd[..6],
            &[
                super::super::PROBE_BINARY,
                "probe",
                "--container-id",
                "4f1c2a9be0d3",
                "--recipient",
                &key.to_string()
            ]
        );
        // Root: the target's own capability set, no more.
        let caps = Capabilities {
            add: Some(vec!["NET_ADMIN".into()]),
            drop: Some(vec!["MKNOD".into()]),
        };
        let root = ephemeral_container(
            "vigil-x",
            &target(Some(0), Some(0), Some(caps.clone())),
            &spec,
            &req,
            &key,
        )
        .unwrap()
        .security_context
        .unwrap();
        assert_eq!(root.run_as_non_root, Some(false));
        assert_eq!(root.capabilities, Some(caps));
        let default = scanner_security_context(&target(Some(0), Some(0), None)).unwrap();
        assert_eq!(
            default.capabilities, None,
            "the runtime default, as the target"
        );
        // Unknown ids, or no container ID: an error that says which.
        for (uid, gid) in [(None, None), (Some(1000), None), (None, Some(1000))] {
            let e = ephemeral_container("vigil-x", &target(uid, gid, None), &spec, &req, &key)
                .unwrap_err()
                .to_string();
            assert!(e.contains("uid and gid") && e.contains("runAsGroup"), "{e}");
        }
        let mut no_id = target(Some(1), Some(1), None);
        no_id.container_id = None;
        let e = ephemeral_container("vigil-x", &no_id, &spec, &req, &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("containerID"), "{e}");
    }
}
