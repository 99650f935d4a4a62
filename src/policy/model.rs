//! The typed policy model: `Profile` and `ScanPolicy` documents.
//!
//! These types are deserialized only after a document passed its JSON Schema
//! (`schemas/*.schema.json`, the contract), so a mismatch between schema and
//! model is a bug in vigil, not in the user's file. Field names follow the
//! schema: camelCase in `spec`, snake_case inside a control's `expect` (as in
//! InSpec matchers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration::PolicyDuration;
use super::selector::LabelSelector;

/// The only API version this build understands.
pub const API_VERSION: &str = "vigil/v1";

/// `metadata` of any document.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique name within its kind.
    pub name: String,
    /// Free-form version (profiles use semver by convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What the document is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A `Profile`: a named set of controls.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Profile {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `Profile`.
    pub kind: String,
    /// Name and version.
    pub metadata: Metadata,
    /// The controls, evaluated in order.
    pub controls: Vec<Control>,
}

/// One control: what is checked and how much it matters.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unique within the profile, e.g. `CB-01`.
    pub id: String,
    /// One line.
    pub title: String,
    /// Longer description (HDF `desc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// HDF impact, 0.0–1.0: ≥0.9 critical, ≥0.7 high, ≥0.4 medium, ≥0.1 low.
    #[serde(default = "default_impact")]
    pub impact: f64,
    /// Free-form tags carried into HDF (`nist`, `cis`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Value>,
    /// The check.
    pub check: Check,
}

fn default_impact() -> f64 {
    0.5
}

/// A check: exactly one subject key (`file`, `package`, …) with its `expect`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Check {
    /// A file's existence, type, mode, owner, content, digest.
    File(FileCheck),
    /// A bounded walk under a directory.
    Directory(DirectoryCheck),
    /// A package in the dpkg or apk database.
    Package(PackageCheck),
    /// Users from passwd/shadow.
    Users(UsersCheck),
    /// Groups from group.
    Groups(GroupsCheck),
    /// os-release.
    Os(OsCheck),
    /// A key/value configuration file.
    Config(ConfigCheck),
    /// Running processes (where the approach can see them).
    Process(ProcessCheck),
    /// A command's result (where the approach can run commands).
    Command(CommandCheck),
    /// How an image is built: its configuration (image targets only).
    Image(ImageCheck),
    /// One Pod Security Standards check on the pod's configuration
    /// (workload targets: live pods and manifests).
    PodSecurity(PodSecurityCheck),
    /// Settings of the pod's configuration (workload targets).
    Workload(WorkloadCheck),
    /// Every sub-check passes.
    All(AllCheck),
    /// At least one sub-check passes.
    Any(AnyCheck),
    /// No sub-check passes.
    None(NoneCheck),
}

impl Check {
    /// A check of the pod's configuration (`pod_security`, `workload`, or
    /// a combination of only those): judged on `spec` evidence.
    pub fn is_workload(&self) -> bool {
        match self {
            Check::PodSecurity(_) | Check::Workload(_) => true,
            Check::All(a) => !a.all.is_empty() && a.all.iter().all(Check::is_workload),
            Check::Any(a) => !a.any.is_empty() && a.any.iter().all(Check::is_workload),
            Check::None(a) => !a.none.is_empty() && a.none.iter().all(Check::is_workload),
            _ => false,
        }
    }

    /// Asks what the pod's namespace says (its Pod Security labels, its
    /// NetworkPolicies): read for live pods only then.
    pub fn asks_namespace(&self) -> bool {
        match self {
            Check::Workload(w) => {
                w.expect.namespace_enforces.is_some() || w.expect.network_policy.is_some()
            }
            Check::All(a) => a.all.iter().any(Check::asks_namespace),
            Check::Any(a) => a.any.iter().any(Check::asks_namespace),
            Check::None(a) => a.none.iter().any(Check::asks_namespace),
            _ => false,
        }
    }

    /// Names a workload subject anywhere in it.
    pub fn has_workload(&self) -> bool {
        match self {
            Check::PodSecurity(_) | Check::Workload(_) => true,
            Check::All(a) => a.all.iter().any(Check::has_workload),
            Check::Any(a) => a.any.iter().any(Check::has_workload),
            Check::None(a) => a.none.iter().any(Check::has_workload),
            _ => false,
        }
    }
}

