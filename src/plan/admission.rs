//! An admission guard for vigil's own footprint: a ValidatingAdmissionPolicy
//! (admissionregistration.k8s.io/v1, CEL) and its binding.
//!
//! RBAC can pin *which* pods a run's token may patch
//! (`pods/ephemeralcontainers` by `resourceNames`), but not *what* a patch
//! adds: a stolen token could add any image, privileged, to a scanned pod.
//! Admission sees the object, so it can hold the token to what vigil adds.
//! Rules:
//!
//! - an ephemeral container named `vigil-*` is admitted only from a vigil
//!   run identity, with a pinned scanner image and the hardened
//!   securityContext vigil gives it;
//! - a vigil identity may add only such containers;
//! - a pod container named `vigil-*` (the sidecar) must run a pinned image
//!   with the hardened securityContext.
//!
//! The hardened securityContext: no privilege escalation, not privileged, a
//! read-only root, RuntimeDefault seccomp, and either non-root with every
//! capability dropped, or, for the debug probe of a root target only, root
//! with no capability the target container does not add itself (the kernel
//! lets a process read another's `/proc/PID/root` only with the same ids
//! and capabilities: see docs/kubernetes.md, "The debug approach").

use serde_json::{Value, json};

/// The policy's and the binding's name.
pub(crate) const NAME: &str = "vigil-footprint";

/// The token policy's and binding's name.
pub(crate) const TOKENS_NAME: &str = "vigil-footprint-tokens";

/// The namespaces the guard leaves alone: the cluster's own components
/// (their pods and tokens are not vigil's, and a mistake here could stop
/// the control plane's add-ons).
const EXCLUDED_NAMESPACES: [&str; 1] = ["kube-system"];

/// The longest token a scan identity may be issued: the policy's
/// `tokenTTL` is at most 60 minutes.
const MAX_TOKEN_SECONDS: u32 = 3600;

/// A regular expression alternative matching the ServiceAccount names a
/// run may use: `vigil-*` (per-run accounts, and provisioned ones by
/// default) and the provisioned names `accounts` (`access.serviceAccount`).
fn account_names(accounts: &[String]) -> String {
    let mut alts = vec!["vigil-[a-z0-9.-]+".to_string()];
    alts.extend(accounts.iter().map(|a| a.replace('.', "\\.")));
    alts.join("|")
}

/// A run identity: a ServiceAccount of [`account_names`] in any namespace.
pub(crate) fn is_vigil(accounts: &[String]) -> String {
    format!(
        "request.userInfo.username.matches('^system:serviceaccount:[a-z0-9.-]+:({})$')",
        account_names(accounts)
    )
}

/// Whether this request changes the pod's `vigil-*` containers (a create,
/// or an update that adds, removes or edits one): the sidecar rules judge
/// only such requests, so after the scanner digest rotates, ordinary
/// updates of pods still running the old sidecar (labels, finalizer
/// removal while terminating) are not refused.
pub(crate) const SIDECARS_CHANGED: &str = "oldObject == null || !has(oldObject.spec) || oldObject.spec.containers.filter(c, c.name.startsWith('vigil-')) != object.spec.containers.filter(c, c.name.startsWith('vigil-'))";

/// Ephemeral containers this request adds (all of them on a create).
pub(crate) const ADDED: &str = "has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers.filter(c, oldObject == null || !has(oldObject.spec.ephemeralContainers) || !oldObject.spec.ephemeralContainers.exists(o, o.name == c.name)) : []";

/// The common part of the hardened securityContext of container `c`.
const HARDENED_BASE: &str = "has(c.securityContext) && has(c.securityContext.allowPrivilegeEscalation) && c.securityContext.allowPrivilegeEscalation == false && has(c.securityContext.readOnlyRootFilesystem) && c.securityContext.readOnlyRootFilesystem == true && (!has(c.securityContext.privileged) || c.securityContext.privileged == false) && has(c.securityContext.seccompProfile) && c.securityContext.seccompProfile.type == 'RuntimeDefault'";

/// Non-root, every capability dropped, none added.
const NON_ROOT_NO_CAPS: &str = "has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot == true && has(c.securityContext.capabilities) && has(c.securityContext.capabilities.drop) && 'ALL' in c.securityContext.capabilities.drop && (!has(c.securityContext.capabilities.add) || size(c.securityContext.capabilities.add) == 0)";

