//! Admin commands: `/quota show`, `/quota set` and `/usage`. Discord hides them from members
//! without Manage Server (`default_member_permissions`), and the bot checks the invoker's
//! permissions itself, so a mis-set permission override cannot open them.

use anyhow::Context as _;
use chrono::Utc;
use poise::serenity_prelude as serenity;
use tracing::info;

use super::{Context, Error, can_manage_guild, reply_ephemeral};
use crate::{
    db::quotas::{self, Change},
    error::UserError,
    quota::{self, LimitKind, Limits},
};

string_choice_argument!(LimitKind, LimitKind::ALL.iter().map(|k| k.name()), LimitKind::parse);

/// See and change this server's image job limits
#[poise::command(
    slash_command,
    guild_only,
    install_context = "Guild",
    subcommands("show", "set", "role"),
    subcommand_required,
    default_member_permissions = "MANAGE_GUILD"
)]
pub async fn quota(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Admin commands are for members who may manage the server, whatever the overrides say.
fn require_admin(ctx: Context<'_>) -> Result<(), UserError> {
    if can_manage_guild(ctx) { Ok(()) } else { Err(UserError::NotAdmin) }
}

fn describe(limit: Option<i32>) -> String {
    match limit {
        None => "unlimited".into(),
        Some(0) => "0 (no jobs allowed)".into(),
        Some(n) => n.to_string(),
    }
}

/// This server's limits, how much of them is used, and when they reset
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn show(ctx: Context<'_>) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild_id = ctx.guild_id().context("guild_only command without a guild")?.get() as i64;
    let data = ctx.data();
    let now = Utc::now();
    let limits = quotas::limits(&data.pool, guild_id, &data.policy.defaults).await.context("loading limits")?;
    let usage = quotas::guild_usage(&data.pool, guild_id, now).await.context("loading usage")?;
    let last = quotas::last_change(&data.pool, guild_id).await.context("loading the last change")?;
    let of = |used: i64, limit: Option<i32>| match limit {
        None => format!("{used} used · unlimited"),
        Some(l) => format!("{used} / {l} used"),
    };
    let mut text = format!(
        "**Image job quota for this server**\n\
         **Daily:** {} · resets <t:{}:R>\n\
         **Monthly:** {} · resets <t:{}:R>\n\
         **Per member per day:** {} (busiest member today: {})\n\
         **In progress at once per member:** {} (in progress now: {})\n",
        of(usage.day, limits.daily),
        quota::next_day(now).timestamp(),
        of(usage.month, limits.monthly),
        quota::next_month(now).timestamp(),
        describe(limits.per_user_daily),
        usage.busiest_member_day,
        describe(limits.max_concurrent),
        usage.in_flight,
    );
    let tiers = quotas::role_tiers(&data.pool, guild_id).await.context("loading role tiers")?;
    if !tiers.is_empty() {
        text.push_str("**Role tiers** (replace the per-member limits; the most generous role wins)\n");
        for tier in &tiers {
            text.push_str(&format!(
                "<@&{}> · per member per day: {} · in progress at once: {}\n",
                tier.role_id,
                tier.per_user_daily.map_or("server's".to_owned(), |n| n.to_string()),
                tier.max_concurrent.map_or("server's".to_owned(), |n| n.to_string()),
            ));
        }
    }
    match last {
        Some((by, at)) => text.push_str(&format!("Last changed by <@{by}> <t:{}:R>.", at.timestamp())),
        None => text.push_str("These are the bot's defaults; change them with `/quota set`."),
    }
    reply_ephemeral(ctx, text).await;
    Ok(())
}

/// Change this server's limits (0 allows no jobs; `unlimited` removes a limit)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn set(
    ctx: Context<'_>,
    #[description = "Jobs per UTC day for the whole server"]
    #[min = 0]
    #[max = 1000000]
    daily: Option<i64>,
    #[description = "Jobs per UTC calendar month for the whole server"]
    #[min = 0]
    #[max = 1000000]
    monthly: Option<i64>,
    #[description = "Jobs per member per UTC day"]
    #[min = 0]
    #[max = 1000000]
    per_user_daily: Option<i64>,
    #[description = "Jobs in progress at once per member"]
    #[min = 0]
    #[max = 1000]
    max_concurrent: Option<i64>,
    #[description = "Remove this limit altogether"] unlimited: Option<LimitKind>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let changes = changes([daily, monthly, per_user_daily, max_concurrent], unlimited).map_err(UserError::Input)?;
    let data = ctx.data();
    for change in &changes {
        if let Some((ceiling, setting)) = data.policy.operator.ceilings.ceiling_refusal(change.kind, change.value) {
            return Err(UserError::AboveCeiling { kind: change.kind, ceiling, setting }.into());
        }
    }
    let guild_id = ctx.guild_id().context("guild_only command without a guild")?.get() as i64;
    let admin = ctx.author().id.get() as i64;
    let limits = quotas::set_limits(&data.pool, guild_id, &data.policy.defaults, &changes, admin)
        .await
        .context("changing limits")?;
    info!(guild_id, admin, ?changes, "quota changed");
    reply_ephemeral(ctx, format!("Limits updated.\n{}", summary(&limits))).await;
    Ok(())
}

