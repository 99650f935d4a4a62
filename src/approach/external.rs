//! An external scanner (`spec.scanner`: CINC Auditor or InSpec) run over
//! vigil's access: the profile a team already owns, executed with the
//! run's scoped, bound, short-lived token instead of someone's admin
//! kubeconfig.
//!
//! For each target vigil writes a kubeconfig holding only the scoped token
//! (mode 0600, in a private 0700 directory that is removed afterwards —
//! after success, failure, timeout and signals alike), and runs
//!
//! ```text
//! BINARY exec PROFILE -t k8s-container://NS/POD/CONTAINER \
//!   --reporter json:DIR/report.json --input-file DIR/inputs.yml [--waiver-file W] --no-color
//! ```
//!
//! with a minimal environment (`PATH`, `HOME` = the private directory,
//! `KUBECONFIG`, `LANG`; nothing inherited that could hold a secret), the
//! scan timeout, and caps on what it may print and report. Exit codes 0
//! (passed), 100 (failures) and 101 (skips only) are results; anything
//! else is an error result carrying the scanner's last words (redacted).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;

use super::collector::Failure;
use crate::access::RunAccess;
use crate::plan::PlannedTarget;
use crate::policy::model::{ExternalScanner, ScannerKind};

/// Reports larger than this are refused.
const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;
/// What is kept of the scanner's stderr for the error message.
const MAX_STDERR_BYTES: u64 = 64 * 1024;

/// A directory only this user can enter, removed with everything in it
/// when dropped.
pub(crate) struct PrivateDir(PathBuf);

impl PrivateDir {
    /// Create `$TMPDIR/vigil-scan-<random>` with mode 0700.
    pub(crate) fn new() -> std::io::Result<PrivateDir> {
        let path = std::env::temp_dir().join(format!("vigil-scan-{}", super::random_nonce()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir(path))
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Write a file only this user can read (it must not exist yet).
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the policy's external scanner against targets.
pub(crate) struct ExternalRun<'a> {
    /// The runtime the scans wait on.
    pub runtime: Handle,
    /// The run's scoped clients.
    pub access: &'a RunAccess,
    /// Where each scan is recorded.
    pub audit: &'a crate::audit::AuditLog,
    /// `limits.scanTimeout`.
    pub scan_timeout: Duration,
    /// `spec.scanner`.
    pub scanner: &'a ExternalScanner,
    /// The policy file's directory (profile and waiver paths are relative to it).
    pub base_dir: &'a Path,
    /// Becomes true when scans in flight must stop.
    pub abort: tokio::sync::watch::Receiver<bool>,
}

/// The external scanner is a collector like vigil's own: what it brings
/// back is its HDF report, and its evidence is its own word.
impl super::Collector for ExternalRun<'_> {
    fn collect(
        &self,
        t: &PlannedTarget,
        _: &crate::facts::FactRequest,
        scan_id: &str,
    ) -> Result<super::Gathered, Failure> {
        Ok(super::Gathered {
            collected: super::collector::Collected::Report(self.scan(t, scan_id)?),
            approach: t.approach,
            attempts: 1,
        })
    }

    fn evidence(&self, _: crate::policy::model::Approach) -> crate::policy::model::Evidence {
        crate::policy::model::Evidence::External
    }
}

impl ExternalRun<'_> {
    /// Scan one target; the HDF report on success.
    pub(crate) fn scan(&self, t: &PlannedTarget, scan_id: &str) -> Result<Vec<u8>, Failure> {
        let started = Instant::now();
        let ns = t.namespace.as_deref().unwrap_or_default();
        let result = self.runtime.block_on(self.run(t));
        let binary = self.binary();
        self.audit.record(
            Some(scan_id),
            &self.access.identity(ns),
            crate::audit::Call::Exec {
                namespace: ns.into(),
                pod: t.pod.clone().unwrap_or_default(),
                container: t.container.clone().unwrap_or_default(),
            },
            &format!("pods/exec {} (external scanner {binary})", t.id),
            result.as_ref().map(|_| ()).map_err(|f| f.message.clone()),
            started,
            Default::default(),
        );
        result
    }

    fn binary(&self) -> String {
        self.scanner
            .binary
            .clone()
            .unwrap_or_else(|| self.scanner.kind.binary().to_string())
    }

