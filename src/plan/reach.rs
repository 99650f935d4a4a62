//! Whether a pod's vigil sidecar may be used for one of its containers:
//! whether it runs the scanner image the policy pins (else its output is
//! the workload owner's word, not vigil's), and whether Linux lets it read
//! that container's root at all.
//!
//! The sidecar reads a target through `/proc/<pid>/root`, which the kernel
//! guards with the ptrace access check in read mode
//! (`__ptrace_may_access` in `kernel/ptrace.c`): the caller's uid must equal
//! the target's real, effective and saved uid, and its gid the target's
//! three gids; the process must be dumpable; and then
//! `cap_ptrace_access_check` (`security/commoncap.c`) requires the target's
//! permitted capabilities to be a subset of the caller's. `CAP_SYS_PTRACE`
//! in the caller bypasses the id and capability tests. The sidecar vigil
//! renders drops every capability, so it reads exactly the containers that
//! run as its uid and gid and hold no permitted capability: every non-root
//! container of that uid and gid (a non-root process keeps no permitted
//! capability across exec without file capabilities or ambient ones, which
//! Kubernetes never sets), and a root container only when it drops ALL.

use std::collections::BTreeSet;

use crate::inventory::ContainerInfo;

/// The capabilities a container runtime gives a container by default
/// (`defaultUnixCaps` in containerd's `pkg/oci/spec.go`; CRI-O's default
/// list is the same set minus `NET_RAW`, `MKNOD`, `AUDIT_WRITE` and
/// `SYS_CHROOT`, so a subset: a sidecar that covers containerd's default
/// covers CRI-O's).
pub(crate) const RUNTIME_DEFAULT_CAPS: [&str; 14] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The permitted capabilities of a container's processes, as far as its
/// spec says: `None` for "every capability" (privileged, or `add: [ALL]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permitted {
    /// These capabilities (names without `CAP_`, upper case).
    Some(BTreeSet<String>),
    /// Every capability.
    All,
}

impl Permitted {
    fn covers(&self, other: &Permitted) -> bool {
        match (self, other) {
            (Permitted::All, _) => true,
            (Permitted::Some(_), Permitted::All) => false,
            (Permitted::Some(a), Permitted::Some(b)) => b.is_subset(a),
        }
    }

    fn has(&self, cap: &str) -> bool {
        match self {
            Permitted::All => true,
            Permitted::Some(s) => s.contains(cap),
        }
    }

