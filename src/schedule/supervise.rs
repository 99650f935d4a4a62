//! The scheduler's side of the runs it starts: each is a child `vigil
//! run` (so a crash or a leak in one run never takes the scheduler down),
//! tracked so SIGTERM/SIGINT reach runs in flight; the last fire per policy
//! is kept in `OUT/<policy>/.vigil-schedule` for catch-up after downtime;
//! after a run that sealed a bundle, retention and monitoring
//! ([`super::after_run`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::policy::PolicySet;

use super::{Clock, Event, Plan, RunFuture};

/// How each scheduled run is started: the `vigil run` flags it gets.
#[derive(Debug, Clone)]
pub(crate) struct Runs {
    /// The policy and profile files or directories.
    pub(crate) paths: Vec<PathBuf>,
    /// `--out`.
    pub(crate) out: Option<PathBuf>,
    /// `--signing-key` (also signs the monitoring attestation).
    pub(crate) signing_key: Option<PathBuf>,
    /// `--plaintext`.
    pub(crate) plaintext: bool,
}

/// Why the scheduler cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The policies or flags ask for what cannot be (bad input).
    #[error("{0}")]
    Invalid(String),
    /// The runtime, the signal handlers or this executable's path.
    #[error("cannot run the scheduler: {0}")]
    Io(std::io::Error),
}

/// Run `plans` on their schedules until SIGTERM or SIGINT, each run a
/// child `vigil run` started as `runs` says.
pub(crate) fn serve(set: &PolicySet, plans: Vec<Plan>, runs: &Runs) -> Result<(), ServeError> {
    // What each run will need, checked now: a policy that cannot be sealed
    // (no recipients, no signing key) is refused at start, not at its
    // first fire hours later.
    let sealing = crate::seal::options::Sealing {
        signing_key: runs.signing_key.clone(),
        plaintext: runs.plaintext,
        ..Default::default()
    };
    for p in set
        .policies
        .iter()
        .filter(|p| plans.iter().any(|pl| pl.policy == p.value.metadata.name))
    {
        sealing
            .keys(p)
            .map_err(|e| ServeError::Invalid(format!("policy {}: {e}", p.value.metadata.name)))?;
    }
    let monitored = set
        .policies
        .iter()
        .find(|p| p.value.spec.monitoring.is_some());
    // spec.monitoring: audit-check after each run, attested with the key
    // that signs the runs.
    let signer = match (&runs.signing_key, monitored) {
        (Some(k), Some(_)) => Some(Arc::new(
            crate::seal::keys::Signer::from_file(k)
                .map_err(|e| ServeError::Invalid(e.to_string()))?,
        )),
        (None, Some(p)) => {
            return Err(ServeError::Invalid(format!(
                "policy {} sets spec.monitoring: its audit-check is attested with the key that signs the runs; pass --signing-key",
                p.value.metadata.name
            )));
        }
        _ => None,
    };
    let policies: BTreeMap<String, Scheduled> = set
        .policies
        .iter()
        .map(|p| {
            let name = p.value.metadata.name.clone();
            let base = crate::seal::layout::output_dir(&p.value, runs.out.as_ref());
            let scheduled = Scheduled {
                dir: base.join(&name),
                keep: p.value.spec.output.keep,
                monitor: p.value.spec.monitoring.clone().zip(signer.clone()),
            };
            (name, scheduled)
        })
        .collect();
    let last = plans
        .iter()
        .filter_map(|p| Some((p.policy.clone(), policies.get(&p.policy)?.last_fire()?)))
        .collect();
    let supervisor = Arc::new(Supervisor {
        exe: std::env::current_exe().map_err(ServeError::Io)?,
        runs: runs.clone(),
        policies,
        children: Mutex::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Io)?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServeError::Io)?;
        let stop = async {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::warn!("signal received: no new runs; runs in flight get SIGTERM and finish or cancel cleanly");
            supervisor.terminate_children();
        };
        for p in &plans {
            if let Some(next) = p.next_after(chrono::Utc::now()) {
                tracing::info!(policy = %p.policy, next = %next.to_rfc3339(), "{}: next run {}", p.policy, next.with_timezone(&p.tz).to_rfc3339());
            }
        }
        let (starter, observer) = (supervisor.clone(), supervisor.clone());
        super::daemon(
            plans,
            Clock::starting_at(chrono::Utc::now()),
            last,
            Arc::new(move |policy: &str| starter.start(policy)),
            Arc::new(move |e: Event| observer.observe(e)),
            stop,
        )
        .await;
        Ok(())
    })
}

