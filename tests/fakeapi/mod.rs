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

mod audit;
mod auth;
mod discovery;
mod ephemeral;
mod exec;
mod kernel;
mod paging;
mod rbac;
mod routes;

use auth::*;
use discovery::*;
use ephemeral::*;
use exec::*;
use kernel::*;
use rbac::*;
use routes::*;

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
    /// When its answer was ready (for exec and other upgrades: the 101,
    /// before the stream).
    pub done: Instant,
}

/// The longest chain of requests in `log` each sent after the one before
/// it was answered: the round trips a client waited for one after
/// another. With latency injected, requests sent together (one round)
/// all arrive before any of them is answered.
pub fn round_trips(log: &[&Logged]) -> usize {
    let mut by_arrival = log.to_vec();
    by_arrival.sort_by_key(|l| l.at);
    let mut chain = vec![1usize; by_arrival.len()];
    for i in 0..by_arrival.len() {
        for j in 0..i {
            if by_arrival[j].done <= by_arrival[i].at {
                chain[i] = chain[i].max(chain[j] + 1);
            }
        }
    }
    chain.into_iter().max().unwrap_or(0)
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
    /// Hold this many exec requests until [`FakeApiServer::release_held`]
    /// (a scan kept in flight while a test acts).
    pub exec_held: u32,
    /// Answer this many pod watches with a 410 Gone ERROR event (the
    /// version was compacted away).
    pub watch_gone: u32,
    /// Answer this many of the admin identity's requests (the caller's)
    /// with 429 and `Retry-After: 3600`: the API server's priority and
    /// fairness rejecting before any work
    /// (`staging/src/k8s.io/apiserver/pkg/server/filters/priority-and-fairness.go`).
    pub caller_429: u32,
    /// The same with 503 (an overloaded or restarting API server).
    pub caller_503: u32,
    /// Bytes of other output the next debug container prints before the
    /// probe's (a chatty or hostile container log).
    pub log_noise: usize,
    /// Answer this many list requests that carry a continue token with 410
    /// Expired (the listing's version was compacted away mid-listing).
    pub list_continue_gone: u32,
    /// A hostile server: every page asked for with a continue token
    /// answers with that same token (a listing that never ends).
    pub list_same_continue: bool,
    /// A hostile server: every list carries this many bytes of padding.
    pub list_padding: usize,
    /// Never answer this many namespaced list requests (a server that
    /// accepts a request and holds it).
    pub list_hang: u32,
    /// A hostile server: the next ephemeral-container patch answers with
    /// this many bytes of padding in the pod it returns.
    pub patch_padding: usize,
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
    /// Labels set on namespaces (`label_namespace`).
    namespace_labels: HashMap<String, std::collections::BTreeMap<String, String>>,
    /// Replay mode: exec answers recorded per (root, command with its
    /// nonce taken out) — stdout, stderr, status — served without starting
    /// a process (benchmarks measure vigil, not the gatherers).
    replay: Option<HashMap<String, Recorded>>,
    /// The audit Policy (`--audit-policy-file`), when auditing is on, and
    /// the log backend's lines.
    audit_policy: Option<Value>,
    audit_log: Vec<String>,
    /// The log backend's file (`--audit-log-path`), written as events happen.
    audit_file: Option<std::fs::File>,
    /// Released, and the wake-up of held execs.
    exec_gate: Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>,
}

impl State {
    /// The level `ns` enforces (`pod-security.kubernetes.io/enforce`), if
    /// baseline or restricted.
    fn enforced_level(&self, ns: &str) -> Option<&'static str> {
        if self.restricted.contains(ns) {
            return Some("restricted");
        }
        match self
            .namespace_labels
            .get(ns)
            .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
            .map(String::as_str)
        {
            Some("restricted") => Some("restricted"),
            Some("baseline") => Some("baseline"),
            _ => None,
        }
    }

    /// A namespace's object: it exists when something lives in it or it
    /// was labelled; its labels carry `kubernetes.io/metadata.name` as the
    /// API server sets it (the NamespaceDefaultLabelName feature, GA 1.22).
    fn namespace_object(&self, ns: &str) -> Option<Value> {
        let exists = self.objects.keys().any(|(_, n, _)| n == ns)
            || self.namespace_labels.contains_key(ns)
            || self.restricted.contains(ns);
        if !exists {
            return None;
        }
        let mut labels: serde_json::Map<String, Value> = serde_json::Map::new();
        labels.insert("kubernetes.io/metadata.name".into(), ns.into());
        if self.restricted.contains(ns) {
            labels.insert(
                "pod-security.kubernetes.io/enforce".into(),
                "restricted".into(),
            );
        }
        for (k, v) in self.namespace_labels.get(ns).into_iter().flatten() {
            labels.insert(k.clone(), v.clone().into());
        }
        Some(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": format!("uid-ns-{ns}"), "labels": labels},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        }))
    }

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
                let Ok((tcp, peer)) = listener.accept().await else {
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
                        handle(req, st.clone(), lat.clone(), notify.clone(), peer.ip())
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

    /// Set a label on namespace `ns` (its object is served at
    /// `GET /api/v1/namespaces/{ns}`).
    pub fn label_namespace(&self, ns: &str, key: &str, value: &str) {
        self.state
            .lock()
            .unwrap()
            .namespace_labels
            .entry(ns.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
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

    /// A stored object, by resource, namespace and name.
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Let held execs go on (see [`Faults::exec_held`]).
    pub fn release_held(&self) {
        let gate = self.state.lock().unwrap().exec_gate.clone();
        gate.0.store(true, Ordering::SeqCst);
        gate.1.notify_waiters();
    }

    /// Turn on the audit log with this `audit.k8s.io/v1` Policy.
    pub fn set_audit_policy(&self, policy: Value) {
        self.state.lock().unwrap().audit_policy = Some(policy);
    }

    /// Also write the audit log to `path` as events happen, as the log
    /// backend does (`--audit-log-path`).
    pub fn set_audit_log_file(&self, path: &Path) {
        self.state.lock().unwrap().audit_file = Some(std::fs::File::create(path).unwrap());
    }

    /// The audit log so far, as the log backend writes it (JSON lines).
    pub fn audit_log(&self) -> String {
        let g = self.state.lock().unwrap();
        g.audit_log.iter().map(|l| format!("{l}\n")).collect()
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
