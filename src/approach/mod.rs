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
pub mod debug;
pub mod sidecar;

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::access::RunAccess;
use crate::cluster::Cluster;
use crate::facts::{FactRequest, Facts};
use crate::plan::PlannedTarget;
use crate::policy::model::{Approach, ScannerSpec};
use crate::runner::{Collector, Gathered, LocalCollector};

/// Output larger than this is refused (a big image's facts are a few MiB;
/// the cap bounds what a hostile container can make vigil hold).
pub const MAX_OUTPUT: usize = 256 * 1024 * 1024;

/// Where the scanner image keeps the vigil binary (see `Dockerfile`).
pub const PROBE_BINARY: &str = "/usr/local/bin/vigil";

/// Why one approach could not gather a target's facts.
#[derive(Debug)]
pub enum GatherError {
    /// The container has no usable shell (the api approach's exec said so).
    NoShell(String),
    /// Anything else, said in a sentence.
    Other(String),
}

impl From<String> for GatherError {
    fn from(s: String) -> Self {
        GatherError::Other(s)
    }
}

impl std::fmt::Display for GatherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatherError::NoShell(why) => write!(
                f,
                "the container has no usable shell (/bin/sh) for the api approach ({why}); distroless images need the debug approach (set spec.debug.image and approach: auto or debug)"
            ),
            GatherError::Other(s) => f.write_str(s),
        }
    }
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
}

/// One target's scan in progress: its scoped client and audit identity.
pub struct Scan<'a> {
    /// The target.
    pub target: &'a PlannedTarget,
    /// The scan id (names ephemeral containers, keys audit lines).
    pub scan_id: &'a str,
    /// The scoped client for the target's namespace.
    pub client: &'a Cluster,
    collector: &'a KubeCollector<'a>,
}

impl Scan<'_> {
    /// Run one API call as the scoped identity and record it in the audit log.
    pub async fn audited<T>(
        &self,
        verb: &str,
        object: String,
        op: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let started = Instant::now();
        let r = op.await;
        let ns = self.target.namespace.as_deref().unwrap_or_default();
        self.collector.audit.record(
            Some(self.scan_id),
            &self.collector.access.identity(ns),
            verb,
            &object,
            r.as_ref().map(|_| ()).map_err(Clone::clone),
            started,
        );
        r
    }

    /// The target's namespace, pod and container.
    pub fn coordinates(&self) -> Result<(&str, &str, &str), String> {
        match (
            &self.target.namespace,
            &self.target.pod,
            &self.target.container,
        ) {
            (Some(ns), Some(pod), Some(c)) => Ok((ns, pod, c)),
            _ => Err("target has no namespace/pod/container".into()),
        }
    }
}

impl KubeCollector<'_> {
    async fn gather(
        &self,
        t: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
    ) -> Result<Gathered, String> {
        let ns = t.namespace.as_deref().unwrap_or_default();
        let client = self
            .access
            .scoped(ns)
            .ok_or_else(|| format!("no scoped access for namespace {ns}"))?;
        let scan = Scan {
            target: t,
            scan_id,
            client,
            collector: self,
        };
        let scan = &scan;
        let debug = |why: Option<String>| async move {
            let Some(spec) = self.debug else {
                return Err(match why {
                    Some(w) => w,
                    None => "the debug approach needs spec.debug.image".into(),
                });
            };
            let facts: Facts = debug::gather(scan, req, spec)
                .await
                .map_err(|e| match &why {
                    Some(w) => format!("{w}; then the debug approach failed: {e}"),
                    None => e.to_string(),
                })?;
            Ok(Gathered {
                facts,
                approach: Approach::Debug,
            })
        };
        match t.approach {
            Approach::Api => api::gather(scan, req)
                .await
                .map(|facts| Gathered {
                    facts,
                    approach: Approach::Api,
                })
                .map_err(|e| e.to_string()),
            Approach::Sidecar => sidecar::gather(scan, req)
                .await
                .map(|facts| Gathered {
                    facts,
                    approach: Approach::Sidecar,
                })
                .map_err(|e| e.to_string()),
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
                    Ok(facts) => Ok(Gathered {
                        facts,
                        approach: Approach::Api,
                    }),
                    Err(e @ GatherError::NoShell(_)) => debug(Some(e.to_string())).await,
                    Err(e) => Err(e.to_string()),
                }
            }
            Approach::Local => Err("a local target reached the cluster collector".into()),
        }
    }
}

impl Collector for KubeCollector<'_> {
    fn collect(
        &self,
        t: &PlannedTarget,
        req: &FactRequest,
        scan_id: &str,
    ) -> Result<Gathered, String> {
        if t.approach == Approach::Local {
            return LocalCollector.collect(t, req, scan_id);
        }
        self.runtime.block_on(async {
            match tokio::time::timeout(self.scan_timeout, self.gather(t, req, scan_id)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "the scan did not finish within scanTimeout ({})",
                    crate::policy::duration::format(self.scan_timeout)
                )),
            }
        })
    }
}

/// 128 random bits, hex: frames one scan's output.
pub fn random_nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    crate::facts::frame::hex(&b)
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

/// Decode the probe's framed output, or say what the container printed
/// instead (capped, for the error result).
pub fn decode_probe_output(nonce: &str, output: &[u8]) -> Result<Facts, String> {
    crate::facts::frame::decode(nonce, output).map_err(|e| {
        let text = String::from_utf8_lossy(output);
        let tail: String = text
            .trim()
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("probe output refused ({e}); it printed: {tail:?}")
    })
}
