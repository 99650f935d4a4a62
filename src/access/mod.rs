//! Per-run access: create the planned ServiceAccount, Role and RoleBinding
//! in each namespace plus an anchor Secret, request a short-lived token
//! bound to the anchor, and hand out clients that use only that token.
//! [`RunAccess::cleanup`] deletes everything, anchors first so the tokens
//! die at once; callers run it on success, on error and on signals.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::audit::AuditLog;
use crate::cluster::{Cluster, ClusterError, Kind};
use crate::plan::PolicyPlan;
use crate::policy::model::{AccessMode, ScanPolicy};

/// What a run created, and the scoped clients per namespace.
#[derive(Debug, Default)]
pub struct RunAccess {
    service_account: String,
    created: Vec<(Kind, String, String)>,
    scoped: BTreeMap<String, Cluster>,
    /// Provisioned rights that exceed what the plan needs.
    pub warnings: Vec<String>,
}

impl RunAccess {
    /// The identity scans in `namespace` run as.
    pub fn identity(&self, namespace: &str) -> String {
        format!("system:serviceaccount:{namespace}:{}", self.service_account)
    }

    /// The client that scans in `namespace` (only the run's token).
    pub fn scoped(&self, namespace: &str) -> Option<&Cluster> {
        self.scoped.get(namespace)
    }

    /// Objects created so far, as `kind ns/name`.
    pub fn created(&self) -> Vec<String> {
        self.created
            .iter()
            .map(|(k, ns, n)| format!("{} {ns}/{n}", k.as_str()))
            .collect()
    }

    /// Set up access for every namespace of the plan. On failure, whatever
    /// was created is deleted before the error is returned.
    pub async fn setup(
        caller: &Cluster,
        policy: &ScanPolicy,
        plan: &PolicyPlan,
        audit: &AuditLog,
    ) -> Result<RunAccess, ClusterError> {
        let mut access = RunAccess {
            service_account: plan.service_account.clone(),
            ..RunAccess::default()
        };
        match access.create_all(caller, policy, plan, audit).await {
            Ok(()) => Ok(access),
            Err(e) => {
                access.cleanup(caller, audit).await;
                Err(e)
            }
        }
    }

