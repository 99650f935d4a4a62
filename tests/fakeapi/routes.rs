//! Routing: one HTTP request to the handler of its resource, with authentication, authorization, faults and latency applied.

use super::*;

pub(super) fn matches_selector(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',')
        .filter(|s| !s.is_empty())
        .all(|req| match req.split_once('=') {
            Some((k, v)) => obj["metadata"]["labels"][k] == v,
            None => !obj["metadata"]["labels"][req].is_null(),
        })
}

pub(super) fn query_params(uri: &hyper::Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub(super) fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 3 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's sequence number, carried in its extensions so the body a
/// handler reads can be logged as the audit event's `requestObject`.
#[derive(Clone, Copy)]
pub(super) struct RequestSeq(u64);

/// Request bodies read by handlers, by sequence number, until the audit
/// events of their request are written.
static REQUEST_BODIES: std::sync::LazyLock<Mutex<std::collections::HashMap<u64, Value>>> =
    std::sync::LazyLock::new(Default::default);
static NEXT_SEQ: AtomicU64 = AtomicU64::new(0);

pub(super) async fn handle(
    mut req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    lat: Arc<AtomicU64>,
    notify: Arc<std::sync::Condvar>,
    peer: std::net::IpAddr,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let arrived = Instant::now();
    let received = chrono::Utc::now();
    st.lock().unwrap().arrivals.push(req.uri().to_string());
    notify.notify_all();
    // Authentication happens as the request arrives (the injected latency
    // stands for the work after it).
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let identity = authenticate_cached(&mut st.lock().unwrap(), token.as_deref());
    let spike = take_fault(&mut st.lock().unwrap().faults.latency_spikes);
    if spike {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ms = lat.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let full = req.uri().to_string();
    let uri = req.uri().clone();
    let source_ips = super::audit::source_ips(req.headers(), peer);
    // The client's Audit-ID header is taken as the event's auditID
    // (`staging/src/k8s.io/apiserver/pkg/endpoints/filters/with_audit_init.go`):
    // any client can reuse another request's id.
    let client_audit_id = req
        .headers()
        .get("audit-id")
        .and_then(|h| h.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    // WithValidatingAuditInit: a client's Audit-ID of more than 256
    // characters, or not alphanumeric runs joined by hyphens, is a 400.
    let valid_audit_id = client_audit_id.as_deref().is_none_or(|id| {
        id.len() <= 256
            && id.len() >= 2
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && id.as_bytes()[0].is_ascii_alphanumeric()
            && id.as_bytes()[id.len() - 1].is_ascii_alphanumeric()
    });
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    req.extensions_mut().insert(RequestSeq(seq));
    let caller_fault: Option<u16> = if identity.as_deref() == Some("admin") {
        let mut g = st.lock().unwrap();
        let f = &mut g.faults;
        if f.caller_429 > 0 {
            f.caller_429 -= 1;
            Some(429)
        } else if f.caller_503 > 0 {
            f.caller_503 -= 1;
            Some(503)
        } else {
            None
        }
    } else {
        None
    };
    let resp = if let Some(code) = caller_fault {
        let reason = if code == 429 {
            "TooManyRequests"
        } else {
            "ServiceUnavailable"
        };
        let mut r = respond(
            code,
            &status(
                code,
                reason,
                "the server is currently unable to handle the request",
            ),
        );
        r.headers_mut().insert(
            "retry-after",
            hyper::header::HeaderValue::from_static("3600"),
        );
        r
    } else if valid_audit_id {
        route(req, &st, identity.as_deref()).await
    } else {
        respond(
            400,
            &status(
                400,
                "BadRequest",
                "provided Audit-ID is invalid. Must be less than 256 characters in length and only contain alphanumeric characters separated by hyphens ('-').",
            ),
        )
    };
    let (policy, minor) = {
        let g = st.lock().unwrap();
        (g.audit_policy.clone(), g.minor)
    };
    let resp = match policy {
        None => resp,
        Some(policy) => {
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let events = super::audit::events(
                &policy,
                super::audit::Seen {
                    method: method.as_str(),
                    uri: &uri,
                    identity: identity.as_deref(),
                    // Credential ids are logged from 1.30, where the
                    // ServiceAccountTokenJTI gate is on by default (alpha,
                    // off, in 1.29: pkg/features/kube_features.go).
                    credential_id: identity
                        .as_ref()
                        .and(token.as_deref())
                        .filter(|_| minor >= 30)
                        .and_then(super::audit::credential_id),
                    credential_ids: minor >= 30,
                    source_ips,
                    audit_id: client_audit_id,
                    user_agent,
                    status: parts.status.as_u16(),
                    response: serde_json::from_slice(&bytes).ok(),
                    request: REQUEST_BODIES.lock().unwrap().remove(&seq),
                    received,
                },
            );
            let mut g = st.lock().unwrap();
            for e in &events {
                let line = e.to_string();
                if let Some(f) = g.audit_file.as_mut() {
                    use std::io::Write as _;
                    let _ = writeln!(f, "{line}");
                }
                g.audit_log.push(line);
            }
            Response::from_parts(parts, Full::new(bytes))
        }
    };
    st.lock().unwrap().log.push(Logged {
        identity: identity.unwrap_or_else(|| "anonymous".into()),
        method: method.to_string(),
        path: full,
        status: resp.status().as_u16(),
        at: arrived,
        done: Instant::now(),
    });
    notify.notify_all();
    let _ = path;
    Ok(resp)
}

/// The routes of the test server, as a table: the cluster-scoped requests
/// vigil makes (reviews, cluster-wide lists, a namespace object), then
/// namespaced ones, which are authorized as the API server authorizes them
/// (verb from method, name and subresource) before their handler runs.
pub(super) async fn route(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: Option<&str>,
) -> Response<Full<Bytes>> {
    let Some(identity) = identity else {
        return respond(401, &status(401, "Unauthorized", "Unauthorized"));
    };
    let path = req.uri().path().to_string();
    if req.method() == Method::GET
        && let Some(doc) = discovery(&path, st.lock().unwrap().minor)
    {
        return respond(200, &doc);
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let post = req.method() == Method::POST;
    match parts.as_slice() {
        // SelfSubjectReview: who the caller is (`kubectl auth whoami`).
        ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"] if post => {
            who_am_i(req, identity).await
        }
        // SelfSubjectAccessReview: may the caller do one thing?
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] if post => access_review(req, st, identity).await,
        // SelfSubjectRulesReview: the caller's own rules in a namespace.
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ] if post => rules_review(req, st, identity).await,
        // Cluster-wide lists (admin only): /api/v1/{resource}, /apis/rbac…/v1/{resource}.
        ["api", "v1", res] | ["apis", "rbac.authorization.k8s.io", "v1", res] => {
            cluster_list(&req, st, identity, res)
        }
        // A namespace object: `GET /api/v1/namespaces/{name}`, whose request
        // namespace is its own name (requestinfo.go: `namespaces/{ns}` sets the
        // namespace, then the resource and name are `namespaces` and `{ns}`),
        // so a Role in that namespace can grant it by resourceNames.
        ["api", "v1", "namespaces", name] if req.method() == Method::GET => {
            namespace_object(st, identity, name)
        }
        // /api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]
        // /apis/{networking,rbac.authorization}.k8s.io/v1/namespaces/{ns}/{resource}[/{name}]
        ["api", "v1", "namespaces", rest @ ..] => namespaced(req, st, identity, "", rest).await,
        ["apis", "networking.k8s.io", "v1", "namespaces", rest @ ..] => {
            namespaced(req, st, identity, "networking.k8s.io", rest).await
        }
        [
            "apis",
            "rbac.authorization.k8s.io",
            "v1",
            "namespaces",
            rest @ ..,
        ] => namespaced(req, st, identity, "rbac.authorization.k8s.io", rest).await,
        _ => respond(
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        ),
    }
}

async fn who_am_i(req: Request<Incoming>, identity: &str) -> Response<Full<Bytes>> {
    let mut body = read_json(req).await;
    let groups = if identity == "admin" {
        json!(["system:masters", "system:authenticated"])
    } else {
        let ns = identity.split(':').nth(2).unwrap_or_default();
        json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated"
        ])
    };
    body["status"] = json!({"userInfo": {"username": identity, "groups": groups}});
    respond(201, &body)
}

