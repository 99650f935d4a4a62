//! Running vigil in the cluster: a CronJob for scheduled runs, an Indexed
//! Job for sharded runs, the runner's ServiceAccount and Roles — all as
//! typed Kubernetes objects, hardened as the threat model asks.
//!
//! The runner pod: non-root (uid 10001), read-only root filesystem, no
//! privilege escalation, every capability dropped, seccomp RuntimeDefault,
//! requests and limits, the image by digest, the policy from a ConfigMap,
//! the signing key from a Secret mounted read-only (mode 0400), results on
//! a PersistentVolumeClaim, `/tmp` an emptyDir (private directories of
//! external scanners).
//!
//! The runner's rights, per target namespace (table and trade-offs in
//! `docs/operations.md`): `list pods`; `create` Secrets (the anchors) and,
//! in per-run mode, ServiceAccounts, Roles and RoleBindings — `create`
//! cannot be pinned; `delete` and token requests pinned by `resourceNames`
//! to the access objects of the rendered run slots (`--stable-names`); in
//! per-run mode also the scan verbs on all pods of the namespace, because
//! Kubernetes lets an identity grant only rights it holds. Provisioned mode
//! needs only token requests for the one provisioned ServiceAccount.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIProjection,
    DownwardAPIVolumeFile, EmptyDirVolumeSource, KeyToPath, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::policy::model::{AccessMode, Approach, ScanPolicy};

/// What `vigil render cronjob` (no `shards`) or `vigil render job`
/// (`shards`) asks for.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Where the runner lives and what it uses.
    pub runner: InCluster,
    /// An Indexed Job of this many shards; a CronJob when `None`.
    pub shards: Option<u32>,
    /// Let the shards run on any node: the results claim is
    /// ReadWriteMany (see [`sharded_job`]).
    pub spread: bool,
    /// Add the egress NetworkPolicy: the API server's address range.
    pub api_server_cidr: Option<String>,
    /// The API server's ports, for that NetworkPolicy.
    pub api_server_ports: Vec<u16>,
    /// Registries the NetworkPolicy lets the runner reach (scanner image
    /// verification), and their ports.
    pub registry_cidrs: Vec<String>,
    /// Those registries' ports.
    pub registry_ports: Vec<u16>,
}

/// Why a runner cannot be rendered as asked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RenderError(String);