    async fn create_all(
        &mut self,
        caller: &Cluster,
        policy: &ScanPolicy,
        plan: &PolicyPlan,
        audit: &AuditLog,
    ) -> Result<(), ClusterError> {
        let ttl = crate::policy::duration::parse(&policy.spec.access.token_ttl)
            .map_or(900, |d| d.as_secs() as i64);
        // Leftovers (a run killed with SIGKILL) become collectable by `vigil
        // gc` once no token of the run can be valid any more and the run's
        // deadline has passed.
        let deadline = crate::policy::duration::parse(&policy.spec.limits.run_deadline)
            .map_or(1800, |d| d.as_secs() as i64);
        let expires = (chrono::Utc::now() + chrono::Duration::seconds(ttl.max(deadline)))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let stamp = |meta: &mut ObjectMeta| {
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert(
                    crate::plan::rbac::EXPIRES_ANNOTATION.into(),
                    expires.clone(),
                );
        };
        for ns_access in &plan.access {
            let ns = ns_access.namespace.clone();
            if policy.spec.access.mode == AccessMode::PerRun {
                let mut sa = ns_access.service_account.clone();
                stamp(&mut sa.metadata);
                audited(
                    audit,
                    "create",
                    format!("serviceaccount {ns}/{}", plan.service_account),
                    caller.create_service_account(&sa),
                )
                .await?;
                self.created.push((
                    Kind::ServiceAccount,
                    ns.clone(),
                    plan.service_account.clone(),
                ));
                let mut role = ns_access.role.clone();
                stamp(&mut role.metadata);
                audited(
                    audit,
                    "create",
                    format!("role {ns}/{}", plan.service_account),
                    caller.create_role(&role),
                )
                .await?;
                self.created
                    .push((Kind::Role, ns.clone(), plan.service_account.clone()));
                let mut rb = ns_access.role_binding.clone();
                stamp(&mut rb.metadata);
                audited(
                    audit,
                    "create",
                    format!("rolebinding {ns}/{}", plan.service_account),
                    caller.create_role_binding(&rb),
                )
                .await?;
                self.created
                    .push((Kind::RoleBinding, ns.clone(), plan.service_account.clone()));
            }
            let mut anchor = Secret {
                metadata: ObjectMeta {
                    name: Some(format!("{}-anchor", plan.service_account)),
                    namespace: Some(ns.clone()),
                    labels: ns_access.service_account.metadata.labels.clone(),
                    annotations: ns_access.service_account.metadata.annotations.clone(),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                ..Secret::default()
            };
            stamp(&mut anchor.metadata);
            let anchor = audited(
                audit,
                "create",
                format!("secret {ns}/{}-anchor", plan.service_account),
                caller.create_secret(&anchor),
            )
            .await?;
            self.created.push((
                Kind::Secret,
                ns.clone(),
                anchor.metadata.name.clone().unwrap_or_default(),
            ));
            let token = audited(
                audit,
                "create",
                format!(
                    "token for serviceaccount {ns}/{} (ttl {ttl}s, bound to its anchor)",
                    plan.service_account
                ),
                caller.request_token(
                    &ns,
                    &plan.service_account,
                    ttl,
                    &policy.spec.access.audiences,
                    &anchor,
                ),
            )
            .await?;
            let scoped = caller.scoped(&token)?;
            if policy.spec.access.mode == AccessMode::Provisioned {
                let held = scoped.own_rules(&ns).await?;
                let (missing, excess) = compare_rules(&ns_access.role, &held);
                if !missing.is_empty() {
                    return Err(ClusterError::Transport {
                        verb: "check",
                        what: format!(
                            "provisioned rights of serviceaccount {ns}/{}",
                            plan.service_account
                        ),
                        message: format!(
                            "they do not cover the plan; missing: {} (re-apply `vigil render rbac`)",
                            missing.join(", ")
                        ),
                    });
                }
                self.warnings.extend(excess.into_iter().map(|e| {
                    format!(
                        "serviceaccount {ns}/{} holds more than the plan needs: {e}",
                        plan.service_account
                    )
                }));
            }
            self.scoped.insert(ns, scoped);
        }
        Ok(())
    }

    /// Delete everything created, anchor Secrets first (revoking the tokens),
    /// then bindings, roles and service accounts. Returns what could not be
    /// deleted (for the summary and `vigil gc`).
    pub async fn cleanup(&mut self, caller: &Cluster, audit: &AuditLog) -> Vec<String> {
        self.scoped.clear();
        let order = |k: &Kind| match k {
            Kind::Secret => 0,
            Kind::RoleBinding => 1,
            Kind::Role => 2,
            Kind::ServiceAccount => 3,
        };
        let mut objects = std::mem::take(&mut self.created);
        objects.sort_by_key(|(k, _, _)| order(k));
        let mut failed = Vec::new();
        for (kind, ns, name) in objects {
            if let Err(e) = audited(
                audit,
                "delete",
                format!("{} {ns}/{name}", kind.as_str()),
                caller.delete(kind, &ns, &name),
            )
            .await
            {
                failed.push(e.to_string());
            }
        }
        failed
    }
}

/// Delete vigil-managed objects whose `vigil.dev/expires-at` has passed
/// (leftovers of runs killed before they could clean up), anchors first.
/// Returns (deleted, kept-because-not-expired) as `kind ns/name`.
pub async fn gc(
    caller: &Cluster,
    now: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> Result<(Vec<String>, Vec<String>), ClusterError> {
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for kind in [
        Kind::Secret,
        Kind::RoleBinding,
        Kind::Role,
        Kind::ServiceAccount,
    ] {
        for (ns, name, expires) in caller.list_managed(kind).await? {
            let label = format!("{} {ns}/{name}", kind.as_str());
            let expired = expires
                .as_deref()
                .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                .is_some_and(|e| e < now);
            if !expired {
                kept.push(label);
                continue;
            }
            if !dry_run {
                caller.delete(kind, &ns, &name).await?;
            }
            deleted.push(label);
        }
    }
    Ok((deleted, kept))
}

/// Compare the rights a plan needs (its Role) with the rules an identity
/// holds: (needed but missing, held but not needed).
pub fn compare_rules(
    needed: &k8s_openapi::api::rbac::v1::Role,
    held: &[k8s_openapi::api::authorization::v1::ResourceRule],
) -> (Vec<String>, Vec<String>) {
    let has = |list: &[String], v: &str| list.iter().any(|x| x == v || x == "*");
    let mut missing = Vec::new();
    for rule in needed.rules.iter().flatten() {
        for res in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                for name in rule.resource_names.iter().flatten() {
                    let covered = held.iter().any(|h| {
                        has(h.api_groups.as_deref().unwrap_or_default(), "")
                            && has(h.resources.as_deref().unwrap_or_default(), res)
                            && has(&h.verbs, verb)
                            && h.resource_names
                                .as_ref()
                                .is_none_or(|n| n.is_empty() || n.contains(name))
                    });
                    if !covered {
                        missing.push(format!("{verb} {res} {name}"));
                    }
                }
            }
        }
    }
    let needed_pods: Vec<&String> = needed
        .rules
        .iter()
        .flatten()
        .flat_map(|r| r.resource_names.iter().flatten())
        .collect();
    let needed_pairs: Vec<(String, String)> = needed
        .rules
        .iter()
        .flatten()
        .flat_map(|r| {
            r.resources
                .iter()
                .flatten()
                .flat_map(move |res| r.verbs.iter().map(move |v| (res.clone(), v.clone())))
        })
        .collect();
    let mut excess = Vec::new();
    for h in held {
        // Self-review rights every identity has are not excess.
        let resources = h.resources.as_deref().unwrap_or_default();
        if resources.iter().all(|r| r.starts_with("selfsubject")) {
            continue;
        }
        let unpinned = h.resource_names.as_ref().is_none_or(|n| n.is_empty());
        let extra_names: Vec<&String> = h
            .resource_names
            .iter()
            .flatten()
            .filter(|n| !needed_pods.contains(n))
            .collect();
        let extra_pairs: Vec<String> = resources
            .iter()
            .flat_map(|r| h.verbs.iter().map(move |v| (r.clone(), v.clone())))
            .filter(|p| !needed_pairs.contains(p))
            .map(|(r, v)| format!("{v} {r}"))
            .collect();
        if unpinned {
            excess.push(format!(
                "{} on {} is not pinned to pods",
                h.verbs.join(","),
                resources.join(",")
            ));
        } else if !extra_names.is_empty() {
            excess.push(format!(
                "{} on {} includes unplanned pods {:?}",
                h.verbs.join(","),
                resources.join(","),
                extra_names
            ));
        }
        if !extra_pairs.is_empty() {
            excess.push(format!("verbs not needed: {}", extra_pairs.join(", ")));
        }
    }
    (missing, excess)
}

/// Run one caller operation and record it in the audit log.
async fn audited<T>(
    audit: &AuditLog,
    verb: &str,
    object: String,
    op: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    let started = std::time::Instant::now();
    let r = op.await;
    audit.record(
        None,
        "caller",
        verb,
        &object,
        r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        started,
    );
    r
}
