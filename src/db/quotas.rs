//! The `guild_quotas` table and the atomic check-and-reserve of a job.

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};

use crate::quota::{LimitKind, Limits, Policy, Refusal, Usage};

use super::{
    DiscordId,
    jobs::{self, JobStatus, NewJob},
    out_of_range,
};

/// The outcome of trying to store a new job.
#[derive(Debug)]
pub enum Reservation {
    /// Stored and counted. `budgeted`: the guild has a monthly budget, whose thresholds the new
    /// job may have crossed.
    Accepted {
        budgeted: bool,
    },
    Refused(Refusal),
    /// The guild's monthly budget (US dollars, given) would be passed.
    BudgetSpent {
        budget: Decimal,
    },
    /// The operator's `DAILY_SPEND_LIMIT` (US dollars, given) would be passed.
    SpendLimit {
        limit: Decimal,
    },
    /// An admin blocked the member in this guild (`/quota member block:True`).
    MemberBlocked,
    /// Another process already took this interaction.
    Duplicate,
}

/// Checks the guild's limits (and the operator's, and whether an admin blocked the member) and
/// stores the job, as one step: the guild's
/// quota row is locked for the rest of the transaction, so concurrent reservations in a guild
/// (from any process) are counted one after another and can never exceed a limit. With a daily
/// spend limit, one operator-wide row is locked as well, so spend is checked the same way across
/// guilds. Call inside a transaction.
pub async fn reserve_and_insert(
    tx: &mut PgConnection,
    job: &NewJob,
    member_roles: &[DiscordId],
    policy: &Policy,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Reservation, sqlx::Error> {
    let (mut limits, budget) = lock_quota(&mut *tx, job.guild_id, &policy.defaults).await?;
    if !member_roles.is_empty() {
        let tier = super::role_limits::for_member(&mut *tx, job.guild_id, member_roles).await?;
        // A role's per-member limits replace the guild's; the most generous role wins.
        limits.per_user_daily = tier.per_user_daily.or(limits.per_user_daily);
        limits.max_concurrent = tier.max_concurrent.or(limits.max_concurrent);
    }
    let limits = limits.within(&policy.operator.ceilings);
    // Whether another process took this interaction, and the member's block and reset, are read
    // in the same statement as the counts, under the guild's lock that every reservation and
    // `/quota member` take: no change can slip between check and insert.
    let Counted { usage, member_blocked, taken } =
        counted(&mut *tx, job.guild_id, job.user_id, job.interaction_id, now).await?;
    if taken {
        return Ok(Reservation::Duplicate);
    }
    if member_blocked {
        return Ok(Reservation::MemberBlocked);
    }
    let mut waits_for_slot = None;
    if let Some(refusal) = limits.check(&usage, now) {
        // Past max_concurrent, the guild may let the job wait its turn (`max_queued`).
        let may_wait = refusal.kind == LimitKind::MaxConcurrent
            && refusal.limit > 0
            && usage.user_waiting < i64::from(max_queued(&mut *tx, job.guild_id).await?);
        if !may_wait {
            return Ok(Reservation::Refused(refusal));
        }
        waits_for_slot = Some(refusal.limit);
    }
    let expected = policy.operator.expected_job_cost;
    if let Some(budget) = budget
        && spend(&mut *tx, SpendScope::Guild(job.guild_id), crate::quota::month_start(now), expected, Some(budget))
            .await?
            .would_pass
    {
        return Ok(Reservation::BudgetSpent { budget });
    }
    if let Some(limit) = policy.operator.daily_spend_limit {
        sqlx::query!("SELECT id FROM operator_spend_lock WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await?;
        if spend(&mut *tx, SpendScope::Everywhere, crate::quota::day_start(now), expected, Some(limit))
            .await?
            .would_pass
        {
            return Ok(Reservation::SpendLimit { limit });
        }
    }
    jobs::insert(&mut *tx, job).await?;
    if let Some(limit) = waits_for_slot {
        sqlx::query!("UPDATE jobs SET slot_limit = $2 WHERE id = $1", job.id, limit).execute(&mut *tx).await?;
    }
    Ok(Reservation::Accepted { budgeted: budget.is_some() })
}

/// How many jobs past `max_concurrent` each member may have waiting in the guild.
pub async fn max_queued(db: impl PgExecutor<'_>, guild_id: DiscordId) -> Result<i32, sqlx::Error> {
    let queued = sqlx::query_scalar!("SELECT max_queued FROM guild_quotas WHERE guild_id = $1", guild_id as DiscordId)
        .fetch_optional(db)
        .await?;
    Ok(queued.unwrap_or(0))
}

/// What [`admit`] decided about a job waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It may be sent now.
    Admitted,
    /// It waits on; its place among the guild's waiting jobs.
    Waiting { place: i64 },
}

/// Lets a job that waits for a slot (`slot_limit`) go when fewer than `slot_limit` of its member's
/// jobs are sent or admitted and no older job of theirs waits. Under the guild's quota lock, like
/// every reservation: two processes can never admit two jobs into one slot.
pub async fn admit(db: &sqlx::PgPool, job_id: uuid::Uuid) -> Result<Admission, sqlx::Error> {
    let mut tx = db.begin().await?;
    let job = sqlx::query!("SELECT guild_id, user_id, created_at, slot_limit FROM jobs WHERE id = $1", job_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query!("SELECT guild_id FROM guild_quotas WHERE guild_id = $1 FOR UPDATE", job.guild_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(limit) = job.slot_limit else {
        tx.commit().await?;
        return Ok(Admission::Admitted);
    };
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE slot_limit IS NULL) AS "sent!",
                  count(*) FILTER (WHERE slot_limit IS NOT NULL AND (created_at, id) < ($3, $4)) AS "older_waiting!"
           FROM jobs WHERE guild_id = $1 AND user_id = $2 AND counted AND status = ANY($5)"#,
        job.guild_id,
        job.user_id,
        job.created_at,
        job_id,
        &JobStatus::IN_FLIGHT as &[JobStatus],
    )
    .fetch_one(&mut *tx)
    .await?;
    let admission = if row.sent < i64::from(limit) && row.older_waiting == 0 {
        sqlx::query!("UPDATE jobs SET slot_limit = NULL WHERE id = $1", job_id).execute(&mut *tx).await?;
        Admission::Admitted
    } else {
        Admission::Waiting { place: jobs::place(&mut *tx, job_id).await? }
    };
    tx.commit().await?;
    Ok(admission)
}

/// Sets how many jobs past `max_concurrent` each member may have waiting, auditing the change.
pub async fn set_max_queued(
    db: &sqlx::PgPool,
    guild_id: DiscordId,
    defaults: &Limits,
    max_queued: i32,
    changed_by: DiscordId,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock_limits(&mut tx, guild_id, defaults).await?;
    let old = self::max_queued(&mut *tx, guild_id).await?;
    sqlx::query!(
        "INSERT INTO quota_changes (guild_id, changed_by, limit_name, old_value, new_value) \
         VALUES ($1, $2, 'max_queued', $3, $4)",
        guild_id as DiscordId,
        changed_by as DiscordId,
        old,
        max_queued,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE guild_quotas SET max_queued = $2, updated_by = $3, updated_at = now() WHERE guild_id = $1",
        guild_id as DiscordId,
        max_queued,
        changed_by as DiscordId,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Creates the guild's row with the defaults if it is new, then locks it.
pub(super) async fn lock_limits(
    tx: &mut PgConnection,
    guild_id: DiscordId,
    defaults: &Limits,
) -> Result<Limits, sqlx::Error> {
    Ok(lock_quota(tx, guild_id, defaults).await?.0)
}

/// Creates the guild's row with the defaults if it is new, then locks it; returns its limits and
/// its monthly budget (US dollars, `None`: no budget).
async fn lock_quota(
    tx: &mut PgConnection,
    guild_id: DiscordId,
    defaults: &Limits,
) -> Result<(Limits, Option<Decimal>), sqlx::Error> {
    let lock = || {
        sqlx::query!(
            "SELECT daily_limit, monthly_limit, per_user_daily_limit, max_concurrent, monthly_budget AS budget \
             FROM guild_quotas WHERE guild_id = $1 FOR UPDATE",
            guild_id as DiscordId,
        )
    };
    // The row exists but for a guild's first job: one statement then.
    let row = match lock().fetch_optional(&mut *tx).await? {
        Some(row) => row,
        None => {
            sqlx::query!(
                "INSERT INTO guild_quotas (guild_id, daily_limit, monthly_limit, per_user_daily_limit, max_concurrent) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id) DO NOTHING",
                guild_id as DiscordId,
                defaults.daily,
                defaults.monthly,
                defaults.per_user_daily,
                defaults.max_concurrent,
            )
            .execute(&mut *tx)
            .await?;
            lock().fetch_one(&mut *tx).await?
        }
    };
    let limits = Limits {
        daily: row.daily_limit,
        monthly: row.monthly_limit,
        per_user_daily: row.per_user_daily_limit,
        max_concurrent: row.max_concurrent,
    };
    Ok((limits, row.budget))
}

/// Whose spend is added up.
#[derive(Debug, Clone, Copy)]
pub enum SpendScope {
    Guild(DiscordId),
    /// One member's jobs in a guild (`/me`).
    Member {
        guild_id: DiscordId,
        user_id: DiscordId,
    },
    /// Every guild: the operator's daily spend limit.
    Everywhere,
}

/// Money spent in a window: what the limits check and what `/usage` and `/quota show` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// Every amount the provider reported for the window's jobs, refunded or not (US dollars).
    pub reported: Decimal,
    /// Jobs reserved or sent whose amount is not known yet (queued, in flight, or `uncertain`):
    /// each is counted at the expected cost.
    pub unpriced: i64,
    /// The expected cost of one job: the last amount the provider reported, else the configured
    /// `EXPECTED_JOB_COST`.
    pub expected_each: Decimal,
    /// `reported + unpriced × expected_each`.
    pub total: Decimal,
    /// With a limit: whether `total` plus one more job at the expected cost would pass it.
    pub would_pass: bool,
}

/// The one figure of money spent since `since` (in a guild, or everywhere): every amount the
/// provider reported, refunded or not (a failed job's money is still spent), plus the expected
/// cost of every job that was reserved or sent and has no reported amount yet. Job counts refund
/// failed jobs; this does not. With `limit` (US dollars), also whether one more job would pass it.
pub async fn spend(
    tx: &mut PgConnection,
    scope: SpendScope,
    since: chrono::DateTime<chrono::Utc>,
    expected: Decimal,
    limit: Option<Decimal>,
) -> Result<Spend, sqlx::Error> {
    let (guild, user) = match scope {
        SpendScope::Guild(id) => (Some(id), None),
        SpendScope::Member { guild_id, user_id } => (Some(guild_id), Some(user_id)),
        SpendScope::Everywhere => (None, None),
    };
    sqlx::query_as!(
        Spend,
        r#"WITH expected AS (
             SELECT COALESCE(
               (SELECT amount FROM jobs WHERE amount IS NOT NULL ORDER BY created_at DESC LIMIT 1),
               $3::numeric) AS cost),
           window_jobs AS (
             SELECT COALESCE(sum(amount), 0) AS reported,
                    count(*) FILTER (WHERE amount IS NULL AND (status = ANY($5) OR provider_job_id IS NOT NULL))
                      AS unpriced
             FROM jobs WHERE created_at >= $2 AND ($1::bigint IS NULL OR guild_id = $1)
               AND ($6::bigint IS NULL OR user_id = $6))
           SELECT w.reported AS "reported!", w.unpriced AS "unpriced!", e.cost AS "expected_each!",
                  w.reported + w.unpriced * e.cost AS "total!",
                  COALESCE(w.reported + (w.unpriced + 1) * e.cost > $4::numeric, false) AS "would_pass!"
           FROM window_jobs w, expected e"#,
        guild as Option<DiscordId>,
        since,
        expected,
        limit,
        &JobStatus::UNPRICED_UNLESS_REPORTED as &[JobStatus],
        user as Option<DiscordId>,
    )
    .fetch_one(&mut *tx)
    .await
}

/// The guild's spend this UTC month, as [`spend`] counts it for `monthly_budget`.
pub async fn month_spend(
    db: &sqlx::PgPool,
    guild_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
    expected: Decimal,
) -> Result<Spend, sqlx::Error> {
    scope_month_spend(db, SpendScope::Guild(guild_id), now, expected).await
}

/// The spend of `scope` this UTC month, counted as [`spend`] counts it.
pub async fn scope_month_spend(
    db: &sqlx::PgPool,
    scope: SpendScope,
    now: chrono::DateTime<chrono::Utc>,
    expected: Decimal,
) -> Result<Spend, sqlx::Error> {
    let mut conn = db.acquire().await?;
    spend(&mut conn, scope, crate::quota::month_start(now), expected, None).await
}

/// What a reservation reads under the guild's lock, in one statement.
struct Counted {
    usage: Usage,
    /// An admin blocked the member in this guild.
    member_blocked: bool,
    /// A job for this interaction exists: another process took it.
    taken: bool,
}

/// Counted jobs in each window, the member's daily count honouring an admin's reset of it (the
/// same rule as [`crate::quota::member_day_start`]); whether an admin blocked the member; and
/// whether a job for `interaction_id` exists.
async fn counted(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: DiscordId,
    interaction_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Counted, sqlx::Error> {
    let row = sqlx::query!(
        r#"WITH member AS (
             SELECT blocked_by IS NOT NULL AS blocked, day_reset_at FROM guild_members
             WHERE guild_id = $1 AND user_id = $2)
         SELECT
           count(*) FILTER (WHERE created_at >= $3) AS "day!",
           count(*) FILTER (WHERE created_at >= $4) AS "month!",
           count(*) FILTER (WHERE created_at >= GREATEST($3, (SELECT day_reset_at FROM member)) AND user_id = $2)
             AS "user_day!",
           count(*) FILTER (WHERE user_id = $2 AND status = ANY($5) AND slot_limit IS NULL) AS "user_in_flight!",
           count(*) FILTER (WHERE user_id = $2 AND status = ANY($5) AND slot_limit IS NOT NULL) AS "user_waiting!",
           COALESCE((SELECT blocked FROM member), false) AS "member_blocked!",
           EXISTS (SELECT 1 FROM jobs WHERE interaction_id = $6) AS "taken!"
         FROM jobs
         WHERE guild_id = $1 AND counted AND (created_at >= $4 OR status = ANY($5))"#,
        guild_id as DiscordId,
        user_id as DiscordId,
        crate::quota::day_start(now),
        crate::quota::month_start(now),
        &JobStatus::IN_FLIGHT as &[JobStatus],
        interaction_id as DiscordId,
    )
    .fetch_one(db)
    .await?;
    let usage = Usage {
        day: row.day,
        month: row.month,
        user_day: row.user_day,
        user_in_flight: row.user_in_flight,
        user_waiting: row.user_waiting,
    };
    Ok(Counted { usage, member_blocked: row.member_blocked, taken: row.taken })
}

/// The guild's limits as they stand (the defaults for a guild without a row yet, which its first
/// job will store), for display: one statement and no lock, so `/me` and `/quota show` never
/// wait on a reservation nor hold one up.
pub async fn limits(db: &sqlx::PgPool, guild_id: DiscordId, defaults: &Limits) -> Result<Limits, sqlx::Error> {
    let stored = sqlx::query_as!(
        Limits,
        "SELECT daily_limit AS daily, monthly_limit AS monthly, per_user_daily_limit AS per_user_daily, max_concurrent \
         FROM guild_quotas WHERE guild_id = $1",
        guild_id as DiscordId,
    )
    .fetch_optional(db)
    .await?;
    Ok(stored.unwrap_or(*defaults))
}

/// One limit as changed by an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub kind: LimitKind,
    /// `None` = unlimited.
    pub value: Option<i32>,
}

