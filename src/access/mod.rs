//! Per-run access: create the planned ServiceAccount, Role and RoleBinding
//! in each namespace plus an anchor Secret, request a short-lived token
//! bound to the anchor, and hand out clients that use only that token.
//! [`RunAccess::cleanup`] deletes everything at once, which kills the
//! tokens; callers run it on success, on error and on signals.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::audit::{AuditLog, Call};
use crate::cluster::{Cluster, ClusterError, Kind};
use crate::plan::PolicyPlan;
use crate::policy::model::{AccessMode, ScanPolicy};

/// What a run created, and the scoped clients per namespace.
#[derive(Debug, Default)]
pub struct RunAccess {
    service_account: String,
    created: Vec<(Kind, String, String)>,
    /// The current client per namespace; [`RunAccess::keep_tokens_fresh`]
    /// swaps in one with a new token before the old one expires.
    scoped: std::sync::Mutex<BTreeMap<String, Cluster>>,
    /// Per namespace: what a new token is bound to, and when the current
    /// one should be replaced.
    renewals: std::sync::Mutex<BTreeMap<String, Renewal>>,
    ttl: i64,
    audiences: Vec<String>,
    /// Provisioned rights that exceed what the plan needs.
    pub warnings: Vec<String>,
}

/// When a namespace's token is due for renewal, and its anchor.
#[derive(Debug, Clone)]
struct Renewal {
    anchor: Secret,
    due: tokio::time::Instant,
}

/// A token is renewed when this share of its lifetime has passed.
use crate::policy::model::TOKEN_RENEW_AT as RENEW_AT;

impl RunAccess {
    /// The identity scans in `namespace` run as.
    pub fn identity(&self, namespace: &str) -> String {
        format!("system:serviceaccount:{namespace}:{}", self.service_account)
    }

    /// The client that scans in `namespace` (only the run's token): the
    /// newest one. A scan holds its clone; one started later gets the next.
    pub fn scoped(&self, namespace: &str) -> Option<Cluster> {
        self.scoped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
            .cloned()
    }

