//! Per-run access: create the planned ServiceAccount, Role and RoleBinding
//! in each namespace plus an anchor Secret, request a short-lived token
//! bound to the anchor, and hand out clients that use only that token.
//! [`RunAccess::cleanup`] deletes everything, anchors first so the tokens
//! die at once; callers run it on success, on error and on signals.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::{Cluster, ClusterError, Kind};
use crate::plan::PolicyPlan;
use crate::policy::model::{AccessMode, ScanPolicy};

/// What a run created, and the scoped clients per namespace.
#[derive(Debug, Default)]
pub struct RunAccess {
    created: Vec<(Kind, String, String)>,
    scoped: BTreeMap<String, Cluster>,
}

impl RunAccess {
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
    ) -> Result<RunAccess, ClusterError> {
        let mut access = RunAccess::default();
        match access.create_all(caller, policy, plan).await {
            Ok(()) => Ok(access),
            Err(e) => {
                access.cleanup(caller).await;
                Err(e)
            }
        }
    }

    async fn create_all(
        &mut self,
        caller: &Cluster,
        policy: &ScanPolicy,
        plan: &PolicyPlan,
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
                caller.create_service_account(&sa).await?;
                self.created.push((
                    Kind::ServiceAccount,
                    ns.clone(),
                    plan.service_account.clone(),
                ));
                let mut role = ns_access.role.clone();
                stamp(&mut role.metadata);
                caller.create_role(&role).await?;
                self.created
                    .push((Kind::Role, ns.clone(), plan.service_account.clone()));
                let mut rb = ns_access.role_binding.clone();
                stamp(&mut rb.metadata);
                caller.create_role_binding(&rb).await?;
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
            let anchor = caller.create_secret(&anchor).await?;
            self.created.push((
                Kind::Secret,
                ns.clone(),
                anchor.metadata.name.clone().unwrap_or_default(),
            ));
            let token = caller
                .request_token(
                    &ns,
                    &plan.service_account,
                    ttl,
                    &policy.spec.access.audiences,
                    &anchor,
                )
                .await?;
            self.scoped.insert(ns, caller.scoped(&token)?);
        }
        Ok(())
    }

    /// Delete everything created, anchor Secrets first (revoking the tokens),
    /// then bindings, roles and service accounts. Returns what could not be
    /// deleted (for the summary and `vigil gc`).
    pub async fn cleanup(&mut self, caller: &Cluster) -> Vec<String> {
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
            if let Err(e) = caller.delete(kind, &ns, &name).await {
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