/// A file owner or group: a name, or a numeric id.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Principal {
    /// Numeric uid/gid.
    Id(u32),
    /// Name resolved through the target's passwd/group.
    Name(String),
}

/// File types as `stat` reports them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum FileType {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    Char,
    Block,
}

/// `file:` check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FileCheck {
    pub file: String,
    #[serde(default)]
    pub expect: FileExpect,
}

/// What a file must look like. Unset fields are not checked.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FileExpect {
    pub exists: Option<bool>,
    #[serde(rename = "type")]
    pub file_type: Option<FileType>,
    /// Exact permission bits, octal string.
    pub mode: Option<String>,
    /// No permission bits beyond this mask, octal string.
    pub mode_max: Option<String>,
    pub owner: Option<Principal>,
    pub group: Option<Principal>,
    pub content_matches: Option<String>,
    pub content_not_matches: Option<String>,
    pub sha256: Option<String>,
}

/// `directory:` check: a bounded walk.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DirectoryCheck {
    pub directory: String,
    /// Maximum depth below the directory (default 16).
    pub depth: Option<u32>,
    /// Maximum entries visited (default 100000).
    pub limit: Option<u32>,
    #[serde(default)]
    pub expect: DirectoryExpect,
}

/// What must hold for every entry under a directory.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DirectoryExpect {
    #[serde(default)]
    pub no_world_writable: bool,
    #[serde(default)]
    pub no_setuid: bool,
    #[serde(default)]
    pub no_setgid: bool,
    /// setuid/setgid binaries that are expected (absolute paths).
    #[serde(default)]
    pub allowed_setuid: Vec<String>,
    pub owner: Option<Principal>,
    pub mode_max: Option<String>,
}

/// Which package database to read.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum PackageManager {
    #[default]
    Auto,
    Dpkg,
    Apk,
}

/// `package:` check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PackageCheck {
    pub package: String,
    #[serde(default)]
    pub manager: PackageManager,
    #[serde(default)]
    pub expect: PackageExpect,
}

/// Package expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PackageExpect {
    pub installed: Option<bool>,
    /// A constraint such as `>= 1.2.3-1`, compared with the manager's rules.
    pub version: Option<String>,
}

/// `users:` check; the subject is `all` or one user name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UsersCheck {
    pub users: String,
    #[serde(default)]
    pub expect: UsersExpect,
}

/// User expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UsersExpect {
    pub exists: Option<bool>,
    pub uid: Option<u32>,
    pub shell: Option<String>,
    #[serde(default)]
    pub uid0_only_root: bool,
    #[serde(default)]
    pub no_empty_passwords: bool,
    #[serde(default)]
    pub unique_uids: bool,
    #[serde(default)]
    pub unique_names: bool,
    /// Login shells allowed for users with uid >= 1000 (and root).
    #[serde(default)]
    pub shells_allowed: Vec<String>,
}

/// `groups:` check; the subject is `all` or one group name.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GroupsCheck {
    pub groups: String,
    #[serde(default)]
    pub expect: GroupsExpect,
}

/// Group expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GroupsExpect {
    pub exists: Option<bool>,
    pub gid: Option<u32>,
    #[serde(default)]
    pub unique_gids: bool,
    #[serde(default)]
    pub unique_names: bool,
    /// Members must be a subset of this list.
    pub members_allowed: Option<Vec<String>>,
}

/// The `os:` subject; only `release` (`/etc/os-release`) exists today.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum OsSubject {
    Release,
}

/// What of an image an `image:` check reads.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ImageSubject {
    Config,
}

/// `image: config` check: the image's configuration (CIS Docker Benchmark
/// section 4 style). Only image targets have it; elsewhere it is an error.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ImageCheck {
    pub image: ImageSubject,
    #[serde(default)]
    pub expect: ImageExpect,
}

/// Image configuration expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageExpect {
    /// `User` is set and is not root (name `root` or uid 0).
    pub non_root_user: Option<bool>,
    /// No environment variable looks like it carries a secret.
    pub no_secret_env: Option<bool>,
    /// A `HEALTHCHECK` is set (not `NONE`).
    pub healthcheck: Option<bool>,
    /// Ports that must not be exposed (`22`, `22/tcp`).
    #[serde(default)]
    pub ports_not: Vec<String>,
    /// Labels that must be present.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Built at most this many days ago.
    pub max_age_days: Option<u32>,
}

