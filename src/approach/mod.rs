//! Approaches: how a planned target's facts are gathered.
//!
//! - `local` reads a root filesystem on this machine;
//! - `api` runs the shell gatherer with one `pods/exec` ([`api`]);
//! - `debug` adds an ephemeral container running `vigil probe` against the
//!   target's `/proc/1/root` and reads its log ([`debug`]);
//! - `sidecar` execs `vigil probe` in a scanner sidecar that shares the
//!   pod's process namespace ([`sidecar`]);
//! - `auto` tries `api` and moves to `debug` when the container turns out
//!   to have no shell (or goes straight to `debug` for images that look
//!   shell-less).
//!
//! Every Kubernetes call runs as the run's scoped ServiceAccount and is
//! recorded in the audit log.

pub mod api;
pub mod collector;
pub(crate) mod debug;
pub(crate) mod external;
pub(crate) mod sidecar;

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::access::RunAccess;
use crate::cluster::{Cluster, ClusterError};
use crate::facts::{FactRequest, Facts};
use crate::plan::PlannedTarget;
use crate::policy::model::{Approach, ScannerSpec};
use collector::{Collector, Failure, Gathered, LocalCollector};

/// Output larger than this is refused (a big image's facts are a few MiB;
/// the cap bounds what a hostile container can make vigil hold).
pub const MAX_OUTPUT: usize = 256 * 1024 * 1024;

pub use crate::plan::manifests::PROBE_BINARY;

/// Why one approach could not gather a target's facts.
#[derive(Debug)]
pub enum GatherError {
    /// The container has no usable shell (the api approach's exec said so).
    NoShell(String),
    /// Worth another attempt: 429, 5xx, a reset connection, a cut stream.
    Transient {
        /// What happened.
        message: String,
        /// The wait the server asked for, if it said.
        after: Option<Duration>,
        /// The server throttled the caller (429): back off longer.
        throttled: bool,
    },
    /// The API server refused the run's identity (403).
    Forbidden(String),
    /// Anything else, said in a sentence; a retry would not help.
    Other(String),
}

impl GatherError {
    /// A transient error the server gave no wait for.
    pub fn transient(message: String) -> GatherError {
        GatherError::Transient {
            message,
            after: None,
            throttled: false,
        }
    }

    /// The same kind of error, its message prefixed by `context`.
    fn context(self, context: &str) -> GatherError {
        match self {
            GatherError::Transient {
                message,
                after,
                throttled,
            } => GatherError::Transient {
                message: format!("{context}{message}"),
                after,
                throttled,
            },
            GatherError::Forbidden(m) => GatherError::Forbidden(format!("{context}{m}")),
            other => GatherError::Other(format!("{context}{other}")),
        }
    }

    /// How the runner files it.
    fn kind(&self) -> collector::FailureKind {
        use collector::FailureKind;
        match self {
            GatherError::NoShell(_) => FailureKind::NoShell,
            GatherError::Transient { .. } => FailureKind::Transient,
            GatherError::Forbidden(_) => FailureKind::Forbidden,
            GatherError::Other(_) => FailureKind::Other,
        }
    }
}

impl From<String> for GatherError {
    fn from(s: String) -> Self {
        GatherError::Other(s)
    }
}

impl From<ClusterError> for GatherError {
    fn from(e: ClusterError) -> Self {
        match e.transient() {
            Some(after) => GatherError::Transient {
                message: e.to_string(),
                after,
                throttled: e.is_throttled(),
            },
            None if e.is_forbidden() => GatherError::Forbidden(e.to_string()),
            None => GatherError::Other(e.to_string()),
        }
    }
}

impl std::fmt::Display for GatherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatherError::NoShell(why) => write!(
                f,
                "the container has no usable shell (/bin/sh) for the api approach ({why}); distroless images need the debug approach (set spec.debug.image and approach: auto or debug)"
            ),
            GatherError::Transient { message: s, .. }
            | GatherError::Forbidden(s)
            | GatherError::Other(s) => f.write_str(s),
        }
    }
}

/// The wait before attempt `attempt + 1`: exponential from 250 ms, capped
/// at 8 s, with full jitter (a uniformly random part of it) so that many
/// scans failing together do not retry together; never shorter than what
/// the server asked for, and at least 1 s after a 429 that did not say
/// (the API server's own default).
pub fn backoff(attempt: u32, server_asked: Option<Duration>, throttled: bool) -> Duration {
    let cap = Duration::from_millis(250)
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(Duration::from_secs(8));
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    let jittered = cap.mul_f64(u64::from_le_bytes(b) as f64 / u64::MAX as f64);
    let floor = server_asked.unwrap_or(if throttled {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    });
    jittered.max(floor)
}

