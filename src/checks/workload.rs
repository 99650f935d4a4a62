//! Workload controls: the pod's configuration as evidence (`pod_security:`
//! and `workload: pod` checks). Only targets that have a pod (live pods
//! and manifests) carry one; for any other target the check is an error,
//! never a pass.
//!
//! Each result is located at the field that decided it, so a manifest's
//! results point at `file:line:column`.

use super::TestResult;
use super::pss::{self, Outcome, PolicyVersion};
use crate::facts::workload::{ContainerView, Workload};
use crate::policy::model::{ContainerKind, PodSecurityCheck, WorkloadCheck};

use super::Context;

fn no_workload(desc: String, ctx: &Context) -> Vec<TestResult> {
    vec![TestResult::error(
        desc,
        format!(
            "this target has no pod configuration (a {} target); workload controls apply to pods and manifests",
            ctx.approach.as_str()
        ),
    )]
}

pub(super) fn pod_security(c: &PodSecurityCheck, ctx: &Context) -> Vec<TestResult> {
    let version = c
        .version
        .as_deref()
        .or(ctx.pod_security_version)
        .and_then(PolicyVersion::parse)
        .unwrap_or(PolicyVersion::LATEST);
    let desc = format!(
        "Pod Security Standards check {} ({}, {}) is expected to allow the pod",
        c.pod_security,
        c.level.as_str(),
        version.label()
    );
    let Some(w) = ctx.workload else {
        return no_workload(desc, ctx);
    };
    let Some(check) = pss::find(&c.pod_security) else {
        // The schema lists the ids; this is a profile built by hand.
        return vec![TestResult::error(
            desc,
            "no such Pod Security Standards check",
        )];
    };
    match pss::evaluate(check, c.level, version, w) {
        Outcome::NotYet { since } => vec![TestResult::not_applicable(
            desc,
            format!(
                "the Pod Security Standards have no {} check before v1.{since}",
                check.id
            ),
        )],
        Outcome::NotAtLevel => vec![TestResult::not_applicable(
            desc,
            format!(
                "{} is a restricted check; the baseline level does not include it",
                check.id
            ),
        )],
        Outcome::Overridden { by } => vec![TestResult::not_applicable(
            desc,
            format!(
                "at the restricted level of {}, {by} replaces {}",
                version.label(),
                check.id
            ),
        )],
        Outcome::Allowed => vec![TestResult::check(true, desc, "allowed")],
        Outcome::Forbidden(violations) => violations
            .into_iter()
            .map(|v| {
                TestResult::check(false, desc.clone(), format!("{}: {}", check.reason, v.what))
                    .at(w.locate(&v.pointer))
            })
            .collect(),
    }
}

/// The containers a check judges.
fn in_scope<'w>(
    w: &'w Workload,
    kinds: Option<&[ContainerKind]>,
) -> impl Iterator<Item = ContainerView<'w>> {
    let kinds: Vec<ContainerKind> = kinds.map(<[ContainerKind]>::to_vec).unwrap_or_else(|| {
        vec![
            ContainerKind::Init,
            ContainerKind::App,
            ContainerKind::Ephemeral,
        ]
    });
    w.containers().filter(move |c| kinds.contains(&c.kind))
}

pub(super) fn workload(c: &WorkloadCheck, ctx: &Context) -> Vec<TestResult> {
    let Some(w) = ctx.workload else {
        return no_workload("Pod configuration is expected to be known".into(), ctx);
    };
    let e = &c.expect;
    let mut out = Vec::new();
    let scope: Vec<ContainerView> = in_scope(w, c.containers.as_deref()).collect();
    for k in &scope {
        container_settings(w, k, e, &mut out);
    }
    pod_settings(w, e, &mut out);
    if out.is_empty() {
        out.push(TestResult::skipped(
            "Pod configuration".into(),
            if scope.is_empty() {
                "the pod has no container of the kinds the check names"
            } else {
                "the check names no expectation"
            },
        ));
    }
    out
}