/// The runner's manifests as a YAML stream: its ServiceAccount, one Role
/// and RoleBinding per run slot, the CronJob or Indexed Job, and the
/// NetworkPolicy when asked for.
pub(crate) fn render(policy: &ScanPolicy, req: &Request) -> Result<String, RenderError> {
    let invalid = |m: String| RenderError(m);
    let ic = &req.runner;
    if !crate::policy::selector::is_dns_label(&ic.namespace) {
        return Err(invalid(format!(
            "{:?} is not a namespace name",
            ic.namespace
        )));
    }
    for (what, name) in [("--pvc", &ic.pvc), ("--signing-secret", &ic.signing_secret)] {
        if !crate::policy::selector::is_dns_subdomain(name) {
            return Err(invalid(format!(
                "{what} {name:?} is not a Kubernetes object name"
            )));
        }
    }
    if !crate::policy::lint::is_pinned(&ic.image) {
        return Err(invalid(format!(
            "--image {:?} is not pinned by digest; use NAME@sha256:<64 hex digits>",
            ic.image
        )));
    }
    if policy.spec.targets.iter().any(|t| t.is_rootfs()) {
        return Err(invalid(format!(
            "policy {} has rootfs targets, which an in-cluster runner cannot reach",
            policy.metadata.name
        )));
    }
    if req.shards.is_some_and(|n| n == 0 || n > 1024) {
        return Err(invalid("--shards must be between 1 and 1024".into()));
    }
    if let Some(cidr) = &req.api_server_cidr
        && !super::manifests::is_cidr(cidr)
    {
        return Err(invalid(format!(
            "--api-server-cidr {cidr:?} is not a CIDR such as 10.0.0.1/32"
        )));
    }
    let mut docs: Vec<String> = Vec::new();
    // The run slots this runner's runs use: one for a CronJob (one run at
    // a time), one per shard for an Indexed Job.
    let slots: Vec<Option<u32>> = match req.shards {
        None => vec![None],
        Some(n) => (0..n).map(Some).collect(),
    };
    let (sa, roles) = runner_rbac(policy, ic, &slots);
    docs.push(super::to_yaml(&sa));
    for (role, binding) in &roles {
        docs.push(super::to_yaml(role));
        docs.push(super::to_yaml(binding));
    }
    match req.shards {
        None => {
            let cj = cronjob(policy, ic).ok_or_else(|| {
                invalid(format!(
                    "policy {} has no spec.schedule; a CronJob needs one (or use `vigil render job`)",
                    policy.metadata.name
                ))
            })?;
            docs.push(super::to_yaml(&cj));
        }
        Some(n) => docs.push(super::to_yaml(&sharded_job(policy, ic, n, req.spread))),
    }
    if let Some(cidr) = &req.api_server_cidr {
        // A runner that verifies scanner images reaches their registry.
        // (A saved signature, `verify.signature`, is checked offline.)
        let online = |v: &Option<crate::policy::model::ImageVerify>| {
            v.as_ref().is_some_and(|v| v.signature.is_none())
        };
        let verifies = policy
            .spec
            .debug
            .as_ref()
            .is_some_and(|d| online(&d.verify))
            || policy
                .spec
                .sidecar
                .as_ref()
                .is_some_and(|d| online(&d.verify));
        if verifies && req.registry_cidrs.is_empty() {
            return Err(invalid(format!(
                "policy {} verifies its scanner images' signatures against their registry, which the NetworkPolicy would cut off: give the registry's address ranges with --registry-cidr (or leave out --api-server-cidr)",
                policy.metadata.name
            )));
        }
        if let Some(bad) = req
            .registry_cidrs
            .iter()
            .find(|c| !super::manifests::is_cidr(c))
        {
            return Err(invalid(format!(
                "--registry-cidr {bad:?} is not a CIDR such as 192.0.2.0/24"
            )));
        }
        docs.push(super::to_yaml(&super::manifests::network_policy(
            &ic.namespace,
            cidr,
            &req.api_server_ports,
            (&req.registry_cidrs, &req.registry_ports),
        )));
    }
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&d);
        if !d.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The runner's uid (not 0, not the scanner image's 65532).
pub(crate) const RUNNER_UID: i64 = 10001;

/// Where the runner pod finds things.
const POLICY_DIR: &str = "/etc/vigil/policy";
const KEY_DIR: &str = "/etc/vigil/keys";
const RESULTS_DIR: &str = "/results";

/// What the rendering needs beyond the policy.
#[derive(Debug, Clone)]
pub(crate) struct InCluster {
    /// Namespace the runner lives in.
    pub namespace: String,
    /// The vigil image, pinned by digest.
    pub image: String,
    /// The PersistentVolumeClaim results go to.
    pub pvc: String,
    /// The Secret holding `signing.key.pem`.
    pub signing_secret: String,
}

fn labels(policy: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name".to_string(), "vigil".to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "vigil".to_string(),
        ),
        ("vigil.dev/policy".to_string(), policy.to_string()),
    ]
    .into()
}

fn meta(name: &str, namespace: &str, policy: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels(policy)),
        ..ObjectMeta::default()
    }
}

/// The ConfigMap the runner reads the policy (and its profiles) from.
pub(crate) fn policy_configmap_name(policy: &str) -> String {
    format!("vigil-policy-{policy}")
}

/// The runner's ServiceAccount name.
pub(crate) fn runner_name(policy: &str) -> String {
    format!("vigil-runner-{policy}")
}