/// Collects Kubernetes targets through the API, local ones from disk.
pub struct KubeCollector<'a> {
    /// The runtime the cluster clients live on.
    pub runtime: Handle,
    /// The run's scoped clients.
    pub access: &'a RunAccess,
    /// Where every call is recorded.
    pub audit: &'a crate::audit::AuditLog,
    /// Bound on one target's whole scan (the policy's `limits.scanTimeout`):
    /// a stream that stalls or a container that never starts is an error
    /// result, never a hang.
    pub scan_timeout: Duration,
    /// The scanner image for ephemeral containers (`spec.debug`).
    pub debug: Option<&'a ScannerSpec>,
    /// The scanner images' signature checks: a refused image is never
    /// started (debug) or exec'd into (sidecar).
    pub scanner_images: Vec<ScannerImageCheck>,
    /// Attempts after the first for transient errors (`limits.retries`).
    pub retries: u32,
    /// Becomes true when scans in flight must stop (a second signal, or the
    /// end of the grace period after the first).
    pub abort: tokio::sync::watch::Receiver<bool>,
}

/// One target's scan in progress: its scoped client and audit identity.
pub struct Scan<'a> {
    /// The target.
    pub target: &'a PlannedTarget,
    /// The scan id (names ephemeral containers, keys audit lines).
    pub scan_id: &'a str,
    /// The scoped client for the target's namespace.
    pub client: &'a Cluster,
    /// This attempt (1 for the first).
    pub attempt: u32,
    collector: &'a KubeCollector<'a>,
}

