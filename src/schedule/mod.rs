//! Scheduled runs from one machine (`vigil schedule`): each policy runs on
//! its `spec.schedule` (5-field cron or a nickname, in an optional IANA
//! timezone, DST included), never twice at once (a run that comes due while
//! the previous one is still going is skipped and logged), with optional
//! jitter and `catchUp: none|one` after downtime. Retention keeps the last
//! `output.keep` bundles of a policy, deleting older ones only once the
//! newest is sealed.
//!
//! The loop runs on tokio's clock, so tests drive it with a paused clock;
//! what a run is (a child `vigil run` in production) is the caller's.

pub(crate) mod supervise;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Mutex;

use crate::policy::model::{ScanPolicy, Schedule};

/// One policy's parsed schedule.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The policy.
    pub policy: String,
    /// The expression as written.
    pub expression: String,
    cron: croner::Cron,
    /// Its timezone (UTC when the policy names none).
    pub tz: Tz,
    /// Run once at start for a fire missed while down.
    pub catch_up: bool,
    /// Up to this much random delay per fire.
    pub jitter: Duration,
}

/// A schedule that cannot be planned (lint refuses both before a run).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScheduleError {
    /// The cron expression.
    #[error(transparent)]
    Cron(#[from] crate::policy::lint::CronError),
    /// The timezone name.
    #[error("`{0}` is not an IANA timezone")]
    Timezone(String),
}

impl Plan {
    /// Parse a policy's schedule; `None` when it has none.
    pub(crate) fn of(policy: &ScanPolicy) -> Result<Option<Plan>, ScheduleError> {
        let Some(s) = &policy.spec.schedule else {
            return Ok(None);
        };
        let cron = crate::policy::lint::parse_cron(s.cron())?;
        let jitter = s.jitter();
        let (tz, catch_up) = match s {
            Schedule::Cron(_) => (Tz::UTC, false),
            Schedule::Detailed(d) => (
                match &d.timezone {
                    Some(name) => name
                        .parse::<Tz>()
                        .map_err(|_| ScheduleError::Timezone(name.clone()))?,
                    None => Tz::UTC,
                },
                d.catch_up == Some(crate::policy::model::CatchUp::One),
            ),
        };
        Ok(Some(Plan {
            policy: policy.metadata.name.clone(),
            expression: s.cron().to_string(),
            cron,
            tz,
            catch_up,
            jitter,
        }))
    }

    /// The first fire strictly after `t`.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last fire at or before `t`.
    pub(crate) fn previous_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The expression in words.
    pub(crate) fn describe(&self) -> String {
        self.cron.describe()
    }
}

/// Wall time on tokio's clock: a paused test clock moves it too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl Clock {
    /// Start at `wall` now.
    pub(crate) fn starting_at(wall: DateTime<Utc>) -> Clock {
        Clock {
            wall,
            at: tokio::time::Instant::now(),
        }
    }

    /// The current wall time.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default()
    }

    /// The tokio instant of wall time `t` (now, if it has passed).
    fn instant(&self, t: DateTime<Utc>) -> tokio::time::Instant {
        let ahead = (t - self.wall).to_std().unwrap_or_default();
        self.at + ahead
    }
}

/// What happened, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A run started (`catch_up`: for a fire missed while down).
    Started {
        /// The policy.
        policy: String,
        /// The fire time it serves.
        fire: DateTime<Utc>,
        /// Whether it makes up for downtime.
        catch_up: bool,
    },
    /// A fire came while the previous run was still going.
    Skipped {
        /// The policy.
        policy: String,
        /// The fire time skipped.
        fire: DateTime<Utc>,
    },
    /// A run ended.
    Finished {
        /// The policy.
        policy: String,
        /// Whether it succeeded (sealed a bundle).
        ok: bool,
    },
}