/// Root (the debug probe of a root target: root by its own or the pod's
/// securityContext, or by the uid the kubelet reports), adding no
/// capability its target container does not add.
const ROOT_AS_TARGET: &str = "has(c.securityContext.runAsUser) && c.securityContext.runAsUser == 0 && has(c.targetContainerName) && (object.spec.containers.exists(t, t.name == c.targetContainerName && ((has(t.securityContext) && has(t.securityContext.runAsUser)) ? t.securityContext.runAsUser == 0 : (has(object.spec.securityContext) && has(object.spec.securityContext.runAsUser) && object.spec.securityContext.runAsUser == 0))) || (has(object.status) && has(object.status.containerStatuses) && object.status.containerStatuses.exists(s, s.name == c.targetContainerName && has(s.user) && has(s.user.linux) && s.user.linux.uid == 0))) && (!has(c.securityContext.capabilities) || !has(c.securityContext.capabilities.add) || c.securityContext.capabilities.add.all(a, object.spec.containers.exists(t, t.name == c.targetContainerName && has(t.securityContext) && has(t.securityContext.capabilities) && has(t.securityContext.capabilities.add) && a in t.securityContext.capabilities.add)))";

/// The hardened securityContext of an ephemeral container `c`.
pub(crate) fn hardened_ephemeral() -> String {
    format!("{HARDENED_BASE} && (({NON_ROOT_NO_CAPS}) || ({ROOT_AS_TARGET}))")
}

/// The hardened securityContext of a sidecar `c` (never more than
/// every capability dropped).
pub(crate) fn hardened_sidecar() -> String {
    format!(
        "{HARDENED_BASE} && has(c.securityContext.capabilities) && has(c.securityContext.capabilities.drop) && 'ALL' in c.securityContext.capabilities.drop && (!has(c.securityContext.capabilities.add) || size(c.securityContext.capabilities.add) == 0)"
    )
}

/// The validations, in order: (expression, message).
pub(crate) fn validations() -> Vec<(String, String)> {
    vec![
        (
            "variables.added.all(c, !c.name.startsWith('vigil-') || variables.isVigil)".into(),
            "only a vigil run identity may add an ephemeral container named vigil-*".into(),
        ),
        (
            "!variables.isVigil || variables.added.all(c, c.name.startsWith('vigil-'))".into(),
            "a vigil run identity may add only ephemeral containers named vigil-*".into(),
        ),
        (
            "variables.added.all(c, !c.name.startsWith('vigil-') || (has(c.image) && c.image in variables.images))".into(),
            "a vigil-* ephemeral container must run a pinned scanner image".into(),
        ),
        (
            format!(
                "variables.added.all(c, !c.name.startsWith('vigil-') || ({}))",
                hardened_ephemeral()
            ),
            "a vigil-* ephemeral container must have the hardened securityContext (no privilege escalation, read-only root, RuntimeDefault seccomp, non-root with all capabilities dropped, or root with no capability its target does not add)".into(),
        ),
        (
            "request.subResource == 'ephemeralcontainers' || !variables.sidecarsChanged || object.spec.containers.all(c, !c.name.startsWith('vigil-') || (has(c.image) && c.image in variables.images))".into(),
            "a vigil-* sidecar must run a pinned scanner image".into(),
        ),
        (
            format!(
                "request.subResource == 'ephemeralcontainers' || !variables.sidecarsChanged || object.spec.containers.all(c, !c.name.startsWith('vigil-') || ({}))",
                hardened_sidecar()
            ),
            "a vigil-* sidecar must have the hardened securityContext (no privilege escalation, read-only root, RuntimeDefault seccomp, all capabilities dropped)".into(),
        ),
    ]
}

