//! The worker loop: claims due jobs with a lease, runs each one step at a time, keeps jobs that
//! will be due again soon in memory (their leases renewed in one statement), and gives every
//! lease back at shutdown. A job's state only changes in `lifecycle`; the database is written
//! when the state changes, not on every poll.

use std::{collections::HashSet, sync::Arc, time::Duration};

use rust_decimal::prelude::ToPrimitive;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use uuid::Uuid;

use super::{
    WorkerSettings,
    deliver::Deliverer,
    held::Held,
    identity::Identity,
    lifecycle::{self, Action, Timing},
    rounds::Rounds,
    schedule,
};
use crate::{
    breaker::{BeforeCreate, Breaker},
    db::jobs::{self as store, Job, JobStatus},
    provider::ShortApi,
    spec::Performance,
};

/// How often an idle worker looks for due jobs (it is also woken when a job is accepted).
const TICK: Duration = Duration::from_millis(200);
/// How often the learned finish windows and typical durations are refreshed from the database
/// (one statement per process, whatever the number of jobs).
const DURATIONS_REFRESH: Duration = Duration::from_secs(10);
/// Time given to in-flight work at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// A job due again within this long stays in memory, leased, instead of being written back.
const HOLD_AT_MOST: Duration = Duration::from_secs(30);
/// The worker wakes on a grid of this step (of the database's clock): the held jobs that fall due
/// within one step start together, at its end, which costs one wake-up of the loop, and of the
/// threads serving their queries, for all of them instead of one each (with the provider's query
/// pacer letting as many through at once). A job starts at most this much later than it is due.
const START_GRID: chrono::Duration = chrono::Duration::milliseconds(100);

