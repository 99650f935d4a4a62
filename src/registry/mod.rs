//! A small, bounded client for OCI distribution registries: manifests,
//! blobs and the OCI 1.1 referrers API; it writes only what `vigil attest
//! --push` stores next to an image (`push`).
//!
//! Why not `oci-client`: it reads manifests and token responses whole with
//! no size cap (a hostile registry could make vigil hold any amount), and
//! it brings reqwest, a second TLS stack (aws-lc, a C build) and ICU. The
//! HTTP/1 client and rustls connector used here are the ones kube already
//! builds, so this module adds no crates. What it reads is capped while it
//! is read, every content-addressed read is checked against its digest,
//! and plain HTTP is used only for hosts named with `--insecure-registry`.

pub(crate) mod auth;
mod push;
pub(crate) mod reference;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use sha2::{Digest as _, Sha256};

pub(crate) use auth::Credentials;
pub(crate) use reference::Reference;

/// Manifests are small; the distribution registry itself refuses to store
/// one over 4 MiB.
pub(crate) const MAX_MANIFEST: u64 = 4 << 20;
/// Token responses are a few KiB.
const MAX_TOKEN: u64 = 1 << 20;
/// Time for a response's headers, and between two pieces of its body.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request may take in all, however its bytes trickle in: a
/// base for the round trips, plus the body's bytes at a minimum rate (a
/// sender of one byte every few seconds never stalls long enough for
/// [`TIMEOUT`], so only an overall deadline ends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The base: connection, headers and a small body.
    pub request: Duration,
    /// Bytes per second a large body must average.
    pub min_rate: u64,
}

impl Default for Deadlines {
    /// 120 s, plus the body at 256 KiB/s (a 1 GiB layer may take 68 min).
    fn default() -> Deadlines {
        Deadlines {
            request: Duration::from_secs(120),
            min_rate: 256 << 10,
        }
    }
}

/// The deadlines given on the command line, which replace the policy's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadlineFlags {
    /// `--registry-timeout`.
    pub timeout: Option<Duration>,
    /// `--registry-min-rate`, in bytes per second.
    pub min_rate: Option<u64>,
}

impl DeadlineFlags {
    /// The flags over `base` (a policy's deadlines, or the defaults).
    pub fn over(&self, base: Deadlines) -> Deadlines {
        Deadlines {
            request: self.timeout.unwrap_or(base.request),
            min_rate: self.min_rate.unwrap_or(base.min_rate),
        }
    }
}

impl Deadlines {
    /// When a request started at `start` must have ended if it has
    /// received `received` bytes so far: the base, plus the time those
    /// bytes (and one more 64 KiB) take at the minimum rate. The deadline
    /// grows only with bytes that arrive, so a size the server declares
    /// buys it no time, and a trickle falls behind at once.
    fn at(&self, start: tokio::time::Instant, received: u64) -> tokio::time::Instant {
        let extra =
            Duration::from_secs_f64((received + (64 << 10)) as f64 / self.min_rate.max(1) as f64);
        start + self.request.saturating_add(extra)
    }
}
/// Redirects followed for one request (blob stores redirect once).
const MAX_REDIRECTS: usize = 5;

/// Media types asked for when fetching a manifest.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

type Http = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// One request: its method, path, what it accepts and what it sends.
struct Call<'a> {
    method: hyper::Method,
    path: &'a str,
    accept: Option<&'a str>,
    body: Bytes,
    content_type: Option<&'a str>,
}

/// What a request answered: the body's media type and digest, and where
/// it points (an upload's `Location`).
struct Answer {
    media_type: Option<String>,
    digest: String,
    location: Option<String>,
}