/// The runner's memory limit in MiB: a base for the process, its plan and
/// its results, and per scan in flight (`limits.concurrency`) one target's
/// facts, at most the probe's content budget
/// ([`crate::facts::MAX_CONTENT_BYTES`]) plus their metadata and the
/// output stream's buffers. Every approach parses output as it streams,
/// so a scan holds its facts, not its output.
pub(crate) fn runner_memory_mib(concurrency: u32) -> u64 {
    const BASE_MIB: u64 = 128;
    const PER_SCAN_MIB: u64 = crate::facts::MAX_CONTENT_BYTES / (1024 * 1024) + 8;
    BASE_MIB + u64::from(concurrency.max(1)) * PER_SCAN_MIB
}

/// The runner's requests and limits; memory as [`runner_memory_mib`].
fn runner_resources(policy: &ScanPolicy) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), q("100m")),
                ("memory".to_string(), q("128Mi")),
            ]
            .into(),
        ),
        limits: Some(
            [
                ("cpu".to_string(), q("1")),
                (
                    "memory".to_string(),
                    q(&format!(
                        "{}Mi",
                        runner_memory_mib(policy.spec.limits.concurrency)
                    )),
                ),
            ]
            .into(),
        ),
        ..ResourceRequirements::default()
    }
}

/// The runner pod's template; `extra_args` are appended to `vigil run`.
fn pod_template(policy: &ScanPolicy, ic: &InCluster, extra_args: &[String]) -> PodTemplateSpec {
    let name = &policy.metadata.name;
    let q = |s: &str| Quantity(s.to_string());
    let mut args = vec![
        "run".to_string(),
        POLICY_DIR.to_string(),
        "--out".to_string(),
        RESULTS_DIR.to_string(),
        "--signing-key".to_string(),
        format!("{KEY_DIR}/signing.key.pem"),
        "--log-format".to_string(),
        "json".to_string(),
        // Access objects named after the run's slot, so the runner's Role
        // can pin its rights to them (see `runner_rbac`).
        "--stable-names".to_string(),
    ];
    args.extend(extra_args.iter().cloned());
    let container = Container {
        name: "vigil".into(),
        image: Some(ic.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![super::manifests::PROBE_BINARY.into()]),
        args: Some(args),
        resources: Some(runner_resources(policy)),
        security_context: Some(super::manifests::hardened_security_context(RUNNER_UID)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "policy".into(),
                mount_path: POLICY_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "signing-key".into(),
                mount_path: KEY_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "results".into(),
                mount_path: RESULTS_DIR.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "api-token".into(),
                mount_path: SERVICE_ACCOUNT_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(name)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(runner_name(name)),
            termination_grace_period_seconds: Some(termination_grace(policy)),
            // No automounted token: the runner's API credentials are the
            // projected volume below, with an explicit lifetime.
            automount_service_account_token: Some(false),
            restart_policy: Some("Never".into()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUNNER_UID),
                run_as_group: Some(RUNNER_UID),
                fs_group: Some(RUNNER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(vec![
                Volume {
                    name: "policy".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: policy_configmap_name(name),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "signing-key".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(ic.signing_secret.clone()),
                        default_mode: Some(0o400),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "results".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: ic.pvc.clone(),
                        read_only: Some(false),
                    }),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        size_limit: Some(q("256Mi")),
                        ..EmptyDirVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                api_token_volume(policy),
            ]),
            ..PodSpec::default()
        }),
    }
}

/// Where in-cluster configuration looks for the token, CA and namespace
/// (kube-rs `kube-client/src/config/incluster_config.rs`, as client-go).
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The runner's API credentials: the shape of the volume the API server
/// injects for automounted tokens (kube-api-access, KEP-1205: a bound
/// token, the cluster CA from `kube-root-ca.crt`, the namespace from the
/// downward API), but with the token's lifetime set from the policy — the
/// Job's deadline, at least the API server's 10-minute minimum; the kubelet
/// renews it at 80% of that.
fn api_token_volume(policy: &ScanPolicy) -> Volume {
    Volume {
        name: "api-token".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(active_deadline(policy).max(600)),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    }
}

