//! The Kubernetes Pod Security Standards, check by check, as the admission
//! library evaluates them (`staging/src/k8s.io/pod-security-admission/
//! policy/check_*.go`): each check has an upstream id, a level, and one
//! function per policy version at which it changed. A pod is allowed at a
//! level and version when every check that applies there allows it.
//!
//! How versions resolve (`policy/registry.go`): a check's function is its
//! newest one whose minimum version is at or below the policy version;
//! `latest`, and any version above the newest minimum of all checks,
//! means that newest minimum ([`NEWEST_MINOR`]). At the restricted level a
//! baseline check is dropped where a restricted check's function for that
//! version overrides it (`OverrideCheckIDs`).
//!
//! Pure functions over a [`Workload`]: every violation names the field
//! (a JSON pointer into the pod) that causes it.

use crate::facts::workload::{ContainerView, Workload, volume_source_names};

/// The newest policy minor any check changed at (`sysctls`, v1.37):
/// what `latest` resolves to.
pub(crate) const NEWEST_MINOR: u32 = 37;

pub(crate) use crate::policy::model::PssLevel as Level;

/// One field that makes a check forbid the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// JSON pointer of the field in the pod (`/spec/hostNetwork`); for a
    /// field that is missing, the object that should set it.
    pub pointer: String,
    /// What is wrong, in the admission library's terms.
    pub what: String,
}

type CheckFn = fn(&Workload) -> Vec<Violation>;

struct Versioned {
    min: u32,
    check: CheckFn,
    overrides: &'static [&'static str],
}

/// One upstream check.
pub(crate) struct Check {
    /// The upstream check id (`runAsNonRoot`).
    pub id: &'static str,
    /// Its level.
    pub level: Level,
    /// Upstream's `ForbiddenReason`.
    pub reason: &'static str,
    versions: &'static [Versioned],
}

impl Check {
    /// The oldest policy minor it exists at.
    pub(crate) fn since(&self) -> u32 {
        self.versions[0].min
    }

    fn at(&self, minor: u32) -> Option<&Versioned> {
        self.versions.iter().rev().find(|v| v.min <= minor)
    }
}

const fn v(min: u32, check: CheckFn) -> Versioned {
    Versioned {
        min,
        check,
        overrides: &[],
    }
}

const fn vo(min: u32, check: CheckFn, overrides: &'static [&'static str]) -> Versioned {
    Versioned {
        min,
        check,
        overrides,
    }
}

