//! `/quota member` and `/quota show member:`: one member of this server, handled alone. An admin
//! blocks or unblocks them, or resets their count for today; both are checked inside the
//! reservation's own transaction (see [`crate::db::quotas::reserve_and_insert`]).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use poise::serenity_prelude as serenity;
use tracing::info;

use super::{Context, Error, describe, reply_ephemeral, require_admin};
use crate::{
    db::{
        DiscordId,
        members::{self, MemberAction, MemberChange, MemberState, MemberUsage},
        quotas,
        role_limits::{self, RoleTier},
    },
    quota::{self, Limits},
    words::UserError,
};

/// Block or unblock one member in this server, or reset their count for today
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn member(
    ctx: Context<'_>,
    #[description = "The member"] member: serenity::User,
    #[description = "True: they cannot start image jobs here; False: they can again"] block: Option<bool>,
    #[description = "True: their jobs so far today stop counting against their daily limit"] reset: Option<bool>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let reset = reset.unwrap_or(false);
    let mention = format!("<@{}>", member.id);
    if block.is_none() && !reset {
        return Err(UserError::Input(format!(
            "Give `block:True` to stop {mention} from starting image jobs here, `block:False` to let them again, \
             or `reset:True` to clear their count for today."
        ))
        .into());
    }
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let admin = DiscordId::from(ctx.author().id);
    let data = ctx.data();
    let change = MemberChange { user_id: member.id.into(), block, reset };
    let (actions, state) = members::apply(&data.pool, guild_id, &data.policy.defaults, change, admin)
        .await
        .context("changing a member's controls")?;
    info!(
        guild_id = guild_id.get(),
        admin = admin.get(),
        member = member.id.get(),
        ?actions,
        "member controls changed"
    );
    data.notices.member_changed(guild_id.get(), member.id.get(), admin.get(), &actions);
    let mut lines = Vec::new();
    match (block, state.blocked) {
        (Some(true), Some((by, at))) if !actions.contains(&MemberAction::Block) => {
            lines.push(format!("{mention} was already blocked (by <@{by}> <t:{}:R>); nothing changed.", at.timestamp()))
        }
        (Some(true), _) => lines
            .push(format!("{mention} is blocked: they cannot start image jobs in this server until `block:False`.")),
        (Some(false), _) if !actions.contains(&MemberAction::Unblock) => {
            lines.push(format!("{mention} was not blocked; nothing changed."))
        }
        (Some(false), _) => lines.push(format!("{mention} may start image jobs here again.")),
        (None, _) => {}
    }
    if reset {
        lines.push(format!(
            "{mention}'s count for today is reset: their jobs so far today no longer count against their daily \
             limit. The server's counts and the money spent are unchanged."
        ));
    }
    reply_ephemeral(ctx, lines.join("\n")).await;
    Ok(())
}

/// What the bot knows of one member in this server: the limits that apply to them (and the
/// roles they come from), their usage and the admins' controls. Shared by `/quota show member:`
/// and the member's own `/me`.
pub(in crate::bot) struct MemberFigures {
    pub guild_limits: Limits,
    pub limits: MemberLimits,
    pub state: MemberState,
    pub usage: MemberUsage,
}

/// Loads [`MemberFigures`] for `user_id` holding `roles` (as Discord sent them with the command).
pub(in crate::bot) async fn figures(
    data: &crate::bot::Data,
    guild_id: DiscordId,
    user_id: DiscordId,
    roles: &[DiscordId],
    now: DateTime<Utc>,
) -> Result<MemberFigures, Error> {
    let pool = &data.pool;
    // Independent reads run at once (each on its own connection); the usage needs the member's
    // state (when their day was last reset).
    let (guild_limits, state, tiers) = tokio::try_join!(
        async { quotas::limits(pool, guild_id, &data.policy.defaults).await.context("loading limits") },
        async { members::state(pool, guild_id, user_id).await.context("loading the member") },
        async { role_limits::role_tiers(pool, guild_id).await.context("loading role tiers") },
    )?;
    let counts_from = quota::member_day_start(now, state.day_reset_at);
    let usage = members::usage(pool, guild_id, user_id, counts_from, quota::day_start(now), quota::month_start(now))
        .await
        .context("loading the member's usage")?;
    let limits = member_limits(&guild_limits, &data.policy.operator.ceilings, &tiers, roles);
    Ok(MemberFigures { guild_limits, limits, state, usage })
}

