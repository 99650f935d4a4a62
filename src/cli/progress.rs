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
                "{prefix} [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(policy.to_string());
        // (errors, below threshold): the words the summary uses, so the
        // bar never says "failed 0" of a run whose verdict is fail.
        let seen = Mutex::new((0usize, 0usize));
        Box::new(move |s, tally| {
            let mut g = seen.lock().unwrap_or_else(|e| e.into_inner());
            count(
                &mut g,
                s.status == crate::report::run::TargetStatus::Error,
                s.threshold.as_ref().is_some_and(|v| !v.passed),
            );
            bar.set_position(tally.done as u64);
            bar.set_message(bar_message(g.0, g.1, tally.in_flight));
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

/// Count one finished target into (errors, below threshold): a target that
/// could not be scanned is an error, not a threshold failure, as in the
/// run's verdict.
fn count(seen: &mut (usize, usize), errored: bool, below: bool) {
    if errored {
        seen.0 += 1;
    } else if below {
        seen.1 += 1;
    }
}

/// The bar's words: targets that could not be scanned, targets below their
/// threshold, scans in flight.
fn bar_message(errors: usize, below: usize, in_flight: usize) -> String {
    format!("errors {errors}, below threshold {below}, in flight {in_flight}")
}

#[cfg(test)]
mod tests {
    /// The bar counts what the verdict counts, in its words.
    #[test]
    fn the_bar_names_errors_and_threshold_failures_apart() {
        let mut seen = (0, 0);
        // An error target whose threshold also failed counts once, as an
        // error; a scanned one below its threshold is a threshold failure
        // (the old bar called that "failed 0").
        super::count(&mut seen, true, true);
        super::count(&mut seen, false, true);
        super::count(&mut seen, false, true);
        super::count(&mut seen, false, false);
        assert_eq!(seen, (1, 2));
        assert_eq!(
            super::bar_message(1, 2, 3),
            "errors 1, below threshold 2, in flight 3"
        );
    }
}
