//! Planning: policies × inventory → what a run will scan, how, and which
//! Kubernetes objects it will create.
//!
//! A plan is computed offline and is deterministic (targets, namespaces and
//! rules are sorted), so a plan diffs cleanly in a pull request.

pub(crate) mod admission;
mod batch;
pub(crate) mod incluster;
pub(crate) mod manifests;
pub mod rbac;
pub(crate) mod reach;
pub(crate) mod shard;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::{Code, Diagnostic};
use crate::inventory::{ContainerInfo, ContainerKind, Inventory, PodInfo};
use crate::policy::model::{AccessMode, Approach, ScanPolicy, Target};
use crate::policy::{Loaded, PolicySet};

pub use batch::batches;
pub use rbac::NamespaceAccess;

/// Annotation a pod can carry to ask for an approach (`api`, `debug`, `sidecar`).
pub const APPROACH_ANNOTATION: &str = "vigil.dev/approach";

/// Every policy's plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// One entry per ScanPolicy, sorted by name.
    pub policies: Vec<PolicyPlan>,
}

/// What one policy's run will do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPlan {
    /// Policy name.
    pub policy: String,
    /// SHA-256 over the whole plan's target ids (all shards).
    pub plan_sha256: String,
    /// Targets in the whole plan (all shards).
    pub planned_targets: usize,
    /// The shard this plan covers, when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<shard::Shard>,
    /// How access is obtained.
    pub access_mode: AccessMode,
    /// ServiceAccount the scans run as.
    pub service_account: String,
    /// Token lifetime.
    #[serde(rename = "tokenTTL")]
    pub token_ttl: String,
    /// Targets, sorted by id.
    pub targets: Vec<PlannedTarget>,
    /// Containers a target selector matched but that will not be scanned, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Per-run objects are named after the run's slot, not its id: a
    /// leftover with the same name is one of an interrupted run, replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stable_names: bool,
    /// Per-namespace RBAC objects (empty for rootfs-only policies).
    pub access: Vec<NamespaceAccess>,
    /// Waves of target ids that the limits allow at once.
    pub batches: Vec<Vec<String>>,
    /// The limits the batches were computed from.
    pub limits: PlannedLimits,
    /// The scanner images the targets will start or exec into, and how
    /// each is verified before use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scanner_images: Vec<PlannedScannerImage>,
    /// What the caller reads while planning because a control asks for
    /// it (a namespace's object and NetworkPolicies), as RBAC rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caller_reads: Vec<String>,
}

/// A scanner image a run will use, and its signature check.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedScannerImage {
    /// `debug` or `sidecar`.
    pub role: Approach,
    /// The image, pinned.
    pub image: String,
    /// The fingerprint of the key its cosign signature must verify with
    /// (`spec.debug.verify` / `spec.sidecar.verify`); none when the policy
    /// asks for no check (`vigil run --scanner-key` can still).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where the signature comes from: `registry`, or the saved file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The scanner images `targets` will use under `spec`.
fn scanner_images(p: &Loaded<ScanPolicy>, targets: &[PlannedTarget]) -> Vec<PlannedScannerImage> {
    let spec = &p.value.spec;
    let uses = |a: &[Approach]| targets.iter().any(|t| a.contains(&t.approach));
    let mut wanted = Vec::new();
    if let Some(d) = &spec.debug
        && uses(&[Approach::Debug, Approach::Auto])
    {
        wanted.push((Approach::Debug, d.image.clone(), d.verify.as_ref()));
    }
    if let Some(s) = &spec.sidecar
        && let Some(image) = &s.image
        && uses(&[Approach::Sidecar])
    {
        wanted.push((Approach::Sidecar, image.clone(), s.verify.as_ref()));
    }
    wanted
        .into_iter()
        .map(|(role, image, verify)| PlannedScannerImage {
            role,
            image,
            key: verify.map(
                |v| match crate::cosign::PublicKey::resolve(&v.key, p.base_dir()) {
                    Ok(k) => k.fingerprint,
                    Err(e) => format!("unusable: {e}"),
                },
            ),
            signature: verify.map(|v| v.signature.clone().unwrap_or_else(|| "registry".into())),
        })
        .collect()
}

/// The limits that shape a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PlannedLimits {
    pub concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_namespace: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_node: Option<u32>,
    pub scan_timeout: String,
    pub run_deadline: String,
}

/// One container (or root filesystem) to scan.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedTarget {
    /// `namespace/pod/container`, or `rootfs/<name>`.
    pub id: String,
    /// The approach that will reach it; `auto` is decided at run time (api,
    /// or debug when the container has no shell).
    pub approach: Approach,
    /// Why this approach (for `auto`).
    pub reason: String,
    /// Profiles evaluated.
    pub profiles: Vec<String>,
    /// kubeconfig context (Kubernetes targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Namespace (Kubernetes targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod (Kubernetes targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Container (Kubernetes targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Node (Kubernetes targets, when scheduled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Image (Kubernetes targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The uid the target container runs as, when the pod status or spec
    /// tells it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// Its gid, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Its `securityContext.capabilities`, when the spec sets them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<k8s_openapi::api::core::v1::Capabilities>,
    /// The container's runtime ID from the pod status (sidecar approach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The vigil sidecar container of the pod (sidecar approach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<String>,
    /// Root directory (rootfs targets), resolved against the policy file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// The image source (image targets), its paths absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_source: Option<String>,
    /// The image's digest as planned; a scan of other content is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The pod's (or manifest's) configuration, for workload controls.
    #[serde(skip)]
    pub workload: Option<std::sync::Arc<crate::facts::workload::Workload>>,
}

