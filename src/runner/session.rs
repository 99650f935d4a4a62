//! The connection a command holds to the cluster: the caller's client on a
//! runtime of its own, rate-limited once for the whole process, and the
//! live inventory read through it.

use crate::cluster::{Cluster, ClusterError};
use crate::inventory::Live;
use crate::policy::PolicySet;

/// A connection to the cluster for the live inventory and for runs.
pub struct Session {
    /// The runtime the cluster clients live on.
    pub runtime: tokio::runtime::Runtime,
    /// The caller's identity (lists pods, manages the run's access objects).
    pub caller: Cluster,
}

/// Why no session could be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The selected policies' Kubernetes targets name different contexts.
    #[error(
        "targets name different kubeconfig contexts; run one context at a time (--policy NAME)"
    )]
    MixedContexts,
    /// No usable kubeconfig (bad input: the user must point at a cluster).
    #[error(
        "Kubernetes targets need a cluster: {0}; set KUBECONFIG, or pass --inventory FILE (the JSON of `kubectl get pods -A -o json`) to plan offline"
    )]
    NoCluster(ClusterError),
    /// The kubeconfig disables TLS verification and that was not allowed.
    #[error(transparent)]
    Insecure(ClusterError),
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// Anything else on the way to the cluster.
    #[error(transparent)]
    Cluster(ClusterError),
}

impl SessionError {
    /// Returns true if and only if the user's input (policies, kubeconfig)
    /// is at fault, rather than the cluster or this machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SessionError::MixedContexts | SessionError::NoCluster(_) | SessionError::Insecure(_)
        )
    }
}

fn selected<'a>(
    set: &'a PolicySet,
    only: &'a [String],
) -> impl Iterator<Item = &'a crate::policy::model::ScanPolicy> {
    set.policies
        .iter()
        .map(|p| &p.value)
        .filter(move |p| only.is_empty() || only.contains(&p.metadata.name))
}

/// Whether planning or scanning reads a listed pod's configuration: a
/// profile some selected policy's target uses has a control that reads it
/// (pod security, workload settings), or a target may be scanned with an
/// ephemeral debug container, whose Pod Security refusal the plan predicts
/// from the pod's spec (any approach but `api`: `auto` and a pod's
/// `vigil.dev/approach` annotation can choose debug).
fn needs_workloads(set: &PolicySet, only: &[String]) -> bool {
    let debug_possible = selected(set, only)
        .flat_map(|p| &p.spec.targets)
        .any(|t| t.namespace.is_some() && t.approach != crate::policy::model::Approach::Api);
    if debug_possible {
        return true;
    }
    let used: std::collections::BTreeSet<&str> = selected(set, only)
        .flat_map(|p| {
            p.spec.targets.iter().flat_map(move |t| {
                let names = if t.profiles.is_empty() {
                    &p.spec.profiles
                } else {
                    &t.profiles
                };
                names.iter().map(String::as_str)
            })
        })
        .collect();
    set.profiles
        .iter()
        .filter(|p| used.contains(p.value.metadata.name.as_str()))
        .any(|p| p.value.controls.iter().any(|c| c.check.has_workload()))
}

/// The kubeconfig context the selected policies' Kubernetes targets use, if
/// any target is a Kubernetes one (all must use the same context).
pub(crate) fn cluster_context(
    set: &PolicySet,
    only: &[String],
) -> Result<Option<Option<String>>, SessionError> {
    let mut found: Option<Option<String>> = None;
    for t in selected(set, only)
        .flat_map(|p| &p.spec.targets)
        .filter(|t| t.namespace.is_some())
    {
        match &found {
            None => found = Some(t.cluster.clone()),
            Some(c) if *c != t.cluster => return Err(SessionError::MixedContexts),
            _ => {}
        }
    }
    Ok(found)
}

impl Session {
    /// Connect as the kubeconfig's identity (`context`, else the current
    /// one), on a runtime of two workers.
    pub fn connect(context: Option<&str>, insecure: bool) -> Result<Session, SessionError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(SessionError::Runtime)?;
        let caller = runtime
            .block_on(Cluster::connect(context, insecure))
            .map_err(|e| match e {
                ClusterError::Config(_) => SessionError::NoCluster(e),
                ClusterError::InsecureConfig => SessionError::Insecure(e),
                other => SessionError::Cluster(other),
            })?;
        Ok(Session { runtime, caller })
    }

    /// The session the selected policies need: none when they have no
    /// Kubernetes target; else connected to their context, with one rate
    /// limit for everything this process asks of the API server (the
    /// strictest `apiQps` and `apiTimeout` of the selected policies).
    pub fn for_policies(
        set: &PolicySet,
        only: &[String],
        insecure: bool,
    ) -> Result<Option<Session>, SessionError> {
        let Some(context) = cluster_context(set, only)? else {
            return Ok(None);
        };
        let mut session = Session::connect(context.as_deref(), insecure)?;
        let qps = selected(set, only)
            .map(|p| p.spec.limits.api_qps)
            .fold(f64::INFINITY, f64::min);
        if qps.is_finite() {
            session.caller = session.caller.with_rate_limit(qps);
        }
        // The shortest apiTimeout of the selected policies.
        if let Some(limit) = selected(set, only)
            .map(|p| p.spec.limits.api_timeout())
            .min()
        {
            session.caller = session.caller.with_call_timeout(limit);
        }
        Ok(Some(session))
    }

    /// The live inventory, every target namespace of the selected policies
    /// listed at once.
    pub fn live_inventory(&self, set: &PolicySet, only: &[String]) -> Live {
        let mut live = Live::new(self.caller.clone(), self.runtime.handle().clone());
        if !needs_workloads(set, only) {
            // Nothing reads a pod's configuration: the listed pods keep
            // only what planning needs.
            live = live.without_workloads();
        }
        live.prefetch(
            selected(set, only)
                .flat_map(|p| &p.spec.targets)
                .filter_map(|t| t.namespace.as_deref()),
        );
        live
    }
}

