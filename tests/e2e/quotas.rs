//! Quotas on real PostgreSQL: exact under concurrency, per member, in flight, refunds, windows,
//! and the admin commands end to end.

use std::sync::Arc;

use chrono::{Duration, Utc};
use imagine_bot::{
    db::{
        DiscordId,
        jobs::NewJob,
        quotas::{self, Reservation},
    },
    quota::{LimitKind, Limits, Policy},
    spec::{AspectRatio, JobSpec, Pictures},
};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Barrier;

use crate::support::{
    self, TestBot, WAIT,
    discord::{InteractionBuilder, MANAGE_GUILD},
};

const GUILD: DiscordId = DiscordId::new(42);

fn new_job(interaction_id: u64, user_id: u64) -> NewJob {
    NewJob {
        id: uuid::Uuid::new_v4(),
        interaction_id: interaction_id.into(),
        application_id: DiscordId::new(1),
        guild_id: GUILD,
        channel_id: DiscordId::new(2),
        user_id: user_id.into(),
        interaction_token: format!("token-{interaction_id}"),
        token_expires_at: Utc::now() + Duration::minutes(15),
        attachment_size_limit: 10 << 20,
        prompt_raw: "a cat".into(),
        spec: JobSpec {
            prompt: "a cat".into(),
            negative_prompt: None,
            aspect_ratio: AspectRatio::SQUARE,
            performance: None,
            stylization: None,
            chaos: None,
            weirdness: None,
            style_weight: None,
            omni_weight: None,
            pictures: Pictures { images: vec!["https://cdn.example/a.png".into()], ..Pictures::default() },
            sources: Default::default(),
        },
        notes: vec![],
        origin: None,
    }
}

async fn reserve(pool: &PgPool, limits: &Limits, interaction_id: u64, user_id: u64) -> Reservation {
    let mut tx = pool.begin().await.unwrap();
    let outcome =
        quotas::reserve_and_insert(&mut tx, &new_job(interaction_id, user_id), &[], &Policy::from(*limits), Utc::now())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    outcome
}

fn accepted(r: &Reservation) -> bool {
    matches!(r, Reservation::Accepted { .. })
}

fn refused_by(r: &Reservation) -> Option<LimitKind> {
    match r {
        Reservation::Refused(refusal) => Some(refusal.kind),
        _ => None,
    }
}

/// 50 reservations released at the same instant over two connection pools (two "processes")
/// against a daily limit of 5: exactly 5 are accepted. A read-then-write check would let
/// several concurrent transactions all see 4 used and all insert.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_reservations_accept_exactly_the_limit() {
    // Each pool can hold all of its 25 contenders' connections at once, so all 50 transactions
    // really run concurrently.
    let database = support::fresh_database().await;
    let pool_a = imagine_bot::db::connect(&database, 25).await.unwrap();
    let pool_b = imagine_bot::db::connect(&database, 25).await.unwrap();
    let limits = Limits { daily: Some(5), ..Default::default() };
    // The guild row exists before the race, as it would for any active guild.
    quotas::limits(&pool_a, GUILD, &limits).await.unwrap();

    let barrier = Arc::new(Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50u64 {
        let pool = if i % 2 == 0 { pool_a.clone() } else { pool_b.clone() };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            barrier.wait().await;
            let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
            let outcome = quotas::reserve_and_insert(
                &mut tx,
                &new_job(1000 + i, 7000 + i),
                &[],
                &Policy::from(limits),
                Utc::now(),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|r| accepted(r)).count(), 5);
    assert!(outcomes.iter().filter(|r| !accepted(r)).all(|r| refused_by(r) == Some(LimitKind::Daily)));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE guild_id = $1")
        .bind(GUILD)
        .fetch_one(&pool_a)
        .await
        .unwrap();
    assert_eq!(stored, 5);
}

