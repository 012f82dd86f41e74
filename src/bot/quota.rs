//! Admin commands: `/quota show`, `/quota set`, `/quota role`, `/quota member` and `/usage`. Discord hides them from members
//! without Manage Server (`default_member_permissions`), and the bot checks the invoker's
//! permissions itself, so a mis-set permission override cannot open them.

use anyhow::Context as _;
use chrono::{Datelike, Utc};
use poise::serenity_prelude as serenity;
use rust_decimal::Decimal;
use tracing::info;

use super::{Context, Error, reply_ephemeral, require_admin};
use crate::{
    db::{
        DiscordId,
        quotas::{self, Change},
        role_limits,
    },
    quota::{self, LimitKind, Limits},
    words::UserError,
};

pub(super) mod member;

use member::member;

/// What `unlimited:` can remove: one of the job limits, or the monthly budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlimited {
    Limit(LimitKind),
    MonthlyBudget,
}

impl Unlimited {
    const BUDGET: &'static str = "monthly_budget";

    fn parse(text: &str) -> Option<Unlimited> {
        if text == Self::BUDGET { Some(Unlimited::MonthlyBudget) } else { LimitKind::parse(text).map(Unlimited::Limit) }
    }
}

string_choice_argument!(
    Unlimited,
    LimitKind::ALL.iter().map(|k| k.name()).chain([Unlimited::BUDGET]),
    Unlimited::parse
);