/// Applies `changes` to the guild's limits and records each one (who, what, old and new value).
/// Returns the limits after the change.
pub async fn set_limits(
    db: &sqlx::PgPool,
    guild_id: DiscordId,
    defaults: &Limits,
    changes: &[Change],
    changed_by: DiscordId,
) -> Result<Limits, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut limits = lock_limits(&mut tx, guild_id, defaults).await?;
    for change in changes {
        let old = std::mem::replace(limits.slot(change.kind), change.value);
        sqlx::query!(
            "INSERT INTO quota_changes (guild_id, changed_by, limit_name, old_value, new_value) VALUES ($1, $2, $3, $4, $5)",
            guild_id as DiscordId,
            changed_by as DiscordId,
            change.kind as LimitKind,
            old,
            change.value,
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE guild_quotas SET daily_limit = $2, monthly_limit = $3, per_user_daily_limit = $4, max_concurrent = $5, \
         updated_by = $6, updated_at = now() WHERE guild_id = $1",
        guild_id as DiscordId,
        limits.daily,
        limits.monthly,
        limits.per_user_daily,
        limits.max_concurrent,
        changed_by as DiscordId,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(limits)
}

/// The guild's monthly budget in US dollars (`None`: no budget).
pub async fn budget(db: &sqlx::PgPool, guild_id: DiscordId, defaults: &Limits) -> Result<Option<Decimal>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let (_, budget) = lock_quota(&mut tx, guild_id, defaults).await?;
    tx.commit().await?;
    Ok(budget)
}

