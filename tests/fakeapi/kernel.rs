//! The kernel's ptrace access check for `/proc/<pid>/root`: credentials of a container's first process and whether a scanner may read it.

use super::*;

/// The capabilities containerd gives a container by default
/// (`defaultUnixCaps` in containerd's `pkg/oci/spec.go`).
pub(super) const DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Who a container's first process is: uid, gid and permitted
/// capabilities, as the runtime sets them up from the pod spec (the image
/// default user is `image_user`). A non-root process has no permitted
/// capabilities after exec; root has its bounding set, the runtime default
/// adjusted by `capabilities.drop` and `.add`.
pub(super) fn process_credentials(
    pod: &Value,
    c: &Value,
    image_user: (i64, i64),
) -> (i64, i64, std::collections::BTreeSet<String>) {
    let sc = &c["securityContext"];
    let psc = &pod["spec"]["securityContext"];
    let uid = sc["runAsUser"]
        .as_i64()
        .or(psc["runAsUser"].as_i64())
        .unwrap_or(image_user.0);
    let gid = sc["runAsGroup"]
        .as_i64()
        .or(psc["runAsGroup"].as_i64())
        .unwrap_or(image_user.1);
    let names = |k: &str| -> Vec<String> {
        sc["capabilities"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut caps: std::collections::BTreeSet<String> =
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for d in names("drop") {
        if d == "ALL" {
            caps.clear();
        }
        caps.remove(&d);
    }
    caps.extend(names("add"));
    if uid != 0 {
        caps.clear();
    }
    (uid, gid, caps)
}

/// Whether a process with `scanner` credentials may open `/proc/<pid>/root`
/// of one with `target` credentials: the ptrace access check
/// (`__ptrace_may_access` in `kernel/ptrace.c`: same uid and gid, and
/// `cap_ptrace_access_check` in `security/commoncap.c`: the target's
/// permitted capabilities a subset of the caller's), or CAP_SYS_PTRACE.
pub(super) fn ptrace_may_read(
    scanner: &(i64, i64, std::collections::BTreeSet<String>),
    target: &(i64, i64, std::collections::BTreeSet<String>),
) -> bool {
    scanner.2.contains("SYS_PTRACE")
        || (scanner.0 == target.0 && scanner.1 == target.1 && target.2.is_subset(&scanner.2))
}

/// Whether a probe running as container `scanner` (its spec) may read the
/// root of container `target` of `pod`: the target's ids as the kubelet
/// reports them, else from its spec (fixture images run as root, vigil's
/// scanner image as 65532).
pub(super) fn probe_may_read(pod: &Value, scanner: &Value, target: &str) -> bool {
    let target_spec = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == target)
        .cloned()
        .unwrap_or(Value::Null);
    let reported = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["name"] == target)
        .and_then(|x| {
            let l = &x["user"]["linux"];
            Some((l["uid"].as_i64()?, l["gid"].as_i64()?))
        });
    let mut target_creds = process_credentials(pod, &target_spec, (0, 0));
    if let Some((uid, gid)) = reported {
        (target_creds.0, target_creds.1) = (uid, gid);
    }
    ptrace_may_read(
        &process_credentials(pod, scanner, (65532, 65532)),
        &target_creds,
    )
}

/// The probe command for a proc tree. When the kernel would refuse it the
/// target's root, every `<pid>/root` leads behind a directory nobody may
/// search and the probe runs as nobody: even an O_PATH open of the root
/// fails with EACCES, as the kernel's check on following the link does.
pub(super) fn probe_process(
    bin: &Path,
    args: &[String],
    tree: &Path,
    may_read: bool,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).arg("--proc").arg(tree);
    if !may_read {
        let denied = tree.join("denied");
        std::fs::create_dir_all(denied.join("root")).unwrap();
        std::fs::set_permissions(&denied, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        let pids = std::fs::read_dir(tree).unwrap().flatten();
        for e in pids.filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()) {
            let link = e.path().join("root");
            if std::fs::symlink_metadata(&link).is_ok() {
                std::fs::remove_file(&link).unwrap();
                std::os::unix::fs::symlink(denied.join("root"), &link).unwrap();
            }
        }
        cmd.uid(65534).gid(65534);
    }
    cmd
}
