//! The jobs a worker keeps in memory between steps (leased, renewed in one statement), ordered
//! by when each is due again.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::jobs::Job;

/// Jobs this process holds between steps, ordered by when they are due.
#[derive(Default)]
pub struct Held {
    pub jobs: HashMap<Uuid, Job>,
    due: BinaryHeap<Reverse<(DateTime<Utc>, Uuid)>>,
}

impl Held {
    pub fn insert(&mut self, job: Job) {
        self.due.push(Reverse((job.next_run_at, job.id)));
        self.jobs.insert(job.id, job);
    }

    /// The next held job whose time has come.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Job> {
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                return None;
            }
            self.due.pop();
            if let Some(job) = self.jobs.remove(&id) {
                return Some(job);
            }
        }
        None
    }

    /// Forgets every held job (their leases may have lapsed; the database has their last state).
    pub fn let_go_all(&mut self) {
        self.jobs.clear();
        self.due.clear();
    }

    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }
}
