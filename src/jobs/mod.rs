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
mod rounds;
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
    /// Provider callbacks, when they are on.
    pub callbacks: Option<Callbacks>,
}

/// Where the provider calls back about a job, and how often the job is still queried meanwhile.
#[derive(Debug, Clone)]
pub struct Callbacks {
    pub public_base_url: String,
    /// How often a job is still queried in case its callback is lost.
    pub fallback_poll: Duration,
    /// Signs each job's callback URL; derived from the provider key, so every process agrees.
    pub key: crate::callbacks::Key,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> Self {
        WorkerSettings {
            poll: config.poll.clone(),
            concurrency: config.worker_concurrency,
            lease: config.lease,
            instance_id: config.instance_id.clone(),
            delivery_deadline: config.delivery_deadline,
            callbacks: config.callbacks.as_ref().map(|c| Callbacks {
                public_base_url: c.public_base_url.clone(),
                fallback_poll: c.fallback_poll,
                key: crate::callbacks::Key::derive(&config.shortapi_key),
            }),
        }
    }
}
