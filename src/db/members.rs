//! The `guild_members` table: one member of a guild as its admins handle them with
//! `/quota member` (blocked, daily count reset), and the audit of it, `member_changes`. The
//! reservation reads the same row in its own statement ([`super::quotas::reserve_and_insert`]).

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::{DiscordId, jobs::JobStatus};
use crate::quota::Limits;

/// What an admin did to a member; stored by name in the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "member_action", rename_all = "snake_case")]
pub enum MemberAction {
    Block,
    Unblock,
    Reset,
}

/// A member as the guild's admins set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberState {
    /// Who blocked them, and when; `None`: not blocked.
    pub blocked: Option<(DiscordId, DateTime<Utc>)>,
    /// When an admin last reset their daily count.
    pub day_reset_at: Option<DateTime<Utc>>,
}

pub async fn state(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: DiscordId,
) -> Result<MemberState, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT blocked_by AS "blocked_by: DiscordId", blocked_at, day_reset_at FROM guild_members
           WHERE guild_id = $1 AND user_id = $2"#,
        guild_id as DiscordId,
        user_id as DiscordId,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map_or_else(MemberState::default, |r| MemberState {
        blocked: r.blocked_by.zip(r.blocked_at),
        day_reset_at: r.day_reset_at,
    }))
}

/// What `/quota member` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberChange {
    pub user_id: DiscordId,
    /// `Some(true)`: block; `Some(false)`: unblock.
    pub block: Option<bool>,
    pub reset: bool,
}

/// Applies `change` and records each action that changes something (blocking a blocked member
/// does not; a reset always does). It holds the guild's quota lock, like every reservation, so a
/// job is either reserved before the change or sees it. Returns the actions taken and the
/// member's state afterwards.
pub async fn apply(
    db: &PgPool,
    guild_id: DiscordId,
    defaults: &Limits,
    change: MemberChange,
    changed_by: DiscordId,
) -> Result<(Vec<MemberAction>, MemberState), sqlx::Error> {
    let mut tx = db.begin().await?;
    super::quotas::lock_limits(&mut tx, guild_id, defaults).await?;
    let user_id = change.user_id;
    let before = state(&mut *tx, guild_id, user_id).await?;
    let mut actions = Vec::new();
    match (change.block, before.blocked.is_some()) {
        (Some(true), false) => actions.push(MemberAction::Block),
        (Some(false), true) => actions.push(MemberAction::Unblock),
        _ => {}
    }
    if change.reset {
        actions.push(MemberAction::Reset);
    }
    for action in &actions {
        // The reset is stamped with the clock after the lock is held, so every job reserved
        // before it stops counting against the member.
        match action {
            MemberAction::Block => sqlx::query!(
                "INSERT INTO guild_members (guild_id, user_id, blocked_by, blocked_at) VALUES ($1, $2, $3, now()) \
                 ON CONFLICT (guild_id, user_id) DO UPDATE SET blocked_by = $3, blocked_at = now()",
                guild_id as DiscordId,
                user_id as DiscordId,
                changed_by as DiscordId,
            ),
            MemberAction::Unblock => sqlx::query!(
                "UPDATE guild_members SET blocked_by = NULL, blocked_at = NULL WHERE guild_id = $1 AND user_id = $2",
                guild_id as DiscordId,
                user_id as DiscordId,
            ),
            MemberAction::Reset => sqlx::query!(
                "INSERT INTO guild_members (guild_id, user_id, day_reset_at) VALUES ($1, $2, clock_timestamp()) \
                 ON CONFLICT (guild_id, user_id) DO UPDATE SET day_reset_at = clock_timestamp()",
                guild_id as DiscordId,
                user_id as DiscordId,
            ),
        }
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO member_changes (guild_id, user_id, changed_by, action) VALUES ($1, $2, $3, $4)",
            guild_id as DiscordId,
            user_id as DiscordId,
            changed_by as DiscordId,
            *action as MemberAction,
        )
        .execute(&mut *tx)
        .await?;
    }
    let after = state(&mut *tx, guild_id, user_id).await?;
    tx.commit().await?;
    Ok((actions, after))
}

/// One member's counted jobs, for `/quota show member:` and `/me`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberUsage {
    /// Today's jobs that count against the member (since their reset, if it was today).
    pub day: i64,
    /// Every counted job of today, reset or not (they still count for the server).
    pub day_all: i64,
    pub month: i64,
    pub in_flight: i64,
    /// Of those in flight, the jobs still waiting their turn ([`JobStatus::WAITING`]).
    pub waiting: i64,
}

/// The member's counted jobs: since `counts_from` (the start of their day, or their reset if
/// later), since `day_start`, since `month_start`, and those in flight.
pub async fn usage(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: DiscordId,
    counts_from: DateTime<Utc>,
    day_start: DateTime<Utc>,
    month_start: DateTime<Utc>,
) -> Result<MemberUsage, sqlx::Error> {
    sqlx::query_as!(
        MemberUsage,
        r#"SELECT count(*) FILTER (WHERE created_at >= $3) AS "day!",
                  count(*) FILTER (WHERE created_at >= $4) AS "day_all!",
                  count(*) FILTER (WHERE created_at >= $5) AS "month!",
                  count(*) FILTER (WHERE status = ANY($6)) AS "in_flight!",
                  count(*) FILTER (WHERE status = ANY($7)) AS "waiting!"
           FROM jobs
           WHERE guild_id = $1 AND user_id = $2 AND counted AND (created_at >= $5 OR status = ANY($6))"#,
        guild_id as DiscordId,
        user_id as DiscordId,
        counts_from,
        day_start,
        month_start,
        &JobStatus::IN_FLIGHT as &[JobStatus],
        &JobStatus::WAITING as &[JobStatus],
    )
    .fetch_one(db)
    .await
}
