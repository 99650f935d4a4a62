//! The Pod Security Standards profiles against the standard itself: pods
//! built one violation (or one allowed variant) at a time from a pod that
//! passes the restricted level, each with the verdict the admission
//! library gives it at each level and policy version. The verdicts come
//! from the standard (kubernetes/website pod-security-standards.md) and
//! the admission library's version table (pod-security-admission/policy:
//! which check exists from which version, which restricted check replaces
//! which baseline one), written here independently of vigil's evaluator,
//! and vigil must agree on every pod at every version: through the
//! shipped profiles, a policy's `podSecurityVersion`, manifest targets and
//! the run summary, as a user runs it.

use crate::util::{TempDir, repo, vigil_in};

/// What the admission library decides for a pod at a level, by version.
#[derive(Clone, Copy, Debug)]
enum V {
    Allow,
    Deny,
    /// Denied from this minor on (the check is newer).
    DenyFrom(u32),
    /// Denied before this minor (a later version allows it).
    DenyBefore(u32),
    /// Denied in [from, to).
    DenyIn(u32, u32),
}

impl V {
    fn denies(self, minor: u32) -> bool {
        match self {
            V::Allow => false,
            V::Deny => true,
            V::DenyFrom(m) => minor >= m,
            V::DenyBefore(m) => minor < m,
            V::DenyIn(a, b) => minor >= a && minor < b,
        }
    }
}

