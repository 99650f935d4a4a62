//! What a run's signed audit trail says it did, in the terms of the API
//! server's audit events: which identity, which verb on which object, when,
//! and with which credential, command or image.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::audit::{COMMAND_SHA256, CREDENTIAL_ID, Entry, IMAGE};

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

/// The plural resource of a kind vigil creates.
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
        let mut words = e.object.split_whitespace();
        let first = words.next().unwrap_or_default();
        let (verbs, resource, place, cardinality): (&[&str], String, Option<&str>, _) =
            match (e.verb.as_str(), first) {
                ("create", "token") => {
                    // "token for serviceaccount NS/NAME (…)"
                    let place = words.nth(2);
                    if let Some((ns, sa)) = place.and_then(ns_name) {
                        t.service_accounts
                            .insert(format!("system:serviceaccount:{ns}:{sa}"));
                    }
                    (
                        &["create"],
                        "serviceaccounts/token".into(),
                        place,
                        Cardinality::One,
                    )
                }
                ("create", "selfsubjectreview") => (
                    &["create"],
                    "selfsubjectreviews".into(),
                    None,
                    Cardinality::One,
                ),
                ("check", "rights") => {
                    // "rights of serviceaccount NS/NAME (…)": the reviews
                    // are made with the run's token.
                    let place = words.nth(2);
                    let Some((ns, sa)) = place.and_then(ns_name) else {
                        t.unmatched_kinds += 1;
                        continue;
                    };
                    t.expected.push(Expected {
                        line: e.seq,
                        identity: format!("system:serviceaccount:{ns}:{sa}"),
                        verbs: &["create"],
                        resource: "selfsubjectaccessreviews".into(),
                        namespace: String::new(),
                        name: String::new(),
                        end,
                        duration_ms: e.duration_ms,
                        cardinality: Cardinality::Many,
                        ok: e.outcome == "ok",
                        attributes: e.attributes.clone(),
                        text: e.object.clone(),
                    });
                    continue;
                }
                ("create" | "delete", kind) if plural(kind).is_some() => {
                    let verbs: &[&str] = if e.verb == "create" {
                        &["create"]
                    } else {
                        &["delete"]
                    };
                    let place = words.next();
                    if e.verb == "delete" && kind == "secret" && e.outcome == "ok" {
                        t.anchors_deleted = Some(t.anchors_deleted.map_or(end, |d| d.max(end)));
                    }
                    (
                        verbs,
                        plural(kind).unwrap_or_default().into(),
                        place,
                        Cardinality::One,
                    )
                }
                // WebSocket exec is a GET (`get`), SPDY a POST (`create`).
                ("exec", "pods/exec") => (
                    &["get", "create"],
                    "pods/exec".into(),
                    words.next(),
                    Cardinality::One,
                ),
                ("patch", "pods/ephemeralcontainers") => {
                    if let Some(i) = e.attributes.get(IMAGE) {
                        t.images.insert(i.clone());
                    }
                    (
                        &["patch", "update"],
                        "pods/ephemeralcontainers".into(),
                        words.next(),
                        Cardinality::One,
                    )
                }
                ("watch", "pods") => (
                    &["watch", "list", "get"],
                    "pods".into(),
                    words.next(),
                    Cardinality::Many,
                ),
                ("get", "pods/log") => {
                    (&["get"], "pods/log".into(), words.next(), Cardinality::One)
                }
                _ => {
                    t.unmatched_kinds += 1;
                    continue;
                }
            };
        let (namespace, name) = place.and_then(ns_name).unwrap_or_default();
        if resource.starts_with("pods") {
            t.pods.insert((namespace.clone(), name.clone()));
        }
        t.expected.push(Expected {
            line: e.seq,
            identity: e.identity.clone(),
            verbs,
            resource,
            namespace,
            name,
            end,
            duration_ms: e.duration_ms,
            cardinality,
            ok: e.outcome == "ok",
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
