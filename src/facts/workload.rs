//! A workload's pod configuration as evidence: the pod object the API
//! server returned for a live target, or a pod template read from a
//! manifest. Workload controls (`checks::workload`, `checks::pss`) read it;
//! nothing here is gathered from inside a container.
//!
//! Its evidence level is `spec`: what was admitted (or, for a manifest,
//! what is declared), never what the process did since.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EphemeralContainer, Lifecycle, PodSpec, Probe,
    ResourceRequirements, SecurityContext,
};

use crate::policy::yaml::Tree;

/// One pod's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `Pod`, `Deployment`, … (the object the pod template came from).
    pub kind: String,
    /// Namespace (`default` when a manifest names none).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The pod's (or pod template's) labels (NetworkPolicies select by
    /// them).
    pub labels: BTreeMap<String, String>,
    /// The pod's (or pod template's) annotations: AppArmor and seccomp
    /// annotations are part of the Pod Security Standards.
    pub annotations: BTreeMap<String, String>,
    /// The pod spec, defaulted as the API server defaults it.
    pub spec: PodSpec,
    /// Where it came from.
    pub origin: Origin,
    /// Its namespace's settings, where they were read.
    pub context: Option<Arc<NamespaceContext>>,
}

/// What a namespace says about the pods in it: its Pod Security labels and
/// its NetworkPolicies. Read from the same manifests as the workload (a
/// Namespace object, NetworkPolicy objects); `None` fields were not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceContext {
    /// Where it was read (`the manifests`).
    pub source: &'static str,
    /// The Namespace object's labels, when it was among what was read.
    pub labels: Option<BTreeMap<String, String>>,
    /// Every NetworkPolicy of the namespace: its name and pod selector.
    pub network_policies: Option<Vec<(String, crate::policy::selector::LabelSelector)>>,
    /// Why neither could be read (a refused or failed request).
    pub unread: Option<String>,
}

/// Where a workload's configuration was read.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The pod object the API server returned (or a snapshot of one).
    Live,
    /// A manifest file.
    Manifest {
        /// The file as given.
        file: Arc<str>,
        /// JSON pointer of the pod template inside its document (`""` for
        /// a Pod, `/spec/template` for a Deployment, …).
        base: String,
        /// Where each node of its document is.
        doc: Arc<Tree>,
    },
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        match (self, other) {
            (Origin::Live, Origin::Live) => true,
            (
                Origin::Manifest { file, base, doc },
                Origin::Manifest {
                    file: f2,
                    base: b2,
                    doc: d2,
                },
            ) => file == f2 && base == b2 && Arc::ptr_eq(doc, d2),
            _ => false,
        }
    }
}

/// A field's place in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The manifest file as given.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Workload {
    /// A live pod's configuration, as the API server returned it (`None`
    /// for a pod without a spec, name or namespace).
    pub fn live(pod: &k8s_openapi::api::core::v1::Pod) -> Option<Workload> {
        let meta = &pod.metadata;
        Some(Workload {
            kind: "Pod".into(),
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            spec: pod.spec.clone()?,
            origin: Origin::Live,
            context: None,
        })
    }

    /// A live pod's configuration from its parts, taken (no copy).
    pub(crate) fn of_pod(
        meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        spec: k8s_openapi::api::core::v1::PodSpec,
    ) -> Option<Workload> {
        Some(Workload {
            kind: "Pod".into(),
            namespace: meta.namespace?,
            name: meta.name?,
            labels: meta.labels.unwrap_or_default(),
            annotations: meta.annotations.unwrap_or_default(),
            spec,
            origin: Origin::Live,
            context: None,
        })
    }

    /// Where the field at `pointer` (relative to the pod: `/spec/…`,
    /// `/metadata/annotations/…`) is written, for a manifest; the nearest
    /// written ancestor for a field that is missing. `None` for a live pod.
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        match &self.origin {
            Origin::Live => None,
            Origin::Manifest { file, base, doc } => {
                let pos = doc.value_position(&format!("{base}{pointer}"));
                Some(Location {
                    file: file.to_string(),
                    line: pos.line,
                    column: pos.column,
                })
            }
        }
    }

    /// Every container of the pod: init containers, then app containers,
    /// then ephemeral containers (the order the admission library visits
    /// them in, `policy/visitor.go`).
    pub fn containers(&self) -> impl Iterator<Item = ContainerView<'_>> {
        let s = &self.spec;
        let init = s.init_containers.iter().flatten().enumerate();
        let app = s.containers.iter().enumerate();
        let eph = s.ephemeral_containers.iter().flatten().enumerate();
        init.map(|(i, c)| ContainerView::of(c, ContainerKind::Init, i))
            .chain(app.map(|(i, c)| ContainerView::of(c, ContainerKind::App, i)))
            .chain(eph.map(|(i, c)| ContainerView::ephemeral(c, i)))
    }

    /// A Windows pod (`spec.os.name: windows`): the Pod Security
    /// Standards exempt it from the Linux-only restricted checks (v1.25+).
    pub fn is_windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|o| o.name == "windows")
    }

    /// `spec.hostUsers: false`: the pod runs in a user namespace.
    pub fn user_namespace(&self) -> bool {
        self.spec.host_users == Some(false)
    }

    /// The id a target of this workload gets: `<kind>/<namespace>/<name>`.
    pub fn target_id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