async fn access_review(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: &str,
) -> Response<Full<Bytes>> {
    let mut body = read_json(req).await;
    let a = body["spec"]["resourceAttributes"].clone();
    let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
    let resource = match field("subresource").as_str() {
        "" => field("resource"),
        sub => format!("{}/{sub}", field("resource")),
    };
    let name = field("name");
    let allowed = authorize(
        &st.lock().unwrap(),
        identity,
        &field("namespace"),
        &field("group"),
        &resource,
        &field("verb"),
        (!name.is_empty()).then_some(name.as_str()),
    );
    body["status"] = json!({"allowed": allowed});
    respond(201, &body)
}

async fn rules_review(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: &str,
) -> Response<Full<Bytes>> {
    let mut body = read_json(req).await;
    let ns = body["spec"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rules = rules_of(&st.lock().unwrap(), identity, &ns);
    body["status"] = json!({"resourceRules": rules, "nonResourceRules": [], "incomplete": false});
    respond(201, &body)
}

fn cluster_list(
    req: &Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: &str,
    res: &str,
) -> Response<Full<Bytes>> {
    if identity != "admin" || req.method() != Method::GET {
        return respond(
            403,
            &status(
                403,
                "Forbidden",
                &format!("{identity} cannot list {res} at the cluster scope"),
            ),
        );
    }
    let selector = query_params(req.uri())
        .into_iter()
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v);
    let mut st = st.lock().unwrap();
    let items: Vec<(String, Value)> = st
        .objects
        .iter()
        .filter(|((r, _, _), o)| r == res && matches_selector(o, selector.as_deref()))
        .map(|((_, ns, name), o)| (format!("{ns}/{name}"), o.clone()))
        .collect();
    let query = query_params(req.uri());
    match super::paging::page(&mut st, res, items, &query, selector.is_some()) {
        Ok(list) => json_bytes(list),
        Err((code, refusal)) => respond(code, &refusal),
    }
}