/// A container that matched a target but will not be scanned.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    /// `namespace/pod/container`.
    pub id: String,
    /// Why, as reports group it.
    pub code: SkipCode,
    /// Why, in words.
    pub reason: String,
}

/// Why a matched container is not a target. The first three are the
/// policy's own choice (it can include them); the rest are containers a
/// run loses, which count against its coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipCode {
    /// An init container (`includeInitContainers` scans them).
    InitContainer,
    /// An ephemeral container (`includeEphemeralContainers` scans them).
    EphemeralContainer,
    /// Its pod is not running (`includeNotRunning` scans it).
    PodNotRunning,
    /// Its pod is running but it is not (waiting or terminated).
    ContainerNotRunning,
    /// A Windows pod.
    Windows,
    /// No approach the policy allows can reach it (the sidecar cannot read
    /// it or is not the pinned scanner, no debug image, an external scanner
    /// on an approach without exec).
    NoApproach,
}

/// Options that do not come from the policy.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Run id used in per-run object names and labels.
    pub run_id: String,
    /// Plan only this shard's targets (`--shard I/N`).
    pub shard: Option<shard::Shard>,
    /// Name per-run objects after the run's slot (`run`, or `s<I>` for
    /// shard I) instead of the run id: in-cluster runs, one at a time per
    /// slot, whose runner's Role can then pin its rights to those names.
    pub stable_names: bool,
}

impl PlanOptions {
    /// What per-run object names are made from: the run id, or the slot.
    pub fn name_key(&self) -> String {
        match (self.stable_names, &self.shard) {
            (false, _) => self.run_id.clone(),
            (true, Some(sh)) => slot_name(Some(sh.index)),
            (true, None) => slot_name(None),
        }
    }
}

/// The stable name of a run slot: `s<I>` for shard I, `run` otherwise.
pub fn slot_name(shard: Option<u32>) -> String {
    match shard {
        Some(i) => format!("s{i}"),
        None => "run".into(),
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            run_id: "plan".into(),
            shard: None,
            stable_names: false,
        }
    }
}

/// A typed Kubernetes object as YAML (they always serialize).
pub(crate) fn to_yaml<T: serde::Serialize>(object: &T) -> String {
    serde_saphyr::to_string(object).expect("Kubernetes objects serialize")
}

/// A target keeps its pod's configuration only when one of its profiles
/// checks it (pod security, workload settings). Planning is done with it;
/// for any other target it would only be held through the run: at 2,000
/// pods, 11 MB of a run's 44 MB heap.
fn keep_workloads_checked(set: &PolicySet, pp: &mut PolicyPlan) {
    let mut checked: BTreeMap<&[String], bool> = BTreeMap::new();
    for t in &mut pp.targets {
        if t.workload.is_none() {
            continue;
        }
        let keep = *checked.entry(t.profiles.as_slice()).or_insert_with(|| {
            set.profiles
                .iter()
                .filter(|p| t.profiles.contains(&p.value.metadata.name))
                .any(|p| p.value.controls.iter().any(|c| c.check.has_workload()))
        });
        if !keep {
            t.workload = None;
        }
    }
}

/// Plan every policy in `set` (or only those named in `only`). Returns the
/// plan with any warnings, or every error found.
pub fn plan(
    set: &PolicySet,
    only: &[String],
    inventory: Option<&dyn Inventory>,
    options: &PlanOptions,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut policies = Vec::new();
    let mut diags = Vec::new();
    for name in only {
        if !set.policies.iter().any(|p| &p.value.metadata.name == name) {
            diags.push(Diagnostic::error(
                Code::InvalidTarget,
                format!("no ScanPolicy named `{name}` was loaded"),
            ));
        }
    }
    for p in &set.policies {
        if !only.is_empty() && !only.contains(&p.value.metadata.name) {
            continue;
        }
        let (mut pp, mut found) = plan_policy(p, inventory, options);
        if let Some(pp) = &mut pp {
            attach_namespace_context(set, pp, inventory);
            keep_workloads_checked(set, pp);
        }
        policies.extend(pp);
        diags.append(&mut found);
    }
    if diags.iter().any(Diagnostic::is_error) {
        crate::diag::sort(&mut diags);
        return Err(diags);
    }
    policies.sort_by(|a, b| a.policy.cmp(&b.policy));
    crate::diag::sort(&mut diags);
    Ok((Plan { policies }, diags))
}

