//! The job lifecycle: every change of a job's state, as pure functions of the job, what happened
//! and the time. This is the only place where `status`, `counted` (the quota refund),
//! `error_text`, the lifecycle timestamps, the retry counters and `delivery` change; the worker
//! performs the I/O these functions ask for and feeds the outcomes back. The one exception is a
//! member's `Cancel` of a job not sent yet, which the database decides against the worker's claim
//! (`db::jobs::cancel`); a cancelled job is final and delivered, so nothing here acts on it. The
//! states and transitions are drawn in `docs/ARCHITECTURE.md`.
//!
//! ```text
//! queued ──on_due──▶ submitting ──on_create──▶ submitted ──on_query──▶ running ──on_query──▶ succeeded
//!   │                    │                          │                     │                      │
//!   │ reply failed /     │ found after a crash,     │ refused, failed,    │                      │ on_delivery
//!   │ never acked        │ or ambiguous answer      │ deadline            │                      ▼
//!   ▼                    ▼                          ▼                     ▼                  delivered
//! failed            uncertain                 failed / timed_out   (same as submitted)   (edit | channel |
//!                                                                                           undelivered)
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    db::{
        jobs::{Delivery, Job, JobStatus},
        quotas::Admission,
    },
    discord::SendError,
    provider::{Created, JobState, Phase, ProviderError},
    render,
    words::{
        self, HELD_BY_BREAKER, IMAGES_UNREACHABLE, NEVER_ACKNOWLEDGED, REPLY_FAILED, SERVICE_DOWN, SERVICE_REFUSING,
        UNCERTAIN, UNKNOWN_STATE,
    },
};

/// Transient create failures tolerated before a job is failed (and refunded).
pub const MAX_CREATE_ATTEMPTS: i32 = 6;
/// Failed downloads of a job's results (before any succeeded) before the job is failed.
pub const MAX_DOWNLOAD_ATTEMPTS: i32 = 8;
/// Longest wait between two delivery attempts while Discord fails: an outage ends, and the
/// result should follow within seconds, not minutes.
pub const MAX_DELIVERY_BACKOFF: Duration = Duration::from_secs(15);
/// Result images kept (and downloaded) per job: what one Discord message can carry.
pub const MAX_RESULT_IMAGES: usize = 10;
/// Polls with an unknown status, or refused queries, before the job is failed.
pub const MAX_UNKNOWN_POLLS: i32 = 3;

/// What the worker must do next with a job that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the create request. The job is now `submitting`: save it before sending, so that a
    /// crash during the request leaves a trace that makes it `uncertain`, never resent.
    Create,
    /// Ask whether a job accepted past its member's `max_concurrent` may go now
    /// (`db::quotas::admit`), then feed the answer to [`on_admission`].
    Admit,
    /// Ask the provider how the job is doing.
    Query,
    /// Send the final message (results or failure).
    Deliver,
    /// Nothing now: the job waits until `next_run_at`, or it is done.
    Wait,
}

/// Tunables the transitions need, with the randomness of backoff passed in so the functions stay
/// pure (`jitter` in 0.5..=1.0; tests pass 1.0).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A job still at the provider this long after it was submitted is timed out (after one
    /// last query).
    pub deadline: Duration,
    /// The longest wait after a failed status query (unless the provider asks for longer): a
    /// blip must cost one short interval, not a growing backoff.
    pub query_retry: Duration,
    /// How long after a job finished its final message may still be retried; then the job is
    /// `undelivered`, its images kept for `/history`.
    pub delivery_deadline: Duration,
    pub jitter: f64,
}

/// Decides what to do with a job whose `next_run_at` has come, applying the transitions that
/// need no I/O (a job never acknowledged, a create cut off by a crash, one the provider accepted
/// before a crash).
pub fn on_due(job: &mut Job, now: DateTime<Utc>) -> Action {
    if job.delivered_at.is_some() {
        return Action::Wait;
    }
    match job.status {
        JobStatus::Queued if job.reply_failed => {
            // The user never saw the job: it must not cost anything.
            fail(job, REPLY_FAILED, now);
            undelivered(job, now);
            Action::Wait
        }
        JobStatus::Queued if job.acked_at.is_none() => {
            fail(job, NEVER_ACKNOWLEDGED, now);
            undelivered(job, now);
            Action::Wait
        }
        JobStatus::Queued if job.slot_limit.is_some() => Action::Admit,
        JobStatus::Queued => {
            job.status = JobStatus::Submitting;
            Action::Create
        }
        JobStatus::Submitting if job.provider_job_id.is_some() => {
            // The provider accepted the job, but the process died before it wrote `submitted`:
            // the job is paid for and known by its id, so it is followed, never abandoned.
            job.status = JobStatus::Submitted;
            job.submitted_at.get_or_insert(now);
            Action::Query
        }
        JobStatus::Submitting => {
            // A process died while its create request was in flight: the provider may or may
            // not have the job. Never send it again blindly.
            uncertain(job, now);
            Action::Deliver
        }
        // Past the deadline too: the job is queried once more before it is given up.
        JobStatus::Submitted | JobStatus::Running => Action::Query,
        // Cancelled by a member (`db::jobs::cancel`, which also delivers it): final, nothing to do.
        JobStatus::Cancelled => Action::Wait,
        JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut | JobStatus::Uncertain => {
            match job.last_edit_at.filter(|t| *t > now) {
                // An edit of this reply was rate limited: Discord's wait applies to this one too.
                Some(not_before) => {
                    job.next_run_at = not_before;
                    Action::Wait
                }
                None => Action::Deliver,
            }
        }
    }
}