fn namespace_object(st: &Arc<Mutex<State>>, identity: &str, name: &str) -> Response<Full<Bytes>> {
    let st = st.lock().unwrap();
    if !authorize(&st, identity, name, "", "namespaces", "get", Some(name)) {
        return respond(
            403,
            &status(
                403,
                "Forbidden",
                &format!(
                    "namespaces \"{name}\" is forbidden: User \"{identity}\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"{name}\""
                ),
            ),
        );
    }
    match st.namespace_object(name) {
        Some(o) => respond(200, &o),
        None => respond(
            404,
            &status(404, "NotFound", &format!("namespaces \"{name}\" not found")),
        ),
    }
}

/// A namespaced request (`{ns}/{resource}[/{name}[/{sub}]]` under its
/// group): its verb resolved and authorized as the API server's
/// request-info resolver and RBAC authorizer do, then its handler.
async fn namespaced(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: &str,
    group: &str,
    rest: &[&str],
) -> Response<Full<Bytes>> {
    let (ns, resource, name, sub) = match rest {
        [ns, res] => (ns.to_string(), res.to_string(), None, None),
        [ns, res, name] => (
            ns.to_string(),
            res.to_string(),
            Some(name.to_string()),
            None,
        ),
        [ns, res, name, sub] => (
            ns.to_string(),
            res.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        ),
        _ => return respond(404, &status(404, "NotFound", "not found")),
    };
    let rbac_resource = match &sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.clone(),
    };
    let watching = query_params(req.uri())
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    // A watch or list of one object by name is authorized against that name.
    let field_name = query_params(req.uri())
        .into_iter()
        .find(|(k, _)| k == "fieldSelector")
        .and_then(|(_, v)| v.strip_prefix("metadata.name=").map(str::to_string));
    let verb = match (req.method(), &name, &sub) {
        // A WebSocket exec is an HTTP GET upgrade, which the request-info
        // resolver maps to `get` (apiserver endpoints/request/requestinfo.go).
        (&Method::GET, _, Some(s)) if s == "exec" => "get",
        (&Method::GET, None, _) if watching => "watch",
        (&Method::GET, Some(_), _) => "get",
        (&Method::GET, None, _) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::DELETE, _, _) => "delete",
        (&Method::PATCH, _, _) => "patch",
        _ => return respond(405, &status(405, "MethodNotAllowed", "method not allowed")),
    };
    // From 1.35 (AuthorizePodWebsocketUpgradeCreatePermission, beta and on
    // by default; kubernetes/kubernetes#134577) the upgrade is checked for
    // `create` too, as a SPDY POST always was.
    let websocket_create =
        verb == "get" && sub.as_deref() == Some("exec") && st.lock().unwrap().minor >= 35;
    let verbs: &[&str] = if websocket_create {
        &["get", "create"]
    } else {
        std::slice::from_ref(&verb)
    };
    for verb in verbs {
        let allowed = authorize(
            &st.lock().unwrap(),
            identity,
            &ns,
            group,
            &rbac_resource,
            verb,
            name.as_deref().or(field_name.as_deref()),
        );
        if !allowed {
            let msg = format!(
                "{identity} cannot {verb} resource \"{rbac_resource}\" in namespace \"{ns}\""
            );
            return respond(403, &status(403, "Forbidden", &msg));
        }
    }
    match (resource.as_str(), sub.as_deref(), verb) {
        ("pods", Some("exec"), _) => {
            pod_exec(req, st, &ns, name.as_deref().unwrap_or_default()).await
        }
        ("pods", None, "watch") => pod_watch(&req, st, &ns, field_name).await,
        ("pods", Some("ephemeralcontainers"), "patch") => {
            let body = read_json(req).await;
            add_ephemeral(st, &ns, name.as_deref().unwrap_or_default(), body)
        }
        ("pods", Some("log"), _) => pod_log(&req, st, &ns, name.unwrap_or_default()),
        ("serviceaccounts", Some("token"), _) => {
            let body = read_json(req).await;
            token_request(st, &ns, name.as_deref().unwrap_or_default(), body)
        }
        _ => object(req, st, identity, verb, &ns, &resource, name).await,
    }
}

