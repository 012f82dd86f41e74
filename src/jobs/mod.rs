//! The worker side: jobs are claimed from the database with a lease, driven through the
//! provider, and delivered to Discord. Any process can pick up any job.
//!
//! - [`lifecycle`]: every state change of a job, as pure functions (read this first);
//! - [`worker`]: the claim loop, leases, spawning and shutdown;
//! - [`deliver`]: downloads and Discord messages;
//! - [`schedule`]: when to query the provider again.

pub mod clock;
pub mod deliver;
mod held;
pub mod identity;
pub mod lifecycle;
mod outlook;
pub mod schedule;
pub mod worker;

use std::time::Duration;

use crate::config::{Config, PollSettings};

pub use worker::Worker;

/// Settings the worker needs, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub poll: PollSettings,
    pub concurrency: usize,
    pub lease: Duration,
    /// This process's stable identity: see [`Config::instance_id`].
    pub instance_id: String,
    pub delivery_deadline: Duration,
    /// Public base URL for provider callbacks, and the fallback poll interval when they are on.
    pub callbacks: Option<(String, Duration)>,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> Self {
        WorkerSettings {
            poll: config.poll.clone(),
            concurrency: config.worker_concurrency,
            lease: config.lease,
            instance_id: config.instance_id.clone(),
            delivery_deadline: config.delivery_deadline,
            callbacks: config.callbacks.as_ref().map(|c| (c.public_base_url.clone(), c.fallback_poll)),
        }
    }
}
