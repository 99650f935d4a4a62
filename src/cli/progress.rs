//! How a run shows its progress on stderr: a bar on a terminal, one line
//! per target otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;

use crate::runner::Progress;

/// A progress bar on a terminal, plain lines otherwise (both on stderr).
pub(super) fn progress(policy: &str, total: usize) -> Progress {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(policy.to_string());
        let failed = Mutex::new(0usize);
        Box::new(move |s, tally| {
            if s.status == crate::report::run::TargetStatus::Error {
                *failed.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            }
            bar.set_position(tally.done as u64);
            bar.set_message(format!(
                "failed {} in flight {}",
                failed.lock().map_or(0, |g| *g),
                tally.in_flight
            ));
            if tally.done == tally.total {
                bar.finish_and_clear();
            }
        })
    } else {
        let policy = policy.to_string();
        Box::new(move |s, tally| {
            let (done, total, in_flight) = (tally.done, tally.total, tally.in_flight);
            let c = &s.counts;
            match &s.error {
                Some(e) => tracing::warn!(
                    policy = %policy, done, total, in_flight, target_id = %s.id, approach = s.approach.as_str(),
                    attempts = s.attempts, error = %e,
                    "{policy} [{done}/{total}] {}: {}", printable(&s.id), printable(e)
                ),
                None => tracing::info!(
                    policy = %policy, done, total, in_flight, target_id = %s.id, approach = s.approach.as_str(),
                    attempts = s.attempts, passed = c.passed, failed = c.failed, skipped = c.skipped,
                    errors = c.error, compliance = s.compliance, duration = s.duration,
                    "{policy} [{done}/{total}] {}: {} passed, {} failed, {} skipped, {} error, {}%",
                    printable(&s.id), c.passed, c.failed, c.skipped, c.error, s.compliance
                ),
            }
        })
    }
}

/// Untrusted text (target ids from directory names and imported reports,
/// error messages quoting containers) as it may appear on a terminal.
use crate::safeio::printable;