impl Scan<'_> {
    /// Run one API call as the scoped identity and record it in the audit log.
    pub async fn audited<T>(
        &self,
        call: crate::audit::Call,
        object: String,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, GatherError> {
        self.audited_with(call, object, std::collections::BTreeMap::new(), op)
            .await
    }

    /// [`Scan::audited`], recording `attributes` that tie the line to the
    /// API server's event (see `audit::Entry::attributes`).
    pub async fn audited_with<T>(
        &self,
        call: crate::audit::Call,
        object: String,
        attributes: std::collections::BTreeMap<String, String>,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, GatherError> {
        let started = Instant::now();
        let r = op.await;
        let ns = self.target.namespace.as_deref().unwrap_or_default();
        let object = if self.attempt > 1 {
            format!("{object} (attempt {})", self.attempt)
        } else {
            object
        };
        self.collector.audit.record(
            Some(self.scan_id),
            &self.collector.access.identity(ns),
            call,
            &object,
            r.as_ref().map(|_| ()).map_err(ToString::to_string),
            started,
            attributes,
        );
        r.map_err(GatherError::from)
    }

    /// The target's namespace, pod and container.
    pub fn coordinates(&self) -> Result<(&str, &str, &str), GatherError> {
        match (
            &self.target.namespace,
            &self.target.pod,
            &self.target.container,
        ) {
            (Some(ns), Some(pod), Some(c)) => Ok((ns, pod, c)),
            _ => Err(GatherError::Other(
                "target has no namespace/pod/container".into(),
            )),
        }
    }
}

impl KubeCollector<'_> {
    /// Why the `role` scanner image may not be used, if it was refused.
    fn refused(&self, role: crate::policy::model::Approach) -> Result<(), GatherError> {
        match self
            .scanner_images
            .iter()
            .find(|c| c.role == role)
            .and_then(|c| c.refused.as_ref())
        {
            Some(why) => Err(GatherError::Other(format!(
                "the {} scanner image failed its signature check, so it was not used: {why}",
                role.as_str()
            ))),
            None => Ok(()),
        }
    }

    /// One attempt with the target's approach (for `auto`: api, then debug
    /// if the container has no shell).
    async fn attempt(
        &self,
        scan: &Scan<'_>,
        req: &FactRequest,
    ) -> Result<(Facts, Approach), GatherError> {
        let t = scan.target;
        let debug = |why: Option<String>| async move {
            let Some(spec) = self.debug else {
                return Err(GatherError::Other(why.unwrap_or_else(|| {
                    "the debug approach needs spec.debug.image".into()
                })));
            };
            if let Err(e) = self.refused(crate::policy::model::Approach::Debug) {
                return Err(match why {
                    None => e,
                    Some(w) => e.context(&format!("{w}; ")),
                });
            }
            match debug::gather(scan, req, spec).await {
                Ok(facts) => Ok((facts, Approach::Debug)),
                Err(e) => Err(match why {
                    None => e,
                    Some(w) => e.context(&format!("{w}; then the debug approach failed: ")),
                }),
            }
        };
        match t.approach {
            Approach::Api => Ok((api::gather(scan, req).await?, Approach::Api)),
            Approach::Sidecar => {
                self.refused(crate::policy::model::Approach::Sidecar)?;
                Ok((sidecar::gather(scan, req).await?, Approach::Sidecar))
            }
            Approach::Debug => debug(None).await,
            Approach::Auto => {
                let shell_less = t
                    .image
                    .as_deref()
                    .is_some_and(crate::plan::looks_shell_less);
                if shell_less {
                    return debug(None).await;
                }
                match api::gather(scan, req).await {
                    Ok(facts) => Ok((facts, Approach::Api)),
                    Err(e @ GatherError::NoShell(_)) => debug(Some(e.to_string())).await,
                    Err(e) => Err(e),
                }
            }
            Approach::Local | Approach::Image | Approach::Imported | Approach::Manifest => Err(
                GatherError::Other("a local target reached the cluster collector".into()),
            ),
        }
    }

    /// Attempts until one succeeds, an error is not transient, or the
    /// retries are spent.
    async fn gather(
        &self,
        t: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
        attempts: &std::sync::atomic::AtomicU32,
    ) -> Result<Gathered, Failure> {
        let ns = t.namespace.as_deref().unwrap_or_default();
        loop {
            // Each attempt takes the newest token (see `keep_tokens_fresh`).
            let client = self
                .access
                .scoped_for_scan(ns)
                .await
                .ok_or_else(|| Failure::from(format!("no scoped access for namespace {ns}")))?;
            let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let scan = Scan {
                target: t,
                scan_id,
                client: &client,
                attempt,
                collector: self,
            };
            match self.attempt(&scan, req).await {
                Ok((facts, approach)) => {
                    return Ok(Gathered {
                        collected: collector::Collected::Facts(facts),
                        approach,
                        attempts: attempt,
                    });
                }
                Err(GatherError::Transient {
                    after, throttled, ..
                }) if attempt <= self.retries => {
                    tokio::time::sleep(backoff(attempt, after, throttled)).await;
                }
                Err(e @ GatherError::Transient { .. }) => {
                    return Err(Failure::new(
                        e.kind(),
                        format!("{e} (gave up after {attempt} attempts)"),
                    ));
                }
                Err(e) => return Err(Failure::new(e.kind(), e.to_string())),
            }
        }
    }
}

impl Collector for KubeCollector<'_> {
    fn collect(
        &self,
        t: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
    ) -> Result<Gathered, Failure> {
        if t.approach.is_local() {
            return LocalCollector::default().collect(t, req, scan_id);
        }
        self.runtime.block_on(self.collect_polled(t, req, scan_id))
    }

    fn polled_on(&self, t: &PlannedTarget) -> Option<&Handle> {
        (!t.approach.is_local()).then_some(&self.runtime)
    }

    fn collect_polled<'a>(
        &'a self,
        t: &'a PlannedTarget,
        req: &'a FactRequest,
        scan_id: &'a str,
    ) -> collector::Polled<'a> {
        Box::pin(async move {
            let attempts = std::sync::atomic::AtomicU32::new(0);
            let mut abort = self.abort.clone();
            let r = tokio::select! {
                r = tokio::time::timeout(self.scan_timeout, self.gather(t, req, scan_id, &attempts)) => match r {
                    Ok(r) => r,
                    Err(_) => Err(Failure::timeout("the scan", self.scan_timeout)),
                },
                _ = abort.wait_for(|a| *a) => Err(Failure::stopped_in_flight()),
            };
            r.map_err(|f| Failure {
                attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
                ..f
            })
        })
    }

    fn scanner_images(&self) -> Vec<ScannerImageCheck> {
        self.scanner_images.clone()
    }
}

/// 128 random bits, hex: frames one scan's output.
pub fn random_nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    crate::encoding::hex(&b)
}

