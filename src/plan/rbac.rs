//! The least-privilege RBAC objects a run needs, as typed Kubernetes objects.
//!
//! Per namespace: one ServiceAccount (no automounted token), one Role whose
//! rules are pinned by `resourceNames` to the exact pods the plan scans, and
//! one RoleBinding. Verbs per approach:
//!
//! | approach | rules |
//! |---|---|
//! | api, sidecar | `get pods`, `get`+`create pods/exec` |
//! | debug | `get`/`watch pods`, `patch pods/ephemeralcontainers`, `get pods/log` |
//! | auto | both of the above (the run decides per target) |
//!
//! Exec needs both verbs on `pods/exec`: a WebSocket exec is an HTTP GET
//! upgrade, authorized as `get`, and from Kubernetes 1.35 also as `create`
//! (feature gate `AuthorizePodWebsocketUpgradeCreatePermission`,
//! kubernetes/kubernetes#134577).
//!
//! No rule ever uses `*`, and no rule is left unpinned: upstream tools grant
//! exec on every pod of a namespace; vigil grants it on the planned pods only.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::PlannedTarget;
use crate::policy::model::{AccessMode, Approach, ScanPolicy};

/// Label every vigil-created object carries (used by `vigil gc`).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vigil");
/// Annotation on per-run objects: when `vigil gc` may delete them (RFC 3339).
pub const EXPIRES_ANNOTATION: &str = "vigil.dev/expires-at";
/// Label carrying the policy name.
pub const POLICY_LABEL: &str = "vigil.dev/policy";
/// Label carrying the run id (per-run objects only).
pub const RUN_LABEL: &str = "vigil.dev/run-id";

/// The objects for one namespace.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAccess {
    /// kubeconfig context, when the targets name one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// The scan identity.
    pub service_account: ServiceAccount,
    /// Its exact rights.
    pub role: Role,
    /// The binding between them.
    pub role_binding: RoleBinding,
    /// For provisioned access: whether the Role that `vigil render rbac`
    /// prints grants the namespace rather than the planned pods (`role`
    /// always says what the plan needs, pod by pod).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grant_namespace: bool,
    /// The anchor Secret the run's token is bound to: unique per run in
    /// both modes, so that runs sharing a provisioned ServiceAccount (the
    /// shards of one sharded Job, run at once) never collide on it.
    pub anchor: String,
}

/// The ServiceAccount name for a policy: fixed for `provisioned` (so the
/// platform team can apply it once), run-scoped for `per-run`.
pub fn service_account_name(policy: &ScanPolicy, run_id: &str) -> String {
    let access = &policy.spec.access;
    match access.mode {
        AccessMode::Provisioned => access
            .service_account
            .clone()
            .unwrap_or_else(|| format!("vigil-{}", policy.metadata.name)),
        AccessMode::PerRun => format!("vigil-{}-{}", policy.metadata.name, run_suffix(run_id)),
    }
}

/// The tail of a run id, 8 lower-case characters: a UUIDv7 starts with a
/// timestamp that runs started in the same minute share, and ends in
/// random bits.
pub fn run_suffix(run_id: &str) -> String {
    let alnum: Vec<char> = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    alnum[alnum.len().saturating_sub(8)..]
        .iter()
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The anchor Secret's name: `<sa>-anchor`, and in provisioned mode, where
/// the ServiceAccount is shared by every run, with the run's suffix too.
pub fn anchor_name(policy: &ScanPolicy, sa_name: &str, name_key: &str) -> String {
    match policy.spec.access.mode {
        AccessMode::PerRun => format!("{sa_name}-anchor"),
        AccessMode::Provisioned => format!("{sa_name}-anchor-{}", run_suffix(name_key)),
    }
}

/// (resource, verb) pairs an approach needs on the pod it scans. Exec
/// needs no `get pods`: the API server resolves the pod for `pods/exec`
/// from its store without authorizing a read
/// (`pkg/registry/core/pod/rest/subresources.go`, `ExecREST.Connect`), and
/// `get pods` would hand the token the whole pod spec, literal environment
/// values included. The debug approach reads the pod: its watch, and a
/// fresh read when the watch's version has expired (410).
pub fn rules_for(approach: Approach) -> &'static [(&'static str, &'static str)] {
    match approach {
        Approach::Api | Approach::Sidecar => &[("pods/exec", "get"), ("pods/exec", "create")],
        Approach::Debug => &[
            ("pods", "get"),
            ("pods", "watch"),
            ("pods/ephemeralcontainers", "patch"),
            ("pods/log", "get"),
        ],
        Approach::Auto => &[
            ("pods", "get"),
            ("pods/exec", "get"),
            ("pods/exec", "create"),
            ("pods", "watch"),
            ("pods/ephemeralcontainers", "patch"),
            ("pods/log", "get"),
        ],
        Approach::Local | Approach::Image | Approach::Imported | Approach::Manifest => &[],
    }
}