fn who(k: &ContainerView) -> String {
    let kind = match k.kind {
        ContainerKind::Init => "Init container",
        ContainerKind::App => "Container",
        ContainerKind::Ephemeral => "Ephemeral container",
    };
    format!("{kind} {}", crate::safeio::printable(k.name))
}

fn shown<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "not set".to_string(), |v| v.to_string())
}

/// The container's value, else the pod's: Kubernetes' inheritance for
/// `runAsUser`, `runAsGroup`, `runAsNonRoot` and `seccompProfile`.
fn inherited<T: Clone>(
    w: &Workload,
    k: &ContainerView,
    own: impl Fn(&k8s_openapi::api::core::v1::SecurityContext) -> Option<T>,
    pod: impl Fn(&k8s_openapi::api::core::v1::PodSecurityContext) -> Option<T>,
    field: &str,
) -> (Option<T>, String) {
    if let Some(v) = k.security_context.and_then(&own) {
        return (Some(v), k.sc_field(field));
    }
    if let Some(v) = w.spec.security_context.as_ref().and_then(&pod) {
        return (Some(v), format!("/spec/securityContext/{field}"));
    }
    (None, k.sc_field(field))
}

/// Results located in one workload.
struct Sink<'w, 'o> {
    w: &'w Workload,
    out: &'o mut Vec<TestResult>,
}

impl Sink<'_, '_> {
    /// A result, located at its field when it failed (a passed result
    /// needs no place to be fixed at).
    fn push(&mut self, ok: bool, desc: String, got: String, pointer: &str) {
        let r = TestResult::check(ok, desc, got);
        let at = if ok { None } else { self.w.locate(pointer) };
        self.out.push(r.at(at));
    }
}

fn container_settings(
    w: &Workload,
    k: &ContainerView,
    e: &crate::policy::model::WorkloadExpect,
    out: &mut Vec<TestResult>,
) {
    let mut sink = Sink { w, out };
    identity(&mut sink, k, e);
    privilege(&mut sink, k, e);
    supply(&mut sink, k, e);
}

/// Who the container runs as.
fn identity(sink: &mut Sink, k: &ContainerView, e: &crate::policy::model::WorkloadExpect) {
    let w = sink.w;
    let sc = k.security_context;
    let name = who(k);
    if let Some(want) = e.read_only_root_filesystem {
        let got = sc.and_then(|s| s.read_only_root_filesystem);
        sink.push(
            got.unwrap_or(false) == want,
            format!("{name} readOnlyRootFilesystem is expected to be {want}"),
            shown(got),
            &k.sc_field("readOnlyRootFilesystem"),
        );
    }
    if let Some(want) = e.run_as_non_root {
        let (got, at) = inherited(
            w,
            k,
            |s| s.run_as_non_root,
            |p| p.run_as_non_root,
            "runAsNonRoot",
        );
        sink.push(
            got.unwrap_or(false) == want,
            format!("{name} runAsNonRoot is expected to be {want}"),
            shown(got),
            &at,
        );
    }
    if let Some(want) = e.non_root_user {
        let (got, at) = inherited(w, k, |s| s.run_as_user, |p| p.run_as_user, "runAsUser");
        sink.push(
            got.is_some_and(|u| u != 0) == want,
            format!(
                "{name} runAsUser is expected to be {}",
                if want { "set and not 0" } else { "0" }
            ),
            match got {
                Some(u) => u.to_string(),
                None => "not set (the image's USER decides)".into(),
            },
            &at,
        );
    }
    if let Some(want) = e.non_root_groups {
        let (got, at) = inherited(w, k, |s| s.run_as_group, |p| p.run_as_group, "runAsGroup");
        let psc = w.spec.security_context.as_ref();
        let fs_root = psc.and_then(|p| p.fs_group) == Some(0);
        let supp_root = psc
            .and_then(|p| p.supplemental_groups.as_ref())
            .is_some_and(|g| g.contains(&0));
        let ok = got.is_some_and(|g| g != 0) && !fs_root && !supp_root;
        let mut found = format!("runAsGroup {}", shown(got));
        if fs_root {
            found.push_str(", fsGroup 0");
        }
        if supp_root {
            found.push_str(", supplemental group 0");
        }
        sink.push(
            ok == want,
            format!(
                "{name} groups are expected to be {}",
                if want { "non-root" } else { "root" }
            ),
            found,
            &at,
        );
    }
}

