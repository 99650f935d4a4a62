//! The one place that holds a `kube::Client`: typed operations the rest of
//! vigil calls (list pods, create and delete the run's access objects,
//! TokenRequest, exec). Everything else stays free of Kubernetes clients, so
//! it can be tested without one.
//!
//! Two identities are used, never mixed: the caller's (from the kubeconfig)
//! only lists pods and manages the run's access objects; scans run with a
//! short-lived token bound to the run ([`Cluster::scoped`]).

pub(crate) mod limit;
mod list;
mod tls;

use std::fmt;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::AsyncReadExt;

/// A bearer token. Never shown: `Debug` prints `Token(<redacted>)`, and there is no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The secret value, for building a client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token's credential id as the API server logs it (`JTI=<jti>`,
    /// KEP-4193, Kubernetes 1.29+): the `jti` claim of the JWT payload.
    /// The claim is read, not verified: vigil only reads an id from a
    /// token it was just handed over TLS. `None` for tokens without one.
    pub fn credential_id(&self) -> Option<String> {
        use base64::Engine as _;
        let payload = self.0.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let jti = claims.get("jti")?.as_str()?;
        (!jti.is_empty() && jti.len() <= 128 && jti.chars().all(|c| c.is_ascii_graphic()))
            .then(|| format!("JTI={jti}"))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Cluster errors, rendered without tokens or request bodies.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The kubeconfig disables TLS verification.
    #[error(
        "the kubeconfig context disables TLS verification (insecure-skip-tls-verify); vigil refuses that unless --insecure-skip-tls-verify is given"
    )]
    InsecureConfig,
    /// The API server refused (status code, reason and its message).
    #[error(
        "{verb} {what}: the API server answered {code} ({reason}){}",
        api_message(message)
    )]
    Api {
        /// What was attempted.
        verb: &'static str,
        /// The object.
        what: String,
        /// HTTP status.
        code: u16,
        /// Kubernetes reason.
        reason: String,
        /// The Status message of a refusal (why: an admission plugin's
        /// verdict, the missing right; see `refusal_message`).
        message: String,
        /// `details.retryAfterSeconds` (429 and some 5xx).
        retry_after: Option<u32>,
    },
    /// A container sent more than vigil accepts (not retried).
    #[error("{what}: output exceeded {max_bytes} bytes")]
    TooLarge {
        /// The call.
        what: String,
        /// The cap.
        max_bytes: usize,
    },
    /// TLS refused a certificate (the server's, its CA's or the
    /// kubeconfig's client certificate); not retried.
    #[error("{what}: {message}")]
    Certificate {
        /// What was attempted.
        what: String,
        /// What rustls said, then (once the kubeconfig is known) which
        /// certificate is at fault and what to change.
        message: String,
    },
    /// The caller refused what a container sent and ended the exec (not
    /// retried: the caller knows why).
    #[error("{what}: output refused")]
    Refused {
        /// The call.
        what: String,
    },
    /// Anything else on the way (connection, TLS, protocol).
    #[error("{verb} {what}: {message}")]
    Transport {
        /// What was attempted.
        verb: &'static str,
        /// The object.
        what: String,
        /// Why.
        message: String,
    },
}

/// What of an error Status's message is kept: the API server's own
/// refusals (400, 403, 409, 422: what admission, authorization or
/// validation refused, and why) are worth a person's reading; a 5xx body is
/// often a proxy quoting its upstream, which can carry anything, so it is
/// dropped. Secrets are redacted and the text capped either way.
fn refusal_message(code: u16, message: &str) -> String {
    if matches!(code, 400 | 403 | 409 | 422) {
        crate::safeio::excerpt(&redact_error(message), 600)
    } else {
        String::new()
    }
}

/// The API server's message after its code, when it said one.
fn api_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl ClusterError {
    fn from_kube(verb: &'static str, what: impl Into<String>, e: kube::Error) -> ClusterError {
        let what = what.into();
        match e {
            kube::Error::Api(s) => ClusterError::Api {
                verb,
                what,
                code: s.code,
                reason: s.reason.clone(),
                message: refusal_message(s.code, &s.message),
                retry_after: s
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|&n| n > 0),
            },
            // An exec refused before the WebSocket upgrade.
            kube::Error::UpgradeConnection(
                kube::client::UpgradeConnectionError::ProtocolSwitch(code),
            ) => ClusterError::Api {
                verb,
                what,
                code: code.as_u16(),
                reason: code.canonical_reason().unwrap_or_default().to_string(),
                message: String::new(),
                retry_after: None,
            },
            other => {
                let message = redact_error(&tls::chain(&other));
                // http-body-util's `LengthLimitError`, from capped_client.
                if message.contains("length limit exceeded") {
                    return ClusterError::TooLarge {
                        what: format!("{verb} {what}"),
                        max_bytes: ANSWER_BYTES,
                    };
                }
                if tls::refused_certificate(&message) {
                    ClusterError::Certificate {
                        what: format!("{verb} {what}"),
                        message,
                    }
                } else {
                    ClusterError::Transport {
                        verb,
                        what,
                        message,
                    }
                }
            }
        }
    }

    /// For an error worth retrying, how long the server asked to wait (if it
    /// said); `None` for errors a retry cannot fix (401, 403, 404, 409,
    /// 422, bad configuration). Transient: 429, 5xx, and transport failures
    /// (a reset connection, an exec stream cut midway).
    pub fn transient(&self) -> Option<Option<std::time::Duration>> {
        match self {
            ClusterError::Api {
                code, retry_after, ..
            } if *code == 429 || (500..600).contains(code) => {
                Some(retry_after.map(|s| std::time::Duration::from_secs(u64::from(s))))
            }
            ClusterError::Transport { .. } => Some(None),
            _ => None,
        }
    }

    /// Returns true if and only if the API server answered 429 (throttled).
    pub fn is_throttled(&self) -> bool {
        matches!(self, ClusterError::Api { code: 429, .. })
    }

    /// Returns true if and only if the API server answered 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ClusterError::Api { code: 403, .. })
    }

    /// Returns true if and only if the API server answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Api { code: 404, .. })
    }
}

