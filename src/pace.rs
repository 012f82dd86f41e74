//! A pacer: spaces requests evenly under a rate, across every task that shares it, and can be
//! held back (for example by a global rate limit).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct Pacer {
    gap: Duration,
    next_slot: Mutex<Instant>,
}

impl Pacer {
    pub fn per_second(rate: f64) -> Self {
        Pacer { gap: Duration::from_secs_f64(1.0 / rate.max(0.001)), next_slot: Mutex::new(Instant::now()) }
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        let wait = {
            let mut next = self.next_slot.lock().expect("pacer lock");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.gap;
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// No request starts before `until`.
    pub fn hold_until(&self, until: Instant) {
        let mut next = self.next_slot.lock().expect("pacer lock");
        *next = (*next).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate() {
        let pacer = Pacer::per_second(10.0);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        // Paused time: the sleeps are exact. Five requests at 10/s start at 0, 100, ... 400 ms.
        assert!(start.elapsed() >= Duration::from_millis(399), "{:?}", start.elapsed());
    }
}
