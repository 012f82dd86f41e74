//! `/quota member` and `/quota show member:` end to end: one member blocked (by command and by
//! press, nothing stored) and unblocked, audited; one member's count for today reset while the
//! server's counts and spend stay as they were; one member's usage, tier and block shown.

use serde_json::Value;

use crate::actions::{custom_id, result};
use crate::roles::{accepted, count, private_answer};
use crate::support::{
    TestBot, WAIT,
    discord::{DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD},
};

/// A member other than the default one (who is the admin here).
const MEMBER: u64 = 1_180_000_000_000_000_821;
const PATRONS: u64 = 1_180_000_000_000_000_720;
const PAUSED: &str = "An admin of this server has paused your image jobs here.";

fn quota(subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command("quota").subcommand(subcommand).member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn member_command(user: u64) -> InteractionBuilder {
    quota("member").user_option("member", user)
}

fn option_names(command: &Value) -> Vec<(String, u64, bool)> {
    command["options"].as_array().map_or(vec![], |options| {
        options
            .iter()
            .map(|o| (o["name"].as_str().unwrap().to_owned(), o["type"].as_u64().unwrap(), o["required"] == true))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_member_starts_nothing_until_unblocked() {
    let bot = TestBot::start().await;
    let registered = bot.discord.registered_commands().unwrap();
    let quota_command = registered.as_array().unwrap().iter().find(|c| c["name"] == "quota").unwrap();
    let sub = |name: &str| quota_command["options"].as_array().unwrap().iter().find(|o| o["name"] == name).cloned();
    let owned = |list: &[(&str, u64, bool)]| list.iter().map(|(n, t, r)| ((*n).to_owned(), *t, *r)).collect::<Vec<_>>();
    assert_eq!(
        option_names(&sub("member").expect("registered")),
        owned(&[("member", 6, true), ("block", 5, false), ("reset", 5, false)])
    );
    assert_eq!(option_names(&sub("show").unwrap()), owned(&[("member", 6, false)]));

    // Members cannot block each other; an empty command says what to give; neither changes anything.
    let sneaky = member_command(MEMBER).boolean("block", true).member_permissions(DEFAULT_PERMISSIONS);
    assert!(private_answer(&bot, &sneaky).await.contains("Manage Server"));
    let empty = private_answer(&bot, &member_command(MEMBER).boolean("reset", false)).await;
    assert!(empty.contains("Give `block:True`"), "{empty}");
    assert_eq!((count(&bot, "guild_members").await, count(&bot, "member_changes").await), (0, 0));

    let (_, done) = result(&bot, "a quiet pond").await;
    let answer = private_answer(&bot, &member_command(MEMBER).boolean("block", true)).await;
    assert!(answer.contains(&format!("<@{MEMBER}> is blocked")), "{answer}");

    // Blocked: /imagine and a V press are refused privately and calmly; nothing stored or sent.
    let as_member = |i: InteractionBuilder| i.user(MEMBER, "member");
    assert_eq!(private_answer(&bot, &as_member(bot.imagine("my own pond"))).await, PAUSED);
    for label in ["V1", "Remix"] {
        let press = as_member(InteractionBuilder::button_press(&done, &custom_id(&done, label)));
        assert_eq!(private_answer(&bot, &press).await, PAUSED, "{label}");
        assert!(bot.discord.modal_for(press.id()).is_none(), "{label}: no modal");
    }
    assert_eq!((count(&bot, "jobs").await, bot.shortapi.creates().len()), (1, 1), "nothing stored or sent");
    accepted(&bot, &bot.imagine("others are not affected")).await;

    let again = private_answer(&bot, &member_command(MEMBER).boolean("block", true)).await;
    assert!(again.contains("was already blocked") && again.contains(&format!("by <@{DEFAULT_USER_ID}>")), "{again}");
    let shown = private_answer(&bot, &quota("show").user_option("member", MEMBER)).await;
    assert!(shown.contains(&format!("**Blocked** by <@{DEFAULT_USER_ID}> <t:")), "{shown}");

    let answer = private_answer(&bot, &member_command(MEMBER).boolean("block", false)).await;
    assert!(answer.contains(&format!("<@{MEMBER}> may start image jobs here again")), "{answer}");
    accepted(&bot, &as_member(bot.imagine("my own pond at last"))).await;
    assert_eq!(bot.shortapi.wait_creates(3, WAIT).await.len(), 3);
    let answer = private_answer(&bot, &member_command(MEMBER).boolean("block", false)).await;
    assert!(answer.contains("was not blocked; nothing changed"), "{answer}");

    // Who blocked and unblocked whom, and when.
    let audited: Vec<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT user_id, changed_by, action::text, changed_at > now() - interval '1 minute' FROM member_changes \
         ORDER BY id",
    )
    .fetch_all(&bot.pool)
    .await
    .unwrap();
    let (member, admin) = (MEMBER as i64, DEFAULT_USER_ID as i64);
    assert_eq!(audited, [(member, admin, "block".into(), true), (member, admin, "unblock".into(), true)]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_clears_one_members_day_but_not_the_servers_counts_or_spend() {
    let bot = TestBot::start().await;
    private_answer(&bot, &quota("set").integer("per_user_daily", 1)).await;
    result(&bot, "first of the day").await;
    let over = private_answer(&bot, &bot.imagine("second of the day")).await;
    assert!(over.contains("daily quota of 1 image job"), "{over}");

    let answer = private_answer(&bot, &member_command(DEFAULT_USER_ID).boolean("reset", true)).await;
    assert!(answer.contains("count for today is reset") && answer.contains("money spent are unchanged"), "{answer}");
    result(&bot, "third of the day").await;
    let over = private_answer(&bot, &bot.imagine("fourth of the day")).await;
    assert!(over.contains("daily quota of 1 image job"), "the reset counts from then on: {over}");

    // The server still counts both jobs, and both were paid for.
    let shown = private_answer(&bot, &quota("show")).await;
    assert!(shown.contains("**Daily:** 2 used") && shown.contains("busiest member today: 2"), "{shown}");
    let usage = InteractionBuilder::command("usage").member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD);
    let report = private_answer(&bot, &usage).await;
    assert!(report.contains("2 counted") && report.contains("spend $0.08"), "{report}");

    let one = private_answer(&bot, &quota("show").user_option("member", DEFAULT_USER_ID)).await;
    for expected in [
        format!("**Image jobs of <@{DEFAULT_USER_ID}> in this server**"),
        "**Today:** 1 used · per member per day: 1 (the server's)".to_owned(),
        "1 earlier job today no longer counts against them".to_owned(),
        "**This month:** 2 used".to_owned(),
        "**In progress now:** 0".to_owned(),
        "**Tier:** none: the server's per-member limits".to_owned(),
        "**Blocked:** no".to_owned(),
    ] {
        assert!(one.contains(&expected), "{expected} missing from {one}");
    }

    // A member with a role tier: the tier, and the role that gives it.
    let tier = quota("role").role_option("role", PATRONS).integer("per_user_daily", 3);
    private_answer(&bot, &tier).await;
    let patron = private_answer(&bot, &quota("show").member_option("member", MEMBER, &[PATRONS])).await;
    assert!(patron.contains(&format!("**Today:** 0 used · per member per day: 3 (from <@&{PATRONS}>)")), "{patron}");
    assert!(patron.contains(&format!("**Tier:** <@&{PATRONS}>")), "{patron}");
    let audited: Vec<(i64, String)> =
        sqlx::query_as("SELECT user_id, action::text FROM member_changes").fetch_all(&bot.pool).await.unwrap();
    assert_eq!(audited, [(DEFAULT_USER_ID as i64, "reset".to_owned())]);
    bot.stop().await;
}