pub(crate) use crate::policy::model::ContainerKind;

/// The fields of a container or an ephemeral container that workload
/// controls read, with the JSON pointer of the container.
#[derive(Debug, Clone)]
pub struct ContainerView<'a> {
    /// Container name.
    pub name: &'a str,
    /// Which list it is in.
    pub kind: ContainerKind,
    /// `/spec/<list>/<index>`.
    pub pointer: String,
    /// `securityContext`.
    pub security_context: Option<&'a SecurityContext>,
    /// `ports`.
    pub ports: &'a [ContainerPort],
    /// Liveness, readiness and startup probes.
    pub probes: [(&'static str, Option<&'a Probe>); 3],
    /// `lifecycle`.
    pub lifecycle: Option<&'a Lifecycle>,
    /// `resources`.
    pub resources: Option<&'a ResourceRequirements>,
    /// `image`.
    pub image: Option<&'a str>,
    /// `imagePullPolicy`.
    pub image_pull_policy: Option<&'a str>,
    /// `env`.
    pub env: &'a [EnvVar],
}

/// The view of a container or an ephemeral container: the two types
/// share these fields by name, not by a trait.
macro_rules! view {
    ($c:expr, $kind:expr, $i:expr) => {{
        let c = $c;
        ContainerView {
            name: &c.name,
            kind: $kind,
            pointer: format!("/spec/{}/{}", $kind.field(), $i),
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
            probes: [
                ("livenessProbe", c.liveness_probe.as_ref()),
                ("readinessProbe", c.readiness_probe.as_ref()),
                ("startupProbe", c.startup_probe.as_ref()),
            ],
            lifecycle: c.lifecycle.as_ref(),
            resources: c.resources.as_ref(),
            image: c.image.as_deref(),
            image_pull_policy: c.image_pull_policy.as_deref(),
            env: c.env.as_deref().unwrap_or_default(),
        }
    }};
}

impl<'a> ContainerView<'a> {
    fn of(c: &'a Container, kind: ContainerKind, i: usize) -> ContainerView<'a> {
        view!(c, kind, i)
    }

    fn ephemeral(c: &'a EphemeralContainer, i: usize) -> ContainerView<'a> {
        view!(c, ContainerKind::Ephemeral, i)
    }

    /// `<pointer>/securityContext/<field>`.
    pub fn sc_field(&self, field: &str) -> String {
        format!("{}/securityContext/{field}", self.pointer)
    }
}

/// Apply the API server's defaulting that the checks can see
/// (`pkg/apis/core/v1/defaults.go`): a volume with no source becomes an
/// `emptyDir` (`SetDefaults_Volume`), and with `hostNetwork` every
/// container port without a `hostPort` gets its `containerPort` as one
/// (`defaultHostNetworkPorts`, for app and init containers). A live pod
/// was defaulted when it was created; a manifest is defaulted here so both
/// are judged alike.
pub(crate) fn apply_defaults(spec: &mut PodSpec) {
    for v in spec.volumes.iter_mut().flatten() {
        if volume_source_names(v).is_empty() {
            v.empty_dir = Some(Default::default());
        }
    }
    if spec.host_network == Some(true) {
        let lists = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in lists {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
}

/// The sources a volume sets, by their field names.
pub(crate) fn volume_source_names(v: &k8s_openapi::api::core::v1::Volume) -> Vec<&'static str> {
    let set = [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("configMap", v.config_map.is_some()),
        ("csi", v.csi.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("secret", v.secret.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ];
    set.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect()
}
