//! The provider circuit breaker. An empty balance, a revoked key or a suspended account makes the
//! provider refuse every job alike: without a breaker each new job would be sent, refused and
//! shown as a public failure, one after the other.
//!
//! After [`TRIP_AFTER`] refusals in a row that concern the bot's account
//! ([`crate::provider::concerns_the_account`]), the breaker opens: commands refuse new jobs
//! privately before any reservation, and the worker holds queued jobs back instead of sending
//! them. Every `probe_after` one create goes through as a probe (a job queued before the breaker
//! opened, or the next one a member starts); the breaker closes when a create is accepted, and a
//! refused probe keeps it open for another `probe_after`. Any accepted create resets the count.
//!
//! The state is this process's own: each process learns the provider's refusals from its own
//! creates (a process that sees none keeps sending, and trips after its own three).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::{error, info, warn};

use crate::provider::{Created, ProviderError};

/// Account refusals in a row that open the breaker.
pub const TRIP_AFTER: u32 = 3;
/// How often a job held back by the open breaker asks it again, at most: a probe that closes it
/// lets the held jobs go within this long.
const RECHECK_HELD: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Breaker {
    probe_after: Duration,
    state: Mutex<State>,
    /// Times the breaker opened since the process started (`/metrics`).
    trips: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        refusals: u32,
    },
    /// The next create allowed through, as a probe, is the first at or after `next_probe`.
    Open {
        next_probe: Instant,
    },
}

/// What the worker may do with a job whose create is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeCreate {
    /// Send it (as a probe, when the breaker is open).
    Send,
    /// Hold it back, and ask again after this long.
    Hold(Duration),
}

