//! `/me` end to end: a member with a role tier sees what they have left today and this month under
//! their own limits and the server's, their tier and its role, their jobs in progress and waiting,
//! when each window resets, and their spend this month, refunded jobs' reported amounts included.

use serde_json::json;

use crate::roles::{accepted, private_answer};
use crate::support::{
    TestBot, WAIT,
    discord::{DEFAULT_PERMISSIONS, InteractionBuilder, MANAGE_GUILD},
    eventually,
    shortapi::Behaviour,
};

const MEMBER: u64 = 1_180_000_000_000_000_917;
const PATRONS: u64 = 1_180_000_000_000_000_918;

fn admin(subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command("quota").subcommand(subcommand).member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn as_member(interaction: InteractionBuilder) -> InteractionBuilder {
    interaction.user(MEMBER, "member").member_roles(&[PATRONS])
}

async fn status_of(bot: &TestBot, interaction: &InteractionBuilder) -> String {
    bot.job(interaction).await.map(|j| j.status).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_shows_what_is_left_the_tier_the_jobs_in_progress_and_the_spend() {
    let bot = TestBot::start().await;
    let registered = bot.discord.registered_commands().unwrap();
    let me = registered.as_array().unwrap().iter().find(|c| c["name"] == "me").expect("/me is registered");
    assert!(me["default_member_permissions"].is_null(), "for everyone: {me:#}");
    assert_eq!(me["contexts"], json!([0]), "guild only: {me:#}");

    private_answer(&bot, &admin("set").integer("daily", 10).integer("monthly", 50).integer("per_user_daily", 2)).await;
    let tier = admin("role").role_option("role", PATRONS).integer("per_user_daily", 5).integer("max_concurrent", 3);
    private_answer(&bot, &tier).await;

    // Before any job: everything left, nothing spent.
    let fresh = private_answer(&bot, &as_member(InteractionBuilder::command("me"))).await;
    assert!(fresh.contains("**You can start:** 5 more today"), "{fresh}");
    assert!(fresh.contains("**Spent this month:** $0 "), "{fresh}");

    // Two results, one failure at the provider (refunded, but its amount was reported and spent),
    // one job generating, one whose create is still on its way (waiting, not priced yet); and one
    // job of someone else, which counts only for the server.
    bot.shortapi.script(
        "refused",
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "flagged".into() },
    );
    bot.shortapi.script("forever", Behaviour::NeverFinish);
    for prompt in ["a red kite", "a blue kite", "a refused kite"] {
        let cmd = as_member(bot.imagine(prompt));
        accepted(&bot, &cmd).await;
        bot.wait_job_settled(&cmd).await;
    }
    let others = bot.imagine("someone else's kite");
    accepted(&bot, &others).await;
    bot.wait_job_settled(&others).await;
    let generating = as_member(bot.imagine("a kite flying forever"));
    accepted(&bot, &generating).await;
    assert!(eventually(WAIT, || async { status_of(&bot, &generating).await == "running" }).await);
    bot.shortapi.hold_creates();
    let waiting = as_member(bot.imagine("a kite on its way"));
    accepted(&bot, &waiting).await;
    assert!(eventually(WAIT, || async { status_of(&bot, &waiting).await == "submitting" }).await);

    let text = private_answer(&bot, &as_member(InteractionBuilder::command("me"))).await;
    let reset_day = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).unwrap();
    for expected in [
        "**Your image jobs in this server**".to_owned(),
        "**You can start:** 1 more today".to_owned(),
        format!(
            "**Today:** 4 used · yours: 1 of 5 left (from <@&{PATRONS}>) · the server's: 5 of 10 left · resets <t:{}:R>",
            reset_day.and_utc().timestamp()
        ),
        "**This month:** 4 used · the server's: 45 of 50 left · resets <t:".to_owned(),
        format!("**In progress:** 2 (1 waiting their turn) · at once: 3 (from <@&{PATRONS}>)"),
        format!("**Tier:** <@&{PATRONS}>"),
        "**Spent this month:** $0.20 (reported by the image service, refunded jobs included, plus $0.04 each for 1 \
         job not yet priced)"
            .to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected} missing from {text}");
    }

    // Without the role, the server's per-member limit applies.
    let plain = private_answer(&bot, &InteractionBuilder::command("me").user(MEMBER, "member")).await;
    assert!(plain.contains("yours: 0 of 2 left (the server's)"), "{plain}");
    assert!(plain.contains("**Tier:** none: the server's per-member limits"), "{plain}");
    bot.shortapi.answer_creates();
    bot.stop().await;
}
