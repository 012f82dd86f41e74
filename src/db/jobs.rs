//! The `jobs` table: history of every job, and the queue the workers claim from.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use crate::provider::ImageToImageArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "job_status", rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Submitting,
    Submitted,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Uncertain,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Queued,
        JobStatus::Submitting,
        JobStatus::Submitted,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::TimedOut,
        JobStatus::Uncertain,
    ];

    /// The name of the state in the database.
    pub fn as_sql(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Submitting => "submitting",
            JobStatus::Submitted => "submitted",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Uncertain => "uncertain",
        }
    }

    /// The job will not change at the provider any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut | JobStatus::Uncertain)
    }

    pub fn label(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Submitting | JobStatus::Submitted => "submitted",
            JobStatus::Running => "generating",
            JobStatus::Succeeded => "done",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed out",
            JobStatus::Uncertain => "uncertain",
        }
    }
}

/// A job as stored. The worker changes it in memory and writes it back with [`save`].
#[derive(Clone, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub interaction_id: i64,
    pub application_id: i64,
    pub guild_id: i64,
    pub channel_id: i64,
    pub user_id: i64,
    pub interaction_token: Option<String>,
    pub token_expires_at: DateTime<Utc>,
    pub attachment_size_limit: i64,
    pub prompt_raw: String,
    pub prompt_sent: String,
    pub negative_prompt: Option<String>,
    pub args: Json<ImageToImageArgs>,
    pub input_urls: Vec<String>,
    pub notes: Vec<String>,
    pub status: JobStatus,
    pub counted: bool,
    pub provider_job_id: Option<String>,
    pub provider_status: Option<String>,
    pub progress: Option<i32>,
    pub unknown_polls: i32,
    pub amount: Option<String>,
    pub result_urls: Vec<String>,
    pub error_text: Option<String>,
    pub message_id: Option<i64>,
    pub delivery: Option<String>,
    pub attempts: i32,
    pub next_run_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    pub last_edit_at: Option<DateTime<Utc>>,
    pub last_edit_text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub running_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub callback_secret: Option<String>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The interaction token is a credential: never printed.
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("guild_id", &self.guild_id)
            .field("status", &self.status)
            .field("provider_job_id", &self.provider_job_id)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, interaction_id, application_id, guild_id, channel_id, user_id, interaction_token, \
    token_expires_at, attachment_size_limit, prompt_raw, prompt_sent, negative_prompt, args, input_urls, notes, \
    status, counted, provider_job_id, provider_status, progress, unknown_polls, amount::text AS amount, result_urls, \
    error_text, message_id, delivery, attempts, next_run_at, acked_at, last_edit_at, last_edit_text, created_at, \
    submitted_at, running_at, finished_at, delivered_at, callback_secret";

/// What a command stores for a new job.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub interaction_id: i64,
    pub application_id: i64,
    pub guild_id: i64,
    pub channel_id: i64,
    pub user_id: i64,
    pub interaction_token: String,
    pub token_expires_at: DateTime<Utc>,
    pub attachment_size_limit: i64,
    pub prompt_raw: String,
    pub args: ImageToImageArgs,
    pub input_urls: Vec<String>,
    pub notes: Vec<String>,
    pub callback_secret: String,
}