fn plan_policy(
    p: &Loaded<ScanPolicy>,
    inventory: Option<&dyn Inventory>,
    options: &PlanOptions,
) -> (Option<PolicyPlan>, Vec<Diagnostic>) {
    let spec = &p.value.spec;
    let mut targets: BTreeMap<String, PlannedTarget> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut diags = Vec::new();
    // Where each rootfs target id was first defined: a second target with
    // the same id would overwrite the first's result.
    let mut rootfs_ids: BTreeMap<String, String> = BTreeMap::new();
    for (i, t) in spec.targets.iter().enumerate() {
        let profiles = if t.profiles.is_empty() {
            spec.profiles.clone()
        } else {
            t.profiles.clone()
        };
        let ptr = format!("/spec/targets/{i}");
        if let Some(dir) = &t.rootfs {
            let root = p.base_dir().join(dir);
            if !root.is_dir() && !root.is_file() {
                diags.push(p.at_value(
                    Diagnostic::error(Code::InvalidTarget, format!("rootfs `{}` is neither a directory nor an archive", root.display()))
                        .with_hint("rootfs paths are relative to the policy file; point it at an unpacked container root or a tar of one (`docker export`)"),
                    &format!("{ptr}/rootfs"),
                ));
                continue;
            }
            let id = t.rootfs_id(p.base_dir()).expect("a rootfs target");
            let here = if t.name.is_some() {
                format!("{ptr}/name")
            } else {
                format!("{ptr}/rootfs")
            };
            if let Some(first) = rootfs_ids.get(&id) {
                diags.push(crate::policy::lint::duplicate_target(p, &id, first, &here));
                continue;
            }
            rootfs_ids.insert(id.clone(), here);
            targets.entry(id.clone()).or_insert(PlannedTarget {
                id,
                approach: Approach::Local,
                reason: "rootfs targets are scanned on this machine".into(),
                profiles,
                rootfs: Some(root),
                ..PlannedTarget::default()
            });
            continue;
        }
        if plan_image_or_manifests(
            p,
            t,
            &ptr,
            &profiles,
            &mut targets,
            &mut rootfs_ids,
            &mut diags,
        ) {
            continue;
        }
        let Some(ns) = &t.namespace else { continue };
        let Some(inv) = inventory else {
            diags.push(
                p.at_value(
                    Diagnostic::error(
                        Code::InventoryFailed,
                        "this target needs a cluster inventory",
                    )
                    .with_hint("pass --inventory FILE (the JSON of `kubectl get pods -A -o json`)"),
                    &ptr,
                ),
            );
            continue;
        };
        let pods = match inv.pods(t.cluster.as_deref(), ns) {
            Ok(pods) => pods,
            Err(e) => {
                diags.push(p.at_value(
                    Diagnostic::error(Code::InventoryFailed, e.to_string()),
                    &ptr,
                ));
                continue;
            }
        };
        let before = targets.len() + skipped.len();
        for pod in pods.iter() {
            select_pod(p, t, pod, &profiles, &mut targets, &mut skipped);
        }
        if targets.len() + skipped.len() == before {
            diags.push(p.at_value(
                Diagnostic::warning(Code::TargetMatchesNothing, format!("target matches no container in namespace `{ns}`"))
                    .with_hint("check the namespace, selector, pod and container names against the inventory"),
                &ptr,
            ));
        }
    }
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    let mut targets: Vec<PlannedTarget> = targets.into_values().collect();
    // The whole plan's digest, then this shard's part of it (RBAC and
    // batches cover the shard's targets only).
    let plan_sha256 = shard::plan_digest(targets.iter().map(|t| t.id.as_str()));
    let planned_targets = targets.len();
    keep_shard(&mut targets, &mut skipped, options.shard.as_ref());
    let name_key = options.name_key();
    let service_account = rbac::service_account_name(&p.value, &name_key);
    let access = rbac::build(
        &p.value,
        &service_account,
        &options.run_id,
        &name_key,
        &targets,
    );
    let limits = &spec.limits;
    let scanner_images = scanner_images(p, &targets);
    let plan = PolicyPlan {
        scanner_images,
        caller_reads: Vec::new(),
        plan_sha256,
        planned_targets,
        shard: options.shard,
        policy: p.value.metadata.name.clone(),
        access_mode: spec.access.mode,
        stable_names: options.stable_names,
        service_account,
        token_ttl: spec.access.token_ttl.to_string(),
        batches: batches(&targets, limits),
        targets,
        skipped,
        access,
        limits: PlannedLimits {
            concurrency: limits.concurrency,
            per_namespace: limits.per_namespace,
            per_node: limits.per_node,
            scan_timeout: limits.scan_timeout.to_string(),
            run_deadline: limits.run_deadline.to_string(),
        },
    };
    (Some(plan), diags)
}

/// A shard's part of the plan: its targets, and its part of the matched
/// containers not scanned (each shard accounts for its own), sorted.
fn keep_shard(
    targets: &mut Vec<PlannedTarget>,
    skipped: &mut Vec<Skipped>,
    shard: Option<&shard::Shard>,
) {
    if let Some(sh) = shard {
        targets.retain(|t| sh.holds(&t.id));
        skipped.retain(|s| sh.holds(&s.id));
    }
    skipped.sort_by(|a, b| a.id.cmp(&b.id));
    skipped.dedup();
}