/// Sets (or with `None`, removes) the guild's monthly budget, auditing the change.
pub async fn set_budget(
    db: &sqlx::PgPool,
    guild_id: DiscordId,
    defaults: &Limits,
    budget: Option<Decimal>,
    changed_by: DiscordId,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let (_, old) = lock_quota(&mut tx, guild_id, defaults).await?;
    sqlx::query!(
        "INSERT INTO budget_changes (guild_id, changed_by, old_budget, new_budget) \
         VALUES ($1, $2, $3, $4)",
        guild_id as DiscordId,
        changed_by as DiscordId,
        old,
        budget,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE guild_quotas SET monthly_budget = $2, updated_by = $3, updated_at = now() \
         WHERE guild_id = $1",
        guild_id as DiscordId,
        budget,
        changed_by as DiscordId,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Who last changed the guild's limits, and when.
pub async fn last_change(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
) -> Result<Option<(DiscordId, chrono::DateTime<chrono::Utc>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT updated_by AS "updated_by: DiscordId", updated_at FROM guild_quotas WHERE guild_id = $1"#,
        guild_id as DiscordId
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|r| Some((r.updated_by?, r.updated_at?))))
}

/// Guild-wide figures for `/quota show`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuildUsage {
    pub day: i64,
    pub month: i64,
    pub in_flight: i64,
    /// Jobs today of the member who made the most.
    pub busiest_member_day: i64,
}