pub async fn insert(db: impl PgExecutor<'_>, job: &NewJob) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO jobs (id, interaction_id, application_id, guild_id, channel_id, user_id, interaction_token, \
         token_expires_at, attachment_size_limit, prompt_raw, prompt_sent, negative_prompt, args, input_urls, notes, \
         callback_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(job.id)
    .bind(job.interaction_id)
    .bind(job.application_id)
    .bind(job.guild_id)
    .bind(job.channel_id)
    .bind(job.user_id)
    .bind(&job.interaction_token)
    .bind(job.token_expires_at)
    .bind(job.attachment_size_limit)
    .bind(&job.prompt_raw)
    .bind(&job.args.prompt)
    .bind(&job.args.negative_prompt)
    .bind(Json(&job.args))
    .bind(&job.input_urls)
    .bind(&job.notes)
    .bind(&job.callback_secret)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn exists_for_interaction(db: impl PgExecutor<'_>, interaction_id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE interaction_id = $1)")
        .bind(interaction_id)
        .fetch_one(db)
        .await
}

/// The public reply exists: the worker may now send the job and edit the reply.
pub async fn mark_acked(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET acked_at = now() WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// The reply could not be sent, so the user never saw the job: drop it before it reaches the
/// provider, refund it, and keep it in the history with the reason.
pub async fn abandon(db: impl PgExecutor<'_>, id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', counted = false, error_text = $2, interaction_token = NULL, \
         finished_at = now(), delivered_at = now(), delivery = 'undelivered' \
         WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` jobs that are due, finished jobs first, leasing them to `owner`.
/// Jobs whose reply was never sent are left alone until they are old enough to be abandoned.
pub async fn claim_due(
    db: impl PgExecutor<'_>,
    owner: Uuid,
    lease: std::time::Duration,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2) \
         WHERE id IN ( \
             SELECT id FROM jobs \
             WHERE delivered_at IS NULL AND next_run_at <= now() \
               AND (acked_at IS NOT NULL OR created_at < now() - interval '1 minute') \
               AND (lease_expires_at IS NULL OR lease_expires_at < now()) \
             ORDER BY (status IN ('succeeded', 'failed', 'timed_out', 'uncertain')) DESC, next_run_at \
             LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql).bind(owner).bind(lease.as_secs_f64()).bind(limit).fetch_all(db).await
}

/// Writes the worker's changes back. `release` gives the lease up. Returns false when the lease
/// was lost to another process, in which case nothing was written.
pub async fn save(db: impl PgExecutor<'_>, job: &Job, owner: Uuid, release: bool) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE jobs SET status = $3, counted = $4, provider_job_id = $5, provider_status = $6, progress = $7, \
         unknown_polls = $8, amount = $9::numeric, result_urls = $10, error_text = $11, message_id = $12, \
         delivery = $13, attempts = $14, next_run_at = $15, last_edit_at = $16, last_edit_text = $17, \
         submitted_at = $18, running_at = $19, finished_at = $20, delivered_at = $21, interaction_token = $22, \
         lease_owner = CASE WHEN $23 THEN NULL ELSE lease_owner END, \
         lease_expires_at = CASE WHEN $23 THEN NULL ELSE lease_expires_at END \
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(job.id)
    .bind(owner)
    .bind(job.status)
    .bind(job.counted)
    .bind(&job.provider_job_id)
    .bind(&job.provider_status)
    .bind(job.progress)
    .bind(job.unknown_polls)
    .bind(&job.amount)
    .bind(&job.result_urls)
    .bind(&job.error_text)
    .bind(job.message_id)
    .bind(&job.delivery)
    .bind(job.attempts)
    .bind(job.next_run_at)
    .bind(job.last_edit_at)
    .bind(&job.last_edit_text)
    .bind(job.submitted_at)
    .bind(job.running_at)
    .bind(job.finished_at)
    .bind(job.delivered_at)
    .bind(&job.interaction_token)
    .bind(release)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives up every lease `owner` holds (at shutdown), so another process can continue at once.
pub async fn release_all(db: impl PgExecutor<'_>, owner: Uuid) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1")
        .bind(owner)
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}

/// A user's most recent jobs in a guild, newest first.
pub async fn recent_for_user(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    user_id: i64,
    limit: i64,
) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE guild_id = $1 AND user_id = $2 ORDER BY created_at DESC LIMIT $3"
    ))
    .bind(guild_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Keeps the images of a job that could not be delivered.
pub async fn save_images(db: &sqlx::PgPool, job_id: Uuid, images: &[(String, Vec<u8>)]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for (position, (filename, bytes)) in images.iter().enumerate() {
        sqlx::query(
            "INSERT INTO job_images (job_id, position, filename, bytes) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job_id, position) DO NOTHING",
        )
        .bind(job_id)
        .bind(position as i32)
        .bind(filename)
        .bind(bytes)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Kept images of a user's undelivered jobs in a guild, newest job first, at most `limit`.
pub async fn undelivered_images(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    user_id: i64,
    limit: i64,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.filename, i.bytes FROM job_images i JOIN jobs j ON j.id = i.job_id \
         WHERE j.guild_id = $1 AND j.user_id = $2 ORDER BY j.created_at DESC, i.position LIMIT $3",
    )
    .bind(guild_id)
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn callback_secret(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let secret: Option<Option<String>> =
        sqlx::query_scalar("SELECT callback_secret FROM jobs WHERE id = $1").bind(id).fetch_optional(db).await?;
    Ok(secret.flatten())
}

/// Makes a job at the provider due for a query now. False when the job is no longer waiting on
/// the provider (a replayed or late callback).
pub async fn poll_now(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE jobs SET next_run_at = now() WHERE id = $1 AND status IN ('submitted', 'running') AND next_run_at > now()",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// How long recent successful jobs took at the provider, newest first: `(performance, seconds)`.
pub async fn recent_durations(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<(String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(args->>'performance', 'balance'), \
                EXTRACT(EPOCH FROM finished_at - submitted_at)::float8 \
         FROM jobs WHERE status = 'succeeded' AND submitted_at IS NOT NULL AND finished_at > now() - interval '1 day' \
         ORDER BY finished_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}