/// Why a registry read failed. Messages name the registry and what was
/// asked; text from the registry is escaped, credentials never appear.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection (refused, DNS, TLS, timeout).
    #[error("cannot reach registry {host}: {reason}")]
    Unreachable {
        /// Registry host.
        host: String,
        /// What failed.
        reason: String,
    },
    /// 404 (the registry's error code, if it gave one).
    #[error("{what} not found in {host} (HTTP 404{code})")]
    NotFound {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// `: MANIFEST_UNKNOWN` or empty.
        code: String,
    },
    /// 401/403 after authenticating, or no usable challenge.
    #[error("registry {host} refused access to {what} (HTTP {status}{code}); {hint}")]
    Denied {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// Status code.
        status: u16,
        /// `: DENIED` or empty.
        code: String,
        /// What to do.
        hint: String,
    },
    /// Any other status.
    #[error("registry {host} answered HTTP {status}{code} for {what}")]
    Status {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// Status code.
        status: u16,
        /// `: CODE` or empty.
        code: String,
    },
    /// The response is bigger than vigil reads.
    #[error("{what} from {host} is larger than {cap}; refused")]
    TooLarge {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// The cap, in words.
        cap: String,
    },
    /// Content that does not match the digest it was asked by.
    #[error(
        "{what} from {host} does not match its digest: expected {expected}, got sha256:{actual} (altered in the registry or in transit); refused"
    )]
    DigestMismatch {
        /// Registry host.
        host: String,
        /// What was asked.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// A protocol violation (bad redirect, bad token response…).
    #[error("registry {host}: {message}")]
    Protocol {
        /// Registry host.
        host: String,
        /// What went wrong.
        message: String,
    },
}

/// An OCI content descriptor, as manifests, indexes and referrers lists
/// carry them (the fields vigil reads).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    /// Media type of what it points to.
    #[serde(default)]
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Annotations.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// An artifact's type (OCI 1.1).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// An index entry's platform.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// A descriptor's platform.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Platform {
    /// `linux`, `unknown` (attestations), …
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
}

/// What a GET returned.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The body.
    pub bytes: Vec<u8>,
    /// `Content-Type`, without parameters.
    pub media_type: Option<String>,
    /// `sha256:<hex>` of the body.
    pub digest: String,
}

/// A read-only registry client.
pub(crate) struct Client {
    http: Http,
    insecure: BTreeSet<String>,
    credentials: Credentials,
    /// Bearer tokens by (token realm host, repository).
    tokens: tokio::sync::Mutex<HashMap<(String, String), String>>,
    deadlines: Deadlines,
}