/// `/quota show member:`: the member's usage today and this month, their jobs in progress, their
/// tier (and the role that gives it) and whether they are blocked.
pub(super) async fn show(ctx: Context<'_>, member: &serenity::User) -> Result<(), Error> {
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let user_id = DiscordId::from(member.id);
    let now = Utc::now();
    // The member's roles come with the command, resolved by Discord with the chosen user.
    let roles: Vec<DiscordId> = match ctx {
        poise::Context::Application(actx) => actx
            .interaction
            .data
            .resolved
            .members
            .get(&member.id)
            .map_or_else(Vec::new, |m| m.roles.iter().map(|r| DiscordId::from(*r)).collect()),
        poise::Context::Prefix(_) => Vec::new(),
    };
    let MemberFigures { limits, state, usage, .. } = figures(ctx.data(), guild_id, user_id, &roles, now).await?;
    let mut text = format!(
        "**Image jobs of <@{user_id}> in this server**\n\
         **Today:** {} used · per member per day: {}{} · resets <t:{}:R>\n",
        usage.day,
        describe(limits.per_user_daily.0),
        from_role(limits.per_user_daily.1),
        quota::next_day(now).timestamp(),
    );
    if let Some(reset) = state.day_reset_at.filter(|_| usage.day_all > usage.day) {
        let earlier = usage.day_all - usage.day;
        let (jobs, count) = if earlier == 1 { ("job", "counts") } else { ("jobs", "count") };
        text.push_str(&format!(
            "An admin reset their count <t:{}:R>: {earlier} earlier {jobs} today no longer {count} against them \
             (the server's counts keep {}).\n",
            reset.timestamp(),
            if earlier == 1 { "it" } else { "them" },
        ));
    }
    text.push_str(&format!(
        "**This month:** {} used\n**In progress now:** {} · at once: {}{}\n**Tier:** {}\n{}",
        usage.month,
        usage.in_flight,
        describe(limits.max_concurrent.0),
        from_role(limits.max_concurrent.1),
        tier_line(&limits),
        blocked_line(&state),
    ));
    reply_ephemeral(ctx, text).await;
    Ok(())
}

pub(in crate::bot) fn from_role(role: Option<DiscordId>) -> String {
    role.map_or(" (the server's)".to_owned(), |r| format!(" (from <@&{r}>)"))
}

pub(in crate::bot) fn tier_line(limits: &MemberLimits) -> String {
    let mut roles: Vec<DiscordId> = [limits.per_user_daily.1, limits.max_concurrent.1].into_iter().flatten().collect();
    roles.dedup();
    if roles.is_empty() {
        return "none: the server's per-member limits".to_owned();
    }
    roles.iter().map(|r| format!("<@&{r}>")).collect::<Vec<_>>().join(", ")
}

fn blocked_line(state: &MemberState) -> String {
    match state.blocked {
        Some((by, at)) => format!(
            "**Blocked** by <@{by}> <t:{}:R>: they cannot start image jobs here (`block:False` lets them again).",
            at.timestamp()
        ),
        None => "**Blocked:** no".to_owned(),
    }
}

/// A member's per-member limits, each with the role tier it comes from (`None`: the server's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::bot) struct MemberLimits {
    pub per_user_daily: (Option<i32>, Option<DiscordId>),
    pub max_concurrent: (Option<i32>, Option<DiscordId>),
}

/// The per-member limits the reservation applies to a member holding `roles`: the most generous
/// of their role tiers replaces the server's, and the operator's ceilings cap the result.
fn member_limits(guild: &Limits, ceilings: &Limits, tiers: &[RoleTier], roles: &[DiscordId]) -> MemberLimits {
    let held: Vec<&RoleTier> = tiers.iter().filter(|t| roles.contains(&t.role_id)).collect();
    let best = |limit: fn(&RoleTier) -> Option<i32>| {
        held.iter().filter_map(|t| limit(t).map(|v| (v, t.role_id))).max_by_key(|(v, _)| *v)
    };
    let (daily, concurrent) = (best(|t| t.per_user_daily), best(|t| t.max_concurrent));
    let applied = Limits {
        per_user_daily: daily.map(|(v, _)| v).or(guild.per_user_daily),
        max_concurrent: concurrent.map(|(v, _)| v).or(guild.max_concurrent),
        ..*guild
    }
    .within(ceilings);
    MemberLimits {
        per_user_daily: (applied.per_user_daily, daily.map(|(_, r)| r)),
        max_concurrent: (applied.max_concurrent, concurrent.map(|(_, r)| r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_generous_held_tier_gives_each_limit_within_the_ceilings() {
        let guild = Limits { per_user_daily: Some(2), max_concurrent: Some(1), ..Default::default() };
        let tiers = [
            RoleTier { role_id: DiscordId::new(10), per_user_daily: Some(5), max_concurrent: None },
            RoleTier { role_id: DiscordId::new(11), per_user_daily: Some(8), max_concurrent: Some(3) },
            RoleTier { role_id: DiscordId::new(12), per_user_daily: Some(50), max_concurrent: Some(9) },
        ];
        let none = Limits::default();
        assert_eq!(
            member_limits(&guild, &none, &tiers, &[]),
            MemberLimits { per_user_daily: (Some(2), None), max_concurrent: (Some(1), None) }
        );
        assert_eq!(
            member_limits(&guild, &none, &tiers, &[DiscordId::new(10)]),
            MemberLimits { per_user_daily: (Some(5), Some(DiscordId::new(10))), max_concurrent: (Some(1), None) }
        );
        assert_eq!(
            member_limits(&guild, &none, &tiers, &[DiscordId::new(10), DiscordId::new(11)]),
            MemberLimits {
                per_user_daily: (Some(8), Some(DiscordId::new(11))),
                max_concurrent: (Some(3), Some(DiscordId::new(11)))
            }
        );
        let ceilings = Limits { per_user_daily: Some(20), ..Default::default() };
        assert_eq!(
            member_limits(&guild, &ceilings, &tiers, &[DiscordId::new(12)]).per_user_daily,
            (Some(20), Some(DiscordId::new(12)))
        );
        let shown = member_limits(&guild, &none, &tiers, &[DiscordId::new(10), DiscordId::new(11)]);
        assert_eq!(tier_line(&shown), "<@&11>");
        assert_eq!(tier_line(&member_limits(&guild, &none, &tiers, &[])), "none: the server's per-member limits");
    }
}
