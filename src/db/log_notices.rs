//! `log_notices`: the notices that go out once (see [`crate::notices`]), so that of several
//! processes that notice the same event exactly one posts it.

use std::time::Duration;

use sqlx::PgExecutor;

use super::DiscordId;

/// Claims `notice` of `period` for the guild: true when the caller is the one to post it. With
/// `repeat_after`, a notice claimed longer ago than that may be claimed (and posted) again.
pub async fn claim(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    notice: &str,
    period: &str,
    repeat_after: Option<Duration>,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query_scalar!(
        r#"INSERT INTO log_notices (guild_id, notice, period) VALUES ($1, $2, $3)
           ON CONFLICT (guild_id, notice, period) DO UPDATE SET sent_at = now()
             WHERE $4::float8 IS NOT NULL AND log_notices.sent_at <= now() - make_interval(secs => $4::float8)
           RETURNING true AS "claimed!""#,
        guild_id as DiscordId,
        notice,
        period,
        repeat_after.map(|d| d.as_secs_f64()),
    )
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}