#[tokio::test]
async fn per_member_and_in_flight_limits() {
    let (_database, pool) = support::fresh_pool().await;
    let limits = Limits { per_user_daily: Some(2), max_concurrent: Some(5), ..Default::default() };
    assert!(accepted(&reserve(&pool, &limits, 1, 100).await));
    assert!(accepted(&reserve(&pool, &limits, 2, 100).await));
    assert_eq!(refused_by(&reserve(&pool, &limits, 3, 100).await), Some(LimitKind::PerUserDaily));
    assert!(accepted(&reserve(&pool, &limits, 4, 200).await), "another member is not affected");

    // In flight: one job at a time per member.
    sqlx::query("DELETE FROM jobs").execute(&pool).await.unwrap();
    sqlx::query("UPDATE guild_quotas SET per_user_daily_limit = NULL, max_concurrent = 1")
        .execute(&pool)
        .await
        .unwrap();
    assert!(accepted(&reserve(&pool, &limits, 5, 100).await));
    assert_eq!(refused_by(&reserve(&pool, &limits, 6, 100).await), Some(LimitKind::MaxConcurrent));
    sqlx::query("UPDATE jobs SET status = 'running' WHERE interaction_id = 5").execute(&pool).await.unwrap();
    assert_eq!(refused_by(&reserve(&pool, &limits, 7, 100).await), Some(LimitKind::MaxConcurrent));
    sqlx::query("UPDATE jobs SET status = 'succeeded' WHERE interaction_id = 5").execute(&pool).await.unwrap();
    assert!(accepted(&reserve(&pool, &limits, 8, 100).await), "a finished job frees the slot");
}

#[tokio::test]
async fn a_refund_frees_the_slot() {
    let (_database, pool) = support::fresh_pool().await;
    let limits = Limits { daily: Some(1), ..Default::default() };
    assert!(accepted(&reserve(&pool, &limits, 1, 100).await));
    assert_eq!(refused_by(&reserve(&pool, &limits, 2, 100).await), Some(LimitKind::Daily));
    // What the worker does when the provider fails the job.
    sqlx::query("UPDATE jobs SET status = 'failed', counted = false WHERE interaction_id = 1")
        .execute(&pool)
        .await
        .unwrap();
    assert!(accepted(&reserve(&pool, &limits, 3, 100).await));
    let history = support::jobs::job_count(&pool).await;
    assert_eq!(history, 2, "the refunded job stays in the history");
}

#[tokio::test]
async fn day_and_month_windows_roll_over() {
    let (_database, pool) = support::fresh_pool().await;
    let limits = Limits { daily: Some(1), monthly: Some(2), ..Default::default() };
    assert!(accepted(&reserve(&pool, &limits, 1, 100).await));
    assert_eq!(refused_by(&reserve(&pool, &limits, 2, 100).await), Some(LimitKind::Daily));
    // Yesterday's job no longer counts for the day (it may still count for the month).
    let start_of_today = imagine_bot::quota::day_start(Utc::now());
    sqlx::query("UPDATE jobs SET created_at = $1, status = 'succeeded'")
        .bind(start_of_today - Duration::seconds(1))
        .execute(&pool)
        .await
        .unwrap();
    let month_start = imagine_bot::quota::month_start(Utc::now());
    let yesterday_is_this_month = start_of_today > month_start;
    let second = reserve(&pool, &limits, 3, 100).await;
    assert!(accepted(&second), "{second:?}");
    if yesterday_is_this_month {
        sqlx::query("UPDATE jobs SET created_at = $1, status = 'succeeded'")
            .bind(start_of_today - Duration::seconds(1))
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(refused_by(&reserve(&pool, &limits, 4, 100).await), Some(LimitKind::Monthly));
    }
    // Last month's jobs count for neither window.
    sqlx::query("UPDATE jobs SET created_at = $1")
        .bind(month_start - Duration::seconds(1))
        .execute(&pool)
        .await
        .unwrap();
    assert!(accepted(&reserve(&pool, &limits, 5, 100).await));
}

#[tokio::test]
async fn a_new_guild_gets_the_defaults_and_zero_means_none() {
    let (_database, pool) = support::fresh_pool().await;
    let defaults = Limits { daily: Some(0), monthly: Some(10), per_user_daily: None, max_concurrent: Some(3) };
    let refusal = reserve(&pool, &defaults, 1, 100).await;
    assert_eq!(refused_by(&refusal), Some(LimitKind::Daily));
    assert_eq!(quotas::limits(&pool, GUILD, &Limits::default()).await.unwrap(), defaults, "stored once, then kept");
}

