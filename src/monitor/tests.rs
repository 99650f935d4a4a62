//! Reconciliation over hand-made trails and events: the cases a real run
//! against the test API server cannot stage (a log that misses the window,
//! a foreign ephemeral image, a cluster without credential ids,
//! impersonation of the run's ServiceAccount).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::audit::{CREDENTIAL_ID, Entry, IMAGE};

const SA: &str = "system:serviceaccount:team-a:vigil-run";
const JTI: &str = "JTI=11111111-2222-3333-4444-555555555555";

fn entry(seq: u64, time: &str, identity: &str, verb: &str, object: &str) -> Entry {
    Entry {
        seq,
        prev: String::new(),
        run_id: "r".into(),
        scan_id: None,
        time: time.into(),
        identity: identity.into(),
        verb: verb.into(),
        object: object.into(),
        outcome: "ok".into(),
        duration_ms: 100,
        call: None,
        attributes: BTreeMap::new(),
    }
}

/// Every request vigil records, as the access and approach code record it
/// (the typed call and the line's words): `audit-check` expects the same
/// API requests from the typed call as from the words of a trail written
/// before calls were recorded, and reads the call alone when the words say
/// something else.
#[test]
fn a_trails_typed_calls_expect_what_its_words_did() {
    use crate::audit::{AuditLog, Call};
    let (ns, sa) = (String::from("team-a"), String::from("vigil-run-1"));
    let calls: Vec<(Call, String)> = vec![
        (Call::WhoAmI, "selfsubjectreview (who the caller is)".into()),
        (
            Call::CallerRights,
            "the caller's own rights for the run's objects in 1 namespace(s)".into(),
        ),
        (
            Call::TokenRights {
                namespace: ns.clone(),
                service_account: sa.clone(),
            },
            format!(
                "rights of serviceaccount {ns}/{sa} (4 selfsubjectaccessreviews, until granted)"
            ),
        ),
        (
            Call::Token {
                namespace: ns.clone(),
                service_account: sa.clone(),
            },
            format!("token for serviceaccount {ns}/{sa} (ttl 600s, bound to its anchor)"),
        ),
        (
            Call::Create {
                resource: "rolebindings".into(),
                namespace: ns.clone(),
                name: sa.clone(),
            },
            format!("rolebinding {ns}/{sa}"),
        ),
        (
            Call::Delete {
                resource: "secrets".into(),
                namespace: ns.clone(),
                name: "anchor".into(),
            },
            format!("secret {ns}/anchor (a leftover of an interrupted run)"),
        ),
        (
            Call::Exec {
                namespace: ns.clone(),
                pod: "web".into(),
                container: "app".into(),
            },
            format!("pods/exec {ns}/web/app (gatherer) (attempt 2)"),
        ),
        (
            Call::AddEphemeral {
                namespace: ns.clone(),
                pod: "web".into(),
            },
            format!("pods/ephemeralcontainers {ns}/web (add vigil-probe-1 targeting app)"),
        ),
        (
            Call::WatchPod {
                namespace: ns.clone(),
                pod: "web".into(),
            },
            format!("pods {ns}/web (until vigil-probe-1 terminates)"),
        ),
        (
            Call::PodLog {
                namespace: ns.clone(),
                pod: "web".into(),
                container: "vigil-probe-1".into(),
            },
            format!("pods/log {ns}/web/vigil-probe-1"),
        ),
    ];
    let log = AuditLog::new("r");
    for (call, words) in &calls {
        log.record(
            None,
            "caller",
            call.clone(),
            words,
            Ok(()),
            std::time::Instant::now(),
            BTreeMap::new(),
        );
    }
    let (bytes, _, _) = log.finish();
    let typed: Vec<Entry> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(typed.iter().all(|e| e.call.is_some()));
    let words_only: Vec<Entry> = typed
        .iter()
        .cloned()
        .map(|e| Entry { call: None, ..e })
        .collect();
    let shape = |t: &trail::RunTrail| -> Vec<String> {
        t.expected
            .iter()
            .map(|x| {
                format!(
                    "{} {} {:?} {} {}/{} {:?}",
                    x.line, x.identity, x.verbs, x.resource, x.namespace, x.name, x.cardinality
                )
            })
            .collect()
    };
    let (a, b) = (trail::read(&typed), trail::read(&words_only));
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(
        a.expected.len(),
        calls.len() - 1,
        "all but the caller's own reviews"
    );
    assert_eq!(
        (
            &a.service_accounts,
            &a.pods,
            a.anchors_deleted,
            a.unmatched_kinds
        ),
        (
            &b.service_accounts,
            &b.pods,
            b.anchors_deleted,
            b.unmatched_kinds
        )
    );
    assert!(a.anchors_deleted.is_some());
    // The typed call decides, whatever the words say.
    let misleading: Vec<Entry> = typed
        .iter()
        .cloned()
        .map(|e| Entry {
            object: "pods/exec other/pod/c".into(),
            verb: "exec".into(),
            ..e
        })
        .collect();
    assert_eq!(
        shape(&trail::read(&misleading))
            .iter()
            .map(|s| s.split_once(' ').unwrap().1.to_string())
            .collect::<Vec<_>>(),
        shape(&a)
            .iter()
            .map(|s| s.split_once(' ').unwrap().1.to_string())
            .collect::<Vec<_>>()
    );
}