/// `pod_security:` check: one check of the Kubernetes Pod Security
/// Standards, by its upstream id, judged as the admission controller
/// judges it at `level` and `version`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PodSecurityCheck {
    /// The upstream check id (`runAsNonRoot`, `capabilities_baseline`, …).
    pub pod_security: String,
    /// The level the profile enforces: at `restricted`, a baseline check
    /// that a restricted one replaces is not evaluated (`skipped`).
    #[serde(default = "default_pss_level")]
    pub level: PssLevel,
    /// `latest` (the default) or `v1.N`, as the namespace label
    /// `pod-security.kubernetes.io/enforce-version` writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn default_pss_level() -> PssLevel {
    PssLevel::Baseline
}

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PssLevel {
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practice.
    Restricted,
}

impl PssLevel {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PssLevel::Baseline => "baseline",
            PssLevel::Restricted => "restricted",
        }
    }
}

/// Which list of a pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// `spec.initContainers` (native sidecars included).
    Init,
    /// `spec.containers`.
    App,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

impl ContainerKind {
    /// The spec field that lists them.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Init => "initContainers",
            ContainerKind::App => "containers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// `workload: pod` check: settings of the pod's configuration, each
/// container's effective value (its own, else the pod's where Kubernetes
/// inherits it).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct WorkloadCheck {
    pub workload: WorkloadSubject,
    /// The containers judged by container settings (default: every kind,
    /// init, app and ephemeral, as the Pod Security Standards do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerKind>>,
    pub expect: WorkloadExpect,
}

/// What a workload check looks at.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadSubject {
    /// The pod (or pod template) configuration.
    Pod,
}

/// Workload expectations; each set key is one result per container (or
/// per pod, for pod settings).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadExpect {
    /// `readOnlyRootFilesystem` is this.
    pub read_only_root_filesystem: Option<bool>,
    /// Effective `runAsNonRoot` is this.
    pub run_as_non_root: Option<bool>,
    /// Effective `runAsUser` is set and not 0 (true), or is 0 (false).
    pub non_root_user: Option<bool>,
    /// Effective `runAsGroup` is set and not 0, and neither `fsGroup` nor
    /// a supplemental group is 0.
    pub non_root_groups: Option<bool>,
    /// `allowPrivilegeEscalation` is this (false: set to false and not
    /// privileged).
    pub allow_privilege_escalation: Option<bool>,
    /// `privileged` is this.
    pub privileged: Option<bool>,
    /// `capabilities.drop` includes `ALL`.
    pub drop_all_capabilities: Option<bool>,
    /// `capabilities.add` only from this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities_allowed: Option<Vec<String>>,
    /// Effective seccomp profile type is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Vec<String>>,
    /// Resource limits that must be set (`cpu`, `memory`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// Resource requests that must be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
    /// The image is pinned by digest (`@sha256:`).
    pub image_digest: Option<bool>,
    /// `imagePullPolicy` is one of these (unset counts as Kubernetes'
    /// default: `Always` for `:latest` or no tag, else `IfNotPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<Vec<String>>,
    /// Probes that must be set (`liveness`, `readiness`, `startup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
    /// No environment variable whose name looks like a secret has a
    /// literal value (names are reported, never values).
    pub no_secret_env: Option<bool>,
    /// Pod: a service account token is mounted (false: it is not).
    pub service_account_token: Option<bool>,
    /// Pod: runs as the namespace's `default` service account.
    pub default_service_account: Option<bool>,
    /// Pod: its namespace enforces at least this Pod Security level
    /// (label `pod-security.kubernetes.io/enforce`).
    pub namespace_enforces: Option<PssLevel>,
    /// Pod: a NetworkPolicy of its namespace selects it (true).
    pub network_policy: Option<bool>,
}

/// `os:` check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OsCheck {
    pub os: OsSubject,
    #[serde(default)]
    pub expect: OsExpect,
}

/// os-release expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct OsExpect {
    /// `ID` is one of these.
    #[serde(default)]
    pub id: Vec<String>,
    /// `ID` or one of `ID_LIKE` is one of these.
    #[serde(default)]
    pub family: Vec<String>,
    /// A constraint on `VERSION_ID`, e.g. `>= 12`.
    pub version: Option<String>,
}