/// A pod that every version of the restricted level admits.
const BASE: &str = r#"{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "NAME", "namespace": "pss"},
  "spec": {
    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
    "initContainers": [{"name": "initcontainer1", "image": "registry.k8s.io/pause",
      "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
    "containers": [{"name": "container1", "image": "registry.k8s.io/pause",
      "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
  }
}"#;

/// RFC 7386 merge patch, with one extension: a key ending in `[0]`
/// patches the first element of that array instead of replacing it.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if let Some(key) = k.strip_suffix("[0]") {
            merge(&mut t.get_mut(key).unwrap()[0], v);
        } else if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// (name, patch to the base pod, baseline verdict, restricted verdict).
fn cases() -> Vec<(&'static str, &'static str, V, V)> {
    use V::*;
    let c = |sc: &'static str| sc;
    vec![
        // Host namespaces (baseline, v1.0).
        (
            "hostnetwork",
            r#"{"spec":{"hostNetwork":true}}"#,
            Deny,
            Deny,
        ),
        ("hostpid", r#"{"spec":{"hostPID":true}}"#, Deny, Deny),
        ("hostipc", r#"{"spec":{"hostIPC":true}}"#, Deny, Deny),
        (
            "hostnamespaces-false",
            r#"{"spec":{"hostNetwork":false,"hostPID":false,"hostIPC":false}}"#,
            Allow,
            Allow,
        ),
        // Privileged (baseline), on every kind of container.
        (
            "privileged",
            r#"{"spec":{"containers[0]":{"securityContext":{"privileged":true}}}}"#,
            Deny,
            Deny,
        ),
        (
            "privileged-init",
            r#"{"spec":{"initContainers[0]":{"securityContext":{"privileged":true}}}}"#,
            Deny,
            Deny,
        ),
        (
            "privileged-false",
            r#"{"spec":{"containers[0]":{"securityContext":{"privileged":false}}}}"#,
            Allow,
            Allow,
        ),
        (
            "privileged-ephemeral",
            r#"{"spec":{"ephemeralContainers":[{"name":"debugger","image":"busybox","securityContext":{"privileged":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}"#,
            Deny,
            Deny,
        ),
        // Capabilities: baseline's default set; restricted's drop ALL and
        // NET_BIND_SERVICE only, from v1.22 (before it, baseline's rule).
        (
            "caps-add-netraw",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["NET_RAW"]}}}}}"#,
            Deny,
            Deny,
        ),
        (
            "caps-add-sysadmin-init",
            r#"{"spec":{"initContainers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["SYS_ADMIN"]}}}}}"#,
            Deny,
            Deny,
        ),
        (
            "caps-add-chown",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["CHOWN"]}}}}}"#,
            Allow,
            DenyFrom(22),
        ),
        (
            "caps-add-lowercase",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["chown"]}}}}}"#,
            Deny,
            Deny,
        ),
        (
            "caps-add-all-defaults",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["AUDIT_WRITE","CHOWN","DAC_OVERRIDE","FOWNER","FSETID","KILL","MKNOD","NET_BIND_SERVICE","SETFCAP","SETGID","SETPCAP","SETUID","SYS_CHROOT"]}}}}}"#,
            Allow,
            DenyFrom(22),
        ),
        (
            "caps-add-netbind",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]}}}}}"#,
            Allow,
            Allow,
        ),
        (
            "caps-no-drop",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":null}}}}"#,
            Allow,
            DenyFrom(22),
        ),
        (
            "caps-drop-some",
            r#"{"spec":{"containers[0]":{"securityContext":{"capabilities":{"drop":["NET_RAW"]}}}}}"#,
            Allow,
            DenyFrom(22),
        ),
        // Volumes: hostPath (baseline); restricted's nine types, at
        // every version (image volumes were allowed in place).
        (
            "volume-hostpath",
            r#"{"spec":{"volumes":[{"name":"h","hostPath":{"path":"/"}}]}}"#,
            Deny,
            Deny,
        ),
        (
            "volume-nfs",
            r#"{"spec":{"volumes":[{"name":"n","nfs":{"server":"s","path":"/"}}]}}"#,
            Allow,
            Deny,
        ),
        (
            "volume-gitrepo",
            r#"{"spec":{"volumes":[{"name":"g","gitRepo":{"repository":"r"}}]}}"#,
            Allow,
            Deny,
        ),
        (
            "volume-image",
            r#"{"spec":{"volumes":[{"name":"i","image":{"reference":"x"}}]}}"#,
            Allow,
            Allow,
        ),
        (
            "volume-allowed",
            r#"{"spec":{"volumes":[{"name":"a","configMap":{"name":"c"}},{"name":"b","secret":{"secretName":"s"}},{"name":"c","emptyDir":{}},{"name":"d","projected":{"sources":[]}},{"name":"e","persistentVolumeClaim":{"claimName":"p"}},{"name":"f","downwardAPI":{}},{"name":"g","csi":{"driver":"d"}},{"name":"h","ephemeral":{}}]}}"#,
            Allow,
            Allow,
        ),
        (
            "volume-defaulted",
            r#"{"spec":{"volumes":[{"name":"scratch"}]}}"#,
            Allow,
            Allow,
        ),
        // Host ports (baseline).
        (
            "hostport",
            r#"{"spec":{"containers[0]":{"ports":[{"containerPort":80,"hostPort":8080}]}}}"#,
            Deny,
            Deny,
        ),
        (
            "hostport-zero",
            r#"{"spec":{"containers[0]":{"ports":[{"containerPort":80,"hostPort":0}]}}}"#,
            Allow,
            Allow,
        ),
        (
            "hostport-by-hostnetwork",
            r#"{"spec":{"hostNetwork":false,"containers[0]":{"ports":[{"containerPort":80}]}}}"#,
            Allow,
            Allow,
        ),
        // AppArmor: the annotation (any container key) and the fields.
        (
            "apparmor-annotation-unconfined",
            r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/container1":"unconfined"}}}"#,
            Deny,
            Deny,
        ),
        (
            "apparmor-annotation-other-key",
            r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/nosuch":"unconfined"}}}"#,
            Deny,
            Deny,
        ),
        (
            "apparmor-annotation-allowed",
            r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/container1":"runtime/default","container.apparmor.security.beta.kubernetes.io/initcontainer1":"localhost/p"}}}"#,
            Allow,
            Allow,
        ),
        (
            "apparmor-field-unconfined",
            r#"{"spec":{"securityContext":{"appArmorProfile":{"type":"Unconfined"}}}}"#,
            Deny,
            Deny,
        ),
        (
            "apparmor-field-container-unconfined",
            r#"{"spec":{"containers[0]":{"securityContext":{"appArmorProfile":{"type":"Unconfined"}}}}}"#,
            Deny,
            Deny,
        ),
        (
            "apparmor-field-allowed",
            r#"{"spec":{"securityContext":{"appArmorProfile":{"type":"RuntimeDefault"}},"containers[0]":{"securityContext":{"appArmorProfile":{"type":"Localhost","localhostProfile":"p"}}}}}"#,
            Allow,
            Allow,
        ),
        // SELinux: types by version, never a user or role.
        (
            "selinux-type-bad",
            r#"{"spec":{"securityContext":{"seLinuxOptions":{"type":"spc_t"}}}}"#,
            Deny,
            Deny,
        ),
        (
            "selinux-type-engine",
            r#"{"spec":{"containers[0]":{"securityContext":{"seLinuxOptions":{"type":"container_engine_t"}}}}}"#,
            DenyBefore(31),
            DenyBefore(31),
        ),
        (
            "selinux-type-allowed",
            r#"{"spec":{"securityContext":{"seLinuxOptions":{"type":"container_t","level":"s0:c1,c2"}},"initContainers[0]":{"securityContext":{"seLinuxOptions":{"type":"container_init_t"}}},"containers[0]":{"securityContext":{"seLinuxOptions":{"type":"container_kvm_t"}}}}}"#,
            Allow,
            Allow,
        ),
        (
            "selinux-user",
            r#"{"spec":{"containers[0]":{"securityContext":{"seLinuxOptions":{"user":"sysadm_u"}}}}}"#,
            Deny,
            Deny,
        ),
        (
            "selinux-role",
            r#"{"spec":{"securityContext":{"seLinuxOptions":{"role":"sysadm_r"}}}}"#,
            Deny,
            Deny,
        ),
        // /proc mount: relaxed for user-namespace pods at baseline from
        // v1.35, never at restricted.
        (
            "procmount-unmasked",
            r#"{"spec":{"containers[0]":{"securityContext":{"procMount":"Unmasked"}}}}"#,
            Deny,
            Deny,
        ),
        (
            "procmount-default",
            r#"{"spec":{"containers[0]":{"securityContext":{"procMount":"Default"}}}}"#,
            Allow,
            Allow,
        ),
        (
            "procmount-unmasked-userns",
            r#"{"spec":{"hostUsers":false,"containers[0]":{"securityContext":{"procMount":"Unmasked"}}}}"#,
            DenyBefore(35),
            Deny,
        ),
        // Seccomp: annotations before v1.19, fields from it; restricted
        // requires one from v1.19.
        (
            "seccomp-pod-unconfined",
            r#"{"spec":{"securityContext":{"seccompProfile":{"type":"Unconfined"}},"initContainers[0]":{"securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}},"containers[0]":{"securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}}}}"#,
            DenyFrom(19),
            DenyFrom(19),
        ),
        (
            "seccomp-container-unconfined",
            r#"{"spec":{"containers[0]":{"securityContext":{"seccompProfile":{"type":"Unconfined"}}}}}"#,
            DenyFrom(19),
            DenyFrom(19),
        ),
        (
            "seccomp-annotation-unconfined",
            r#"{"metadata":{"annotations":{"seccomp.security.alpha.kubernetes.io/pod":"unconfined"}}}"#,
            DenyBefore(19),
            DenyBefore(19),
        ),
        (
            "seccomp-annotation-container",
            r#"{"metadata":{"annotations":{"container.seccomp.security.alpha.kubernetes.io/container1":"unconfined"}}}"#,
            DenyBefore(19),
            DenyBefore(19),
        ),
        (
            "seccomp-annotation-allowed",
            r#"{"metadata":{"annotations":{"seccomp.security.alpha.kubernetes.io/pod":"docker/default","container.seccomp.security.alpha.kubernetes.io/container1":"localhost/p"}}}"#,
            Allow,
            Allow,
        ),
        (
            "seccomp-none",
            r#"{"spec":{"securityContext":{"seccompProfile":null}}}"#,
            Allow,
            DenyFrom(19),
        ),
        (
            "seccomp-containers-only",
            r#"{"spec":{"securityContext":{"seccompProfile":null},"initContainers[0]":{"securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"p"}}},"containers[0]":{"securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}}}}"#,
            Allow,
            Allow,
        ),
        // Sysctls: the safe list grows by version.
        (
            "sysctl-unsafe",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"kernel.msgmax","value":"1"}]}}}"#,
            Deny,
            Deny,
        ),
        (
            "sysctl-safe",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"kernel.shm_rmid_forced","value":"1"},{"name":"net.ipv4.ip_unprivileged_port_start","value":"0"}]}}}"#,
            Allow,
            Allow,
        ),
        (
            "sysctl-reserved-ports",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"net.ipv4.ip_local_reserved_ports","value":"1"}]}}}"#,
            DenyBefore(27),
            DenyBefore(27),
        ),
        (
            "sysctl-keepalive",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_keepalive_probes","value":"1"}]}}}"#,
            DenyBefore(29),
            DenyBefore(29),
        ),
        (
            "sysctl-rmem",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_wmem","value":"4096 87380 16777216"}]}}}"#,
            DenyBefore(32),
            DenyBefore(32),
        ),
        (
            "sysctl-slow-start",
            r#"{"spec":{"securityContext":{"sysctls":[{"name":"net.ipv4.tcp_slow_start_after_idle","value":"0"}]}}}"#,
            DenyBefore(37),
            DenyBefore(37),
        ),
        // Windows HostProcess (baseline).
        (
            "hostprocess-pod",
            r#"{"spec":{"securityContext":{"windowsOptions":{"hostProcess":true}}}}"#,
            Deny,
            Deny,
        ),
        (
            "hostprocess-container",
            r#"{"spec":{"containers[0]":{"securityContext":{"windowsOptions":{"hostProcess":true}}}}}"#,
            Deny,
            Deny,
        ),
        // Probe and lifecycle hosts (baseline, v1.34).
        (
            "probe-http-host",
            r#"{"spec":{"containers[0]":{"livenessProbe":{"httpGet":{"host":"10.0.0.1","port":80}}}}}"#,
            DenyFrom(34),
            DenyFrom(34),
        ),
        (
            "probe-tcp-host-init",
            r#"{"spec":{"initContainers[0]":{"readinessProbe":{"tcpSocket":{"host":"metadata","port":80}}}}}"#,
            DenyFrom(34),
            DenyFrom(34),
        ),
        (
            "lifecycle-host",
            r#"{"spec":{"containers[0]":{"lifecycle":{"preStop":{"httpGet":{"host":"example.com","port":80}}}}}}"#,
            DenyFrom(34),
            DenyFrom(34),
        ),
        (
            "probe-empty-host",
            r#"{"spec":{"containers[0]":{"startupProbe":{"httpGet":{"host":"","port":80}}}}}"#,
            Allow,
            Allow,
        ),
        // Privilege escalation (restricted, v1.8; Windows pods exempt
        // from v1.25, with the other Linux-only checks).
        (
            "ape-unset",
            r#"{"spec":{"containers[0]":{"securityContext":{"allowPrivilegeEscalation":null}}}}"#,
            Allow,
            DenyFrom(8),
        ),
        (
            "ape-true-init",
            r#"{"spec":{"initContainers[0]":{"securityContext":{"allowPrivilegeEscalation":true}}}}"#,
            Allow,
            DenyFrom(8),
        ),
        (
            "windows-linux-only-unset",
            r#"{"spec":{"os":{"name":"windows"},"securityContext":{"seccompProfile":null},"initContainers[0]":{"securityContext":null},"containers[0]":{"securityContext":null}}}"#,
            Allow,
            DenyIn(8, 25),
        ),
        // runAsNonRoot (restricted, v1.0; user namespaces from v1.35).
        (
            "runasnonroot-unset",
            r#"{"spec":{"securityContext":{"runAsNonRoot":null}}}"#,
            Allow,
            Deny,
        ),
        (
            "runasnonroot-pod-false",
            r#"{"spec":{"securityContext":{"runAsNonRoot":false},"initContainers[0]":{"securityContext":{"runAsNonRoot":true}},"containers[0]":{"securityContext":{"runAsNonRoot":true}}}}"#,
            Allow,
            Deny,
        ),
        (
            "runasnonroot-container-false",
            r#"{"spec":{"containers[0]":{"securityContext":{"runAsNonRoot":false}}}}"#,
            Allow,
            Deny,
        ),
        (
            "runasnonroot-containers-only",
            r#"{"spec":{"securityContext":{"runAsNonRoot":null},"initContainers[0]":{"securityContext":{"runAsNonRoot":true}},"containers[0]":{"securityContext":{"runAsNonRoot":true}}}}"#,
            Allow,
            Allow,
        ),
        (
            "runasnonroot-userns",
            r#"{"spec":{"hostUsers":false,"securityContext":{"runAsNonRoot":null}}}"#,
            Allow,
            DenyBefore(35),
        ),
        // runAsUser 0 (restricted, v1.23; user namespaces from v1.35).
        (
            "runasuser-pod-0",
            r#"{"spec":{"securityContext":{"runAsUser":0}}}"#,
            Allow,
            DenyFrom(23),
        ),
        (
            "runasuser-container-0",
            r#"{"spec":{"containers[0]":{"securityContext":{"runAsUser":0}}}}"#,
            Allow,
            DenyFrom(23),
        ),
        (
            "runasuser-1000",
            r#"{"spec":{"securityContext":{"runAsUser":1000}}}"#,
            Allow,
            Allow,
        ),
        (
            "runasuser-0-userns",
            r#"{"spec":{"hostUsers":false,"securityContext":{"runAsUser":0}}}"#,
            Allow,
            DenyIn(23, 35),
        ),
        // Not in the standard at all.
        (
            "runasgroup-0",
            r#"{"spec":{"securityContext":{"runAsGroup":0,"fsGroup":0}}}"#,
            Allow,
            Allow,
        ),
        ("base", c("{}"), Allow, Allow),
    ]
}