/// `pods/exec`, with the faults a test injected.
async fn pod_exec(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
) -> Response<Full<Bytes>> {
    // Decide under the lock, act after it (the guard must not live across an await).
    let fault = {
        let mut guard = st.lock().unwrap();
        let f = &mut guard.faults;
        if f.exec_500 > 0 {
            f.exec_500 -= 1;
            1
        } else if f.exec_429 > 0 {
            f.exec_429 -= 1;
            2
        } else if f.exec_cut > 0 {
            f.exec_cut -= 1;
            3
        } else if f.exec_hang > 0 {
            f.exec_hang -= 1;
            4
        } else if f.exec_held > 0 {
            f.exec_held -= 1;
            5
        } else {
            0
        }
    };
    if fault == 5 {
        let gate = st.lock().unwrap().exec_gate.clone();
        loop {
            let woken = gate.1.notified();
            if gate.0.load(Ordering::SeqCst) {
                break;
            }
            woken.await;
        }
    }
    match fault {
        // The body quotes something it should not, as some proxies do.
        1 => respond(
            500,
            &status(
                500,
                "InternalError",
                &format!("injected failure; upstream said: {ERROR_BODY_CANARY}"),
            ),
        ),
        4 => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            respond(504, &status(504, "Timeout", "injected hang"))
        }
        2 => {
            let mut body = status(429, "TooManyRequests", "injected throttling");
            body["details"] = json!({"retryAfterSeconds": 1});
            let mut r = respond(429, &body);
            r.headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            r
        }
        _ => exec(req, st, ns, pod, fault == 3).await,
    }
}

/// A watch of one pod (by `fieldSelector=metadata.name=`).
async fn pod_watch(
    req: &Request<Incoming>,
    st: &Arc<Mutex<State>>,
    ns: &str,
    field_name: Option<String>,
) -> Response<Full<Bytes>> {
    let Some(pod) = field_name else {
        return respond(
            400,
            &status(
                400,
                "BadRequest",
                "the test server watches one pod by fieldSelector metadata.name",
            ),
        );
    };
    let query = query_params(req.uri());
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
    let since: u64 = param("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = param("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30u64);
    let gone = take_fault(&mut st.lock().unwrap().faults.watch_gone);
    if gone {
        // `staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go`:
        // a too old resourceVersion is an ERROR event with a 410 Status.
        return watch_body(&[
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {since}"), "reason": "Expired", "code": 410}}),
        ]);
    }
    let bookmarks = param("allowWatchBookmarks").is_some_and(|v| v == "true");
    watch_pod(st, ns, &pod, since, Duration::from_secs(timeout), bookmarks).await
}

/// `pods/log` of one container.
fn pod_log(
    req: &Request<Incoming>,
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: String,
) -> Response<Full<Bytes>> {
    let query = query_params(req.uri());
    let container = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // The kubelet stops writing at limitBytes, mid-line if need be
    // (`pkg/kubelet/kuberuntime/logs/logs.go`, logWriter.write).
    let limit = query
        .iter()
        .find(|(k, _)| k == "limitBytes")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    match st
        .lock()
        .unwrap()
        .logs
        .get(&(ns.to_string(), pod.clone(), container.clone()))
    {
        Some(log) => Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(log[..log.len().min(limit)].to_vec())))
            .unwrap(),
        None => respond(
            400,
            &status(
                400,
                "BadRequest",
                &format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start or has no log"
                ),
            ),
        ),
    }
}

