//! What the bot's operator can rely on across every server: a daily spend limit, ceilings on
//! what server admins may set, and no service to servers that never added the bot.

use serde_json::{Value, json};

use crate::support::{
    JobRow, TestBot,
    discord::{InteractionBuilder, MANAGE_GUILD},
    shortapi::Behaviour,
};

fn content(callback: &Value) -> String {
    callback["data"]["content"].as_str().unwrap_or_default().to_owned()
}

fn admin(cmd: InteractionBuilder) -> InteractionBuilder {
    cmd.member_permissions(crate::support::discord::DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_spend_limit_refuses_the_job_that_would_pass_it() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("DAILY_SPEND_LIMIT".into(), "0.10".into());
    })
    .await;
    // Two jobs at $0.04 each: $0.08 spent.
    for prompt in ["first at four cents", "second at four cents"] {
        let cmd = bot.imagine(prompt);
        bot.send(&cmd).await;
        bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    }
    // A third would make $0.12: refused privately, in any server, and nothing is sent.
    let third = bot.imagine("third at four cents").guild(crate::support::discord::DEFAULT_GUILD_ID + 1);
    bot.send(&third).await;
    let refused = bot.callback(&third).await;
    assert_eq!(refused["data"]["flags"], 64, "{refused:#}");
    let text = content(&refused);
    assert!(text.contains("spending limit") && text.contains("<t:") && text.contains(":R>"), "{text}");
    assert_eq!(bot.shortapi.creates().len(), 2, "the refused job never reached the provider");
    let stored = bot.job_count().await;
    assert_eq!(stored, 2, "nothing stored for the refused job");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_still_count_as_money_spent() {
    // Every job fails at the provider, which still bills $0.04 for it: the member gets the job
    // back, but the money is gone, so the operator's $0.10 a day allows two such jobs, not six.
    let bot = TestBot::start_with(|vars| {
        vars.insert("DAILY_SPEND_LIMIT".into(), "0.10".into());
    })
    .await;
    bot.shortapi.script(
        "declined",
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "upstream failure".into() },
    );
    for prompt in ["declined one", "declined two"] {
        let cmd = bot.imagine(prompt);
        bot.send(&cmd).await;
        bot.wait_job_settled(&cmd).await;
        let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
        assert_eq!((status.as_str(), counted), ("failed", false), "{prompt}: failed and refunded");
    }
    let third = bot.imagine("declined three");
    bot.send(&third).await;
    let refused = bot.callback(&third).await;
    assert_eq!(refused["data"]["flags"], 64, "{refused:#}");
    assert!(content(&refused).contains("spending limit"), "{refused:#}");
    assert_eq!(bot.shortapi.creates().len(), 2, "the third job never reached the provider");

    // /quota show (with a budget set) and /usage show the same figure the check used.
    let budget = admin(InteractionBuilder::command("quota").subcommand("set").number("monthly_budget", 5.0));
    bot.send(&budget).await;
    bot.callback(&budget).await;
    let show = admin(InteractionBuilder::command("quota").subcommand("show"));
    bot.send(&show).await;
    let shown = content(&bot.callback(&show).await);
    assert!(shown.contains("**Monthly budget:** $0.08 of $5"), "{shown}");
    let usage = admin(InteractionBuilder::command("usage"));
    bot.send(&usage).await;
    let report = content(&bot.callback(&usage).await);
    assert!(report.contains("0 counted · 2 failed and refunded · spend $0.08"), "{report}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_unknown_outcome_counts_at_the_expected_cost() {
    // The create's answer is lost (a gateway 502): the job may be billed, so it is `uncertain`,
    // refunded to the member, and counted at the expected cost against the operator's limit.
    let bot = TestBot::start_with(|vars| {
        vars.insert("DAILY_SPEND_LIMIT".into(), "0.10".into());
        vars.insert("EXPECTED_JOB_COST".into(), "0.06".into());
    })
    .await;
    bot.shortapi.script("lost", Behaviour::CreatedThenHttpError { status: 502 });
    let lost = bot.imagine("lost answer");
    bot.send(&lost).await;
    bot.wait_job_settled(&lost).await;
    let JobRow { status, counted, .. } = bot.job(&lost).await.unwrap();
    assert_eq!((status.as_str(), counted), ("uncertain", false));
    // $0.06 expected + $0.06 for the next job passes $0.10.
    let next = bot.imagine("next one");
    bot.send(&next).await;
    let refused = bot.callback(&next).await;
    assert_eq!(refused["data"]["flags"], 64, "{refused:#}");
    assert!(content(&refused).contains("spending limit"), "{refused:#}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_cannot_set_limits_above_the_operators_ceilings() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("MAX_GUILD_DAILY_LIMIT".into(), "50".into());
        vars.insert("MAX_GUILD_PER_USER_DAILY_LIMIT".into(), "1".into());
    })
    .await;
    for (cmd, over) in [
        (InteractionBuilder::command("quota").subcommand("set").integer("daily", 60), "60"),
        (InteractionBuilder::command("quota").subcommand("set").string("unlimited", "daily"), "unlimited"),
    ] {
        let cmd = admin(cmd);
        bot.send(&cmd).await;
        let refused = bot.callback(&cmd).await;
        assert_eq!(refused["data"]["flags"], 64, "{over}");
        let text = content(&refused);
        assert!(text.contains("at most 50 for `daily`") && text.contains("MAX_GUILD_DAILY_LIMIT"), "{over}: {text}");
    }
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM quota_changes").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(changes, 0, "a refused change changes nothing");

    let within = admin(InteractionBuilder::command("quota").subcommand("set").integer("daily", 50));
    bot.send(&within).await;
    assert!(content(&bot.callback(&within).await).contains("Daily: 50"));

    // The guild's per-member limit is unlimited (the test default), but the ceiling holds.
    let first = bot.imagine("one for me");
    bot.send(&first).await;
    bot.wait_reply(&first, |c| c.contains("Done")).await;
    let second = bot.imagine("another for me");
    bot.send(&second).await;
    let text = content(&bot.callback(&second).await);
    assert!(text.contains("daily quota of 1 image job"), "{text}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_through_a_user_installation_create_nothing() {
    let bot = TestBot::start().await;
    let registered = bot.discord.registered_commands().expect("registered");
    for command in registered.as_array().unwrap() {
        assert_eq!(command["integration_types"], serde_json::json!([0]), "{}: guild installs only", command["name"]);
        assert_eq!(command["contexts"], serde_json::json!([0]), "{}: in servers only", command["name"]);
    }

    let cmd = bot.imagine("from a stranger's server").user_installed();
    bot.send(&cmd).await;
    let refused = bot.callback(&cmd).await;
    assert_eq!(refused["data"]["flags"], 64, "{refused:#}");
    assert!(content(&refused).contains("only works in servers that added it"), "{refused:#}");
    let stored = bot.job_count().await;
    assert_eq!((stored, bot.shortapi.creates().len()), (0, 0), "nothing stored, nothing sent");

    let history = InteractionBuilder::command("history").user_installed();
    bot.send(&history).await;
    assert!(content(&bot.callback(&history).await).contains("only works in servers that added it"));
    bot.stop().await;
}