/// Seconds a stopping runner needs beyond the grace period its scans get:
/// delete the run's access objects, write the audit trail, seal and sign.
pub(crate) const CLEANUP_SECONDS: i64 = 60;

/// The policy's grace period for scans in flight after SIGTERM, seconds.
fn grace_seconds(policy: &ScanPolicy) -> i64 {
    policy.spec.limits.grace_period().as_secs() as i64
}

/// Seconds the kubelet waits after SIGTERM before SIGKILL: the policy's
/// grace period plus cleanup and sealing, so a stopped run still cleans up
/// and leaves a sealed bundle (the default 30 s would cut it short).
fn termination_grace(policy: &ScanPolicy) -> i64 {
    grace_seconds(policy) + CLEANUP_SECONDS
}

/// Seconds the Job may run: the run deadline, then the grace period and
/// cleanup the runner takes after it (when the Job controller's SIGTERM
/// comes, the runner is already past `runDeadline`).
fn active_deadline(policy: &ScanPolicy) -> i64 {
    policy.spec.limits.run_deadline().as_secs() as i64 + termination_grace(policy)
}

/// A CronJob running the policy on its schedule. `None` when the policy
/// has no schedule.
pub(crate) fn cronjob(policy: &ScanPolicy, ic: &InCluster) -> Option<CronJob> {
    let schedule = policy.spec.schedule.as_ref()?;
    let timezone = match schedule {
        crate::policy::model::Schedule::Detailed(d) => d.timezone.clone(),
        crate::policy::model::Schedule::Cron(_) => None,
    };
    let name = &policy.metadata.name;
    Some(CronJob {
        metadata: meta(&format!("vigil-{name}"), &ic.namespace, name),
        spec: Some(CronJobSpec {
            schedule: schedule.cron().to_string(),
            time_zone: timezone,
            // Never two runs of one policy at once.
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    // A failed run is reported, not retried at once.
                    backoff_limit: Some(0),
                    active_deadline_seconds: Some(active_deadline(policy)),
                    ttl_seconds_after_finished: Some(86_400),
                    template: pod_template(policy, ic, &[]),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    })
}

/// The label the Job controller puts on every pod of a Job (1.27+).
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// An Indexed Job running the policy in `shards` pods, each scanning
/// `--shard $(JOB_COMPLETION_INDEX)/shards`.
///
/// Every shard writes to the one results claim, and most claims
/// (ReadWriteOnce, the default of cloud disks) attach to one node at a
/// time: a shard scheduled elsewhere never starts ("Multi-Attach error").
/// So the shards are kept on one node by a required pod affinity to each
/// other on `kubernetes.io/hostname` (the first shard satisfies its own
/// term); with `spread` (a ReadWriteMany claim) they may go anywhere.
pub(crate) fn sharded_job(policy: &ScanPolicy, ic: &InCluster, shards: u32, spread: bool) -> Job {
    use k8s_openapi::api::core::v1::{Affinity, PodAffinity, PodAffinityTerm};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let name = &policy.metadata.name;
    let job_name = format!("vigil-{name}-sharded");
    let mut template = pod_template(
        policy,
        ic,
        &[
            "--shard".to_string(),
            format!("$(JOB_COMPLETION_INDEX)/{shards}"),
        ],
    );
    if !spread && let Some(spec) = template.spec.as_mut() {
        spec.affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some([(JOB_NAME_LABEL.to_string(), job_name.clone())].into()),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                }]),
                ..PodAffinity::default()
            }),
            ..Affinity::default()
        });
    }
    Job {
        metadata: meta(&job_name, &ic.namespace, name),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(shards as i32),
            parallelism: Some(shards as i32),
            backoff_limit: Some(0),
            active_deadline_seconds: Some(active_deadline(policy)),
            ttl_seconds_after_finished: Some(86_400),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The runner's ServiceAccount, and per target namespace its Role and
/// RoleBinding (see the module docs for why each rule is there). `slots`
/// are the run slots the rendered Job or CronJob uses (`None`: the single
/// slot of a CronJob; `Some(i)`: shard i): every right Kubernetes can pin
/// by name — `delete`, and token requests — is pinned to the access
/// objects of exactly those slots. `create` cannot be pinned (the name of
/// an object to create is not known to the authorizer before it exists).
pub(crate) fn runner_rbac(
    policy: &ScanPolicy,
    ic: &InCluster,
    slots: &[Option<u32>],
) -> (ServiceAccount, Vec<(Role, RoleBinding)>) {
    let name = &policy.metadata.name;
    let runner = runner_name(name);
    let sa = ServiceAccount {
        metadata: meta(&runner, &ic.namespace, name),
        // Its token reaches the runner only through the projected volume.
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let namespaces: BTreeSet<&str> = policy
        .spec
        .targets
        .iter()
        .filter_map(|t| t.namespace.as_deref())
        .collect();
    let rule = |resources: &[&str], verbs: &[&str], names: Option<Vec<String>>| PolicyRule {
        api_groups: Some(vec![if resources.iter().any(|r| r.starts_with("role")) {
            "rbac.authorization.k8s.io".to_string()
        } else {
            String::new()
        }]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        resource_names: names,
        ..PolicyRule::default()
    };
    // The access objects of every slot, as the runner names them.
    let keys: Vec<String> = slots.iter().map(|s| super::slot_name(*s)).collect();
    let accounts: Vec<String> = keys
        .iter()
        .map(|k| super::rbac::service_account_name(policy, k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let anchors: Vec<String> = keys
        .iter()
        .map(|k| {
            let sa = super::rbac::service_account_name(policy, k);
            super::rbac::anchor_name(policy, &sa, k)
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rules = vec![
        rule(&["pods"], &["list"], None),
        rule(&["secrets"], &["create"], None),
        rule(&["secrets"], &["delete"], Some(anchors)),
        rule(
            &["serviceaccounts/token"],
            &["create"],
            Some(accounts.clone()),
        ),
    ];
    if policy.spec.access.mode == AccessMode::PerRun {
        rules.push(rule(&["serviceaccounts"], &["create"], None));
        rules.push(rule(
            &["serviceaccounts"],
            &["delete"],
            Some(accounts.clone()),
        ));
        rules.push(rule(&["roles", "rolebindings"], &["create"], None));
        rules.push(rule(
            &["roles", "rolebindings"],
            &["delete"],
            Some(accounts),
        ));
        // Only rights it holds may be granted (RBAC escalation
        // prevention): the scan verbs, on every pod of the namespace,
        // since the pods are not known when this is rendered.
        let mut scan: BTreeSet<(&str, &str)> = BTreeSet::new();
        let approaches: BTreeSet<Approach> =
            policy.spec.targets.iter().map(|t| t.approach).collect();
        for a in approaches {
            let a = if a == Approach::Auto && policy.spec.debug.is_none() {
                Approach::Api
            } else {
                a
            };
            scan.extend(super::rbac::rules_for(a).iter().copied());
        }
        for (res, verb) in scan {
            rules.push(rule(&[res], &[verb], None));
        }
    }
    let roles = namespaces
        .into_iter()
        .map(|ns| {
            let role = Role {
                metadata: meta(&runner, ns, name),
                rules: Some(rules.clone()),
            };
            let binding = RoleBinding {
                metadata: meta(&runner, ns, name),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: runner.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: runner.clone(),
                    namespace: Some(ic.namespace.clone()),
                    ..Subject::default()
                }]),
            };
            (role, binding)
        })
        .collect();
    (sa, roles)
}
