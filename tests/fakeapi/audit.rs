//! The API server's audit log: one `audit.k8s.io/v1` Event per request and
//! stage, at the level the configured audit Policy gives it (first matching
//! rule; no match: not logged), as the log backend writes them (JSON lines).
//!
//! Sources: `staging/src/k8s.io/apiserver/pkg/endpoints/filters/audit.go`
//! (stages: ResponseStarted only for long-running requests, then
//! ResponseComplete), `.../pkg/audit/policy/checker.go` (first match wins),
//! `.../pkg/audit/request.go` (objectRef; request and response objects only
//! at Request/RequestResponse), `.../pkg/endpoints/request/requestinfo.go`
//! (verbs; a `metadata.name` field selector names the object),
//! `staging/src/k8s.io/apimachinery/pkg/util/net/http.go` (`sourceIPs`:
//! X-Forwarded-For, X-Real-Ip, then the peer unless it already ends the
//! list), `.../pkg/endpoints/filters/with_audit_init.go` (the client's
//! `Audit-ID` header becomes the `auditID`), and KEP-4193
//! (`pkg/registry/core/serviceaccount/storage/token.go`: the TokenRequest
//! event's `authentication.kubernetes.io/issued-credential-id`;
//! `staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go`:
//! `user.extra["authentication.kubernetes.io/credential-id"] = ["JTI=…"]`).

use super::*;

/// What the audit filter knows of one request when it ends.
pub(super) struct Seen<'a> {
    pub method: &'a str,
    pub uri: &'a hyper::Uri,
    pub identity: Option<&'a str>,
    pub credential_id: Option<String>,
    /// Whether the server logs credential ids at all (1.30 and later).
    pub credential_ids: bool,
    pub source_ips: Vec<String>,
    /// The client's `Audit-ID` header, which the API server adopts.
    pub audit_id: Option<String>,
    pub user_agent: Option<String>,
    pub status: u16,
    pub response: Option<Value>,
    /// The request's body, when a handler read one.
    pub request: Option<Value>,
    pub received: chrono::DateTime<chrono::Utc>,
}

/// The `jti` of a token the server issued, as a credential id.
pub(super) fn credential_id(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(format!("JTI={}", claims["jti"].as_str()?))
}

/// `sourceIPs` as the API server computes them.
pub(super) fn source_ips(headers: &hyper::HeaderMap, peer: std::net::IpAddr) -> Vec<String> {
    let mut out: Vec<String> = headers
        .get("x-forwarded-for")
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(real) = headers
        .get("x-real-ip")
        .and_then(|h| h.to_str().ok())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        && !out.iter().any(|s| s == real)
    {
        out.push(real.to_string());
    }
    // The peer is appended unless it already ends the list
    // (apimachinery `net.SourceIPs`): it is always the last entry, the one
    // no client can choose.
    let peer = peer.to_string();
    if out.last() != Some(&peer) {
        out.push(peer);
    }
    out
}

/// The request's object reference and verb (`requestinfo.go`).
fn request_info(method: &str, uri: &hyper::Uri, response: Option<&Value>) -> (String, Value) {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => ("", "", &parts[..0]),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    let resource = rest.first().copied().unwrap_or_default();
    let mut name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).copied();
    let params = super::routes::query_params(uri);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if name.is_none()
        && let Some(sel) = param("fieldSelector")
        && let Some(n) = sel
            .split(',')
            .find_map(|r| r.strip_prefix("metadata.name="))
    {
        name = Some(n.to_string());
    }
    let watch = matches!(param("watch").as_deref(), Some("true" | "1"));
    let verb = match method {
        "GET" if watch => "watch",
        "GET" if rest.len() >= 2 => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if rest.len() >= 2 => "delete",
        "DELETE" => "deletecollection",
        _ => "unknown",
    };
    if verb == "create" && name.is_none() {
        // LogRequestObject names a created object from its metadata.
        name = response
            .and_then(|r| r["metadata"]["name"].as_str())
            .map(str::to_string);
    }
    let mut object = json!({"resource": resource, "apiVersion": version});
    if !group.is_empty() {
        object["apiGroup"] = json!(group);
    }
    if let Some(ns) = namespace {
        object["namespace"] = json!(ns);
    }
    if let Some(n) = name {
        object["name"] = json!(n);
    }
    if let Some(s) = subresource {
        object["subresource"] = json!(s);
    }
    (verb.to_string(), object)
}