impl Breaker {
    pub fn new(probe_after: Duration) -> Self {
        Breaker { probe_after, state: Mutex::new(State::Closed { refusals: 0 }), trips: AtomicU64::new(0) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a member may start a new job now: always while closed; while open, only once a
    /// probe is due (the job then waits for the probe like the queued ones).
    pub fn admits_new_jobs(&self, now: Instant) -> bool {
        match *self.state() {
            State::Closed { .. } => true,
            State::Open { next_probe, .. } => now >= next_probe,
        }
    }

    /// Whether the worker may send a create now. While open, the first create due at or after
    /// the probe time goes, and the next probe moves a full interval on: one probe at a time.
    pub fn before_create(&self, now: Instant) -> BeforeCreate {
        let mut state = self.state();
        match &mut *state {
            State::Closed { .. } => BeforeCreate::Send,
            State::Open { next_probe, .. } if now >= *next_probe => {
                *next_probe = now + self.probe_after;
                info!("the provider breaker lets one create through as a probe");
                BeforeCreate::Send
            }
            State::Open { next_probe, .. } => BeforeCreate::Hold((*next_probe - now).min(RECHECK_HELD)),
        }
    }

    /// Learns from a create's answer. Only an accepted create or a refusal about the bot's
    /// account changes anything: a temporary failure, or a refusal of the request itself, says
    /// nothing about the account.
    pub fn after_create(&self, outcome: &Result<Created, ProviderError>, now: Instant) {
        let mut state = self.state();
        match (outcome, &mut *state) {
            (Ok(_), State::Closed { refusals }) => *refusals = 0,
            (Ok(_), State::Open { .. }) => {
                info!("the image service accepted a create again; the provider breaker is closed");
                *state = State::Closed { refusals: 0 };
            }
            (Err(ProviderError::Rejected { message, http_status, .. }), _)
                if crate::provider::concerns_the_account(message, *http_status) =>
            {
                match &mut *state {
                    State::Closed { refusals } if *refusals + 1 < TRIP_AFTER => *refusals += 1,
                    State::Closed { .. } => {
                        error!(
                            provider_said = %message,
                            http_status,
                            refusals = TRIP_AFTER,
                            probe_in = ?self.probe_after,
                            "the image service refused the bot's account {TRIP_AFTER} times in a row; the provider \
                             breaker is open: new jobs are refused and queued ones wait until a probe is accepted"
                        );
                        *state = State::Open { next_probe: now + self.probe_after };
                        self.trips.fetch_add(1, Ordering::Relaxed);
                    }
                    State::Open { next_probe, .. } => {
                        warn!(
                            provider_said = %message,
                            http_status,
                            probe_in = ?self.probe_after,
                            "the image service still refuses the bot's account; the provider breaker stays open"
                        );
                        *next_probe = now + self.probe_after;
                    }
                }
            }
            (Err(_), _) => {}
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.state(), State::Open { .. })
    }

    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE_AFTER: Duration = Duration::from_secs(300);

    fn refused(message: &str, http_status: u16) -> Result<Created, ProviderError> {
        Err(ProviderError::Rejected { message: message.into(), code: Some(1001), http_status: Some(http_status) })
    }

    fn accepted() -> Result<Created, ProviderError> {
        Ok(Created { job_id: "job-1".into(), amount: Some(rust_decimal::Decimal::new(4, 2)) })
    }

    fn tripped(at: Instant) -> Breaker {
        let breaker = Breaker::new(PROBE_AFTER);
        for _ in 0..TRIP_AFTER {
            breaker.after_create(&refused("insufficient balance", 200), at);
        }
        breaker
    }

    #[test]
    fn opens_after_three_account_refusals_in_a_row() {
        let t0 = Instant::now();
        let breaker = Breaker::new(PROBE_AFTER);
        breaker.after_create(&refused("insufficient balance", 200), t0);
        breaker.after_create(&refused("unauthorized", 401), t0);
        assert!(!breaker.is_open() && breaker.admits_new_jobs(t0));
        breaker.after_create(&refused("payment required", 402), t0);
        assert!(breaker.is_open());
        assert_eq!(breaker.trips(), 1);
        assert!(!breaker.admits_new_jobs(t0 + Duration::from_secs(1)));
        assert_eq!(breaker.before_create(t0 + Duration::from_secs(1)), BeforeCreate::Hold(RECHECK_HELD));
        assert_eq!(
            breaker.before_create(t0 + PROBE_AFTER - Duration::from_millis(500)),
            BeforeCreate::Hold(Duration::from_millis(500))
        );
    }

    #[test]
    fn an_accepted_create_resets_the_count() {
        let t0 = Instant::now();
        let breaker = Breaker::new(PROBE_AFTER);
        for _ in 0..TRIP_AFTER - 1 {
            breaker.after_create(&refused("insufficient balance", 200), t0);
        }
        breaker.after_create(&accepted(), t0);
        for _ in 0..TRIP_AFTER - 1 {
            breaker.after_create(&refused("insufficient balance", 200), t0);
        }
        assert!(!breaker.is_open());
    }

    #[test]
    fn refusals_of_the_request_and_temporary_failures_do_not_count() {
        let t0 = Instant::now();
        let breaker = Breaker::new(PROBE_AFTER);
        let busy =
            Err(ProviderError::Transient { reason: "HTTP 503".into(), retry_after: None, may_have_landed: false });
        for _ in 0..5 {
            breaker.after_create(&refused("prompt contains banned words", 200), t0);
            breaker.after_create(&busy, t0);
        }
        assert!(!breaker.is_open());
        // Nor do they break a run of account refusals.
        breaker.after_create(&refused("insufficient balance", 200), t0);
        breaker.after_create(&refused("image flagged by moderation", 200), t0);
        breaker.after_create(&refused("insufficient balance", 200), t0);
        breaker.after_create(&refused("insufficient balance", 200), t0);
        assert!(breaker.is_open());
    }

    #[test]
    fn one_probe_at_a_time_closes_it_when_accepted() {
        let t0 = Instant::now();
        let breaker = tripped(t0);
        let due = t0 + PROBE_AFTER;
        assert!(breaker.admits_new_jobs(due));
        assert_eq!(breaker.before_create(due), BeforeCreate::Send);
        // The probe is in flight: nothing else goes, and members are refused again.
        assert_eq!(breaker.before_create(due), BeforeCreate::Hold(RECHECK_HELD));
        assert!(!breaker.admits_new_jobs(due));
        breaker.after_create(&accepted(), due);
        assert!(!breaker.is_open() && breaker.admits_new_jobs(due));
        assert_eq!(breaker.before_create(due), BeforeCreate::Send);
        assert_eq!(breaker.trips(), 1);
    }

    #[test]
    fn a_refused_probe_keeps_it_open_for_another_interval() {
        let t0 = Instant::now();
        let breaker = tripped(t0);
        let first_probe = t0 + PROBE_AFTER + Duration::from_secs(10);
        assert_eq!(breaker.before_create(first_probe), BeforeCreate::Send);
        let answered = first_probe + Duration::from_secs(1);
        breaker.after_create(&refused("account suspended", 200), answered);
        assert!(breaker.is_open());
        assert_eq!(breaker.trips(), 1, "still the same outage");
        assert!(!breaker.admits_new_jobs(answered + PROBE_AFTER - Duration::from_secs(1)));
        assert!(breaker.admits_new_jobs(answered + PROBE_AFTER));
        assert_eq!(breaker.before_create(answered + PROBE_AFTER), BeforeCreate::Send);
    }
}
