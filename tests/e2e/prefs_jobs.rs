//! A member's preferences at work in `/imagine` and the buttons: their defaults in every server
//! (below a typed flag, above the server's), named where they came from; their options expanded
//! once; a blocked word in their suffix refused naming the suffix; remix mode turning V into a
//! modal whose submit is a V job on that image.

use serde_json::Value;

use crate::actions::{custom_id, result};
use crate::support::{
    TestBot, WAIT,
    discord::{DEFAULT_PERMISSIONS, InteractionBuilder, MANAGE_GUILD, OTHER_GUILD_CHANNEL_ID, OTHER_GUILD_ID},
    eventually,
};

const EPHEMERAL: u64 = 64;

/// Sets a preference through `/prefs` (by the default member), checking it was answered privately.
async fn prefer(bot: &TestBot, prefs: InteractionBuilder) {
    bot.send(&prefs).await;
    let callback = bot.callback(&prefs).await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{callback:#}");
}

fn prefs(subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command("prefs").subcommand(subcommand)
}

/// Runs `/imagine` and returns its public "Queued" answer and the arguments the provider got.
async fn accepted(bot: &TestBot, cmd: &InteractionBuilder) -> (Value, Value) {
    bot.send(cmd).await;
    let callback = bot.callback(cmd).await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, 0, "accepted: {callback:#}");
    let prompt: String = sqlx::query_scalar("SELECT prompt_sent FROM jobs WHERE interaction_id = $1")
        .bind(cmd.id() as i64)
        .fetch_one(&bot.pool)
        .await
        .unwrap();
    let sent = |c: &&crate::support::shortapi::RecordedCreate| c.args()["prompt"] == prompt.as_str();
    assert!(eventually(WAIT, || async { bot.shortapi.creates().iter().any(|c| sent(&c)) }).await, "{prompt} sent");
    let args = bot.shortapi.creates().iter().find(sent).unwrap().args();
    (callback, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_defaults_apply_in_every_server_under_typed_flags_and_say_so() {
    let bot = TestBot::start().await;
    let server = InteractionBuilder::command("settings")
        .subcommand("defaults")
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
        .integer("chaos", 20)
        .string("performance", "quality");
    bot.send(&server).await;
    bot.callback(&server).await;
    prefer(&bot, prefs("defaults").string("aspect_ratio", "16:9").integer("chaos", 35)).await;

    // Here: the member's 16:9 and chaos 35 over the server's chaos 20; the server's performance.
    let (callback, args) = accepted(&bot, &bot.imagine("a lighthouse")).await;
    assert_eq!((args["aspect_ratio"].as_str(), args["chaos"].as_i64()), (Some("16:9"), Some(35)), "{args}");
    assert_eq!(args["performance"], "quality");
    let embed = callback["data"]["embeds"][0].to_string();
    assert!(embed.contains("Aspect 16:9 (yours) · quality (server) · stylize 100 · chaos 35 (yours)"), "{embed}");
    assert!(
        embed.contains("Your defaults: aspect ratio 16:9, chaos 35. Server default: performance quality."),
        "{embed}"
    );

    // Another server, no defaults of its own: the member's still apply.
    let elsewhere = bot.imagine("a lighthouse at dusk").guild(OTHER_GUILD_ID).channel(OTHER_GUILD_CHANNEL_ID);
    let (_, args) = accepted(&bot, &elsewhere).await;
    assert_eq!((args["aspect_ratio"].as_str(), args["chaos"].as_i64()), (Some("16:9"), Some(35)), "{args}");
    assert!(args.get("performance").is_none(), "no server default there: {args}");

    // A typed flag beats the preference, and the line names no source for it.
    let (callback, args) = accepted(&bot, &bot.imagine("a lighthouse at noon --ar 2:3")).await;
    assert_eq!(args["aspect_ratio"], "2:3");
    assert!(callback.to_string().contains("Aspect 2:3 · quality (server)"), "{callback}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_expand_once_and_a_blocked_word_in_the_suffix_is_refused_by_name() {
    let bot = TestBot::start().await;
    prefer(&bot, prefs("option").string("name", "cine").string("value", "cinematic lighting --ar 4:5 --moody")).await;
    prefer(&bot, prefs("option").string("name", "moody").string("value", "dark storm clouds")).await;

    // `--cine` becomes its value; the `--moody` inside it stays a literal flag (and is not known).
    let (callback, args) = accepted(&bot, &bot.imagine("a harbour --cine")).await;
    assert_eq!(args["prompt"], "a harbour cinematic lighting", "{args}");
    assert_eq!(args["aspect_ratio"], "4:5");
    assert!(!args.to_string().contains("storm"), "never expanded twice: {args}");
    assert!(callback.to_string().contains("Ignored `--moody`"), "{callback}");

    // The server blocks a word that only the member's suffix brings.
    let block = InteractionBuilder::command("settings")
        .subcommand("blocked_words")
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
        .string("add", "castle");
    bot.send(&block).await;
    bot.callback(&block).await;
    prefer(&bot, prefs("suffix").string("text", "with a castle behind")).await;
    let jobs = bot.job_count().await;
    let cmd = bot.imagine("a quiet field");
    bot.send(&cmd).await;
    let callback = bot.callback(&cmd).await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{callback:#}");
    assert_eq!(
        callback["data"]["content"],
        "Your suffix contains `castle`, which this server does not allow. Remove it and try again."
    );
    assert_eq!(bot.job_count().await, jobs, "nothing stored");

    // Without the blocked word the suffix is added at the end of the prompt text.
    prefer(&bot, prefs("suffix").string("text", "soft light")).await;
    let (_, args) = accepted(&bot, &bot.imagine("a quiet field --ar 3:2")).await;
    assert_eq!(
        (args["prompt"].as_str(), args["aspect_ratio"].as_str()),
        (Some("a quiet field soft light"), Some("3:2"))
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_remix_mode_v_opens_a_modal_whose_submit_varies_that_image() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a red kite over dunes").await;
    prefer(&bot, prefs("remix").boolean("enabled", true)).await;
    let jobs = bot.job_count().await;

    let v2 = custom_id(&done, "V2");
    let press = InteractionBuilder::button_press(&done, &v2);
    bot.send(&press).await;
    let callback = bot.callback(&press).await;
    assert_eq!(callback["type"], 9, "a modal, not a job: {callback:#}");
    let modal = bot.discord.modal_for(press.id()).expect("the stand-in took the modal");
    assert_eq!(modal["custom_id"], v2.as_str(), "the modal carries the V2 button");
    assert_eq!(modal["components"][0]["components"][0]["value"], "a red kite over dunes");
    assert_eq!(bot.job_count().await, jobs, "opening the modal makes no job");

    let input = modal["components"][0]["components"][0]["custom_id"].as_str().unwrap().to_owned();
    let submit = InteractionBuilder::modal_submit(&done, &v2, &[(&input, "a blue kite over dunes --chaos 15")]);
    bot.send(&submit).await;
    bot.callback(&submit).await;
    bot.wait_reply(&submit, |c| c.contains("Done")).await;
    let job = bot.job(&submit).await.expect("the submit made a job");
    assert_eq!(job.origin.as_deref(), Some("V2"));
    let args =
        bot.shortapi.creates().into_iter().find(|c| c.args()["prompt"] == "a blue kite over dunes").unwrap().args();
    assert_eq!(args["chaos"], 15);
    let image = args["image_urls"].as_array().unwrap();
    assert_eq!(image.len(), 1, "one image: the one varied");
    assert!(image[0].as_str().unwrap().contains("imagine-2"), "result image 2: {image:?}");

    // Off again: V makes its job at once.
    prefer(&bot, prefs("remix").boolean("enabled", false)).await;
    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "V1"));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 4);
    bot.stop().await;
}