/// Whether a fault counted by `left` hits this request (one less left).
pub(super) fn take_fault(left: &mut u32) -> bool {
    let hit = *left > 0;
    *left = left.saturating_sub(1);
    hit
}

/// A 200 answer of `object` with a field of `bytes` padding (a hostile
/// server), spliced in as bytes: serializing it through serde_json in a
/// debug build takes seconds.
pub(super) fn padded_json(object: &Value, bytes: usize) -> Response<Full<Bytes>> {
    json_bytes(pad(serde_json::to_vec(object).unwrap(), bytes))
}

/// `body` (a JSON object) with a `padding` field of `bytes` bytes.
pub(super) fn pad(mut body: Vec<u8>, bytes: usize) -> Vec<u8> {
    let end = body.pop().expect("an object ends with }");
    body.extend_from_slice(b",\"padding\":\"");
    body.resize(body.len() + bytes, b'x');
    body.extend_from_slice(b"\"");
    body.push(end);
    body
}

/// A 200 answer of JSON already serialized.
fn json_bytes(body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A list, get, create or delete of a stored object.
async fn object(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    identity: &str,
    verb: &str,
    ns: &str,
    resource: &str,
    name: Option<String>,
) -> Response<Full<Bytes>> {
    let query = query_params(req.uri());
    match (verb, name) {
        ("list", None) => {
            let selector = query
                .iter()
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.clone());
            if take_fault(&mut st.lock().unwrap().faults.list_hang) {
                std::future::pending::<()>().await;
            }
            let mut st = st.lock().unwrap();
            let items: Vec<(String, Value)> = st
                .objects
                .iter()
                .filter(|((r, rns, _), o)| {
                    r == resource && rns == ns && matches_selector(o, selector.as_deref())
                })
                .map(|((_, _, name), o)| (name.clone(), o.clone()))
                .collect();
            match super::paging::page(&mut st, resource, items, &query, selector.is_some()) {
                Ok(list) => json_bytes(list),
                Err((code, refusal)) => respond(code, &refusal),
            }
        }
        ("get", Some(n)) => {
            match st
                .lock()
                .unwrap()
                .objects
                .get(&(resource.to_string(), ns.to_string(), n.clone()))
            {
                Some(o) => respond(200, o),
                None => respond(
                    404,
                    &status(404, "NotFound", &format!("{resource} \"{n}\" not found")),
                ),
            }
        }
        ("create", None) => {
            let mut obj = read_json(req).await;
            let n = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            obj["metadata"]["namespace"] = json!(ns);
            obj["metadata"]["creationTimestamp"] = json!("2026-11-26T00:00:00Z");
            let mut st = st.lock().unwrap();
            let key = (resource.to_string(), ns.to_string(), n.clone());
            // RBAC escalation prevention, for callers other than the admin
            // (system:masters may escalate).
            if identity != "admin"
                && (resource == "roles" || resource == "rolebindings")
                && let Err(resp) = check_rbac_create(&st, identity, ns, resource, &obj)
            {
                return *resp;
            }
            if st.objects.contains_key(&key) {
                return respond(
                    409,
                    &status(
                        409,
                        "AlreadyExists",
                        &format!("{resource} \"{n}\" already exists"),
                    ),
                );
            }
            if resource == "roles" || resource == "rolebindings" {
                st.rbac_created.insert(key.clone(), Instant::now());
            }
            st.objects.insert(key, obj.clone());
            respond(201, &obj)
        }
        ("delete", Some(n)) => {
            match st.lock().unwrap().objects.remove(&(
                resource.to_string(),
                ns.to_string(),
                n.clone(),
            )) {
                Some(o) => respond(200, &o),
                None => respond(
                    404,
                    &status(404, "NotFound", &format!("{resource} \"{n}\" not found")),
                ),
            }
        }
        _ => respond(
            405,
            &status(405, "MethodNotAllowed", "not supported by the test server"),
        ),
    }
}

pub(super) async fn read_json(req: Request<Incoming>) -> Value {
    let seq = req.extensions().get::<RequestSeq>().copied();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(RequestSeq(n)) = seq
        && !body.is_null()
    {
        REQUEST_BODIES.lock().unwrap().insert(n, body.clone());
    }
    body
}