/// Why a matched container is not a target before any approach is
/// weighed: its pod as a whole (Windows, not running; each of its
/// containers listed), or the container (init, ephemeral, not running).
fn left_out(pod: &PodInfo, c: &ContainerInfo, t: &Target) -> Option<(SkipCode, String)> {
    let (code, reason) = if pod.windows {
        (
            SkipCode::Windows,
            "Windows pod: vigil's gatherer, probe and controls are for Linux containers".into(),
        )
    } else if pod.phase != "Running" && !t.include_not_running {
        (
            SkipCode::PodNotRunning,
            format!(
                "pod phase is {} (set includeNotRunning to scan it)",
                pod.phase
            ),
        )
    } else if c.kind == ContainerKind::Init && !t.include_init_containers {
        (
            SkipCode::InitContainer,
            "init container (set includeInitContainers to scan it)".into(),
        )
    } else if c.kind == ContainerKind::Ephemeral && !t.include_ephemeral_containers {
        (
            SkipCode::EphemeralContainer,
            "ephemeral container (set includeEphemeralContainers to scan it)".into(),
        )
    } else if !c.running && pod.phase == "Running" && c.kind == ContainerKind::App {
        (
            SkipCode::ContainerNotRunning,
            "container is not running".into(),
        )
    } else {
        return None;
    };
    Some((code, reason))
}

/// Decide, for one pod, which of its containers a target selects.
fn select_pod(
    p: &Loaded<ScanPolicy>,
    t: &Target,
    pod: &PodInfo,
    profiles: &[String],
    targets: &mut BTreeMap<String, PlannedTarget>,
    skipped: &mut Vec<Skipped>,
) {
    if !t.pods.is_empty() && !t.pods.contains(&pod.name) {
        return;
    }
    if let Some(sel) = &t.selector
        && !sel.matches(&pod.labels)
    {
        return;
    }
    let spec = &p.value.spec;
    let sidecar_name = spec
        .sidecar
        .as_ref()
        .map_or("vigil-scanner", |s| s.container.as_str());
    let sidecar = pod
        .containers
        .iter()
        .find(|c| c.name == sidecar_name && c.kind == ContainerKind::App)
        .filter(|_| pod.share_process_namespace);
    let has_sidecar = sidecar.is_some();
    // Whether the sidecar is the pinned scanner: one answer for the pod.
    let sidecar_trust = sidecar.map(|s| {
        let pinned = spec
            .sidecar
            .as_ref()
            .and_then(|x| x.image.as_deref())
            .or(spec.debug.as_ref().map(|d| d.image.as_str()));
        reach::sidecar_trusted(s, pinned)
    });
    let pod_id = format!("{}/{}", pod.namespace, pod.name);
    for c in &pod.containers {
        if !t.containers.is_empty() && !t.containers.contains(&c.name) {
            continue;
        }
        let id = format!("{pod_id}/{}", c.name);
        if has_sidecar && c.name == sidecar_name {
            continue; // vigil's own scanner is not a target
        }
        if c.kind == ContainerKind::Ephemeral && c.name.starts_with("vigil-") {
            continue; // nor are earlier scans' probes
        }
        if let Some((code, reason)) = left_out(pod, c, t) {
            skipped.push(Skipped { id, code, reason });
            continue;
        }
        let chosen = match &spec.scanner {
            // An external scanner reaches containers through exec only.
            Some(ext) => match t.approach {
                Approach::Api | Approach::Auto => Ok((
                    Approach::Api,
                    format!("external scanner {} runs over exec", ext.kind.binary()),
                )),
                other => Err(format!(
                    "approach {} cannot carry the external scanner ({}), which reaches containers through exec only",
                    other.as_str(),
                    ext.kind.binary()
                )),
            },
            None => choose_approach(
                t.approach,
                pod,
                c,
                Means {
                    sidecar: sidecar.zip(sidecar_trust.as_ref()).map(|(s, trust)| {
                        trust
                            .clone()
                            .map_err(|why| format!("sidecar-untrusted: {why}"))
                            .and_then(|()| match reach::sidecar_reach(s, c) {
                                reach::Reach::Yes => Ok(None),
                                reach::Reach::Unknown(why) => Ok(Some(why)),
                                reach::Reach::No(why) => Err(format!("sidecar-cannot-read: {why}")),
                            })
                    }),
                    has_debug_image: spec.debug.is_some(),
                    allow_pod_override: spec.allow_pod_override,
                    need_probe: spec.evidence == crate::policy::model::MinEvidence::Probe,
                },
            ),
        };
        let (approach, mut reason) = match chosen {
            Ok(x) => x,
            Err(reason) => {
                skipped.push(Skipped {
                    id,
                    code: SkipCode::NoApproach,
                    reason,
                });
                continue;
            }
        };
        if matches!(approach, Approach::Debug | Approach::Auto) {
            reason.push_str(&debug_notes(approach, pod, c));
        }
        targets.entry(id.clone()).or_insert(PlannedTarget {
            id,
            approach,
            reason,
            profiles: profiles.to_vec(),
            cluster: t.cluster.clone(),
            namespace: Some(pod.namespace.clone()),
            pod: Some(pod.name.clone()),
            container: Some(c.name.clone()),
            node: pod.node.clone(),
            image: Some(c.image.clone()),
            run_as_user: c.run_as_user,
            run_as_group: c.run_as_group,
            capabilities: c.capabilities.clone(),
            container_id: c.container_id.clone(),
            sidecar: (approach == Approach::Sidecar).then(|| sidecar_name.to_string()),
            image_digest: c.image_digest.clone(),
            workload: pod.workload.clone(),
            ..PlannedTarget::default()
        });
    }
}

