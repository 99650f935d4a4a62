//! RBAC: rules of an identity (with the authorizer cache delay), authorization of each request, and the escalation and bind checks on Role and RoleBinding creates.

use super::*;

/// Whether an RBAC object has reached the authorizer's cache.
pub(super) fn rbac_visible(st: &State, key: &(String, String, String)) -> bool {
    st.rbac_created
        .get(key)
        .is_none_or(|at| at.elapsed() >= st.rbac_delay)
}

/// The rules of every Role bound to a ServiceAccount identity in `ns`, as
/// the authorizer sees them (new objects only after the propagation delay).
pub(super) fn rules_of(st: &State, identity: &str, ns: &str) -> Vec<Value> {
    rules_from(st, identity, ns, true)
}

/// The same rules read from storage, as the RBAC registry's escalation
/// checks resolve them (`pkg/registry/rbac/rest/storage_rbac.go` gives
/// them a rule resolver over the registries, not the authorizer's cache).
pub(super) fn stored_rules_of(st: &State, identity: &str, ns: &str) -> Vec<Value> {
    rules_from(st, identity, ns, false)
}

pub(super) fn rules_from(st: &State, identity: &str, ns: &str, cached: bool) -> Vec<Value> {
    let visible = |k: &(String, String, String)| !cached || rbac_visible(st, k);
    let Some(rest) = identity.strip_prefix("system:serviceaccount:") else {
        return vec![];
    };
    let Some((sa_ns, sa)) = rest.split_once(':') else {
        return vec![];
    };
    st.objects
        .iter()
        .filter(|(k, _)| k.0 == "rolebindings" && k.1 == ns && visible(k))
        .filter(|(_, rb)| {
            rb["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == sa_ns
            })
        })
        .filter_map(|(_, rb)| {
            let key = (
                "roles".to_string(),
                ns.to_string(),
                rb["roleRef"]["name"].as_str()?.to_string(),
            );
            visible(&key).then(|| st.objects.get(&key))?
        })
        .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Whether `held` rules grant one (group, resource, verb, name) request.
pub(super) fn rules_allow(
    held: &[Value],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    held.iter().any(|rule| {
        let has = |field: &str, v: &str| {
            rule[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == v || x == "*"))
        };
        has("apiGroups", group)
            && has("resources", resource)
            && has("verbs", verb)
            && match rule["resourceNames"].as_array() {
                None => true,
                Some(names) if names.is_empty() => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            }
    })
}

/// Whether `held` covers every right `rules` grant: RBAC escalation
/// prevention (`ConfirmNoEscalation` in
/// `pkg/registry/rbac/validation/rule.go`). A rule without resourceNames
/// is covered only by held rules without them.
pub(super) fn rules_cover(held: &[Value], rules: &[Value]) -> bool {
    let list = |r: &Value, k: &str| -> Vec<String> {
        r[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    rules.iter().all(|rule| {
        let names = list(rule, "resourceNames");
        let names: Vec<Option<&str>> = if names.is_empty() {
            vec![None]
        } else {
            names.iter().map(|n| Some(n.as_str())).collect()
        };
        list(rule, "apiGroups").iter().all(|g| {
            list(rule, "resources").iter().all(|r| {
                list(rule, "verbs").iter().all(|v| {
                    names.iter().all(|n| match n {
                        Some(_) => rules_allow(held, g, r, v, *n),
                        // Unpinned: only an unpinned held rule covers it.
                        None => held.iter().any(|h| {
                            h["resourceNames"].as_array().is_none_or(Vec::is_empty)
                                && rules_allow(std::slice::from_ref(h), g, r, v, None)
                        }),
                    })
                })
            })
        })
    })
}

/// RBAC for ServiceAccount identities: Roles bound to them in the namespace.
pub(super) fn authorize(
    st: &State,
    identity: &str,
    ns: &str,
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    if identity == "admin" {
        return true;
    }
    rules_allow(&rules_of(st, identity, ns), group, resource, verb, name)
}

/// What the API server checks when a caller without `escalate` creates a
/// Role, or one without `bind` a RoleBinding
/// (`pkg/registry/rbac/role/policybased/storage.go`,
/// `pkg/registry/rbac/rolebinding/policybased/storage.go`): it must hold
/// every right granted; a binding's Role must exist (else NotFound).
pub(super) fn check_rbac_create(
    st: &State,
    identity: &str,
    ns: &str,
    resource: &str,
    obj: &Value,
) -> Result<(), Box<Response<Full<Bytes>>>> {
    let held = stored_rules_of(st, identity, ns);
    let rbac = "rbac.authorization.k8s.io";
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let rules = if resource == "roles" {
        if rules_allow(&held, rbac, "roles", "escalate", Some(name)) {
            return Ok(());
        }
        obj["rules"].as_array().cloned().unwrap_or_default()
    } else {
        let role = obj["roleRef"]["name"].as_str().unwrap_or_default();
        if obj["roleRef"]["kind"] == "Role" && rules_allow(&held, rbac, "roles", "bind", Some(role))
        {
            return Ok(());
        }
        let key = ("roles".to_string(), ns.to_string(), role.to_string());
        match st.objects.get(&key) {
            Some(r) => r["rules"].as_array().cloned().unwrap_or_default(),
            None => {
                return Err(Box::new(respond(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("roles.{rbac} \"{role}\" not found"),
                    ),
                )));
            }
        }
    };
    if rules_cover(&held, &rules) {
        Ok(())
    } else {
        Err(Box::new(respond(
            403,
            &status(
                403,
                "Forbidden",
                &format!(
                    "{resource}.{rbac} \"{name}\" is forbidden: user \"{identity}\" is attempting to grant RBAC permissions not currently held"
                ),
            ),
        )))
    }
}
