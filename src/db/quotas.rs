//! The `guild_quotas` table and the atomic check-and-reserve of a job.

use sqlx::{PgConnection, PgExecutor};

use crate::quota::{Limits, Refusal, Usage};

use super::jobs::{self, NewJob};

/// The outcome of trying to store a new job.
#[derive(Debug)]
pub enum Reservation {
    Accepted,
    Refused(Refusal),
    /// Another process already took this interaction.
    Duplicate,
}

/// Checks the guild's limits and stores the job, as one step: the guild's quota row is locked
/// for the rest of the transaction, so concurrent reservations in a guild (from any process) are
/// counted one after another and can never exceed a limit. Call inside a transaction.
pub async fn reserve_and_insert(
    tx: &mut PgConnection,
    job: &NewJob,
    defaults: &Limits,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Reservation, sqlx::Error> {
    let limits = lock_limits(&mut *tx, job.guild_id, defaults).await?;
    if jobs::exists_for_interaction(&mut *tx, job.interaction_id).await? {
        return Ok(Reservation::Duplicate);
    }
    let usage = usage(&mut *tx, job.guild_id, job.user_id, now).await?;
    if let Some(refusal) = limits.check(&usage, now) {
        return Ok(Reservation::Refused(refusal));
    }
    jobs::insert(&mut *tx, job).await?;
    Ok(Reservation::Accepted)
}

/// Creates the guild's row with the defaults if it is new, then locks it.
async fn lock_limits(tx: &mut PgConnection, guild_id: i64, defaults: &Limits) -> Result<Limits, sqlx::Error> {
    sqlx::query(
        "INSERT INTO guild_quotas (guild_id, daily_limit, monthly_limit, per_user_daily_limit, max_concurrent) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id) DO NOTHING",
    )
    .bind(guild_id)
    .bind(defaults.daily)
    .bind(defaults.monthly)
    .bind(defaults.per_user_daily)
    .bind(defaults.max_concurrent)
    .execute(&mut *tx)
    .await?;
    let row: (Option<i32>, Option<i32>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT daily_limit, monthly_limit, per_user_daily_limit, max_concurrent FROM guild_quotas \
         WHERE guild_id = $1 FOR UPDATE",
    )
    .bind(guild_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Limits { daily: row.0, monthly: row.1, per_user_daily: row.2, max_concurrent: row.3 })
}

/// Counted jobs in each window.
pub async fn usage(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    user_id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Usage, sqlx::Error> {
    sqlx::query_as(
        "SELECT \
           count(*) FILTER (WHERE created_at >= $3) AS day, \
           count(*) FILTER (WHERE created_at >= $4) AS month, \
           count(*) FILTER (WHERE created_at >= $3 AND user_id = $2) AS user_day, \
           count(*) FILTER (WHERE user_id = $2 AND status IN ('queued', 'submitting', 'submitted', 'running')) \
             AS user_in_flight \
         FROM jobs \
         WHERE guild_id = $1 AND counted \
           AND (created_at >= $4 OR status IN ('queued', 'submitting', 'submitted', 'running'))",
    )
    .bind(guild_id)
    .bind(user_id)
    .bind(crate::quota::day_start(now))
    .bind(crate::quota::month_start(now))
    .fetch_one(db)
    .await
}
