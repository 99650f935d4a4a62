//! Cluster-side manifests that harden how vigil runs: an API server audit
//! policy and a NetworkPolicy for in-cluster scanner pods.

use serde_json::{Value, json};

/// Where the scanner image keeps the vigil binary (see `Dockerfile`).
pub const PROBE_BINARY: &str = "/usr/local/bin/vigil";

/// The audit rules vigil needs: the request for the calls that reach into
/// containers (exec, ephemeral containers, logs: `audit-check` reads the
/// ephemeral container's image from the request object), metadata only
/// for TokenRequest so that issued tokens never land in audit logs, and
/// metadata for the access objects vigil creates. Not `RequestResponse`:
/// an ephemeral-container patch answers with the whole pod, literal
/// environment values included. The API server uses the first rule that
/// matches a request, so these go before any others.
pub(crate) fn audit_rules() -> Value {
    json!([
        // First match wins: keep tokens out of the log before anything else.
        {"level": "Metadata", "resources": [{"group": "", "resources": ["serviceaccounts/token"]}]},
        {"level": "Request", "resources": [{"group": "", "resources": ["pods/exec", "pods/ephemeralcontainers", "pods/log"]}]},
        {"level": "Metadata", "resources": [
            {"group": "", "resources": ["serviceaccounts", "secrets"]},
            {"group": "rbac.authorization.k8s.io", "resources": ["roles", "rolebindings"]}
        ]}
    ])
}

/// A whole `audit.k8s.io/v1` Policy: [`audit_rules`], then a catch-all at
/// `Metadata`. A request no rule matches is not logged at all
/// (`staging/src/k8s.io/apiserver/pkg/audit/policy/checker.go`), so a
/// policy of only vigil's rules, installed as *the* policy, would switch
/// off auditing of everything else.
///
/// Before vigil's rules, the standard `None` rules for the noise every
/// cluster makes (health and version probes, leader-election lease
/// renewals): they say nothing about vigil and would fill the log.
pub(crate) fn audit_policy() -> Value {
    let mut rules = json!([
        {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]},
        {"level": "None", "verbs": ["get", "update"], "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]}
    ]);
    if let (Some(list), Some(vigil)) = (rules.as_array_mut(), audit_rules().as_array()) {
        list.extend(vigil.iter().cloned());
        list.push(json!({"level": "Metadata"}));
    }
    json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": rules
    })
}

/// Returns true if and only if `cidr` is an address range such as
/// `10.0.0.1/32` or `fd00::/8`.
pub(crate) fn is_cidr(cidr: &str) -> bool {
    cidr.split_once('/').is_some_and(|(ip, bits)| {
        ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 128)
    })
}

/// A NetworkPolicy for vigil's in-cluster pods (label
/// `app.kubernetes.io/name: vigil`): no ingress; egress only to the API
/// server and to cluster DNS.
/// The NetworkPolicy for in-cluster vigil pods. Most network plugins apply
/// a NetworkPolicy after the Service address is translated, so the rule
/// must name the API server's *endpoint* address and port (often 6443),
/// not only the `kubernetes` Service's 443: every port in `ports` is
/// allowed (the CLI renders 443 and 6443 unless told otherwise).
///
/// `registry` (address ranges and ports) adds egress to the registries the
/// runner verifies scanner image signatures against (`verify`), which
/// would otherwise be cut off.
pub(crate) fn network_policy(
    namespace: &str,
    api_server_cidr: &str,
    ports: &[u16],
    registry: (&[String], &[u16]),
) -> Value {
    debug_assert!(is_cidr(api_server_cidr));
    let tcp = |ports: &[u16]| -> Vec<Value> {
        ports
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|p| json!({"protocol": "TCP", "port": p}))
            .collect()
    };
    let ports = tcp(ports);
    let mut np = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vigil-scanner", "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "vigil"}},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vigil"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {"to": [{"ipBlock": {"cidr": api_server_cidr}}], "ports": ports},
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
                }
            ]
        }
    });
    let (registries, registry_ports) = registry;
    if !registries.is_empty() {
        let to: Vec<Value> = registries
            .iter()
            .map(|c| json!({"ipBlock": {"cidr": c}}))
            .collect();
        if let Some(egress) = np["spec"]["egress"].as_array_mut() {
            egress.push(json!({"to": to, "ports": tcp(registry_ports)}));
        }
    }
    np
}

