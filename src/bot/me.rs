//! `/me`: a member's own figures in this server, privately: what they have left today and this
//! month under their limits and the server's, their tier, their jobs in progress and waiting,
//! when each window resets, and what their jobs cost this month. The figures are the ones
//! `/quota show member:` shows an admin (`quota::member::figures`).

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{
    Context, Error,
    quota::{
        describe,
        member::{self, MemberFigures},
        spend_detail,
    },
    reply_ephemeral,
};
use crate::{
    db::{
        DiscordId,
        quotas::{self, GuildUsage, Spend, SpendScope},
    },
    quota,
};

/// What you have left here today and this month, your tier, your jobs in progress, your spend
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn me(ctx: Context<'_>) -> Result<(), Error> {
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let user_id = DiscordId::from(ctx.author().id);
    let roles = match ctx {
        poise::Context::Application(actx) => actx
            .interaction
            .member
            .as_deref()
            .map(|m| m.roles.iter().map(|r| DiscordId::from(*r)).collect())
            .unwrap_or_default(),
        poise::Context::Prefix(_) => Vec::new(),
    };
    let data = ctx.data();
    let now = Utc::now();
    // Independent reads, each on its own connection: the answer waits for the slowest, not the sum.
    let server = async { quotas::guild_usage(&data.pool, guild_id, now).await.context("loading the server's usage") };
    let spent = async {
        let scope = SpendScope::Member { guild_id, user_id };
        let expected = data.policy.operator.expected_job_cost;
        quotas::scope_month_spend(&data.pool, scope, now, expected).await.context("loading the member's spend")
    };
    let (figures, server, spent) =
        tokio::try_join!(member::figures(data, guild_id, user_id, &roles, now), server, spent)?;
    reply_ephemeral(ctx, report(&figures, &server, &spent, now)).await;
    Ok(())
}

/// `3 of 5 left`, or `unlimited`.
fn left(limit: Option<i32>, used: i64) -> String {
    match limit {
        None => "unlimited".to_owned(),
        Some(limit) => format!("{} of {limit} left", (i64::from(limit) - used).max(0)),
    }
}

/// How many more jobs the member may start today: the tightest of their daily limit and the
/// server's daily and monthly ones (`None`: no limit applies).
fn can_start(figures: &MemberFigures, server: &GuildUsage) -> Option<i64> {
    [
        (figures.limits.per_user_daily.0, figures.usage.day),
        (figures.guild_limits.daily, server.day),
        (figures.guild_limits.monthly, server.month),
    ]
    .into_iter()
    .filter_map(|(limit, used)| limit.map(|l| (i64::from(l) - used).max(0)))
    .min()
}

fn report(figures: &MemberFigures, server: &GuildUsage, spent: &Spend, now: DateTime<Utc>) -> String {
    let MemberFigures { guild_limits, limits, state, usage } = figures;
    let mut text = String::from("**Your image jobs in this server**\n");
    if let Some((_, at)) = state.blocked {
        text.push_str(&format!(
            "An admin of this server paused your image jobs here <t:{}:R>; the figures below are for when they \
             let you again.\n",
            at.timestamp()
        ));
    }
    text.push_str(&match can_start(figures, server) {
        Some(n) => format!("**You can start:** {n} more today\n"),
        None => "**You can start:** as many as you like today\n".to_owned(),
    });
    text.push_str(&format!(
        "**Today:** {} used · yours: {}{} · the server's: {} · resets <t:{}:R>\n",
        usage.day,
        left(limits.per_user_daily.0, usage.day),
        member::from_role(limits.per_user_daily.1),
        left(guild_limits.daily, server.day),
        quota::next_day(now).timestamp(),
    ));
    text.push_str(&format!(
        "**This month:** {} used · the server's: {} · resets <t:{}:R>\n",
        usage.month,
        left(guild_limits.monthly, server.month),
        quota::next_month(now).timestamp(),
    ));
    text.push_str(&format!(
        "**In progress:** {} ({} waiting their turn) · at once: {}{}\n",
        usage.in_flight,
        usage.waiting,
        describe(limits.max_concurrent.0),
        member::from_role(limits.max_concurrent.1),
    ));
    text.push_str(&format!("**Tier:** {}\n", member::tier_line(limits)));
    text.push_str(&format!("**Spent this month:** ${}{}", spent.total, spend_detail(spent)));
    text
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::{
        bot::quota::member::MemberLimits,
        db::{members::MemberState, members::MemberUsage},
        quota::Limits,
    };

    fn figures(per_user_daily: (Option<i32>, Option<DiscordId>), day: i64) -> MemberFigures {
        MemberFigures {
            guild_limits: Limits { daily: Some(10), monthly: Some(100), per_user_daily: Some(2), max_concurrent: None },
            limits: MemberLimits { per_user_daily, max_concurrent: (Some(2), None) },
            state: MemberState::default(),
            usage: MemberUsage { day, day_all: day, month: 7, in_flight: 2, waiting: 1 },
        }
    }

    fn spend(total: i64, unpriced: i64) -> Spend {
        Spend {
            reported: Decimal::new(total, 2),
            unpriced,
            expected_each: Decimal::new(4, 2),
            total: Decimal::new(total + unpriced * 4, 2),
            would_pass: false,
        }
    }

    #[test]
    fn the_tightest_limit_says_how_many_more_today() {
        let server = GuildUsage { day: 9, month: 20, in_flight: 0, busiest_member_day: 3 };
        assert_eq!(
            can_start(&figures((Some(5), Some(DiscordId::new(7))), 3), &server),
            Some(1),
            "the server's day is nearly used"
        );
        let quiet = GuildUsage { day: 3, month: 3, ..server };
        assert_eq!(
            can_start(&figures((Some(5), Some(DiscordId::new(7))), 3), &quiet),
            Some(2),
            "the member's own tier"
        );
        assert_eq!(can_start(&figures((Some(2), None), 3), &quiet), Some(0), "never below zero");
        let mut open = figures((None, None), 3);
        open.guild_limits = Limits::default();
        assert_eq!(can_start(&open, &quiet), None);
    }

    #[test]
    fn the_report_names_both_limits_the_tier_the_resets_and_the_spend() {
        let now: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let server = GuildUsage { day: 4, month: 20, in_flight: 2, busiest_member_day: 3 };
        let text = report(&figures((Some(5), Some(DiscordId::new(7))), 3), &server, &spend(8, 1), now);
        for expected in [
            "**You can start:** 2 more today",
            "**Today:** 3 used · yours: 2 of 5 left (from <@&7>) · the server's: 6 of 10 left · resets <t:1796342400:R>",
            "**This month:** 7 used · the server's: 80 of 100 left · resets <t:1798761600:R>",
            "**In progress:** 2 (1 waiting their turn) · at once: 2 (the server's)",
            "**Tier:** <@&7>",
            "**Spent this month:** $0.12 (reported by the image service, refunded jobs included, plus $0.04 each for \
             1 job not yet priced)",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        assert!(!text.contains("paused"), "{text}");
    }
}