pub struct Worker {
    pool: PgPool,
    provider: ShortApi,
    deliverer: Deliverer,
    settings: WorkerSettings,
    /// Identifies this process's leases; the same after a restart (see `identity`).
    identity: Identity,
    /// Until when every lease this process holds is known to be valid: the last successful
    /// renewal plus the lease. Past it another process may have taken a job over, so a copy in
    /// memory must not touch Discord any more.
    leases_valid_until: std::sync::Mutex<std::time::Instant>,
    /// Where recent jobs finished, shared by every process through the database.
    durations: std::sync::RwLock<schedule::DurationModel>,
    wake: Arc<Notify>,
    /// Holds creates back while the provider refuses the bot's account.
    breaker: Arc<Breaker>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        provider: ShortApi,
        deliverer: Deliverer,
        settings: WorkerSettings,
        identity: Identity,
        wake: Arc<Notify>,
        breaker: Arc<Breaker>,
    ) -> Self {
        let leases_valid_until = std::sync::Mutex::new(std::time::Instant::now() + settings.lease);
        Worker {
            pool,
            provider,
            deliverer,
            identity,
            leases_valid_until,
            settings,
            wake,
            durations: Default::default(),
            breaker,
        }
    }

    /// Runs until `shutdown`, then lets in-flight jobs finish (within a grace period) and gives
    /// up this process's leases.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        info!(owner = %self.identity.owner, "worker started");
        let mut rounds = Rounds::new(self.settings.concurrency);
        loop {
            self.chores(&mut rounds).await;
            self.start_due_held(&mut rounds).await;
            if self.claim_new(&mut rounds).await {
                // Every free slot was filled: more may be due at once.
                rounds.look_now = true;
                continue;
            }
            let pause = self.pause(&rounds);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => rounds.look_now = true,
                Some(done) = rounds.tasks.join_next(), if !rounds.tasks.is_empty() => rounds.finished(done),
                _ = tokio::time::sleep(pause) => {}
            }
        }
        self.stop(rounds).await;
    }

    /// The periodic work of each round: the duration model, the steps that ended, the leases.
    async fn chores(&self, rounds: &mut Rounds) {
        if rounds.durations_refreshed.is_none_or(|t| t.elapsed() >= DURATIONS_REFRESH) {
            rounds.durations_refreshed = Some(std::time::Instant::now());
            self.refresh_durations().await;
        }
        while let Some(done) = rounds.tasks.try_join_next() {
            rounds.finished(done);
        }
        if rounds.renewed.elapsed() >= self.settings.lease / 3 {
            rounds.renewed = std::time::Instant::now();
            self.renew(&rounds.running, &mut rounds.held).await;
        }
    }

    /// Starts the held jobs whose time has come, while slots are free.
    async fn start_due_held(self: &Arc<Self>, rounds: &mut Rounds) {
        let now = self.now();
        while rounds.permits.available_permits() > 0
            && let Some(job) = rounds.held.pop_due(now)
        {
            self.spawn(job, rounds).await;
        }
    }

    /// Claims due jobs from the database and starts them: when woken (a job was accepted or a
    /// callback came), once per tick, or at once after a claim that filled every free slot; not
    /// whenever a held job finishes a step. True when this claim filled every free slot.
    async fn claim_new(self: &Arc<Self>, rounds: &mut Rounds) -> bool {
        let free = rounds.permits.available_permits();
        if free == 0 || !(rounds.look_now || rounds.last_claim.elapsed() >= TICK) {
            return false;
        }
        rounds.look_now = false;
        rounds.last_claim = std::time::Instant::now();
        match store::claim_due(
            &self.pool,
            self.identity.owner,
            self.settings.lease,
            i64::try_from(free).unwrap_or(i64::MAX),
        )
        .await
        {
            Ok(jobs) => {
                if rounds.db_failures > 0 {
                    info!("database reachable again; worker resumed");
                }
                rounds.db_failures = 0;
                let filled = !jobs.is_empty() && jobs.len() == free;
                for job in jobs {
                    self.spawn(job, rounds).await;
                }
                filled
            }
            Err(e) => {
                rounds.db_failures += 1;
                if rounds.db_failures == 1 {
                    error!(error = %e, "claiming jobs failed; the worker keeps retrying");
                }
                false
            }
        }
    }

    /// How long the loop sleeps unless woken: a tick, longer while the database is out of
    /// reach, and never past the time of the next held job; rounded up to the start grid.
    fn pause(&self, rounds: &Rounds) -> Duration {
        let pause = if rounds.db_failures > 0 {
            lifecycle::backoff(
                i32::try_from(rounds.db_failures).unwrap_or(i32::MAX),
                Duration::from_secs(1),
                Duration::from_secs(30),
                lifecycle::jitter(),
            )
        } else {
            TICK
        };
        let now = self.now();
        let pause = match rounds.held.next_due() {
            Some(at) => pause.min((at - now).to_std().unwrap_or_default()),
            None => pause,
        };
        chrono::Duration::from_std(pause)
            .ok()
            .and_then(|pause| now.checked_add_signed(pause))
            .and_then(|wake_at| (on_start_grid(wake_at) - now).to_std().ok())
            .unwrap_or(pause)
    }

    /// Lets the steps in flight finish (within the grace period) and gives up every lease.
    async fn stop(&self, mut rounds: Rounds) {
        info!(in_flight = rounds.tasks.len(), held = rounds.held.jobs.len(), "worker stopping");
        let drain = async { while rounds.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            warn!("in-flight jobs did not finish within the grace period; their leases are released");
            rounds.tasks.abort_all();
        }
        match store::release_all(&self.pool, self.identity.owner).await {
            Ok(n) if n > 0 => info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not release job leases; they expire on their own"),
        }
        self.identity.release().await;
    }

    async fn spawn(self: &Arc<Self>, job: Job, rounds: &mut Rounds) {
        let permit = rounds.permits.clone().acquire_owned().await.expect("semaphore is never closed");
        let worker = self.clone();
        let token = job.lease_token;
        rounds.running.insert(token);
        let span = info_span!("job", job_id = %job.id, guild_id = job.guild_id.get());
        rounds.tasks.spawn(
            async move {
                use futures::FutureExt as _;
                let kept = std::panic::AssertUnwindSafe(worker.step(job)).catch_unwind().await.unwrap_or_else(|_| {
                    // The job's lease runs out and any process takes it over.
                    error!("a job task panicked");
                    None
                });
                drop(permit);
                (token, kept)
            }
            .instrument(span),
        );
    }

    /// Extends the leases of every job this process works on or holds; lets go of any it lost.
    async fn renew(&self, running: &HashSet<Uuid>, held: &mut Held) {
        let started = std::time::Instant::now();
        let tokens: Vec<Uuid> = running.iter().copied().chain(held.jobs.values().map(|j| j.lease_token)).collect();
        if tokens.is_empty() {
            *self.leases_valid_until.lock().expect("lease validity lock") = started + self.settings.lease;
            return;
        }
        match store::renew_leases(&self.pool, self.settings.lease, &tokens).await {
            Ok(kept) => {
                *self.leases_valid_until.lock().expect("lease validity lock") = started + self.settings.lease;
                let kept: HashSet<Uuid> = kept.into_iter().collect();
                held.jobs.retain(|id, job| {
                    let ours = kept.contains(&job.lease_token);
                    if !ours {
                        warn!(job_id = %id, "lost the lease on a held job; another claim has it, or a member cancelled it");
                    }
                    ours
                });
            }
            Err(e) => {
                warn!(error = %e, "could not renew job leases; will try again");
                if self.leases_in_doubt() && !held.jobs.is_empty() {
                    // Another process may take these jobs over once their leases lapse: this
                    // copy lets them go rather than touch them again.
                    warn!(held = held.jobs.len(), "letting go of the jobs held in memory until leases can be renewed");
                    held.let_go_all();
                }
            }
        }
    }

    async fn refresh_durations(&self) {
        self.deliverer.clock.sync(&self.pool).await;
        match store::recent_durations(&self.pool, 500).await {
            Ok(samples) => {
                *self.durations.write().expect("duration model lock") = schedule::DurationModel::from_samples(&samples)
            }
            Err(e) => debug!(error = %e, "could not refresh job durations"),
        }
    }

    /// The database's time now (see `clock`).
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.deliverer.clock.now()
    }

    fn timing(&self) -> Timing {
        let poll = &self.settings.poll;
        Timing {
            deadline: poll.deadline,
            query_retry: poll.dense_interval.min(poll.interval),
            delivery_deadline: self.settings.delivery_deadline,
            jitter: lifecycle::jitter(),
        }
    }

    /// Runs a job until it has to wait, then writes it back if its state changed. Returns the job
    /// when this process keeps it in memory until it is due again.
    async fn step(&self, mut job: Job) -> Option<Job> {
        let mut stored = Stored::of(&job);
        let mut wrote_through = false;
        loop {
            let now = self.now();
            if job.next_run_at > now || job.delivered_at.is_some() {
                break;
            }
            let timing = self.timing();
            match lifecycle::on_due(&mut job, now) {
                Action::Create => {
                    if let BeforeCreate::Hold(retry_in) = self.breaker.before_create(std::time::Instant::now()) {
                        debug!(?retry_in, "held back: the provider breaker is open");
                        lifecycle::on_breaker_open(&mut job, now, retry_in, &timing);
                        continue;
                    }
                    // Every Discord link the provider is given must work when it is sent.
                    self.deliverer.refresh_links(&mut job.spec.pictures).await;
                    // Recorded before sending: a crash during the request leaves `submitting`,
                    // which the next owner turns into `uncertain` instead of sending again.
                    if !self.save(&job, &mut stored, false, "recording it as submitting").await {
                        return None;
                    }
                    wrote_through = true;
                    self.create(&mut job, &timing).await;
                    if job.status == JobStatus::Submitted {
                        // The provider has the job and bills it: its id, the amount and
                        // `submitted` are written under the lease before anything else, so no
                        // later failure (a hung Discord edit, a crash) can abandon it.
                        if !self.save(&job, &mut stored, false, "recording the provider's job").await {
                            self.record_created_anyway(&job).await;
                            return None;
                        }
                        if !self.edit_progress(&mut job).await {
                            return None;
                        }
                    }
                }
                Action::Admit => match crate::db::quotas::admit(&self.pool, job.id).await {
                    Ok(admission) => {
                        lifecycle::on_admission(&mut job, admission, now);
                        if job.slot_limit.is_some()
                            && (!self.edit_progress(&mut job).await || self.cancelled_meanwhile(&job, now).await)
                        {
                            return None;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "could not ask whether a waiting job may go; asking again soon");
                        job.next_run_at = now + lifecycle::SLOT_RECHECK;
                    }
                },
                Action::Query => {
                    self.query(&mut job, &timing).await;
                    if JobStatus::WAITING.contains(&job.status) && self.deliverer.progress_edit_due(&job) {
                        // Still waiting at the provider: its place moved as jobs ahead started.
                        match store::place(&self.pool, job.id).await {
                            Ok(place) => job.place = Some(place),
                            Err(e) => debug!(error = %e, "could not read the job's place; showing the last one"),
                        }
                    }
                    if !job.status.is_final() && !self.edit_progress(&mut job).await {
                        return None;
                    }
                }
                Action::Deliver => {
                    // Durable before it is shown: the outcome (and any refund) is written under
                    // the lease before the message that announces it. A message cannot be unsent,
                    // so a copy whose lease went to a newer claim stops here.
                    if !self.save(&job, &mut stored, false, "recording its outcome").await {
                        return None;
                    }
                    wrote_through = true;
                    self.deliverer.deliver(&mut job, &self.pool, &timing).await;
                    self.deliverer.notices.after_delivery(&job);
                }
                Action::Wait => {}
            }
        }

        let now = self.now();
        let wait = (job.next_run_at - now).to_std().unwrap_or_default();
        let release = job.delivered_at.is_some() || wait > HOLD_AT_MOST.min(self.settings.lease / 2);
        if (release || wrote_through || job.status != stored.status)
            && !self.save(&job, &mut stored, release, "saving it").await
        {
            return None;
        }
        (!release).then_some(job)
    }

    /// Edits the reply with the job's progress, unless this copy's lease may have lapsed (its
    /// renewals failed): another process may own the job by now. False: let the job go.
    async fn edit_progress(&self, job: &mut Job) -> bool {
        if self.leases_in_doubt() {
            warn!("the job's lease could not be renewed; letting it go without touching its reply");
            return false;
        }
        let typical = self.typical(job);
        self.deliverer.edit_progress(job, typical).await;
        true
    }

    /// After a progress edit (at `edited_at`) of a job not sent yet: whether a member cancelled it
    /// meanwhile. The cancel answers its press before this copy learns of it, so an edit sent
    /// after the cancel is checked afterwards, and the cancel is shown again over it.
    async fn cancelled_meanwhile(&self, job: &Job, edited_at: chrono::DateTime<chrono::Utc>) -> bool {
        if job.last_edit_at.is_none_or(|at| at < edited_at) {
            return false;
        }
        match store::cancelled_by(&self.pool, job.id).await {
            Ok(Some(by)) => {
                info!("the job was cancelled while its reply was edited; showing the cancel again");
                self.deliverer.show_cancelled(job, by.get()).await;
                true
            }
            Ok(None) => false,
            Err(e) => {
                warn!(error = %e, "could not check whether the job was cancelled; it is checked at its next save");
                false
            }
        }
    }

    /// Whether the leases of this process may lapse before the next renewal.
    fn leases_in_doubt(&self) -> bool {
        let valid_until = *self.leases_valid_until.lock().expect("lease validity lock");
        std::time::Instant::now() + self.settings.lease / 3 >= valid_until
    }

    /// Writes the job back under its lease. False when this copy must be let go: the lease went
    /// to a newer claim, or the database failed (the lease then expires and the job is retried).
    /// What the write changed is counted in `/metrics`, once: outcomes, refunds and spend.
    async fn save(&self, job: &Job, stored: &mut Stored, release: bool, doing: &str) -> bool {
        match store::save(&self.pool, job, self.identity.owner, release).await {
            Ok(true) => {
                stored.record(job);
                true
            }
            Ok(false) => {
                warn!(doing, "lost the lease on a job; another claim has it, or a member cancelled it");
                false
            }
            Err(e) => {
                error!(error = %e, doing, "could not write a job back; it is retried once its lease expires");
                false
            }
        }
    }

    /// The provider accepted the job but its fenced write failed: its id and amount are still
    /// recorded (outside the lease), so whoever holds the job follows it instead of abandoning it.
    async fn record_created_anyway(&self, job: &Job) {
        let Some(provider_job_id) = job.provider_job_id.as_deref() else { return };
        if let Err(e) = store::record_created(&self.pool, job.id, provider_job_id, job.amount).await {
            error!(error = %e, provider_job_id, "could not record the provider's job id");
        }
    }

    async fn create(&self, job: &mut Job, timing: &Timing) {
        let callback = self
            .settings
            .callbacks
            .as_ref()
            .map(|c| crate::callbacks::url(&c.public_base_url, job.id, &c.key.secret(job.id)));
        let outcome = self.provider.create(&job.spec, callback.as_deref()).await;
        self.breaker.after_create(&outcome, std::time::Instant::now());
        self.deliverer.notices.after_create(job.guild_id.get(), &outcome);
        match &outcome {
            Ok(created) => info!(provider_job_id = %created.job_id, amount = ?created.amount, "job submitted"),
            Err(e) => warn!(error = %e, attempts = job.create_attempts + 1, "create failed"),
        }
        let first_poll = self.first_poll(job);
        lifecycle::on_create(job, outcome, self.now(), first_poll, timing);
        if job.status == JobStatus::Uncertain {
            warn!("create request may have reached the provider; the job is uncertain");
        }
    }

    async fn query(&self, job: &mut Job, timing: &Timing) {
        let now = self.now();
        let elapsed = (now - job.submitted_at.unwrap_or(job.created_at)).to_std().unwrap_or_default();
        let provider_job_id = job.provider_job_id.clone().unwrap_or_default();
        let outcome = self.provider.query(&provider_job_id).await;
        match &outcome {
            // The provider's own words go to the log in full; the public reply may leave them out.
            Ok(state) => {
                if let crate::provider::Phase::Failed(reason) = &state.phase {
                    warn!(?reason, "job failed at the provider");
                }
            }
            Err(e @ crate::provider::ProviderError::Rejected { .. }) => warn!(error = %e, "status query refused"),
            Err(e) => debug!(error = %e, failures = job.poll_failures + 1, "status query failed"),
        }
        let next = self.next_poll(job, elapsed);
        lifecycle::on_query(job, outcome, self.now(), next, timing);
        match job.status {
            JobStatus::Succeeded => info!(images = job.result_urls.len(), "job succeeded"),
            JobStatus::Failed => info!(reason = ?job.error_text, "job failed"),
            _ => debug!(?elapsed, next = ?job.next_run_at, status = ?job.provider_status, "polled"),
        }
    }

    /// When to look at a job first after the provider accepted it.
    fn first_poll(&self, job: &Job) -> Duration {
        match &self.settings.callbacks {
            Some(callbacks) => callbacks.fallback_poll,
            None => match self.window(job) {
                // Jobs like this one usually finish in a known window: look when it opens.
                Some(window) => schedule::next_poll(&self.settings.poll, Some(window), Duration::ZERO),
                None => self.settings.poll.first_delay,
            },
        }
    }

    /// Where jobs with this job's performance setting usually finish, once known.
    fn window(&self, job: &Job) -> Option<schedule::Window> {
        let performance = job.spec.performance.unwrap_or(Performance::Balance);
        self.durations.read().expect("duration model lock").window(performance.as_str())
    }

    /// How long jobs with this job's performance setting typically take, once measured.
    fn typical(&self, job: &Job) -> Option<Duration> {
        let performance = job.spec.performance.unwrap_or(Performance::Balance);
        self.durations.read().expect("duration model lock").typical(performance.as_str())
    }

    /// When to look at a job again, `elapsed` after it was submitted.
    fn next_poll(&self, job: &Job, elapsed: Duration) -> Duration {
        match &self.settings.callbacks {
            // The callback says when the job is done; polling only covers a lost callback.
            Some(callbacks) => callbacks.fallback_poll,
            None => schedule::next_poll(&self.settings.poll, self.window(job), elapsed),
        }
    }
}