impl Client {
    /// A client that speaks HTTPS (system roots) to every host but those in
    /// `insecure`, which get plain HTTP: for test registries only.
    pub(crate) fn new(
        insecure: &[String],
        credentials: Credentials,
    ) -> Result<Client, RegistryError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| RegistryError::Unreachable {
                host: "(any)".into(),
                reason: format!("cannot load the system's trusted certificates: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(Client {
            http,
            insecure: insecure.iter().map(|h| h.to_ascii_lowercase()).collect(),
            credentials,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            deadlines: Deadlines::default(),
        })
    }

    /// The same client with other request deadlines.
    pub(crate) fn with_deadlines(self, deadlines: Deadlines) -> Client {
        Client { deadlines, ..self }
    }

    fn scheme(&self, host: &str) -> &'static str {
        if self.insecure.contains(&host.to_ascii_lowercase()) {
            "http"
        } else {
            "https"
        }
    }

    /// The manifest `reference` (a digest or a tag) of `image`'s repository.
    /// Fetched by digest, it must match it.
    pub(crate) async fn manifest(
        &self,
        image: &Reference,
        reference: &str,
    ) -> Result<Fetched, RegistryError> {
        let what = format!(
            "manifest {}:{}",
            image.repository,
            crate::safeio::excerpt(reference, 140)
        );
        let path = format!("/v2/{}/manifests/{reference}", image.repository);
        let f = self
            .get(image, &path, Some(MANIFEST_ACCEPT), MAX_MANIFEST, &what)
            .await?;
        if reference.starts_with("sha256:") {
            check_digest(image, &what, reference, &f.digest)?;
        }
        Ok(f)
    }

    /// The blob `digest` of `image`'s repository, at most `cap` bytes,
    /// checked against its digest.
    pub(crate) async fn blob(
        &self,
        image: &Reference,
        digest: &str,
        cap: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut out = Vec::new();
        self.blob_to(image, digest, cap, &mut out).await?;
        Ok(out)
    }

    /// The OCI 1.1 referrers index of `digest`, filtered by `artifact_type`;
    /// `None` when the registry does not offer the API.
    pub(crate) async fn referrers(
        &self,
        image: &Reference,
        digest: &str,
        artifact_type: &str,
    ) -> Result<Option<Fetched>, RegistryError> {
        let what = format!("referrers of {digest}");
        let path = format!(
            "/v2/{}/referrers/{digest}?artifactType={}",
            image.repository,
            percent_encode(artifact_type)
        );
        match self
            .get(
                image,
                &path,
                Some("application/vnd.oci.image.index.v1+json"),
                MAX_MANIFEST,
                &what,
            )
            .await
        {
            Ok(f) if f.media_type.as_deref() == Some("application/vnd.oci.image.index.v1+json") => {
                Ok(Some(f))
            }
            // A registry without the API may answer 404, or serve something else.
            Ok(_) | Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET `path` on `image`'s registry into memory, capped at `cap`.
    async fn get(
        &self,
        image: &Reference,
        path: &str,
        accept: Option<&str>,
        cap: u64,
        what: &str,
    ) -> Result<Fetched, RegistryError> {
        let mut bytes = Vec::new();
        let (media_type, digest) = self
            .get_into(image, path, accept, cap, what, &mut bytes)
            .await?;
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// Stream the blob `digest` of `image`'s repository into `out`, at most
    /// `cap` bytes; it is checked against its digest at the end, and when
    /// it does not match the caller must discard what was written.
    pub(crate) async fn blob_to(
        &self,
        image: &Reference,
        digest: &str,
        cap: u64,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), RegistryError> {
        let what = format!("blob {digest}");
        if !is_sha256_digest(digest) {
            return Err(protocol(
                image,
                format!(
                    "refusing to fetch {}: not a sha256 digest",
                    crate::safeio::excerpt(digest, 80)
                ),
            ));
        }
        let path = format!("/v2/{}/blobs/{digest}", image.repository);
        let (_, got) = self.get_into(image, &path, None, cap, &what, out).await?;
        check_digest(image, &what, digest, &got)
    }

    /// GET `path` on `image`'s registry, authenticating when challenged and
    /// following redirects; the body (capped at `cap`) goes to `out`.
    /// Returns its media type and digest.
    async fn get_into(
        &self,
        image: &Reference,
        path: &str,
        accept: Option<&str>,
        cap: u64,
        what: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(Option<String>, String), RegistryError> {
        let call = Call {
            method: hyper::Method::GET,
            path,
            accept,
            body: Bytes::new(),
            content_type: None,
        };
        let a = self.exchange(image, &call, cap, what, out).await?;
        Ok((a.media_type, a.digest))
    }

    /// Send `call` to `image`'s registry, authenticating when challenged
    /// and following redirects; the answer's body (capped at `cap`) goes to
    /// `out`.
    async fn exchange(
        &self,
        image: &Reference,
        call: &Call<'_>,
        cap: u64,
        what: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<Answer, RegistryError> {
        let (path, accept) = (call.path, call.accept);
        let host = image.api_host();
        let mut uri: Uri = format!("{}://{host}{path}", self.scheme(host))
            .parse()
            .map_err(|e| protocol(image, format!("cannot form a URL for {what}: {e}")))?;
        let started = tokio::time::Instant::now();
        let token_key = (String::new(), image.repository.clone());
        let mut authorization = self.tokens.lock().await.get(&token_key).cloned();
        let mut challenged = false;
        let mut redirects = 0;
        loop {
            // Credentials go only to the registry itself, never to a host
            // it redirects to (a blob store's signed URL needs none).
            let same_host = uri.authority().map(|a| a.as_str()) == Some(host);
            let mut req = Request::builder()
                .method(call.method.clone())
                .uri(uri.clone())
                .header("user-agent", concat!("vigil/", env!("CARGO_PKG_VERSION")));
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            if let Some(t) = call.content_type {
                req = req.header("content-type", t);
            }
            if let (true, Some(a)) = (same_host, &authorization) {
                req = req.header("authorization", a);
            }
            let req = req
                .body(Full::new(call.body.clone()))
                .map_err(|e| protocol(image, format!("cannot form the request for {what}: {e}")))?;
            let resp = self.send(image, req).await?;
            let status = resp.status();
            if status.is_redirection() {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(protocol(
                        image,
                        format!("more than {MAX_REDIRECTS} redirects for {what}"),
                    ));
                }
                uri = self.redirect_target(image, &uri, &resp)?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !challenged && same_host {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                authorization = Some(self.authorize(image, challenge, what).await?);
                if let Some(a) = &authorization {
                    self.tokens
                        .lock()
                        .await
                        .insert(token_key.clone(), a.clone());
                }
                continue;
            }
            let media_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            let location = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if !status.is_success() {
                let mut body = Vec::new();
                // Error bodies are short; past 64 KiB the code is not worth reading.
                let _ = read_capped(
                    image,
                    resp.into_body(),
                    64 * 1024,
                    what,
                    &mut body,
                    (self.deadlines, started),
                )
                .await;
                return Err(status_error(image, status, &body, what, &self.credentials));
            }
            let digest = read_capped(
                image,
                resp.into_body(),
                cap,
                what,
                out,
                (self.deadlines, started),
            )
            .await?;
            return Ok(Answer {
                media_type,
                digest,
                location,
            });
        }
    }

    async fn send(
        &self,
        image: &Reference,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, RegistryError> {
        let host = req
            .uri()
            .authority()
            .map_or_else(String::new, |a| a.to_string());
        let tls = req.uri().scheme_str() == Some("https");
        match tokio::time::timeout(TIMEOUT, self.http.request(req)).await {
            Err(_) => Err(RegistryError::Unreachable {
                host,
                reason: format!("no answer within {} s", TIMEOUT.as_secs()),
            }),
            Ok(Err(e)) => {
                let chain = error_chain(&e);
                // rustls reads the first byte of a plain HTTP answer ('H')
                // as a record of an invalid content type.
                let plain = tls && chain.contains("InvalidContentType");
                let host = if host.is_empty() {
                    image.registry.clone()
                } else {
                    host
                };
                Err(RegistryError::Unreachable {
                    reason: if plain {
                        format!(
                            "it answered in plain HTTP, not TLS; for a test registry that speaks only HTTP, pass --insecure-registry {host}"
                        )
                    } else {
                        chain
                    },
                    host,
                })
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Where a redirect points, refusing a move from HTTPS to plain HTTP
    /// (unless that host is an insecure one).
    fn redirect_target(
        &self,
        image: &Reference,
        from: &Uri,
        resp: &hyper::Response<hyper::body::Incoming>,
    ) -> Result<Uri, RegistryError> {
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| protocol(image, "a redirect without a Location".into()))?;
        let target: Uri = if location.starts_with('/') {
            format!(
                "{}://{}{location}",
                from.scheme_str().unwrap_or("https"),
                from.authority().map_or("", |a| a.as_str())
            )
            .parse()
        } else {
            location.parse()
        }
        .map_err(|_| {
            protocol(
                image,
                format!(
                    "a redirect to an invalid URL {:?}",
                    crate::safeio::excerpt(location, 120)
                ),
            )
        })?;
        let host = target.authority().map_or("", |a| a.as_str());
        match target.scheme_str() {
            Some("https") => Ok(target),
            Some("http") if self.scheme(host) == "http" => Ok(target),
            _ => Err(protocol(
                image,
                format!(
                    "refusing a redirect to {:?}: not HTTPS",
                    crate::safeio::excerpt(location, 120)
                ),
            )),
        }
    }

    /// Answer a challenge: basic credentials, or a bearer token fetched
    /// from the realm (with basic credentials, if the user has some).
    async fn authorize(
        &self,
        image: &Reference,
        challenge: Option<auth::Challenge>,
        what: &str,
    ) -> Result<String, RegistryError> {
        let creds = self.credentials.for_host(&image.registry);
        let denied = |hint: String| RegistryError::Denied {
            host: image.registry.clone(),
            what: what.to_string(),
            status: 401,
            code: String::new(),
            hint,
        };
        match challenge {
            None => Err(denied(
                "it asked for authentication vigil does not speak (neither Bearer nor Basic)"
                    .into(),
            )),
            Some(auth::Challenge::Basic) => creds
                .map(auth::Basic::header)
                .ok_or_else(|| denied(credentials_hint(&self.credentials, &image.registry))),
            Some(auth::Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull", image.repository));
                let mut query = vec![format!("scope={}", percent_encode(&scope))];
                if let Some(s) = service {
                    query.insert(0, format!("service={}", percent_encode(&s)));
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let uri: Uri =
                    format!("{realm}{sep}{}", query.join("&"))
                        .parse()
                        .map_err(|_| {
                            protocol(
                                image,
                                format!(
                                    "an invalid token realm {:?}",
                                    crate::safeio::excerpt(&realm, 120)
                                ),
                            )
                        })?;
                let realm_host = uri.authority().map_or("", |a| a.as_str()).to_string();
                match uri.scheme_str() {
                    Some("https") => {}
                    Some("http") if self.scheme(&realm_host) == "http" => {}
                    _ => {
                        return Err(protocol(
                            image,
                            format!(
                                "refusing the token realm {:?}: not HTTPS",
                                crate::safeio::excerpt(&realm, 120)
                            ),
                        ));
                    }
                }
                let mut req = Request::get(uri)
                    .header("user-agent", concat!("vigil/", env!("CARGO_PKG_VERSION")));
                if let Some(c) = creds {
                    req = req.header("authorization", c.header());
                }
                let req = req
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| protocol(image, format!("cannot form the token request: {e}")))?;
                let resp = self.send(image, req).await?;
                let status = resp.status();
                let mut body = Vec::new();
                read_capped(
                    image,
                    resp.into_body(),
                    MAX_TOKEN,
                    "the token response",
                    &mut body,
                    (self.deadlines, tokio::time::Instant::now()),
                )
                .await?;
                if !status.is_success() {
                    return Err(RegistryError::Denied {
                        host: realm_host,
                        what: format!("a pull token for {}", image.repository),
                        status: status.as_u16(),
                        code: String::new(),
                        hint: credentials_hint(&self.credentials, &image.registry),
                    });
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&body).map_err(|_| {
                    protocol(
                        image,
                        "the token response is not the JSON the distribution spec defines".into(),
                    )
                })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or_else(|| {
                        protocol(image, "the token response has no usable token".into())
                    })?;
                Ok(format!("Bearer {token}"))
            }
        }
    }
}

/// What to do when a registry refuses access, from what the auth file had.
fn credentials_hint(creds: &Credentials, host: &str) -> String {
    match (&creds.file, creds.helper_only(host)) {
        (Some(f), true) => format!(
            "{} names a credential helper for {host}, which vigil does not run; add a static \"auth\" entry (for example with `skopeo login --authfile`)",
            crate::safeio::printable(&f.display().to_string())
        ),
        (Some(f), false) if creds.for_host(host).is_some() => format!(
            "the credentials for {host} in {} were refused",
            crate::safeio::printable(&f.display().to_string())
        ),
        (Some(f), false) => format!(
            "{} has no credentials for {host}; log in (docker login / skopeo login) or set REGISTRY_AUTH_FILE",
            crate::safeio::printable(&f.display().to_string())
        ),
        (None, _) => format!(
            "no registry auth file found; log in to {host} (docker login / skopeo login) or set REGISTRY_AUTH_FILE"
        ),
    }
}

fn protocol(image: &Reference, message: String) -> RegistryError {
    RegistryError::Protocol {
        host: image.registry.clone(),
        message,
    }
}

fn check_digest(
    image: &Reference,
    what: &str,
    expected: &str,
    got: &str,
) -> Result<(), RegistryError> {
    if expected == got {
        return Ok(());
    }
    Err(RegistryError::DigestMismatch {
        host: image.registry.clone(),
        what: what.to_string(),
        expected: expected.to_string(),
        actual: got.trim_start_matches("sha256:").to_string(),
    })
}

/// `sha256:` and 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Read a body, refusing it as soon as it passes `cap`, giving up when
/// the registry stalls and when the request falls behind its deadline
/// (`(deadlines, start)`: the base plus the minimum rate over what came).
async fn read_capped(
    image: &Reference,
    mut body: hyper::body::Incoming,
    cap: u64,
    what: &str,
    out: &mut (dyn std::io::Write + Send),
    (deadlines, started): (Deadlines, tokio::time::Instant),
) -> Result<String, RegistryError> {
    let mut hash = Sha256::new();
    let mut len = 0u64;
    loop {
        let deadline = deadlines.at(started, len);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = match tokio::time::timeout(TIMEOUT.min(left), body.frame()).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(RegistryError::Unreachable {
                    host: image.registry.clone(),
                    reason: format!(
                        "{what} missed its deadline: {} received in {} s, slower than {}/s after the first {} s; the registry sends too slowly",
                        crate::safeio::human_bytes(len),
                        started.elapsed().as_secs(),
                        crate::safeio::human_bytes(deadlines.min_rate),
                        deadlines.request.as_secs()
                    ),
                });
            }
            Err(_) => {
                return Err(RegistryError::Unreachable {
                    host: image.registry.clone(),
                    reason: format!("{what} stalled for {} s", TIMEOUT.as_secs()),
                });
            }
            Ok(None) => return Ok(format!("sha256:{}", crate::encoding::hex(&hash.finalize()))),
            Ok(Some(Err(e))) => {
                return Err(RegistryError::Unreachable {
                    host: image.registry.clone(),
                    reason: format!("{what} was cut: {}", error_chain(&e)),
                });
            }
            Ok(Some(Ok(f))) => f,
        };
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if len > cap {
                return Err(RegistryError::TooLarge {
                    host: image.registry.clone(),
                    what: what.to_string(),
                    cap: crate::safeio::human_bytes(cap),
                });
            }
            hash.update(&data);
            out.write_all(&data).map_err(|e| RegistryError::Protocol {
                host: image.registry.clone(),
                message: format!("cannot store {what}: {}", crate::safeio::io_reason(&e)),
            })?;
        }
    }
}

/// The error for a non-success status, with the registry's error code
/// (escaped) when its body is the distribution spec's error JSON.
fn status_error(
    image: &Reference,
    status: StatusCode,
    body: &[u8],
    what: &str,
    creds: &Credentials,
) -> RegistryError {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: String,
    }
    let code = serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| format!(": {}", crate::safeio::excerpt(&e.code, 60)))
        .unwrap_or_default();
    let host = image.registry.clone();
    let what = what.to_string();
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound { host, what, code },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let hint = credentials_hint(creds, &image.registry);
            RegistryError::Denied {
                host,
                what,
                status: status.as_u16(),
                code,
                hint,
            }
        }
        _ => RegistryError::Status {
            host,
            what,
            status: status.as_u16(),
            code,
        },
    }
}

/// An error and its causes, joined (hyper's top-level message alone says
/// only "client error (Connect)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    crate::safeio::printable(&parts.join(": ")).into_owned()
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
