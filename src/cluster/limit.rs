//! One API rate limit for a whole run: every request, by the caller or by a
//! scoped identity (lists, creates, deletes, TokenRequest, exec, patch,
//! watch, log), takes its turn from the same limiter.
//!
//! The limiter is a token bucket: it holds at most `burst` tokens, refills
//! at `qps` per second, and a request starts only by taking a token at the
//! moment it starts. So over any interval of `t` seconds at most
//! `burst + qps × t` requests start — also after the process was stalled
//! (a reserving scheduler would let every request whose slot passed during
//! the stall go at once). The burst is `⌈qps / 10⌉`, at least 1: a run's
//! concurrent setup may start a couple of requests together, never a flood.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A shared token bucket.
#[derive(Debug)]
pub(crate) struct RateLimit {
    qps: f64,
    burst: u32,
    /// Tokens held, and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// At most `qps` requests per second on average (values below 0.1 are
    /// raised to 0.1).
    pub(crate) fn new(qps: f64) -> RateLimit {
        let qps = if qps.is_finite() {
            qps.max(0.1)
        } else {
            1000.0
        };
        let burst = burst_for(qps);
        RateLimit {
            qps,
            burst,
            bucket: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// The burst allowed for `qps`.
    #[cfg(test)]
    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    /// Wait for this request's turn: take a token, or sleep until one is
    /// due and try again.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let (tokens, counted) = *bucket;
                let tokens =
                    (tokens + (now - counted).as_secs_f64() * self.qps).min(f64::from(self.burst));
                if tokens >= 1.0 {
                    *bucket = (tokens - 1.0, now);
                    return;
                }
                *bucket = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.qps)
            };
            tokio::time::sleep(wait).await;
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

    /// After a pause (a stalled process), requests waiting do not all go
    /// at once: at most the burst does.
    #[tokio::test(start_paused = true)]
    async fn a_stall_does_not_release_a_flood() {
        let limit = std::sync::Arc::new(RateLimit::new(10.0));
        tokio::time::advance(Duration::from_secs(5)).await;
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let l = limit.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now() - t0
            }));
        }
        let mut at_once = 0;
        for t in tasks {
            if t.await.unwrap().is_zero() {
                at_once += 1;
            }
        }
        assert_eq!(at_once, limit.burst() as usize);
    }
}