    fn describe(&self) -> String {
        match self {
            Permitted::All => "every capability".into(),
            Permitted::Some(s) if s.is_empty() => "no capability".into(),
            Permitted::Some(s) => s.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// A capability name as Kubernetes accepts it (`NET_ADMIN`, `CAP_NET_ADMIN`,
/// any case), in the form this module compares.
fn cap_name(s: &str) -> String {
    let u = s.trim().to_ascii_uppercase();
    u.strip_prefix("CAP_").map(str::to_string).unwrap_or(u)
}

/// What a container of uid `uid` with this spec may hold after exec: the
/// runtime default adjusted by `drop` then `add` for root; nothing for any
/// other uid (runc sets no ambient capabilities, so exec clears them).
pub(crate) fn permitted(c: &ContainerInfo, uid: i64) -> Permitted {
    if uid != 0 {
        return Permitted::Some(BTreeSet::new());
    }
    if c.privileged {
        return Permitted::All;
    }
    let mut set: BTreeSet<String> = RUNTIME_DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if let Some(caps) = &c.capabilities {
        for d in caps.drop.iter().flatten().map(|d| cap_name(d)) {
            if d == "ALL" {
                set.clear();
            }
            set.remove(&d);
        }
        for a in caps.add.iter().flatten().map(|a| cap_name(a)) {
            if a == "ALL" {
                return Permitted::All;
            }
            set.insert(a);
        }
    }
    Permitted::Some(set)
}

/// Whether the sidecar may read a target, as far as the pod can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The ids match and the capabilities are covered.
    Yes,
    /// The kernel will refuse it, and why.
    No(String),
    /// The pod does not say the ids of one of the two (neither
    /// `status.containerStatuses[].user` nor `runAsUser`/`runAsGroup`).
    Unknown(String),
}

/// Whether `sidecar` may read the root of `target` (both from one pod).
pub(crate) fn sidecar_reach(sidecar: &ContainerInfo, target: &ContainerInfo) -> Reach {
    let ids = |c: &ContainerInfo| c.run_as_user.zip(c.run_as_group);
    let Some((s_uid, s_gid)) = ids(sidecar) else {
        return Reach::Unknown(format!(
            "the pod does not say which uid and gid the sidecar {} runs as (set runAsUser and runAsGroup)",
            sidecar.name
        ));
    };
    let s_caps = permitted(sidecar, s_uid);
    if s_caps.has("SYS_PTRACE") {
        return Reach::Yes;
    }
    let Some((t_uid, t_gid)) = ids(target) else {
        return Reach::Unknown(format!(
            "the pod does not say which uid and gid {} runs as (its status has no user, its spec no runAsUser and runAsGroup); the sidecar runs as {s_uid}:{s_gid} and reads only containers of the same ids",
            target.name
        ));
    };
    if (s_uid, s_gid) != (t_uid, t_gid) {
        return Reach::No(format!(
            "{} runs as uid {t_uid} gid {t_gid} and the sidecar as {s_uid}:{s_gid}: Linux lets a process read another's /proc/PID/root only with the same uid and gid (the ptrace access check)",
            target.name
        ));
    }
    let t_caps = permitted(target, t_uid);
    if !s_caps.covers(&t_caps) {
        return Reach::No(format!(
            "{} holds {} and the sidecar {}: Linux lets a process read another's /proc/PID/root only if it holds every capability the other does (cap_ptrace_access_check)",
            target.name,
            t_caps.describe(),
            s_caps.describe()
        ));
    }
    Reach::Yes
}

/// Whether the sidecar runs the scanner image the policy pins: the digest
/// the kubelet reports it runs (`imageID`) must be the pinned one. `pinned`
/// is `spec.sidecar.image`, else `spec.debug.image`.
pub(crate) fn sidecar_trusted(sidecar: &ContainerInfo, pinned: Option<&str>) -> Result<(), String> {
    let Some(pinned) = pinned else {
        return Err(format!(
            "the policy pins no scanner image (spec.sidecar.image or spec.debug.image) to check the sidecar {} against, so its output would be the workload's word",
            sidecar.name
        ));
    };
    let Some(want) = pinned
        .rfind("@sha256:")
        .map(|i| &pinned[i + 1..])
        .filter(|d| crate::registry::is_sha256_digest(d))
    else {
        return Err(format!(
            "the policy's scanner image {pinned} is not pinned by digest, so the sidecar {} cannot be checked against it",
            sidecar.name
        ));
    };
    match sidecar.image_digest.as_deref() {
        Some(got) if got == want => Ok(()),
        Some(got) => Err(format!(
            "the sidecar {} runs image {got} (its status imageID), not the pinned scanner image {want}",
            sidecar.name
        )),
        None => Err(format!(
            "the pod status reports no image digest (imageID) for the sidecar {}, so it cannot be checked against the pinned scanner image",
            sidecar.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ContainerKind;
    use k8s_openapi::api::core::v1::Capabilities;

    fn c(uid: Option<i64>, gid: Option<i64>, drop: &[&str], add: &[&str]) -> ContainerInfo {
        ContainerInfo {
            name: "c".into(),
            image: "i".into(),
            kind: ContainerKind::App,
            run_as_user: uid,
            run_as_group: gid,
            capabilities: Some(Capabilities {
                drop: Some(drop.iter().map(|s| s.to_string()).collect()),
                add: Some(add.iter().map(|s| s.to_string()).collect()),
            }),
            privileged: false,
            running: true,
            container_id: None,
            image_digest: None,
        }
    }

    #[test]
    fn a_capability_free_sidecar_reads_its_own_ids_only() {
        let sidecar = c(Some(1337), Some(1337), &["ALL"], &[]);
        assert_eq!(
            sidecar_reach(&sidecar, &c(Some(1337), Some(1337), &[], &[])),
            Reach::Yes
        );
        // Another uid, another gid.
        assert!(
            matches!(sidecar_reach(&sidecar, &c(Some(1000), Some(1337), &[], &[])), Reach::No(m) if m.contains("same uid and gid"))
        );
        assert!(matches!(
            sidecar_reach(&sidecar, &c(Some(1337), Some(0), &[], &[])),
            Reach::No(_)
        ));
        // Unknown ids are said, not guessed.
        assert!(matches!(
            sidecar_reach(&sidecar, &c(None, None, &[], &[])),
            Reach::Unknown(_)
        ));
    }

    #[test]
    fn a_root_sidecar_without_capabilities_reads_only_roots_that_drop_all() {
        let sidecar = c(Some(0), Some(0), &["ALL"], &[]);
        assert!(
            matches!(sidecar_reach(&sidecar, &c(Some(0), Some(0), &[], &[])), Reach::No(m) if m.contains("cap_ptrace_access_check"))
        );
        assert_eq!(
            sidecar_reach(&sidecar, &c(Some(0), Some(0), &["ALL"], &[])),
            Reach::Yes
        );
        assert!(matches!(
            sidecar_reach(
                &sidecar,
                &c(Some(0), Some(0), &["ALL"], &["cap_net_bind_service"])
            ),
            Reach::No(_)
        ));
        // A sidecar with the runtime default reads a default root target, not a privileged one.
        let default = c(Some(0), Some(0), &[], &[]);
        assert_eq!(
            sidecar_reach(&default, &c(Some(0), Some(0), &["NET_RAW"], &[])),
            Reach::Yes
        );
        let mut privileged = c(Some(0), Some(0), &[], &[]);
        privileged.privileged = true;
        assert!(
            matches!(sidecar_reach(&default, &privileged), Reach::No(m) if m.contains("every capability"))
        );
        // CAP_SYS_PTRACE passes the check whatever the ids.
        let ptrace = c(Some(0), Some(0), &["ALL"], &["SYS_PTRACE"]);
        assert_eq!(
            sidecar_reach(&ptrace, &c(Some(5), Some(5), &[], &[])),
            Reach::Yes
        );
        // A non-root sidecar holds nothing, whatever it adds.
        let nonroot = c(Some(7), Some(7), &[], &["SYS_PTRACE"]);
        assert!(matches!(
            sidecar_reach(&nonroot, &c(Some(5), Some(5), &[], &[])),
            Reach::No(_)
        ));
    }

    #[test]
    fn the_sidecar_is_trusted_only_when_it_runs_the_pinned_digest() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let mut s = c(Some(1), Some(1), &["ALL"], &[]);
        let pinned = format!("registry.example/vigil@{d}");
        assert!(
            sidecar_trusted(&s, Some(&pinned))
                .unwrap_err()
                .contains("no image digest")
        );
        s.image_digest = Some(format!("sha256:{}", "cd".repeat(32)));
        assert!(
            sidecar_trusted(&s, Some(&pinned))
                .unwrap_err()
                .contains("not the pinned")
        );
        s.image_digest = Some(d.clone());
        assert_eq!(sidecar_trusted(&s, Some(&pinned)), Ok(()));
        assert!(
            sidecar_trusted(&s, Some("registry.example/vigil:1"))
                .unwrap_err()
                .contains("not pinned")
        );
        assert!(
            sidecar_trusted(&s, None)
                .unwrap_err()
                .contains("pins no scanner image")
        );
    }
}