/// A run of one policy; resolves to whether it sealed a bundle.
pub(crate) type RunFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Run every plan on its schedule until `stop` resolves. `last` holds each
/// policy's last fire before this start (for catch-up); `run` starts a
/// run; `events` hears everything. On stop, runs in flight are awaited
/// (the runs themselves handle the signal).
pub(crate) async fn daemon(
    plans: Vec<Plan>,
    clock: Clock,
    last: BTreeMap<String, DateTime<Utc>>,
    run: Arc<dyn Fn(&str) -> RunFuture + Send + Sync>,
    events: Arc<dyn Fn(Event) + Send + Sync>,
    stop: impl Future<Output = ()>,
) {
    let running: Arc<Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>> =
        Arc::new(Mutex::new(BTreeMap::new()));
    let start = clock.now();
    // Next fire per policy; a catch-up fire first where one was missed.
    let mut next: BTreeMap<String, (DateTime<Utc>, bool)> = BTreeMap::new();
    for p in &plans {
        let missed = p
            .previous_at_or_before(start)
            .filter(|prev| last.get(&p.policy).is_some_and(|l| l < prev));
        let first = match missed {
            Some(_) if p.catch_up => (start, true),
            _ => match p.next_after(start) {
                Some(t) => (t, false),
                None => continue,
            },
        };
        next.insert(p.policy.clone(), first);
    }
    let by_name: BTreeMap<String, Plan> =
        plans.into_iter().map(|p| (p.policy.clone(), p)).collect();
    let mut stop = std::pin::pin!(stop);
    while let Some((policy, (fire, catch_up))) = next
        .iter()
        .min_by_key(|(_, (t, _))| *t)
        .map(|(k, v)| (k.clone(), *v))
    {
        let plan = &by_name[&policy];
        let delay = jitter(plan.jitter);
        let at = clock.instant(fire) + delay;
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = &mut stop => break,
        }
        let mut r = running.lock().await;
        let busy = r.get(&policy).is_some_and(|h| !h.is_finished());
        if busy {
            events(Event::Skipped {
                policy: policy.clone(),
                fire,
            });
        } else {
            events(Event::Started {
                policy: policy.clone(),
                fire,
                catch_up,
            });
            let fut = run(&policy);
            let ev = events.clone();
            let name = policy.clone();
            r.insert(
                policy.clone(),
                tokio::spawn(async move {
                    let ok = fut.await;
                    ev(Event::Finished { policy: name, ok });
                }),
            );
        }
        drop(r);
        match plan.next_after(if catch_up {
            clock.now().max(fire)
        } else {
            fire
        }) {
            Some(t) => {
                next.insert(policy, (t, false));
            }
            None => {
                next.remove(&policy);
            }
        }
    }
    let handles: Vec<_> = std::mem::take(&mut *running.lock().await)
        .into_values()
        .collect();
    for h in handles {
        let _ = h.await;
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    max.mul_f64(u64::from_le_bytes(b) as f64 / u64::MAX as f64)
}

/// Keep the newest `keep` sealed bundles under `dir` (one policy's output
/// directory, bundles named by their UUIDv7 run ids, which sort by time);
/// delete older sealed ones. Nothing is deleted unless the newest bundle is
/// sealed; unsealed directories (a run in progress, a crash) are left
/// alone. Returns what was deleted.
pub(crate) fn retain(dir: &Path, keep: usize) -> std::io::Result<Vec<String>> {
    let mut sealed: Vec<String> = Vec::new();
    let mut newest_any: Option<String> = None;
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // A run in progress writes into `.<run-id>.partial` (see
        // `seal::bundle::SealedDir`): it counts as the newest, unsealed.
        let staged = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".partial"));
        let id = staged.unwrap_or(&name);
        if !e.file_type().is_ok_and(|t| t.is_dir()) || uuid::Uuid::parse_str(id).is_err() {
            continue;
        }
        if staged.is_some() {
            if newest_any.as_ref().is_none_or(|n| id > n.as_str()) {
                newest_any = Some(id.to_string());
            }
            continue;
        }
        if newest_any.as_ref().is_none_or(|n| &name > n) {
            newest_any = Some(name.clone());
        }
        if e.path().join(crate::seal::bundle::STATEMENT_FILE).is_file() {
            sealed.push(name);
        }
    }
    sealed.sort();
    let newest_sealed = sealed.last().cloned();
    if keep == 0 || newest_sealed.is_none() || newest_sealed != newest_any {
        return Ok(Vec::new());
    }
    let mut deleted = Vec::new();
    let excess = sealed.len().saturating_sub(keep);
    for name in sealed.into_iter().take(excess) {
        std::fs::remove_dir_all(dir.join(&name))?;
        deleted.push(name);
    }
    Ok(deleted)
}