/// An `image:` or `manifest:` target, planned; false for any other.
fn plan_image_or_manifests(
    p: &Loaded<ScanPolicy>,
    t: &crate::policy::model::Target,
    ptr: &str,
    profiles: &[String],
    targets: &mut BTreeMap<String, PlannedTarget>,
    ids: &mut BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if let Some(text) = &t.image {
        plan_image(p, t, text, ptr, profiles, targets, ids, diags);
    } else if let Some(given) = &t.manifest {
        plan_manifests(p, given, ptr, profiles, targets, ids, diags);
    } else {
        return false;
    }
    true
}

/// An `image:` target: one target, its digest read now.
#[allow(clippy::too_many_arguments)]
fn plan_image(
    p: &Loaded<ScanPolicy>,
    t: &crate::policy::model::Target,
    text: &str,
    ptr: &str,
    profiles: &[String],
    targets: &mut BTreeMap<String, PlannedTarget>,
    ids: &mut BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) {
    let planned = crate::image::Source::parse(text, p.base_dir())
        .map_err(crate::image::ImageError::from)
        .and_then(|source| {
            let digest = crate::image::planned_digest(&source)?;
            Ok((source, digest))
        });
    let (source, digest) = match planned {
        Ok(x) => x,
        Err(e) => {
            diags.push(p.at_value(
                    Diagnostic::error(Code::InvalidTarget, e.to_string())
                        .with_hint("image paths are relative to the policy file; see docs/images.md for the sources"),
                    &format!("{ptr}/image"),
                ));
            return;
        }
    };
    let name = t.name.clone().unwrap_or_else(|| source.short_name());
    let id = format!("image/{name}@{}", &digest[7..19]);
    if let Some(first) = ids.get(&id) {
        let at = p.doc.value_position(first);
        diags.push(
            p.at_value(
                Diagnostic::error(
                    Code::DuplicateTarget,
                    format!(
                        "target id `{id}` is already used by the target at line {}, column {}",
                        at.line, at.column
                    ),
                )
                .with_hint("give one of them a distinct `name:`"),
                &format!("{ptr}/image"),
            ),
        );
        return;
    }
    ids.insert(id.clone(), format!("{ptr}/image"));
    targets.insert(
        id.clone(),
        PlannedTarget {
            id,
            approach: Approach::Image,
            reason: "image layers are read on this machine, without extraction".into(),
            profiles: profiles.to_vec(),
            image_source: Some(source.spec()),
            image_digest: Some(digest),
            ..PlannedTarget::default()
        },
    );
}

/// Give live targets whose controls ask what their namespace says (its
/// Pod Security labels, its NetworkPolicies) that context: read once per
/// namespace through the inventory, as the caller, and listed in the plan
/// as the rules it needs. A read that fails is kept as the reason, so the
/// controls that asked are errors, never passes.
fn attach_namespace_context(
    set: &PolicySet,
    pp: &mut PolicyPlan,
    inventory: Option<&dyn Inventory>,
) {
    use crate::facts::workload::NamespaceContext;
    use std::sync::Arc;
    let asks = |names: &[String]| {
        set.profiles
            .iter()
            .filter(|p| names.contains(&p.value.metadata.name))
            .any(|p| p.value.controls.iter().any(|c| c.check.asks_namespace()))
    };
    let mut per_ns: BTreeMap<String, Arc<NamespaceContext>> = BTreeMap::new();
    let mut per_pod: BTreeMap<(String, String), Arc<crate::facts::workload::Workload>> =
        BTreeMap::new();
    for t in &mut pp.targets {
        let (Some(ns), Some(pod), Some(w)) = (&t.namespace, &t.pod, &t.workload) else {
            continue;
        };
        // Only where the debug approach is certain: `auto` reaches most
        // pods by exec, and a note on every one would drown the plan.
        let breaks = (t.approach == Approach::Debug && w.context.is_none())
            .then(|| lowest_broken_level(w))
            .flatten();
        let wants = w.context.is_none() && asks(&t.profiles);
        if breaks.is_none() && !wants {
            continue;
        }
        let ctx = per_ns
            .entry(ns.clone())
            .or_insert_with(|| {
                Arc::new(
                    match inventory.map(|i| i.namespace_context(t.cluster.as_deref(), ns)) {
                        Some(Ok(c)) => c,
                        Some(Err(why)) => NamespaceContext {
                            source: "the cluster",
                            unread: Some(why),
                            ..NamespaceContext::default()
                        },
                        None => NamespaceContext {
                            source: "the cluster",
                            unread: Some("no inventory".into()),
                            ..NamespaceContext::default()
                        },
                    },
                )
            })
            .clone();
        if breaks.is_some() {
            t.reason.push_str(&pod_security_note(w, &ctx));
        }
        if !wants {
            continue;
        }
        let with = per_pod
            .entry((ns.clone(), pod.clone()))
            .or_insert_with(|| {
                Arc::new(crate::facts::workload::Workload {
                    context: Some(ctx),
                    ..(**w).clone()
                })
            })
            .clone();
        t.workload = Some(with);
    }
    pp.caller_reads = per_ns
        .keys()
        .flat_map(|ns| {
            [
                format!("get namespaces (resourceNames: [{ns}]) in {ns}"),
                format!("list networkpolicies.networking.k8s.io in {ns}"),
            ]
        })
        .collect();
}

/// The lowest Pod Security level (baseline, else restricted) a pod breaks
/// at `latest`, with the failing check ids.
fn lowest_broken_level(
    w: &crate::facts::workload::Workload,
) -> Option<(crate::checks::pss::Level, Vec<&'static str>)> {
    use crate::checks::pss::{Level, PolicyVersion};
    [Level::Baseline, Level::Restricted]
        .into_iter()
        .map(|level| (level, broken_checks(level, PolicyVersion::LATEST, w)))
        .find(|(_, broken)| !broken.is_empty())
}