/// The answer to a create request. `first_poll` is when to look at the job first.
pub fn on_create(
    job: &mut Job,
    outcome: Result<Created, ProviderError>,
    now: DateTime<Utc>,
    first_poll: Duration,
    timing: &Timing,
) {
    match outcome {
        Ok(created) => {
            job.status = JobStatus::Submitted;
            job.provider_job_id = Some(created.job_id);
            job.amount = created.amount;
            job.submitted_at = Some(now);
            job.next_run_at = now + first_poll;
        }
        Err(ProviderError::Transient { retry_after, may_have_landed: false, .. }) => {
            job.status = JobStatus::Queued;
            job.create_attempts += 1;
            if job.create_attempts >= MAX_CREATE_ATTEMPTS {
                fail(job, SERVICE_DOWN, now);
            } else {
                let wait =
                    backoff(job.create_attempts, Duration::from_secs(2), Duration::from_secs(120), timing.jitter)
                        .max(retry_after.unwrap_or_default());
                job.next_run_at = now + wait;
            }
        }
        Err(ProviderError::Transient { may_have_landed: true, .. }) => uncertain(job, now),
        Err(ProviderError::Rejected { message, http_status, .. }) => {
            let reason = match public_words(&message, http_status) {
                Some(said) => words::request_refused(&said),
                None => SERVICE_REFUSING.into(),
            };
            fail(job, &reason, now)
        }
    }
}

/// The worker did not send the create: the provider breaker is open (see `crate::breaker`). The
/// job waits, queued and unsent, and asks again after `retry_in`; one held past the job deadline
/// is failed and refunded, never sent.
pub fn on_breaker_open(job: &mut Job, now: DateTime<Utc>, retry_in: Duration, timing: &Timing) {
    if elapsed(job.created_at, now) >= timing.deadline {
        fail(job, HELD_BY_BREAKER, now);
    } else {
        job.status = JobStatus::Queued;
        job.next_run_at = now + retry_in;
    }
}

/// The answer to a status query. `next_poll` is when to look again if the job is still going.
pub fn on_query(
    job: &mut Job,
    outcome: Result<JobState, ProviderError>,
    now: DateTime<Utc>,
    next_poll: Duration,
    timing: &Timing,
) {
    let mut delay = next_poll;
    match outcome {
        Ok(state) => {
            job.poll_failures = 0;
            job.provider_status = Some(state.raw_status);
            job.progress = state.progress.map(i32::from);
            match state.phase {
                Phase::Queued => job.unknown_polls = 0,
                Phase::Running => {
                    job.unknown_polls = 0;
                    job.status = JobStatus::Running;
                    job.running_at.get_or_insert(now);
                }
                Phase::Succeeded(mut urls) => {
                    // Discord takes ten files a message; a provider answer with more is not
                    // downloaded beyond that.
                    urls.truncate(MAX_RESULT_IMAGES);
                    job.status = JobStatus::Succeeded;
                    job.result_urls = urls;
                    job.finished_at = Some(now);
                    job.next_run_at = now;
                    return;
                }
                Phase::Failed(reason) => {
                    let said = reason.as_deref().map(|r| public_words(r, None));
                    fail(job, &words::could_not_make(said.as_ref().map(Option::as_deref)), now);
                    return;
                }
                Phase::Unknown(_) => {
                    job.unknown_polls += 1;
                    if job.unknown_polls >= MAX_UNKNOWN_POLLS {
                        fail(job, UNKNOWN_STATE, now);
                        return;
                    }
                }
            }
        }
        Err(ProviderError::Transient { retry_after, .. }) => {
            // A blip at the provider costs at most one short interval once it is over; only the
            // provider's own Retry-After may make the wait longer.
            job.poll_failures += 1;
            delay = delay.min(timing.query_retry).max(retry_after.unwrap_or_default());
        }
        Err(ProviderError::Rejected { message, http_status, .. }) => {
            job.unknown_polls += 1;
            if job.unknown_polls >= MAX_UNKNOWN_POLLS {
                let said = public_words(&message, http_status);
                fail(job, &words::stopped_answering(said.as_deref()), now);
                return;
            }
        }
    }
    let submitted_at = job.submitted_at.unwrap_or(job.created_at);
    if elapsed(submitted_at, now) >= timing.deadline {
        // The last query did not find it finished either.
        job.status = JobStatus::TimedOut;
        job.counted = false;
        job.finished_at = Some(now);
        job.error_text = Some(words::did_not_finish(&render::clock(timing.deadline)));
        job.next_run_at = now;
        return;
    }
    job.next_run_at = now + delay;
}

