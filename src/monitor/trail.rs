//! What a run's signed audit trail says it did, in the terms of the API
//! server's audit events: which identity, which verb on which object, when,
//! and with which credential, command or image.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::audit::{COMMAND_SHA256, CREDENTIAL_ID, Call, Entry, IMAGE};

/// How many API requests one trail line stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Exactly one (a create, a delete, an exec, a patch).
    One,
    /// Any number, at least one: a watch that re-lists, or the
    /// SelfSubjectAccessReviews of a rights check polled until granted.
    Many,
}

/// One API request (or group of them) the trail records.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Line number in the trail (1-based).
    pub line: u64,
    /// `caller`, or the run's `system:serviceaccount:NS:NAME`.
    pub identity: String,
    /// Audit verbs the request may be logged with.
    pub verbs: &'static [&'static str],
    /// `resource` or `resource/subresource`, as the event's objectRef.
    pub resource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name (empty: not checked, e.g. SelfSubjectAccessReviews).
    pub name: String,
    /// When the operation finished, and how long it took.
    pub end: DateTime<Utc>,
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// One request or many.
    pub cardinality: Cardinality,
    /// Whether the trail says it succeeded.
    pub ok: bool,
    /// The exec's argv digest, the minted credential, the added image.
    pub attributes: BTreeMap<String, String>,
    /// The trail line's own words, for messages.
    pub text: String,
}

/// The run as its trail describes it.
#[derive(Debug, Default)]
pub struct RunTrail {
    /// Requests the trail records.
    pub expected: Vec<Expected>,
    /// Credential ids of the tokens vigil minted.
    pub credential_ids: BTreeSet<String>,
    /// The run's ServiceAccounts, as usernames.
    pub service_accounts: BTreeSet<String>,
    /// `(namespace, pod)` vigil reached into.
    pub pods: BTreeSet<(String, String)>,
    /// Images vigil added as ephemeral containers.
    pub images: BTreeSet<String>,
    /// The caller's username, when the trail recorded a SelfSubjectReview.
    pub caller: Option<String>,
    /// When the last anchor Secret was deleted (the tokens die with it).
    pub anchors_deleted: Option<DateTime<Utc>>,
    /// Lines that name no API request vigil knows how to match.
    pub unmatched_kinds: u64,
}

/// The plural resource of a kind vigil creates (trails before
/// `Entry::call` name the kind).
fn plural(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "serviceaccount" => "serviceaccounts",
        "role" => "roles",
        "rolebinding" => "rolebindings",
        "secret" => "secrets",
        _ => return None,
    })
}

/// `ns/name[/container]` → (ns, name).
fn ns_name(s: &str) -> Option<(String, String)> {
    let mut it = s.split('/');
    let ns = it.next()?;
    let name = it.next()?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_string(), name.to_string()))
}

/// The request a line stands for: its typed call, or, for trails written
/// before vigil recorded one, the call its words name.
fn call_of(e: &Entry) -> Option<Call> {
    match &e.call {
        Some(c) => Some(c.clone()),
        None => legacy_call(&e.verb, &e.object),
    }
}

/// The call a line's words name (`token for serviceaccount NS/NAME (…)`,
/// `pods/exec NS/POD/CONTAINER (…)`, …), for trails that carry no
/// `call`. A line whose place cannot be read keeps empty names, as the
/// words said.
fn legacy_call(verb: &str, object: &str) -> Option<Call> {
    let mut words = object.split_whitespace();
    let first = words.next().unwrap_or_default();
    let place = |w: Option<&str>| w.and_then(ns_name).unwrap_or_default();
    let container = |w: Option<&str>| {
        w.and_then(|p| p.split('/').nth(2))
            .unwrap_or_default()
            .to_string()
    };
    Some(match (verb, first) {
        ("create", "token") => {
            let (namespace, service_account) = place(words.nth(2));
            Call::Token {
                namespace,
                service_account,
            }
        }
        ("create", "selfsubjectreview") => Call::WhoAmI,
        ("check", "rights") => {
            // Made with the run's token: without its name, nothing to match.
            let (namespace, service_account) = words.nth(2).and_then(ns_name)?;
            Call::TokenRights {
                namespace,
                service_account,
            }
        }
        ("create" | "delete", kind) => {
            let resource = plural(kind)?.to_string();
            let (namespace, name) = place(words.next());
            if verb == "create" {
                Call::Create {
                    resource,
                    namespace,
                    name,
                }
            } else {
                Call::Delete {
                    resource,
                    namespace,
                    name,
                }
            }
        }
        ("exec", "pods/exec") => {
            let w = words.next();
            let (namespace, pod) = place(w);
            Call::Exec {
                namespace,
                pod,
                container: container(w),
            }
        }
        ("patch", "pods/ephemeralcontainers") => {
            let (namespace, pod) = place(words.next());
            Call::AddEphemeral { namespace, pod }
        }
        ("watch", "pods") => {
            let (namespace, pod) = place(words.next());
            Call::WatchPod { namespace, pod }
        }
        ("get", "pods/log") => {
            let w = words.next();
            let (namespace, pod) = place(w);
            Call::PodLog {
                namespace,
                pod,
                container: container(w),
            }
        }
        _ => return None,
    })
}