/// Errors from libraries can quote request headers; cut anything after
/// "Bearer" so a token can never reach a message.
fn redact_error(s: &str) -> String {
    let s = redact_userinfo(s);
    match s.find("Bearer") {
        Some(i) => format!("{}Bearer <redacted>", &s[..i]),
        None => s,
    }
}

/// A proxy URL can carry a password (`http://user:secret@proxy:3128`) and
/// kube quotes the URL in its errors: keep only the host.
fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<redacted>@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// A connection to one cluster, as one identity.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    config: kube::Config,
    /// The run's API rate limit, shared with every scoped client made from
    /// this one.
    limit: Option<std::sync::Arc<limit::RateLimit>>,
    /// The scoped token, for scoped clients (an external scanner gets it in
    /// a kubeconfig of its own).
    token: Option<Token>,
    /// How long one call (one attempt, one page) may wait for its whole
    /// answer (`limits.apiTimeout`).
    call_timeout: std::time::Duration,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cluster({})", self.config.cluster_url)
    }
}

/// How often the caller's client retries a throttled or unavailable request.
const CALLER_RETRIES: u32 = 3;

/// How long one call may wait for its answer when no policy says (see
/// `limits.apiTimeout`): a server that accepts a request and never answers
/// it cannot hold a run.
const DEFAULT_CALL_TIMEOUT: std::time::Duration = crate::policy::model::DEFAULT_API_TIMEOUT;

/// Bytes of any one answer the caller's client reads (kube reads answers,
/// refusals included, whole): twice a pod list page's own cap, which
/// paging meets first and answers by asking for fewer pods. Objects are
/// under 1.5 MiB (etcd), so only a broken or hostile server comes near.
const ANSWER_BYTES: usize = 2 * PAGE_BYTES;

/// The caller's client: kube's, every answer's body cut at
/// [`ANSWER_BYTES`] while it is read. (Scoped clients stream scan output
/// and watches, which their readers cap themselves.)
fn capped_client(config: &kube::Config) -> Result<kube::Client, kube::Error> {
    let cap = tower_http::map_response_body::MapResponseBodyLayer::new(|body| {
        http_body_util::Limited::new(body, ANSWER_BYTES)
    });
    Ok(kube::client::ClientBuilder::try_from(config.clone())?
        .with_layer(&cap)
        .build())
}

/// Bytes of one object's answer a scan reads (an ephemeral container's
/// patch answers with the whole pod): etcd keeps an object under 1.5 MiB.
const OBJECT_BYTES: usize = 16 << 20;

/// Pods asked for in one page of a listing: client-go's pager's page size
/// (`defaultPageSize` in staging/src/k8s.io/client-go/tools/pager/pager.go).
const PAGE_PODS: u32 = 500;

/// Bytes of one page's answer vigil reads. Real pods are a few KB to a few
/// tens of KB, so 500 of them fit many times over; a page over it is asked
/// again with an eighth of the pods, down to one pod, which etcd's object
/// limit (1.5 MiB) keeps far below it.
const PAGE_BYTES: usize = 64 << 20;

/// Pods one listing may give: Kubernetes' documented limit for a whole
/// cluster (kubernetes.io/docs/setup/best-practices/cluster-large: no more
/// than 150,000 pods); an API server that keeps listing past it is not
/// followed.
const MAX_LISTED_PODS: usize = 150_000;