/// After a scheduled run that sealed a bundle: retention (`output.keep`),
/// then `spec.monitoring` (audit-check, attested with the run's key). Each
/// outcome is logged; none stops the scheduler.
pub(crate) async fn after_run(
    policy: &str,
    dir: std::path::PathBuf,
    keep: Option<u32>,
    monitor: Option<(
        crate::policy::model::Monitoring,
        std::sync::Arc<crate::seal::keys::Signer>,
    )>,
) {
    if let Some(k) = keep {
        match retain(&dir, k as usize) {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(policy = %policy, deleted = gone.len(), "retention: deleted {} old bundle(s), kept {k}", gone.len());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(policy = %policy, "retention: {e}"),
        }
    }
    let Some((m, signer)) = monitor else { return };
    let checked =
        tokio::task::spawn_blocking(move || crate::monitor::check_after_run(&dir, &m, &signer))
            .await;
    match checked {
        Ok(Ok((bundle, _, crate::monitor::AuditVerdict::Clean))) => {
            tracing::info!(policy = %policy, bundle = %bundle.display(), "{policy}: audit-check clean, attested in the bundle");
        }
        Ok(Ok((bundle, report, _))) => {
            let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
            tracing::warn!(policy = %policy, bundle = %bundle.display(), findings = ?codes, "{policy}: audit-check found {} finding(s): {codes:?}; attested in the bundle", codes.len());
        }
        Ok(Err(e)) => tracing::error!(policy = %policy, "{policy}: audit-check: {e}"),
        Err(e) => tracing::error!(policy = %policy, "{policy}: audit-check: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(expr: &str, tz: Tz, catch_up: bool) -> Plan {
        Plan {
            policy: "p".into(),
            expression: expr.into(),
            cron: crate::policy::lint::parse_cron(expr).unwrap(),
            tz,
            catch_up,
            jitter: Duration::ZERO,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fire_times_follow_the_timezone_through_dst() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer;
        // the clocks moved on 2026-03-29.
        let p = plan("0 9 * * *", chrono_tz::Europe::Berlin, false);
        let mut t = utc("2026-03-27T12:00:00Z");
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = p.next_after(t).unwrap();
            fires.push(t.to_rfc3339());
        }
        assert_eq!(
            fires,
            [
                "2026-03-28T08:00:00+00:00",
                "2026-03-29T07:00:00+00:00",
                "2026-03-30T07:00:00+00:00"
            ]
        );
        // A time the DST change skips (02:30 on 2026-03-29 does not exist
        // in Berlin): that day's fire comes when the wall clock passes it.
        let p = plan("30 2 * * *", chrono_tz::Europe::Berlin, false);
        let gap = p.next_after(utc("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(
            gap.with_timezone(&chrono_tz::Europe::Berlin)
                .date_naive()
                .to_string(),
            "2026-03-29"
        );
        // Nicknames and another zone.
        let p = plan("@daily", chrono_tz::America::New_York, false);
        assert_eq!(
            p.next_after(utc("2026-11-26T12:00:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2026-11-27T05:00:00+00:00"
        );
        let p = plan("@hourly", Tz::UTC, false);
        assert_eq!(
            p.next_after(utc("2026-11-26T12:00:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2026-11-26T13:00:00+00:00"
        );
        let p = plan("30 3 * * 1-5", Tz::UTC, false);
        // 2026-11-28 is a Saturday: the next weekday fire is Monday.
        assert_eq!(
            p.next_after(utc("2026-11-27T04:00:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2026-11-30T03:30:00+00:00"
        );
        assert!(!p.describe().is_empty());
    }

    type Log = Arc<std::sync::Mutex<Vec<(Event, DateTime<Utc>)>>>;

    fn recorder(clock: Clock) -> (Log, Arc<dyn Fn(Event) + Send + Sync>) {
        let log: Log = Arc::default();
        let l = log.clone();
        (
            log,
            Arc::new(move |e| l.lock().unwrap().push((e, clock.now()))),
        )
    }

    /// A run that takes `d` on the (paused) clock.
    fn slow_run(d: Duration) -> Arc<dyn Fn(&str) -> RunFuture + Send + Sync> {
        Arc::new(move |_| {
            Box::pin(async move {
                tokio::time::sleep(d).await;
                true
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_fire_during_a_run_is_skipped() {
        let clock = Clock::starting_at(utc("2026-11-26T12:00:30Z"));
        let (log, events) = recorder(clock);
        daemon(
            vec![plan("* * * * *", Tz::UTC, false)],
            clock,
            BTreeMap::new(),
            slow_run(Duration::from_secs(90)),
            events,
            tokio::time::sleep(Duration::from_secs(200)),
        )
        .await;
        let log = log.lock().unwrap().clone();
        let kinds: Vec<String> = log
            .iter()
            .map(|(e, at)| match e {
                Event::Started { fire, .. } => format!(
                    "start {} at {}",
                    fire.format("%H:%M"),
                    at.format("%H:%M:%S")
                ),
                Event::Skipped { fire, .. } => format!("skip {}", fire.format("%H:%M")),
                Event::Finished { .. } => format!("done at {}", at.format("%H:%M:%S")),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start 12:01 at 12:01:00",
                "skip 12:02",
                "done at 12:02:30",
                "start 12:03 at 12:03:00",
                "done at 12:04:30",
            ],
            "{kinds:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn catch_up_runs_once_for_fires_missed_while_down() {
        for (catch_up, want_first) in [(true, "12:00:00"), (false, "13:00:00")] {
            let clock = Clock::starting_at(utc("2026-11-26T12:00:00Z"));
            let (log, events) = recorder(clock);
            // Last ran at 08:00; the 09:00, 10:00 and 11:00 fires were missed.
            let last = [("p".to_string(), utc("2026-11-26T08:00:00Z"))].into();
            daemon(
                vec![plan("0 * * * *", Tz::UTC, catch_up)],
                clock,
                last,
                slow_run(Duration::from_secs(60)),
                events,
                tokio::time::sleep(Duration::from_secs(3700)),
            )
            .await;
            let starts: Vec<(String, bool)> = log
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(e, at)| match e {
                    Event::Started { catch_up, .. } => {
                        Some((at.format("%H:%M:%S").to_string(), *catch_up))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(starts[0].0, want_first, "catch_up {catch_up}: {starts:?}");
            assert_eq!(starts[0].1, catch_up);
            // Once, not once per missed fire.
            assert_eq!(
                starts.iter().filter(|(_, c)| *c).count(),
                usize::from(catch_up)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_fire_within_its_bound() {
        let clock = Clock::starting_at(utc("2026-11-26T12:00:30Z"));
        let (log, events) = recorder(clock);
        let mut p = plan("* * * * *", Tz::UTC, false);
        p.jitter = Duration::from_secs(20);
        daemon(
            vec![p],
            clock,
            BTreeMap::new(),
            slow_run(Duration::from_secs(1)),
            events,
            tokio::time::sleep(Duration::from_secs(10 * 60)),
        )
        .await;
        let starts: Vec<(DateTime<Utc>, DateTime<Utc>)> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(e, at)| match e {
                Event::Started { fire, .. } => Some((*fire, *at)),
                _ => None,
            })
            .collect();
        assert!(starts.len() >= 9, "{starts:?}");
        for (fire, at) in &starts {
            let late = (*at - *fire).num_milliseconds();
            assert!((0..20_000).contains(&late), "{fire} started {late} ms late");
        }
        // Not all at the same offset: it is random.
        let offsets: std::collections::BTreeSet<i64> = starts
            .iter()
            .map(|(f, a)| (*a - *f).num_milliseconds())
            .collect();
        assert!(offsets.len() > 1, "{offsets:?}");
    }

    #[test]
    fn retention_keeps_the_newest_sealed_bundles_and_waits_for_the_newest_to_seal() {
        let dir = std::env::temp_dir().join(format!("vigil-retain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut names = Vec::new();
        for i in 0..4u64 {
            let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                1_790_000_000 + i,
                0,
            ))
            .to_string();
            std::fs::create_dir_all(dir.join(&id)).unwrap();
            std::fs::write(
                dir.join(&id).join(crate::seal::bundle::STATEMENT_FILE),
                "{}",
            )
            .unwrap();
            names.push(id);
        }
        // A newer run still in progress (no statement): nothing is deleted.
        let pending = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_790_000_100,
            0,
        ))
        .to_string();
        std::fs::create_dir_all(dir.join(&pending)).unwrap();
        assert_eq!(retain(&dir, 2).unwrap(), Vec::<String>::new());
        // Sealed now: the two oldest go.
        std::fs::write(
            dir.join(&pending).join(crate::seal::bundle::STATEMENT_FILE),
            "{}",
        )
        .unwrap();
        assert_eq!(retain(&dir, 2).unwrap(), names[..3].to_vec());
        assert!(dir.join(&names[3]).is_dir() && dir.join(&pending).is_dir());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