/// The Role to grant for `a`: its planned Role, or with
/// `grant_namespace` the same rules on every pod (no `resourceNames`).
pub fn granted_role(a: &NamespaceAccess) -> Role {
    let mut role = a.role.clone();
    if a.grant_namespace {
        let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for rule in role.rules.iter().flatten() {
            for res in rule.resources.iter().flatten() {
                let verbs = merged.entry(res.clone()).or_default();
                for v in &rule.verbs {
                    if !verbs.contains(v) {
                        verbs.push(v.clone());
                    }
                }
            }
        }
        role.rules = Some(
            merged
                .into_iter()
                .map(|(resource, verbs)| PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec![resource]),
                    verbs,
                    ..PolicyRule::default()
                })
                .collect(),
        );
    }
    role
}

/// Build the per-namespace objects for the Kubernetes targets of a plan.
pub fn build(
    policy: &ScanPolicy,
    sa_name: &str,
    run_id: &str,
    name_key: &str,
    targets: &[PlannedTarget],
) -> Vec<NamespaceAccess> {
    // (cluster, namespace) → (resource, verb) → pod names
    type Rules = BTreeMap<(&'static str, &'static str), BTreeSet<String>>;
    let mut by_ns: BTreeMap<(Option<String>, String), Rules> = BTreeMap::new();
    for t in targets {
        let (Some(ns), Some(pod)) = (&t.namespace, &t.pod) else {
            continue;
        };
        let rules = by_ns.entry((t.cluster.clone(), ns.clone())).or_default();
        // An `auto` target whose image looks shell-less goes straight to the
        // debug approach: it needs no exec right.
        let approach = if t.approach == Approach::Auto
            && t.image.as_deref().is_some_and(super::looks_shell_less)
        {
            Approach::Debug
        } else {
            t.approach
        };
        for &(resource, verb) in rules_for(approach) {
            rules
                .entry((resource, verb))
                .or_default()
                .insert(pod.clone());
        }
    }
    let access = &policy.spec.access;
    let mut labels: BTreeMap<String, String> = access.labels.clone();
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    labels.insert(POLICY_LABEL.into(), policy.metadata.name.clone());
    if access.mode == AccessMode::PerRun {
        labels.insert(RUN_LABEL.into(), run_id.into());
    }
    let annotations = (!access.annotations.is_empty()).then(|| access.annotations.clone());
    by_ns
        .into_iter()
        .map(|((cluster, ns), rules)| {
            let meta = ObjectMeta {
                name: Some(sa_name.to_string()),
                namespace: Some(ns.clone()),
                labels: Some(labels.clone()),
                annotations: annotations.clone(),
                ..ObjectMeta::default()
            };
            let service_account = ServiceAccount {
                metadata: meta.clone(),
                automount_service_account_token: Some(false),
                ..ServiceAccount::default()
            };
            // One rule per resource and pod set, with its verbs.
            let mut merged: BTreeMap<(&str, BTreeSet<String>), Vec<String>> = BTreeMap::new();
            for ((resource, verb), pods) in rules {
                merged
                    .entry((resource, pods))
                    .or_default()
                    .push(verb.to_string());
            }
            let role = Role {
                metadata: meta.clone(),
                rules: Some(
                    merged
                        .into_iter()
                        .map(|((resource, pods), verbs)| PolicyRule {
                            api_groups: Some(vec![String::new()]),
                            resources: Some(vec![resource.to_string()]),
                            verbs,
                            resource_names: Some(pods.into_iter().collect()),
                            ..PolicyRule::default()
                        })
                        .collect(),
                ),
            };
            let role_binding = RoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: sa_name.to_string(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: sa_name.to_string(),
                    namespace: Some(ns.clone()),
                    ..Subject::default()
                }]),
            };
            NamespaceAccess {
                grant_namespace: access.mode == AccessMode::Provisioned
                    && access.scope == crate::policy::model::AccessScope::Namespace,
                cluster,
                namespace: ns,
                service_account,
                role,
                role_binding,
                anchor: anchor_name(policy, sa_name, name_key),
            }
        })
        .collect()
}

/// Multi-document YAML: per policy and namespace, its ServiceAccount, Role
/// and RoleBinding (`vigil render rbac`).
///
/// A per-run policy's objects are what each run creates and deletes
/// itself; applied by hand they would be standing rights, so they carry
/// the `vigil.dev/expires-at` annotation (`expires`) that `vigil gc`
/// honours, and a comment says so.
pub fn rbac_yaml(plan: &super::Plan, expires: &str) -> String {
    let mut out = String::new();
    for p in &plan.policies {
        let per_run = p.access_mode == AccessMode::PerRun;
        for a in &p.access {
            out.push_str(&format!(
                "# vigil policy {}, namespace {}\n",
                p.policy, a.namespace
            ));
            if per_run {
                out.push_str(&format!(
                    "# per-run policy: each run creates and deletes these itself; applied by hand they expire at {expires} (vigil gc deletes them then)\n"
                ));
            }
            let mut sa = a.service_account.clone();
            let mut role = granted_role(a);
            let mut rb = a.role_binding.clone();
            if per_run {
                for meta in [&mut sa.metadata, &mut role.metadata, &mut rb.metadata] {
                    meta.annotations
                        .get_or_insert_with(Default::default)
                        .insert(EXPIRES_ANNOTATION.into(), expires.to_string());
                }
            }
            for doc in [
                super::to_yaml(&sa),
                super::to_yaml(&role),
                super::to_yaml(&rb),
            ] {
                out.push_str("---\n");
                out.push_str(&doc);
                if !doc.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    out
}