/// Key/value file dialects.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum ConfigFormat {
    /// `KEY VALUE` with `#` comments (login.defs, sshd_config).
    #[default]
    Space,
    /// `KEY=VALUE` with `#` comments (os-release style, sysctl.conf).
    Equals,
}

/// `config:` check.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ConfigCheck {
    pub config: String,
    #[serde(default)]
    pub format: ConfigFormat,
    /// Case-insensitive key names (sshd keywords are).
    #[serde(default)]
    pub ignore_case: bool,
    pub expect: BTreeMap<String, ConfigExpect>,
}

/// What one configuration key must be.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ConfigExpect {
    pub equals: Option<String>,
    pub matches: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The key must be absent (true) or present (false).
    pub absent: Option<bool>,
    /// Value when the key is absent (the program's compiled-in default).
    pub default: Option<String>,
}

/// `process:` check; the subject is a regex over the command line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ProcessCheck {
    pub process: String,
    #[serde(default)]
    pub expect: ProcessExpect,
}

/// Process expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ProcessExpect {
    pub running: Option<bool>,
    pub user: Option<Principal>,
    pub not_user: Option<Principal>,
}

/// `command:` check (only approaches that can run commands).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CommandCheck {
    pub command: String,
    #[serde(default)]
    pub expect: CommandExpect,
}

/// Command expectations.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CommandExpect {
    pub exit_status: Option<i32>,
    pub stdout_matches: Option<String>,
    pub stdout_not_matches: Option<String>,
}

/// `all:` combinator.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AllCheck {
    pub all: Vec<Check>,
}

/// `any:` combinator.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AnyCheck {
    pub any: Vec<Check>,
}

/// `none:` combinator.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct NoneCheck {
    pub none: Vec<Check>,
}

/// A `ScanPolicy`: which targets get which profiles, how, and with which limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScanPolicy {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always `ScanPolicy`.
    pub kind: String,
    /// Name (used in bundle paths and RBAC object names).
    pub metadata: Metadata,
    /// Everything else.
    pub spec: PolicySpec,
}

/// The body of a `ScanPolicy`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PolicySpec {
    /// Profiles applied to every target (unless a target names its own).
    pub profiles: Vec<String>,
    pub targets: Vec<Target>,
    /// Site-specific secret patterns redacted from logs, errors and results.
    #[serde(default)]
    pub redact: Vec<String>,
    /// An existing CINC Auditor / InSpec profile to run instead of vigil's
    /// own controls.
    pub scanner: Option<ExternalScanner>,
    #[serde(default)]
    pub access: Access,
    pub debug: Option<ScannerSpec>,
    pub sidecar: Option<SidecarSpec>,
    #[serde(default)]
    pub limits: Limits,
    pub schedule: Option<Schedule>,
    /// SAF CLI threshold, nested or flattened keys; checked by `threshold`.
    pub threshold: Option<Value>,
    #[serde(default)]
    pub waivers: Vec<Waiver>,
    /// The Pod Security Standards version `pod_security` checks are judged
    /// at unless a check pins its own: `latest` (the default) or `v1.N`,
    /// as a namespace's `pod-security.kubernetes.io/enforce-version` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_version: Option<String>,
    #[serde(default)]
    pub output: Output,
    /// Honour the pod annotation `vigil.dev/approach` under `auto`. Off by
    /// default: it lets a workload's owner choose how the workload is
    /// scanned — `api`, where its own `sh` reports on itself.
    #[serde(default)]
    pub allow_pod_override: bool,
    /// The least trustworthy evidence this policy accepts (`api`, the
    /// default, accepts any; `probe` refuses the api approach).
    #[serde(default)]
    pub evidence: MinEvidence,
    /// Reconcile the API server's audit log after each scheduled run.
    pub monitoring: Option<Monitoring>,
}

/// `spec.monitoring`: `vigil schedule` runs `audit-check` after each run.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Monitoring {
    /// The API server's audit log files (plain or gzip).
    pub audit_log: Vec<std::path::PathBuf>,
    /// An age identity for encrypted bundles' trails.
    pub identity: Option<std::path::PathBuf>,
    /// Findings at or above this make the check fail.
    #[serde(default)]
    pub fail_on: FailOn,
}

