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

/// The guild's limits, creating its row with the defaults if it is new.
pub async fn limits(db: &sqlx::PgPool, guild_id: i64, defaults: &Limits) -> Result<Limits, sqlx::Error> {
    let mut tx = db.begin().await?;
    let limits = lock_limits(&mut tx, guild_id, defaults).await?;
    tx.commit().await?;
    Ok(limits)
}

/// One limit as changed by an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub name: &'static str,
    /// `None` = unlimited.
    pub value: Option<i32>,
}

/// Applies `changes` to the guild's limits and records each one (who, what, old and new value).
/// Returns the limits after the change.
pub async fn set_limits(
    db: &sqlx::PgPool,
    guild_id: i64,
    defaults: &Limits,
    changes: &[Change],
    changed_by: i64,
) -> Result<Limits, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut limits = lock_limits(&mut tx, guild_id, defaults).await?;
    for change in changes {
        let slot = match change.name {
            "daily" => &mut limits.daily,
            "monthly" => &mut limits.monthly,
            "per_user_daily" => &mut limits.per_user_daily,
            _ => &mut limits.max_concurrent,
        };
        let old = std::mem::replace(slot, change.value);
        sqlx::query(
            "INSERT INTO quota_changes (guild_id, changed_by, limit_name, old_value, new_value) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(guild_id)
        .bind(changed_by)
        .bind(change.name)
        .bind(old)
        .bind(change.value)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE guild_quotas SET daily_limit = $2, monthly_limit = $3, per_user_daily_limit = $4, max_concurrent = $5, \
         updated_by = $6, updated_at = now() WHERE guild_id = $1",
    )
    .bind(guild_id)
    .bind(limits.daily)
    .bind(limits.monthly)
    .bind(limits.per_user_daily)
    .bind(limits.max_concurrent)
    .bind(changed_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(limits)
}

/// Who last changed the guild's limits, and when.
pub async fn last_change(
    db: impl PgExecutor<'_>,
    guild_id: i64,
) -> Result<Option<(i64, chrono::DateTime<chrono::Utc>)>, sqlx::Error> {
    let row: Option<(Option<i64>, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT updated_by, updated_at FROM guild_quotas WHERE guild_id = $1")
            .bind(guild_id)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(by, at)| Some((by?, at?))))
}

/// Guild-wide figures for `/quota show`.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct GuildUsage {
    pub day: i64,
    pub month: i64,
    pub in_flight: i64,
    /// Jobs today of the member who made the most.
    pub busiest_member_day: i64,
}

pub async fn guild_usage(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<GuildUsage, sqlx::Error> {
    sqlx::query_as(
        "WITH counted AS ( \
             SELECT user_id, created_at, status FROM jobs \
             WHERE guild_id = $1 AND counted \
               AND (created_at >= $3 OR status IN ('queued', 'submitting', 'submitted', 'running'))) \
         SELECT \
           (SELECT count(*) FROM counted WHERE created_at >= $2) AS day, \
           (SELECT count(*) FROM counted WHERE created_at >= $3) AS month, \
           (SELECT count(*) FROM counted WHERE status IN ('queued', 'submitting', 'submitted', 'running')) AS in_flight, \
           COALESCE((SELECT count(*) FROM counted WHERE created_at >= $2 GROUP BY user_id ORDER BY 1 DESC LIMIT 1), 0) \
             AS busiest_member_day",
    )
    .bind(guild_id)
    .bind(crate::quota::day_start(now))
    .bind(crate::quota::month_start(now))
    .fetch_one(db)
    .await
}

/// This month's activity for `/usage`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct MonthReport {
    /// Jobs that count against the quota (accepted and not refunded).
    pub counted: i64,
    /// Jobs that failed and were refunded.
    pub refunded: i64,
    /// Sum of the amounts the provider reported, as text ("1.24").
    pub spend: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberUsage {
    pub user_id: i64,
    pub jobs: i64,
    pub spend: String,
}

pub async fn month_report(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MonthReport, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE counted) AS counted, \
                count(*) FILTER (WHERE NOT counted) AS refunded, \
                COALESCE(sum(amount), 0)::text AS spend \
         FROM jobs WHERE guild_id = $1 AND created_at >= $2",
    )
    .bind(guild_id)
    .bind(crate::quota::month_start(now))
    .fetch_one(db)
    .await
}

pub async fn top_members(
    db: impl PgExecutor<'_>,
    guild_id: i64,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<MemberUsage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, count(*) FILTER (WHERE counted) AS jobs, COALESCE(sum(amount), 0)::text AS spend \
         FROM jobs WHERE guild_id = $1 AND created_at >= $2 \
         GROUP BY user_id ORDER BY jobs DESC, sum(amount) DESC NULLS LAST, user_id LIMIT $3",
    )
    .bind(guild_id)
    .bind(crate::quota::month_start(now))
    .bind(limit)
    .fetch_all(db)
    .await
}
