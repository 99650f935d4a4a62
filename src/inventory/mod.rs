//! Where scan targets come from.
//!
//! An [`Inventory`] answers "which pods are in this namespace (of this
//! cluster)". Today there is one source: a snapshot file, the JSON of
//! `kubectl get pods -A -o json`. The live cluster source implements the
//! same trait, so the planner cannot tell them apart. Local root
//! filesystems need no inventory: the policy names their directories.

mod live;
pub mod manifest;
mod snapshot;

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

pub use live::Live;
pub use snapshot::Snapshot;

/// What kind of container a pod entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// `spec.containers`.
    App,
    /// `spec.initContainers`.
    Init,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

/// The facts about a container that planning needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Container name.
    pub name: String,
    /// Image reference as the pod spec has it.
    pub image: String,
    /// App, init or ephemeral.
    pub kind: ContainerKind,
    /// The uid its processes run as: what the kubelet reports in
    /// `status.containerStatuses[].user.linux` (Kubernetes 1.31+), else
    /// `runAsUser` from the container's or the pod's securityContext.
    pub run_as_user: Option<i64>,
    /// The gid, from the same places (`runAsGroup` in the spec). Unknown
    /// when only the image says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// `securityContext.capabilities` of the container, as the spec sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<k8s_openapi::api::core::v1::Capabilities>,
    /// `securityContext.privileged`: every capability, every device.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// The container is running now (from `status.containerStatuses`).
    pub running: bool,
    /// `containerID` from the container's status (`containerd://…`), used
    /// by the sidecar approach to find its processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The image digest the kubelet reports running (`imageID`, e.g.
    /// `docker-pullable://reg/app@sha256:…`), as `sha256:<hex>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// The `sha256:<64 hex>` an `imageID` ends with, if it has one.
pub fn image_digest(image_id: &str) -> Option<String> {
    let i = image_id.rfind("sha256:")?;
    let d = &image_id[i..];
    crate::registry::is_sha256_digest(d).then(|| d.to_string())
}

/// The facts about a pod that planning needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it runs on, if scheduled.
    pub node: Option<String>,
    /// `status.phase` (`Running`, `Succeeded`, …).
    pub phase: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (vigil reads `vigil.dev/approach`).
    pub annotations: BTreeMap<String, String>,
    /// `spec.shareProcessNamespace`.
    pub share_process_namespace: bool,
    /// A Windows pod (`spec.os.name: windows`, or a node selector or
    /// required node affinity on `kubernetes.io/os: windows`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub windows: bool,
    /// Every container: app, init and ephemeral.
    pub containers: Vec<ContainerInfo>,
    /// The pod's configuration, as evidence for workload controls.
    #[serde(skip)]
    pub workload: Option<std::sync::Arc<crate::facts::workload::Workload>>,
}

