//! `/prefs` end to end: a member's own defaults, suffix, named options and remix mode, set through
//! the real bot, shown with whose each value is, the same in two servers, audited, cleared again;
//! bad input refused with nothing changed, and the limit of 20 options.

use serde_json::Value;

use crate::support::{
    TestBot,
    discord::{DEFAULT_PERMISSIONS, InteractionBuilder, MANAGE_GUILD, OTHER_GUILD_CHANNEL_ID, OTHER_GUILD_ID},
};

const EPHEMERAL: u64 = 64;
const OTHER_MEMBER: u64 = 1180000000000000377;

fn prefs(subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command("prefs").subcommand(subcommand)
}

/// Sends the interaction and returns its answer's text, asserting that it was private.
async fn private_answer(bot: &TestBot, interaction: &InteractionBuilder) -> String {
    bot.send(interaction).await;
    let callback = bot.callback(interaction).await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{callback:#}");
    callback["data"]["content"].as_str().unwrap_or_default().to_owned()
}

/// The audit, oldest first: (guild, what, old, new).
async fn audit(bot: &TestBot) -> Vec<(i64, String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT guild_id, what, old_value, new_value FROM user_prefs_changes ORDER BY id")
        .fetch_all(&bot.pool)
        .await
        .unwrap()
}

fn assert_contains(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "{e:?} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_follow_the_member_into_every_server_and_are_audited() {
    let bot = TestBot::start().await;
    let registered = bot.discord.registered_commands().unwrap();
    let command = registered.as_array().unwrap().iter().find(|c| c["name"] == "prefs").expect("registered");
    assert!(command["default_member_permissions"].is_null(), "every member may use it: {command:#}");
    let names = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&command["options"]), ["show", "defaults", "suffix", "option", "remix"]);
    let sub = |name: &str| command["options"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap().clone();
    assert_eq!(
        names(&sub("defaults")["options"]),
        ["aspect_ratio", "performance", "stylization", "chaos", "weirdness", "negative_prompt", "reset"]
    );
    assert_eq!(names(&sub("option")["options"]), ["name", "value"]);
    assert_eq!(sub("suffix")["options"][0]["max_length"], 200);

    let fresh = private_answer(&bot, &prefs("show")).await;
    assert_contains(
        &fresh,
        &["- aspect ratio: 1:1 (built-in)", "Suffix: none", "Options: none (up to 20", "Remix mode: off"],
    );

    // The server has a default of its own; the member's own defaults come first.
    let server = InteractionBuilder::command("settings")
        .subcommand("defaults")
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
        .integer("chaos", 20)
        .string("aspect_ratio", "2:3");
    bot.send(&server).await;
    bot.callback(&server).await;

    let defaults = prefs("defaults").string("aspect_ratio", "16:9").string("negative_prompt", "low-poly blur");
    let answer = private_answer(&bot, &defaults).await;
    assert_contains(&answer, &["aspect ratio not set → **16:9**", "Adjusted your negative prompt"]);
    let answer = private_answer(&bot, &prefs("suffix").string("text", "soft light")).await;
    assert_contains(&answer, &["Your suffix is now `soft light`"]);
    let option = prefs("option").string("name", "--Cine").string("value", "cinematic lighting --ar 21:9");
    let answer = private_answer(&bot, &option).await;
    assert_contains(&answer, &["`--cine` in a prompt now becomes `cinematic lighting --ar 21:9`", "nearest one, 16:9"]);
    let answer = private_answer(&bot, &prefs("remix").boolean("enabled", true)).await;
    assert_contains(&answer, &["Remix mode is on"]);
    let answer = private_answer(&bot, &prefs("remix").boolean("enabled", true)).await;
    assert_contains(&answer, &["Remix mode is already on"]);

    let here = private_answer(&bot, &prefs("show")).await;
    let mine = [
        "- negative prompt: low poly blur (yours)",
        "Suffix: `soft light`",
        "Options (1 of 20):\n- `--cine` → `cinematic lighting --ar 21:9`",
        "Remix mode: on",
    ];
    assert_contains(&here, &mine);
    assert_contains(
        &here,
        &["- aspect ratio: 16:9 (yours)", "- chaos: 20 (server)", "- performance: balance (built-in)"],
    );
    // Another server: the same preferences, under that server's (absent) defaults.
    let elsewhere = private_answer(&bot, &prefs("show").guild(OTHER_GUILD_ID).channel(OTHER_GUILD_CHANNEL_ID)).await;
    assert_contains(&elsewhere, &mine);
    assert_contains(&elsewhere, &["- aspect ratio: 16:9 (yours)", "- chaos: 0 (built-in)"]);
    // Another member has none of them.
    let theirs = private_answer(&bot, &prefs("show").user(OTHER_MEMBER, "bob")).await;
    assert_contains(&theirs, &["- aspect ratio: 2:3 (server)", "Suffix: none", "Options: none", "Remix mode: off"]);

    let guild = crate::support::discord::DEFAULT_GUILD_ID as i64;
    let text = |s: &str| Some(s.to_owned());
    assert_eq!(
        audit(&bot).await,
        [
            (guild, "aspect ratio".into(), None, text("16:9")),
            (guild, "negative prompt".into(), None, text("low poly blur")),
            (guild, "suffix".into(), None, text("soft light")),
            (guild, "option --cine".into(), None, text("cinematic lighting --ar 21:9")),
            (guild, "remix".into(), text("off"), text("on")),
        ],
        "one row per change, none for what was already so"
    );

    // Deleting one's preferences, from the other server this time.
    let there = |b: InteractionBuilder| b.guild(OTHER_GUILD_ID).channel(OTHER_GUILD_CHANNEL_ID);
    let answer = private_answer(&bot, &there(prefs("defaults").boolean("reset", true))).await;
    assert_contains(&answer, &["Your personal defaults are cleared"]);
    let answer = private_answer(&bot, &there(prefs("option").string("name", "cine"))).await;
    assert_contains(&answer, &["Your option `--cine` is deleted"]);
    let answer = private_answer(&bot, &there(prefs("suffix"))).await;
    assert_contains(&answer, &["Your suffix is removed"]);
    let answer = private_answer(&bot, &there(prefs("remix").boolean("enabled", false))).await;
    assert_contains(&answer, &["Remix mode is off"]);
    let cleared = private_answer(&bot, &prefs("show")).await;
    assert_contains(
        &cleared,
        &["- aspect ratio: 2:3 (server)", "- negative prompt: none (built-in)", "Suffix: none", "Options: none"],
    );
    let audit = audit(&bot).await;
    assert_eq!(audit.len(), 10, "{audit:?}");
    assert_eq!(audit[5], (OTHER_GUILD_ID as i64, "aspect ratio".into(), text("16:9"), None));
    assert_eq!(audit[7], (OTHER_GUILD_ID as i64, "option --cine".into(), text("cinematic lighting --ar 21:9"), None));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preferences_are_refused_and_options_stop_at_twenty() {
    let bot = TestBot::start().await;
    let long = "a".repeat(201);
    let refused: [(InteractionBuilder, &str); 9] = [
        (prefs("option").string("name", "ar").string("value", "x"), "`--ar` is already a flag"),
        (prefs("option").string("name", "--no").string("value", "x"), "`--no` is already a flag"),
        (prefs("option").string("name", "2x").string("value", "x"), "starts with a letter"),
        (prefs("option").string("name", "bad").string("value", "--ar banana"), "In the value of `--bad`"),
        (prefs("option").string("name", "ghost"), "You have no option `--ghost` to delete"),
        (prefs("suffix").string("text", &long), "longer than 200 characters"),
        (prefs("suffix").string("text", "moody --ar 16:9"), "`--ar` would lose its meaning"),
        (prefs("defaults").integer("chaos", 101), "`chaos` must be from 0 to 100"),
        (prefs("defaults").boolean("reset", true).integer("chaos", 5), "`/prefs defaults reset:True` on its own"),
    ];
    for (interaction, expected) in &refused {
        let answer = private_answer(&bot, interaction).await;
        assert!(answer.contains(expected), "{expected:?} missing from {answer}");
    }
    assert!(audit(&bot).await.is_empty(), "a refusal changes nothing");

    for i in 1..=20 {
        let answer = private_answer(&bot, &prefs("option").string("name", &format!("o{i}")).string("value", "x")).await;
        assert!(answer.contains("now becomes"), "{answer}");
    }
    // A fresh interaction each time: Discord answers each interaction once.
    let extra = || prefs("option").string("name", "o21").string("value", "x");
    assert_contains(&private_answer(&bot, &extra()).await, &["You already have 20 options"]);
    let replace = prefs("option").string("name", "o5").string("value", "y");
    assert_contains(&private_answer(&bot, &replace).await, &["`--o5` in a prompt now becomes `y`"]);
    let shown = private_answer(&bot, &prefs("show")).await;
    assert_contains(&shown, &["Options (20 of 20):", "- `--o5` → `y`"]);
    assert!(!shown.contains("--o21"), "{shown}");
    let options: Value = sqlx::query_scalar("SELECT options FROM user_prefs").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(options.as_object().unwrap().len(), 20);

    assert_contains(&private_answer(&bot, &prefs("option").string("name", "o1")).await, &["deleted"]);
    assert_contains(&private_answer(&bot, &extra()).await, &["`--o21` in a prompt now becomes `x`"]);
    assert_eq!(audit(&bot).await.len(), 23, "20 added, one replaced, one deleted, one added");
    bot.stop().await;
}