/// Every check of the standards, baseline first.
pub(crate) static CHECKS: &[Check] = &[
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        reason: "host namespaces",
        versions: &[v(0, host_namespaces)],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        reason: "privileged",
        versions: &[v(0, privileged)],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        reason: "non-default capabilities",
        versions: &[v(0, capabilities_baseline)],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        reason: "hostPath volumes",
        versions: &[v(0, host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        reason: "hostPort",
        versions: &[v(0, host_ports)],
    },
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        reason: "forbidden AppArmor profile",
        versions: &[v(0, app_armor)],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        reason: "seLinuxOptions",
        versions: &[v(0, selinux_1_0), v(31, selinux_1_31)],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        reason: "procMount",
        versions: &[v(0, proc_mount), v(35, proc_mount_1_35_baseline)],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        reason: "seccompProfile",
        versions: &[v(0, seccomp_annotations), v(19, seccomp_baseline)],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        reason: "forbidden sysctls",
        versions: &[
            v(0, sysctls_1_0),
            v(27, sysctls_1_27),
            v(29, sysctls_1_29),
            v(32, sysctls_1_32),
            v(37, sysctls_1_37),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        reason: "hostProcess",
        versions: &[v(0, windows_host_process)],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        reason: "probe or lifecycle host",
        versions: &[v(34, host_probes)],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        reason: "restricted volume types",
        versions: &[vo(0, restricted_volumes, &["hostPathVolumes"])],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        reason: "allowPrivilegeEscalation != false",
        versions: &[v(8, allow_privilege_escalation), v(25, linux_only::ape)],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        reason: "runAsNonRoot != true",
        versions: &[v(0, run_as_non_root), v(35, user_ns::run_as_non_root)],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        reason: "runAsUser=0",
        versions: &[v(23, run_as_user), v(35, user_ns::run_as_user)],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        reason: "seccompProfile",
        versions: &[
            vo(19, seccomp_restricted, &["seccompProfile_baseline"]),
            vo(25, linux_only::seccomp, &["seccompProfile_baseline"]),
        ],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        reason: "unrestricted capabilities",
        versions: &[
            vo(22, capabilities_restricted, &["capabilities_baseline"]),
            vo(25, linux_only::capabilities, &["capabilities_baseline"]),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        reason: "procMount",
        versions: &[vo(35, proc_mount, &["procMount"])],
    },
];

/// The check with this upstream id.
pub(crate) fn find(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// A policy version: `latest` or `v1.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PolicyVersion(Option<u32>);

impl PolicyVersion {
    /// `latest`.
    pub(crate) const LATEST: PolicyVersion = PolicyVersion(None);

    /// Parse `latest` or `v1.N` (as the namespace label
    /// `pod-security.kubernetes.io/enforce-version` writes it).
    pub(crate) fn parse(s: &str) -> Option<PolicyVersion> {
        if s == "latest" {
            return Some(PolicyVersion::LATEST);
        }
        let minor = s.strip_prefix("v1.")?;
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || minor.len() > 3 {
            return None;
        }
        minor.parse().ok().map(|m| PolicyVersion(Some(m)))
    }

    /// The minor the checks are chosen at: `latest` and anything newer
    /// than [`NEWEST_MINOR`] clamp to it (`registry.go`, `EvaluatePod`).
    pub(crate) fn minor(self) -> u32 {
        self.0.map_or(NEWEST_MINOR, |m| m.min(NEWEST_MINOR))
    }

    /// As written.
    pub(crate) fn label(self) -> String {
        match self.0 {
            None => "latest".into(),
            Some(m) => format!("v1.{m}"),
        }
    }
}

/// What one check says of a pod at a level and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The check does not exist yet at this version.
    NotYet {
        /// The first minor it exists at.
        since: u32,
    },
    /// A restricted check, judged at the baseline level: the baseline
    /// level does not include it.
    NotAtLevel,
    /// At the restricted level, a restricted check replaces it here.
    Overridden {
        /// The replacing check.
        by: &'static str,
    },
    /// The pod passes the check.
    Allowed,
    /// The pod fails it, for these fields.
    Forbidden(Vec<Violation>),
}

/// Evaluate one check on a workload at `level` and `version`.
pub(crate) fn evaluate(
    check: &Check,
    level: Level,
    version: PolicyVersion,
    w: &Workload,
) -> Outcome {
    let minor = version.minor();
    if level == Level::Baseline && check.level == Level::Restricted {
        return Outcome::NotAtLevel;
    }
    let Some(at) = check.at(minor) else {
        return Outcome::NotYet {
            since: check.since(),
        };
    };
    if level == Level::Restricted
        && check.level == Level::Baseline
        && let Some(by) = CHECKS.iter().find(|r| {
            r.level == Level::Restricted
                && r.at(minor)
                    .is_some_and(|rv| rv.overrides.contains(&check.id))
        })
    {
        return Outcome::Overridden { by: by.id };
    }
    let violations = (at.check)(w);
    if violations.is_empty() {
        Outcome::Allowed
    } else {
        Outcome::Forbidden(violations)
    }
}

/// Every check that applies at `level` and `version`, with its outcome:
/// the pod is admitted there when none is forbidden (what admission's
/// `EvaluatePod` decides).
pub(crate) fn evaluate_level(
    level: Level,
    version: PolicyVersion,
    w: &Workload,
) -> Vec<(&'static Check, Outcome)> {
    CHECKS
        .iter()
        .filter(|c| level == Level::Restricted || c.level == Level::Baseline)
        .map(|c| (c, evaluate(c, level, version, w)))
        .collect()
}

fn violation(pointer: String, what: impl Into<String>) -> Violation {
    Violation {
        pointer,
        what: what.into(),
    }
}

fn escape(key: &str) -> String {
    crate::policy::yaml::escape_segment(key)
}

// ---- baseline ----

fn host_namespaces(w: &Workload) -> Vec<Violation> {
    let s = &w.spec;
    [
        ("hostNetwork", s.host_network),
        ("hostPID", s.host_pid),
        ("hostIPC", s.host_ipc),
    ]
    .into_iter()
    .filter(|(_, set)| *set == Some(true))
    .map(|(f, _)| violation(format!("/spec/{f}"), format!("{f}=true")))
    .collect()
}

fn privileged(w: &Workload) -> Vec<Violation> {
    w.containers()
        .filter(|c| c.security_context.and_then(|s| s.privileged) == Some(true))
        .map(|c| {
            violation(
                c.sc_field("privileged"),
                format!(
                    "container \"{}\" must not set securityContext.privileged=true",
                    c.name
                ),
            )
        })
        .collect()
}

/// The baseline's allowed `capabilities.add` (`check_capabilities_baseline.go`):
/// Docker's historical default set, less `NET_RAW`.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in w.containers() {
        let add = c
            .security_context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref());
        for (j, cap) in add.into_iter().flatten().enumerate() {
            if !BASELINE_CAPS.contains(&cap.as_str()) {
                out.push(violation(
                    c.sc_field(&format!("capabilities/add/{j}")),
                    format!("container \"{}\" must not add capability \"{cap}\"", c.name),
                ));
            }
        }
    }
    out
}