/// A CEL string literal (single-quoted; `\` and `'` escaped).
fn cel_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The token rule: a token for a scan identity (not the in-cluster
/// runner's, `vigil-runner-*`, which the kubelet requests for its pod)
/// must expire within [`MAX_TOKEN_SECONDS`] and be bound to an object, so
/// whoever may mint the scan account's tokens cannot make one that
/// outlives its run or its anchor.
fn token_validation(accounts: &[String]) -> (String, String) {
    (
        format!(
            "!request.name.matches('^({})$') || request.name.startsWith('vigil-runner-') || (has(object.spec.expirationSeconds) && object.spec.expirationSeconds <= {MAX_TOKEN_SECONDS} && has(object.spec.boundObjectRef) && object.spec.boundObjectRef.kind in ['Secret', 'Pod'])",
            account_names(accounts)
        ),
        format!(
            "a token for a vigil scan identity must expire within {} minutes and be bound to an object (its run's anchor Secret)",
            MAX_TOKEN_SECONDS / 60
        ),
    )
}

/// The namespace selector both policies use: every namespace but
/// [`EXCLUDED_NAMESPACES`].
fn namespace_selector() -> Value {
    json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": EXCLUDED_NAMESPACES}]})
}

/// The policies and their bindings, admitting `images` (each pinned by
/// digest) and taking the ServiceAccounts `accounts` (provisioned
/// `access.serviceAccount` names not starting with `vigil-`) for run
/// identities: the pod policy and binding, then the token policy and
/// binding.
pub(crate) fn render(images: &[String], accounts: &[String]) -> Vec<Value> {
    let list = images
        .iter()
        .map(|i| cel_string(i))
        .collect::<Vec<_>>()
        .join(", ");
    let mut docs = policy_and_binding(
        NAME,
        (&["CREATE", "UPDATE"], &["pods", "pods/ephemeralcontainers"]),
        json!([
            {"name": "isVigil", "expression": is_vigil(accounts)},
            {"name": "images", "expression": format!("[{list}]")},
            {"name": "added", "expression": ADDED},
            {"name": "sidecarsChanged", "expression": SIDECARS_CHANGED}
        ]),
        validations(),
    )
    .to_vec();
    docs.extend(policy_and_binding(
        TOKENS_NAME,
        (&["CREATE"], &["serviceaccounts/token"]),
        json!([]),
        vec![token_validation(accounts)],
    ));
    docs
}

/// A ValidatingAdmissionPolicy `name` on core resources (`operations`,
/// `resources`) in every namespace but the excluded ones, failing closed,
/// and its binding that denies.
fn policy_and_binding(
    name: &str,
    (operations, resources): (&[&str], &[&str]),
    variables: Value,
    validations: Vec<(String, String)>,
) -> [Value; 2] {
    let validations: Vec<Value> = validations
        .into_iter()
        .map(|(expression, message)| json!({"expression": expression, "message": message}))
        .collect();
    let labels = json!({"app.kubernetes.io/managed-by": "vigil"});
    let mut spec = json!({
        "failurePolicy": "Fail",
        "matchConstraints": {
            "namespaceSelector": namespace_selector(),
            "resourceRules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": operations,
                "resources": resources
            }]
        },
        "validations": validations
    });
    if variables.as_array().is_some_and(|v| !v.is_empty()) {
        spec["variables"] = variables;
    }
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name, "labels": labels},
            "spec": {"policyName": name, "validationActions": ["Deny"]}
        }),
    ]
}

#[cfg(test)]
mod tests {
    //! The CEL evaluated with cel-interpreter over the objects vigil itself
    //! builds (`approach::debug::ephemeral_container`,
    //! `manifests::sidecar_patch`) and hostile variants of them.

    use super::*;
    use crate::facts::FactRequest;
    use crate::plan::PlannedTarget;
    use crate::policy::model::ScannerSpec;
    use k8s_openapi::api::core::v1::Capabilities;

    const IMAGE: &str = "registry.example/vigil@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const RUN: &str = "system:serviceaccount:shop:vigil-shop-4f1c2a9b";

    /// Evaluate the rendered policy as the API server would: variables in
    /// order, then every validation. `Err` lists the messages of the
    /// validations that deny (an evaluation error denies too:
    /// failurePolicy Fail).
    fn admit(object: &Value, old: &Value, user: &str, sub: &str) -> Result<(), Vec<String>> {
        let request = json!({"userInfo": {"username": user}, "subResource": sub});
        evaluate(0, object, old, &request)
    }

    /// A TokenRequest for ServiceAccount `account`, through the token policy.
    fn admit_token(account: &str, spec: Value) -> Result<(), Vec<String>> {
        let request =
            json!({"userInfo": {"username": "alice"}, "subResource": "token", "name": account});
        evaluate(2, &json!({"spec": spec}), &Value::Null, &request)
    }