/// A run from 10:00:00 to 10:00:10 that minted one token and added one
/// ephemeral container with the pinned image.
fn run() -> Run {
    let mut token = entry(
        1,
        "2026-01-01T10:00:01Z",
        "caller",
        "create",
        "token for serviceaccount team-a/vigil-run (ttl 600s)",
    );
    token.attributes.insert(CREDENTIAL_ID.into(), JTI.into());
    let mut patch = entry(
        2,
        "2026-01-01T10:00:05Z",
        SA,
        "patch",
        "pods/ephemeralcontainers team-a/web-0 (add vigil-abc targeting app)",
    );
    patch
        .attributes
        .insert(IMAGE.into(), "registry.example/vigil@sha256:aa".into());
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    Run {
        run_id: "r".into(),
        started: t("2026-01-01T10:00:00Z"),
        ended: t("2026-01-01T10:00:10Z"),
        trail: trail::read(&[token, patch]),
    }
}

fn event(time: &str, user: &str, verb: &str, object: Value, extra: Value) -> Value {
    let mut e = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": uuid::Uuid::new_v4().to_string(), "stage": "ResponseComplete",
        "requestURI": "/", "verb": verb, "user": {"username": user},
        "sourceIPs": ["10.0.0.1"], "objectRef": object,
        "responseStatus": {"code": 200}, "requestReceivedTimestamp": time,
    });
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn token_event(time: &str) -> Value {
    event(
        time,
        "admin",
        "create",
        json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "team-a", "name": "vigil-run"}),
        json!({"responseStatus": {"code": 201}, "annotations": {"authentication.kubernetes.io/issued-credential-id": JTI}}),
    )
}

fn patch_event(time: &str, image: &str, with_object: bool) -> Value {
    let extra = if with_object {
        json!({"user": {"username": SA, "extra": {"authentication.kubernetes.io/credential-id": [JTI]}},
               "requestObject": {"spec": {"ephemeralContainers": [{"name": "vigil-abc", "image": image}]}}})
    } else {
        json!({"user": {"username": SA, "extra": {"authentication.kubernetes.io/credential-id": [JTI]}}})
    };
    event(
        time,
        SA,
        "patch",
        json!({"resource": "pods", "subresource": "ephemeralcontainers", "namespace": "team-a", "name": "web-0"}),
        extra,
    )
}

fn log(name: &str, events: &[Value]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn codes(r: &Report) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn a_matching_log_is_clean() {
    let p = log(
        "clean.log",
        &[
            token_event("2026-01-01T09:59:59Z"),
            patch_event(
                "2026-01-01T10:00:05Z",
                "registry.example/vigil@sha256:aa",
                true,
            ),
            token_event("2026-01-01T10:00:12Z"),
        ],
    );
    let r = check(&run(), &[p]).unwrap();
    // The second TokenRequest issued the same id: one token, logged twice
    // by a replaying proxy, is still the run's own.
    assert_eq!(codes(&r), Vec::<&str>::new(), "{:#?}", r.findings);
    assert_eq!((r.trail_matched, r.trail_lines), (2, 2));
}

#[test]
fn a_log_that_misses_the_window_is_a_coverage_gap() {
    let p = log(
        "late.log",
        &[patch_event(
            "2026-01-01T10:00:07Z",
            "registry.example/vigil@sha256:aa",
            true,
        )],
    );
    let r = check(&run(), &[p]).unwrap();
    let c = codes(&r);
    assert!(c.contains(&"coverage-gap"), "{c:?}");
    // The TokenRequest line has no event either.
    assert!(c.contains(&"trail-without-event"), "{c:?}");
    assert!(r.worst() >= Some(Severity::Medium));
}

#[test]
fn a_foreign_ephemeral_image_is_critical_and_a_missing_object_a_policy_gap() {
    let p = log(
        "image.log",
        &[
            token_event("2026-01-01T09:59:59Z"),
            patch_event("2026-01-01T10:00:05Z", "evil.example/shell:latest", true),
            token_event("2026-01-01T10:00:12Z"),
        ],
    );
    let r = check(&run(), &[p]).unwrap();
    assert_eq!(
        codes(&r),
        vec!["foreign-ephemeral-image"],
        "{:#?}",
        r.findings
    );
    assert_eq!(r.worst(), Some(Severity::Critical));
    assert!(r.findings[0].message.contains("evil.example/shell:latest"));
    let p = log(
        "metadata-only.log",
        &[
            token_event("2026-01-01T09:59:59Z"),
            patch_event("2026-01-01T10:00:05Z", "", false),
            token_event("2026-01-01T10:00:12Z"),
        ],
    );
    let r = check(&run(), &[p]).unwrap();
    assert_eq!(codes(&r), vec!["policy-gap"], "{:#?}", r.findings);
}

/// A clean run on a cluster that logs no credential ids (before 1.29, or
/// the feature off): the run's own TokenRequest is tied by user, verb,
/// object and time; the only finding is the low policy gap.
#[test]
fn a_clean_run_without_credential_ids_has_only_the_low_policy_gap() {
    let mut token = token_event("2026-01-01T09:59:59Z");
    token["annotations"] = json!({});
    let mut patch = patch_event(
        "2026-01-01T10:00:05Z",
        "registry.example/vigil@sha256:aa",
        true,
    );
    patch["user"] = json!({"username": SA});
    let p = log("no-ids.log", &[token, patch]);
    let r = check(&run(), &[p]).unwrap();
    assert_eq!(codes(&r), vec!["policy-gap"], "{:#?}", r.findings);
    assert_eq!(r.findings[0].severity, Severity::Low, "{:#?}", r.findings);
}

#[test]
fn impersonating_the_run_account_and_untied_tokens_are_found() {
    // No credential ids at all (an old cluster), and someone impersonating
    // the run's ServiceAccount to list secrets.
    let mut token = token_event("2026-01-01T09:59:59Z");
    token["annotations"] = json!({});
    let mut tail = token_event("2026-01-01T10:00:12Z");
    tail["annotations"] = json!({});
    let mut patch = patch_event(
        "2026-01-01T10:00:05Z",
        "registry.example/vigil@sha256:aa",
        true,
    );
    patch["user"] = json!({"username": SA});
    let sneaky = event(
        "2026-01-01T10:00:06Z",
        "mallory",
        "list",
        json!({"resource": "secrets", "namespace": "team-a"}),
        json!({"impersonatedUser": {"username": SA}}),
    );
    let p = log("old.log", &[token, patch, sneaky, tail]);
    let r = check(&run(), &[p]).unwrap();
    let c = codes(&r);
    assert!(c.contains(&"unrecorded-request"), "{c:?}");
    assert!(c.contains(&"policy-gap"), "{c:?}");
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == Code::UnrecordedRequest && f.message.contains("list secrets")),
        "{:#?}",
        r.findings
    );
}