    /// Like [`RunAccess::scoped`], for a scan about to start: a token past
    /// its renewal point (the renewer is fetching the next one) is not
    /// handed out, so a scan never starts on a token in the last
    /// `1 - RENEW_AT` of its life. Waits at most 10 s for the new one (a
    /// failed renewal is retried every 5 s), then hands out what it has.
    pub async fn scoped_for_scan(&self, namespace: &str) -> Option<Cluster> {
        let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let overdue = self
                .renewals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(namespace)
                .is_some_and(|r| tokio::time::Instant::now() >= r.due);
            if !overdue || tokio::time::Instant::now() >= give_up {
                return self.scoped(namespace);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Until `stop` turns true: request a new bound token for each
    /// namespace when [`RENEW_AT`] of the current one's lifetime has
    /// passed, and hand it to scans that start from then on. A failed
    /// renewal is logged and retried while the old token still lives.
    pub async fn keep_tokens_fresh(
        &self,
        caller: &Cluster,
        audit: &AuditLog,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let next = {
                let r = self.renewals.lock().unwrap_or_else(|e| e.into_inner());
                r.iter()
                    .min_by_key(|(_, r)| r.due)
                    .map(|(ns, r)| (ns.clone(), r.clone()))
            };
            let Some((ns, renewal)) = next else { return };
            tokio::select! {
                _ = tokio::time::sleep_until(renewal.due) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let sa = &self.service_account;
            let result = audited_token(
                audit,
                Call::Token {
                    namespace: ns.clone(),
                    service_account: sa.clone(),
                },
                format!(
                    "token for serviceaccount {ns}/{sa} (renewal; ttl {}s, bound to its anchor)",
                    self.ttl
                ),
                caller.request_token(&ns, sa, self.ttl, &self.audiences, &renewal.anchor),
            )
            .await
            .and_then(|(token, lifetime)| Ok((caller.scoped(&token)?, lifetime)));
            let due = match result {
                Ok((client, lifetime)) => {
                    self.scoped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(ns.clone(), client);
                    tokio::time::Instant::now() + lifetime.mul_f64(RENEW_AT)
                }
                Err(e) => {
                    tracing::warn!("renewing the token for {ns}/{sa} failed, retrying in 5s: {e}");
                    tokio::time::Instant::now() + std::time::Duration::from_secs(5)
                }
            };
            if let Some(r) = self
                .renewals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&ns)
            {
                r.due = due;
            }
        }
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
        Self::setup_labelled(caller, policy, plan, audit, &BTreeMap::new()).await
    }

    /// [`RunAccess::setup`], with the run's labels (`--run-label`) on every
    /// object it creates.
    pub async fn setup_labelled(
        caller: &Cluster,
        policy: &ScanPolicy,
        plan: &PolicyPlan,
        audit: &AuditLog,
        labels: &BTreeMap<String, String>,
    ) -> Result<RunAccess, ClusterError> {
        let mut access = RunAccess {
            service_account: plan.service_account.clone(),
            ttl: policy.spec.access.token_ttl().as_secs() as i64,
            audiences: policy.spec.access.audiences.clone(),
            ..RunAccess::default()
        };
        // Nothing is created unless the caller may do all of it: a run
        // refused halfway leaves objects to clean up and says less. Who
        // the caller is is asked at the same time (neither needs the other).
        let ((), preflight) = tokio::join!(
            record_caller(caller, audit),
            audited(
                audit,
                Call::CallerRights,
                format!(
                    "the caller's own rights for the run's objects in {} namespace(s)",
                    plan.access.len()
                ),
                caller_preflight(caller, policy, plan),
            )
        );
        preflight?;
        match access.create_all(caller, policy, plan, audit, labels).await {
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
        labels: &BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        let ttl = self.ttl;
        // Leftovers (a run killed with SIGKILL) become collectable by `vigil
        // gc` once no token of the run can be valid any more and the run's
        // deadline has passed.
        let deadline = policy.spec.limits.run_deadline().as_secs() as i64;
        let expires = (chrono::Utc::now() + chrono::Duration::seconds(ttl.max(deadline)))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let stamp = |meta: &mut ObjectMeta| {
            meta.labels
                .get_or_insert_with(Default::default)
                .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert(
                    crate::plan::rbac::EXPIRES_ANNOTATION.into(),
                    expires.clone(),
                );
        };
        // Namespaces are set up concurrently, and within one namespace as
        // much as the objects' dependencies allow (`setup_namespace`).
        let results = futures_util::future::join_all(
            plan.access
                .iter()
                .map(|a| setup_namespace(caller, policy, plan, a, ttl, &stamp, audit)),
        )
        .await;
        let mut first_error = None;
        for (ns, created, result) in results {
            self.created.extend(created);
            match result {
                Ok((scoped, warnings, renewal)) => {
                    self.warnings.extend(warnings);
                    self.scoped
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(ns.clone(), scoped);
                    self.renewals
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(ns, renewal);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Delete everything created (anchor Secrets, bindings, roles and
    /// service accounts) at once. Returns what could not be
    /// deleted (for the summary and `vigil gc`).
    pub async fn cleanup(&mut self, caller: &Cluster, audit: &AuditLog) -> Vec<String> {
        self.scoped
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.renewals
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let objects = std::mem::take(&mut self.created);
        // Everything at once: deleting an anchor revokes its tokens, and
        // deleting the ServiceAccount or the binding would too, so no order
        // revokes them sooner; one round trip, not two. (An object already
        // gone counts as deleted.)
        let results = futures_util::future::join_all(objects.iter().map(|(kind, ns, name)| {
            audited(
                audit,
                Call::Delete {
                    resource: plural(*kind).into(),
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                format!("{} {ns}/{name}", kind.as_str()),
                caller.delete(*kind, ns, name),
            )
        }))
        .await;
        results
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect()
    }
}

/// Create one namespace's objects and request its token. Returns the
/// namespace, what was created (also on failure, for cleanup) and the
/// scoped client with any warnings about excess provisioned rights.
#[allow(clippy::type_complexity)]
async fn setup_namespace(
    caller: &Cluster,
    policy: &ScanPolicy,
    plan: &PolicyPlan,
    ns_access: &crate::plan::rbac::NamespaceAccess,
    ttl: i64,
    stamp: &(dyn Fn(&mut ObjectMeta) + Sync),
    audit: &AuditLog,
) -> (
    String,
    Vec<(Kind, String, String)>,
    Result<(Cluster, Vec<String>, Renewal), ClusterError>,
) {
    let ns = ns_access.namespace.clone();
    let sa_name = &plan.service_account;
    let per_run = policy.spec.access.mode == AccessMode::PerRun;
    let stable = plan.stable_names;
    let mut sa = ns_access.service_account.clone();
    stamp(&mut sa.metadata);
    let mut role = ns_access.role.clone();
    stamp(&mut role.metadata);
    let mut rb = ns_access.role_binding.clone();
    stamp(&mut rb.metadata);
    let mut anchor = anchor_secret(ns_access);
    stamp(&mut anchor.metadata);
    // The ServiceAccount, the Role and the anchor at once; the RoleBinding
    // after its Role: a caller without `bind` may bind only a Role that
    // exists and whose rights it holds (rolebinding/policybased/storage.go).
    // The token needs only its ServiceAccount and anchor: it is requested
    // while the RoleBinding is created (one round trip for both).
    let role_then_binding = async {
        if !per_run {
            return (None, None);
        }
        let role = replacing_leftover(stable, caller, audit, Kind::Role, &ns, sa_name, || {
            caller.create_role(&role)
        })
        .await;
        let binding = match &role {
            Ok(_) => Some(
                replacing_leftover(
                    stable,
                    caller,
                    audit,
                    Kind::RoleBinding,
                    &ns,
                    sa_name,
                    || caller.create_role_binding(&rb),
                )
                .await,
            ),
            Err(_) => None,
        };
        (Some(role.map(drop)), binding.map(|b| b.map(drop)))
    };
    let account_then_token = async {
        let create_sa = async {
            if !per_run {
                return None;
            }
            Some(
                replacing_leftover(
                    stable,
                    caller,
                    audit,
                    Kind::ServiceAccount,
                    &ns,
                    sa_name,
                    || caller.create_service_account(&sa),
                )
                .await
                .map(drop),
            )
        };
        let create_anchor = replacing_leftover(
            stable,
            caller,
            audit,
            Kind::Secret,
            &ns,
            &ns_access.anchor,
            || caller.create_secret(&anchor),
        );
        let (sa, anchor) = tokio::join!(create_sa, create_anchor);
        let token = match (&sa, &anchor) {
            (None | Some(Ok(())), Ok(anchor)) => {
                Some(request_token(caller, policy, &ns, sa_name, ttl, anchor, audit).await)
            }
            _ => None,
        };
        (sa, anchor, token)
    };
    let ((sa, anchor, token), (role, binding)) =
        tokio::join!(account_then_token, role_then_binding);
    let (created, anchor) = created_objects(&ns, sa_name, [sa, role, binding], anchor);
    let anchor = match anchor {
        Ok(a) => a,
        Err(e) => return (ns, created, Err(e)),
    };
    let result = match token.unwrap_or_else(|| {
        Err(ClusterError::Transport {
            verb: "create",
            what: format!("token for serviceaccount {ns}/{sa_name}"),
            message: "not requested: its ServiceAccount or anchor was not created".into(),
        })
    }) {
        Ok((token, lifetime)) => {
            let renewal = Renewal {
                anchor,
                due: tokio::time::Instant::now() + lifetime.mul_f64(RENEW_AT),
            };
            token_rights(caller, policy, ns_access, &ns, sa_name, &token, audit)
                .await
                .map(|(scoped, warnings)| (scoped, warnings, renewal))
        }
        Err(e) => Err(e),
    };
    (ns, created, result)
}

/// The anchor Secret of a namespace's tokens.
fn anchor_secret(ns_access: &crate::plan::rbac::NamespaceAccess) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(ns_access.anchor.clone()),
            namespace: Some(ns_access.namespace.clone()),
            labels: ns_access.service_account.metadata.labels.clone(),
            annotations: ns_access.service_account.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// What a namespace's creates came to: every object that exists (for
/// cleanup, also on failure), and the anchor, or the first error when
/// anything failed. `rbac`: the ServiceAccount, Role and RoleBinding
/// results, `None` for what was not attempted.
#[allow(clippy::type_complexity)]
fn created_objects(
    ns: &str,
    sa_name: &str,
    rbac: [Option<Result<(), ClusterError>>; 3],
    anchor: Result<Secret, ClusterError>,
) -> (Vec<(Kind, String, String)>, Result<Secret, ClusterError>) {
    let mut created = Vec::new();
    let mut error = None;
    for (kind, r) in [Kind::ServiceAccount, Kind::Role, Kind::RoleBinding]
        .into_iter()
        .zip(rbac)
    {
        match r {
            Some(Ok(())) => created.push((kind, ns.to_string(), sa_name.to_string())),
            Some(Err(e)) => {
                error.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Ok(a) = &anchor {
        created.push((
            Kind::Secret,
            ns.to_string(),
            a.metadata.name.clone().unwrap_or_default(),
        ));
    }
    let anchor = match (anchor, error) {
        (Ok(a), None) => Ok(a),
        (Ok(_), Some(e)) | (Err(_), Some(e)) | (Err(e), None) => Err(e),
    };
    (created, anchor)
}

/// Request the namespace's token, bound to `anchor`.
async fn request_token(
    caller: &Cluster,
    policy: &ScanPolicy,
    ns: &str,
    sa_name: &str,
    ttl: i64,
    anchor: &Secret,
    audit: &AuditLog,
) -> Result<(crate::cluster::Token, std::time::Duration), ClusterError> {
    audited_token(
        audit,
        Call::Token {
            namespace: ns.into(),
            service_account: sa_name.into(),
        },
        format!("token for serviceaccount {ns}/{sa_name} (ttl {ttl}s, bound to its anchor)"),
        caller.request_token(ns, sa_name, ttl, &policy.spec.access.audiences, anchor),
    )
    .await
}

/// Confirm, before the first scan, that the namespace's token holds the
/// Role's rights; in provisioned mode also report rights beyond the plan.
/// Returns the scoped client and those warnings.
async fn token_rights(
    caller: &Cluster,
    policy: &ScanPolicy,
    ns_access: &crate::plan::rbac::NamespaceAccess,
    ns: &str,
    sa_name: &str,
    token: &crate::cluster::Token,
    audit: &AuditLog,
) -> Result<(Cluster, Vec<String>), ClusterError> {
    let per_run = policy.spec.access.mode == AccessMode::PerRun;
    let scoped = caller.scoped(token)?;
    // Before the first scan: the token really holds its rights. New
    // bindings reach the authorizer's cache after a moment, and a
    // provisioned identity may lack some; a SelfSubjectAccessReview
    // per right decides (per run: one name per rule, since a Role
    // becomes visible whole; provisioned: every pod).
    let checks = rights_to_check(&ns_access.role, per_run);
    let missing = audited(
        audit,
        Call::TokenRights {
            namespace: ns.into(),
            service_account: sa_name.into(),
        },
        format!(
            "rights of serviceaccount {ns}/{sa_name} ({} selfsubjectaccessreviews, until granted)",
            checks.len()
        ),
        // Provisioned rights were applied before the run: asked once.
        await_rights(
            &scoped,
            ns,
            &checks,
            if per_run { RIGHTS_SETTLE } else { std::time::Duration::ZERO },
        ),
    )
    .await
    .map_err(|e| match e {
        // The API refuses a token whose audiences leave out its own.
        ClusterError::Api { code: 401, .. } if !policy.spec.access.audiences.is_empty() => {
            ClusterError::Transport {
                verb: "check",
                what: format!("the token of serviceaccount {ns}/{sa_name}"),
                message: format!(
                    "the API server refused it (401): access.audiences {:?} leave out the API server's own audience, which every token used against the API must carry; add it (often https://kubernetes.default.svc.cluster.local, the cluster's service account issuer) or remove access.audiences",
                    policy.spec.access.audiences
                ),
            }
        }
        other => other,
    })?;
    if !missing.is_empty() {
        let message = if per_run {
            format!(
                "the run's Role did not take effect within {}s; still missing: {} (is an admission webhook or another authorizer denying them?)",
                RIGHTS_SETTLE.as_secs(),
                missing.join(", ")
            )
        } else {
            format!(
                "they do not cover the plan; missing: {} (re-apply `vigil render rbac`)",
                missing.join(", ")
            )
        };
        return Err(ClusterError::Transport {
            verb: "check",
            what: format!("rights of serviceaccount {ns}/{sa_name}"),
            message,
        });
    }
    let mut warnings = Vec::new();
    if !per_run {
        let (held, incomplete) = scoped.own_rules(ns).await?;
        let (_, excess) = compare_rules(&ns_access.role, &held);
        // With `scope: namespace` unpinned scan verbs are the choice;
        // verbs or resources beyond the plan are still reported.
        let excess: Vec<String> = excess
            .into_iter()
            .filter(|e| !(ns_access.grant_namespace && e.contains("is not pinned to pods")))
            .collect();
        warnings.extend(
            excess.into_iter().map(|e| {
                format!("serviceaccount {ns}/{sa_name} holds more than the plan needs: {e}")
            }),
        );
        if incomplete {
            warnings.push(format!(
                "serviceaccount {ns}/{sa_name}: the API server's rules review is incomplete (an authorizer cannot list rules), so rights beyond the plan may go unreported"
            ));
        }
    }
    Ok((scoped, warnings))
}

/// The rights the caller needs in one namespace before anything is
/// created: (verb, API group, resource, name). Per run: to create and
/// delete the ServiceAccount, Role, RoleBinding and anchor Secret, and to
/// request the token; in provisioned mode only the anchor and the token.
/// Deletes are asked by name: an in-cluster runner's Role pins them to its
/// stable names (`plan::incluster`).
fn caller_needs(
    per_run: bool,
    sa: &str,
    anchor: &str,
) -> Vec<(&'static str, &'static str, &'static str, Option<String>)> {
    let rbac = "rbac.authorization.k8s.io";
    let mut needs = vec![
        ("create", "", "secrets", None),
        ("delete", "", "secrets", Some(anchor.to_string())),
        ("create", "", "serviceaccounts/token", Some(sa.to_string())),
    ];
    if per_run {
        needs.push(("create", "", "serviceaccounts", None));
        needs.push(("create", rbac, "roles", None));
        needs.push(("create", rbac, "rolebindings", None));
        needs.push(("delete", "", "serviceaccounts", Some(sa.to_string())));
        needs.push(("delete", rbac, "roles", Some(sa.to_string())));
        needs.push(("delete", rbac, "rolebindings", Some(sa.to_string())));
    }
    needs
}

/// Ask, before anything is created, whether the caller may do what the
/// run will do: create and delete its objects, and — RBAC's escalation
/// prevention (`pkg/registry/rbac/validation/rule.go`,
/// `ConfirmNoEscalation`) — grant the Role's rights, which a caller
/// without `escalate` and `bind` on roles may do only if it holds each of
/// them. One error lists every missing right. A right held in the whole
/// namespace is asked once, not once per pod.
async fn caller_preflight(
    caller: &Cluster,
    policy: &ScanPolicy,
    plan: &PolicyPlan,
) -> Result<(), ClusterError> {
    let per_run = policy.spec.access.mode == AccessMode::PerRun;
    let rbac = "rbac.authorization.k8s.io";
    let per_namespace = plan.access.iter().map(|a| async move {
        let ns = a.namespace.as_str();
        let needs = caller_needs(per_run, &plan.service_account, &a.anchor);
        // One round of reviews at once: the run's objects, and whether the
        // caller may grant any rights (escalate and bind on roles).
        let granting = [
            ("escalate", rbac, "roles", None),
            ("bind", rbac, "roles", None),
        ];
        let asked = needs
            .iter()
            .chain(per_run.then_some(&granting[..]).into_iter().flatten());
        let answers =
            futures_util::future::join_all(asked.map(|(verb, group, res, name)| {
                caller.can_i(ns, verb, group, res, name.as_deref())
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<bool>, _>>()?;
        let mut missing: Vec<String> = needs
            .iter()
            .zip(&answers)
            .filter(|(_, ok)| !**ok)
            .map(|((verb, _, res, _), _)| format!("{verb} {res}"))
            .collect();
        let may_grant_anything = per_run && answers[needs.len()..].iter().all(|ok| *ok);
        if per_run && !may_grant_anything {
            // Each of the Role's rights: held in the whole namespace, or
            // else on every pod it names.
            let mut rights = Vec::new();
            for rule in a.role.rules.iter().flatten() {
                for res in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        rights.push((
                            verb.as_str(),
                            res.as_str(),
                            rule.resource_names.as_deref().unwrap_or_default(),
                        ));
                    }
                }
            }
            let held = futures_util::future::join_all(rights.iter().map(
                |(verb, res, names)| async move {
                    if caller.can_i(ns, verb, "", res, None).await? {
                        return Ok(true);
                    }
                    if names.is_empty() {
                        return Ok(false);
                    }
                    let each = futures_util::future::join_all(
                        names
                            .iter()
                            .map(|n| caller.can_i(ns, verb, "", res, Some(n))),
                    )
                    .await;
                    each.into_iter()
                        .try_fold(true, |all, r| r.map(|ok| all && ok))
                },
            ))
            .await;
            for ((verb, res, _), h) in rights.iter().zip(held) {
                if !h? {
                    missing.push(format!("{verb} {res} (to grant it to the run's Role)"));
                }
            }
        }
        Ok::<_, ClusterError>((ns.to_string(), missing))
    });
    let mut lines = Vec::new();
    for r in futures_util::future::join_all(per_namespace).await {
        let (ns, missing) = r?;
        if !missing.is_empty() {
            lines.push(format!("in {ns}: {}", missing.join(", ")));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    let ephemeral = lines.iter().any(|l| l.contains("pods/ephemeralcontainers"));
    Err(ClusterError::Transport {
        verb: "check",
        what: "the caller's own rights (nothing was created)".into(),
        message: format!(
            "the identity running vigil may not do everything this run needs: {}. Kubernetes lets it grant the run's Role only rights it holds itself. Bind it a Role or ClusterRole with these rights in these namespaces (docs/kubernetes.md, \"Two identities\", lists them per approach){}, or use access.mode: provisioned with the RBAC from `vigil render rbac` applied by an administrator",
            lines.join("; "),
            if ephemeral {
                "; the built-in admin and edit ClusterRoles do not include pods/ephemeralcontainers (kubernetes/kubernetes#121217)"
            } else {
                ""
            }
        ),
    })
}

/// How long a run waits for its new rights to reach the authorizer.
pub const RIGHTS_SETTLE: std::time::Duration = std::time::Duration::from_secs(20);

/// The (verb, resource, pod) rights to confirm for a Role: every one, or
/// (`sample`) one pod per rule.
fn rights_to_check(
    role: &k8s_openapi::api::rbac::v1::Role,
    sample: bool,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role.rules.iter().flatten() {
        let names = rule.resource_names.as_deref().unwrap_or_default();
        let names = if sample {
            &names[..names.len().min(1)]
        } else {
            names
        };
        for res in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                for name in names {
                    out.push((verb.clone(), res.clone(), name.clone()));
                }
            }
        }
    }
    out
}

/// Ask until every right is granted or `settle` has passed, with backoff
/// (0.1 s doubling to 2 s); returns what is still missing.
async fn await_rights(
    scoped: &Cluster,
    ns: &str,
    checks: &[(String, String, String)],
    settle: std::time::Duration,
) -> Result<Vec<String>, ClusterError> {
    let started = tokio::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        let answers = futures_util::future::join_all(
            checks
                .iter()
                .map(|(verb, res, name)| scoped.can_i(ns, verb, "", res, Some(name))),
        )
        .await;
        let mut missing = Vec::new();
        for ((verb, res, name), allowed) in checks.iter().zip(answers) {
            if !allowed? {
                missing.push(format!("{verb} {res} {name}"));
            }
        }
        if missing.is_empty() || started.elapsed() + wait > settle {
            return Ok(missing);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(2));
    }
}

/// Create an object (audited); with stable names (in-cluster runs, one at a time per
/// slot), a 409 means a leftover of a run interrupted before its cleanup
/// (SIGKILL, a lost node): delete it and create again. Without stable
/// names a 409 stays an error: names carry the run id and never collide.
async fn replacing_leftover<T, F, Fut>(
    stable: bool,
    caller: &Cluster,
    audit: &AuditLog,
    kind: Kind,
    ns: &str,
    name: &str,
    create: F,
) -> Result<T, ClusterError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let what = format!("{} {ns}/{name}", kind.as_str());
    let call = |delete: bool| {
        let (resource, namespace, name) = (plural(kind).into(), ns.into(), name.into());
        if delete {
            Call::Delete {
                resource,
                namespace,
                name,
            }
        } else {
            Call::Create {
                resource,
                namespace,
                name,
            }
        }
    };
    let create = || audited(audit, call(false), what.clone(), create());
    match create().await {
        Err(ClusterError::Api { code: 409, .. }) if stable => {
            audited(
                audit,
                call(true),
                format!(
                    "{} {ns}/{name} (a leftover of an interrupted run)",
                    kind.as_str()
                ),
                caller.delete(kind, ns, name),
            )
            .await?;
            create().await
        }
        r => r,
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
        let listed = caller
            .list_labelled(
                kind,
                crate::plan::rbac::MANAGED_BY,
                crate::plan::rbac::EXPIRES_ANNOTATION,
            )
            .await?;
        for (ns, name, expires) in listed {
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

/// Request a token as the caller and record it in the audit log with its
/// credential id (never the token), which ties the API server's events for
/// every use of the token to this run.
async fn audited_token(
    audit: &AuditLog,
    call: Call,
    object: String,
    op: impl std::future::Future<
        Output = Result<(crate::cluster::Token, std::time::Duration), ClusterError>,
    >,
) -> Result<(crate::cluster::Token, std::time::Duration), ClusterError> {
    audited_with(audit, call, &object, op, |(token, _)| {
        token
            .credential_id()
            .map(|id| (crate::audit::CREDENTIAL_ID.to_string(), id))
    })
    .await
}

/// Record who the caller is (its username, never a credential), so that
/// `vigil audit-check` knows the runner's requests in the API server's
/// audit log. Best effort: a cluster without SelfSubjectReview only loses
/// that line's username.
async fn record_caller(caller: &Cluster, audit: &AuditLog) {
    let op = caller.whoami();
    let _ = audited_with(
        audit,
        Call::WhoAmI,
        "selfsubjectreview (who the caller is)",
        op,
        |u: &String| (!u.is_empty()).then(|| ("username".to_string(), u.clone())),
    )
    .await;
}

/// Run one caller operation and record it in the audit log, with the
/// attribute its result gives, if any (never a secret).
async fn audited_with<T>(
    audit: &AuditLog,
    call: Call,
    object: &str,
    op: impl std::future::Future<Output = Result<T, ClusterError>>,
    attribute: impl FnOnce(&T) -> Option<(String, String)>,
) -> Result<T, ClusterError> {
    let started = std::time::Instant::now();
    let r = op.await;
    let attributes = r.as_ref().ok().and_then(attribute).into_iter().collect();
    audit.record(
        None,
        "caller",
        call,
        object,
        r.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        started,
        attributes,
    );
    r
}

/// A kind's resource, plural, as the API server's audit events name it.
fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::ServiceAccount => "serviceaccounts",
        Kind::Role => "roles",
        Kind::RoleBinding => "rolebindings",
        Kind::Secret => "secrets",
    }
}

/// Run one caller operation and record it in the audit log.
async fn audited<T>(
    audit: &AuditLog,
    call: Call,
    object: String,
    op: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    audited_with(audit, call, &object, op, |_| None).await
}
