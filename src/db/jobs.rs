//! The `jobs` table: history of every job, and the queue the workers claim from.
//!
//! Every statement is checked against the schema at compile time (`sqlx::query!`; offline data
//! in `.sqlx/`). Status lists are bound from [`JobStatus`] constants, never spelled in SQL.
//!
//! Longer than 400 lines on purpose: it is the one home of every statement on the `jobs` table and
//! of the types stored in it; splitting it would scatter the table's SQL.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use super::DiscordId;
use crate::spec::JobSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
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
    /// Stopped by its owner or a moderator before it was sent: never sent, refunded, final.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Queued,
        JobStatus::Submitting,
        JobStatus::Submitted,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::TimedOut,
        JobStatus::Uncertain,
        JobStatus::Cancelled,
    ];
    /// States in which a job is still in flight: it counts against `max_concurrent`.
    pub const IN_FLIGHT: [JobStatus; 4] =
        [JobStatus::Queued, JobStatus::Submitting, JobStatus::Submitted, JobStatus::Running];
    /// States in which a job waits its turn: not sent yet, or sent and not started. While waiting,
    /// its reply shows its place among the guild's waiting jobs.
    pub const WAITING: [JobStatus; 3] = [JobStatus::Queued, JobStatus::Submitting, JobStatus::Submitted];
    /// States in which the provider has the job and a query says how it is doing.
    pub const AT_PROVIDER: [JobStatus; 2] = [JobStatus::Submitted, JobStatus::Running];
    /// States in which a job may cost money whose amount the provider has not reported (yet):
    /// reserved, being sent, at the provider, or sent with an unknown outcome. Spend counts such a
    /// job at the expected cost.
    pub const UNPRICED_UNLESS_REPORTED: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Submitting, JobStatus::Submitted, JobStatus::Running, JobStatus::Uncertain];
    /// States that will not change at the provider any more.
    pub const FINAL: [JobStatus; 5] =
        [JobStatus::Succeeded, JobStatus::Failed, JobStatus::TimedOut, JobStatus::Uncertain, JobStatus::Cancelled];

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
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether a job in this state, failed for `error_text`, was declined by the image service's
    /// moderation: its reason is for its owner only, and `Retry` would be declined again.
    pub fn declined_by_moderation(self, error_text: Option<&str>) -> bool {
        self == JobStatus::Failed && error_text.is_some_and(crate::provider::declined_by_moderation)
    }

    /// Whether a job in this state delivered no images and may be made again as it was (`Retry`).
    pub fn retryable(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::TimedOut | JobStatus::Uncertain)
    }

    /// The job will not change at the provider any more.
    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
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
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// How a job's final message reached Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "delivery_route", rename_all = "snake_case")]
pub enum Delivery {
    /// The interaction reply was edited.
    Edit,
    /// Posted in the channel, mentioning the user (the reply could no longer be edited).
    Channel,
    /// Discord refused or kept failing; `/history` shows the job and its kept images.
    Undelivered,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Edit => "edit",
            Delivery::Channel => "channel",
            Delivery::Undelivered => "undelivered",
        }
    }
}

/// The button of a result that started a job (`jobs.origin`, a Postgres enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "job_origin")]
pub enum JobOrigin {
    V1,
    V2,
    V3,
    V4,
    Reroll,
    Remix,
    Retry,
}

impl JobOrigin {
    const ALL: [JobOrigin; 7] = [
        JobOrigin::V1,
        JobOrigin::V2,
        JobOrigin::V3,
        JobOrigin::V4,
        JobOrigin::Reroll,
        JobOrigin::Remix,
        JobOrigin::Retry,
    ];

