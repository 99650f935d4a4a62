//! The api approach: ONE `pods/exec` per container runs the generated
//! gatherer script (`facts::shell`) as the run's scoped ServiceAccount and
//! returns every fact; upstream tools spend one round trip per check.

use tokio::runtime::Handle;

use crate::access::RunAccess;
use crate::facts::{FactRequest, Facts, shell};
use crate::plan::PlannedTarget;
use crate::policy::model::Approach;
use crate::runner::{Collector, LocalCollector};

/// Gatherer output larger than this is refused (a big image's facts are a
/// few MiB; the cap bounds what a hostile container can make vigil hold).
pub const MAX_EXEC_OUTPUT: usize = 256 * 1024 * 1024;

/// Collects Kubernetes targets through the API, local ones from disk.
pub struct ApiCollector<'a> {
    /// The runtime the cluster clients live on.
    pub runtime: Handle,
    /// The run's scoped clients.
    pub access: &'a RunAccess,
    /// Where every exec is recorded.
    pub audit: &'a crate::audit::AuditLog,
    /// Bound on one target's exec (the policy's `limits.scanTimeout`): a
    /// stream that stalls is an error result, never a hang.
    pub scan_timeout: std::time::Duration,
}

impl Collector for ApiCollector<'_> {
    fn collect(&self, t: &PlannedTarget, req: &FactRequest) -> Result<Facts, String> {
        match t.approach {
            Approach::Local => LocalCollector.collect(t, req),
            Approach::Api => self.runtime.block_on(async {
                let started = std::time::Instant::now();
                let r = match tokio::time::timeout(self.scan_timeout, self.exec(t, req)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "the scan did not finish within scanTimeout ({})",
                        crate::policy::duration::format(self.scan_timeout)
                    )),
                };
                let ns = t.namespace.as_deref().unwrap_or_default();
                let outcome = r.as_ref().map(|_| ()).map_err(Clone::clone);
                self.audit.record(
                    None,
                    &self.access.identity(ns),
                    "exec",
                    &format!("pods/exec {}", t.id),
                    outcome,
                    started,
                );
                r
            }),
            other => Err(format!(
                "the {} approach is not available in this build; use api or local targets",
                other.as_str()
            )),
        }
    }
}

impl ApiCollector<'_> {
    async fn exec(&self, t: &PlannedTarget, req: &FactRequest) -> Result<Facts, String> {
        let (Some(ns), Some(pod), Some(container)) = (&t.namespace, &t.pod, &t.container) else {
            return Err("target has no namespace/pod/container".into());
        };
        let client = self
            .access
            .scoped(ns)
            .ok_or_else(|| format!("no scoped access for namespace {ns}"))?;
        let mut req = req.clone();
        req.nonce = random_nonce();
        let script = shell::script(&req);
        let out = client
            .exec(
                ns,
                pod,
                container,
                vec!["/bin/sh".into(), "-c".into(), script],
                MAX_EXEC_OUTPUT,
            )
            .await
            .map_err(|e| e.to_string())?;
        match shell::parse(&req, &out.stdout) {
            Ok(facts) => Ok(facts),
            Err(shell::GatherError::NoOutput) => {
                let why = out.status_message.unwrap_or_else(|| {
                    String::from_utf8_lossy(&out.stderr)
                        .trim()
                        .chars()
                        .take(200)
                        .collect()
                });
                Err(format!(
                    "the container has no usable shell (/bin/sh) for the api approach ({why}); distroless images need the debug approach"
                ))
            }
            Err(e) => Err(format!("gatherer output refused: {e}")),
        }
    }
}

/// 128 random bits, hex: frames one exec's output.
fn random_nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    crate::facts::frame::hex(&b)
}
