//! A test Kubernetes API server: real HTTPS (a generated CA), real bearer
//! tokens, RBAC enforced for the tokens it issues, TokenRequest with bound
//! anchors (deleting the anchor Secret revokes the token), and `pods/exec`
//! over WebSocket (`v5.channel.k8s.io` / `v4.channel.k8s.io`) that runs the
//! command under `chroot` in the pod's fixture root filesystem.
//!
//! Ephemeral containers (`PATCH pods/{pod}/ephemeralcontainers`) and
//! commands exec'd into a scanner sidecar run the real `vigil probe` binary
//! (set with [`FakeApiServer::set_probe_binary`]) with `--proc` pointing at
//! a constructed proc tree for the pod: `<pid>/root` links to the fixture
//! root, `<pid>/cgroup` carries the container ID, as a kubelet and a
//! container runtime would arrange it. Ephemeral containers move Waiting →
//! Running → Terminated, observable through `?watch=true` (one pod, by
//! `fieldSelector=metadata.name=`), and their output is served by
//! `pods/{pod}/log`. As in Kubernetes, `resources` on an ephemeral
//! container is refused.
//!
//! vigil talks to it through an ordinary kubeconfig, with the same `kube`
//! code path it uses against a real cluster. Used in-process by the tests
//! and standalone by `cargo run --example fake-apiserver`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The admin token written into the kubeconfig (the "caller" identity).
pub const ADMIN_TOKEN: &str = "fake-admin-token-not-secret";

/// What the injected 500s quote in their body (for leak searches).
pub const ERROR_BODY_CANARY: &str = "CANARY-ERROR-BODY-5150";

/// An issued ServiceAccount token.
#[derive(Debug, Clone)]
struct IssuedToken {
    namespace: String,
    service_account: String,
    expires: Instant,
    anchor_uid: Option<String>,
    /// The `aud` claim.
    audiences: Vec<String>,
}

/// The API server's own audience (`--api-audiences`, by default its
/// issuer): a token must carry it to authenticate to the API.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// One API request, as the server saw it (for assertions).
#[derive(Debug, Clone)]
pub struct Logged {
    /// `admin`, `system:serviceaccount:NS:NAME`, or `anonymous`.
    pub identity: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// When the request arrived (before any injected latency).
    pub at: Instant,
}

/// Faults to inject into the next requests.
#[derive(Default, Debug, Clone, Copy)]
pub struct Faults {
    /// Answer this many exec requests with 500.
    pub exec_500: u32,
    /// Answer this many exec requests with 429 and `Retry-After: 1`.
    pub exec_429: u32,
    /// Cut this many exec streams after the first stdout chunk (no status).
    pub exec_cut: u32,
    /// Delay this many requests (of any kind) by a further second.
    pub latency_spikes: u32,
    /// Never answer this many exec requests (a node that hangs).
    pub exec_hang: u32,
    /// Answer this many pod watches with a 410 Gone ERROR event (the
    /// version was compacted away).
    pub watch_gone: u32,
}

/// Counts one running exec under its keys; leaving (drop) uncounts it.
struct InFlight {
    st: Arc<Mutex<State>>,
    keys: [String; 3],
}

impl InFlight {
    fn enter(st: &Arc<Mutex<State>>, keys: &[String; 3]) -> InFlight {
        let mut g = st.lock().unwrap();
        for k in keys {
            let n = g.inflight.entry(k.clone()).or_default();
            *n += 1;
            let n = *n;
            let peak = g.peaks.entry(k.clone()).or_default();
            *peak = (*peak).max(n);
        }
        InFlight {
            st: st.clone(),
            keys: keys.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut g = self.st.lock().unwrap();
        for k in &self.keys {
            if let Some(n) = g.inflight.get_mut(k) {
                *n -= 1;
            }
        }
    }
}

/// A recorded exec answer: stdout, stderr (nonce taken out), status.
type Recorded = (Vec<u8>, Vec<u8>, Value);

#[derive(Default)]
struct State {
    /// Paths and queries of requests as they arrive (the log has them
    /// when answered).
    arrivals: Vec<String>,
    /// Execs running now, and the most ever at once, by `all`, `ns:NS`, `node:NODE`.
    inflight: HashMap<String, u32>,
    peaks: HashMap<String, u32>,
    faults: Faults,
    /// (resource, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    tokens: HashMap<String, IssuedToken>,
    log: Vec<Logged>,
    rootfs: HashMap<(String, String), PathBuf>,
    /// The vigil binary that scanner images run.
    probe_bin: Option<PathBuf>,
    /// (namespace, pod, container) → log.
    logs: HashMap<(String, String, String), Vec<u8>>,
    /// Bumped on every pod change; pods carry it as resourceVersion.
    version: u64,
    changes: Option<tokio::sync::watch::Sender<u64>>,
    /// Where constructed proc trees live.
    dir: PathBuf,
    /// The emulated Kubernetes minor version (1.N): from 1.35 a WebSocket
    /// exec needs `create` on `pods/exec` as well as `get`.
    minor: u32,
    /// How long a created Role or RoleBinding takes to reach the
    /// authorizer's cache, and when each was created.
    rbac_delay: Duration,
    rbac_created: HashMap<(String, String, String), Instant>,
    /// Token lifetimes are divided by this (tests: a 600 s token lives
    /// seconds).
    time_scale: f64,
    /// How long a successful token authentication is cached (the API
    /// server's token cache: 10 s), and the cache.
    token_cache_ttl: Duration,
    token_cache: HashMap<String, (Instant, String)>,
    /// Image prefixes nodes cannot pull.
    unpullable: Vec<String>,
    /// Namespaces labelled `pod-security.kubernetes.io/enforce: restricted`.
    restricted: std::collections::BTreeSet<String>,
    /// Replay mode: exec answers recorded per (root, command with its
    /// nonce taken out) — stdout, stderr, status — served without starting
    /// a process (benchmarks measure vigil, not the gatherers).
    replay: Option<HashMap<String, Recorded>>,
}

impl State {
    /// Record a change to a pod: a new resourceVersion, and wake watchers.
    fn touch(&mut self, ns: &str, pod: &str) {
        self.version += 1;
        let v = self.version;
        if let Some(p) =
            self.objects
                .get_mut(&("pods".to_string(), ns.to_string(), pod.to_string()))
        {
            p["metadata"]["resourceVersion"] = json!(v.to_string());
        }
        if let Some(tx) = &self.changes {
            tx.send_replace(v);
        }
    }
}

/// A running server.
pub struct FakeApiServer {
    /// Listening address.
    pub addr: SocketAddr,
    logged: Arc<std::sync::Condvar>,
    /// A kubeconfig for the admin identity.
    pub kubeconfig: PathBuf,
    state: Arc<Mutex<State>>,
    latency_ms: Arc<AtomicU64>,
    _runtime: Option<tokio::runtime::Runtime>,
    _dir: PathBuf,
}

impl FakeApiServer {
    /// Start on 127.0.0.1 (a free port) with `pods` (Pod JSON objects) whose
    /// exec runs in `rootfs[(ns, pod)]`. Writes the kubeconfig into `dir`.
    pub fn start(
        dir: &Path,
        pods: Vec<Value>,
        rootfs: HashMap<(String, String), PathBuf>,
    ) -> FakeApiServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut server = runtime.block_on(Self::start_async(
            dir,
            pods,
            rootfs,
            "127.0.0.1:0".parse().unwrap(),
        ));
        server._runtime = Some(runtime);
        server
    }