/// The largest monthly budget accepted, in US dollars.
const MAX_BUDGET: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// See and change this server's image job limits
#[poise::command(
    slash_command,
    guild_only,
    install_context = "Guild",
    subcommands("show", "set", "role", "member"),
    subcommand_required,
    default_member_permissions = "MANAGE_GUILD"
)]
pub async fn quota(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

pub(super) fn describe(limit: Option<i32>) -> String {
    match limit {
        None => "unlimited".into(),
        Some(0) => "0 (no jobs allowed)".into(),
        Some(n) => n.to_string(),
    }
}

/// What the spend figure is made of, when part of it is still an estimate: " (incl. $0.08
/// expected for 2 jobs not yet priced)"; nothing when every amount was reported.
pub(super) fn spend_detail(spent: &quotas::Spend) -> String {
    match spent.unpriced {
        0 => " (reported by the image service, refunded jobs included)".to_owned(),
        n => format!(
            " (reported by the image service, refunded jobs included, plus ${} each for {n} job{} not yet priced)",
            spent.expected_each,
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// This server's limits, how much of them is used, and when they reset
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn show(
    ctx: Context<'_>,
    #[description = "One member: their usage, tier and whether they are blocked"] member: Option<serenity::User>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    if let Some(member) = &member {
        return member::show(ctx, member).await;
    }
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
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
    let queued = quotas::max_queued(&data.pool, guild_id).await.context("loading max_queued")?;
    if queued > 0 {
        text.push_str(&format!("**Waiting their turn past that, per member:** up to {queued}\n"));
    }
    let budget = quotas::budget(&data.pool, guild_id, &data.policy.defaults).await.context("loading the budget")?;
    if let Some(budget) = budget {
        let spent = quotas::month_spend(&data.pool, guild_id, now, data.policy.operator.expected_job_cost)
            .await
            .context("loading the spend")?;
        text.push_str(&format!(
            "**Monthly budget:** ${} of ${budget} spent{} · resets <t:{}:R>\n",
            spent.total,
            spend_detail(&spent),
            quota::next_month(now).timestamp()
        ));
    }
    let tiers = role_limits::role_tiers(&data.pool, guild_id).await.context("loading role tiers")?;
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
// One parameter per option, as poise declares them.
#[allow(clippy::too_many_arguments)]
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
    #[description = "US dollars this server may spend per UTC month (provider-reported amounts)"]
    #[min = 0]
    #[max = 1000000]
    monthly_budget: Option<f64>,
    #[description = "Remove this limit (or the monthly budget) altogether"] unlimited: Option<Unlimited>,
    #[description = "Jobs per member that may wait their turn past max_concurrent (0: refuse them)"]
    #[min = 0]
    #[max = 1000]
    max_queued: Option<i64>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let budget = budget_change(monthly_budget, unlimited == Some(Unlimited::MonthlyBudget))?;
    let max_queued = max_queued
        .map(|n| i32::try_from(n).ok().filter(|n| (0..=1000).contains(n)))
        .map(|n| n.ok_or(UserError::Input("`max_queued` must be from 0 to 1000.".into())))
        .transpose()?;
    let unlimited_limit = match unlimited {
        Some(Unlimited::Limit(kind)) => Some(kind),
        _ => None,
    };
    let counts = [daily, monthly, per_user_daily, max_concurrent];
    let only_others = budget.is_some() || max_queued.is_some();
    let changes = if only_others && counts.iter().all(Option::is_none) && unlimited_limit.is_none() {
        Vec::new()
    } else {
        changes(counts, unlimited_limit).map_err(UserError::Input)?
    };
    let data = ctx.data();
    for change in &changes {
        if let Some((ceiling, setting)) = data.policy.operator.ceilings.ceiling_refusal(change.kind, change.value) {
            return Err(UserError::AboveCeiling { kind: change.kind, ceiling, setting }.into());
        }
    }
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let admin = DiscordId::from(ctx.author().id);
    if let Some(budget) = budget {
        quotas::set_budget(&data.pool, guild_id, &data.policy.defaults, budget, admin)
            .await
            .context("changing the monthly budget")?;
    }
    if let Some(max_queued) = max_queued {
        quotas::set_max_queued(&data.pool, guild_id, &data.policy.defaults, max_queued, admin)
            .await
            .context("changing max_queued")?;
    }
    let limits = quotas::set_limits(&data.pool, guild_id, &data.policy.defaults, &changes, admin)
        .await
        .context("changing limits")?;
    let budget = quotas::budget(&data.pool, guild_id, &data.policy.defaults).await.context("loading the budget")?;
    info!(guild_id = guild_id.get(), admin = admin.get(), ?changes, ?budget, ?max_queued, "quota changed");
    let budget = budget.map_or("none".to_owned(), |b| format!("${b}"));
    let queued =
        max_queued.map(|n| format!(" · Waiting past the in-progress limit, per member: {n}")).unwrap_or_default();
    reply_ephemeral(ctx, format!("Limits updated.\n{} · Monthly budget: {budget}{queued}", summary(&limits))).await;
    Ok(())
}

/// The budget part of `/quota set`: `Some(Some(dollars))` sets it, `Some(None)` removes it.
fn budget_change(given: Option<f64>, remove: bool) -> Result<Option<Option<Decimal>>, UserError> {
    // Discord sends a number option as a float; it becomes exact cents (to a hundredth of a cent)
    // here, once, and stays a decimal from then on.
    let given = given.map(|dollars| Decimal::try_from(dollars).ok().map(|d| d.round_dp(4).normalize()));
    match (given, remove) {
        (Some(_), true) => {
            Err(UserError::Input("You asked for `monthly_budget` to be both set and removed; pick one.".into()))
        }
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
        (Some(Some(dollars)), false) if (Decimal::ZERO..=MAX_BUDGET).contains(&dollars) => Ok(Some(Some(dollars))),
        (Some(_), false) => Err(UserError::Input(format!(
            "`monthly_budget` must be from 0 to {MAX_BUDGET} US dollars, for example `monthly_budget:25`."
        ))),
    }
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
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let admin = DiscordId::from(ctx.author().id);
    let tier = role_limits::RoleTier { role_id: role.into(), per_user_daily, max_concurrent };
    role_limits::set_role_tier(&data.pool, guild_id, tier, clear, admin).await.context("changing a role tier")?;
    info!(
        guild_id = guild_id.get(),
        admin = admin.get(),
        role = role.get(),
        clear,
        ?per_user_daily,
        ?max_concurrent,
        "role tier changed"
    );
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
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let data = ctx.data();
    let pool = &data.pool;
    let now = Utc::now();
    let report = quotas::month_report(pool, guild_id, now).await.context("loading the month's report")?;
    let spent = quotas::month_spend(pool, guild_id, now, data.policy.operator.expected_job_cost)
        .await
        .context("loading the spend")?;
    let top = quotas::top_members(pool, guild_id, now, 5).await.context("loading top members")?;
    let budget = quotas::budget(pool, guild_id, &data.policy.defaults).await.context("loading the budget")?;
    let mut text = format!(
        "**Image jobs this month** (since <t:{}:D>)\n{} counted · {} failed and refunded · spend ${}{}{}\n",
        quota::month_start(now).timestamp(),
        report.counted,
        report.refunded,
        spent.total,
        spend_detail(&spent),
        budget.map(|b| format!(" of a ${b} budget")).unwrap_or_default(),
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
    // The chart: drawn off the async threads (a few tens of milliseconds), sent with the summary.
    let days = quotas::daily_usage(pool, guild_id, now).await.context("loading daily usage")?;
    let title = format!("Image jobs · {}", now.format("%B %Y"));
    let days_in_month = u32::try_from((quota::next_month(now) - quota::month_start(now)).num_days())
        .context("counting the days of the month")?;
    let today = now.day();
    let chart =
        tokio::task::spawn_blocking(move || crate::usage_chart::render(&title, &days, days_in_month, today, budget))
            .await
            .context("drawing the usage chart")?
            .context("drawing the usage chart")?;
    let reply = poise::CreateReply::default()
        .content(text.trim_end())
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new())
        .attachment(serenity::CreateAttachment::bytes(chart, "usage.png"));
    if let Err(e) = ctx.send(reply).await {
        tracing::warn!(error = %crate::discord::classify_serenity(e), "could not send /usage");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_validated() {
        let set = |dollars| budget_change(Some(dollars), false).unwrap().unwrap().unwrap().to_string();
        assert_eq!(set(0.08), "0.08");
        assert_eq!(set(25.0), "25");
        assert_eq!(set(19.999_99), "20");
        assert!(budget_change(Some(1_000_000.01), false).is_err());
        assert!(budget_change(Some(f64::INFINITY), false).is_err());
        assert_eq!(budget_change(None, true).unwrap(), Some(None));
        assert_eq!(budget_change(None, false).unwrap(), None);
        assert!(budget_change(Some(-1.0), false).is_err());
        assert!(budget_change(Some(f64::NAN), false).is_err());
        assert!(budget_change(Some(5.0), true).unwrap_err().to_string().contains("pick one"));
    }

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