fn admin(cmd: InteractionBuilder) -> InteractionBuilder {
    cmd.member_permissions(support::discord::DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn content(callback: &Value) -> String {
    callback["data"]["content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_set_limits_and_members_hit_them() {
    let bot = TestBot::start().await;

    // A member without Manage Server cannot change limits, even if Discord showed them the command.
    let sneaky = InteractionBuilder::command("quota").subcommand("set").integer("daily", 1000);
    bot.send(&sneaky).await;
    let refused = bot.callback(&sneaky).await;
    assert_eq!(refused["data"]["flags"], 64);
    assert!(content(&refused).contains("Manage Server"), "{refused:#}");
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM quota_changes").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(changes, 0);

    let set = admin(
        InteractionBuilder::command("quota").subcommand("set").integer("daily", 1).string("unlimited", "monthly"),
    );
    bot.send(&set).await;
    let answer = content(&bot.callback(&set).await);
    assert!(answer.contains("Daily: 1") && answer.contains("Monthly: unlimited"), "{answer}");

    let first = bot.imagine("first picture");
    bot.send(&first).await;
    bot.wait_reply(&first, |c| c.contains("Done")).await;
    let second = bot.imagine("second picture");
    bot.send(&second).await;
    let refused = bot.callback(&second).await;
    assert_eq!(refused["data"]["flags"], 64, "a quota refusal is private");
    let text = content(&refused);
    assert!(text.contains("daily quota of 1 image job") && text.contains("<t:") && text.contains(":R>"), "{text}");
    assert_eq!(bot.shortapi.creates().len(), 1, "nothing past the limit reaches the provider");

    // /quota show: limits, usage, reset, who changed them.
    let show = admin(InteractionBuilder::command("quota").subcommand("show"));
    bot.send(&show).await;
    let shown = content(&bot.callback(&show).await);
    assert!(shown.contains("**Daily:** 1 / 1 used"), "{shown}");
    assert!(shown.contains("**Monthly:** 1 used · unlimited"), "{shown}");
    assert!(shown.contains(&format!("Last changed by <@{}>", support::discord::DEFAULT_USER_ID)), "{shown}");

    // /usage: this month's jobs, spend and top members.
    let usage = admin(InteractionBuilder::command("usage"));
    bot.send(&usage).await;
    let report = content(&bot.callback(&usage).await);
    assert!(report.contains("1 counted") && report.contains("spend $0.04"), "{report}");
    assert!(report.contains(&format!("1. <@{}> · 1 job · $0.04", support::discord::DEFAULT_USER_ID)), "{report}");

    // Every change is recorded.
    let recorded: Vec<(String, Option<i32>, Option<i32>)> =
        sqlx::query_as("SELECT limit_name::text, old_value, new_value FROM quota_changes ORDER BY id")
            .fetch_all(&bot.pool)
            .await
            .unwrap();
    assert_eq!(recorded, vec![("daily".into(), None, Some(1)), ("monthly".into(), None, None)]);

    // Admins can read a member's history; members cannot read each other's.
    let peek = InteractionBuilder::command("history")
        .user(1180000000000000999, "bob")
        .user_option("member", support::discord::DEFAULT_USER_ID);
    bot.send(&peek).await;
    assert!(content(&bot.callback(&peek).await).contains("Manage Server"));
    let audit = admin(InteractionBuilder::command("history").user(1180000000000000999, "bob"))
        .user_option("member", support::discord::DEFAULT_USER_ID);
    bot.send(&audit).await;
    let listing = content(&bot.callback(&audit).await);
    assert!(listing.contains("first picture"), "{listing}");
    let _ = WAIT;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_a_role_tier_get_its_limits() {
    const PATRONS: u64 = 1_180_000_000_000_000_700;
    let bot = TestBot::start().await;
    let set = admin(InteractionBuilder::command("quota").subcommand("set").integer("per_user_daily", 1));
    bot.send(&set).await;
    bot.callback(&set).await;
    let tier = admin(
        InteractionBuilder::command("quota")
            .subcommand("role")
            .role_option("role", PATRONS)
            .integer("per_user_daily", 3),
    );
    bot.send(&tier).await;
    let answer = content(&bot.callback(&tier).await);
    assert!(answer.contains(&format!("<@&{PATRONS}>")) && answer.contains("3 jobs a day"), "{answer}");

    // A patron makes three jobs today; a member without the role only one.
    let patron = |prompt: &str| bot.imagine(prompt).user(1_180_000_000_000_000_801, "patron").member_roles(&[PATRONS]);
    for i in 0..3 {
        let cmd = patron(&format!("patron picture {i}"));
        bot.send(&cmd).await;
        bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    }
    let fourth = patron("patron picture 3");
    bot.send(&fourth).await;
    assert!(content(&bot.callback(&fourth).await).contains("daily quota of 3 image jobs"));
    let member = |prompt: &str| bot.imagine(prompt).user(1_180_000_000_000_000_802, "member");
    let first = member("member picture 0");
    bot.send(&first).await;
    bot.wait_reply(&first, |c| c.contains("Done")).await;
    let second = member("member picture 1");
    bot.send(&second).await;
    assert!(content(&bot.callback(&second).await).contains("daily quota of 1 image job"));

    // /quota show lists the tier; clearing it is audited.
    let show = admin(InteractionBuilder::command("quota").subcommand("show"));
    bot.send(&show).await;
    let shown = content(&bot.callback(&show).await);
    assert!(shown.contains(&format!("<@&{PATRONS}> · per member per day: 3")), "{shown}");
    let both = admin(
        InteractionBuilder::command("quota")
            .subcommand("role")
            .role_option("role", PATRONS)
            .integer("per_user_daily", 5)
            .boolean("clear", true),
    );
    bot.send(&both).await;
    let refused = bot.callback(&both).await;
    assert_eq!(refused["data"]["flags"], 64);
    assert!(content(&refused).contains("pick one"));
    let clear = admin(
        InteractionBuilder::command("quota").subcommand("role").role_option("role", PATRONS).boolean("clear", true),
    );
    bot.send(&clear).await;
    bot.callback(&clear).await;
    let audited: Vec<(Option<i64>, Option<i32>, Option<i32>)> =
        sqlx::query_as("SELECT role_id, old_value, new_value FROM quota_changes WHERE role_id IS NOT NULL ORDER BY id")
            .fetch_all(&bot.pool)
            .await
            .unwrap();
    assert_eq!(audited, vec![(Some(PATRONS as i64), None, Some(3)), (Some(PATRONS as i64), Some(3), None)]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_budget_refuses_the_job_that_would_pass_it() {
    let bot = TestBot::start().await;
    let negative = admin(InteractionBuilder::command("quota").subcommand("set").number("monthly_budget", -1.0));
    bot.send(&negative).await;
    let refused = bot.callback(&negative).await;
    assert!(content(&refused).contains("`monthly_budget` must be from 0"), "{refused:#}");

    let set = admin(InteractionBuilder::command("quota").subcommand("set").number("monthly_budget", 0.08));
    bot.send(&set).await;
    assert!(content(&bot.callback(&set).await).contains("Monthly budget: $0.08"));
    // Two jobs at $0.04 spend it; the third would pass it.
    for prompt in ["budget one", "budget two"] {
        let cmd = bot.imagine(prompt);
        bot.send(&cmd).await;
        bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    }
    let third = bot.imagine("budget three");
    bot.send(&third).await;
    let refused = bot.callback(&third).await;
    assert_eq!(refused["data"]["flags"], 64);
    let text = content(&refused);
    assert!(text.contains("monthly image budget of $0.08 is spent") && text.contains(":R>"), "{text}");
    assert_eq!(bot.shortapi.creates().len(), 2, "the refused job never reached the provider");

    // /quota show and /usage show spend against the budget; removing it lets jobs through again.
    let show = admin(InteractionBuilder::command("quota").subcommand("show"));
    bot.send(&show).await;
    let shown = content(&bot.callback(&show).await);
    assert!(shown.contains("**Monthly budget:** $0.08 of $0.08 spent"), "{shown}");
    let usage = admin(InteractionBuilder::command("usage"));
    bot.send(&usage).await;
    assert!(
        content(&bot.callback(&usage).await)
            .contains("spend $0.08 (reported by the image service, refunded jobs included) of a $0.08 budget")
    );
    let remove = admin(InteractionBuilder::command("quota").subcommand("set").string("unlimited", "monthly_budget"));
    bot.send(&remove).await;
    assert!(content(&bot.callback(&remove).await).contains("Monthly budget: none"));
    let fourth = bot.imagine("budget four");
    bot.send(&fourth).await;
    bot.wait_reply(&fourth, |c| c.contains("Done")).await;
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM budget_changes").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(audited, 2, "setting and removing the budget are both audited");
    bot.stop().await;
}