pub async fn guild_usage(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<GuildUsage, sqlx::Error> {
    sqlx::query_as!(
        GuildUsage,
        r#"WITH counted AS (
             SELECT user_id, created_at, status FROM jobs
             WHERE guild_id = $1 AND counted AND (created_at >= $3 OR status = ANY($4)))
         SELECT
           (SELECT count(*) FROM counted WHERE created_at >= $2) AS "day!",
           (SELECT count(*) FROM counted WHERE created_at >= $3) AS "month!",
           (SELECT count(*) FROM counted WHERE status = ANY($4)) AS "in_flight!",
           COALESCE((SELECT count(*) FROM counted WHERE created_at >= $2 GROUP BY user_id ORDER BY 1 DESC LIMIT 1), 0)
             AS "busiest_member_day!""#,
        guild_id as DiscordId,
        crate::quota::day_start(now),
        crate::quota::month_start(now),
        &JobStatus::IN_FLIGHT as &[JobStatus],
    )
    .fetch_one(db)
    .await
}

/// This month's activity for `/usage`.
#[derive(Debug, Clone, Default)]
pub struct MonthReport {
    /// Jobs that count against the quota (accepted and not refunded).
    pub counted: i64,
    /// Jobs that failed and were refunded.
    pub refunded: i64,
}

