//! A pacer: keeps requests under a rate, across every task that shares it, and can be held back
//! (for example by a global rate limit). It may let a short burst through at once (see
//! [`Pacer::with_burst`]); past the burst, requests are spaced evenly.

use std::{sync::Mutex, time::Duration};

// Tokio's clock, which tests can pause; the same as the system's otherwise.
use tokio::time::Instant;

pub struct Pacer {
    gap: Duration,
    /// How far ahead of its even slot a request may go: a burst of `burst / gap` requests.
    burst: Duration,
    /// The even slot of the next request.
    next_slot: Mutex<Instant>,
}

impl Pacer {
    /// Requests spaced evenly, `rate` a second.
    pub fn per_second(rate: f64) -> Self {
        Pacer::with_burst(rate, Duration::ZERO)
    }

    /// `rate` requests a second on average, of which up to `burst`'s worth may go at once: in any
    /// span of time `t`, at most `(t + burst) × rate + 1` requests start. Requests that become
    /// due together then start together, which costs one wake-up for all of them instead of one
    /// each.
    pub fn with_burst(rate: f64, burst: Duration) -> Self {
        let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
        Pacer { gap, burst, next_slot: Mutex::new(Instant::now()) }
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        let wait = {
            let mut next = self.next_slot.lock().expect("pacer lock");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.gap;
            (slot - now).saturating_sub(self.burst)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// No request starts before `until`.
    pub fn hold_until(&self, until: std::time::Instant) {
        let mut next = self.next_slot.lock().expect("pacer lock");
        *next = (*next).max(Instant::from_std(until) + self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate() {
        let pacer = Pacer::per_second(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        // Paused time: the sleeps are exact. Five requests at 10/s start at 0, 100, ... 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_and_the_rest_keep_the_rate() {
        let pacer = Pacer::with_burst(10.0, Duration::from_millis(300));
        let start = Instant::now();
        for _ in 0..4 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "slots 0 to 300 ms are within the burst");
        for _ in 0..6 {
            pacer.wait().await;
        }
        // The tenth request's even slot is 900 ms; it may go 300 ms early.
        assert_eq!(start.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_kept_whatever_the_burst() {
        let pacer = Pacer::with_burst(10.0, Duration::from_millis(300));
        let start = Instant::now();
        pacer.hold_until((start + Duration::from_secs(2)).into_std());
        pacer.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