/// What the container may do beyond its uid.
fn privilege(sink: &mut Sink, k: &ContainerView, e: &crate::policy::model::WorkloadExpect) {
    let w = sink.w;
    let sc = k.security_context;
    let name = who(k);
    if let Some(want) = e.allow_privilege_escalation {
        let got = sc.and_then(|s| s.allow_privilege_escalation);
        let privileged = sc.and_then(|s| s.privileged) == Some(true);
        // Unset means allowed; privileged always escalates.
        let effective = privileged || got.unwrap_or(true);
        sink.push(
            effective == want,
            format!("{name} allowPrivilegeEscalation is expected to be {want}"),
            if privileged {
                "privileged".into()
            } else {
                shown(got)
            },
            &k.sc_field("allowPrivilegeEscalation"),
        );
    }
    if let Some(want) = e.privileged {
        let got = sc.and_then(|s| s.privileged);
        sink.push(
            got.unwrap_or(false) == want,
            format!("{name} privileged is expected to be {want}"),
            shown(got),
            &k.sc_field("privileged"),
        );
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    if let Some(want) = e.drop_all_capabilities {
        let drop = caps.and_then(|c| c.drop.as_ref());
        let ok = drop.is_some_and(|d| d.iter().any(|x| x == "ALL"));
        sink.push(
            ok == want,
            format!("{name} capabilities.drop is expected to include ALL"),
            drop.map_or_else(|| "not set".into(), |d| format!("[{}]", d.join(", "))),
            &k.sc_field("capabilities/drop"),
        );
    }
    if let Some(allowed) = &e.capabilities_allowed {
        let add: Vec<&String> = caps
            .and_then(|c| c.add.as_ref())
            .into_iter()
            .flatten()
            .collect();
        let extra: Vec<&str> = add
            .iter()
            .filter(|a| !allowed.contains(a))
            .map(|a| a.as_str())
            .collect();
        sink.push(
            extra.is_empty(),
            format!(
                "{name} capabilities.add is expected to be within [{}]",
                allowed.join(", ")
            ),
            if extra.is_empty() {
                format!(
                    "[{}]",
                    add.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("adds {}", extra.join(", "))
            },
            &k.sc_field("capabilities/add"),
        );
    }
    if let Some(allowed) = &e.seccomp {
        let (got, at) = inherited(
            w,
            k,
            |s| s.seccomp_profile.as_ref().map(|p| p.type_.clone()),
            |p| p.seccomp_profile.as_ref().map(|p| p.type_.clone()),
            "seccompProfile",
        );
        sink.push(
            got.as_ref().is_some_and(|t| allowed.contains(t)),
            format!(
                "{name} seccomp profile is expected to be one of [{}]",
                allowed.join(", ")
            ),
            got.unwrap_or_else(|| "not set (Unconfined unless the kubelet defaults it)".into()),
            &at,
        );
    }
}

/// What the container is made of and given: resources, image, probes,
/// environment.
fn supply(sink: &mut Sink, k: &ContainerView, e: &crate::policy::model::WorkloadExpect) {
    let name = who(k);
    for (what, wanted) in [("limits", &e.limits), ("requests", &e.requests)] {
        for r in wanted {
            let set = k.resources.and_then(|res| {
                if what == "limits" {
                    res.limits.as_ref()
                } else {
                    res.requests.as_ref()
                }
            });
            let got = set.and_then(|m| m.get(r)).map(|q| q.0.clone());
            sink.push(
                got.is_some(),
                format!("{name} resources.{what}.{r} is expected to be set"),
                shown(got),
                &format!("{}/resources/{what}", k.pointer),
            );
        }
    }
    if let Some(want) = e.image_digest {
        let image = k.image.unwrap_or_default();
        sink.push(
            image.contains("@sha256:") == want,
            format!(
                "{name} image is expected to be {}pinned by digest",
                if want { "" } else { "not " }
            ),
            crate::safeio::printable(image).into_owned(),
            &format!("{}/image", k.pointer),
        );
    }
    if let Some(allowed) = &e.image_pull_policy {
        let got = k
            .image_pull_policy
            .map(str::to_string)
            .unwrap_or_else(|| default_pull_policy(k.image.unwrap_or_default()).to_string());
        sink.push(
            allowed.contains(&got),
            format!(
                "{name} imagePullPolicy is expected to be one of [{}]",
                allowed.join(", ")
            ),
            got,
            &format!("{}/imagePullPolicy", k.pointer),
        );
    }
    for p in &e.probes {
        let field = format!("{p}Probe");
        let set = k
            .probes
            .iter()
            .any(|(f, probe)| *f == field && probe.is_some());
        sink.push(
            set,
            format!("{name} {field} is expected to be set"),
            if set { "set" } else { "not set" }.into(),
            &format!("{}/{field}", k.pointer),
        );
    }
    if let Some(want) = e.no_secret_env {
        let mut hits = Vec::new();
        let mut first = None;
        for (i, var) in k.env.iter().enumerate() {
            if let Some(v) = var.value.as_deref()
                && crate::facts::looks_secret(&var.name, v)
            {
                // Names only: values never enter a result.
                hits.push(crate::safeio::excerpt(&var.name, 120));
                first.get_or_insert(i);
            }
        }
        let at = match first {
            Some(i) => format!("{}/env/{i}/value", k.pointer),
            None => format!("{}/env", k.pointer),
        };
        sink.push(
            hits.is_empty() == want,
            format!("{name} environment is expected to carry no literal secrets"),
            if hits.is_empty() {
                "none".into()
            } else {
                format!("literal values for {}", hits.join(", "))
            },
            &at,
        );
    }
}

/// Kubernetes' default pull policy (`SetDefaults_Container`): `Always`
/// for `:latest` or no tag, else `IfNotPresent`; a digest counts as a tag.
fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// What the pod's namespace says: its enforced Pod Security level and its
/// NetworkPolicies. Not read (a live pod, or a namespace whose object is
/// not among the manifests) is an error, never a pass.
fn namespace_settings(
    w: &Workload,
    e: &crate::policy::model::WorkloadExpect,
    out: &mut Vec<TestResult>,
) {
    use crate::policy::model::PssLevel;
    let ns = crate::safeio::printable(&w.namespace).into_owned();
    let ctx = w.context.as_deref();
    let unread = |what: &str| match ctx {
        Some(c) => match &c.unread {
            Some(why) => format!("{what} of namespace {ns} could not be read: {why}"),
            None => format!("{what} of namespace {ns} is not among {}", c.source),
        },
        None => format!("{what} of namespace {ns} was not read"),
    };
    if let Some(want) = e.namespace_enforces {
        let desc = format!(
            "Namespace {ns} is expected to enforce Pod Security level {} or stricter",
            want.as_str()
        );
        match ctx.and_then(|c| c.labels.as_ref()) {
            None => out.push(TestResult::error(desc, unread("the Namespace object"))),
            Some(labels) => {
                let got = labels
                    .get("pod-security.kubernetes.io/enforce")
                    .map(String::as_str);
                let rank = |l: Option<&str>| match l {
                    Some("restricted") => 2,
                    Some("baseline") => 1,
                    _ => 0,
                };
                let wanted = match want {
                    PssLevel::Restricted => 2,
                    PssLevel::Baseline => 1,
                };
                out.push(TestResult::check(
                    rank(got) >= wanted,
                    desc,
                    got.map_or_else(
                        || "no enforce label (privileged)".to_string(),
                        |l| format!("enforce: {}", crate::safeio::printable(l)),
                    ),
                ));
            }
        }
    }
    if let Some(want) = e.network_policy {
        let desc = format!(
            "Pod is expected to be {}selected by a NetworkPolicy",
            if want { "" } else { "not " }
        );
        match ctx.and_then(|c| c.network_policies.as_ref()) {
            None => out.push(TestResult::error(desc, unread("the NetworkPolicies"))),
            Some(policies) => {
                let selecting: Vec<&str> = policies
                    .iter()
                    .filter(|(_, sel)| sel.matches(&w.labels))
                    .map(|(name, _)| name.as_str())
                    .collect();
                out.push(TestResult::check(
                    selecting.is_empty() != want,
                    desc,
                    if selecting.is_empty() {
                        format!(
                            "none of {} NetworkPolicies in {ns} selects it",
                            policies.len()
                        )
                    } else {
                        format!(
                            "selected by {}",
                            crate::safeio::printable(&selecting.join(", "))
                        )
                    },
                ));
            }
        }
    }
}

fn pod_settings(w: &Workload, e: &crate::policy::model::WorkloadExpect, out: &mut Vec<TestResult>) {
    namespace_settings(w, e, out);
    if let Some(want) = e.service_account_token {
        let field = w.spec.automount_service_account_token;
        // A live pod shows what admission did: a projected token volume
        // is there or not. A manifest that leaves the field unset mounts
        // one unless its ServiceAccount says otherwise, which the
        // manifest does not show: that is not evidence of "not mounted".
        let projected = w.spec.volumes.iter().flatten().any(|v| {
            v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.service_account_token.is_some())
            })
        });
        let (mounted, got) = match (field, &w.origin) {
            (Some(false), _) if !projected => (false, "automountServiceAccountToken: false".to_string()),
            (_, crate::facts::workload::Origin::Live) => (
                projected,
                if projected {
                    "a projected service account token volume".to_string()
                } else {
                    "no service account token volume".to_string()
                },
            ),
            (f, _) => (
                true,
                match f {
                    Some(true) => "automountServiceAccountToken: true".to_string(),
                    _ => "automountServiceAccountToken not set (the ServiceAccount decides; it mounts one by default)".to_string(),
                },
            ),
        };
        let ok = mounted == want;
        out.push(
            TestResult::check(
                ok,
                format!(
                    "Pod service account token is expected to be {}mounted",
                    if want { "" } else { "not " }
                ),
                got,
            )
            .at(w
                .locate("/spec/automountServiceAccountToken")
                .filter(|_| !ok)),
        );
    }
    if let Some(want) = e.default_service_account {
        let sa = w
            .spec
            .service_account_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let ok = (sa == "default") == want;
        out.push(
            TestResult::check(
                ok,
                format!(
                    "Pod service account is expected {}to be the namespace's default",
                    if want { "" } else { "not " }
                ),
                crate::safeio::printable(sa).into_owned(),
            )
            .at(w.locate("/spec/serviceAccountName").filter(|_| !ok)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace that could not be read (a refused request) makes the
    /// controls that asked errors, never passes or failures.
    #[test]
    fn an_unread_namespace_is_an_error() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        let mut w = Workload::live(&pod).unwrap();
        w.context = Some(std::sync::Arc::new(
            crate::facts::workload::NamespaceContext {
                source: "the cluster",
                unread: Some("namespaces \"team\" is forbidden".into()),
                ..Default::default()
            },
        ));
        let check = WorkloadCheck {
            workload: crate::policy::model::WorkloadSubject::Pod,
            containers: None,
            expect: crate::policy::model::WorkloadExpect {
                namespace_enforces: Some(crate::policy::model::PssLevel::Baseline),
                network_policy: Some(true),
                ..Default::default()
            },
        };
        let ctx = Context::new(crate::policy::model::Approach::Api).with_workload(Some(&w));
        let results = workload(&check, &ctx);
        assert_eq!(results.len(), 2);
        for r in &results {
            assert_eq!(r.status, super::super::Status::Error, "{r:?}");
            assert!(r.message.contains("is forbidden"), "{}", r.message);
        }
    }

    #[test]
    fn the_default_pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("registry:5000/nginx:1"), "IfNotPresent");
        assert_eq!(
            default_pull_policy(
                "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            "IfNotPresent"
        );
    }
}
