//! The `guild_role_limits` table: per-member limits for members holding a role (role tiers).

use sqlx::PgExecutor;

use super::DiscordId;
use crate::quota::LimitKind;

/// The most generous per-member limits among `roles` in the guild (`None`: no role sets it).
pub struct MemberTier {
    pub per_user_daily: Option<i32>,
    pub max_concurrent: Option<i32>,
}

pub async fn for_member(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    roles: &[DiscordId],
) -> Result<MemberTier, sqlx::Error> {
    sqlx::query_as!(
        MemberTier,
        r#"SELECT max(per_user_daily_limit) AS per_user_daily, max(max_concurrent) AS max_concurrent
         FROM guild_role_limits WHERE guild_id = $1 AND role_id = ANY($2)"#,
        guild_id as DiscordId,
        roles as &[DiscordId],
    )
    .fetch_one(db)
    .await
}

/// The per-member limits a role gives (`None`: the role does not set that limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleTier {
    pub role_id: DiscordId,
    pub per_user_daily: Option<i32>,
    pub max_concurrent: Option<i32>,
}

/// Sets (or with `clear`, removes) a role's per-member limits, auditing each change.
pub async fn set_role_tier(
    db: &sqlx::PgPool,
    guild_id: DiscordId,
    tier: RoleTier,
    clear: bool,
    changed_by: DiscordId,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let old = sqlx::query!(
        "SELECT per_user_daily_limit, max_concurrent FROM guild_role_limits WHERE guild_id = $1 AND role_id = $2 \
         FOR UPDATE",
        guild_id as DiscordId,
        tier.role_id as DiscordId,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (old_daily, old_concurrent) = old.map_or((None, None), |o| (o.per_user_daily_limit, o.max_concurrent));
    let (new_daily, new_concurrent) =
        if clear { (None, None) } else { (tier.per_user_daily.or(old_daily), tier.max_concurrent.or(old_concurrent)) };
    for (kind, old, new) in
        [(LimitKind::PerUserDaily, old_daily, new_daily), (LimitKind::MaxConcurrent, old_concurrent, new_concurrent)]
    {
        if old != new {
            sqlx::query!(
                "INSERT INTO quota_changes (guild_id, changed_by, limit_name, old_value, new_value, role_id) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                guild_id as DiscordId,
                changed_by as DiscordId,
                kind as LimitKind,
                old,
                new,
                tier.role_id as DiscordId,
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    if new_daily.is_none() && new_concurrent.is_none() {
        sqlx::query!(
            "DELETE FROM guild_role_limits WHERE guild_id = $1 AND role_id = $2",
            guild_id as DiscordId,
            tier.role_id as DiscordId
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!(
            "INSERT INTO guild_role_limits (guild_id, role_id, per_user_daily_limit, max_concurrent, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, role_id) DO UPDATE SET \
             per_user_daily_limit = $3, max_concurrent = $4, updated_by = $5, updated_at = now()",
            guild_id as DiscordId,
            tier.role_id as DiscordId,
            new_daily,
            new_concurrent,
            changed_by as DiscordId,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The guild's role tiers, most generous first.
pub async fn role_tiers(db: impl PgExecutor<'_>, guild_id: DiscordId) -> Result<Vec<RoleTier>, sqlx::Error> {
    sqlx::query_as!(
        RoleTier,
        r#"SELECT role_id AS "role_id: DiscordId", per_user_daily_limit AS per_user_daily, max_concurrent
         FROM guild_role_limits WHERE guild_id = $1 ORDER BY per_user_daily_limit DESC NULLS LAST, role_id"#,
        guild_id as DiscordId,
    )
    .fetch_all(db)
    .await
}