fn broken_checks(
    level: crate::checks::pss::Level,
    version: crate::checks::pss::PolicyVersion,
    w: &crate::facts::workload::Workload,
) -> Vec<&'static str> {
    crate::checks::pss::evaluate_level(level, version, w)
        .into_iter()
        .filter(|(_, o)| matches!(o, crate::checks::pss::Outcome::Forbidden(_)))
        .map(|(check, _)| check.id)
        .collect()
}

/// What Pod Security admission will make of a debug scan of a pod that
/// breaks a level. It judges the whole updated pod on an
/// ephemeral-container patch (`admission.go`) at the level and version
/// its namespace's `enforce` labels give (`PolicyToEvaluate` in
/// `pod-security-admission/api/helpers.go`: an unparsable level is
/// `restricted`, an unparsable version `latest`; an unset label is the
/// admission configuration's default, which no API object shows).
fn pod_security_note(
    w: &crate::facts::workload::Workload,
    ctx: &crate::facts::workload::NamespaceContext,
) -> String {
    use crate::checks::pss::{Level, PolicyVersion};
    const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
    const ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
    let Some((lowest, ids)) = lowest_broken_level(w) else {
        return String::new();
    };
    let conditional = |why: &str| {
        format!(
            "; the pod breaks Pod Security {} ({}): in a namespace that enforces it, its debug scan is refused{why}",
            lowest.as_str(),
            ids.join(", ")
        )
    };
    let Some(labels) = &ctx.labels else {
        let why = ctx.unread.as_deref().unwrap_or("not read");
        return conditional(&format!(" (its namespace could not be read: {why})"));
    };
    let level = match labels.get(ENFORCE).map(String::as_str) {
        None => {
            return conditional(
                " (its namespace sets no enforce label, so the cluster's admission configuration decides)",
            );
        }
        Some("privileged") => return String::new(),
        Some("baseline") => Level::Baseline,
        // `restricted`, and any value admission cannot parse.
        Some(_) => Level::Restricted,
    };
    let version = labels
        .get(ENFORCE_VERSION)
        .map_or(PolicyVersion::LATEST, |v| {
            PolicyVersion::parse(v).unwrap_or(PolicyVersion::LATEST)
        });
    let broken = broken_checks(level, version, w);
    if broken.is_empty() {
        return String::new();
    }
    format!(
        "; its namespace enforces Pod Security {} ({}), which the pod breaks ({}): its debug scan will be refused unless the admission configuration exempts it",
        level.as_str(),
        version.label(),
        broken.join(", ")
    )
}

/// A `manifest:` target: each workload in the files is a target of its
/// own, judged by its pod template.
fn plan_manifests(
    p: &Loaded<ScanPolicy>,
    given: &str,
    ptr: &str,
    profiles: &[String],
    targets: &mut BTreeMap<String, PlannedTarget>,
    ids: &mut BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) {
    let path = if given == "-" {
        std::path::PathBuf::from("-")
    } else {
        p.base_dir().join(given)
    };
    let shown = if given == "-" || std::path::Path::new(given).is_absolute() {
        given.to_string()
    } else {
        path.display().to_string()
    };
    let (found, errors) = crate::inventory::manifest::read(&path, &shown);
    for e in &errors {
        diags.push(p.at_value(
            Diagnostic::error(Code::InvalidTarget, e.to_string()).with_hint(
                "fix the manifest (the place is file:line:column), or point `manifest:` elsewhere",
            ),
            &format!("{ptr}/manifest"),
        ));
    }
    if found.workloads.is_empty() && errors.is_empty() {
        let ignored: Vec<String> = found
            .ignored
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        diags.push(p.at_value(
            Diagnostic::error(
                Code::InvalidTarget,
                format!(
                    "{shown}: no workload in {} file(s){}; a check of nothing would say nothing",
                    found.files,
                    if ignored.is_empty() {
                        String::new()
                    } else {
                        format!(" (only {})", ignored.join(", "))
                    }
                ),
            )
            .with_hint("point `manifest:` at Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs or CronJobs"),
            &format!("{ptr}/manifest"),
        ));
    }
    for w in found.workloads {
        let id = w.target_id();
        let here = match &w.origin {
            crate::facts::workload::Origin::Manifest { file, base, doc } => {
                let pos = doc.value_position(base);
                format!("{file}:{}:{}", pos.line, pos.column)
            }
            crate::facts::workload::Origin::Live => shown.clone(),
        };
        if let Some(first) = ids.get(&id) {
            diags.push(p.at_value(
                Diagnostic::error(
                    Code::DuplicateTarget,
                    format!(
                        "{here}: {} is also defined at {first}; one result would replace the other",
                        crate::safeio::printable(&id)
                    ),
                )
                .with_hint("keep one definition of each object"),
                &format!("{ptr}/manifest"),
            ));
            continue;
        }
        ids.insert(id.clone(), here);
        targets.insert(
            id.clone(),
            PlannedTarget {
                id,
                approach: Approach::Manifest,
                reason: "a manifest's pod template, read on this machine".into(),
                profiles: profiles.to_vec(),
                workload: Some(std::sync::Arc::new(w)),
                ..PlannedTarget::default()
            },
        );
    }
}