/// A finding severity threshold.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum FailOn {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// How far a result's facts can be trusted, from how they were obtained.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// Read by vigil from a filesystem on this machine.
    Local,
    /// Read by vigil's own probe binary inside the pod (debug, sidecar).
    Probe,
    /// Reported by the target's own userland (its `sh`, `stat`, `find`),
    /// which can lie about itself.
    Api,
    /// Another tool's word (an external scanner run by vigil).
    External,
    /// Another tool's word, produced elsewhere and imported.
    Imported,
    /// A pod's configuration: the object the API server admitted (or a
    /// manifest's declaration). It says what was asked for, never what
    /// the process did since.
    Spec,
}

impl Evidence {
    /// Every level.
    pub(crate) const ALL: [Evidence; 6] = [
        Evidence::Local,
        Evidence::Probe,
        Evidence::Api,
        Evidence::External,
        Evidence::Imported,
        Evidence::Spec,
    ];

    /// The level a lower-case name means.
    pub(crate) fn from_name(name: &str) -> Option<Evidence> {
        Evidence::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Local => "local",
            Evidence::Probe => "probe",
            Evidence::Api => "api",
            Evidence::External => "external",
            Evidence::Imported => "imported",
            Evidence::Spec => "spec",
        }
    }
}

/// `spec.evidence`: the floor a policy sets.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MinEvidence {
    /// Any evidence vigil can gather.
    #[default]
    Api,
    /// Only facts read by vigil itself (probe or local): `auto` uses the
    /// debug approach (or a sidecar) even for images with a shell, and
    /// `api` targets are refused.
    Probe,
}

/// How a target is reached.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Approach {
    /// vigil chooses per container (see `plan`).
    #[default]
    Auto,
    /// One `pods/exec` into the target container.
    Api,
    /// An ephemeral debug container reading `/proc/1/root`.
    Debug,
    /// A scanner sidecar sharing the pod's process namespace.
    Sidecar,
    /// A root filesystem on this machine.
    Local,
    /// An image's layers, read without extraction (never in a policy: image
    /// targets get it).
    Image,
    /// Results produced elsewhere and sealed by `vigil import` (never in a
    /// policy: the schema does not allow it).
    Imported,
    /// A workload manifest's pod template, read on this machine (never in
    /// a policy: manifest targets get it).
    Manifest,
}

impl std::fmt::Display for Approach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Approach {
    /// The approach a lower-case name means (a pod's approach annotation).
    pub(crate) fn from_name(name: &str) -> Option<Approach> {
        [
            Approach::Auto,
            Approach::Api,
            Approach::Debug,
            Approach::Sidecar,
            Approach::Local,
            Approach::Image,
            Approach::Imported,
            Approach::Manifest,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    /// The evidence level of facts gathered this way (an unresolved `auto`
    /// counts as its weakest outcome, `api`).
    pub fn evidence(self) -> Evidence {
        match self {
            Approach::Local | Approach::Image => Evidence::Local,
            Approach::Debug | Approach::Sidecar => Evidence::Probe,
            Approach::Api | Approach::Auto => Evidence::Api,
            Approach::Imported => Evidence::Imported,
            Approach::Manifest => Evidence::Spec,
        }
    }

    /// Scanned on this machine (a root filesystem or an image): no cluster.
    pub fn is_local(self) -> bool {
        matches!(self, Approach::Local | Approach::Image | Approach::Manifest)
    }

    /// Lower-case name as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Approach::Auto => "auto",
            Approach::Api => "api",
            Approach::Debug => "debug",
            Approach::Sidecar => "sidecar",
            Approach::Local => "local",
            Approach::Image => "image",
            Approach::Imported => "imported",
            Approach::Manifest => "manifest",
        }
    }
}