/// Default requests and limits for the scanner sidecar when the policy sets
/// none: it idles between scans, and a scan reads a bounded amount.
const SIDECAR_DEFAULTS: [(&str, &str, &str); 2] =
    [("cpu", "10m", "500m"), ("memory", "32Mi", "256Mi")];

/// The workload kinds a sidecar patch can name.
pub(crate) const WORKLOAD_KINDS: [(&str, &str); 4] = [
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("replicaset", "ReplicaSet"),
];

/// The hardened securityContext vigil gives every container it adds: the
/// uid (a scanner reading another container's `/proc/<pid>/root` needs the
/// same uid and gid, or CAP_SYS_PTRACE, which vigil never asks for; callers
/// set the gid), non-root
/// unless that uid is 0, no privilege escalation, every capability
/// dropped, a read-only root filesystem, the RuntimeDefault seccomp profile.
pub(crate) fn hardened_security_context(
    run_as_user: i64,
) -> k8s_openapi::api::core::v1::SecurityContext {
    use k8s_openapi::api::core::v1::{Capabilities, SeccompProfile, SecurityContext};
    SecurityContext {
        run_as_user: Some(run_as_user),
        run_as_non_root: Some(run_as_user != 0),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// A strategic merge patch that adds the scanner sidecar to a workload's
/// pod template and turns on `shareProcessNamespace`. With `workload`
/// (`(kind, name)`, e.g. `("Deployment", "web")`) it carries apiVersion,
/// kind and name, as a kustomize patch needs; without, it is the body for
/// `kubectl patch deployment NAME --patch-file`.
pub(crate) fn sidecar_patch(
    container: &str,
    image: &str,
    (run_as_user, run_as_group): (i64, i64),
    resources: &crate::policy::model::Resources,
    workload: Option<(&str, &str)>,
) -> Value {
    use k8s_openapi::api::core::v1::{Container, ResourceRequirements, SecurityContext};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let pick = |set: &std::collections::BTreeMap<String, String>, limit: bool| {
        let mut out = std::collections::BTreeMap::new();
        for (name, request, lim) in SIDECAR_DEFAULTS {
            let v = set
                .get(name)
                .map_or(if limit { lim } else { request }, String::as_str);
            out.insert(name.to_string(), Quantity(v.to_string()));
        }
        for (k, v) in set {
            out.insert(k.clone(), Quantity(v.clone()));
        }
        out
    };
    let sidecar = Container {
        name: container.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![PROBE_BINARY.into(), "idle".into()]),
        resources: Some(ResourceRequirements {
            requests: Some(pick(&resources.requests, false)),
            limits: Some(pick(&resources.limits, true)),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_group: Some(run_as_group),
            ..hardened_security_context(run_as_user)
        }),
        ..Container::default()
    };
    let mut patch = json!({
        "spec": {"template": {"spec": {
            "shareProcessNamespace": true,
            "containers": [sidecar],
        }}}
    });
    if let Some((kind, name)) = workload {
        patch["apiVersion"] = json!("apps/v1");
        patch["kind"] = json!(kind);
        patch["metadata"] = json!({"name": name});
    }
    patch
}

/// What `vigil render sidecar` asks for; unset fields come from the
/// policy's `spec.sidecar` (then `spec.debug.image`), then the defaults.
#[derive(Debug, Clone, Default)]
pub(crate) struct SidecarRequest {
    /// The sidecar's container name (default `vigil-scanner`).
    pub container: Option<String>,
    /// The scanner image, pinned by digest.
    pub image: Option<String>,
    /// The uid the sidecar runs as (the targets' uid).
    pub run_as_user: i64,
    /// The gid (default: the uid).
    pub run_as_group: Option<i64>,
    /// `KIND/NAME` of the workload to patch.
    pub workload: Option<String>,
}

/// A sidecar request that cannot be rendered, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidSidecar(String);

/// The strategic-merge patch that adds vigil's sidecar (see
/// [`sidecar_patch`]), from the request and the policy's settings.
pub(crate) fn render_sidecar(
    policy: Option<&crate::policy::model::ScanPolicy>,
    req: SidecarRequest,
) -> Result<Value, InvalidSidecar> {
    let invalid = InvalidSidecar;
    let settings = policy.and_then(|p| p.spec.sidecar.as_ref());
    let container = req
        .container
        .or_else(|| settings.map(|s| s.container.clone()))
        .unwrap_or_else(|| "vigil-scanner".into());
    if !crate::policy::selector::is_dns_label(&container) {
        return Err(invalid(format!("{container:?} is not a container name")));
    }
    // The sidecar runs the same scanner image as the debug approach.
    let image = req
        .image
        .or_else(|| settings.and_then(|s| s.image.clone()))
        .or_else(|| policy.and_then(|p| p.spec.debug.as_ref()).map(|d| d.image.clone()))
        .ok_or_else(|| {
            invalid(
                "no scanner image: set spec.sidecar.image (or spec.debug.image) in the policy or pass --image IMAGE@sha256:…"
                    .into(),
            )
        })?;
    if !crate::policy::lint::is_pinned(&image) {
        return Err(invalid(format!(
            "image {image:?} is not pinned by digest; use NAME@sha256:<64 hex digits>"
        )));
    }
    let run_as_group = req.run_as_group.unwrap_or(req.run_as_user);
    if req.run_as_user < 0 || run_as_group < 0 {
        return Err(invalid(
            "--run-as-user and --run-as-group must be 0 or more".into(),
        ));
    }
    let workload = match &req.workload {
        None => None,
        Some(w) => Some(
            w.split_once('/')
                .and_then(|(k, n)| {
                    let kind = WORKLOAD_KINDS
                        .iter()
                        .find(|(lower, _)| lower.eq_ignore_ascii_case(k))?
                        .1;
                    crate::policy::selector::is_dns_subdomain(n).then_some((kind, n))
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "--workload {w:?} is not KIND/NAME with KIND one of deployment, statefulset, daemonset, replicaset"
                    ))
                })?,
        ),
    };
    let resources = settings.map(|s| s.resources.clone()).unwrap_or_default();
    Ok(sidecar_patch(
        &container,
        &image,
        (req.run_as_user, run_as_group),
        &resources,
        workload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    #[test]
    fn token_requests_are_logged_without_bodies_and_first() {
        let p = audit_policy();
        let rules = p["rules"].as_array().unwrap();
        // The first rule that can match a TokenRequest is Metadata: the
        // ones before it are for non-resource URLs or leases only.
        let first = rules
            .iter()
            .position(|r| r["nonResourceURLs"].is_null() && r["resources"][0]["group"] == "")
            .unwrap();
        assert_eq!(rules[first]["level"], "Metadata");
        assert_eq!(
            rules[first]["resources"][0]["resources"][0],
            "serviceaccounts/token"
        );
        for r in &rules[..first] {
            assert_eq!(r["level"], "None");
            assert!(
                r["nonResourceURLs"].is_array()
                    || r["resources"][0]["group"] == "coordination.k8s.io",
                "{r}"
            );
        }
        // No wildcard resources.
        assert!(
            rules
                .iter()
                .all(|r| !r["resources"].to_string().contains('*'))
        );
    }

    #[test]
    fn network_policy_has_the_kubernetes_shape() {
        let np: NetworkPolicy = serde_json::from_value(network_policy(
            "vigil",
            "10.0.0.1/32",
            &[6443, 443, 443],
            (&[], &[]),
        ))
        .unwrap();
        let spec = np.spec.unwrap();
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        assert_eq!(spec.ingress.unwrap().len(), 0, "no ingress at all");
        let egress = spec.egress.unwrap();
        assert_eq!(egress.len(), 2);
        let ports: Vec<String> = egress[0]
            .ports
            .iter()
            .flatten()
            .map(|p| format!("{:?}", p.port))
            .collect();
        assert_eq!(ports.len(), 2, "443 and 6443, once each: {ports:?}");
    }
}