/// The policy versions judged: every minor a check changes at, the ones
/// around them, `latest`, and one above the newest (which clamps).
const VERSIONS: &[(&str, u32)] = &[
    ("v1.0", 0),
    ("v1.7", 7),
    ("v1.8", 8),
    ("v1.18", 18),
    ("v1.19", 19),
    ("v1.21", 21),
    ("v1.22", 22),
    ("v1.23", 23),
    ("v1.24", 24),
    ("v1.25", 25),
    ("v1.26", 26),
    ("v1.27", 27),
    ("v1.28", 28),
    ("v1.29", 29),
    ("v1.30", 30),
    ("v1.31", 31),
    ("v1.32", 32),
    ("v1.33", 33),
    ("v1.34", 34),
    ("v1.35", 35),
    ("v1.36", 36),
    ("v1.37", 37),
    ("v1.40", 37),
    ("latest", 37),
];

#[test]
fn the_pod_security_profiles_decide_as_the_admission_library_at_every_version() {
    let dir = TempDir::new("pss");
    let cases = cases();
    let base: serde_json::Value = serde_json::from_str(BASE).unwrap();
    for (name, patch, _, _) in &cases {
        let mut pod = base.clone();
        merge(
            &mut pod,
            &serde_json::from_str(patch).unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        pod["metadata"]["name"] = (*name).into();
        dir.write(
            &format!("pods/{name}.json"),
            serde_json::to_vec_pretty(&pod).unwrap(),
        );
    }
    let profiles = repo().join("policies/profiles");
    let mut disagreements = Vec::new();
    for level in ["baseline", "restricted"] {
        for (version, minor) in VERSIONS {
            let policy = dir.write(
                "policy.yaml",
                format!(
                    "apiVersion: vigil/v1\nkind: ScanPolicy\nmetadata: {{name: pss}}\nspec:\n  profiles: [pod-security-{level}]\n  podSecurityVersion: {version}\n  targets: [{{manifest: pods}}]\n  output: {{dir: out}}\n"
                ),
            );
            let run = vigil_in(
                dir.path(),
                &[
                    "run",
                    policy.to_str().unwrap(),
                    profiles.to_str().unwrap(),
                    "--unsigned",
                    "--plaintext",
                    "--format",
                    "json",
                ],
            );
            assert!(
                run.code == 0 || run.code == 1,
                "{level} {version}: {}",
                run.stderr
            );
            let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let targets = summary[0]["targets"].as_array().unwrap();
            assert_eq!(targets.len(), cases.len(), "every pod is a target");
            for (name, _, b, r) in &cases {
                let want = if level == "baseline" { b } else { r }.denies(*minor);
                let t = targets
                    .iter()
                    .find(|t| t["id"] == format!("Pod/pss/{name}"))
                    .unwrap_or_else(|| panic!("no target for {name}"));
                assert_eq!(t["counts"]["error"], 0, "{name}: {t}");
                let denied = t["counts"]["failed"].as_u64().unwrap() > 0;
                if denied != want {
                    disagreements.push(format!(
                        "{level} {version} {name}: vigil {} but admission {} ({})",
                        if denied { "denies" } else { "allows" },
                        if want { "denies" } else { "allows" },
                        t["findings"]
                    ));
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