#[test]
fn hostile_text_in_events_is_escaped_in_messages() {
    let mut e = patch_event("2026-01-01T10:00:05Z", "evil\u{1b}[2J.example/x", true);
    e["user"]["username"] = json!(SA);
    let p = log(
        "escape.log",
        &[
            token_event("2026-01-01T09:59:59Z"),
            e,
            token_event("2026-01-01T10:00:12Z"),
        ],
    );
    let r = check(&run(), &[p]).unwrap();
    let table = render_table(&r);
    assert!(!table.contains('\u{1b}'), "{table}");
}

/// A stolen token's exec that reuses the audit ID of one of the run's own
/// requests (the client sets `Audit-ID`) is examined on its own, and the
/// reuse itself is reported.
#[test]
fn a_reused_audit_id_hides_nothing() {
    let mut patch = patch_event(
        "2026-01-01T10:00:05Z",
        "registry.example/vigil@sha256:aa",
        true,
    );
    patch["auditID"] = json!("decoy");
    let mut exec = event(
        "2026-01-01T10:00:06Z",
        SA,
        "create",
        json!({"resource": "pods", "subresource": "exec", "namespace": "team-a", "name": "web-0"}),
        json!({"user": {"username": SA, "extra": {"authentication.kubernetes.io/credential-id": [JTI]}},
               "requestURI": "/api/v1/namespaces/team-a/pods/web-0/exec?command=cat&command=%2Fetc%2Fshadow&container=app"}),
    );
    exec["auditID"] = json!("decoy");
    let p = log(
        "reused-id.log",
        &[token_event("2026-01-01T09:59:59Z"), patch, exec],
    );
    let r = check(&run(), &[p]).unwrap();
    let c = codes(&r);
    assert!(c.contains(&"audit-id-reuse"), "{:#?}", r.findings);
    assert!(
        c.contains(&"unrecorded-request") || c.contains(&"foreign-exec-command"),
        "the exec was hidden behind the decoy: {:#?}",
        r.findings
    );
}

/// `foreign-source` judges the address the API server saw (the last of
/// `sourceIPs`), not an X-Forwarded-For entry the client wrote.
#[test]
fn a_spoofed_forwarded_for_is_not_the_source() {
    let mut patch = patch_event(
        "2026-01-01T10:00:05Z",
        "registry.example/vigil@sha256:aa",
        true,
    );
    // The client claims the runner's address; the API server saw another.
    patch["sourceIPs"] = json!(["10.0.0.1", "203.0.113.9"]);
    let p = log("spoofed.log", &[token_event("2026-01-01T09:59:59Z"), patch]);
    let r = check(&run(), &[p]).unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.code.as_str() == "foreign-source")
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert!(f.message.contains("203.0.113.9"), "{}", f.message);
}