impl Cluster {
    /// [`Cluster::retrying`] with each attempt given [`Cluster::with_call_timeout`]'s
    /// time to answer; `call` names the verb and object for the error.
    async fn calling<T, F, Fut>(
        &self,
        idempotent: bool,
        call: (&'static str, String),
        mut attempt: F,
    ) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClusterError>>,
    {
        self.retrying(idempotent, || self.answered(&call, attempt()))
            .await
    }

    /// `answer`, or an error naming `call` when it has not come within the
    /// call timeout.
    async fn answered<T>(
        &self,
        call: &(&'static str, String),
        answer: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.call_timeout, answer)
            .await
            .unwrap_or_else(|_| {
                Err(ClusterError::Transport {
                    verb: call.0,
                    what: call.1.clone(),
                    message: format!(
                        "the API server did not answer within {} (limits.apiTimeout)",
                        crate::policy::duration::format(self.call_timeout)
                    ),
                })
            })
    }

    /// Run one of the caller's calls, retrying what the API server did not
    /// do: 429 (throttled: refused before any work) always, 503 and 504 only
    /// for a call that may safely run twice (`idempotent`), at most
    /// [`CALLER_RETRIES`] times, 0.5 s doubling to 5 s. A server's
    /// Retry-After is not obeyed (it would let the server set how long a
    /// run waits). A scoped client (a scan's) never retries here: scans
    /// count their own retries.
    async fn retrying<T, F, Fut>(&self, idempotent: bool, mut call: F) -> Result<T, ClusterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClusterError>>,
    {
        let mut attempt = 0u32;
        loop {
            match call().await {
                Err(ClusterError::Api { code, .. })
                    if self.token.is_none()
                        && attempt < CALLER_RETRIES
                        && (code == 429 || (idempotent && matches!(code, 503 | 504))) =>
                {
                    let wait = std::time::Duration::from_millis(500) * 2u32.pow(attempt);
                    tokio::time::sleep(wait.min(std::time::Duration::from_secs(5))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Connect with the kubeconfig (KUBECONFIG or ~/.kube/config), the
    /// given context or the current one; inside a pod without a kubeconfig,
    /// with the in-cluster configuration. TLS verification stays on unless
    /// `allow_insecure` is set.
    pub async fn connect(
        context: Option<&str>,
        allow_insecure: bool,
    ) -> Result<Cluster, ClusterError> {
        Cluster::connect_with(None, context, allow_insecure).await
    }

    /// Like [`Cluster::connect`] with an explicit kubeconfig file.
    pub async fn connect_with(
        path: Option<&std::path::Path>,
        context: Option<&str>,
        allow_insecure: bool,
    ) -> Result<Cluster, ClusterError> {
        // Where a kubeconfig comes from. One that exists but cannot be
        // loaded is an error naming it, never a silent fall back to the
        // in-cluster identity (in a CI pod that would scan another cluster).
        let from_env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
        let home = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".kube").join("config"));
        let source = match (path, &from_env, &home) {
            (Some(p), _, _) => Some(p.display().to_string()),
            (None, Some(v), _) => Some(format!("KUBECONFIG={}", v.to_string_lossy())),
            (None, None, Some(h)) if h.exists() => Some(h.display().to_string()),
            _ => None,
        };
        let mut config = match &source {
            Some(source) => {
                let kubeconfig = match path {
                    Some(p) => Kubeconfig::read_from(p),
                    None => Kubeconfig::read(),
                }
                .map_err(|e| {
                    ClusterError::Config(format!(
                        "cannot load the kubeconfig ({source}): {}",
                        redact_error(&e.to_string())
                    ))
                })?;
                // A context the kubeconfig does not have: say which it has
                // (kube's own error names only the missing one).
                if let Some(want) = context
                    && !kubeconfig.contexts.iter().any(|c| c.name == want)
                {
                    let known: Vec<String> = kubeconfig
                        .contexts
                        .iter()
                        .map(|c| crate::safeio::printable(&c.name).into_owned())
                        .collect();
                    return Err(ClusterError::Config(format!(
                        "context `{}` is not in the kubeconfig ({source}); its contexts: {}",
                        crate::safeio::printable(want),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
                let options = KubeConfigOptions {
                    context: context.map(str::to_string),
                    ..KubeConfigOptions::default()
                };
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        ClusterError::Config(format!(
                            "kubeconfig ({source}): {}",
                            redact_error(&e.to_string())
                        ))
                    })?
            }
            // Inside a pod (the in-cluster CronJob) there is no kubeconfig:
            // use the pod's ServiceAccount and the cluster CA it mounts.
            None if context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                kube::Config::incluster()
                    .map_err(|e| ClusterError::Config(redact_error(&e.to_string())))?
            }
            None => {
                return Err(ClusterError::Config(
                    "no kubeconfig: set KUBECONFIG or create ~/.kube/config (inside a pod, the in-cluster ServiceAccount is used)"
                        .into(),
                ));
            }
        };
        if config.accept_invalid_certs && !allow_insecure {
            return Err(ClusterError::InsecureConfig);
        }
        // kube's default retries a request 15 times with delays up to
        // 1000 s (`RetryPolicy::server_retry`), behind the run's deadline,
        // rate limit and signals: the caller's calls retry in
        // [`Cluster::retrying`] instead.
        config.default_retry = false;
        // A client certificate rustls cannot parse (X.509 v1) fails here.
        let client = capped_client(&config).map_err(|e| {
            let message = redact_error(&tls::chain(&e));
            ClusterError::Config(match tls::explain(&message, &config) {
                Some(why) => format!("{why} ({message})"),
                None => message,
            })
        })?;
        Ok(Cluster {
            client,
            config,
            limit: None,
            token: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// A kube error as a [`ClusterError`]; a refused certificate also
    /// says which certificate of this client's configuration is at fault.
    fn fail(&self, verb: &'static str, what: impl Into<String>, e: kube::Error) -> ClusterError {
        match ClusterError::from_kube(verb, what, e) {
            ClusterError::Certificate { what, message } => ClusterError::Certificate {
                message: match tls::explain(&message, &self.config) {
                    Some(why) => format!("{why} ({message})"),
                    None => message,
                },
                what,
            },
            other => other,
        }
    }

    /// The same API server and CA, authenticated only by `token` (no client
    /// certificate, no exec plugin, nothing else from the kubeconfig).
    pub fn scoped(&self, token: &Token) -> Result<Cluster, ClusterError> {
        let mut config = kube::Config::new(self.config.cluster_url.clone());
        config.root_cert = self.config.root_cert.clone();
        config.accept_invalid_certs = self.config.accept_invalid_certs;
        config.tls_server_name = self.config.tls_server_name.clone();
        // The kubeconfig's proxy-url (or HTTPS_PROXY, less NO_PROXY), as
        // kube resolved it for the caller's client.
        config.proxy_url = self.config.proxy_url.clone();
        config.auth_info.token = Some(token.expose().to_string().into());
        // Scans retry themselves (counted, with backoff and jitter, see
        // `approach`); the client must not retry behind their back.
        config.default_retry = false;
        let client = kube::Client::try_from(config.clone())
            .map_err(|e| ClusterError::Config(redact_error(&e.to_string())))?;
        Ok(Cluster {
            client,
            config,
            limit: self.limit.clone(),
            token: Some(token.clone()),
            call_timeout: self.call_timeout,
        })
    }

    /// A kubeconfig that carries only this scoped client's identity: the API
    /// server's address and CA, and the run's token (no client certificate,
    /// no exec plugin, nothing else from the caller's kubeconfig). For an
    /// external scanner; the caller writes it to a private 0600 file.
    /// `None` for the caller's own client.
    pub fn scoped_kubeconfig(&self, namespace: &str) -> Option<String> {
        use base64::Engine as _;
        let token = self.token.as_ref()?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut pem = String::new();
        for der in self.config.root_cert.iter().flatten() {
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            let encoded = b64.encode(der);
            for chunk in encoded.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        let mut cluster = serde_json::json!({"server": self.config.cluster_url.to_string()});
        if !pem.is_empty() {
            cluster["certificate-authority-data"] = b64.encode(pem).into();
        }
        if let Some(name) = &self.config.tls_server_name {
            cluster["tls-server-name"] = name.clone().into();
        }
        if self.config.accept_invalid_certs {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        if let Some(proxy) = &self.config.proxy_url {
            cluster["proxy-url"] = proxy.to_string().into();
        }
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "vigil", "cluster": cluster}],
            "users": [{"name": "vigil-scan", "user": {"token": token.expose()}}],
            "contexts": [{"name": "vigil", "context": {"cluster": "vigil", "user": "vigil-scan", "namespace": namespace}}],
            "current-context": "vigil",
        });
        // JSON is YAML; kubectl and train-kubernetes read it as such.
        Some(serde_json::to_string_pretty(&doc).expect("kubeconfigs serialize"))
    }

    /// Limit every request of this client and of the scoped clients made
    /// from it to `qps` on average (see [`limit`]).
    pub fn with_rate_limit(mut self, qps: f64) -> Cluster {
        self.limit = Some(std::sync::Arc::new(limit::RateLimit::new(qps)));
        self
    }

    /// Give up on a call (one attempt, one page) whose answer has not come
    /// within `limit`, for this client and the scoped clients made from it
    /// (see [`DEFAULT_CALL_TIMEOUT`]).
    pub(crate) fn with_call_timeout(mut self, limit: std::time::Duration) -> Cluster {
        self.call_timeout = limit;
        self
    }

    async fn throttle(&self) {
        if let Some(l) = &self.limit {
            l.acquire().await;
        }
    }

    /// Every pod in a namespace (the planner applies selectors itself),
    /// each given to `keep` as it is read: the list never exists whole as
    /// `Pod`s (several times its JSON in memory: a namespace of a few
    /// thousand real pods is a hundred MB), only as what `keep` keeps.
    pub async fn list_pods<T>(
        &self,
        namespace: &str,
        keep: &(dyn Fn(Pod) -> Option<T> + Sync),
    ) -> Result<Vec<T>, ClusterError> {
        self.retrying(true, || self.list_pods_once(namespace, keep))
            .await
    }

    /// One listing, page by page as client-go's pager asks
    /// (`limit`, then `continue`; staging/src/k8s.io/client-go/tools/pager),
    /// each page read up to [`PAGE_BYTES`]: a namespace is never one answer
    /// of unbounded size. A page over the cap is asked again with fewer
    /// pods; a continue token that expired mid-listing (410 Expired, the
    /// store compacted) starts the listing again, twice at most.
    async fn list_pods_once<T>(
        &self,
        namespace: &str,
        keep: &(dyn Fn(Pod) -> Option<T> + Sync),
    ) -> Result<Vec<T>, ClusterError> {
        use serde::de::DeserializeSeed as _;
        let what = || format!("pods in {namespace}");
        let mut kept = Vec::new();
        let mut next: Option<String> = None;
        let mut limit = PAGE_PODS;
        let mut listed = 0usize;
        let mut restarts = 0;
        loop {
            let page = match self.list_page(namespace, limit, next.as_deref()).await {
                Ok(page) => page,
                Err(ClusterError::TooLarge { .. }) if limit > 1 => {
                    limit = (limit / 8).max(1);
                    continue;
                }
                Err(ClusterError::Api { code: 410, .. }) if next.is_some() && restarts < 2 => {
                    restarts += 1;
                    (kept, next, listed) = (Vec::new(), None, 0);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut de = serde_json::Deserializer::from_slice(&page);
            let read = list::Items {
                keep,
                kept: &mut kept,
            }
            .deserialize(&mut de)
            .and_then(|read| de.end().map(|()| read))
            .map_err(|e| self.fail("list", what(), kube::Error::SerdeError(e)))?;
            listed += read.items;
            let protocol = |message: String| ClusterError::Transport {
                verb: "list",
                what: what(),
                message,
            };
            if listed > MAX_LISTED_PODS {
                return Err(protocol(format!(
                    "the API server listed more than {MAX_LISTED_PODS} pods, Kubernetes' documented limit for a whole cluster; vigil stops reading rather than hold them"
                )));
            }
            match read.next {
                None => return Ok(kept),
                Some(token) if read.items == 0 || next.as_deref() == Some(token.as_str()) => {
                    return Err(protocol(format!(
                        "the API server gave a page of {} pods with the continue token it was asked with, or none: the listing would not end",
                        read.items
                    )));
                }
                Some(token) => next = Some(token),
            }
        }
    }

    /// One page of a pod listing, its answer read up to [`PAGE_BYTES`]
    /// (more is [`ClusterError::TooLarge`]).
    async fn list_page(
        &self,
        namespace: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Vec<u8>, ClusterError> {
        let call = ("list", format!("pods in {namespace}"));
        self.answered(&call, self.list_page_unbounded(namespace, limit, next))
            .await
    }

    async fn list_page_unbounded(
        &self,
        namespace: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Vec<u8>, ClusterError> {
        use futures_util::AsyncBufReadExt as _;
        self.throttle().await;
        let what = || format!("pods in {namespace}");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut params = ListParams::default().limit(limit);
        if let Some(token) = next {
            params = params.continue_token(token);
        }
        let mut req = kube::core::Request::new(api.resource_url())
            .list(&params)
            .map_err(|e| self.fail("list", what(), kube::Error::BuildRequest(e)))?;
        req.extensions_mut().insert("list");
        let body = self
            .client
            .request_stream(req)
            .await
            .map_err(|e| self.fail("list", what(), e))?;
        // Chunk by chunk as they arrive (no zero-filled read buffer), and no
        // further than the cap.
        let mut body = Box::pin(body);
        let mut page = Vec::new();
        loop {
            let chunk = body
                .fill_buf()
                .await
                .map_err(|e| self.fail("list", what(), kube::Error::ReadEvents(e)))?;
            if chunk.is_empty() {
                break;
            }
            if page.len() + chunk.len() > PAGE_BYTES {
                return Err(ClusterError::TooLarge {
                    what: format!("list {} ({limit} a page)", what()),
                    max_bytes: PAGE_BYTES,
                });
            }
            page.extend_from_slice(chunk);
            let n = chunk.len();
            body.consume_unpin(n);
        }
        Ok(page)
    }

    /// A namespace object (its labels: the Pod Security levels it enforces).
    pub async fn get_namespace(
        &self,
        name: &str,
    ) -> Result<k8s_openapi::api::core::v1::Namespace, ClusterError> {
        self.calling(true, ("get", format!("namespace {name}")), || async {
            self.throttle().await;
            let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
            api.get(name)
                .await
                .map_err(|e| self.fail("get", format!("namespace {name}"), e))
        })
        .await
    }

    /// Every NetworkPolicy in a namespace.
    pub async fn list_network_policies(
        &self,
        namespace: &str,
    ) -> Result<Vec<k8s_openapi::api::networking::v1::NetworkPolicy>, ClusterError> {
        self.calling(
            true,
            ("list", format!("networkpolicies in {namespace}")),
            || async {
                self.throttle().await;
                let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
                    Api::namespaced(self.client.clone(), namespace);
                api.list(&ListParams::default())
                    .await
                    .map(|l| l.items)
                    .map_err(|e| self.fail("list", format!("networkpolicies in {namespace}"), e))
            },
        )
        .await
    }

    /// Get one pod (what a scoped token may do on planned pods).
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ClusterError> {
        self.throttle().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.get(name)
            .await
            .map_err(|e| self.fail("get", format!("pod {namespace}/{name}"), e))
    }

    /// Add an ephemeral container to a pod (strategic merge patch of the
    /// `ephemeralcontainers` subresource, which appends to the list).
    pub async fn add_ephemeral_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &k8s_openapi::api::core::v1::EphemeralContainer,
    ) -> Result<Pod, ClusterError> {
        self.throttle().await;
        let what = format!("pods/ephemeralcontainers {namespace}/{pod}");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({"spec": {"ephemeralContainers": [container]}});
        let req = kube::core::Request::new(api.resource_url())
            .patch_subresource(
                "ephemeralcontainers",
                pod,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Strategic(patch),
            )
            .map_err(|e| self.fail("patch", what.clone(), kube::Error::BuildRequest(e)))?;
        self.answer(req, OBJECT_BYTES, "patch", &what).await
    }

    /// A request's answer, success or refusal, read up to `cap` bytes as it
    /// arrives (kube reads both whole), then parsed as `T` or as the
    /// refusal's Status.
    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        req: hyper::Request<Vec<u8>>,
        cap: usize,
        verb: &'static str,
        what: &str,
    ) -> Result<T, ClusterError> {
        use http_body_util::BodyExt as _;
        let res = self
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| self.fail(verb, what, e))?;
        let status = res.status();
        let mut body = res.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.fail(verb, what, e))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > cap {
                    return Err(ClusterError::TooLarge {
                        what: format!("{verb} {what}"),
                        max_bytes: cap,
                    });
                }
                bytes.extend_from_slice(&data);
            }
        }
        if status.is_client_error() || status.is_server_error() {
            // Not every refusal is a Status (a proxy's page): its text then.
            let refusal =
                serde_json::from_slice::<kube::core::Status>(&bytes).unwrap_or_else(|_| {
                    kube::core::Status::failure(&String::from_utf8_lossy(&bytes), "")
                        .with_code(status.as_u16())
                });
            return Err(self.fail(verb, what, kube::Error::Api(refusal.boxed())));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| self.fail(verb, what, kube::Error::SerdeError(e)))
    }

    /// Watch one pod from `resource_version` until `done` returns a value
    /// for one of its states. The API server may end a watch at any time;
    /// the watch is then resumed from the last version seen. Callers bound
    /// the wait with a timeout.
    pub async fn wait_for_pod<T>(
        &self,
        namespace: &str,
        pod: &str,
        resource_version: &str,
        mut done: impl FnMut(&Pod) -> Option<T>,
    ) -> Result<T, ClusterError> {
        use futures_util::StreamExt;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("pod {namespace}/{pod}");
        // Bookmarks (on by default) keep the version fresh while nothing
        // changes, so a re-watch rarely meets 410.
        let params = kube::api::WatchParams::default()
            .fields(&format!("metadata.name={pod}"))
            .timeout(290);
        let mut version = resource_version.to_string();
        loop {
            self.throttle().await;
            let stream = api
                .watch(&params, &version)
                .await
                .map_err(|e| self.fail("watch", what.clone(), e))?;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = event.map_err(|e| self.fail("watch", what.clone(), e))?;
                match event {
                    kube::api::WatchEvent::Added(p) | kube::api::WatchEvent::Modified(p) => {
                        if let Some(v) = &p.metadata.resource_version {
                            version.clone_from(v);
                        }
                        if let Some(t) = done(&p) {
                            return Ok(t);
                        }
                    }
                    kube::api::WatchEvent::Deleted(_) => {
                        return Err(ClusterError::Transport {
                            verb: "watch",
                            what,
                            message: "the pod was deleted".into(),
                        });
                    }
                    kube::api::WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                    }
                    // 410 Gone: the version is older than the server keeps
                    // (etcd compaction). Read the pod afresh and watch on
                    // from its version, as informers relist.
                    kube::api::WatchEvent::Error(e) if e.code == 410 => {
                        self.throttle().await;
                        let p = api
                            .get(pod)
                            .await
                            .map_err(|e| self.fail("get", what.clone(), e))?;
                        if let Some(t) = done(&p) {
                            return Ok(t);
                        }
                        version = p.metadata.resource_version.unwrap_or_default();
                        break;
                    }
                    kube::api::WatchEvent::Error(e) => {
                        return Err(ClusterError::Api {
                            verb: "watch",
                            what,
                            code: e.code,
                            reason: e.reason,
                            message: refusal_message(e.code, &e.message),
                            retry_after: None,
                        });
                    }
                }
            }
        }
    }

    /// The log of one container, at most `max_bytes`, handed to `on_chunk`
    /// as it arrives (nothing is held here).
    pub async fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        max_bytes: usize,
        mut on_chunk: Stdout<'_>,
    ) -> Result<(), ClusterError> {
        use futures_util::AsyncReadExt as _;
        self.throttle().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("pods/log {namespace}/{pod}/{container}");
        let params = kube::api::LogParams {
            container: Some(container.to_string()),
            // The server stops at this; one byte more here is refused.
            limit_bytes: Some(max_bytes as i64),
            ..kube::api::LogParams::default()
        };
        let stream = api
            .log_stream(pod, &params)
            .await
            .map_err(|e| self.fail("get", what.clone(), e))?;
        let mut stream = std::pin::pin!(stream);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| ClusterError::Transport {
                    verb: "get",
                    what: what.clone(),
                    message: format!("log stream: {}", redact_error(&e.to_string())),
                })?;
            if n == 0 {
                return Ok(());
            }
            total = total.saturating_add(n);
            if total > max_bytes {
                return Err(ClusterError::TooLarge { what, max_bytes });
            }
            if !on_chunk.take(&chunk[..n]).await {
                return Err(ClusterError::Refused { what });
            }
        }
    }

    /// Create a ServiceAccount.
    pub async fn create_service_account(
        &self,
        sa: &ServiceAccount,
    ) -> Result<ServiceAccount, ClusterError> {
        self.calling(
            false,
            (
                "create",
                format!("serviceaccount {}", name_of(&sa.metadata)),
            ),
            || self.create_service_account_once(sa),
        )
        .await
    }

    async fn create_service_account_once(
        &self,
        sa: &ServiceAccount,
    ) -> Result<ServiceAccount, ClusterError> {
        self.throttle().await;
        let ns = sa.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), sa).await.map_err(|e| {
            self.fail(
                "create",
                format!("serviceaccount {ns}/{}", name_of(&sa.metadata)),
                e,
            )
        })
    }

    /// Create a Role.
    pub async fn create_role(&self, role: &Role) -> Result<Role, ClusterError> {
        self.calling(
            false,
            ("create", format!("role {}", name_of(&role.metadata))),
            || self.create_role_once(role),
        )
        .await
    }

    async fn create_role_once(&self, role: &Role) -> Result<Role, ClusterError> {
        self.throttle().await;
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Role> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), role).await.map_err(|e| {
            self.fail(
                "create",
                format!("role {ns}/{}", name_of(&role.metadata)),
                e,
            )
        })
    }

    /// Create a RoleBinding.
    pub async fn create_role_binding(&self, rb: &RoleBinding) -> Result<RoleBinding, ClusterError> {
        self.calling(
            false,
            ("create", format!("rolebinding {}", name_of(&rb.metadata))),
            || self.create_role_binding_once(rb),
        )
        .await
    }

    async fn create_role_binding_once(
        &self,
        rb: &RoleBinding,
    ) -> Result<RoleBinding, ClusterError> {
        self.throttle().await;
        let ns = rb.metadata.namespace.clone().unwrap_or_default();
        let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), rb).await.map_err(|e| {
            self.fail(
                "create",
                format!("rolebinding {ns}/{}", name_of(&rb.metadata)),
                e,
            )
        })
    }

    /// Create a Secret (the token's anchor).
    pub async fn create_secret(&self, secret: &Secret) -> Result<Secret, ClusterError> {
        self.calling(
            false,
            ("create", format!("secret {}", name_of(&secret.metadata))),
            || self.create_secret_once(secret),
        )
        .await
    }

    async fn create_secret_once(&self, secret: &Secret) -> Result<Secret, ClusterError> {
        self.throttle().await;
        let ns = secret.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), secret)
            .await
            .map_err(|e| {
                self.fail(
                    "create",
                    format!("secret {ns}/{}", name_of(&secret.metadata)),
                    e,
                )
            })
    }

    /// The caller's username, as the API server authenticates it
    /// (SelfSubjectReview, authentication.k8s.io/v1, Kubernetes 1.28+).
    pub async fn whoami(&self) -> Result<String, ClusterError> {
        self.calling(true, ("create", "selfsubjectreview".to_string()), || {
            self.whoami_once()
        })
        .await
    }

    async fn whoami_once(&self) -> Result<String, ClusterError> {
        use k8s_openapi::api::authentication::v1::SelfSubjectReview;
        self.throttle().await;
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let out = api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .map_err(|e| self.fail("create", "selfsubjectreview", e))?;
        Ok(out
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default())
    }

    /// Request a token for a ServiceAccount, bound to a Secret so that
    /// deleting the Secret revokes it.
    pub async fn request_token(
        &self,
        namespace: &str,
        sa: &str,
        ttl_seconds: i64,
        audiences: &[String],
        anchor: &Secret,
    ) -> Result<(Token, std::time::Duration), ClusterError> {
        self.calling(
            true,
            (
                "create",
                format!("token for serviceaccount {namespace}/{sa}"),
            ),
            || self.request_token_once(namespace, sa, ttl_seconds, audiences, anchor),
        )
        .await
    }

    async fn request_token_once(
        &self,
        namespace: &str,
        sa: &str,
        ttl_seconds: i64,
        audiences: &[String],
        anchor: &Secret,
    ) -> Result<(Token, std::time::Duration), ClusterError> {
        self.throttle().await;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let tr = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.to_vec(),
                expiration_seconds: Some(ttl_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                    name: anchor.metadata.name.clone(),
                    uid: anchor.metadata.uid.clone(),
                }),
            },
            ..TokenRequest::default()
        };
        let what = format!("token for serviceaccount {namespace}/{sa}");
        let out: TokenRequest = api
            .create_token_request(sa, &PostParams::default(), &tr)
            .await
            .map_err(|e| self.fail("create", what.clone(), e))?;
        let status = out
            .status
            .filter(|s| !s.token.is_empty())
            .ok_or(ClusterError::Transport {
                verb: "create",
                what,
                message: "the API server returned no token".into(),
            })?;
        // How long it lives: what was asked, or less if the API server says
        // it expires sooner (measured on this clock, so a clock ahead of the
        // server's only renews early).
        let asked = std::time::Duration::from_secs(ttl_seconds.max(0) as u64);
        let left_ms =
            status.expiration_timestamp.0.as_millisecond() - chrono::Utc::now().timestamp_millis();
        let left = std::time::Duration::from_millis(left_ms.max(0) as u64);
        Ok((Token(status.token), asked.min(left)))
    }

    /// Delete a namespaced object by kind and name; a missing object is fine.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        self.calling(
            true,
            ("delete", format!("{kind:?} {namespace}/{name}")),
            || self.delete_once(kind, namespace, name),
        )
        .await
    }

    async fn delete_once(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        self.throttle().await;
        let dp = DeleteParams::default();
        let what = format!("{} {namespace}/{name}", kind.as_str());
        let r = match kind {
            Kind::ServiceAccount => {
                Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
                    .delete(name, &dp)
                    .await
                    .map(|_| ())
            }
            Kind::Role => Api::<Role>::namespaced(self.client.clone(), namespace)
                .delete(name, &dp)
                .await
                .map(|_| ()),
            Kind::RoleBinding => Api::<RoleBinding>::namespaced(self.client.clone(), namespace)
                .delete(name, &dp)
                .await
                .map(|_| ()),
            Kind::Secret => Api::<Secret>::namespaced(self.client.clone(), namespace)
                .delete(name, &dp)
                .await
                .map(|_| ()),
        };
        match r.map_err(|e| self.fail("delete", what, e)) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The rules this identity holds in `namespace`, and whether the list
    /// is incomplete (SelfSubjectRulesReview; for reporting only, never
    /// for authorization decisions):
    /// (apiGroups, resources, verbs, resourceNames) per rule.
    pub async fn own_rules(
        &self,
        namespace: &str,
    ) -> Result<(Vec<k8s_openapi::api::authorization::v1::ResourceRule>, bool), ClusterError> {
        self.calling(
            true,
            ("create", format!("selfsubjectrulesreview in {namespace}")),
            || self.own_rules_once(namespace),
        )
        .await
    }

    async fn own_rules_once(
        &self,
        namespace: &str,
    ) -> Result<(Vec<k8s_openapi::api::authorization::v1::ResourceRule>, bool), ClusterError> {
        self.throttle().await;
        use k8s_openapi::api::authorization::v1::{
            SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
        };
        let api: Api<SelfSubjectRulesReview> = Api::all(self.client.clone());
        let review = SelfSubjectRulesReview {
            spec: SelfSubjectRulesReviewSpec {
                namespace: Some(namespace.to_string()),
            },
            ..SelfSubjectRulesReview::default()
        };
        let out = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                self.fail(
                    "create",
                    format!("selfsubjectrulesreview in {namespace}"),
                    e,
                )
            })?;
        // `incomplete`: an authorizer could not list its rules; the list
        // is then a lower bound.
        Ok(out
            .status
            .map(|s| (s.resource_rules, s.incomplete))
            .unwrap_or_default())
    }

    /// Whether this identity may `verb` the `resource` (`pods/exec` names
    /// a subresource) called `name` in `namespace`: a
    /// SelfSubjectAccessReview, the API's answer for authorization
    /// decisions (a SelfSubjectRulesReview is documented as unfit for them).
    pub async fn can_i(
        &self,
        namespace: &str,
        verb: &str,
        group: &str,
        resource: &str,
        name: Option<&str>,
    ) -> Result<bool, ClusterError> {
        self.calling(
            true,
            ("create", format!("selfsubjectaccessreview in {namespace}")),
            || self.can_i_once(namespace, verb, group, resource, name),
        )
        .await
    }

    async fn can_i_once(
        &self,
        namespace: &str,
        verb: &str,
        group: &str,
        resource: &str,
        name: Option<&str>,
    ) -> Result<bool, ClusterError> {
        self.throttle().await;
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, sub)) => (r, Some(sub.to_string())),
            None => (resource, None),
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource,
                    name: name.map(str::to_string),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let out = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                self.fail(
                    "create",
                    format!("selfsubjectaccessreview ({verb} {resource} in {namespace})"),
                    e,
                )
            })?;
        Ok(out.status.is_some_and(|s| s.allowed))
    }

    /// Every object of `kind` in any namespace carrying `label` (key,
    /// value): (namespace, name, its `annotation`'s value).
    pub async fn list_labelled(
        &self,
        kind: Kind,
        label: (&str, &str),
        annotation: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, ClusterError> {
        self.calling(
            true,
            ("list", format!("{kind:?} labelled {}={}", label.0, label.1)),
            || self.list_labelled_once(kind, label, annotation),
        )
        .await
    }

    async fn list_labelled_once(
        &self,
        kind: Kind,
        label: (&str, &str),
        annotation: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, ClusterError> {
        self.throttle().await;
        let lp = ListParams::default().labels(&format!("{}={}", label.0, label.1));
        let what = format!("{}s labelled {}={}", kind.as_str(), label.0, label.1);
        let metas: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> = match kind {
            Kind::ServiceAccount => Api::<ServiceAccount>::all(self.client.clone())
                .list(&lp)
                .await
                .map(|l| l.items.into_iter().map(|o| o.metadata).collect()),
            Kind::Role => Api::<Role>::all(self.client.clone())
                .list(&lp)
                .await
                .map(|l| l.items.into_iter().map(|o| o.metadata).collect()),
            Kind::RoleBinding => Api::<RoleBinding>::all(self.client.clone())
                .list(&lp)
                .await
                .map(|l| l.items.into_iter().map(|o| o.metadata).collect()),
            Kind::Secret => Api::<Secret>::all(self.client.clone())
                .list(&lp)
                .await
                .map(|l| l.items.into_iter().map(|o| o.metadata).collect()),
        }
        .map_err(|e| self.fail("list", what, e))?;
        Ok(metas
            .into_iter()
            .map(|m| {
                let exp = m
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotation).cloned());
                (
                    m.namespace.unwrap_or_default(),
                    m.name.unwrap_or_default(),
                    exp,
                )
            })
            .collect())
    }

    /// Run `command` in a container with one `pods/exec`; collect stdout
    /// (up to `max_bytes`), stderr (up to 64 KiB) and the exit status.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        max_bytes: usize,
    ) -> Result<ExecOutput, ClusterError> {
        let mut stdout = Vec::new();
        let mut out = self
            .exec_streaming(
                namespace,
                pod,
                container,
                command,
                max_bytes,
                Stdout::Each(&mut |chunk| {
                    stdout.extend_from_slice(chunk);
                    true
                }),
            )
            .await?;
        out.stdout = stdout;
        Ok(out)
    }

    /// Like [`Cluster::exec`], but stdout goes to `on_stdout` chunk by
    /// chunk as it arrives (the returned `stdout` is empty), so a caller
    /// that parses as it reads holds no more than it keeps. A chunk refused
    /// (or a closed channel) ends the exec at once with
    /// [`ClusterError::Refused`]; more than `max_bytes` in all ends it with
    /// [`ClusterError::TooLarge`].
    pub async fn exec_streaming(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: Vec<String>,
        max_bytes: usize,
        mut on_stdout: Stdout<'_>,
    ) -> Result<ExecOutput, ClusterError> {
        self.throttle().await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("exec in {namespace}/{pod}/{container}");
        let params = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut attached = api
            .exec(pod, command, &params)
            .await
            .map_err(|e| self.fail("create", what.clone(), e))?;
        let mut stdout = attached.stdout().ok_or(ClusterError::Transport {
            verb: "create",
            what: what.clone(),
            message: "no stdout stream".into(),
        })?;
        let mut stderr = attached.stderr().ok_or(ClusterError::Transport {
            verb: "create",
            what: what.clone(),
            message: "no stderr stream".into(),
        })?;
        let status = attached.take_status();
        let mut err = Vec::new();
        // stdout up to the cap: one byte more (or a chunk the caller
        // refuses) ends the exec at once (the connection is aborted), an
        // error now rather than at scanTimeout. stderr: the first 64 KiB
        // are kept and the rest is read and dropped, so a chatty stderr
        // never stalls the stream behind it.
        let read_stdout = async {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            loop {
                let n = stdout.read(&mut chunk).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                total = total.saturating_add(n);
                if total > max_bytes {
                    return Ok(Some(ClusterError::TooLarge {
                        what: what.clone(),
                        max_bytes,
                    }));
                }
                if !on_stdout.take(&chunk[..n]).await {
                    return Ok(Some(ClusterError::Refused { what: what.clone() }));
                }
            }
        };
        let drain_stderr = async {
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                let n = stderr.read(&mut chunk).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                let room = (64 * 1024usize).saturating_sub(err.len());
                err.extend_from_slice(&chunk[..n.min(room)]);
            }
        };
        let (r1, r2) = {
            let mut reads = std::pin::pin!(async {
                let mut read_stdout = std::pin::pin!(read_stdout);
                let mut drain_stderr = std::pin::pin!(drain_stderr);
                let (mut r1, mut r2, mut over) = (None, None, None);
                while r1.is_none() || r2.is_none() {
                    tokio::select! {
                        r = &mut read_stdout, if r1.is_none() => {
                            r1 = Some(r.map(|stop| over = stop));
                            if over.is_some() {
                                // Too much, or refused: stop waiting for the rest.
                                r2 = Some(Ok(()));
                            }
                        }
                        r = &mut drain_stderr, if r2.is_none() => r2 = Some(r),
                    }
                }
                (r1.unwrap_or(Ok(())), r2.unwrap_or(Ok(())), over)
            });
            // When the connection breaks, kube's message loop ends with an
            // error but leaves the output pipes open: wait on both, so a cut
            // stream is an error at once instead of a read that never ends.
            let mut joined = std::pin::pin!(attached.join());
            tokio::select! {
                (r1, r2, over) = &mut reads => {
                    if let Some(stop) = over {
                        // Returning drops the exec: its background task
                        // fails on its next write and the connection closes.
                        return Err(stop);
                    }
                    let _ = joined.await;
                    (r1, r2)
                }
                j = &mut joined => {
                    if let Err(e) = j {
                        return Err(ClusterError::Transport {
                            verb: "create",
                            what: what.clone(),
                            message: format!("exec stream cut: {}", redact_error(&e.to_string())),
                        });
                    }
                    let (r1, r2, over) = reads.await;
                    if let Some(stop) = over {
                        return Err(stop);
                    }
                    (r1, r2)
                }
            }
        };
        r1.and(r2).map_err(|e| ClusterError::Transport {
            verb: "create",
            what: what.clone(),
            message: format!("exec stream: {e}"),
        })?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let exit_code = status.as_ref().map(|s| {
            if s.status.as_deref() == Some("Success") {
                0
            } else {
                s.details
                    .as_ref()
                    .and_then(|d| d.causes.as_ref())
                    .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
                    .and_then(|c| c.message.as_ref())
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(-1)
            }
        });
        Ok(ExecOutput {
            stdout: Vec::new(),
            stderr: err,
            exit_code,
            status_reason: status.as_ref().and_then(|s| s.reason.clone()),
            status_message: status.and_then(|s| s.message),
        })
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The kinds of objects a run creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    ServiceAccount,
    Role,
    RoleBinding,
    Secret,
}