    async fn run(&self, t: &PlannedTarget) -> Result<Vec<u8>, Failure> {
        let (Some(ns), Some(pod), Some(container)) = (&t.namespace, &t.pod, &t.container) else {
            return Err("the external scanner reaches Kubernetes containers only".into());
        };
        let client = self
            .access
            .scoped(ns)
            .ok_or_else(|| format!("no scoped access for namespace {ns}"))?;
        let kubeconfig = client
            .scoped_kubeconfig(ns)
            .ok_or("no scoped token for the external scanner")?;
        // Removed when this function returns, whatever happens.
        let dir =
            PrivateDir::new().map_err(|e| format!("cannot create a private directory: {e}"))?;
        let io = |e: std::io::Error| format!("cannot prepare the scan: {e}");
        let kubeconfig = dir.write("kubeconfig", kubeconfig.as_bytes()).map_err(io)?;
        let inputs = dir
            .write(
                "inputs.yml",
                serde_json::to_string(&self.scanner.inputs)
                    .expect("inputs serialize")
                    .as_bytes(),
            )
            .map_err(io)?;
        let report = dir.path().join("report.json");
        let binary = self.binary();
        // The scanner runs in the private directory: hand it absolute paths.
        let absolute = |rel: &str| {
            std::path::absolute(self.base_dir.join(rel))
                .map_err(|e| format!("cannot resolve {rel}: {e}"))
        };
        let profile = absolute(&self.scanner.profile)?;
        let waivers = self.scanner.waivers.as_deref().map(absolute).transpose()?;
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.arg("exec")
            .arg(profile)
            .arg("-t")
            .arg(format!("k8s-container://{ns}/{pod}/{container}"))
            .arg("--reporter")
            .arg(format!("json:{}", report.display()))
            .arg("--input-file")
            .arg(&inputs);
        if let Some(w) = waivers {
            cmd.arg("--waiver-file").arg(w);
        }
        cmd.arg("--no-color");
        if self.scanner.kind == ScannerKind::Inspec {
            cmd.args(["--chef-license", "accept-silent"]);
        }
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", dir.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("LANG", "C.UTF-8")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run the external scanner {binary:?}: {e}"))?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // Keep the first bytes of stderr, drain the rest so the scanner never blocks.
        let collect = async move {
            let mut kept = Vec::new();
            let _ = (&mut stderr)
                .take(MAX_STDERR_BYTES)
                .read_to_end(&mut kept)
                .await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            kept
        };
        let mut abort = self.abort.clone();
        let waiting = async { tokio::join!(child.wait(), collect) };
        // On timeout or abort the child is dropped on return, which kills it
        // (kill_on_drop), before the private directory goes.
        let (status, kept) = tokio::select! {
            r = tokio::time::timeout(self.scan_timeout, waiting) => match r {
                Ok(r) => r,
                Err(_) => {
                    return Err(Failure::timeout("the external scanner", self.scan_timeout));
                }
            },
            _ = abort.wait_for(|a| *a) => {
                return Err(Failure::stopped_in_flight());
            }
        };
        let status = status.map_err(|e| format!("waiting for {binary}: {e}"))?;
        let last_words = || {
            let text = String::from_utf8_lossy(&kept);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        };
        match status.code() {
            // InSpec: 0 all passed, 100 some failed, 101 some skipped.
            Some(0 | 100 | 101) => {}
            code => {
                return Err(Failure::from(format!(
                    "the external scanner {binary} exited with {}: {}",
                    code.map_or_else(|| "a signal".to_string(), |c| format!("code {c}")),
                    last_words()
                )));
            }
        }
        let size = std::fs::metadata(&report)
            .map_err(|e| format!("{binary} wrote no report: {e}; it said: {}", last_words()))?
            .len();
        if size > MAX_REPORT_BYTES {
            return Err(Failure::from(format!(
                "{binary}'s report is larger than {} MiB",
                MAX_REPORT_BYTES >> 20
            )));
        }
        let bytes = crate::safeio::read(&report, MAX_REPORT_BYTES, "report")
            .map_err(|e| format!("{binary}: {e}"))?;
        // Read as HDF by the runner, which binds it to the run.
        Ok(bytes)
    }
}