/// What the scheduler keeps per policy.
struct Scheduled {
    /// `OUT/<policy>`: its bundles and its schedule state.
    dir: PathBuf,
    /// `output.keep`.
    keep: Option<u32>,
    /// `spec.monitoring`, with the key that attests it.
    monitor: Option<(
        crate::policy::model::Monitoring,
        Arc<crate::seal::keys::Signer>,
    )>,
}

impl Scheduled {
    /// The file that keeps the last fire (for catch-up after downtime).
    fn state(&self) -> PathBuf {
        self.dir.join(".vigil-schedule")
    }

    /// The last fire recorded, when the state file holds one.
    fn last_fire(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = crate::safeio::read_to_string(&self.state(), 4096, "schedule state").ok()?;
        let t = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
        Some(t.with_timezone(&chrono::Utc))
    }
}

/// Starts the runs and keeps track of the ones in flight.
struct Supervisor {
    exe: PathBuf,
    runs: Runs,
    policies: BTreeMap<String, Scheduled>,
    /// The pids of the runs in flight.
    children: Mutex<BTreeSet<u32>>,
}

impl Supervisor {
    fn children(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGTERM to every run in flight: each finishes or cancels cleanly
    /// and seals what it has.
    fn terminate_children(&self) {
        for pid in self.children().iter() {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }

    /// One run of `policy`: a child `vigil run`; true when it sealed a
    /// bundle (exit 0 or 1), after which retention and monitoring run.
    fn start(self: &Arc<Self>, policy: &str) -> RunFuture {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("run")
            .args(&self.runs.paths)
            .args(["--policy", policy]);
        if let Some(o) = &self.runs.out {
            cmd.arg("--out").arg(o);
        }
        if let Some(k) = &self.runs.signing_key {
            cmd.arg("--signing-key").arg(k);
        }
        if self.runs.plaintext {
            cmd.arg("--plaintext");
        }
        let this = self.clone();
        let policy = policy.to_string();
        Box::pin(async move {
            let Ok(mut child) = cmd.spawn() else {
                tracing::error!(policy = %policy, "cannot start `vigil run`");
                return false;
            };
            let pid = child.id();
            if let Some(pid) = pid {
                this.children().insert(pid);
            }
            let status = child.wait().await;
            if let Some(pid) = pid {
                this.children().remove(&pid);
            }
            // 0: pass, 1: a threshold failed — both sealed a bundle.
            let ok = status.is_ok_and(|s| matches!(s.code(), Some(0 | 1)));
            if let (true, Some(p)) = (ok, this.policies.get(&policy)) {
                super::after_run(&policy, p.dir.clone(), p.keep, p.monitor.clone()).await;
            }
            ok
        })
    }

    /// Log the scheduler's events; a run's start records its fire.
    fn observe(&self, e: Event) {
        match e {
            Event::Started {
                policy,
                fire,
                catch_up,
            } => {
                if let Some(p) = self.policies.get(&policy) {
                    let _ = std::fs::create_dir_all(&p.dir);
                    let _ = std::fs::write(p.state(), fire.to_rfc3339());
                }
                tracing::info!(policy = %policy, fire = %fire.to_rfc3339(), catch_up, "{policy}: run for {fire}{}", if catch_up { " (catching up)" } else { "" });
            }
            Event::Skipped { policy, fire } => {
                tracing::warn!(policy = %policy, fire = %fire.to_rfc3339(), "{policy}: skipped the run due {fire}: the previous run is still going");
            }
            Event::Finished { policy, ok } => {
                tracing::info!(policy = %policy, ok, "{policy}: run finished{}", if ok { "" } else { " with errors" });
            }
        }
    }
}