/// The probe's command line for a request: the request travels as an
/// argument (ephemeral containers and exec here have no stdin).
pub fn probe_command(target: &[&str], req: &FactRequest) -> Vec<String> {
    let mut cmd = vec![PROBE_BINARY.to_string(), "probe".to_string()];
    cmd.extend(target.iter().map(|s| s.to_string()));
    cmd.push("--request-json".into());
    cmd.push(serde_json::to_string(req).expect("requests always serialize"));
    cmd
}

/// Output chunks (up to 64 KiB each) in flight between a stream and its
/// decoder: what a scan holds of its output besides the frame's body.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Start decoding a probe's encrypted output as it arrives: the returned
/// sender takes the output chunk by chunk (drop it at the end of the
/// output), the future gives the facts. Decryption and parsing run on a
/// blocking thread, off the runtime; a scan then holds its frame's body
/// and a few chunks, never its whole output (which may be 256 MiB).
/// A decoder that gives up drops its receiver, which ends the stream.
pub(crate) fn probe_decoder(
    nonce: String,
    identity: age::x25519::Identity,
) -> (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    impl std::future::Future<Output = Decoded>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let task = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(ChunkReader::new(rx));
        let decoded = crate::facts::frame::decrypt_and_decode(&nonce, &mut reader, &identity);
        if decoded.is_ok() {
            // The rest (the probe's last log lines, or nothing) is read so
            // the stream ends as the container does, with its exit status.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        let reader = reader.into_inner();
        (decoded, reader.tail(), !reader.ended)
    });
    let finished = async move {
        let (decoded, tail, gave_up) = match task.await {
            Ok(done) => done,
            Err(e) => {
                return Decoded {
                    facts: Err(GatherError::Other(format!(
                        "the output decoder failed: {e}"
                    ))),
                    gave_up: true,
                };
            }
        };
        let facts = decoded.map_err(|e| {
            let message = format!("probe output refused ({e}); it printed: {tail:?}");
            // Output cut inside the frame is worth another attempt.
            if matches!(e, crate::facts::frame::FrameError::Truncated) {
                GatherError::transient(message)
            } else {
                GatherError::Other(message)
            }
        });
        Decoded { facts, gave_up }
    };
    (tx, finished)
}

/// What [`probe_decoder`] made of an output.
pub(crate) struct Decoded {
    facts: Result<Facts, GatherError>,
    /// It stopped reading before the output ended (refused it).
    gave_up: bool,
}

impl Decoded {
    /// The stream's own result and the facts; when the stream failed
    /// because the decoder refused its output, the decoder's reason.
    pub(crate) fn with_stream<T>(
        self,
        stream: Result<T, GatherError>,
    ) -> Result<(T, Result<Facts, GatherError>), GatherError> {
        match stream {
            Ok(t) => Ok((t, self.facts)),
            Err(e) if self.gave_up => Err(self.facts.err().unwrap_or(e)),
            Err(e) => Err(e),
        }
    }
}

/// Reads the chunks a channel receives, keeping the last few hundred
/// bytes for an error message.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    last: std::collections::VecDeque<u8>,
    /// The stream ended (every sender gone).
    ended: bool,
}

/// Bytes of output kept for an error message (the last 300 characters of
/// it are shown).
const TAIL_BYTES: usize = 1200;

impl ChunkReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> ChunkReader {
        ChunkReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            last: std::collections::VecDeque::with_capacity(TAIL_BYTES),
            ended: false,
        }
    }

    /// The last 300 characters the stream carried.
    fn tail(&self) -> String {
        let (a, b) = self.last.as_slices();
        output_tail(&[a, b].concat())
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    let keep = &chunk[chunk.len().saturating_sub(TAIL_BYTES)..];
                    let over = (self.last.len() + keep.len()).saturating_sub(TAIL_BYTES);
                    self.last.drain(..over);
                    self.last.extend(keep);
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The last 300 characters a container printed, for an error result (it
/// passes redaction like every error, and is escaped when printed).
pub fn output_tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    let start = text.char_indices().rev().nth(299).map_or(0, |(i, _)| i);
    text[start..].to_string()
}

/// A scanner image's cosign signature check (`spec.debug.verify`,
/// `spec.sidecar.verify` or `--scanner-key`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScannerImageCheck {
    /// `debug` or `sidecar`.
    pub role: crate::policy::model::Approach,
    /// The image, as pinned.
    pub image: String,
    /// The signature that verified: digest, key, signature and source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<crate::cosign::Verified>,
    /// Why it did not verify; targets that need the image are then errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}
