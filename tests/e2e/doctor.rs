//! `imagine-bot doctor`, the real binary against the stand-ins: a checklist with a fix for each
//! failure, and the Discord application behind the token: its id, the exact invite URL, and a
//! warning while anyone may add the bot.

use std::{collections::HashMap, path::Path};

use serde_json::json;

use crate::support::{
    self,
    discord::{APP_ID, DiscordStandIn},
    process,
    shortapi::ShortApiStandIn,
};

/// The invite URL for the stand-in's application, as the README tells operators to use it.
const INVITE_URL: &str = "https://discord.com/oauth2/authorize?client_id=1180000000000000001&scope=bot+applications.commands&permissions=274878024704";

/// Runs `imagine-bot doctor` with exactly `vars`; whether it passed, and what it printed.
async fn doctor(vars: &HashMap<String, String>) -> (bool, String) {
    process::run_to_end(Path::new(env!("CARGO_TARGET_TMPDIR")), vars, &["doctor"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_a_checklist_with_fixes() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let database = support::fresh_database().await;
    let vars = support::test_vars(&discord, &shortapi, &database);

    let (ok, out) = doctor(&vars).await;
    assert!(ok, "{out}");
    assert!(out.contains("✓ configuration"), "{out}");
    assert!(out.contains("✓ database: connected to PostgreSQL"), "{out}");
    assert!(out.contains("migration(s) will be applied"), "a fresh database has pending migrations: {out}");
    assert!(out.contains("✓ Discord: the token belongs to imagine-bot"), "{out}");
    assert!(out.contains(&format!("✓ Discord application: id {APP_ID}")), "{out}");
    assert!(out.contains("✓ ShortAPI"), "{out}");

    let mut bad_key = vars.clone();
    bad_key.insert("SHORTAPI_KEY".into(), "wrong-key".into());
    discord.fail_next("GET", "/users/@me", 401, json!({"code": 0, "message": "401: Unauthorized"}));
    let asked_before = discord.requests_matching("GET", "/applications/@me").len();
    let (ok, out) = doctor(&bad_key).await;
    assert!(!ok, "{out}");
    assert!(out.contains("✗ ShortAPI: SHORTAPI_KEY was rejected"), "{out}");
    assert!(out.contains("✗ Discord: DISCORD_TOKEN was rejected"), "{out}");
    assert!(out.contains("fix: reset the token in the developer portal"), "{out}");
    assert!(!out.contains("wrong-key") && !out.contains(support::DISCORD_TOKEN), "no secret is printed: {out}");
    assert!(
        !out.contains("Discord application") && !out.contains("invite"),
        "a rejected token is reported once: {out}"
    );
    assert_eq!(discord.requests_matching("GET", "/applications/@me").len(), asked_before);

    let mut broken = vars.clone();
    broken.remove("DISCORD_TOKEN");
    broken.insert("DATABASE_URL".into(), "postgres://nobody@127.0.0.1:1/none".into());
    let (ok, out) = doctor(&broken).await;
    assert!(!ok);
    assert!(out.contains("✗ configuration: DISCORD_TOKEN is not set"), "{out}");

    let mut no_db = vars.clone();
    no_db.insert("DATABASE_URL".into(), "postgres://nobody@127.0.0.1:1/none".into());
    let (ok, out) = doctor(&no_db).await;
    assert!(!ok);
    assert!(out.contains("✗ database: could not connect") && out.contains("fix: check DATABASE_URL"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_gives_the_invite_url_and_warns_while_the_bot_is_public() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let database = support::fresh_database().await;
    let vars = support::test_vars(&discord, &shortapi, &database);

    // A new application is public: a warning that says how to turn it off, not a failure.
    let (ok, out) = doctor(&vars).await;
    assert!(ok, "a public bot works: {out}");
    assert!(
        out.contains(&format!("✓ Discord application: id {APP_ID}\n      invite it with: {INVITE_URL}\n")),
        "{out}"
    );
    assert!(out.contains("! Discord application: Public Bot is on: anyone who gets the invite link"), "{out}");
    assert!(
        out.contains("fix: in the developer portal, Installation tab: set Install Link to None and save; then Bot tab: turn Public Bot off"),
        "{out}"
    );
    assert!(out.contains("Everything works; 1 warning(s) above."), "{out}");
    let asked = discord.requests_matching("GET", "/api/v10/applications/@me");
    let asked = asked.last().expect("doctor asks Discord for the application");
    assert_eq!(asked.header("authorization"), Some(format!("Bot {}", support::DISCORD_TOKEN).as_str()));
    assert_eq!(asked.status, 200);

    discord.set_bot_public(false);
    let (ok, out) = doctor(&vars).await;
    assert!(ok, "{out}");
    assert!(out.contains(INVITE_URL), "{out}");
    assert!(!out.contains("Public Bot") && !out.contains("  ! "), "a private bot gets no warning: {out}");
    assert!(out.contains("Everything looks right."), "{out}");

    // Refused or failing: a failed check with its fix, and no raw error.
    discord.fail_next("GET", "/applications/@me", 401, json!({"code": 0, "message": "401: Unauthorized"}));
    let (ok, out) = doctor(&vars).await;
    assert!(!ok, "{out}");
    assert!(out.contains("✗ Discord application: DISCORD_TOKEN was rejected (HTTP 401)"), "{out}");
    assert!(out.contains("fix: reset the token in the developer portal (Bot tab)"), "{out}");
    assert!(!out.contains("invite it with"), "{out}");

    discord.fail_next("GET", "/applications/@me", 500, json!({"code": 0, "message": "500: Internal Server Error"}));
    let (ok, out) = doctor(&vars).await;
    assert!(!ok, "{out}");
    assert!(out.contains("✗ Discord application: Discord answered HTTP 500"), "{out}");
    assert!(out.contains("fix: try again in a minute"), "{out}");
}