fn host_path_volumes(w: &Workload) -> Vec<Violation> {
    w.spec
        .volumes
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, v)| v.host_path.is_some())
        .map(|(i, v)| {
            violation(
                format!("/spec/volumes/{i}/hostPath"),
                format!("volume \"{}\" uses hostPath", v.name),
            )
        })
        .collect()
}

fn host_ports(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in w.containers() {
        for (j, p) in c.ports.iter().enumerate() {
            if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
                out.push(violation(
                    format!("{}/ports/{j}/hostPort", c.pointer),
                    format!("container \"{}\" uses hostPort {hp}", c.name),
                ));
            }
        }
    }
    out
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    // The annotation: empty, runtime/default or localhost/*, for every key
    // with the prefix (whether or not it names a container).
    for (k, val) in &w.annotations {
        if k.starts_with(APPARMOR_ANNOTATION_PREFIX)
            && !(val.is_empty() || val == "runtime/default" || val.starts_with("localhost/"))
        {
            out.push(violation(
                format!("/metadata/annotations/{}", escape(k)),
                format!("{k}={val:?}"),
            ));
        }
    }
    // The field (v1.30 code, applied at every policy version): the type
    // must be RuntimeDefault or Localhost when set.
    let ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    if let Some(p) = w
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref())
        .filter(|p| !ok(&p.type_))
    {
        out.push(violation(
            "/spec/securityContext/appArmorProfile/type".into(),
            format!("pod must not set appArmorProfile.type to {:?}", p.type_),
        ));
    }
    for c in w.containers() {
        if let Some(p) = c
            .security_context
            .and_then(|s| s.app_armor_profile.as_ref())
            .filter(|p| !ok(&p.type_))
        {
            out.push(violation(
                c.sc_field("appArmorProfile/type"),
                format!(
                    "container \"{}\" must not set appArmorProfile.type to {:?}",
                    c.name, p.type_
                ),
            ));
        }
    }
    out
}

const SELINUX_TYPES_1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];
const SELINUX_TYPES_1_31: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn selinux(w: &Workload, types: &[&str]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut judge = |opts: &k8s_openapi::api::core::v1::SELinuxOptions, at: String, who: &str| {
        let t = opts.type_.as_deref().unwrap_or_default();
        if !types.contains(&t) {
            out.push(violation(
                format!("{at}/type"),
                format!("{who} must not set seLinuxOptions.type {t:?}"),
            ));
        }
        if opts.user.as_deref().is_some_and(|u| !u.is_empty()) {
            out.push(violation(
                format!("{at}/user"),
                format!("{who} must not set seLinuxOptions.user"),
            ));
        }
        if opts.role.as_deref().is_some_and(|r| !r.is_empty()) {
            out.push(violation(
                format!("{at}/role"),
                format!("{who} must not set seLinuxOptions.role"),
            ));
        }
    };
    if let Some(o) = w
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref())
    {
        judge(o, "/spec/securityContext/seLinuxOptions".into(), "pod");
    }
    for c in w.containers() {
        if let Some(o) = c.security_context.and_then(|s| s.se_linux_options.as_ref()) {
            judge(
                o,
                c.sc_field("seLinuxOptions"),
                &format!("container \"{}\"", c.name),
            );
        }
    }
    out
}

