//! Cluster-side manifests that harden how vigil runs: an API server audit
//! policy and a NetworkPolicy for in-cluster scanner pods.

use serde_json::{Value, json};

/// An `audit.k8s.io/v1` Policy: full request and response for the calls
/// that reach into containers (exec, ephemeral containers, logs), metadata
/// only for TokenRequest so that issued tokens never land in audit logs,
/// and metadata for the access objects vigil creates.
pub fn audit_policy() -> Value {
    json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            // First match wins: keep tokens out of the log before anything else.
            {"level": "Metadata", "resources": [{"group": "", "resources": ["serviceaccounts/token"]}]},
            {"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods/exec", "pods/ephemeralcontainers", "pods/log"]}]},
            {"level": "Metadata", "resources": [
                {"group": "", "resources": ["serviceaccounts", "secrets"]},
                {"group": "rbac.authorization.k8s.io", "resources": ["roles", "rolebindings"]}
            ]}
        ]
    })
}

/// A NetworkPolicy for vigil's in-cluster pods (label
/// `app.kubernetes.io/name: vigil`): no ingress; egress only to the API
/// server and to cluster DNS.
pub fn network_policy(namespace: &str, api_server_cidr: &str, api_server_port: u16) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vigil-scanner", "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "vigil"}},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vigil"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {"to": [{"ipBlock": {"cidr": api_server_cidr}}], "ports": [{"protocol": "TCP", "port": api_server_port}]},
                {
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
                }
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    #[test]
    fn token_requests_are_logged_without_bodies_and_first() {
        let p = audit_policy();
        let rules = p["rules"].as_array().unwrap();
        assert_eq!(rules[0]["level"], "Metadata");
        assert_eq!(
            rules[0]["resources"][0]["resources"][0],
            "serviceaccounts/token"
        );
        assert!(!serde_json::to_string(&p).unwrap().contains("*"));
    }

    #[test]
    fn network_policy_has_the_kubernetes_shape() {
        let np: NetworkPolicy =
            serde_json::from_value(network_policy("vigil", "10.0.0.1/32", 6443)).unwrap();
        let spec = np.spec.unwrap();
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        assert_eq!(spec.ingress.unwrap().len(), 0, "no ingress at all");
        assert_eq!(spec.egress.unwrap().len(), 2);
    }
}