#[derive(Debug, Clone)]
pub struct MemberUsage {
    pub user_id: DiscordId,
    pub jobs: i64,
    pub spend: Decimal,
}

pub async fn month_report(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MonthReport, sqlx::Error> {
    sqlx::query_as!(
        MonthReport,
        r#"SELECT count(*) FILTER (WHERE counted) AS "counted!",
                count(*) FILTER (WHERE NOT counted) AS "refunded!"
         FROM jobs WHERE guild_id = $1 AND created_at >= $2"#,
        guild_id as DiscordId,
        crate::quota::month_start(now),
    )
    .fetch_one(db)
    .await
}

pub async fn top_members(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<MemberUsage>, sqlx::Error> {
    sqlx::query_as!(
        MemberUsage,
        r#"SELECT user_id AS "user_id: DiscordId", count(*) FILTER (WHERE counted) AS "jobs!", COALESCE(sum(amount), 0) AS "spend!"
         FROM jobs WHERE guild_id = $1 AND created_at >= $2
         GROUP BY user_id ORDER BY 2 DESC, sum(amount) DESC NULLS LAST, user_id LIMIT $3"#,
        guild_id as DiscordId,
        crate::quota::month_start(now),
        limit,
    )
    .fetch_all(db)
    .await
}

/// Counted jobs and the reported spend (refunded jobs' included) per UTC day of this month, for
/// the `/usage` chart.
pub async fn daily_usage(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::usage_chart::Day>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT EXTRACT(DAY FROM created_at AT TIME ZONE 'UTC')::int4 AS "day!",
                count(*) FILTER (WHERE counted) AS "jobs!", COALESCE(sum(amount), 0) AS "spend!"
         FROM jobs WHERE guild_id = $1 AND created_at >= $2
         GROUP BY 1 ORDER BY 1"#,
        guild_id as DiscordId,
        crate::quota::month_start(now),
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let (day, jobs) =
                (u32::try_from(r.day).map_err(out_of_range)?, u32::try_from(r.jobs).map_err(out_of_range)?);
            Ok(crate::usage_chart::Day { day, jobs, spend: r.spend })
        })
        .collect()
}

/// The guild's monthly budget in US dollars (`None`: none, or a guild never seen), read without
/// the lock [`budget`] takes: for the log channel's threshold notices, which change nothing.
pub async fn budget_unlocked(db: impl PgExecutor<'_>, guild_id: DiscordId) -> Result<Option<Decimal>, sqlx::Error> {
    let budget =
        sqlx::query_scalar!("SELECT monthly_budget FROM guild_quotas WHERE guild_id = $1", guild_id as DiscordId)
            .fetch_optional(db)
            .await?;
    Ok(budget.flatten())
}
