//! One API rate limit for a whole run: every request, by the caller or by a
//! scoped identity (lists, creates, deletes, TokenRequest, exec, patch,
//! watch, log), takes its turn from the same limiter.
//!
//! The limiter is a virtual scheduling clock (GCRA): each request reserves
//! the next slot, `1/qps` after the previous one, and may run up to
//! `burst - 1` slots early. Over any interval of `t` seconds at most
//! `burst + qps × t` requests start. The burst is `⌈qps / 10⌉`, at least 1:
//! a run's concurrent setup may start a couple of requests together, never
//! a flood.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A shared token bucket.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    burst: u32,
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// At most `qps` requests per second on average (values below 0.1 are
    /// raised to 0.1).
    pub fn new(qps: f64) -> RateLimit {
        let qps = if qps.is_finite() {
            qps.max(0.1)
        } else {
            1000.0
        };
        RateLimit {
            interval: Duration::from_secs_f64(1.0 / qps),
            burst: burst_for(qps),
            next: Mutex::new(None),
        }
    }

    /// The burst allowed for `qps`.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Wait for this request's turn.
    pub async fn acquire(&self) {
        let start = {
            let mut tat = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let theoretical = tat.unwrap_or(now);
            // May start up to `burst - 1` intervals before its theoretical time.
            let early = self.interval * (self.burst - 1);
            let start = now.max(theoretical.checked_sub(early).unwrap_or(now));
            *tat = Some(theoretical.max(start) + self.interval);
            start
        };
        if start > Instant::now() {
            tokio::time::sleep_until(start).await;
        }
    }
}

fn burst_for(qps: f64) -> u32 {
    ((qps / 10.0).ceil() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a paused clock: 100 requests at 20 qps start in bursts of at most
    /// 2 and never more than `burst + qps × t` in any window.
    #[tokio::test(start_paused = true)]
    async fn starts_never_exceed_the_rate_plus_the_burst() {
        let limit = std::sync::Arc::new(RateLimit::new(20.0));
        assert_eq!(limit.burst(), 2);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let l = limit.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now() - t0
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap().as_secs_f64());
        }
        starts.sort_by(f64::total_cmp);
        for (i, &a) in starts.iter().enumerate() {
            for window in [0.0, 0.25, 1.0] {
                let n = starts[i..]
                    .iter()
                    .take_while(|&&b| b <= a + window + 1e-9)
                    .count();
                assert!(
                    n as f64 <= 2.0 + 20.0 * window,
                    "{n} starts in {window} s from {a}"
                );
            }
        }
        // And the rate is used: 100 requests take about 100/20 s.
        let last = starts.last().copied().unwrap();
        assert!((4.8..=5.0).contains(&last), "{last}");
    }
}
