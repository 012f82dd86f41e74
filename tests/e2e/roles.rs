//! `/settings roles` end to end: while any role is listed, only its members (and admins) start
//! jobs, by `/imagine` or by V, Reroll and Remix; everyone else is refused privately, by name of
//! the roles, and nothing is stored, sent or counted.

use serde_json::Value;

use crate::actions::{custom_id, refusal};
use crate::support::{
    TestBot, WAIT,
    discord::{DEFAULT_GUILD_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD},
};

const ARTISTS: u64 = 1_180_000_000_000_000_710;
const OTHER_ROLE: u64 = 1_180_000_000_000_000_711;
/// A member holding only [`OTHER_ROLE`].
const OUTSIDER: u64 = 1_180_000_000_000_000_811;
/// A member with Manage Server and none of the listed roles.
const ADMIN: u64 = 1_180_000_000_000_000_812;

fn set_role(role: u64, allowed: bool) -> InteractionBuilder {
    InteractionBuilder::command("settings")
        .subcommand("roles")
        .role_option("role", role)
        .boolean("allowed", allowed)
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn show() -> InteractionBuilder {
    InteractionBuilder::command("settings").subcommand("show").member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

/// Sends `interaction` and returns the text of its answer, which must be private.
pub(crate) async fn private_answer(bot: &TestBot, interaction: &InteractionBuilder) -> String {
    bot.send(interaction).await;
    refusal(&bot.callback(interaction).await).to_owned()
}

/// Sends `interaction` and checks it was answered publicly (a job was accepted).
pub(crate) async fn accepted(bot: &TestBot, interaction: &InteractionBuilder) {
    bot.send(interaction).await;
    let callback = bot.callback(interaction).await;
    assert_eq!(callback["type"], 4, "{callback:#}");
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & 64, 0, "a public reply: {callback:#}");
}

pub(crate) async fn count(bot: &TestBot, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&bot.pool).await.unwrap()
}

fn outsider(interaction: InteractionBuilder) -> InteractionBuilder {
    interaction.user(OUTSIDER, "outsider").member_roles(&[OTHER_ROLE])
}

fn press(message: &Value, label: &str) -> InteractionBuilder {
    InteractionBuilder::button_press(message, &custom_id(message, label))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_with_a_listed_role_or_admins_start_jobs() {
    let bot = TestBot::start().await;
    let registered = bot.discord.registered_commands().unwrap();
    let settings = registered.as_array().unwrap().iter().find(|c| c["name"] == "settings").unwrap();
    let roles = settings["options"].as_array().unwrap().iter().find(|o| o["name"] == "roles").expect("registered");
    let options: Vec<(&str, u64, bool)> = roles["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["type"].as_u64().unwrap(), o["required"] == true))
        .collect();
    assert_eq!(options, [("role", 8, true), ("allowed", 5, true)]);

    // Only admins list roles, and @everyone (every member) is not a role to list.
    let sneaky = set_role(ARTISTS, true).member_permissions(DEFAULT_PERMISSIONS);
    assert!(private_answer(&bot, &sneaky).await.contains("Manage Server"));
    let everyone = private_answer(&bot, &set_role(DEFAULT_GUILD_ID, true)).await;
    assert!(everyone.contains("@everyone is every member"), "{everyone}");
    assert_eq!((count(&bot, "guild_job_roles").await, count(&bot, "settings_changes").await), (0, 0));

    let answer = private_answer(&bot, &set_role(ARTISTS, true)).await;
    assert!(answer.contains(&format!("Members with <@&{ARTISTS}> may start image jobs")), "{answer}");

    // A member with the role: accepted, run to a result with buttons.
    let artist = bot.imagine("a paper lantern").member_roles(&[OTHER_ROLE, ARTISTS]);
    bot.send(&artist).await;
    let done = bot.wait_reply(&artist, |c| c.contains("Done")).await;
    bot.wait_job_settled(&artist).await;

    // A member without it: /imagine, V1, Reroll, Remix (the press opens no modal) and a Remix
    // submit are all refused privately, naming the role; nothing is stored, sent or counted.
    let expected = format!(
        "On this server, only members with <@&{ARTISTS}> can start image jobs. Ask a server admin if you think you \
         should."
    );
    assert_eq!(private_answer(&bot, &outsider(bot.imagine("a lantern of my own"))).await, expected);
    for label in ["V1", "Reroll", "Remix"] {
        let pressed = outsider(press(&done, label));
        assert_eq!(private_answer(&bot, &pressed).await, expected, "{label}");
        assert!(bot.discord.modal_for(pressed.id()).is_none(), "{label}: no modal");
    }
    let submit = outsider(InteractionBuilder::modal_submit(
        &done,
        &custom_id(&done, "Remix"),
        &[("prompt", "a lantern remixed")],
    ));
    assert_eq!(private_answer(&bot, &submit).await, expected, "the Remix submit");
    assert_eq!((count(&bot, "jobs").await, bot.shortapi.creates().len()), (1, 1), "nothing stored or sent");

    // An admin without the role passes, by command and by press.
    let as_admin =
        |i: InteractionBuilder| i.user(ADMIN, "admin").member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD);
    accepted(&bot, &as_admin(bot.imagine("the admin's lantern"))).await;
    accepted(&bot, &as_admin(press(&done, "V1"))).await;

    let shown = private_answer(&bot, &show()).await;
    let shown_roles = format!("**Roles:** Only members with <@&{ARTISTS}> (and admins) may start image jobs.");
    assert!(shown.contains(&shown_roles), "{shown}");

    // Taking the last role off opens jobs to everyone again.
    let answer = private_answer(&bot, &set_role(ARTISTS, false)).await;
    assert!(answer.contains("Every member may start image jobs."), "{answer}");
    accepted(&bot, &outsider(bot.imagine("a lantern at last"))).await;
    assert_eq!(bot.shortapi.wait_creates(4, WAIT).await.len(), 4);

    let audited: Vec<(i64, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT changed_by, setting::text, old_value, new_value FROM settings_changes ORDER BY id")
            .fetch_all(&bot.pool)
            .await
            .unwrap();
    let (by, role) = (DEFAULT_USER_ID as i64, Some(ARTISTS.to_string()));
    assert_eq!(audited, [(by, "job_role".into(), None, role.clone()), (by, "job_role".into(), role, None)]);
    let shown = private_answer(&bot, &show()).await;
    assert!(shown.contains(&format!("took <@&{ARTISTS}> off the roles that may start image jobs")), "{shown}");
    bot.stop().await;
}
