//! What the worker's claim loop carries from one round to the next.

use std::{collections::HashSet, sync::Arc};

use tokio::{sync::Semaphore, task::JoinSet};
use tracing::error;
use uuid::Uuid;

use super::held::Held;
use crate::db::jobs::Job;

/// What the claim loop carries from one round to the next: the jobs in flight and in memory, and
/// when each periodic chore last ran.
pub(super) struct Rounds {
    pub(super) permits: Arc<Semaphore>,
    pub(super) tasks: JoinSet<(Uuid, Option<Job>)>,
    /// The lease tokens of the jobs whose step is running now.
    pub(super) running: HashSet<Uuid>,
    pub(super) held: Held,
    /// Claims that failed in a row.
    pub(super) db_failures: u32,
    pub(super) durations_refreshed: Option<std::time::Instant>,
    pub(super) renewed: std::time::Instant,
    pub(super) last_claim: std::time::Instant,
    /// Ask the database for new work in this round, whatever the tick says.
    pub(super) look_now: bool,
}

impl Rounds {
    pub(super) fn new(concurrency: usize) -> Self {
        Rounds {
            permits: Arc::new(Semaphore::new(concurrency)),
            tasks: JoinSet::new(),
            running: HashSet::new(),
            held: Held::default(),
            db_failures: 0,
            durations_refreshed: None,
            renewed: std::time::Instant::now(),
            last_claim: std::time::Instant::now(),
            look_now: true,
        }
    }

    /// A step ended: its job is kept in memory when the step returned it.
    pub(super) fn finished(&mut self, done: Result<(Uuid, Option<Job>), tokio::task::JoinError>) {
        match done {
            Ok((token, kept)) => {
                self.running.remove(&token);
                if let Some(job) = kept {
                    self.held.insert(job);
                }
            }
            Err(e) => error!(error = %e, "a job task ended abnormally"),
        }
    }
}