/// The result images could not be downloaded (none was kept yet).
pub fn on_download_failed(job: &mut Job, now: DateTime<Utc>, timing: &Timing) {
    job.delivery_attempts += 1;
    if job.delivery_attempts < MAX_DOWNLOAD_ATTEMPTS {
        job.next_run_at =
            now + backoff(job.delivery_attempts, Duration::from_secs(2), Duration::from_secs(60), timing.jitter);
    } else {
        // Deliver the failure at once, refunded.
        fail(job, IMAGES_UNREACHABLE, now);
    }
}

/// The outcome of sending the final message: where it went and its message id, or why not.
pub fn on_delivery(job: &mut Job, outcome: Result<(Delivery, u64), SendError>, now: DateTime<Utc>, timing: &Timing) {
    match outcome {
        Ok((route, message_id)) => {
            job.delivery = Some(route);
            job.message_id = Some(message_id.into());
            job.delivered_at = Some(now);
            job.interaction_token = None;
        }
        Err(SendError::RateLimited(wait)) => {
            // Bounded like any other failure: a rate limit that never ends must not keep a job
            // (and its images) forever.
            if delivery_window_closed(job, now + wait, timing) {
                undelivered(job, now);
            } else {
                job.next_run_at = now + wait;
                job.last_edit_at = Some(now + wait);
            }
        }
        Err(SendError::Transient(_) | SendError::TooLarge | SendError::ReplyGone(_)) => {
            job.delivery_attempts += 1;
            let wait = backoff(job.delivery_attempts, Duration::from_secs(2), MAX_DELIVERY_BACKOFF, timing.jitter);
            if delivery_window_closed(job, now + wait, timing) {
                undelivered(job, now);
            } else {
                job.next_run_at = now + wait;
            }
        }
        Err(SendError::Refused(_)) => undelivered(job, now),
    }
}

/// A progress edit was sent (or Discord asked to wait `rate_limited` before the next one).
pub fn on_progress_edit(job: &mut Job, outcome: Result<(u64, String), SendError>, now: DateTime<Utc>) {
    job.last_edit_at = Some(now);
    match outcome {
        Ok((message_id, text)) => {
            job.message_id = Some(message_id.into());
            job.last_edit_text = Some(text);
        }
        // Recorded in the future: no edit of this reply until Discord's wait is over.
        Err(SendError::RateLimited(wait)) => job.last_edit_at = Some(now + wait),
        Err(_) => {}
    }
}

/// How often a job waiting for a slot asks again whether it may go.
pub const SLOT_RECHECK: Duration = Duration::from_secs(1);

/// The answer to [`Action::Admit`]: the job goes now, or waits on at `place` and asks again.
pub fn on_admission(job: &mut Job, admission: Admission, now: DateTime<Utc>) {
    match admission {
        Admission::Admitted => job.slot_limit = None,
        Admission::Waiting { place } => {
            job.place = Some(place);
            job.next_run_at = now + SLOT_RECHECK;
        }
    }
}

fn fail(job: &mut Job, reason: &str, now: DateTime<Utc>) {
    job.status = JobStatus::Failed;
    job.counted = false;
    job.finished_at = Some(now);
    job.error_text = Some(reason.to_owned());
    job.next_run_at = now;
}

fn uncertain(job: &mut Job, now: DateTime<Utc>) {
    job.status = JobStatus::Uncertain;
    job.counted = false;
    job.finished_at = Some(now);
    job.error_text = Some(UNCERTAIN.into());
    job.next_run_at = now;
}

fn undelivered(job: &mut Job, now: DateTime<Utc>) {
    job.delivery = Some(Delivery::Undelivered);
    job.delivered_at = Some(now);
    job.interaction_token = None;
}

/// Whether a delivery attempt at `at` would come after the job's delivery deadline.
fn delivery_window_closed(job: &Job, at: DateTime<Utc>, timing: &Timing) -> bool {
    elapsed(job.finished_at.unwrap_or(job.created_at), at) > timing.delivery_deadline
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}

/// The provider's words, short and on one line, when they are about the user's request and so
/// fit for a public reply; `None` for anything about the bot's account (logged by the worker).
fn public_words(message: &str, http_status: Option<u16>) -> Option<String> {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::provider::concerns_the_request(&one_line, http_status)
        .then(|| render::truncate(one_line.trim_end_matches('.'), 200))
}

/// Capped exponential backoff: `base * 2^(attempt-1)`, capped, scaled by `jitter` (0.5..=1.0).
pub fn backoff(attempt: i32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 16).saturating_sub(1).unsigned_abs()).min(cap);
    exp.mul_f64(jitter.clamp(0.5, 1.0))
}

/// A random jitter for [`backoff`], so retries from many jobs do not line up.
pub fn jitter() -> f64 {
    0.5 + fastrand::f64() * 0.5
}

#[cfg(test)]
mod tests;