/// One entry of `spec.targets`: either Kubernetes containers or a local root
/// filesystem.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Target {
    pub namespace: Option<String>,
    /// kubeconfig context; the current context when unset.
    pub cluster: Option<String>,
    pub selector: Option<LabelSelector>,
    /// Pod names (exact); all matching pods when empty.
    #[serde(default)]
    pub pods: Vec<String>,
    /// Container names (exact); all app containers when empty.
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub include_init_containers: bool,
    #[serde(default)]
    pub include_ephemeral_containers: bool,
    /// Also scan pods whose phase is not Running.
    #[serde(default)]
    pub include_not_running: bool,
    /// A container root filesystem (relative to the policy file): a
    /// directory, or a tar archive of one (`docker export`).
    pub rootfs: Option<String>,
    /// Workload manifests (relative to the policy file): a YAML or JSON
    /// file, or a directory of them; each Pod, Deployment, StatefulSet,
    /// DaemonSet, ReplicaSet, ReplicationController, Job, CronJob and
    /// PodTemplate (also inside a `List`) becomes a target
    /// `<kind>/<namespace>/<name>` judged by its pod template.
    pub manifest: Option<String>,
    /// An image scanned before it runs (`oci-dir:…`, `oci-archive:…`,
    /// `docker-archive:…`, `registry:…@sha256:…`; paths relative to the
    /// policy file).
    pub image: Option<String>,
    /// Name for a rootfs or image target (default: the directory's, file's
    /// or repository's name).
    pub name: Option<String>,
    #[serde(default)]
    pub approach: Approach,
    /// Profiles for this target instead of `spec.profiles`.
    #[serde(default)]
    pub profiles: Vec<String>,
}

impl Target {
    /// Returns true if and only if this target is a local root filesystem
    /// or an image: scanned on this machine, no cluster involved.
    pub fn is_rootfs(&self) -> bool {
        self.rootfs.is_some() || self.image.is_some() || self.manifest.is_some()
    }

    /// A `rootfs:` target's id, `rootfs/<name>`: its `name:`, else the
    /// root's last path component (`base` is the policy file's directory),
    /// without an archive's extension, so a root and its `docker export`
    /// archive get the same id.
    pub fn rootfs_id(&self, base: &std::path::Path) -> Option<String> {
        let dir = self.rootfs.as_ref()?;
        let name = self.name.clone().unwrap_or_else(|| {
            base.join(dir).file_name().map_or_else(
                || "root".into(),
                |n| archive_stem(&n.to_string_lossy()).to_string(),
            )
        });
        Some(format!("rootfs/{name}"))
    }
}

/// A root's name without an archive's extension (`app.tar.gz` → `app`).
fn archive_stem(file: &str) -> &str {
    [".tar.gz", ".tgz", ".tar.zst", ".tar"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext).filter(|s| !s.is_empty()))
        .unwrap_or(file)
}

/// Where the scan identity comes from.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    /// vigil creates a ServiceAccount, Role and RoleBinding per run and deletes them.
    #[default]
    PerRun,
    /// The platform team applied `vigil render rbac` once; runs only request tokens.
    Provisioned,
}

/// What a provisioned identity's Role grants the scan verbs on.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AccessScope {
    /// The pods that existed when `vigil render rbac` ran (`resourceNames`):
    /// least privilege, but a rollout, eviction or scale-up renames pods
    /// and runs are refused until the Role is rendered and applied again.
    #[default]
    Pods,
    /// Every pod of each target namespace: survives rollouts, but the
    /// identity may exec into any pod there.
    Namespace,
}

/// `spec.access`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Access {
    #[serde(default)]
    pub mode: AccessMode,
    /// Token lifetime, 10m–60m.
    #[serde(rename = "tokenTTL", default = "default_ttl")]
    pub token_ttl: PolicyDuration,
    /// Token audiences (default: the API server's).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// ServiceAccount name for `provisioned` (default `vigil-<policy>`).
    pub service_account: Option<String>,
    /// For `provisioned`: pin the rendered Role to pods or grant the
    /// namespace (per-run Roles are always pinned).
    #[serde(default)]
    pub scope: AccessScope,
    /// Extra labels on every object vigil creates.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on every object vigil creates.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A run renews a token when this share of its lifetime has passed, and
/// starts a scan only on a token before that point (`access`); `validate`
/// warns when a scan may outlive the rest.
pub const TOKEN_RENEW_AT: f64 = 0.8;

fn default_ttl() -> PolicyDuration {
    PolicyDuration::new("15m").expect("a duration")
}