impl Kind {
    /// Lower-case kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "serviceaccount",
            Kind::Role => "role",
            Kind::RoleBinding => "rolebinding",
            Kind::Secret => "secret",
        }
    }
}

/// Where streamed output goes, chunk by chunk.
pub enum Stdout<'a> {
    /// Handed to a function; `false` refuses the rest.
    Each(&'a mut (dyn FnMut(&[u8]) -> bool + Send)),
    /// Sent to a reader elsewhere (a blocking decoder), waiting for room so
    /// what is in flight stays bounded; a closed receiver refuses the rest.
    Channel(tokio::sync::mpsc::Sender<Vec<u8>>),
}

impl Stdout<'_> {
    /// Pass one chunk on; false when it is refused.
    async fn take(&mut self, chunk: &[u8]) -> bool {
        match self {
            Stdout::Each(f) => f(chunk),
            Stdout::Channel(tx) => tx.send(chunk.to_vec()).await.is_ok(),
        }
    }
}

/// What an exec returned.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (capped).
    pub stderr: Vec<u8>,
    /// Exit code, when the API server sent a status.
    pub exit_code: Option<i32>,
    /// The status message (e.g. why the command could not start).
    pub status_message: Option<String>,
    /// The status reason: `NonZeroExitCode` when the command ran and
    /// failed, `InternalError` when the runtime could not run it (the
    /// kubelet's `ServeExec`, kubernetes/kubernetes
    /// `staging/src/k8s.io/kubelet/pkg/cri/streaming/remotecommand/exec.go`).
    pub status_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::redact_error;

    #[test]
    fn errors_never_carry_proxy_passwords_or_bearer_tokens() {
        let cases = [
            (
                "configured proxy http://scan:s3cr%40t@10.0.0.1:3128/ requires the disabled feature",
                "configured proxy http://<redacted>@10.0.0.1:3128/ requires the disabled feature",
            ),
            (
                "proxy \"socks5://u:p@h:1080\" and https://api:6443/x",
                "proxy \"socks5://<redacted>@h:1080\" and https://api:6443/x",
            ),
            (
                "header Authorization: Bearer abc.def",
                "header Authorization: Bearer <redacted>",
            ),
            ("no url here", "no url here"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact_error(raw), want);
        }
    }
}