/// The level of the first rule that matches (`checker.go`); `None`: the
/// request is not audited.
///
/// A rule naming `nonResourceURLs` matches only requests for no resource
/// (`/healthz`, `/version`…), by exact path or a `*`-ended prefix; one
/// naming `resources` matches only resource requests (`ruleMatches`,
/// `ruleMatchesNonResource`, `ruleMatchesResource` in `checker.go`).
fn level(policy: &Value, verb: &str, object: &Value, user: &str, path: &str) -> Option<String> {
    let resource = object["resource"].as_str().unwrap_or_default();
    let is_resource = !resource.is_empty();
    let full = match object["subresource"].as_str() {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    let group = object["apiGroup"].as_str().unwrap_or_default();
    for rule in policy["rules"].as_array()? {
        let listed = |key: &str, v: &str| {
            rule[key]
                .as_array()
                .is_none_or(|l| l.iter().any(|x| x == v))
        };
        if !listed("verbs", verb) || !listed("users", user) {
            continue;
        }
        if let Some(urls) = rule["nonResourceURLs"].as_array() {
            let hit = !is_resource
                && urls
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|u| match u.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == u,
                    });
            if hit {
                return rule["level"].as_str().map(str::to_string);
            }
            continue;
        }
        if rule["resources"].is_array() && !is_resource {
            continue;
        }
        let resources_match = rule["resources"].as_array().is_none_or(|groups| {
            groups.iter().any(|g| {
                g["group"].as_str().unwrap_or_default() == group
                    && g["resources"]
                        .as_array()
                        .is_none_or(|l| l.iter().any(|r| r == full.as_str() || r == "*"))
            })
        });
        if resources_match {
            return rule["level"].as_str().map(str::to_string);
        }
    }
    None
}

/// The events for one request (empty when the policy does not audit it).
pub(super) fn events(policy: &Value, seen: Seen<'_>) -> Vec<Value> {
    let (verb, object) = request_info(seen.method, seen.uri, seen.response.as_ref());
    let username = seen.identity.unwrap_or_default();
    let Some(level) = level(policy, &verb, &object, username, seen.uri.path()) else {
        return Vec::new();
    };
    if level == "None" {
        return Vec::new();
    }
    let mut user = json!({"username": username});
    if let Some(id) = &seen.credential_id {
        user["extra"] = json!({"authentication.kubernetes.io/credential-id": [id]});
    }
    if username.starts_with("system:serviceaccount:") {
        let ns = username.split(':').nth(2).unwrap_or_default();
        user["groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated"
        ]);
    } else if !username.is_empty() {
        user["groups"] = json!(["system:masters", "system:authenticated"]);
    }
    let mut annotations = serde_json::Map::new();
    if seen.identity.is_some() {
        let decision = if seen.status == 403 {
            "forbid"
        } else {
            "allow"
        };
        annotations.insert("authorization.k8s.io/decision".into(), json!(decision));
        annotations.insert("authorization.k8s.io/reason".into(), json!(""));
    }
    if object["subresource"] == "token"
        && seen.credential_ids
        && seen.status == 201
        && let Some(id) = seen
            .response
            .as_ref()
            .and_then(|r| r["status"]["token"].as_str())
            .and_then(credential_id)
    {
        annotations.insert(
            "authentication.kubernetes.io/issued-credential-id".into(),
            json!(id),
        );
    }
    let omitted = |stage: &str| {
        policy["omitStages"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == stage))
    };
    let long_running = verb == "watch"
        || matches!(
            object["subresource"].as_str(),
            Some("exec" | "attach" | "portforward" | "proxy")
        );
    let now = chrono::Utc::now();
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let base = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": seen.audit_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "requestURI": seen.uri.to_string(),
        "verb": verb,
        "user": user,
        "sourceIPs": seen.source_ips,
        "objectRef": object,
        "responseStatus": {"metadata": {}, "code": seen.status},
        "requestReceivedTimestamp": ts(seen.received),
        "annotations": annotations,
    });
    let mut base = base;
    if let Some(ua) = &seen.user_agent {
        base["userAgent"] = json!(ua);
    }
    let mut out = Vec::new();
    for stage in ["RequestReceived", "ResponseStarted", "ResponseComplete"] {
        let applies = match stage {
            "ResponseStarted" => long_running,
            _ => true,
        };
        if !applies || omitted(stage) {
            continue;
        }
        let mut e = base.clone();
        e["stage"] = json!(stage);
        e["stageTimestamp"] = json!(ts(now));
        if stage == "RequestReceived" {
            e.as_object_mut().unwrap().remove("responseStatus");
        }
        // The request object from level Request on, the response object
        // at RequestResponse (`staging/src/k8s.io/apiserver/pkg/audit/request.go`,
        // `LogRequestObject`, `LogResponseObject`).
        if stage != "RequestReceived"
            && matches!(level.as_str(), "Request" | "RequestResponse")
            && let Some(r) = &seen.request
        {
            e["requestObject"] = r.clone();
        }
        if stage == "ResponseComplete"
            && level == "RequestResponse"
            && let Some(r) = &seen.response
        {
            e["responseObject"] = r.clone();
        }
        out.push(e);
    }
    out
}