    /// Start inside an existing runtime.
    pub async fn start_async(
        dir: &Path,
        pods: Vec<Value>,
        rootfs: HashMap<(String, String), PathBuf>,
        listen: SocketAddr,
    ) -> FakeApiServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vigil test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server_params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();

        let mut state = State {
            rootfs,
            version: 1,
            changes: Some(tokio::sync::watch::channel(1).0),
            dir: dir.to_path_buf(),
            minor: 35,
            time_scale: 1.0,
            token_cache_ttl: Duration::from_secs(10),
            ..State::default()
        };
        for mut p in pods {
            let ns = p["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            p["metadata"]["resourceVersion"] = json!("1");
            state.objects.insert(("pods".into(), ns, name), p);
        }
        let state = Arc::new(Mutex::new(state));
        let latency_ms = Arc::new(AtomicU64::new(0));

        let kubeconfig = dir.join("kubeconfig");
        let ca_pem = base64::engine::general_purpose::STANDARD.encode(ca_cert.pem());
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca_pem}\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\ncurrent-context: fake\n"
            ),
        )
        .unwrap();

        let st = state.clone();
        let lat = latency_ms.clone();
        let logged = Arc::new(std::sync::Condvar::new());
        let notify = logged.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                let lat = lat.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), lat.clone(), notify.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeApiServer {
            addr,
            logged,
            kubeconfig,
            state,
            latency_ms,
            _runtime: None,
            _dir: dir.to_path_buf(),
        }
    }

    /// Roles and RoleBindings created from now on reach the authorizer
    /// after `delay` (the RBAC authorizer reads informer caches).
    pub fn set_rbac_propagation_delay(&self, delay: Duration) {
        self.state.lock().unwrap().rbac_delay = delay;
    }

    /// Token lifetimes pass `scale` times faster (a 600 s token asked for
    /// lives 600/`scale` seconds, and its expirationTimestamp says so).
    pub fn set_time_scale(&self, scale: f64) {
        self.state.lock().unwrap().time_scale = scale;
    }

    /// How long a successful token authentication is cached (default 10 s,
    /// as the API server's token cache): a revoked token keeps working
    /// that long after its last use.
    pub fn set_token_cache_ttl(&self, ttl: Duration) {
        self.state.lock().unwrap().token_cache_ttl = ttl;
    }

    /// Replay mode on or off: from now on, the first exec of a command in a
    /// root runs and is recorded; later ones are answered from the record,
    /// with their own nonce, without starting a process.
    pub fn set_replay(&self, on: bool) {
        self.state.lock().unwrap().replay = on.then(HashMap::new);
    }

    /// Label namespace `ns` `pod-security.kubernetes.io/enforce:
    /// restricted`: Pod Security Admission refuses ephemeral containers
    /// that break the restricted level.
    pub fn enforce_restricted(&self, ns: &str) {
        self.state.lock().unwrap().restricted.insert(ns.to_string());
    }

    /// Ephemeral containers whose image starts with `prefix` cannot be
    /// pulled: they wait in ErrImagePull, as when the node lacks the
    /// registry's credentials.
    pub fn inject_image_pull_failure(&self, prefix: &str) {
        self.state
            .lock()
            .unwrap()
            .unpullable
            .push(prefix.to_string());
    }

    /// Emulate Kubernetes 1.`minor` where versions differ (default 1.35).
    pub fn set_kubernetes_minor(&self, minor: u32) {
        self.state.lock().unwrap().minor = minor;
    }

    /// A token for ServiceAccount `ns/sa`, valid for an hour, as if a
    /// TokenRequest had returned it (for tests that call the API themselves).
    pub fn issue_token(&self, ns: &str, sa: &str) -> String {
        let token = format!("fake-sa-token-{}", uuid::Uuid::new_v4().simple());
        self.state.lock().unwrap().tokens.insert(
            token.clone(),
            IssuedToken {
                namespace: ns.into(),
                service_account: sa.into(),
                expires: Instant::now() + Duration::from_secs(3600),
                anchor_uid: None,
                audiences: vec![API_AUDIENCE.to_string()],
            },
        );
        token
    }

    /// Try to add ephemeral container `c` to pod `ns/pod`, as the API would
    /// take the patch: its status code and message (nothing runs).
    pub fn try_add_ephemeral(&self, ns: &str, pod: &str, c: Value) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _in = rt.enter();
        let resp = add_ephemeral(
            &self.state,
            ns,
            pod,
            json!({"spec": {"ephemeralContainers": [c]}}),
        );
        let code = resp.status().as_u16();
        let body = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (code, v["message"].as_str().unwrap_or_default().to_string())
    }

    /// Add ephemeral container `c` (JSON) to pod `ns/name` as an admin would,
    /// and wait until it terminates: its exit code and log.
    pub fn run_ephemeral_container(&self, ns: &str, pod: &str, c: Value) -> (i64, String) {
        let name = c["name"].as_str().unwrap().to_string();
        let st = self.state.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut changes = st.lock().unwrap().changes.as_ref().unwrap().subscribe();
            let resp = add_ephemeral(&st, ns, pod, json!({"spec": {"ephemeralContainers": [c]}}));
            assert_eq!(resp.status(), 200, "the patch was refused");
            loop {
                let done = {
                    let g = st.lock().unwrap();
                    let p = &g.objects[&("pods".to_string(), ns.to_string(), pod.to_string())];
                    let state = p["status"]["ephemeralContainerStatuses"]
                        .as_array()
                        .and_then(|l| l.iter().find(|s| s["name"] == name.as_str()))
                        .map(|s| s["state"].clone())
                        .unwrap_or(Value::Null);
                    state["terminated"]["exitCode"].as_i64().map(|code| {
                        let key = (ns.to_string(), pod.to_string(), name.clone());
                        (code, String::from_utf8_lossy(&g.logs[&key]).into_owned())
                    })
                };
                if let Some(done) = done {
                    return done;
                }
                // A task that panicked never terminates its container.
                tokio::time::timeout(Duration::from_secs(60), changes.changed())
                    .await
                    .expect("the ephemeral container never terminated")
                    .unwrap();
            }
        })
    }

    /// [`Self::issue_token`], bound to the Secret with `anchor_uid`: the
    /// token dies with it.
    pub fn issue_token_bound(&self, ns: &str, sa: &str, anchor_uid: &str) -> String {
        let token = self.issue_token(ns, sa);
        if let Some(t) = self.state.lock().unwrap().tokens.get_mut(&token) {
            t.anchor_uid = Some(anchor_uid.to_string());
        }
        token
    }

    /// Delete an object as if someone deleted it.
    pub fn remove(&self, resource: &str, ns: &str, name: &str) {
        self.state
            .lock()
            .unwrap()
            .objects
            .remove(&(resource.into(), ns.into(), name.into()));
    }

    /// Store an object as if someone created it (e.g. a leftover of a killed run).
    pub fn insert(&self, resource: &str, obj: Value) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.state
            .lock()
            .unwrap()
            .objects
            .insert((resource.into(), ns, name), obj);
    }

    /// The root filesystem pod `ns/name` is served from.
    pub fn rootfs_of(&self, ns: &str, name: &str) -> Option<PathBuf> {
        self.state
            .lock()
            .unwrap()
            .rootfs
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Serve the pod `ns/name` from another root filesystem.
    pub fn set_rootfs(&self, ns: &str, name: &str, root: &Path) {
        self.state
            .lock()
            .unwrap()
            .rootfs
            .insert((ns.to_string(), name.to_string()), root.to_path_buf());
    }

    /// The most execs that ever ran at once, by `all`, `ns:NAMESPACE` and
    /// `node:NODE`.
    pub fn exec_peaks(&self) -> HashMap<String, u32> {
        self.state.lock().unwrap().peaks.clone()
    }

    /// The vigil binary scanner images run (ephemeral containers, sidecars).
    pub fn set_probe_binary(&self, path: &Path) {
        self.state.lock().unwrap().probe_bin = Some(path.to_path_buf());
    }

    /// A stored pod, as the API would return it.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&("pods".into(), ns.into(), name.into()))
            .cloned()
    }

    /// Inject faults into the next exec requests.
    pub fn inject(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// Add latency to every request.
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Names of stored objects of a resource (`serviceaccounts`, `roles`, …).
    pub fn objects(&self, resource: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.objects
            .keys()
            .filter(|(r, _, _)| r == resource)
            .map(|(_, ns, n)| format!("{ns}/{n}"))
            .collect()
    }

    /// Panic unless no ServiceAccount, Role, RoleBinding or Secret is stored
    /// (every access object of a run was cleaned up).
    pub fn assert_no_access_objects(&self) {
        for r in ["serviceaccounts", "roles", "rolebindings", "secrets"] {
            assert_eq!(self.objects(r), Vec::<String>::new(), "{r} left behind");
        }
    }

    /// Every token the server issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().tokens.keys().cloned().collect()
    }

    /// Every token ever issued, valid or not (kept for leak searches).
    pub fn request_log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Every container log the kubelet side keeps (ephemeral containers'
    /// output), as anyone with `get pods/log` could read it.
    pub fn container_logs(&self) -> Vec<Vec<u8>> {
        self.state.lock().unwrap().logs.values().cloned().collect()
    }

    /// Block until the request log satisfies `pred` (woken by each request),
    /// or fail after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Logged]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        while !pred(&st.log) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for the API server log");
            st = self.logged.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Block until the requests that arrived so far (answered or not)
    /// satisfy `pred`, or fail after `timeout`.
    pub fn wait_for_arrivals(&self, timeout: Duration, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap();
        while !pred(&st.arrivals) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for requests to arrive");
            st = self.logged.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Returns true if and only if `token` still authenticates.
    /// Whether the token itself is still valid (not expired, its anchor
    /// alive), the authentication cache aside: false means revoked, once
    /// the cache forgets it.
    pub fn token_valid(&self, token: &str) -> bool {
        let st = self.state.lock().unwrap();
        authenticate(&st, Some(token)).is_some_and(|id| id != "anonymous")
    }
}

/// A list of `resource` with the apiVersion and kind clients expect.
fn list(resource: &str, items: Vec<Value>) -> Value {
    let (api_version, kind) = match resource {
        "roles" => ("rbac.authorization.k8s.io/v1", "RoleList"),
        "rolebindings" => ("rbac.authorization.k8s.io/v1", "RoleBindingList"),
        "serviceaccounts" => ("v1", "ServiceAccountList"),
        "secrets" => ("v1", "SecretList"),
        "pods" => ("v1", "PodList"),
        _ => ("v1", "List"),
    };
    json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

fn respond(code: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

/// Identity for a bearer token through the API server's authentication
/// cache: a success is remembered for `token_cache_ttl`
/// (`pkg/kubeapiserver/authenticator/config.go` wraps the token
/// authenticators in `token/cache` with a 10 s success TTL), so deleting a
/// token's bound object revokes it within that time, not at once. Expiry
/// is checked on every request.
fn authenticate_cached(st: &mut State, token: Option<&str>) -> Option<String> {
    let t = token?;
    let fresh = |st: &State| st.tokens.get(t).is_none_or(|i| Instant::now() <= i.expires);
    if let Some((at, id)) = st.token_cache.get(t)
        && at.elapsed() < st.token_cache_ttl
        && fresh(st)
    {
        return Some(id.clone());
    }
    let id = authenticate(st, token)?;
    st.token_cache
        .insert(t.to_string(), (Instant::now(), id.clone()));
    Some(id)
}

/// Identity for a bearer token, if it is valid.
fn authenticate(st: &State, token: Option<&str>) -> Option<String> {
    let token = token?;
    if token == ADMIN_TOKEN {
        return Some("admin".into());
    }
    let t = st.tokens.get(token)?;
    if Instant::now() > t.expires || !t.audiences.iter().any(|a| a == API_AUDIENCE) {
        return None;
    }
    if let Some(uid) = &t.anchor_uid {
        let alive = st.objects.iter().any(|((r, ns, _), o)| {
            r == "secrets" && ns == &t.namespace && o["metadata"]["uid"] == uid.as_str()
        });
        if !alive {
            return None;
        }
    }
    Some(format!(
        "system:serviceaccount:{}:{}",
        t.namespace, t.service_account
    ))
}

/// The discovery documents clients read before anything else (`kubectl`
/// among them): `/version`, `/api`, `/apis` and each group version's
/// resources, for what the test server serves. Legacy (unaggregated)
/// discovery, which clients fall back to when the answer is plain JSON
/// (`staging/src/k8s.io/client-go/discovery/discovery_client.go`).
fn discovery(path: &str, minor: u32) -> Option<Value> {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str], short: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs, "shortNames": short});
    let list = |gv: &str, resources: Vec<Value>| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources});
    let crud = ["create", "delete", "get", "list", "patch", "watch"];
    Some(match path.trim_end_matches('/') {
        "/version" => json!({
            "major": "1", "minor": minor.to_string(), "gitVersion": format!("v1.{minor}.0"),
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"
        }),
        "/api" => {
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        }
        "/apis" => {
            let group = |name: &str| json!({"name": name, "versions": [{"groupVersion": format!("{name}/v1"), "version": "v1"}], "preferredVersion": {"groupVersion": format!("{name}/v1"), "version": "v1"}});
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                group("rbac.authorization.k8s.io"), group("authorization.k8s.io"), group("authentication.k8s.io")
            ]})
        }
        "/api/v1" => list(
            "v1",
            vec![
                resource("pods", "Pod", true, &crud, &["po"]),
                resource("pods/exec", "PodExecOptions", true, &["create", "get"], &[]),
                resource("pods/log", "Pod", true, &["get"], &[]),
                resource(
                    "pods/ephemeralcontainers",
                    "Pod",
                    true,
                    &["get", "patch", "update"],
                    &[],
                ),
                resource("serviceaccounts", "ServiceAccount", true, &crud, &["sa"]),
                resource(
                    "serviceaccounts/token",
                    "TokenRequest",
                    true,
                    &["create"],
                    &[],
                ),
                resource("secrets", "Secret", true, &crud, &[]),
                resource("configmaps", "ConfigMap", true, &crud, &["cm"]),
            ],
        ),
        "/apis/rbac.authorization.k8s.io/v1" => list(
            "rbac.authorization.k8s.io/v1",
            vec![
                resource("roles", "Role", true, &crud, &[]),
                resource("rolebindings", "RoleBinding", true, &crud, &[]),
            ],
        ),
        "/apis/authorization.k8s.io/v1" => list(
            "authorization.k8s.io/v1",
            vec![
                resource(
                    "selfsubjectaccessreviews",
                    "SelfSubjectAccessReview",
                    false,
                    &["create"],
                    &[],
                ),
                resource(
                    "selfsubjectrulesreviews",
                    "SelfSubjectRulesReview",
                    false,
                    &["create"],
                    &[],
                ),
            ],
        ),
        "/apis/authentication.k8s.io/v1" => list(
            "authentication.k8s.io/v1",
            vec![resource(
                "selfsubjectreviews",
                "SelfSubjectReview",
                false,
                &["create"],
                &[],
            )],
        ),
        _ => return None,
    })
}