impl Default for Access {
    fn default() -> Self {
        Access {
            mode: AccessMode::PerRun,
            token_ttl: default_ttl(),
            audiences: Vec::new(),
            service_account: None,
            scope: AccessScope::Pods,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// CPU/memory for a container vigil adds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Resources {
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
}

/// `spec.debug`: the probe image for ephemeral containers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ScannerSpec {
    /// Pinned by digest (`…@sha256:<64 hex>`).
    pub image: String,
    /// Verify the image's cosign signature before the first scan.
    pub verify: Option<ImageVerify>,
    #[serde(default)]
    pub resources: Resources,
}

/// `spec.debug.verify` / `spec.sidecar.verify`: who must have signed the
/// scanner image.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageVerify {
    /// The signer's public key: a PEM file relative to the policy file, or
    /// the PEM text itself.
    pub key: String,
    /// A saved signature (`cosign download signature`), relative to the
    /// policy file: verify offline.
    pub signature: Option<String>,
}

/// `spec.scanner`: an external InSpec-compatible scanner.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExternalScanner {
    /// `cinc-auditor` or `inspec`.
    pub kind: ScannerKind,
    /// Profile directory or archive (relative to the policy file).
    pub profile: String,
    /// Profile inputs.
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    /// InSpec waiver file (relative to the policy file).
    pub waivers: Option<String>,
    /// The executable (default: the kind's name on PATH).
    pub binary: Option<String>,
}

/// Which external scanner.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScannerKind {
    /// CINC Auditor (the free distribution of InSpec).
    CincAuditor,
    /// Chef InSpec.
    Inspec,
}

impl ScannerKind {
    /// The executable's usual name.
    pub fn binary(self) -> &'static str {
        match self {
            ScannerKind::CincAuditor => "cinc-auditor",
            ScannerKind::Inspec => "inspec",
        }
    }
}

/// `spec.sidecar`: how vigil finds the scanner sidecar in a pod.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SidecarSpec {
    /// Name of the sidecar container (default `vigil-scanner`).
    #[serde(default = "default_sidecar")]
    pub container: String,
    /// The image the sidecar must run, pinned by digest (checked when set).
    pub image: Option<String>,
    /// Verify the sidecar image's cosign signature before the first scan.
    pub verify: Option<ImageVerify>,
    /// Requests and limits `vigil render sidecar` gives the sidecar.
    #[serde(default)]
    pub resources: Resources,
}

fn default_sidecar() -> String {
    "vigil-scanner".to_string()
}

/// `spec.limits`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Limits {
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    pub per_namespace: Option<u32>,
    pub per_node: Option<u32>,
    #[serde(default = "default_qps")]
    pub api_qps: f64,
    /// How long one API call (one attempt, one page of a list) may wait
    /// for its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_timeout: Option<PolicyDuration>,
    #[serde(default = "default_scan_timeout")]
    pub scan_timeout: PolicyDuration,
    #[serde(default = "default_deadline")]
    pub run_deadline: PolicyDuration,
    /// How long scans in flight may go on after SIGINT/SIGTERM.
    pub grace_period: Option<PolicyDuration>,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Cap on bytes read from one file in a target (e.g. `1Mi`).
    #[serde(default = "default_read_cap")]
    pub max_file_bytes: u64,
    /// How long one registry request may take besides its body's transfer
    /// (`--registry-timeout` replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_timeout: Option<PolicyDuration>,
    /// The slowest a registry may send a body, in KiB/s
    /// (`--registry-min-rate` replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_min_rate: Option<u64>,
}

fn default_concurrency() -> u32 {
    8
}
fn default_qps() -> f64 {
    20.0
}
fn default_scan_timeout() -> PolicyDuration {
    PolicyDuration::new("2m").expect("a duration")
}
fn default_deadline() -> PolicyDuration {
    PolicyDuration::new("30m").expect("a duration")
}
fn default_retries() -> u32 {
    2
}
fn default_read_cap() -> u64 {
    1024 * 1024
}

impl Limits {
    /// How long one scan may take (`scanTimeout`).
    pub fn scan_timeout(&self) -> std::time::Duration {
        self.scan_timeout.get()
    }

    /// How long the whole run may take (`runDeadline`).
    pub fn run_deadline(&self) -> std::time::Duration {
        self.run_deadline.get()
    }