/// What the API server must have seen for one call: the audit verbs it
/// may log, the resource, namespace and name, and how many requests.
/// `None` for a call that is not matched with events (the caller's own
/// access reviews, which the API server answers without an object).
fn expected_request(
    call: &Call,
) -> Option<(
    &'static [&'static str],
    &'static str,
    &str,
    &str,
    Cardinality,
)> {
    use Cardinality::{Many, One};
    Some(match call {
        Call::WhoAmI => (&["create"], "selfsubjectreviews", "", "", One),
        Call::CallerRights => return None,
        Call::TokenRights { .. } => (&["create"], "selfsubjectaccessreviews", "", "", Many),
        Call::Token {
            namespace,
            service_account,
        } => (
            &["create"],
            "serviceaccounts/token",
            namespace,
            service_account,
            One,
        ),
        Call::Create {
            resource,
            namespace,
            name,
        } => (&["create"], known_resource(resource)?, namespace, name, One),
        Call::Delete {
            resource,
            namespace,
            name,
        } => (&["delete"], known_resource(resource)?, namespace, name, One),
        // WebSocket exec is a GET (`get`), SPDY a POST (`create`).
        Call::Exec { namespace, pod, .. } => (&["get", "create"], "pods/exec", namespace, pod, One),
        Call::AddEphemeral { namespace, pod } => (
            &["patch", "update"],
            "pods/ephemeralcontainers",
            namespace,
            pod,
            One,
        ),
        Call::WatchPod { namespace, pod } => {
            (&["watch", "list", "get"], "pods", namespace, pod, Many)
        }
        Call::PodLog { namespace, pod, .. } => (&["get"], "pods/log", namespace, pod, One),
    })
}

/// The resources vigil creates and deletes; any other name in a trail is
/// not one of its requests.
fn known_resource(resource: &str) -> Option<&'static str> {
    ["serviceaccounts", "roles", "rolebindings", "secrets"]
        .into_iter()
        .find(|r| *r == resource)
}

/// Read the trail lines into what the API server must have seen.
pub fn read(lines: &[Entry]) -> RunTrail {
    let mut t = RunTrail::default();
    for e in lines {
        let end = match DateTime::parse_from_rfc3339(&e.time) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                t.unmatched_kinds += 1;
                continue;
            }
        };
        if let Some(id) = e.attributes.get(CREDENTIAL_ID) {
            t.credential_ids.insert(id.clone());
        }
        if e.identity.starts_with("system:serviceaccount:") {
            t.service_accounts.insert(e.identity.clone());
        }
        if let Some(u) = e.attributes.get("username") {
            t.caller = Some(u.clone());
        }
        let ok = e.outcome == "ok";
        let call = call_of(e);
        let Some((verbs, resource, namespace, name, cardinality)) =
            call.as_ref().and_then(expected_request)
        else {
            t.unmatched_kinds += 1;
            continue;
        };
        let mut identity = e.identity.clone();
        match call.as_ref() {
            Some(Call::Token {
                namespace,
                service_account,
            }) if !namespace.is_empty() => {
                t.service_accounts.insert(format!(
                    "system:serviceaccount:{namespace}:{service_account}"
                ));
            }
            // The reviews are made with the run's token.
            Some(Call::TokenRights {
                namespace,
                service_account,
            }) => identity = format!("system:serviceaccount:{namespace}:{service_account}"),
            Some(Call::Delete { resource, .. }) if resource == "secrets" && ok => {
                t.anchors_deleted = Some(t.anchors_deleted.map_or(end, |d| d.max(end)));
            }
            Some(Call::AddEphemeral { .. }) => {
                if let Some(i) = e.attributes.get(IMAGE) {
                    t.images.insert(i.clone());
                }
            }
            _ => {}
        }
        if resource.starts_with("pods") {
            t.pods.insert((namespace.to_string(), name.to_string()));
        }
        t.expected.push(Expected {
            line: e.seq,
            identity,
            verbs,
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            end,
            duration_ms: e.duration_ms,
            cardinality,
            ok,
            attributes: e.attributes.clone(),
            text: e.object.clone(),
        });
    }
    t
}

/// The argv digest the trail records for an exec (see
/// [`crate::audit::command_sha256`]).
pub fn command_digest(e: &Expected) -> Option<&str> {
    e.attributes.get(COMMAND_SHA256).map(String::as_str)
}