    /// The button's label, as on the button and in its `custom_id`.
    pub fn label(self) -> &'static str {
        match self {
            JobOrigin::V1 => "V1",
            JobOrigin::V2 => "V2",
            JobOrigin::V3 => "V3",
            JobOrigin::V4 => "V4",
            JobOrigin::Reroll => "Reroll",
            JobOrigin::Remix => "Remix",
            JobOrigin::Retry => "Retry",
        }
    }

    /// The origin a button labelled `label` records, if it starts jobs.
    pub fn of_label(label: &str) -> Option<JobOrigin> {
        Self::ALL.into_iter().find(|o| o.label() == label)
    }
}

impl std::fmt::Display for JobOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A job as stored. The worker changes it in memory (only through `jobs::lifecycle`) and writes
/// it back with [`save`].
#[derive(Clone)]
pub struct Job {
    pub id: Uuid,
    pub interaction_id: DiscordId,
    pub application_id: DiscordId,
    pub guild_id: DiscordId,
    pub channel_id: DiscordId,
    pub user_id: DiscordId,
    pub interaction_token: Option<String>,
    pub token_expires_at: DateTime<Utc>,
    pub attachment_size_limit: i64,
    pub spec: Json<JobSpec>,
    pub notes: Vec<String>,
    pub status: JobStatus,
    pub counted: bool,
    pub provider_job_id: Option<String>,
    pub provider_status: Option<String>,
    pub progress: Option<i32>,
    pub unknown_polls: i32,
    pub amount: Option<Decimal>,
    pub result_urls: Vec<String>,
    pub error_text: Option<String>,
    pub message_id: Option<DiscordId>,
    pub delivery: Option<Delivery>,
    pub create_attempts: i32,
    pub poll_failures: i32,
    pub delivery_attempts: i32,
    /// The result images are kept in `job_images`: a retry uploads them instead of downloading.
    pub images_kept: bool,
    pub reply_failed: bool,
    pub next_run_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    pub last_edit_at: Option<DateTime<Utc>>,
    pub last_edit_text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub running_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// This claim's fencing token: saves count only while the row still carries it.
    pub lease_token: Uuid,
    /// Set while the job, accepted past its member's `max_concurrent`, waits for a slot: that
    /// limit. Cleared only by `quotas::admit`, under the guild's lock; never written by [`save`].
    pub slot_limit: Option<i32>,
    /// While the job waits ([`JobStatus::WAITING`]): its place among the guild's waiting jobs,
    /// oldest first, as of its claim or its last [`place`] read. Not stored.
    pub place: Option<i64>,
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

/// What a command stores for a new job.
#[derive(Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub interaction_id: DiscordId,
    pub application_id: DiscordId,
    pub guild_id: DiscordId,
    pub channel_id: DiscordId,
    pub user_id: DiscordId,
    pub interaction_token: String,
    pub token_expires_at: DateTime<Utc>,
    pub attachment_size_limit: i64,
    pub prompt_raw: String,
    /// What the job asks for (stored in `args`); its picture links are also stored apart, as
    /// given.
    pub spec: JobSpec,
    pub notes: Vec<String>,
    /// The job whose result button started this one, and the button.
    pub origin: Option<(Uuid, JobOrigin)>,
}

impl std::fmt::Debug for NewJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The interaction token is a credential: never printed.
        f.debug_struct("NewJob")
            .field("id", &self.id)
            .field("interaction_id", &self.interaction_id)
            .field("guild_id", &self.guild_id)
            .field("channel_id", &self.channel_id)
            .field("user_id", &self.user_id)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