/// Give members holding a role their own per-member limits (the most generous role wins)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn role(
    ctx: Context<'_>,
    #[description = "The role, e.g. patrons or boosters"] role: serenity::RoleId,
    #[description = "Jobs per member per UTC day for this role"]
    #[min = 0]
    #[max = 1000000]
    per_user_daily: Option<i64>,
    #[description = "Jobs in progress at once per member for this role"]
    #[min = 0]
    #[max = 1000]
    max_concurrent: Option<i64>,
    #[description = "Remove this role's limits (members fall back to the server's)"] clear: Option<bool>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let clear = clear.unwrap_or(false);
    let count = |name: &str, v: Option<i64>| -> Result<Option<i32>, UserError> {
        v.map(|v| {
            i32::try_from(v).ok().filter(|v| *v >= 0).ok_or(UserError::Input(format!("`{name}` must be 0 or more.")))
        })
        .transpose()
    };
    let per_user_daily = count("per_user_daily", per_user_daily)?;
    let max_concurrent = count("max_concurrent", max_concurrent)?;
    match (clear, per_user_daily.is_some() || max_concurrent.is_some()) {
        (true, true) => {
            return Err(
                UserError::Input("You asked to clear this role's limits and to set them; pick one.".into()).into()
            );
        }
        (false, false) => {
            return Err(UserError::Input(
                "Give `per_user_daily` or `max_concurrent` for the role, or `clear:True` to remove its limits.".into(),
            )
            .into());
        }
        _ => {}
    }
    let data = ctx.data();
    let ceilings = &data.policy.operator.ceilings;
    for (kind, value) in [(LimitKind::PerUserDaily, per_user_daily), (LimitKind::MaxConcurrent, max_concurrent)] {
        if value.is_some()
            && let Some((ceiling, setting)) = ceilings.ceiling_refusal(kind, value)
        {
            return Err(UserError::AboveCeiling { kind, ceiling, setting }.into());
        }
    }
    let guild_id = ctx.guild_id().context("guild_only command without a guild")?.get() as i64;
    let admin = ctx.author().id.get() as i64;
    let tier = quotas::RoleTier { role_id: role.get() as i64, per_user_daily, max_concurrent };
    quotas::set_role_tier(&data.pool, guild_id, tier, clear, admin).await.context("changing a role tier")?;
    info!(guild_id, admin, role = role.get(), clear, ?per_user_daily, ?max_concurrent, "role tier changed");
    let text = if clear {
        format!("Members with <@&{role}> now have the server's per-member limits.")
    } else {
        format!(
            "Members with <@&{role}> now get{}{} instead of the server's (the most generous of their roles wins).",
            per_user_daily.map(|n| format!(" {n} jobs a day")).unwrap_or_default(),
            max_concurrent.map(|n| format!(" {n} at once")).unwrap_or_default(),
        )
    };
    reply_ephemeral(ctx, text).await;
    Ok(())
}

/// Validates the options of `/quota set` into a list of changes.
fn changes(values: [Option<i64>; 4], unlimited: Option<LimitKind>) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    for (kind, value) in LimitKind::ALL.into_iter().zip(values) {
        let name = kind.name();
        if let Some(value) = value {
            if unlimited == Some(kind) {
                return Err(format!("You asked for `{name}` to be both {value} and unlimited; pick one."));
            }
            let value = i32::try_from(value).ok().filter(|v| *v >= 0).ok_or(format!("`{name}` must be 0 or more."))?;
            changes.push(Change { kind, value: Some(value) });
        }
    }
    if let Some(kind) = unlimited {
        changes.push(Change { kind, value: None });
    }
    if changes.is_empty() {
        return Err(
            "Give at least one limit to change, for example `/quota set daily:50`, or `unlimited:` to remove one."
                .into(),
        );
    }
    Ok(changes)
}

fn summary(limits: &Limits) -> String {
    format!(
        "Daily: {} · Monthly: {} · Per member per day: {} · In progress per member: {}",
        describe(limits.daily),
        describe(limits.monthly),
        describe(limits.per_user_daily),
        describe(limits.max_concurrent)
    )
}

/// This month's image jobs and spend for the server, and its busiest members
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn usage(ctx: Context<'_>) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild_id = ctx.guild_id().context("guild_only command without a guild")?.get() as i64;
    let pool = &ctx.data().pool;
    let now = Utc::now();
    let report = quotas::month_report(pool, guild_id, now).await.context("loading the month's report")?;
    let top = quotas::top_members(pool, guild_id, now, 5).await.context("loading top members")?;
    let mut text = format!(
        "**Image jobs this month** (since <t:{}:D>)\n{} counted · {} failed and refunded · spend ${} (as reported by the provider)\n",
        quota::month_start(now).timestamp(),
        report.counted,
        report.refunded,
        report.spend,
    );
    if top.is_empty() {
        text.push_str("No jobs yet this month.");
    } else {
        text.push_str("**Top members**\n");
        for (i, member) in top.iter().enumerate() {
            let jobs = if member.jobs == 1 { "1 job".to_owned() } else { format!("{} jobs", member.jobs) };
            text.push_str(&format!("{}. <@{}> · {jobs} · ${}\n", i + 1, member.user_id, member.spend));
        }
    }
    reply_ephemeral(ctx, text.trim_end().to_owned()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_validated() {
        assert_eq!(
            changes([Some(5), None, None, Some(0)], Some(LimitKind::Monthly)).unwrap(),
            vec![
                Change { kind: LimitKind::Daily, value: Some(5) },
                Change { kind: LimitKind::MaxConcurrent, value: Some(0) },
                Change { kind: LimitKind::Monthly, value: None }
            ]
        );
        assert!(changes([None; 4], None).unwrap_err().contains("at least one"));
        assert!(changes([Some(5), None, None, None], Some(LimitKind::Daily)).unwrap_err().contains("pick one"));
    }
}