fn selinux_1_0(w: &Workload) -> Vec<Violation> {
    selinux(w, SELINUX_TYPES_1_0)
}

fn selinux_1_31(w: &Workload) -> Vec<Violation> {
    selinux(w, SELINUX_TYPES_1_31)
}

/// `procMount` other than `Default` (`procMount_1_0`).
fn proc_mount(w: &Workload) -> Vec<Violation> {
    w.containers()
        .filter_map(|c| {
            let pm = c.security_context.and_then(|s| s.proc_mount.as_deref())?;
            (pm != "Default").then(|| {
                violation(
                    c.sc_field("procMount"),
                    format!("container \"{}\" must not set procMount {pm:?}", c.name),
                )
            })
        })
        .collect()
}

/// v1.35 baseline: a pod in a user namespace may unmask /proc.
fn proc_mount_1_35_baseline(w: &Workload) -> Vec<Violation> {
    if w.user_namespace() {
        return Vec::new();
    }
    proc_mount(w)
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Before v1.19: the alpha annotations, for the pod and for each container
/// of the pod by name.
fn seccomp_annotations(w: &Workload) -> Vec<Violation> {
    let ok =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let mut keys = vec![SECCOMP_POD_ANNOTATION.to_string()];
    keys.extend(
        w.containers()
            .map(|c| format!("{SECCOMP_CONTAINER_PREFIX}{}", c.name)),
    );
    let mut out: Vec<Violation> = Vec::new();
    for k in keys {
        if let Some(val) = w.annotations.get(&k).filter(|v| !ok(v)) {
            let pointer = format!("/metadata/annotations/{}", escape(&k));
            if !out.iter().any(|o| o.pointer == pointer) {
                out.push(violation(pointer, format!("{k}={val:?}")));
            }
        }
    }
    out
}

fn valid_seccomp(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn pod_seccomp(w: &Workload) -> Option<&str> {
    w.spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str())
}

fn container_seccomp<'a>(c: &ContainerView<'a>) -> Option<&'a str> {
    c.security_context
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str())
}

/// From v1.19: a seccomp type, where set, is RuntimeDefault or Localhost.
fn seccomp_baseline(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(t) = pod_seccomp(w).filter(|t| !valid_seccomp(t)) {
        out.push(violation(
            "/spec/securityContext/seccompProfile/type".into(),
            format!("pod must not set securityContext.seccompProfile.type to {t:?}"),
        ));
    }
    for c in w.containers() {
        if let Some(t) = container_seccomp(&c).filter(|t| !valid_seccomp(t)) {
            out.push(violation(
                c.sc_field("seccompProfile/type"),
                format!(
                    "container \"{}\" must not set securityContext.seccompProfile.type to {t:?}",
                    c.name
                ),
            ));
        }
    }
    out
}

const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
const SYSCTLS_1_37: &[&str] = &[
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

fn sysctls(w: &Workload, allowed: &[&[&str]]) -> Vec<Violation> {
    let list = w
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref());
    list.into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, s)| !allowed.iter().any(|set| set.contains(&s.name.as_str())))
        .map(|(i, s)| {
            violation(
                format!("/spec/securityContext/sysctls/{i}/name"),
                format!("sysctl {:?} is not allowed", s.name),
            )
        })
        .collect()
}

fn sysctls_1_0(w: &Workload) -> Vec<Violation> {
    sysctls(w, &[SYSCTLS_1_0])
}
fn sysctls_1_27(w: &Workload) -> Vec<Violation> {
    sysctls(w, &[SYSCTLS_1_0, SYSCTLS_1_27])
}
fn sysctls_1_29(w: &Workload) -> Vec<Violation> {
    sysctls(w, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}
fn sysctls_1_32(w: &Workload) -> Vec<Violation> {
    sysctls(w, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32])
}
fn sysctls_1_37(w: &Workload) -> Vec<Violation> {
    sysctls(
        w,
        &[
            SYSCTLS_1_0,
            SYSCTLS_1_27,
            SYSCTLS_1_29,
            SYSCTLS_1_32,
            SYSCTLS_1_37,
        ],
    )
}