/// Whether an RBAC object has reached the authorizer's cache.
fn rbac_visible(st: &State, key: &(String, String, String)) -> bool {
    st.rbac_created
        .get(key)
        .is_none_or(|at| at.elapsed() >= st.rbac_delay)
}

/// The rules of every Role bound to a ServiceAccount identity in `ns`, as
/// the authorizer sees them (new objects only after the propagation delay).
fn rules_of(st: &State, identity: &str, ns: &str) -> Vec<Value> {
    rules_from(st, identity, ns, true)
}

/// The same rules read from storage, as the RBAC registry's escalation
/// checks resolve them (`pkg/registry/rbac/rest/storage_rbac.go` gives
/// them a rule resolver over the registries, not the authorizer's cache).
fn stored_rules_of(st: &State, identity: &str, ns: &str) -> Vec<Value> {
    rules_from(st, identity, ns, false)
}

fn rules_from(st: &State, identity: &str, ns: &str, cached: bool) -> Vec<Value> {
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
fn rules_allow(
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
fn rules_cover(held: &[Value], rules: &[Value]) -> bool {
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
fn authorize(
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

fn matches_selector(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector else { return true };
    sel.split(',')
        .filter(|s| !s.is_empty())
        .all(|req| match req.split_once('=') {
            Some((k, v)) => obj["metadata"]["labels"][k] == v,
            None => !obj["metadata"]["labels"][req].is_null(),
        })
}

fn query_params(uri: &hyper::Uri) -> Vec<(String, String)> {
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

fn decode(s: &str) -> String {
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

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    lat: Arc<AtomicU64>,
    notify: Arc<std::sync::Condvar>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let arrived = Instant::now();
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
    let spike = {
        let mut g = st.lock().unwrap();
        let n = &mut g.faults.latency_spikes;
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    };
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
    let resp = route(req, &st, identity.as_deref()).await;
    st.lock().unwrap().log.push(Logged {
        identity: identity.unwrap_or_else(|| "anonymous".into()),
        method: method.to_string(),
        path: full,
        status: resp.status().as_u16(),
        at: arrived,
    });
    notify.notify_all();
    let _ = path;
    Ok(resp)
}

async fn route(
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
    // SelfSubjectReview: who the caller is (`kubectl auth whoami`).
    if parts.as_slice() == ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]
        && req.method() == Method::POST
    {
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
        return respond(201, &body);
    }
    // /api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]
    // /apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{resource}[/{name}]
    // SelfSubjectAccessReview: may the caller do one thing?
    if parts.as_slice()
        == [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ]
        && req.method() == Method::POST
    {
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
        return respond(201, &body);
    }
    // SelfSubjectRulesReview: the caller's own rules in a namespace.
    if parts.as_slice()
        == [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
        ]
        && req.method() == Method::POST
    {
        let mut body = read_json(req).await;
        let ns = body["spec"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let rules = rules_of(&st.lock().unwrap(), identity, &ns);
        body["status"] =
            json!({"resourceRules": rules, "nonResourceRules": [], "incomplete": false});
        return respond(201, &body);
    }
    // Cluster-wide lists (admin only): /api/v1/{resource}, /apis/rbac…/v1/{resource}.
    if let ["api", "v1", res] | ["apis", "rbac.authorization.k8s.io", "v1", res] = parts.as_slice()
    {
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
        let st = st.lock().unwrap();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((r, _, _), o)| r == res && matches_selector(o, selector.as_deref()))
            .map(|(_, o)| o.clone())
            .collect();
        return respond(200, &list(res, items));
    }
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", "namespaces", rest @ ..] => ("", rest.to_vec()),
        [
            "apis",
            "rbac.authorization.k8s.io",
            "v1",
            "namespaces",
            rest @ ..,
        ] => ("rbac.authorization.k8s.io", rest.to_vec()),
        _ => {
            return respond(
                404,
                &status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
    };
    let (ns, resource, name, sub) = match rest.as_slice() {
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
    if sub.as_deref() == Some("exec") && resource == "pods" {
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
            } else {
                0
            }
        };
        match fault {
            1 => {
                // The body quotes something it should not, as some proxies do.
                return respond(
                    500,
                    &status(
                        500,
                        "InternalError",
                        &format!("injected failure; upstream said: {ERROR_BODY_CANARY}"),
                    ),
                );
            }
            4 => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return respond(504, &status(504, "Timeout", "injected hang"));
            }
            2 => {
                let mut body = status(429, "TooManyRequests", "injected throttling");
                body["details"] = json!({"retryAfterSeconds": 1});
                let mut r = respond(429, &body);
                r.headers_mut()
                    .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
                return r;
            }
            _ => {
                return exec(
                    req,
                    st,
                    &ns,
                    name.as_deref().unwrap_or_default(),
                    fault == 3,
                )
                .await;
            }
        }
    }
    if verb == "watch" && resource == "pods" {
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
        let gone = {
            let mut g = st.lock().unwrap();
            let hit = g.faults.watch_gone > 0;
            g.faults.watch_gone = g.faults.watch_gone.saturating_sub(1);
            hit
        };
        if gone {
            // `staging/src/k8s.io/apiserver/pkg/storage/cacher/cacher.go`:
            // a too old resourceVersion is an ERROR event with a 410 Status.
            return watch_body(&[
                json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {since}"), "reason": "Expired", "code": 410}}),
            ]);
        }
        let bookmarks = param("allowWatchBookmarks").is_some_and(|v| v == "true");
        return watch_pod(
            st,
            &ns,
            &pod,
            since,
            Duration::from_secs(timeout),
            bookmarks,
        )
        .await;
    }
    if resource == "pods" && sub.as_deref() == Some("ephemeralcontainers") && verb == "patch" {
        let body = read_json(req).await;
        return add_ephemeral(st, &ns, name.as_deref().unwrap_or_default(), body);
    }
    if resource == "pods" && sub.as_deref() == Some("log") {
        let container = query_params(req.uri())
            .into_iter()
            .find(|(k, _)| k == "container")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let pod = name.unwrap_or_default();
        return match st
            .lock()
            .unwrap()
            .logs
            .get(&(ns.clone(), pod.clone(), container.clone()))
        {
            Some(log) => Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(log.clone())))
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
        };
    }
    if sub.as_deref() == Some("token") && resource == "serviceaccounts" {
        let body = read_json(req).await;
        return token_request(st, &ns, name.as_deref().unwrap_or_default(), body);
    }
    let query = query_params(req.uri());
    match (verb, name) {
        ("list", None) => {
            let selector = query
                .iter()
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.clone());
            let st = st.lock().unwrap();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((r, rns, _), o)| {
                    r == &resource && rns == &ns && matches_selector(o, selector.as_deref())
                })
                .map(|(_, o)| o.clone())
                .collect();
            respond(200, &list(&resource, items))
        }
        ("get", Some(n)) => {
            match st
                .lock()
                .unwrap()
                .objects
                .get(&(resource.clone(), ns.clone(), n.clone()))
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
            let key = (resource.clone(), ns.clone(), n.clone());
            // RBAC escalation prevention, for callers other than the admin
            // (system:masters may escalate).
            if identity != "admin"
                && (resource == "roles" || resource == "rolebindings")
                && let Err(resp) = check_rbac_create(&st, identity, &ns, &resource, &obj)
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
            match st
                .lock()
                .unwrap()
                .objects
                .remove(&(resource.clone(), ns.clone(), n.clone()))
            {
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

/// What the API server checks when a caller without `escalate` creates a
/// Role, or one without `bind` a RoleBinding
/// (`pkg/registry/rbac/role/policybased/storage.go`,
/// `pkg/registry/rbac/rolebinding/policybased/storage.go`): it must hold
/// every right granted; a binding's Role must exist (else NotFound).
fn check_rbac_create(
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

async fn read_json(req: Request<Incoming>) -> Value {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn token_request(st: &Arc<Mutex<State>>, ns: &str, sa: &str, body: Value) -> Response<Full<Bytes>> {
    let mut st = st.lock().unwrap();
    if !st
        .objects
        .contains_key(&("serviceaccounts".into(), ns.into(), sa.into()))
    {
        return respond(
            404,
            &status(
                404,
                "NotFound",
                &format!("serviceaccounts \"{sa}\" not found"),
            ),
        );
    }
    let secs = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    if secs < 600 {
        return respond(
            422,
            &status(422, "Invalid", "expirationSeconds must be at least 600"),
        );
    }
    // The bound object must exist, and be the one the caller names
    // (`pkg/registry/core/serviceaccount/storage/token.go`).
    let bound = &body["spec"]["boundObjectRef"];
    let mut secret_claim = Value::Null;
    let anchor_uid = if bound.is_null() {
        None
    } else {
        if bound["kind"] != "Secret" {
            return respond(
                400,
                &status(
                    400,
                    "BadRequest",
                    "the test server binds tokens to Secrets only",
                ),
            );
        }
        let name = bound["name"].as_str().unwrap_or_default();
        let Some(secret) =
            st.objects
                .get(&("secrets".to_string(), ns.to_string(), name.to_string()))
        else {
            return respond(
                404,
                &status(404, "NotFound", &format!("secrets \"{name}\" not found")),
            );
        };
        let uid = secret["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(asked) = bound["uid"].as_str()
            && !asked.is_empty()
            && asked != uid
        {
            return respond(
                409,
                &status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on Secret \"{name}\": the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ),
            );
        }
        secret_claim = json!({"name": name, "uid": uid});
        Some(uid)
    };
    let audiences: Vec<String> = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![API_AUDIENCE.to_string()],
    };
    // A JWT with the claims a real one carries (`pkg/serviceaccount/claims.go`),
    // `jti` the credential id of KEP-4193; the signature is not one.
    let now = chrono::Utc::now().timestamp();
    let scaled = (secs as f64 / st.time_scale) as i64;
    let sa_uid = st.objects[&(
        "serviceaccounts".to_string(),
        ns.to_string(),
        sa.to_string(),
    )]["metadata"]["uid"]
        .clone();
    let claims = json!({
        "aud": audiences, "exp": now + scaled, "iat": now, "nbf": now,
        "iss": API_AUDIENCE, "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": sa_uid}, "secret": secret_claim},
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"RS256","kid":"fake-apiserver"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        b64.encode(uuid::Uuid::new_v4().as_bytes()),
    );
    let lifetime = Duration::from_secs(secs as u64).div_f64(st.time_scale);
    st.tokens.insert(
        token.clone(),
        IssuedToken {
            namespace: ns.into(),
            service_account: sa.into(),
            expires: Instant::now() + lifetime,
            anchor_uid,
            audiences,
        },
    );
    let expiration = chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap();
    let mut out = body;
    out["status"] = json!({"token": token, "expirationTimestamp": expiration.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
    respond(201, &out)
}

async fn exec(
    req: Request<Incoming>,
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    cut: bool,
) -> Response<Full<Bytes>> {
    let query = query_params(req.uri());
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let container = query
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let stdin_wanted = query
        .iter()
        .any(|(k, v)| k == "stdin" && (v == "true" || v == "1"));
    let (root, known, probe, node) = {
        let st = st.lock().unwrap();
        let pod_obj = st
            .objects
            .get(&("pods".into(), ns.into(), pod.into()))
            .cloned();
        let node = pod_obj
            .as_ref()
            .and_then(|p| p["spec"]["nodeName"].as_str())
            .unwrap_or("unscheduled")
            .to_string();
        let known = pod_obj.as_ref().is_some_and(|p| {
            p["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == container.as_str())
        });
        let root = st.rootfs.get(&(ns.to_string(), pod.to_string())).cloned();
        // A command for the scanner image's probe (a sidecar) runs the real
        // probe over the pod's shared proc tree.
        let probe = match (&st.probe_bin, &root, &pod_obj) {
            (Some(bin), Some(r), Some(p)) if is_probe_command(&command) => {
                // The container the probe is asked for, by its ID.
                let wanted = command
                    .iter()
                    .skip_while(|a| *a != "--container-id")
                    .nth(1)
                    .cloned()
                    .unwrap_or_default();
                let target = p["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .find(|c| {
                        status_container_id(p, c).is_some_and(|id| id.starts_with(wanted.as_str()))
                    })
                    .unwrap_or_default()
                    .to_string();
                let scanner = p["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["name"] == container.as_str())
                    .cloned()
                    .unwrap_or(Value::Null);
                Some((
                    bin.clone(),
                    proc_tree(&st.dir, p, r, None, Some(&container)),
                    target.is_empty() || probe_may_read(p, &scanner, &target),
                ))
            }
            _ => None,
        };
        (root, known, probe, node)
    };
    if !known {
        return respond(
            400,
            &status(
                400,
                "BadRequest",
                &format!("container {container} is not valid for pod {pod}"),
            ),
        );
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let protocols = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let protocol = if protocols.contains("v5.channel.k8s.io") {
        "v5.channel.k8s.io"
    } else {
        "v4.channel.k8s.io"
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let counted = st.clone();
    let keys = [
        "all".to_string(),
        format!("ns:{ns}"),
        format!("node:{node}"),
    ];
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        // Simultaneous execs, counted while the command runs and streams.
        let _running = InFlight::enter(&counted, &keys);
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        let frame = |ch: u8, data: &[u8]| {
            let mut v = vec![ch];
            v.extend_from_slice(data);
            Message::Binary(v.into())
        };
        // Replay: the gatherer's answer for this root and command, with
        // this exec's nonce put in.
        let nonce = command
            .iter()
            .find_map(|a| a.split("VIGIL-GATHER v1 ").nth(1))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty());
        let replay_key = match (&root, &probe, &nonce) {
            (Some(r), None, Some(n)) if counted.lock().unwrap().replay.is_some() => Some(format!(
                "{}\0{}",
                r.display(),
                command.join("\0").replace(n.as_str(), "<NONCE>")
            )),
            _ => None,
        };
        let recorded = replay_key.as_ref().and_then(|k| {
            counted
                .lock()
                .unwrap()
                .replay
                .as_ref()
                .and_then(|m| m.get(k).cloned())
        });
        if let (Some((out, err, status)), Some(n)) = (recorded, &nonce) {
            let swap = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .replace("<NONCE>", n)
                    .into_bytes()
            };
            for chunk in swap(&out).chunks(32 * 1024) {
                let _ = ws.send(frame(1, chunk)).await;
            }
            if !err.is_empty() {
                let _ = ws.send(frame(2, &swap(&err))).await;
            }
            let _ = ws
                .send(frame(3, &serde_json::to_vec(&status).unwrap()))
                .await;
            let _ = ws
                .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code:
                        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
            while let Some(Ok(_)) = ws.next().await {}
            return;
        }
        let mut captured = replay_key.as_ref().map(|_| (Vec::new(), Vec::new()));
        let command_to_run = match (root, probe) {
            (_, Some((bin, tree, may_read))) => {
                Some(probe_process(&bin, &command[1..], &tree, may_read))
            }
            (Some(root), None) => {
                let root = std::ffi::CString::new(root.into_os_string().into_encoded_bytes())
                    .expect("fixture roots have no NUL");
                // chroot(2) in the child rather than the chroot(1) binary:
                // one exec fewer per scan on a machine that also runs vigil.
                let mut cmd =
                    tokio::process::Command::new(command.first().map_or("/bin/sh", String::as_str));
                cmd.args(command.iter().skip(1));
                // SAFETY: chroot and chdir are async-signal-safe syscalls
                // and the closure allocates nothing (the path is a CString
                // made before the fork).
                unsafe {
                    cmd.pre_exec(move || {
                        rustix::process::chroot(root.as_c_str())?;
                        rustix::process::chdir(c"/")?;
                        Ok(())
                    });
                }
                Some(cmd)
            }
            (None, None) => None,
        };
        let status_json = match command_to_run {
            None => internal_error("no root filesystem for this pod"),
            Some(cmd) => {
                match stream_command(&mut ws, cmd, stdin_wanted, protocol, cut, captured.as_mut())
                    .await
                {
                    // A stream cut midway: the connection went away under the
                    // WebSocket, with no close frame and no status.
                    StreamEnd::Cut => return,
                    StreamEnd::Exited(status) => {
                        // A command killed by a signal (an OOM kill) exits 128 +
                        // the signal, as the runtimes report it.
                        let code = status.code().or_else(|| {
                            std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)
                        });
                        match code {
                            Some(0) => json!({"metadata": {}, "status": "Success"}),
                            code => {
                                json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: {code:?}"), "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.unwrap_or(-1).to_string()}]}})
                            }
                        }
                    }
                    StreamEnd::NotStarted(e) => {
                        // What containerd reports when the binary is missing, as
                        // the kubelet wraps it: not an exit code but
                        // `apierrors.NewInternalError` (ServeExec in
                        // staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go).
                        let program = command.first().map_or("", String::as_str);
                        let why = if e.kind() == std::io::ErrorKind::NotFound {
                            format!("stat {program}: no such file or directory")
                        } else {
                            e.to_string()
                        };
                        internal_error(&format!(
                            "failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: {why}: unknown"
                        ))
                    }
                }
            }
        };
        if let (Some(key), Some((out, err)), Some(n)) = (replay_key, captured, &nonce) {
            let strip = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .replace(n.as_str(), "<NONCE>")
                    .into_bytes()
            };
            if let Some(m) = counted.lock().unwrap().replay.as_mut() {
                m.insert(key, (strip(&out), strip(&err), status_json.clone()));
            }
        }
        let _ = ws
            .send(frame(3, &serde_json::to_vec(&status_json).unwrap()))
            .await;
        // A normal closure, as the API server's WebSocket stream ends.
        let _ = ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
        while let Some(Ok(_)) = ws.next().await {}
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .header("sec-websocket-protocol", protocol)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The status the kubelet writes when the runtime cannot run an exec:
/// `apierrors.NewInternalError(fmt.Errorf("error executing command in
/// container: %v", err))` (kubernetes/kubernetes
/// `staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go`,
/// `staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go`).
/// How a streamed command ended.
enum StreamEnd {
    /// It ran and exited.
    Exited(std::process::ExitStatus),
    /// It could not be started.
    NotStarted(std::io::Error),
    /// The stream was cut (an injected fault): nothing more is sent.
    Cut,
}

/// Run `cmd` and stream it over the exec WebSocket as the kubelet does:
/// stdout on channel 1 and stderr on channel 2 as they are produced (a
/// send waits for the client: backpressure), and, with `stdin`, channel 0
/// from the client into the command; under `v5.channel.k8s.io` a
/// `[255, 0]` message closes stdin (KEP-4006). With `cut`, the connection
/// goes away after half of the first stdout chunk.
async fn stream_command<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    mut cmd: tokio::process::Command,
    stdin: bool,
    protocol: &str,
    cut: bool,
    mut capture: Option<&mut (Vec<u8>, Vec<u8>)>,
) -> StreamEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    cmd.stdin(if stdin {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    })
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return StreamEnd::NotStarted(e),
    };
    let frame = |ch: u8, data: &[u8]| {
        let mut v = vec![ch];
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    let mut input = child.stdin.take();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (mut out_done, mut err_done, mut client_done) = (false, false, false);
    let (mut obuf, mut ebuf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    while !(out_done && err_done) {
        tokio::select! {
            n = out.read(&mut obuf), if !out_done => match n {
                Ok(0) | Err(_) => out_done = true,
                Ok(n) if cut => {
                    let _ = ws.send(frame(1, &obuf[..n / 2])).await;
                    let _ = child.kill().await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(ws.get_mut()).await;
                    return StreamEnd::Cut;
                }
                Ok(n) => {
                    if let Some(c) = capture.as_mut() {
                        c.0.extend_from_slice(&obuf[..n]);
                    }
                    let _ = ws.send(frame(1, &obuf[..n])).await;
                }
            },
            n = err.read(&mut ebuf), if !err_done => match n {
                Ok(0) | Err(_) => err_done = true,
                Ok(n) => {
                    if let Some(c) = capture.as_mut() {
                        c.1.extend_from_slice(&ebuf[..n]);
                    }
                    let _ = ws.send(frame(2, &ebuf[..n])).await;
                }
            },
            msg = ws.next(), if !client_done => match msg {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(0) => {
                        if let Some(i) = input.as_mut() && i.write_all(&data[1..]).await.is_err() {
                            input = None;
                        }
                    }
                    Some(255) if protocol == "v5.channel.k8s.io" && data.get(1) == Some(&0) => {
                        input = None;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_done = true;
                    input = None;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(input);
    match child.wait().await {
        Ok(status) => StreamEnd::Exited(status),
        Err(e) => StreamEnd::NotStarted(e),
    }
}

fn internal_error(runtime_error: &str) -> Value {
    let err = format!("error executing command in container: {runtime_error}");
    json!({
        "metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
        "message": format!("Internal error occurred: {err}"),
        "details": {"causes": [{"message": err}]}
    })
}

/// Answer a watch of one pod: wait until the pod has a resourceVersion
/// above `since` (or the timeout ends the watch, as a real server may), then
/// send its current state as one event. The latest state, not every
/// intermediate one: what a client waiting for a condition needs.
async fn watch_pod(
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    since: u64,
    timeout: Duration,
    bookmarks: bool,
) -> Response<Full<Bytes>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = st
        .lock()
        .unwrap()
        .changes
        .as_ref()
        .expect("the server tracks changes")
        .subscribe();
    loop {
        let current = st
            .lock()
            .unwrap()
            .objects
            .get(&("pods".into(), ns.into(), pod.into()))
            .cloned();
        let Some(current) = current else {
            let event = json!({"type": "DELETED", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns}}});
            return watch_body(&[event]);
        };
        let version: u64 = current["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version > since {
            return watch_body(&[json!({"type": "MODIFIED", "object": current})]);
        }
        // Nothing new for this pod, but the store moved on: a client that
        // allows them gets a BOOKMARK with the current version (the watch
        // cache sends them periodically, `cacher.go`), and resumes from it.
        let global = st.lock().unwrap().version;
        if bookmarks && global > since {
            return watch_body(&[
                json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": global.to_string()}}}),
            ]);
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return watch_body(&[]);
        }
    }
}

fn watch_body(events: &[Value]) -> Response<Full<Bytes>> {
    let mut body = Vec::new();
    for e in events {
        body.extend_from_slice(&serde_json::to_vec(e).unwrap());
        body.push(b'\n');
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn container_status(name: &str, state: Value) -> Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": state})
}

/// `PATCH pods/{pod}/ephemeralcontainers` (strategic merge: the listed
/// containers are appended). Validates as the API server does, then runs
/// the container in the background.
fn add_ephemeral(
    st: &Arc<Mutex<State>>,
    ns: &str,
    pod: &str,
    body: Value,
) -> Response<Full<Bytes>> {
    let mut guard = st.lock().unwrap();
    let key = ("pods".to_string(), ns.to_string(), pod.to_string());
    let Some(current) = guard.objects.get(&key).cloned() else {
        return respond(
            404,
            &status(404, "NotFound", &format!("pods \"{pod}\" not found")),
        );
    };
    let existing: Vec<String> = current["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let app: Vec<String> = current["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let added: Vec<Value> = body["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let invalid = |msg: String| respond(422, &status(422, "Invalid", &msg));
    for (i, c) in added.iter().enumerate() {
        let field = format!("spec.ephemeralContainers[{i}]");
        let Some(name) = c["name"].as_str() else {
            return invalid(format!("{field}.name: Required value"));
        };
        if existing.iter().any(|e| e == name) {
            return invalid(format!(
                "{field}: Forbidden: existing ephemeral containers \"{name}\" may not be changed"
            ));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            return invalid(format!("{field}.image: Required value"));
        }
        if c["resources"].as_object().is_some_and(|r| !r.is_empty()) {
            return invalid(format!(
                "{field}.resources: Forbidden: cannot be set for an Ephemeral Container"
            ));
        }
        if let Some(t) = c["targetContainerName"].as_str()
            && !app.iter().any(|a| a == t)
        {
            return invalid(format!("{field}.targetContainerName: Not found: \"{t}\""));
        }
    }
    // Pod Security Admission on the ephemeralcontainers subresource, when
    // the namespace enforces `restricted`.
    if guard.restricted.contains(ns) {
        for c in &added {
            let why = restricted_violations(&current, c);
            if !why.is_empty() {
                return respond(
                    403,
                    &status(
                        403,
                        "Forbidden",
                        &format!(
                            "pods \"{pod}\" is forbidden: violates PodSecurity \"restricted:latest\": {}",
                            why.join(", ")
                        ),
                    ),
                );
            }
        }
    }
    {
        let pod_obj = guard.objects.get_mut(&key).unwrap();
        let spec = &mut pod_obj["spec"];
        if !spec["ephemeralContainers"].is_array() {
            spec["ephemeralContainers"] = json!([]);
        }
        let list = spec["ephemeralContainers"].as_array_mut().unwrap();
        list.extend(added.iter().cloned());
        let status_obj = &mut pod_obj["status"];
        if !status_obj["ephemeralContainerStatuses"].is_array() {
            status_obj["ephemeralContainerStatuses"] = json!([]);
        }
        for c in &added {
            status_obj["ephemeralContainerStatuses"]
                .as_array_mut()
                .unwrap()
                .push(container_status(
                    c["name"].as_str().unwrap(),
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                ));
        }
    }
    guard.touch(ns, pod);
    let updated = guard.objects.get(&key).cloned().unwrap();
    drop(guard);
    for c in added {
        tokio::spawn(run_ephemeral(
            st.clone(),
            ns.to_string(),
            pod.to_string(),
            c,
        ));
    }
    respond(200, &updated)
}

/// What the Pod Security Standards' `restricted` level refuses in a
/// container of `pod` (`staging/src/k8s.io/pod-security-admission/policy/`:
/// `check_allowPrivilegeEscalation.go`, `check_capabilities_restricted.go`,
/// `check_runAsNonRoot.go`, `check_runAsUser.go`, `check_seccompProfile_restricted.go`).
fn restricted_violations(pod: &Value, c: &Value) -> Vec<String> {
    let sc = &c["securityContext"];
    let psc = &pod["spec"]["securityContext"];
    let name = c["name"].as_str().unwrap_or_default();
    let mut why = Vec::new();
    if sc["allowPrivilegeEscalation"] != false {
        why.push(format!("allowPrivilegeEscalation != false (container \"{name}\" must set securityContext.allowPrivilegeEscalation=false)"));
    }
    let drops = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == "ALL"));
    let adds_ok = sc["capabilities"]["add"]
        .as_array()
        .is_none_or(|a| a.iter().all(|x| x == "NET_BIND_SERVICE"));
    if !drops || !adds_ok {
        why.push(format!("unrestricted capabilities (container \"{name}\" must set securityContext.capabilities.drop=[\"ALL\"] and add only NET_BIND_SERVICE)"));
    }
    let non_root = sc["runAsNonRoot"]
        .as_bool()
        .or(psc["runAsNonRoot"].as_bool())
        == Some(true);
    if !non_root {
        why.push(format!(
            "runAsNonRoot != true (container \"{name}\" must set securityContext.runAsNonRoot=true)"
        ));
    }
    if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && psc["runAsUser"] == 0) {
        why.push(format!(
            "runAsUser=0 (container \"{name}\" must not set runAsUser=0)"
        ));
    }
    let seccomp = sc["seccompProfile"]["type"]
        .as_str()
        .or(psc["seccompProfile"]["type"].as_str());
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        why.push(format!("seccompProfile (container \"{name}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"));
    }
    why
}

fn set_ephemeral_state(st: &Arc<Mutex<State>>, ns: &str, pod: &str, name: &str, state: Value) {
    let mut guard = st.lock().unwrap();
    let key = ("pods".to_string(), ns.to_string(), pod.to_string());
    if let Some(p) = guard.objects.get_mut(&key)
        && let Some(list) = p["status"]["ephemeralContainerStatuses"].as_array_mut()
        && let Some(s) = list.iter_mut().find(|s| s["name"] == name)
    {
        s["state"] = state;
    }
    guard.touch(ns, pod);
}

/// The capabilities containerd gives a container by default
/// (`defaultUnixCaps` in containerd's `pkg/oci/spec.go`).
const DEFAULT_CAPS: [&str; 14] = [
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
fn process_credentials(
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
fn ptrace_may_read(
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
fn probe_may_read(pod: &Value, scanner: &Value, target: &str) -> bool {
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
fn probe_process(
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

/// Run an ephemeral container: the scanner image runs the real probe with
/// `--proc` at a proc tree for the pod — the target container's PID
/// namespace, where its entrypoint is PID 1, or, in a pod with
/// `shareProcessNamespace: true`, the pod's, where PID 1 is `pause`. The
/// kernel's ptrace access check decides whether the probe may open the
/// target's root: when it may not, the root is a directory the probe (then
/// run as nobody) cannot open, so it fails with EACCES as on a node.
async fn run_ephemeral(st: Arc<Mutex<State>>, ns: String, pod: String, c: Value) {
    let name = c["name"].as_str().unwrap_or_default().to_string();
    let command: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let (probe, tree, allowed) = {
        let guard = st.lock().unwrap();
        let pod_obj = guard
            .objects
            .get(&("pods".into(), ns.clone(), pod.clone()))
            .cloned()
            .unwrap_or(Value::Null);
        let root = guard.rootfs.get(&(ns.clone(), pod.clone())).cloned();
        let target = c["targetContainerName"].as_str().unwrap_or_default();
        let shared = pod_obj["spec"]["shareProcessNamespace"] == true;
        let tree = root.map(|r| {
            let target = (!shared).then_some(target);
            proc_tree(&guard.dir, &pod_obj, &r, target, None)
        });
        let allowed = probe_may_read(&pod_obj, &c, target);
        (guard.probe_bin.clone(), tree, allowed)
    };
    let image = c["image"].as_str().unwrap_or_default().to_string();
    if st
        .lock()
        .unwrap()
        .unpullable
        .iter()
        .any(|p| image.starts_with(p.as_str()))
    {
        set_ephemeral_state(
            &st,
            &ns,
            &pod,
            &name,
            json!({"waiting": {"reason": "ErrImagePull", "message": format!("failed to pull and unpack image \"{image}\": failed to resolve reference: pull access denied, repository does not exist or may require authorization")}}),
        );
        return;
    }
    let (Some(probe), Some(tree), true) = (probe, tree, is_probe_command(&command)) else {
        set_ephemeral_state(
            &st,
            &ns,
            &pod,
            &name,
            json!({"waiting": {"reason": "ErrImagePull", "message": "the test server runs only the vigil scanner image's probe"}}),
        );
        return;
    };
    set_ephemeral_state(
        &st,
        &ns,
        &pod,
        &name,
        json!({"running": {"startedAt": "2026-11-26T00:00:00Z"}}),
    );
    let mut cmd = probe_process(&probe, &command[1..], &tree, allowed);
    let out = cmd.output().await;
    let (log, code) = match out {
        Ok(o) => {
            let mut log = o.stdout;
            log.extend_from_slice(&o.stderr);
            (log, o.status.code().unwrap_or(128))
        }
        Err(e) => (e.to_string().into_bytes(), 128),
    };
    st.lock()
        .unwrap()
        .logs
        .insert((ns.clone(), pod.clone(), name.clone()), log);
    set_ephemeral_state(
        &st,
        &ns,
        &pod,
        &name,
        json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}),
    );
}

/// The scanner image's entrypoint, as `approach::PROBE_BINARY` names it.
fn is_probe_command(command: &[String]) -> bool {
    command.first().is_some_and(|c| c == "/usr/local/bin/vigil")
        && command.get(1).is_some_and(|c| c == "probe")
}

/// A 64-hex container ID from a container status, without the runtime prefix.
fn status_container_id(pod: &Value, container: &str) -> Option<String> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == container)?["containerID"]
        .as_str()
        .map(|id| id.split_once("://").map_or(id, |(_, b)| b).to_string())
}

/// Build a proc tree for a pod, as the probe would see it:
/// - `target: Some(c)`: the PID namespace of container `c` (an ephemeral
///   container targeting it): PID 1 is `c`'s entrypoint;
/// - `target: None`: the pod's shared PID namespace: PID 1 is the pause
///   container, then one process per container, each in a cgroup named
///   after its container ID; `own` is the container the probe runs in
///   (its root is not the fixture's).
fn proc_tree(
    dir: &Path,
    pod: &Value,
    root: &Path,
    target: Option<&str>,
    own: Option<&str>,
) -> PathBuf {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("0000");
    // One tree per container start or exec: concurrent scans of a pod never
    // share one.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tree = dir.join("proc").join(ns).join(name).join(format!(
        "{}-{}",
        target.map_or_else(|| "shared".to_string(), |t| format!("target-{t}")),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let empty = dir.join("proc").join("empty-root");
    std::fs::create_dir_all(&empty).unwrap();
    let add = |pid: u32, root: &Path, cgroup: String, proc_name: &str, user: i64, cmdline: &str| {
        let p = tree.join(pid.to_string());
        std::fs::create_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(root, p.join("root")).unwrap();
        std::fs::write(p.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        std::fs::write(
            p.join("status"),
            format!("Name:\t{proc_name}\nState:\tS (sleeping)\nPid:\t{pid}\nUid:\t{user}\t{user}\t{user}\t{user}\n"),
        )
        .unwrap();
        std::fs::write(p.join("cmdline"), cmdline.replace(' ', "\0") + "\0").unwrap();
    };
    let slice = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        uid.replace('-', "_")
    );
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let user_of = |c: &Value| {
        c["securityContext"]["runAsUser"]
            .as_i64()
            .or(pod["spec"]["securityContext"]["runAsUser"].as_i64())
            .unwrap_or(0)
    };
    let command_of = |c: &Value| {
        c["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| c["name"].as_str().unwrap_or("app").to_string())
    };
    match target {
        Some(t) => {
            let c = containers
                .iter()
                .find(|c| c["name"] == t)
                .cloned()
                .unwrap_or(Value::Null);
            let id = status_container_id(pod, t).unwrap_or_else(|| "0".repeat(64));
            add(
                1,
                root,
                format!("{slice}/cri-containerd-{id}.scope"),
                t,
                user_of(&c),
                &command_of(&c),
            );
        }
        None => {
            add(
                1,
                &empty,
                format!("{slice}/cri-containerd-{}.scope", "f".repeat(64)),
                "pause",
                65535,
                "/pause",
            );
            for (i, c) in containers.iter().enumerate() {
                let cname = c["name"].as_str().unwrap_or_default();
                let Some(id) = status_container_id(pod, cname) else {
                    continue;
                };
                let croot = if Some(cname) == own { &empty } else { root };
                add(
                    10 + i as u32,
                    croot,
                    format!("{slice}/cri-containerd-{id}.scope"),
                    cname,
                    user_of(c),
                    &command_of(c),
                );
            }
        }
    }
    tree
}
