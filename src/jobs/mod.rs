//! The worker: claims due jobs from the database, drives them through the provider, and
//! delivers them to Discord. Any process can pick up any job; a lease keeps two processes from
//! working on the same job at once.

pub mod discord;
pub mod schedule;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sqlx::PgPool;
use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};
use uuid::Uuid;

use crate::{
    config::{Config, PollSettings},
    db::jobs::{self as store, Job, JobStatus},
    provider::{self, Phase, ProviderError, ShortApi},
    render::{self, Stage},
};
use discord::{DiscordRest, SendError, Upload};

/// Transient create failures tolerated before a job is failed (and refunded).
const MAX_CREATE_ATTEMPTS: i32 = 6;
/// Failed delivery attempts before a job is marked undelivered.
const MAX_DELIVERY_ATTEMPTS: i32 = 8;
/// Polls with an unknown status, or refused queries, before the job is failed.
const MAX_UNKNOWN_POLLS: i32 = 3;
/// Stop editing the reply this long before the interaction token expires.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// How often an idle worker looks for due jobs (it is also woken when a job is accepted).
const TICK: Duration = Duration::from_millis(200);
/// How often the learned finish windows are refreshed from the database.
const DURATIONS_REFRESH: Duration = Duration::from_secs(30);
/// Time given to in-flight work at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Settings the worker needs, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub poll: PollSettings,
    pub concurrency: usize,
    pub lease: Duration,
    pub max_result_image_bytes: u64,
    /// Public base URL for provider callbacks, and the fallback poll interval when they are on.
    pub callbacks: Option<(String, Duration)>,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> Self {
        WorkerSettings {
            poll: config.poll.clone(),
            concurrency: config.worker_concurrency,
            lease: config.lease,
            max_result_image_bytes: config.max_result_image_bytes,
            callbacks: config.callbacks.as_ref().map(|c| (c.public_base_url.clone(), c.fallback_poll)),
        }
    }
}

pub struct Worker {
    pool: PgPool,
    provider: ShortApi,
    discord: DiscordRest,
    downloads: reqwest::Client,
    settings: WorkerSettings,
    /// Identifies this process's leases.
    owner: Uuid,
    /// Where recent jobs finished, shared by every process through the database.
    durations: std::sync::RwLock<schedule::DurationModel>,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(
        pool: PgPool,
        provider: ShortApi,
        discord: DiscordRest,
        settings: WorkerSettings,
        wake: Arc<Notify>,
        download_timeout: Duration,
    ) -> Self {
        let downloads = reqwest::Client::builder()
            .timeout(download_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with rustls builds");
        Worker {
            pool,
            provider,
            discord,
            downloads,
            settings,
            owner: Uuid::new_v4(),
            wake,
            durations: Default::default(),
        }
    }

    /// Runs until `shutdown`, then lets in-flight jobs finish (within a grace period) and gives
    /// up this process's leases.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        info!(owner = %self.owner, "worker started");
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut tasks = JoinSet::new();
        let mut db_failures = 0u32;
        let mut durations_refreshed: Option<std::time::Instant> = None;
        loop {
            if durations_refreshed.is_none_or(|t| t.elapsed() >= DURATIONS_REFRESH) {
                durations_refreshed = Some(std::time::Instant::now());
                match store::recent_durations(&self.pool, 500).await {
                    Ok(samples) => {
                        *self.durations.write().expect("duration model lock") =
                            schedule::DurationModel::from_samples(&samples)
                    }
                    Err(e) => debug!(error = %e, "could not refresh job durations"),
                }
            }
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    error!(error = %e, "a job task panicked");
                }
            }
            let free = permits.available_permits();
            let mut claimed_all = false;
            if free > 0 {
                match store::claim_due(&self.pool, self.owner, self.settings.lease, free as i64).await {
                    Ok(jobs) => {
                        if db_failures > 0 {
                            info!("database reachable again; worker resumed");
                        }
                        db_failures = 0;
                        claimed_all = !jobs.is_empty() && jobs.len() == free;
                        for job in jobs {
                            let permit = permits.clone().acquire_owned().await.expect("semaphore is never closed");
                            let worker = self.clone();
                            let span = info_span!("job", job_id = %job.id, guild_id = job.guild_id);
                            tasks.spawn(
                                async move {
                                    worker.step(job).await;
                                    drop(permit);
                                    // A free slot: look for more due work at once.
                                    worker.wake.notify_one();
                                }
                                .instrument(span),
                            );
                        }
                    }
                    Err(e) => {
                        db_failures += 1;
                        if db_failures == 1 {
                            error!(error = %e, "claiming jobs failed; the worker keeps retrying");
                        }
                    }
                }
            }
            if claimed_all {
                continue;
            }
            let pause = if db_failures > 0 {
                backoff(db_failures as i32, Duration::from_secs(1), Duration::from_secs(30))
            } else {
                TICK
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }

        info!(in_flight = tasks.len(), "worker stopping");
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            warn!("in-flight jobs did not finish within the grace period; their leases are released");
            tasks.abort_all();
        }
        match store::release_all(&self.pool, self.owner).await {
            Ok(n) if n > 0 => info!(released = n, "released job leases"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "could not release job leases; they expire on their own"),
        }
    }

    /// Moves one job forward by one step and writes it back.
    async fn step(&self, mut job: Job) {
        let outcome = match job.status {
            JobStatus::Queued => self.submit(&mut job).await,
            JobStatus::Submitting => {
                // A process died while its create request was in flight: the provider may or
                // may not have the job. Never send it again blindly.
                warn!("found a job whose create request had no recorded outcome; marking it uncertain");
                uncertain(&mut job);
                Ok(())
            }
            JobStatus::Submitted | JobStatus::Running => self.poll(&mut job).await,
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            error!(error = %e, "database write failed while working on a job; it will be retried");
            return;
        }
        if job.status.is_final() && job.delivered_at.is_none() {
            self.deliver(&mut job).await;
        }
        match store::save(&self.pool, &job, self.owner, true).await {
            Ok(true) => {}
            Ok(false) => warn!("lost the lease on a job before saving; another process has it"),
            Err(e) => error!(error = %e, "saving a job failed; it will be retried after its lease expires"),
        }
    }

    async fn submit(&self, job: &mut Job) -> Result<(), sqlx::Error> {
        if job.acked_at.is_none() {
            // The reply was never sent (the process died first): the user saw nothing, so the
            // job must not cost anything.
            fail(job, "The bot restarted before your request was confirmed. Please run the command again.");
            job.delivered_at = Some(Utc::now());
            job.delivery = Some("undelivered".into());
            job.interaction_token = None;
            return Ok(());
        }
        job.status = JobStatus::Submitting;
        if !store::save(&self.pool, job, self.owner, false).await? {
            return Ok(());
        }
        let callback = match (&self.settings.callbacks, &job.callback_secret) {
            (Some((base, _)), Some(secret)) => Some(crate::callbacks::url(base, job.id, secret)),
            _ => None,
        };
        match self.provider.create(&job.args, callback.as_deref()).await {
            Ok(created) => {
                info!(provider_job_id = %created.job_id, amount = ?created.amount, "job submitted");
                let now = Utc::now();
                job.status = JobStatus::Submitted;
                job.provider_job_id = Some(created.job_id);
                job.amount = created.amount;
                job.submitted_at = Some(now);
                job.attempts = 0;
                let first_poll = self.first_poll(job);
                debug!(?first_poll, "first poll scheduled");
                job.next_run_at = now + first_poll;
                self.edit_progress(job).await;
            }
            Err(ProviderError::Transient { reason, retry_after, may_have_landed: false }) => {
                job.status = JobStatus::Queued;
                job.attempts += 1;
                if job.attempts >= MAX_CREATE_ATTEMPTS {
                    warn!(%reason, attempts = job.attempts, "giving up on creating the job");
                    fail(job, "The image service is not answering right now. Please try again later.");
                } else {
                    let wait = backoff(job.attempts, Duration::from_secs(2), Duration::from_secs(120))
                        .max(retry_after.unwrap_or_default());
                    info!(%reason, attempts = job.attempts, ?wait, "create failed; will retry");
                    job.next_run_at = Utc::now() + wait;
                }
            }
            Err(ProviderError::Transient { reason, .. }) => {
                warn!(%reason, "create request may have reached the provider; marking the job uncertain");
                uncertain(job);
            }
            Err(ProviderError::Rejected { message, code, http_status }) => {
                warn!(%message, ?code, ?http_status, "provider refused the job");
                fail(job, &format!("The image service refused this request: {}.", provider_words(&message)));
            }
        }
        Ok(())
    }

    async fn poll(&self, job: &mut Job) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let submitted_at = job.submitted_at.unwrap_or(job.created_at);
        let elapsed = (now - submitted_at).to_std().unwrap_or_default();
        if elapsed >= self.settings.poll.deadline {
            warn!(?elapsed, "job passed its deadline");
            job.status = JobStatus::TimedOut;
            job.counted = false;
            job.finished_at = Some(now);
            job.error_text = Some(format!(
                "The image service did not finish within {}.",
                render::clock(self.settings.poll.deadline)
            ));
            return Ok(());
        }
        let provider_job_id = job.provider_job_id.clone().unwrap_or_default();
        let mut delay = self.next_poll(job, elapsed);
        match self.provider.query(&provider_job_id).await {
            Ok(state) => {
                job.provider_status = Some(state.raw_status.clone());
                job.progress = state.progress.map(i32::from);
                match state.phase {
                    Phase::Queued => job.unknown_polls = 0,
                    Phase::Running => {
                        job.unknown_polls = 0;
                        job.status = JobStatus::Running;
                        job.running_at.get_or_insert(now);
                    }
                    Phase::Succeeded(urls) => {
                        info!(images = urls.len(), "job succeeded");
                        job.status = JobStatus::Succeeded;
                        job.result_urls = urls;
                        job.finished_at = Some(now);
                        return Ok(());
                    }
                    Phase::Failed(reason) => {
                        warn!(?reason, "job failed at the provider");
                        let reason = reason.map(|r| provider_words(&r)).unwrap_or_else(|| "no reason given".into());
                        fail(job, &format!("The image service could not make this image: {reason}."));
                        return Ok(());
                    }
                    Phase::Unknown(status) => {
                        job.unknown_polls += 1;
                        warn!(%status, polls = job.unknown_polls, "provider reported a status we do not know");
                        if job.unknown_polls >= MAX_UNKNOWN_POLLS {
                            fail(
                                job,
                                "The image service reported a state we do not understand, so the job was stopped.",
                            );
                            return Ok(());
                        }
                    }
                }
            }
            Err(ProviderError::Transient { reason, retry_after, .. }) => {
                job.attempts += 1;
                debug!(%reason, attempts = job.attempts, "status query failed; will retry");
                delay = delay
                    .max(backoff(job.attempts, self.settings.poll.interval, Duration::from_secs(60)))
                    .max(retry_after.unwrap_or_default());
            }
            Err(ProviderError::Rejected { message, .. }) => {
                job.unknown_polls += 1;
                warn!(%message, polls = job.unknown_polls, "provider refused a status query");
                if job.unknown_polls >= MAX_UNKNOWN_POLLS {
                    fail(
                        job,
                        &format!("The image service stopped answering about this job: {}.", provider_words(&message)),
                    );
                    return Ok(());
                }
            }
        }
        debug!(?elapsed, ?delay, status = ?job.provider_status, "polled");
        job.next_run_at = now + delay;
        self.edit_progress(job).await;
        Ok(())
    }

    /// When to look at a job first after the provider accepted it.
    fn first_poll(&self, job: &Job) -> Duration {
        match &self.settings.callbacks {
            Some((_, fallback)) => *fallback,
            None => match self.window(job) {
                // Jobs like this one usually finish in a known window: look when it opens.
                Some(window) => schedule::next_poll(&self.settings.poll, Some(window), Duration::ZERO),
                None => self.settings.poll.first_delay,
            },
        }
    }

    /// Where jobs with this job's performance setting usually finish, once known.
    fn window(&self, job: &Job) -> Option<schedule::Window> {
        let performance = job.args.performance.as_deref().unwrap_or("balance");
        self.durations.read().expect("duration model lock").window(performance)
    }

    /// When to look at a job again, `elapsed` after it was submitted.
    fn next_poll(&self, job: &Job, elapsed: Duration) -> Duration {
        match &self.settings.callbacks {
            // The callback says when the job is done; polling only covers a lost callback.
            Some((_, fallback)) => *fallback,
            None => schedule::next_poll(&self.settings.poll, self.window(job), elapsed),
        }
    }

    /// Updates the reply with the job's progress, no more often than the configured interval.
    async fn edit_progress(&self, job: &mut Job) {
        let now = Utc::now();
        let Some(token) = job.interaction_token.clone() else { return };
        if job.acked_at.is_none() || now + TOKEN_MARGIN >= job.token_expires_at {
            return;
        }
        if job
            .last_edit_at
            .is_some_and(|t| (now - t).to_std().unwrap_or_default() < self.settings.poll.progress_edit_interval)
        {
            return;
        }
        let since = job.submitted_at.unwrap_or(job.created_at);
        let elapsed = (now - since).to_std().unwrap_or_default();
        let stage = match job.status {
            JobStatus::Running => Stage::Generating { elapsed, progress: job.progress.map(|p| p as u8) },
            _ => Stage::Submitted { elapsed },
        };
        let message = render::job_message(&job.args, &job.notes, &stage, &[], &gallery_url(job));
        if job.last_edit_text.as_deref() == Some(message.content.as_str()) {
            return;
        }
        job.last_edit_at = Some(now);
        match self.discord.edit_reply(job.application_id as u64, &token, &message, &[]).await {
            Ok(id) => {
                job.message_id = Some(id as i64);
                job.last_edit_text = Some(message.content);
            }
            Err(SendError::RateLimited(wait)) => {
                // Recorded in the future: no edit of this reply until Discord's wait is over.
                debug!(?wait, "progress edit rate limited");
                job.last_edit_at = Some(now + wait);
            }
            Err(e) => debug!(error = %e, "progress edit skipped"),
        }
    }

    /// Sends the final message: results or failure. Records the route on success; on a
    /// temporary failure schedules another attempt.
    async fn deliver(&self, job: &mut Job) {
        if let Some(not_before) = job.last_edit_at.filter(|t| *t > Utc::now()) {
            // An edit of this reply was rate limited: Discord's wait applies to this one too.
            job.next_run_at = not_before;
            return;
        }
        let mut uploads = Vec::new();
        let mut linked = Vec::new();
        if job.status == JobStatus::Succeeded {
            match self.fetch_images(job).await {
                Ok((files, too_large)) => {
                    uploads = files;
                    linked = too_large;
                }
                Err(reason) => {
                    job.attempts += 1;
                    if job.attempts < MAX_DELIVERY_ATTEMPTS {
                        warn!(%reason, attempts = job.attempts, "could not download the results; will retry");
                        job.next_run_at =
                            Utc::now() + backoff(job.attempts, Duration::from_secs(2), Duration::from_secs(60));
                        return;
                    }
                    error!(%reason, "could not download the results; giving up");
                    fail(job, "The images were made but could not be fetched from the image service.");
                }
            }
        }

        let sent = loop {
            let message = final_message(job, &uploads, &linked);
            let result = self.send_final(job, &message, &uploads).await;
            if result == Err(SendError::TooLarge) && !uploads.is_empty() {
                // Drop the largest file and link it instead, then try again.
                let largest = (0..uploads.len()).max_by_key(|&i| uploads[i].bytes.len()).expect("not empty");
                linked.push(uploads.remove(largest).source_url);
                continue;
            }
            break result;
        };

        let now = Utc::now();
        match sent {
            Ok((route, message_id)) => {
                info!(route, "job delivered");
                metrics::counter!("imagine_deliveries_total", "route" => route).increment(1);
                job.delivery = Some(route.into());
                job.message_id = Some(message_id);
                job.delivered_at = Some(now);
                job.interaction_token = None;
            }
            Err(SendError::RateLimited(wait)) => {
                info!(?wait, "delivery rate limited; waiting as Discord asked");
                job.next_run_at = now + wait;
                job.last_edit_at = Some(now + wait);
            }
            Err(e @ (SendError::Transient(_) | SendError::TooLarge | SendError::ReplyGone(_))) => {
                job.attempts += 1;
                if job.attempts >= MAX_DELIVERY_ATTEMPTS {
                    error!(error = %e, "giving up on delivering the job");
                    undelivered(job);
                } else {
                    warn!(error = %e, attempts = job.attempts, "delivery failed; will retry");
                    job.next_run_at = now + backoff(job.attempts, Duration::from_secs(2), Duration::from_secs(120));
                }
            }
            Err(e @ SendError::Refused(_)) => {
                error!(error = %e, "Discord refused the job's message; marking it undelivered");
                undelivered(job);
            }
        }
        if job.delivery.as_deref() == Some("undelivered") && !uploads.is_empty() {
            // Keep the images so /history can still show them; the provider's links expire.
            let prefix = job.id.simple().to_string();
            let images: Vec<(String, Vec<u8>)> =
                uploads.into_iter().map(|u| (format!("{}-{}", &prefix[..8], u.filename), u.bytes)).collect();
            if let Err(e) = store::save_images(&self.pool, job.id, &images).await {
                error!(error = %e, "could not keep the images of an undelivered job");
            }
        }
    }

    /// Edits the reply while its token is valid, else posts in the channel. Returns the route.
    async fn send_final(
        &self,
        job: &Job,
        message: &render::Rendered,
        uploads: &[Upload],
    ) -> Result<(&'static str, i64), SendError> {
        let now = Utc::now();
        if let Some(token) = job.interaction_token.as_deref().filter(|_| now + TOKEN_MARGIN < job.token_expires_at) {
            match self.discord.edit_reply(job.application_id as u64, token, message, uploads).await {
                Ok(id) => return Ok(("edit", id as i64)),
                Err(SendError::ReplyGone(why)) => info!(%why, "reply can no longer be edited; posting in the channel"),
                Err(e) => return Err(e),
            }
        }
        self.discord
            .post_in_channel(
                job.channel_id as u64,
                job.user_id as u64,
                job.message_id.map(|id| id as u64),
                message,
                uploads,
            )
            .await
            .map(|id| ("channel", id as i64))
    }

    /// Downloads every result image. Images bigger than the interaction's upload limit are
    /// returned as links instead; at most ten files are uploaded.
    async fn fetch_images(&self, job: &Job) -> Result<(Vec<Upload>, Vec<String>), String> {
        let cap = self.settings.max_result_image_bytes;
        let downloads = job.result_urls.iter().map(|url| provider::download(&self.downloads, url, cap));
        let results = futures::future::join_all(downloads).await;
        let mut uploads = Vec::new();
        let mut linked = Vec::new();
        for (i, (url, result)) in job.result_urls.iter().zip(results).enumerate() {
            match result {
                Ok((bytes, content_type)) => {
                    if bytes.len() as i64 > job.attachment_size_limit || uploads.len() >= 10 {
                        linked.push(url.clone());
                    } else {
                        let filename = file_name(i, content_type.as_deref(), url);
                        uploads.push(Upload { filename, bytes, source_url: url.clone() });
                    }
                }
                Err(e) if e.contains("cap") => {
                    warn!(error = %e, "result image over the download cap; linking it");
                    linked.push(url.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok((uploads, linked))
    }
}

fn file_name(index: usize, content_type: Option<&str>, url: &str) -> String {
    let ext = match content_type {
        Some("image/jpeg") => "jpg",
        Some("image/webp") => "webp",
        Some("image/gif") => "gif",
        Some("image/png") => "png",
        _ => url
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rsplit_once('.'))
            .map(|(_, e)| e)
            .filter(|e| matches!(*e, "png" | "jpg" | "jpeg" | "webp" | "gif"))
            .unwrap_or("png"),
    };
    format!("imagine-{}.{ext}", index + 1)
}

/// The final message of a job: its results, or why it failed.
fn final_message(job: &Job, uploads: &[Upload], linked: &[String]) -> render::Rendered {
    let stage = if job.status == JobStatus::Succeeded {
        let took = (job.finished_at.unwrap_or_else(Utc::now) - job.created_at).to_std().unwrap_or_default();
        Stage::Done { took, amount: job.amount.clone(), images: job.result_urls.len(), linked: linked.to_vec() }
    } else {
        Stage::Failed { reason: job.error_text.clone().unwrap_or_else(|| "Something went wrong.".into()) }
    };
    let files: Vec<String> = uploads.iter().map(|u| u.filename.clone()).collect();
    render::job_message(&job.args, &job.notes, &stage, &files, &gallery_url(job))
}

/// Groups a job's image embeds into one gallery.
fn gallery_url(job: &Job) -> String {
    format!("https://discord.com/channels/{}/{}#imagine-{}", job.guild_id, job.channel_id, job.id)
}

fn fail(job: &mut Job, reason: &str) {
    job.status = JobStatus::Failed;
    job.counted = false;
    job.finished_at = Some(Utc::now());
    job.error_text = Some(reason.to_owned());
}

fn uncertain(job: &mut Job) {
    job.status = JobStatus::Uncertain;
    job.counted = false;
    job.finished_at = Some(Utc::now());
    job.error_text = Some(
        "We could not confirm whether the image service accepted this request, so it was stopped. An operator can check it."
            .into(),
    );
}

fn undelivered(job: &mut Job) {
    metrics::counter!("imagine_deliveries_total", "route" => "undelivered").increment(1);
    job.delivery = Some("undelivered".into());
    job.delivered_at = Some(Utc::now());
    job.interaction_token = None;
}

/// The provider's words, kept short and on one line.
fn provider_words(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    render::truncate(one_line.trim_end_matches('.'), 200)
}

/// Capped exponential backoff with jitter: `base * 2^(attempt-1)`, scaled by 50–100 %.
pub fn backoff(attempt: i32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 16).saturating_sub(1) as u32).min(cap);
    exp.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(60);
        for attempt in 1..20 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "{attempt}: {d:?}");
            let ideal = base.saturating_mul(1 << (attempt - 1).min(15)).min(cap);
            assert!(d >= ideal / 2, "{attempt}: {d:?} < half of {ideal:?}");
        }
    }

    #[test]
    fn result_files_are_named_by_type() {
        assert_eq!(file_name(0, Some("image/jpeg"), "https://x/a"), "imagine-1.jpg");
        assert_eq!(file_name(1, None, "https://x/b.webp?sig=1"), "imagine-2.webp");
        assert_eq!(file_name(2, Some("application/octet-stream"), "https://x/c"), "imagine-3.png");
    }
}