fn windows_host_process(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    let host = |o: Option<&k8s_openapi::api::core::v1::WindowsSecurityContextOptions>| {
        o.and_then(|o| o.host_process) == Some(true)
    };
    if host(
        w.spec
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.as_ref()),
    ) {
        out.push(violation(
            "/spec/securityContext/windowsOptions/hostProcess".into(),
            "pod must not set securityContext.windowsOptions.hostProcess=true",
        ));
    }
    for c in w.containers() {
        if host(c.security_context.and_then(|s| s.windows_options.as_ref())) {
            out.push(violation(
                c.sc_field("windowsOptions/hostProcess"),
                format!(
                    "container \"{}\" must not set securityContext.windowsOptions.hostProcess=true",
                    c.name
                ),
            ));
        }
    }
    out
}

/// v1.34: no `host` on HTTP or TCP probes and lifecycle handlers.
fn host_probes(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in w.containers() {
        let mut judge = |at: String, http: Option<&str>, tcp: Option<&str>| {
            for (kind, host) in [("httpGet", http), ("tcpSocket", tcp)] {
                if let Some(h) = host.filter(|h| !h.is_empty()) {
                    out.push(violation(
                        format!("{at}/{kind}/host"),
                        format!(
                            "container \"{}\" uses probe or lifecycle host {h:?}",
                            c.name
                        ),
                    ));
                }
            }
        };
        for (field, probe) in c.probes {
            if let Some(p) = probe {
                judge(
                    format!("{}/{field}", c.pointer),
                    p.http_get.as_ref().and_then(|h| h.host.as_deref()),
                    p.tcp_socket.as_ref().and_then(|t| t.host.as_deref()),
                );
            }
        }
        if let Some(l) = c.lifecycle {
            for (field, handler) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
                if let Some(h) = handler {
                    judge(
                        format!("{}/lifecycle/{field}", c.pointer),
                        h.http_get.as_ref().and_then(|h| h.host.as_deref()),
                        h.tcp_socket.as_ref().and_then(|t| t.host.as_deref()),
                    );
                }
            }
        }
    }
    out
}

// ---- restricted ----

/// The volume types the restricted level allows (`check_restrictedVolumes.go`;
/// `image` since the v1.33 code, at every policy version).
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    for (i, v) in w.spec.volumes.iter().flatten().enumerate() {
        let sources = volume_source_names(v);
        if sources.iter().any(|s| RESTRICTED_VOLUMES.contains(s)) {
            continue;
        }
        let what = sources.first().copied().unwrap_or("unknown");
        out.push(violation(
            match sources.first() {
                Some(s) => format!("/spec/volumes/{i}/{s}"),
                None => format!("/spec/volumes/{i}"),
            },
            format!(
                "volume \"{}\" uses restricted volume type \"{what}\"",
                v.name
            ),
        ));
    }
    out
}

fn allow_privilege_escalation(w: &Workload) -> Vec<Violation> {
    w.containers()
        .filter(|c| {
            c.security_context
                .and_then(|s| s.allow_privilege_escalation)
                != Some(false)
        })
        .map(|c| {
            violation(
                c.sc_field("allowPrivilegeEscalation"),
                format!(
                    "container \"{}\" must set securityContext.allowPrivilegeEscalation=false",
                    c.name
                ),
            )
        })
        .collect()
}

fn run_as_non_root(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    let pod = w
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root);
    if pod == Some(false) {
        out.push(violation(
            "/spec/securityContext/runAsNonRoot".into(),
            "pod must not set securityContext.runAsNonRoot=false",
        ));
    }
    for c in w.containers() {
        match c.security_context.and_then(|s| s.run_as_non_root) {
            Some(false) => out.push(violation(
                c.sc_field("runAsNonRoot"),
                format!(
                    "container \"{}\" must not set securityContext.runAsNonRoot=false",
                    c.name
                ),
            )),
            Some(true) => {}
            None if pod == Some(true) => {}
            None => out.push(violation(
                c.sc_field("runAsNonRoot"),
                format!(
                    "pod or container \"{}\" must set securityContext.runAsNonRoot=true",
                    c.name
                ),
            )),
        }
    }
    out
}