    /// The registry request deadlines (`registryTimeout`,
    /// `registryMinRate`), each replaced by its flag when given.
    pub fn registry_deadlines(
        &self,
        flags: &crate::registry::DeadlineFlags,
    ) -> crate::registry::Deadlines {
        let default = crate::registry::Deadlines::default();
        flags.over(crate::registry::Deadlines {
            request: self
                .registry_timeout
                .as_ref()
                .map_or(default.request, PolicyDuration::get),
            min_rate: self
                .registry_min_rate
                .map_or(default.min_rate, |k| k.saturating_mul(1024)),
        })
    }

    /// How long one API call may wait for its answer (`apiTimeout`).
    pub fn api_timeout(&self) -> std::time::Duration {
        self.api_timeout
            .as_ref()
            .map_or(DEFAULT_API_TIMEOUT, PolicyDuration::get)
    }

    /// How long scans in flight may go on after a signal (`gracePeriod`).
    pub fn grace_period(&self) -> std::time::Duration {
        self.grace_period
            .as_ref()
            .map_or(DEFAULT_GRACE_PERIOD, PolicyDuration::get)
    }
}

impl Access {
    /// How long a run's token lives (`tokenTTL`).
    pub fn token_ttl(&self) -> std::time::Duration {
        self.token_ttl.get()
    }
}

/// `apiTimeout` when the policy sets none: twice the API server's own
/// default request timeout (kube-apiserver `--request-timeout`, 1m), after
/// which a real server has answered 504 itself.
pub(crate) const DEFAULT_API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// `gracePeriod` when the policy sets none.
const DEFAULT_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrency: default_concurrency(),
            per_namespace: None,
            per_node: None,
            api_qps: default_qps(),
            api_timeout: None,
            scan_timeout: default_scan_timeout(),
            run_deadline: default_deadline(),
            grace_period: None,
            retries: default_retries(),
            max_file_bytes: default_read_cap(),
            registry_timeout: None,
            registry_min_rate: None,
        }
    }
}

/// `spec.schedule`: a cron expression, or one with options.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Schedule {
    /// `"0 2 * * *"` or `"@daily"`.
    Cron(String),
    /// With a timezone and catch-up rules.
    Detailed(ScheduleSpec),
}

impl Schedule {
    /// The cron expression.
    pub fn cron(&self) -> &str {
        match self {
            Schedule::Cron(c) => c,
            Schedule::Detailed(d) => &d.cron,
        }
    }

    /// The random delay before each run (`jitter`, a schema-checked
    /// duration; none by default).
    pub fn jitter(&self) -> std::time::Duration {
        match self {
            Schedule::Cron(_) => std::time::Duration::ZERO,
            Schedule::Detailed(d) => d
                .jitter
                .as_ref()
                .map_or(Default::default(), PolicyDuration::get),
        }
    }
}

/// Detailed schedule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ScheduleSpec {
    pub cron: String,
    /// IANA timezone name (default UTC).
    pub timezone: Option<String>,
    /// `none` or `one`: runs missed while vigil was down.
    pub catch_up: Option<CatchUp>,
    /// Random delay added to each run, e.g. `5m`.
    pub jitter: Option<PolicyDuration>,
}

/// What a schedule does about fires missed while vigil was down.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Skip them: the next run is the next fire.
    #[default]
    None,
    /// Run once for the latest missed fire.
    One,
}

/// A waiver: a control accepted as not applying until `expires`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Waiver {
    pub control: String,
    /// RFC 3339 with an explicit offset or `Z`.
    pub expires: String,
    pub justification: String,
    pub approver: String,
    /// Target ids the waiver is limited to (all targets when empty).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// `spec.output`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Output {
    #[serde(default = "default_dir")]
    pub dir: String,
    /// age (`age1…`) or ssh (`ssh-ed25519 …`, `ssh-rsa …`) recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Path to the ed25519 signing key (PKCS#8 PEM).
    pub signing_key: Option<String>,
    #[serde(default)]
    pub armor: bool,
    /// Bundles to keep per policy (scheduled runs).
    pub keep: Option<u32>,
}

fn default_dir() -> String {
    "results".to_string()
}

impl Default for Output {
    fn default() -> Self {
        Output {
            dir: default_dir(),
            recipients: Vec::new(),
            signing_key: None,
            armor: false,
            keep: None,
        }
    }
}