    /// Evaluate rendered policy `index` (0: pods, 2: tokens).
    fn evaluate(
        index: usize,
        object: &Value,
        old: &Value,
        request: &Value,
    ) -> Result<(), Vec<String>> {
        use cel_interpreter::{Context, Program};
        let docs = render(&[IMAGE.to_string()], &["scanner".to_string()]);
        let policy = &docs[index]["spec"];
        let request = request.clone();
        let mut vars = serde_json::Map::new();
        let context = |vars: &serde_json::Map<String, Value>| {
            let mut ctx = Context::default();
            ctx.add_variable("object", object.clone()).unwrap();
            ctx.add_variable("oldObject", old.clone()).unwrap();
            ctx.add_variable("request", request.clone()).unwrap();
            ctx.add_variable("variables", Value::Object(vars.clone()))
                .unwrap();
            ctx
        };
        for v in policy["variables"].as_array().into_iter().flatten() {
            let p = Program::compile(v["expression"].as_str().unwrap()).unwrap();
            let value = p
                .execute(&context(&vars))
                .unwrap_or_else(|e| panic!("variable {}: {e:?}", v["name"]));
            vars.insert(v["name"].as_str().unwrap().into(), value.json().unwrap());
        }
        let mut denied = Vec::new();
        for v in policy["validations"].as_array().unwrap() {
            let p = Program::compile(v["expression"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{}: {e:?}", v["expression"]));
            match p.execute(&context(&vars)) {
                Ok(cel_interpreter::Value::Bool(true)) => {}
                other => denied.push(format!("{} ({other:?})", v["message"].as_str().unwrap())),
            }
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(denied)
        }
    }

    fn target(uid: i64, caps: Option<Capabilities>) -> PlannedTarget {
        PlannedTarget {
            id: "shop/web/app".into(),
            approach: crate::policy::model::Approach::Debug,
            namespace: Some("shop".into()),
            pod: Some("web".into()),
            container: Some("app".into()),
            run_as_user: Some(uid),
            run_as_group: Some(uid),
            capabilities: caps,
            container_id: Some("containerd://4f1c2a9be0d3".into()),
            ..PlannedTarget::default()
        }
    }

    /// The pod before and after vigil adds its probe for `target`.
    fn pods(t: &PlannedTarget) -> (Value, Value) {
        let spec = ScannerSpec {
            image: IMAGE.into(),
            verify: None,
            resources: Default::default(),
        };
        let key = age::x25519::Identity::generate().to_public();
        let ec = crate::approach::debug::ephemeral_container(
            "vigil-0123456789ab",
            t,
            &spec,
            &FactRequest::default(),
            &key,
        )
        .unwrap();
        let mut app = json!({"name": "app", "image": "registry.example/web:1",
            "securityContext": {"runAsUser": t.run_as_user}});
        if let Some(c) = &t.capabilities {
            app["securityContext"]["capabilities"] = json!(c);
        }
        let old = json!({"metadata": {"name": "web"}, "spec": {"containers": [app]}});
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([serde_json::to_value(&ec).unwrap()]);
        (old, new)
    }

    #[test]
    fn what_vigil_adds_is_admitted() {
        for t in [
            target(1000, None),
            target(0, None),
            target(
                0,
                Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: None,
                }),
            ),
        ] {
            let (old, new) = pods(&t);
            assert_eq!(
                admit(&new, &old, RUN, "ephemeralcontainers"),
                Ok(()),
                "{new:#}"
            );
        }
        // Root known only from the uid the kubelet reports (1.31+).
        let (mut old, mut new) = pods(&target(0, None));
        for p in [&mut old, &mut new] {
            p["spec"]["containers"][0]["securityContext"] = json!({});
            p["status"] = json!({"containerStatuses": [{"name": "app", "user": {"linux": {"uid": 0, "gid": 0}}}]});
        }
        assert_eq!(admit(&new, &old, RUN, "ephemeralcontainers"), Ok(()));
        // A second probe later: only the new one is judged.
        let (old, new) = pods(&target(1000, None));
        let mut again = new.clone();
        let mut second = new["spec"]["ephemeralContainers"][0].clone();
        second["name"] = json!("vigil-0123456789ac");
        again["spec"]["ephemeralContainers"]
            .as_array_mut()
            .unwrap()
            .push(second);
        assert_eq!(admit(&again, &new, RUN, "ephemeralcontainers"), Ok(()));
        let _ = old;
        // The sidecar `vigil render sidecar` adds, in a pod a controller creates.
        let patch = crate::plan::manifests::sidecar_patch(
            "vigil-scanner",
            IMAGE,
            (101, 101),
            &Default::default(),
            None,
        );
        let sidecar = patch["spec"]["template"]["spec"]["containers"][0].clone();
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}, sidecar]}});
        let controller = "system:serviceaccount:kube-system:replicaset-controller";
        assert_eq!(admit(&pod, &Value::Null, controller, ""), Ok(()));
    }

    #[test]
    fn hostile_variants_are_denied_each_for_its_reason() {
        let (old, new) = pods(&target(1000, None));
        let ec = |f: &dyn Fn(&mut Value)| {
            let mut v = new.clone();
            f(&mut v["spec"]["ephemeralContainers"][0]);
            v
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                new.clone(),
                "system:serviceaccount:shop:default",
                "only a vigil run identity",
            ),
            (new.clone(), "alice", "only a vigil run identity"),
            (
                ec(&|c| c["image"] = json!("evil.example/shell:latest")),
                RUN,
                "pinned scanner image",
            ),
            (
                ec(&|c| {
                    c["image"] = json!(
                        "registry.example/vigil@sha256:2222222222222222222222222222222222222222222222222222222222222222"
                    )
                }),
                RUN,
                "pinned scanner image",
            ),
            (
                ec(&|c| c["name"] = json!("debugger")),
                RUN,
                "may add only ephemeral containers named vigil-*",
            ),
            (
                ec(&|c| {
                    c.as_object_mut().unwrap().remove("securityContext");
                }),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| c["securityContext"]["privileged"] = json!(true)),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| c["securityContext"]["allowPrivilegeEscalation"] = json!(true)),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| c["securityContext"]["readOnlyRootFilesystem"] = json!(false)),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| c["securityContext"]["seccompProfile"]["type"] = json!("Unconfined")),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| c["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"])),
                RUN,
                "hardened securityContext",
            ),
            (
                ec(&|c| {
                    c["securityContext"]["runAsNonRoot"] = json!(false);
                    c["securityContext"]["runAsUser"] = json!(0);
                }),
                RUN,
                "hardened securityContext",
            ),
        ];
        for (object, user, want) in cases {
            let denied = admit(&object, &old, user, "ephemeralcontainers").unwrap_err();
            assert!(
                denied.iter().any(|m| m.contains(want)),
                "{want}: {denied:?}"
            );
        }
        // Root as a root target, but with a capability the target lacks.
        let t = target(
            0,
            Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into()]),
                drop: None,
            }),
        );
        let (old, mut new) = pods(&t);
        new["spec"]["ephemeralContainers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["NET_ADMIN", "SYS_PTRACE"]);
        let denied = admit(&new, &old, RUN, "ephemeralcontainers").unwrap_err();
        assert!(denied.iter().any(|m| m.contains("hardened")), "{denied:?}");
        // A sidecar with another image, or without the hardening.
        let patch = crate::plan::manifests::sidecar_patch(
            "vigil-scanner",
            IMAGE,
            (101, 101),
            &Default::default(),
            None,
        );
        let good = patch["spec"]["template"]["spec"]["containers"][0].clone();
        for (f, want) in [
            (
                Box::new(|c: &mut Value| c["image"] = json!("vigil:latest"))
                    as Box<dyn Fn(&mut Value)>,
                "sidecar must run a pinned",
            ),
            (
                Box::new(|c: &mut Value| c["securityContext"]["capabilities"]["drop"] = json!([])),
                "sidecar must have the hardened",
            ),
        ] {
            let mut c = good.clone();
            f(&mut c);
            let pod = json!({"spec": {"containers": [c]}});
            let denied = admit(
                &pod,
                &Value::Null,
                "system:serviceaccount:kube-system:replicaset-controller",
                "",
            )
            .unwrap_err();
            assert!(
                denied.iter().any(|m| m.contains(want)),
                "{want}: {denied:?}"
            );
        }
    }

    /// The guard's side effects stay small: pods still running the previous
    /// scanner digest can be updated (only changes to vigil-* containers are
    /// judged), provisioned accounts with other names are run identities,
    /// scan tokens are short-lived and bound, and kube-system is left alone.
    #[test]
    fn the_guard_judges_only_what_vigil_changes() {
        let patch = crate::plan::manifests::sidecar_patch(
            "vigil-scanner",
            "registry.example/vigil@sha256:9999999999999999999999999999999999999999999999999999999999999999",
            (101, 101),
            &Default::default(),
            None,
        );
        let previous = patch["spec"]["template"]["spec"]["containers"][0].clone();
        let running = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}, previous.clone()]}});
        let controller = "system:serviceaccount:kube-system:replicaset-controller";
        // A label change, or a finalizer removed while terminating: admitted.
        let mut relabelled = running.clone();
        relabelled["metadata"]["labels"]["app"] = json!("web-2");
        assert_eq!(admit(&relabelled, &running, "alice", ""), Ok(()));
        // A new pod with it, or an edit of the sidecar: judged, refused.
        assert!(admit(&running, &Value::Null, controller, "").is_err());
        let mut edited = running.clone();
        edited["spec"]["containers"][1]["securityContext"]["capabilities"]["drop"] = json!([]);
        let denied = admit(&edited, &running, "alice", "").unwrap_err();
        assert!(denied.iter().any(|m| m.contains("sidecar")), "{denied:?}");

        // A provisioned account named in a policy is a run identity.
        let (old, new) = pods(&target(1000, None));
        assert_eq!(
            admit(
                &new,
                &old,
                "system:serviceaccount:shop:scanner",
                "ephemeralcontainers"
            ),
            Ok(())
        );
        for other in [
            "system:serviceaccount:shop:scanner2",
            "system:serviceaccount:shop:xscanner",
        ] {
            let denied = admit(&new, &old, other, "ephemeralcontainers").unwrap_err();
            assert!(
                denied
                    .iter()
                    .any(|m| m.contains("only a vigil run identity")),
                "{other}: {denied:?}"
            );
        }

        // Tokens of scan identities: at most an hour, bound to an object.
        let bound = |secs: u32| json!({"expirationSeconds": secs, "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "vigil-shop-4f1c2a9b-anchor"}});
        assert_eq!(admit_token("vigil-shop-4f1c2a9b", bound(900)), Ok(()));
        assert_eq!(admit_token("scanner", bound(3600)), Ok(()));
        for (account, spec) in [
            ("vigil-shop-4f1c2a9b", bound(7200)),
            ("scanner", bound(86_400)),
            ("vigil-shop-4f1c2a9b", json!({"expirationSeconds": 600})),
            (
                "vigil-shop-4f1c2a9b",
                json!({"boundObjectRef": {"kind": "Secret", "name": "x"}}),
            ),
        ] {
            let denied = admit_token(account, spec.clone()).unwrap_err();
            assert!(
                denied
                    .iter()
                    .any(|m| m.contains("must expire within 60 minutes")),
                "{account} {spec}: {denied:?}"
            );
        }
        // Other accounts, and the in-cluster runner's kubelet-requested
        // token (bound to its pod, as long as its run may take): not judged.
        assert_eq!(
            admit_token("default", json!({"expirationSeconds": 86_400})),
            Ok(())
        );
        assert_eq!(
            admit_token(
                "vigil-runner-shop",
                json!({"expirationSeconds": 7200, "boundObjectRef": {"kind": "Pod", "name": "p"}})
            ),
            Ok(())
        );

        // Both policies leave kube-system alone, and bind with Deny.
        let docs = render(&[IMAGE.to_string()], &[]);
        assert_eq!(docs.len(), 4);
        for i in [0, 2] {
            let sel =
                &docs[i]["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"][0];
            assert_eq!(
                (sel["operator"].as_str(), sel["values"][0].as_str()),
                (Some("NotIn"), Some("kube-system"))
            );
            assert_eq!(
                docs[i + 1]["spec"]["policyName"],
                docs[i]["metadata"]["name"]
            );
            assert_eq!(docs[i + 1]["spec"]["validationActions"], json!(["Deny"]));
        }
    }
}