pub async fn insert(db: impl PgExecutor<'_>, job: &NewJob) -> Result<(), sqlx::Error> {
    let input_urls: Vec<String> = job.spec.pictures.urls().cloned().collect();
    sqlx::query!(
        "INSERT INTO jobs (id, interaction_id, application_id, guild_id, channel_id, user_id, interaction_token, \
         token_expires_at, attachment_size_limit, prompt_raw, prompt_sent, negative_prompt, args, input_urls, notes, \
         parent_job_id, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        job.id,
        job.interaction_id as DiscordId,
        job.application_id as DiscordId,
        job.guild_id as DiscordId,
        job.channel_id as DiscordId,
        job.user_id as DiscordId,
        job.interaction_token,
        job.token_expires_at,
        job.attachment_size_limit,
        job.prompt_raw,
        job.spec.prompt,
        job.spec.negative_prompt,
        Json(&job.spec) as _,
        &input_urls,
        &job.notes,
        job.origin.as_ref().map(|(parent, _)| *parent),
        job.origin.map(|(_, origin)| origin) as Option<JobOrigin>,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The public reply exists: the worker may now send the job and edit the reply.
pub async fn mark_acked(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE jobs SET acked_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// The reply could not be sent, so the user never saw the job: the worker drops it at once,
/// before it reaches the provider (see `jobs::lifecycle::on_due`).
pub async fn mark_reply_failed(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE jobs SET reply_failed = true, next_run_at = now() WHERE id = $1", id).execute(db).await?;
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
    sqlx::query_as!(
        Job,
        r#"UPDATE jobs SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2),
             lease_token = gen_random_uuid()
         WHERE id IN (
             SELECT id FROM jobs
             WHERE delivered_at IS NULL AND next_run_at <= now()
               AND (acked_at IS NOT NULL OR reply_failed OR created_at < now() - interval '1 minute')
               AND (lease_expires_at IS NULL OR lease_expires_at < now())
             ORDER BY (status = ANY($4)) DESC, next_run_at
             LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING id, interaction_id AS "interaction_id: DiscordId", application_id AS "application_id: DiscordId",
             guild_id AS "guild_id: DiscordId", channel_id AS "channel_id: DiscordId", user_id AS "user_id: DiscordId",
             interaction_token,
             token_expires_at, attachment_size_limit, args AS "spec: Json<JobSpec>", notes,
             status AS "status: JobStatus", counted, provider_job_id, provider_status, progress, unknown_polls,
             amount, result_urls, error_text, message_id AS "message_id: DiscordId", delivery AS "delivery: Delivery",
             create_attempts, poll_failures, delivery_attempts, images_kept, reply_failed, next_run_at, acked_at,
             last_edit_at,
             last_edit_text, created_at, submitted_at, running_at, finished_at, delivered_at,
             lease_token AS "lease_token!", slot_limit,
             CASE WHEN status = ANY($5) THEN
               (SELECT count(*) + 1 FROM jobs ahead
                WHERE ahead.guild_id = jobs.guild_id AND ahead.counted AND ahead.delivered_at IS NULL
                  AND ahead.status = ANY($5)
                  AND (ahead.created_at, ahead.id) < (jobs.created_at, jobs.id))
             END AS place"#,
        owner,
        lease.as_secs_f64(),
        limit,
        &JobStatus::FINAL as &[JobStatus],
        &JobStatus::WAITING as &[JobStatus],
    )
    .fetch_all(db)
    .await
}

/// A waiting job's place among its guild's waiting jobs ([`JobStatus::WAITING`]), oldest first.
/// A waiting job is always counted: the condition lets the guild's window index answer.
pub async fn place(db: impl PgExecutor<'_>, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(ahead.id) + 1 AS "place!" FROM jobs job
           LEFT JOIN jobs ahead ON ahead.guild_id = job.guild_id AND ahead.counted AND ahead.delivered_at IS NULL
             AND ahead.status = ANY($2) AND (ahead.created_at, ahead.id) < (job.created_at, job.id)
           WHERE job.id = $1"#,
        id,
        &JobStatus::WAITING as &[JobStatus],
    )
    .fetch_one(db)
    .await
}

/// Extends the leases held under `tokens` (jobs this process works on or keeps in memory).
/// Returns the tokens still valid; a job whose token is missing was taken over and must be let go.
pub async fn renew_leases(
    db: impl PgExecutor<'_>,
    lease: std::time::Duration,
    tokens: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $1)
         WHERE lease_token = ANY($2) AND delivered_at IS NULL
         RETURNING lease_token AS "lease_token!""#,
        lease.as_secs_f64(),
        tokens,
    )
    .fetch_all(db)
    .await
}

/// Records what the provider said about a job it accepted, the moment it is known and whoever
/// holds the lease: the money trail must survive a crash before the job's next save.
pub async fn record_created(
    db: impl PgExecutor<'_>,
    id: Uuid,
    provider_job_id: &str,
    amount: Option<Decimal>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE jobs SET provider_job_id = $2, amount = $3 WHERE id = $1 AND provider_job_id IS NULL",
        id,
        provider_job_id,
        amount,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Writes the worker's changes back. `release` gives the lease up. Returns false when the lease
/// was lost to another process, or the job was cancelled meanwhile (see [`cancel`]), in which case
/// nothing was written: the worker drops its copy, so a cancel and the save of `submitting` before
/// the create never both win.
pub async fn save(db: impl PgExecutor<'_>, job: &Job, owner: Uuid, release: bool) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "UPDATE jobs SET status = $3, counted = $4, provider_job_id = $5, provider_status = $6, progress = $7, \
         unknown_polls = $8, amount = $9, result_urls = $10, error_text = $11, message_id = $12, \
         delivery = $13, create_attempts = $14, poll_failures = $15, delivery_attempts = $16, next_run_at = $17, \
         last_edit_at = $18, last_edit_text = $19, submitted_at = $20, running_at = $21, finished_at = $22, \
         delivered_at = $23, interaction_token = $24, \
         lease_owner = CASE WHEN $25 THEN NULL ELSE lease_owner END, \
         lease_expires_at = CASE WHEN $25 THEN NULL ELSE lease_expires_at END, \
         lease_token = CASE WHEN $25 THEN NULL ELSE lease_token END \
         WHERE id = $1 AND lease_owner = $2 AND lease_token = $26 AND status <> $27",
        job.id,
        owner,
        job.status as JobStatus,
        job.counted,
        job.provider_job_id,
        job.provider_status,
        job.progress,
        job.unknown_polls,
        job.amount,
        &job.result_urls,
        job.error_text,
        job.message_id as Option<DiscordId>,
        job.delivery as Option<Delivery>,
        job.create_attempts,
        job.poll_failures,
        job.delivery_attempts,
        job.next_run_at,
        job.last_edit_at,
        job.last_edit_text,
        job.submitted_at,
        job.running_at,
        job.finished_at,
        job.delivered_at,
        job.interaction_token,
        release,
        job.lease_token,
        JobStatus::Cancelled as JobStatus,
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The database's clock now.
pub async fn database_now(db: impl PgExecutor<'_>) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT clock_timestamp() AS "now!""#).fetch_one(db).await
}

/// Takes the session-level advisory lock `key` on `connection` if no other session holds it.
pub async fn try_lock_identity(connection: &mut sqlx::PgConnection, key: i64) -> Result<bool, sqlx::Error> {
    let locked =
        sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, key).fetch_one(connection).await?;
    Ok(locked)
}

/// Gives up every lease `owner` holds (at shutdown, or left by its previous life at start-up), so
/// any process can continue at once.
pub async fn release_all(db: impl PgExecutor<'_>, owner: Uuid) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL WHERE lease_owner = $1",
        owner
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// What a press on a job's result buttons needs to know about the job.
#[derive(Debug, Clone)]
pub struct PressedJob {
    pub guild_id: DiscordId,
    /// The job's owner.
    pub user_id: DiscordId,
    pub status: JobStatus,
    /// Why it failed, if it did (for its owner: a moderation refusal's reason is private).
    pub error_text: Option<String>,
    /// How many images the job produced.
    pub images: i32,
    pub prompt_sent: String,
    /// What the job asked for; a new job from V, Reroll or Remix starts from it.
    pub spec: Json<JobSpec>,
    /// The message that carries the job's result (the edited reply, or the message posted in the
    /// channel once the token had expired): the only message whose buttons act on the job.
    pub message_id: Option<DiscordId>,
}

/// The job a result button belongs to, if it still exists.
pub async fn for_press(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<PressedJob>, sqlx::Error> {
    sqlx::query_as!(
        PressedJob,
        r#"SELECT guild_id AS "guild_id: DiscordId", user_id AS "user_id: DiscordId", status AS "status: JobStatus",
             error_text, cardinality(result_urls) AS "images!", prompt_sent, args AS "spec: Json<JobSpec>",
             message_id AS "message_id: DiscordId"
         FROM jobs WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// What a press on `Cancel` or `Delete` needs to know about the job.
#[derive(Debug, Clone)]
pub struct ControlledJob {
    pub guild_id: DiscordId,
    pub channel_id: DiscordId,
    /// The member who started it (and may cancel or delete it).
    pub user_id: DiscordId,
    pub status: JobStatus,
    /// The message that shows the job, once the worker edited or posted it.
    pub message_id: Option<DiscordId>,
    pub delivered: bool,
    pub deleted: bool,
}

/// The job a `Cancel` or `Delete` button belongs to, if it still exists.
pub async fn for_control(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ControlledJob>, sqlx::Error> {
    sqlx::query_as!(
        ControlledJob,
        r#"SELECT guild_id AS "guild_id: DiscordId", channel_id AS "channel_id: DiscordId",
             user_id AS "user_id: DiscordId", status AS "status: JobStatus", message_id AS "message_id: DiscordId",
             delivered_at IS NOT NULL AS "delivered!", deleted_at IS NOT NULL AS "deleted!"
         FROM jobs WHERE id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// A job cancelled by [`cancel`]: what its reply shows.
pub struct Cancelled {
    pub spec: Json<JobSpec>,
    pub notes: Vec<String>,
}

/// Cancels a job that was not sent yet, for member `by` pressing on `message_id` (its reply, which
/// `/history` then links to): one statement that only a `queued` job
/// passes, racing the worker's fenced save of `submitting` (see [`save`]) on the same row, so
/// exactly one of them wins. The job is refunded (`counted` cleared; nothing was paid, so spend is
/// unchanged), final and delivered (its reply is the press's own answer), and its lease is taken
/// away, so a worker holding it in memory lets it go. `None`: the job is no longer queued.
///
/// The one change of state made outside `jobs::lifecycle`: it must be decided by the database
/// against the worker's claim, not by a copy of the job in memory.
pub async fn cancel(
    db: impl PgExecutor<'_>,
    id: Uuid,
    by: DiscordId,
    message_id: Option<DiscordId>,
    reason: &str,
) -> Result<Option<Cancelled>, sqlx::Error> {
    sqlx::query_as!(
        Cancelled,
        r#"UPDATE jobs SET status = $3, counted = false, cancelled_by = $2, error_text = $4, finished_at = now(),
             delivered_at = now(), delivery = $5, message_id = COALESCE(message_id, $7), interaction_token = NULL,
             next_run_at = now(),
             lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL
         WHERE id = $1 AND status = $6
         RETURNING args AS "spec: Json<JobSpec>", notes"#,
        id,
        by as DiscordId,
        JobStatus::Cancelled as JobStatus,
        reason,
        Delivery::Edit as Delivery,
        JobStatus::Queued as JobStatus,
        message_id as Option<DiscordId>,
    )
    .fetch_optional(db)
    .await
}

/// Who cancelled the job, if it was cancelled: a worker that edited a waiting job's reply checks
/// it afterwards, so its edit never stays over the cancel's.
pub async fn cancelled_by(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<DiscordId>, sqlx::Error> {
    let by = sqlx::query_scalar!(
        r#"SELECT cancelled_by AS "cancelled_by: DiscordId" FROM jobs WHERE id = $1 AND status = $2"#,
        id,
        JobStatus::Cancelled as JobStatus,
    )
    .fetch_optional(db)
    .await?;
    Ok(by.flatten())
}

/// Records that a job's result message was deleted by member `by`. False when it already was.
pub async fn mark_deleted(db: impl PgExecutor<'_>, id: Uuid, by: DiscordId) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "UPDATE jobs SET deleted_at = now(), deleted_by = $2 WHERE id = $1 AND deleted_at IS NULL",
        id,
        by as DiscordId
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// One line of `/history`.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub guild_id: DiscordId,
    pub channel_id: DiscordId,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub prompt_sent: String,
    pub message_id: Option<DiscordId>,
    pub delivery: Option<Delivery>,
    pub error_text: Option<String>,
    /// Its result message was deleted (`Delete`): the line stays, without a link.
    pub deleted: bool,
    /// The button that started this job (`V2`, `Reroll`, `Remix`), if one did.
    pub origin: Option<JobOrigin>,
    /// The message of the result whose button started it, if that result was delivered.
    pub parent_channel_id: Option<DiscordId>,
    pub parent_message_id: Option<DiscordId>,
}

/// A user's most recent jobs in a guild, newest first.
pub async fn recent_for_user(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: DiscordId,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as!(
        HistoryEntry,
        r#"SELECT j.guild_id AS "guild_id: DiscordId", j.channel_id AS "channel_id: DiscordId",
             j.status AS "status: JobStatus", j.created_at, j.prompt_sent, j.message_id AS "message_id: DiscordId",
             j.delivery AS "delivery: Delivery", j.error_text, j.deleted_at IS NOT NULL AS "deleted!",
             j.origin AS "origin: JobOrigin", p.channel_id AS "parent_channel_id?: DiscordId",
             CASE WHEN p.deleted_at IS NULL THEN p.message_id END AS "parent_message_id?: DiscordId"
         FROM jobs j LEFT JOIN jobs p ON p.id = j.parent_job_id
         WHERE j.guild_id = $1 AND j.user_id = $2 ORDER BY j.created_at DESC LIMIT $3"#,
        guild_id as DiscordId,
        user_id as DiscordId,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Keeps a job's result images (a delivery that Discord did not take yet, or never will), and
/// records that they are kept, in one transaction.
pub async fn save_images(
    db: &sqlx::PgPool,
    job_id: Uuid,
    images: &[(String, bytes::Bytes)],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!("UPDATE jobs SET images_kept = true WHERE id = $1", job_id).execute(&mut *tx).await?;
    for (position, (filename, bytes)) in (0i32..).zip(images) {
        sqlx::query!(
            "INSERT INTO job_images (job_id, position, filename, bytes) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job_id, position) DO NOTHING",
            job_id,
            position,
            filename,
            bytes.as_ref(),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The kept result images of a job, in order: `(filename, bytes)`.
pub async fn kept_images(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT filename, bytes FROM job_images WHERE job_id = $1 ORDER BY position", job_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.filename, r.bytes)).collect())
}

/// Drops the kept images of a job that was delivered after all.
pub async fn forget_images(db: impl PgExecutor<'_>, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM job_images WHERE job_id = $1", job_id).execute(db).await?;
    Ok(())
}

/// Kept images of a user's undelivered jobs in a guild, newest job first, at most `limit`.
pub async fn undelivered_images(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: DiscordId,
    limit: i64,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT i.filename, i.bytes FROM job_images i JOIN jobs j ON j.id = i.job_id \
         WHERE j.guild_id = $1 AND j.user_id = $2 AND j.delivery = 'undelivered' \
         ORDER BY j.created_at DESC, i.position LIMIT $3",
        guild_id as DiscordId,
        user_id as DiscordId,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.filename, r.bytes)).collect())
}

/// Makes a job at the provider due for a query now. False when the job is no longer waiting on
/// the provider (a replayed or late callback).
pub async fn poll_now(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "UPDATE jobs SET next_run_at = now() WHERE id = $1 AND status = ANY($2) AND next_run_at > now()",
        id,
        &JobStatus::AT_PROVIDER as &[JobStatus],
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// One recent job, for learning how long jobs take: how long it took, or, while it is still
/// running at the provider, how long it has run so far (it takes at least that).
#[derive(Debug, Clone, PartialEq)]
pub struct DurationSample {
    pub performance: String,
    pub seconds: f64,
    pub finished: bool,
}

/// What recent jobs say about how long jobs take at the provider: the `limit` latest successful
/// ones (finished, with how long they took), and the `limit` oldest of those still running there
/// (with how long they have run so far, which they take at least).
///
/// The running ones matter in a burst: the first jobs to finish are its short ones, and a model
/// read from finishes alone would close its dense window before the burst's long jobs finish.
pub async fn recent_durations(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<DurationSample>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"(SELECT COALESCE(args->>'performance', 'balance') AS "performance!",
                EXTRACT(EPOCH FROM finished_at - submitted_at)::float8 AS "seconds!", true AS "finished!"
            FROM jobs WHERE status = $2 AND submitted_at IS NOT NULL AND finished_at > now() - interval '1 day'
            ORDER BY finished_at DESC LIMIT $1)
         UNION ALL
         (SELECT COALESCE(args->>'performance', 'balance'), EXTRACT(EPOCH FROM now() - submitted_at)::float8, false
            FROM jobs WHERE delivered_at IS NULL AND finished_at IS NULL AND submitted_at IS NOT NULL
              AND status = ANY($3)
            ORDER BY submitted_at LIMIT $1)"#,
        limit,
        JobStatus::Succeeded as JobStatus,
        &JobStatus::AT_PROVIDER as &[JobStatus],
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DurationSample { performance: r.performance, seconds: r.seconds, finished: r.finished })
        .collect())
}

/// How many jobs not yet delivered are in each state, for `/metrics`. Only undelivered jobs are
/// read (the partial index `jobs_due` covers them), never the history of delivered ones.
pub async fn count_undelivered_by_status(db: impl PgExecutor<'_>) -> Result<Vec<(JobStatus, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: JobStatus", count(*) AS "count!" FROM jobs WHERE delivered_at IS NULL
         GROUP BY status"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_button_that_starts_a_job_names_its_origin() {
        use crate::actions::Action;
        let starts = (1..=4).map(Action::Vary).chain([Action::Reroll, Action::Remix]);
        for action in starts {
            let origin = JobOrigin::of_label(&action.label()).unwrap();
            assert_eq!(origin.to_string(), action.label());
        }
        assert_eq!(JobOrigin::of_label(&Action::Upscale(1).label()), None, "U makes no job");
    }

    #[test]
    fn a_new_job_never_prints_its_credentials() {
        let job = NewJob {
            id: Uuid::nil(),
            interaction_id: DiscordId::new(1),
            application_id: DiscordId::new(2),
            guild_id: DiscordId::new(3),
            channel_id: DiscordId::new(4),
            user_id: DiscordId::new(5),
            interaction_token: "aW50ZXJhY3Rpb24tdG9rZW4".into(),
            token_expires_at: Utc::now(),
            attachment_size_limit: 10 << 20,
            prompt_raw: "a cat".into(),
            spec: serde_json::from_value(serde_json::json!({
                "prompt": "a cat", "aspect_ratio": "1:1", "pictures": {"images": ["https://cdn/a.png"]}
            }))
            .unwrap(),
            notes: vec![],
            origin: None,
        };
        let printed = format!("{job:?} {job:#?}");
        assert!(!printed.contains("aW50ZXJhY3Rpb24tdG9rZW4"), "{printed}");
        assert!(printed.contains("guild_id: 3"), "{printed}");
    }
}