/// What a debug scan of `c` will meet, said in the plan rather than first
/// at the scan: the vigil ephemeral containers earlier scans left (they
/// stay for good) and a uid or gid nobody tells (the probe must share
/// them). Pod Security is judged with the namespace
/// ([`pod_security_note`]).
fn debug_notes(approach: Approach, pod: &PodInfo, c: &ContainerInfo) -> String {
    let mut out = String::new();
    let left = pod
        .containers
        .iter()
        .filter(|x| x.kind == ContainerKind::Ephemeral && x.name.starts_with("vigil-"))
        .count();
    if left > 0 {
        out.push_str(&format!(
            "; the pod already carries {left} vigil ephemeral container(s) from earlier scans (they stay until the pod is replaced)"
        ));
    }
    let when = if approach == Approach::Auto {
        "if it has no shell, its debug scan will fail"
    } else {
        "its debug scan will fail"
    };
    if c.run_as_user.is_none() || c.run_as_group.is_none() {
        out.push_str(&format!(
            "; {when}: neither the pod status (status.containerStatuses[].user) nor runAsUser and runAsGroup tell its uid and gid, which the probe must share"
        ));
    }
    out
}

/// Images with no shell: exec cannot run the gatherer in them.
pub fn looks_shell_less(image: &str) -> bool {
    let name = image
        .split('@')
        .next()
        .unwrap_or(image)
        .to_ascii_lowercase();
    [
        "distroless",
        "scratch",
        "chainguard/static",
        "/static:",
        "busybox-less",
    ]
    .iter()
    .any(|m| name.contains(m))
}

/// What a policy and a pod offer for choosing an approach.
#[derive(Debug, Clone)]
struct Means {
    /// The pod's vigil sidecar, if it has one: usable for this container
    /// (with a note when the pod does not tell whether the kernel lets it
    /// read the container), or why not.
    sidecar: Option<Result<Option<String>, String>>,
    has_debug_image: bool,
    allow_pod_override: bool,
    need_probe: bool,
}

/// Resolve `auto` and check explicit approaches against the pod.
fn choose_approach(
    wanted: Approach,
    pod: &PodInfo,
    c: &ContainerInfo,
    means: Means,
) -> Result<(Approach, String), String> {
    let Means {
        sidecar,
        has_debug_image,
        allow_pod_override,
        need_probe,
    } = means;
    let sidecar = sidecar.as_ref();
    // The sidecar as asked for by the policy or the pod.
    let use_sidecar = |why: String| match sidecar {
        Some(Ok(None)) => Ok((Approach::Sidecar, why)),
        Some(Ok(Some(note))) => Ok((Approach::Sidecar, format!("{why} (unconfirmed: {note})"))),
        Some(Err(no)) => Err(no.clone()),
        None => Err(
            "approach sidecar, but the pod has no vigil sidecar with shareProcessNamespace".into(),
        ),
    };
    match wanted {
        Approach::Api if need_probe => {
            Err("approach api cannot give the probe evidence the policy requires".into())
        }
        Approach::Api => Ok((Approach::Api, "policy asks for api".into())),
        Approach::Debug => Ok((Approach::Debug, "policy asks for debug".into())),
        Approach::Sidecar => use_sidecar("policy asks for sidecar".into()),
        Approach::Local | Approach::Image | Approach::Imported | Approach::Manifest => {
            Err(format!(
                "approach {} cannot reach a Kubernetes container",
                wanted.as_str()
            ))
        }
        Approach::Auto => {
            let asked = pod.annotations.get(APPROACH_ANNOTATION);
            if let Some(asked) = asked
                && allow_pod_override
            {
                return match Approach::from_name(asked) {
                    Some(Approach::Api) if need_probe => Err(format!(
                        "pod annotation {APPROACH_ANNOTATION}=api asks for api, which cannot give the probe evidence the policy requires"
                    )),
                    Some(Approach::Api) => Ok((
                        Approach::Api,
                        format!("pod annotation {APPROACH_ANNOTATION}=api"),
                    )),
                    Some(Approach::Debug) if has_debug_image => Ok((
                        Approach::Debug,
                        format!("pod annotation {APPROACH_ANNOTATION}=debug"),
                    )),
                    Some(Approach::Sidecar) if sidecar.is_some() => {
                        use_sidecar(format!("pod annotation {APPROACH_ANNOTATION}=sidecar"))
                    }
                    _ => Err(format!(
                        "pod annotation {APPROACH_ANNOTATION}={} cannot be honoured (unknown approach, or no debug image / sidecar)",
                        crate::safeio::excerpt(asked, 40)
                    )),
                };
            }
            // An annotation the policy does not let the workload use: said
            // in the plan, never obeyed.
            let ignored = asked
                .map(|a| {
                    format!(
                        "; pod annotation {APPROACH_ANNOTATION}={} ignored (spec.allowPodOverride is false)",
                        crate::safeio::excerpt(a, 40)
                    )
                })
                .unwrap_or_default();
            let chosen = auto_approach(c, sidecar, has_debug_image, need_probe);
            chosen.map(|(a, why)| (a, format!("{why}{ignored}")))
        }
    }
}