impl PodInfo {
    /// Extract the planning facts from a full pod object. Returns `None` for
    /// a pod without a name or namespace (not something the API returns).
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let mut info = PodInfo::without_workload(pod)?;
        info.workload = crate::facts::workload::Workload::live(pod).map(std::sync::Arc::new);
        Some(info)
    }

    /// [`PodInfo::from_pod`], taking the pod: its configuration moves into
    /// the workload instead of being copied (a listing of thousands of
    /// pods is converted once and dropped).
    pub(crate) fn from_owned(pod: Pod) -> Option<PodInfo> {
        let mut info = PodInfo::without_workload(&pod)?;
        let Pod { metadata, spec, .. } = pod;
        info.workload = spec
            .and_then(|spec| crate::facts::workload::Workload::of_pod(metadata, spec))
            .map(std::sync::Arc::new);
        Some(info)
    }

    fn without_workload(pod: &Pod) -> Option<PodInfo> {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let pod_sc = spec.and_then(|s| s.security_context.as_ref());
        let pod_uid = pod_sc.and_then(|c| c.run_as_user);
        let pod_gid = pod_sc.and_then(|c| c.run_as_group);
        // Every container's status, regular, init and ephemeral alike.
        let statuses: Vec<&k8s_openapi::api::core::v1::ContainerStatus> = status
            .into_iter()
            .flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
                    .chain(s.ephemeral_container_statuses.iter().flatten())
            })
            .collect();
        // The ids the kubelet reports the runtime used (KEP-3619).
        let reported: std::collections::HashMap<&str, (i64, i64)> = statuses
            .iter()
            .filter_map(|cs| {
                let linux = cs.user.as_ref()?.linux.as_ref()?;
                Some((cs.name.as_str(), (linux.uid, linux.gid)))
            })
            .collect();
        let user =
            |name: &str, sc: Option<&k8s_openapi::api::core::v1::SecurityContext>| match reported
                .get(name)
            {
                Some(&(uid, gid)) => (Some(uid), Some(gid)),
                None => (
                    sc.and_then(|s| s.run_as_user).or(pod_uid),
                    sc.and_then(|s| s.run_as_group).or(pod_gid),
                ),
            };
        let ids: std::collections::HashMap<&str, &str> = statuses
            .iter()
            .filter_map(|cs| Some((cs.name.as_str(), cs.container_id.as_deref()?)))
            .collect();
        let image_digests: std::collections::HashMap<&str, String> = statuses
            .iter()
            .filter_map(|cs| Some((cs.name.as_str(), image_digest(&cs.image_id)?)))
            .collect();
        let running: Vec<&str> = statuses
            .iter()
            .filter(|cs| cs.state.as_ref().is_some_and(|st| st.running.is_some()))
            .map(|cs| cs.name.as_str())
            .collect();
        // Init, app and ephemeral containers are different types with the
        // same fields this reads: one builder for all three.
        let info = |kind: ContainerKind,
                    name: &str,
                    image: &Option<String>,
                    sc: Option<&k8s_openapi::api::core::v1::SecurityContext>| {
            let (run_as_user, run_as_group) = user(name, sc);
            ContainerInfo {
                name: name.to_string(),
                image: image.clone().unwrap_or_default(),
                kind,
                run_as_user,
                run_as_group,
                capabilities: sc.and_then(|s| s.capabilities.clone()),
                privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
                running: running.contains(&name),
                container_id: ids.get(name).map(|s| s.to_string()),
                image_digest: image_digests.get(name).cloned(),
            }
        };
        let mut containers = Vec::new();
        if let Some(spec) = spec {
            for (kind, list) in [
                (ContainerKind::App, &spec.containers),
                (
                    ContainerKind::Init,
                    spec.init_containers.as_ref().unwrap_or(&Vec::new()),
                ),
            ] {
                for c in list {
                    containers.push(info(kind, &c.name, &c.image, c.security_context.as_ref()));
                }
            }
            for c in spec.ephemeral_containers.iter().flatten() {
                containers.push(info(
                    ContainerKind::Ephemeral,
                    &c.name,
                    &c.image,
                    c.security_context.as_ref(),
                ));
            }
        }
        Some(PodInfo {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            node: spec.and_then(|s| s.node_name.clone()),
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Unknown".into()),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            share_process_namespace: spec.and_then(|s| s.share_process_namespace) == Some(true),
            windows: spec.is_some_and(is_windows),
            containers,
            workload: None,
        })
    }
}

/// Whether a pod runs on Windows nodes: `spec.os.name` (the field the API
/// validates against Windows-only and Linux-only settings), else the node
/// selector or a required node affinity term on `kubernetes.io/os`.
fn is_windows(spec: &k8s_openapi::api::core::v1::PodSpec) -> bool {
    const OS: &str = "kubernetes.io/os";
    if let Some(os) = &spec.os {
        return os.name.eq_ignore_ascii_case("windows");
    }
    if spec
        .node_selector
        .as_ref()
        .and_then(|s| s.get(OS))
        .is_some_and(|v| v.eq_ignore_ascii_case("windows"))
    {
        return true;
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    // Required terms are ORed: Windows only when every term asks for it.
    !terms.is_empty()
        && terms.iter().all(|t| {
            t.match_expressions.iter().flatten().any(|e| {
                e.key == OS
                    && e.operator == "In"
                    && e.values.as_ref().is_some_and(|v| {
                        !v.is_empty() && v.iter().all(|x| x.eq_ignore_ascii_case("windows"))
                    })
            })
        })
}

/// Failure to read an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The snapshot file could not be read.
    #[error("cannot read inventory {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The snapshot file is not a pod list.
    #[error("{path} is not a pod list (kubectl get pods -A -o json): {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why, with line and column.
        reason: String,
    },
}

/// A source of pods.
pub trait Inventory {
    /// Every pod in `namespace` of `cluster` (`None`: the default cluster),
    /// sorted by name. Selection (labels, names, containers) is the
    /// planner's job, so every source selects identically.
    fn pods(
        &self,
        cluster: Option<&str>,
        namespace: &str,
    ) -> Result<Cow<'_, [PodInfo]>, InventoryError>;

    /// What `namespace` says about its pods (its labels, its
    /// NetworkPolicies), or why it could not be read. Asked only when a
    /// control needs it; a source that cannot tell says so.
    fn namespace_context(
        &self,
        _cluster: Option<&str>,
        namespace: &str,
    ) -> Result<crate::facts::workload::NamespaceContext, String> {
        Err(format!(
            "a snapshot does not hold namespace {namespace}'s object or its NetworkPolicies"
        ))
    }
}
