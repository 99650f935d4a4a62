//! Discovery: `/version`, `/api`, `/apis` and the resource lists kubectl reads.

use super::*;

/// The discovery documents clients read before anything else (`kubectl`
/// among them): `/version`, `/api`, `/apis` and each group version's
/// resources, for what the test server serves. Legacy (unaggregated)
/// discovery, which clients fall back to when the answer is plain JSON
/// (`staging/src/k8s.io/client-go/discovery/discovery_client.go`).
pub(super) fn discovery(path: &str, minor: u32) -> Option<Value> {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs, "shortNames": short});
    let list = |gv: &str, resources: Vec<Value>| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources});
    let crud = ["create", "delete", "get", "list", "patch", "watch"];
    Some(match path.trim_end_matches('/') {
        "/version" => json!({
            "major": "1", "minor": minor.to_string(), "gitVersion": format!("v1.{minor}.0"),
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"
        }),
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        }
        "/apis" => {
            let group = |name: &str| json!({"name": name, "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}], "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}});
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                group("rbac.authorization.k8s.io"), group("authorization.k8s.io"), group("authentication.k8s.io")
            ]})
        }
        "/api/v1" => list(
            "v1",
            vec![
                resource("pods", "Pod", true, &crud, &["po"]),
                resource("pods/exec", "PodExecOptions", true, &["create", "get"], &[]),
                resource("pods/log", "Pod", true, &["get"], &[]),
                resource(
                    "pods/ephemeralcontainers",
                    "Pod",
                    true,
                    &["get", "patch", "update"],
                    &[],
                ),
                resource("serviceaccounts", "ServiceAccount", true, &crud, &["sa"]),
                resource(
                    "serviceaccounts/token",
                    "TokenRequest",
                    true,
                    &["create"],
                    &[],
                ),
                resource("secrets", "Secret", true, &crud, &[]),
                resource("configmaps", "ConfigMap", true, &crud, &["cm"]),
            ],
        ),
        "/apis/rbac.authorization.k8s.io/v1" => list(
            "rbac.authorization.k8s.io/v1",
            vec![
                resource("roles", "Role", true, &crud, &[]),
                resource("rolebindings", "RoleBinding", true, &crud, &[]),
            ],
        ),
        "/apis/authorization.k8s.io/v1" => list(
            "authorization.k8s.io/v1",
            vec![
                resource(
                    "selfsubjectaccessreviews",
                    "SelfSubjectAccessReview",
                    false,
                    &["create"],
                    &[],
                ),
                resource(
                    "selfsubjectrulesreviews",
                    "SelfSubjectRulesReview",
                    false,
                    &["create"],
                    &[],
                ),
            ],
        ),
        "/apis/authentication.k8s.io/v1" => list(
            "authentication.k8s.io/v1",
            vec![resource(
                "selfsubjectreviews",
                "SelfSubjectReview",
                false,
                &["create"],
                &[],
            )],
        ),
        _ => return None,
    })
}