/// `auto` without an annotation to follow.
fn auto_approach(
    c: &ContainerInfo,
    sidecar: Option<&Result<Option<String>, String>>,
    has_debug_image: bool,
    need_probe: bool,
) -> Result<(Approach, String), String> {
    match sidecar {
        Some(Ok(note)) => {
            let unconfirmed = note
                .as_ref()
                .map(|n| format!(" (unconfirmed: {n})"))
                .unwrap_or_default();
            Ok((
                Approach::Sidecar,
                format!(
                    "pod carries a vigil sidecar and shares its process namespace{unconfirmed}"
                ),
            ))
        }
        // A sidecar that cannot serve this container: say so beside
        // whatever is chosen instead.
        Some(Err(no)) => auto_without_sidecar(c, has_debug_image, need_probe)
            .map(|(a, why)| (a, format!("{why}; not the sidecar: {no}")))
            .map_err(|why| format!("{why}; not the sidecar: {no}")),
        None => auto_without_sidecar(c, has_debug_image, need_probe),
    }
}

/// `auto` for a container no sidecar can serve.
fn auto_without_sidecar(
    c: &ContainerInfo,
    has_debug_image: bool,
    need_probe: bool,
) -> Result<(Approach, String), String> {
    if need_probe {
        return if has_debug_image {
            Ok((
                Approach::Debug,
                "policy requires probe evidence: ephemeral debug container".into(),
            ))
        } else {
            Err("the policy requires probe evidence, but sets no spec.debug.image and the pod has no usable vigil sidecar".into())
        };
    }
    if has_debug_image {
        // Decided per target at run time: the one exec tells whether
        // the container has a shell.
        Ok((
            Approach::Auto,
            if looks_shell_less(&c.image) {
                "image looks shell-less (distroless/static): ephemeral debug container"
            } else {
                "one exec into the container; an ephemeral debug container if it has no shell"
            }
            .into(),
        ))
    } else if looks_shell_less(&c.image) {
        Err("image has no shell and the policy sets no spec.debug.image".into())
    } else {
        Ok((
            Approach::Api,
            "image has a shell; one exec into the container (no spec.debug.image to fall back to)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> PodInfo {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team"},
            "spec": spec
        }))
        .unwrap();
        PodInfo::from_pod(&pod).unwrap()
    }

    /// A debug target's pod that breaks a Pod Security level: the plan
    /// says whether its namespace's enforce labels refuse the scan
    /// (admission judges the whole pod on the ephemeral-container patch),
    /// at the labelled version, and says so conditionally only when the
    /// namespace is unread or unlabelled.
    #[test]
    fn debug_targets_say_whether_their_namespace_refuses_them() {
        use crate::facts::workload::NamespaceContext;
        let host = pod(serde_json::json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
        let plain = pod(serde_json::json!({"containers": [{"name": "c"}]}));
        let probe = pod(serde_json::json!({"containers": [{"name": "c",
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}}));
        let hardened = pod(serde_json::json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1, "runAsGroup": 1, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        }));
        let labelled = |pairs: &[(&str, &str)]| NamespaceContext {
            source: "the cluster",
            labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), v.to_string()))
                    .collect(),
            ),
            ..NamespaceContext::default()
        };
        let note = |p: &PodInfo, ctx: &NamespaceContext| {
            pod_security_note(p.workload.as_ref().unwrap(), ctx)
        };
        let unread = NamespaceContext {
            source: "the cluster",
            unread: Some("403".into()),
            ..NamespaceContext::default()
        };
        let n = note(&host, &unread);
        assert!(
            n.contains("breaks Pod Security baseline (hostNamespaces)")
                && n.contains("in a namespace that enforces it")
                && n.contains("could not be read: 403"),
            "{n}"
        );
        let n = note(&host, &labelled(&[]));
        assert!(n.contains("sets no enforce label"), "{n}");
        assert_eq!(note(&host, &labelled(&[("enforce", "privileged")])), "");
        for (p, labels, want) in [
            (
                &host,
                vec![("enforce", "baseline")],
                "baseline (latest), which the pod breaks (hostNamespaces)",
            ),
            (
                &plain,
                vec![("enforce", "restricted")],
                "restricted (latest), which the pod breaks (allowPrivilegeEscalation",
            ),
            // Admission reads a level it cannot parse as restricted.
            (&plain, vec![("enforce", "strict")], "restricted (latest)"),
            (
                &probe,
                vec![("enforce", "baseline"), ("enforce-version", "v1.34")],
                "baseline (v1.34), which the pod breaks (hostProbesAndHostLifecycle)",
            ),
            (
                &probe,
                vec![("enforce", "baseline"), ("enforce-version", "bogus")],
                "baseline (latest)",
            ),
        ] {
            let n = note(p, &labelled(&labels));
            assert!(
                n.contains(&format!("its namespace enforces Pod Security {want}"))
                    && n.contains("its debug scan will be refused"),
                "{labels:?}: {n}"
            );
        }
        // Met at the enforced level or version: no note.
        assert_eq!(note(&plain, &labelled(&[("enforce", "baseline")])), "");
        assert_eq!(
            note(
                &probe,
                &labelled(&[("enforce", "baseline"), ("enforce-version", "v1.33")])
            ),
            ""
        );
        for ctx in [labelled(&[("enforce", "restricted")]), unread] {
            assert_eq!(note(&hardened, &ctx), "");
        }
    }
}