/// The first point of the start grid at or after `at`.
fn on_start_grid(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let step = START_GRID.num_milliseconds();
    let millis = at.timestamp_millis();
    let late_by = (step - millis.rem_euclid(step)) % step;
    chrono::DateTime::from_timestamp_millis(millis + late_by).unwrap_or(at)
}

/// What the database holds of a job this process works on, as of its last successful write.
struct Stored {
    status: JobStatus,
    counted: bool,
    priced: bool,
}

impl Stored {
    fn of(job: &Job) -> Self {
        Stored { status: job.status, counted: job.counted, priced: job.amount.is_some() }
    }

    /// A write of `job` succeeded: counts what it changed (each change is written once, under
    /// the lease, so each is counted once).
    fn record(&mut self, job: &Job) {
        if job.status != self.status && job.status.is_final() {
            metrics::counter!("imagine_jobs_finished_total", "status" => job.status.as_sql()).increment(1);
        }
        if self.counted && !job.counted {
            metrics::counter!("imagine_refunds_total").increment(1);
        }
        if !self.priced
            && let Some(dollars) = job.amount.and_then(|a| a.to_f64())
        {
            // A Prometheus sample is a float: the exact figure stays in the database.
            metrics::gauge!("imagine_spend_dollars_total").increment(dollars);
        }
        *self = Stored::of(job);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + millis).unwrap()
    }

    #[test]
    fn held_jobs_start_on_the_next_point_of_the_grid() {
        assert_eq!(on_start_grid(at(0)), at(0), "a point of the grid is its own");
        assert_eq!(on_start_grid(at(1)), at(100));
        assert_eq!(on_start_grid(at(99)), at(100));
        assert_eq!(on_start_grid(at(100)), at(100));
        assert_eq!(on_start_grid(at(250)), at(300));
    }
}