/// What a command plans from: the files, where the pods come from, and the
/// plan's options.
#[derive(Debug, Clone)]
pub(crate) struct PlanRequest {
    /// A `kubectl get pods -A -o json` snapshot; the live cluster otherwise.
    pub inventory: Option<std::path::PathBuf>,
    /// Only these policies (all when empty).
    pub only: Vec<String>,
    /// Accept a kubeconfig that disables TLS verification.
    pub insecure: bool,
    /// `I/N`: only shard I of N.
    pub shard: Option<String>,
    /// The plan's options but the shard.
    pub run_id: String,
    /// Name access objects after the run slot.
    pub stable_names: bool,
    /// `--image` sources (paths absolute): scanned instead of the
    /// policies' targets.
    pub images: Vec<String>,
    /// `--manifest` paths (absolute, or `-`): checked instead of the
    /// policies' targets.
    pub manifests: Vec<String>,
}

/// A plan ready to run, with what it was made from.
pub(crate) struct Planned {
    /// The loaded policies and profiles.
    pub set: PolicySet,
    /// The plan.
    pub plan: crate::plan::Plan,
    /// Warnings from planning.
    pub warnings: Vec<crate::diag::Diagnostic>,
    /// The cluster session, when the plan has Kubernetes targets and no
    /// snapshot stood in for the cluster.
    pub session: Option<Session>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    /// The policies are invalid (the diagnostics say where).
    #[error("the policies are invalid")]
    Policies(Vec<crate::diag::Diagnostic>),
    /// The snapshot cannot be read.
    #[error("{0}")]
    Snapshot(String),
    /// `--shard` is not `I/N`.
    #[error(transparent)]
    Shard(#[from] crate::plan::shard::ShardError),
    /// No session to the cluster.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Planning failed (the diagnostics say where).
    #[error("cannot plan")]
    Plan(Vec<crate::diag::Diagnostic>),
    /// An `--image` source cannot be read: the flag, not the policy, is
    /// what to fix.
    #[error("--image {given}: {why}")]
    Image {
        /// The source as given.
        given: String,
        /// Why it cannot be read.
        why: String,
    },
}

/// Load the policies and profiles; their warnings on success. Their
/// site-specific secret patterns apply from here on, to every message.
pub(crate) fn load(
    paths: &[std::path::PathBuf],
) -> Result<(PolicySet, Vec<crate::diag::Diagnostic>), PlanError> {
    let (set, diags) = crate::policy::load(paths);
    if diags.iter().any(|d| d.is_error()) {
        return Err(PlanError::Policies(diags));
    }
    crate::redact::add_patterns(
        set.policies
            .iter()
            .flat_map(|p| p.value.spec.redact.iter().map(String::as_str)),
    );
    Ok((set, diags))
}

/// Read the pods (a snapshot, or the live cluster through a new session)
/// and plan the loaded policies.
pub(crate) fn plan(mut set: PolicySet, req: &PlanRequest) -> Result<Planned, PlanError> {
    if !req.images.is_empty() {
        // Each source is read now, so an error names the flag: the
        // policies' targets it replaces have no line to point at.
        for given in &req.images {
            crate::image::Source::parse(given, std::path::Path::new("."))
                .map_err(crate::image::ImageError::from)
                .and_then(|s| crate::image::planned_digest(&s))
                .map_err(|e| PlanError::Image {
                    given: crate::safeio::printable(given).into_owned(),
                    why: e.to_string(),
                })?;
        }
        for p in &mut set.policies {
            p.value.spec.targets = req
                .images
                .iter()
                .filter_map(|s| serde_json::from_value(serde_json::json!({ "image": s })).ok())
                .collect();
        }
    }
    if !req.manifests.is_empty() {
        for p in &mut set.policies {
            p.value.spec.targets = req
                .manifests
                .iter()
                .filter_map(|m| serde_json::from_value(serde_json::json!({ "manifest": m })).ok())
                .collect();
        }
    }
    let snapshot = req
        .inventory
        .as_deref()
        .map(crate::inventory::Snapshot::from_path)
        .transpose()
        .map_err(|e| PlanError::Snapshot(e.to_string()))?;
    // One context per run, snapshot or not.
    cluster_context(&set, &req.only)?;
    let session = match &snapshot {
        None => Session::for_policies(&set, &req.only, req.insecure)?,
        Some(_) => None,
    };
    let live = session.as_ref().map(|s| s.live_inventory(&set, &req.only));
    let inventory = match (&snapshot, &live) {
        (Some(s), _) => Some(s as &dyn crate::inventory::Inventory),
        (None, Some(l)) => Some(l as &dyn crate::inventory::Inventory),
        _ => None,
    };
    let options = crate::plan::PlanOptions {
        run_id: req.run_id.clone(),
        shard: req
            .shard
            .as_deref()
            .map(crate::plan::shard::Shard::parse)
            .transpose()
            .map_err(PlanError::Shard)?,
        stable_names: req.stable_names,
    };
    let (plan, warnings) =
        crate::plan::plan(&set, &req.only, inventory, &options).map_err(PlanError::Plan)?;
    drop(live);
    Ok(Planned {
        set,
        plan,
        warnings,
        session,
    })
}