fn run_as_user(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    if w.spec.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0) {
        out.push(violation(
            "/spec/securityContext/runAsUser".into(),
            "pod must not set runAsUser=0",
        ));
    }
    for c in w.containers() {
        if c.security_context.and_then(|s| s.run_as_user) == Some(0) {
            out.push(violation(
                c.sc_field("runAsUser"),
                format!("container \"{}\" must not set runAsUser=0", c.name),
            ));
        }
    }
    out
}

fn seccomp_restricted(w: &Workload) -> Vec<Violation> {
    let mut out = seccomp_baseline(w);
    let pod_ok = pod_seccomp(w).is_some_and(valid_seccomp);
    for c in w.containers() {
        if container_seccomp(&c).is_none() && !pod_ok {
            out.push(violation(
                c.sc_field("seccompProfile"),
                format!(
                    "pod or container \"{}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                    c.name
                ),
            ));
        }
    }
    out
}

fn capabilities_restricted(w: &Workload) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in w.containers() {
        let caps = c.security_context.and_then(|s| s.capabilities.as_ref());
        let drops_all = caps
            .and_then(|k| k.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            out.push(violation(
                c.sc_field("capabilities/drop"),
                format!(
                    "container \"{}\" must set securityContext.capabilities.drop=[\"ALL\"]",
                    c.name
                ),
            ));
        }
        let add = caps.and_then(|k| k.add.as_ref());
        for (j, cap) in add.into_iter().flatten().enumerate() {
            if cap != "NET_BIND_SERVICE" {
                out.push(violation(
                    c.sc_field(&format!("capabilities/add/{j}")),
                    format!(
                        "container \"{}\" must not include \"{cap}\" in securityContext.capabilities.add",
                        c.name
                    ),
                ));
            }
        }
    }
    out
}

/// v1.25: the Linux-only restricted checks exempt Windows pods.
mod linux_only {
    use super::*;

    pub(super) fn ape(w: &Workload) -> Vec<Violation> {
        if w.is_windows() {
            return Vec::new();
        }
        allow_privilege_escalation(w)
    }

    pub(super) fn seccomp(w: &Workload) -> Vec<Violation> {
        if w.is_windows() {
            return Vec::new();
        }
        seccomp_restricted(w)
    }

    pub(super) fn capabilities(w: &Workload) -> Vec<Violation> {
        if w.is_windows() {
            return Vec::new();
        }
        capabilities_restricted(w)
    }
}

/// v1.35: a pod in a user namespace (`hostUsers: false`) may run as uid 0
/// inside it (KEP-127).
mod user_ns {
    use super::*;

    pub(super) fn run_as_non_root(w: &Workload) -> Vec<Violation> {
        if w.user_namespace() {
            return Vec::new();
        }
        super::run_as_non_root(w)
    }

    pub(super) fn run_as_user(w: &Workload) -> Vec<Violation> {
        if w.user_namespace() {
            return Vec::new();
        }
        super::run_as_user(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile schema lists exactly the checks implemented here, and
    /// the shipped profiles cover every one: baseline every baseline check,
    /// restricted every check.
    #[test]
    fn the_schema_and_the_shipped_profiles_cover_every_check() {
        let schema: serde_json::Value =
            serde_json::from_str(crate::policy::schema::PROFILE_SCHEMA).unwrap();
        let listed: Vec<&str> = schema
            .pointer("/$defs/check/properties/pod_security/enum")
            .and_then(|e| e.as_array())
            .expect("the schema lists the pod_security ids")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        assert_eq!(listed, ids);
        for (file, level) in [
            ("pod-security-baseline.yaml", Level::Baseline),
            ("pod-security-restricted.yaml", Level::Restricted),
        ] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("policies/profiles")
                    .join(file),
            )
            .unwrap();
            for c in CHECKS
                .iter()
                .filter(|c| level == Level::Restricted || c.level == Level::Baseline)
            {
                let want = format!(
                    "check: {{pod_security: {}, level: {}}}",
                    c.id,
                    level.as_str()
                );
                assert!(text.contains(&want), "{file} lacks `{want}`");
            }
        }
    }
}
