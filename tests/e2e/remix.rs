//! Remix, end to end: the modal prefilled with the prompt as sent, its submit read like a typed
//! `/imagine` prompt over the original settings, refusals of empty or invalid text; and the whole
//! walk a member takes (result → V2 → Remix → Reroll → U1) with the real binary killed and
//! restarted in the middle.

use std::time::Duration;

use serde_json::Value;

use crate::actions::{EPHEMERAL, custom_id, result};
use crate::support::{
    self, JobRow, TestBot, WAIT,
    discord::{DiscordStandIn, InteractionBuilder},
    process::BotProcess,
    shortapi::{ShortApiStandIn, png_with_seed},
};

const PRESSER: u64 = 535_353_535_353;

/// The value of the modal's one text input.
fn prefilled(modal: &Value) -> &str {
    modal["components"][0]["components"][0]["value"].as_str().unwrap_or_default()
}

/// Opens the Remix modal on `message` and submits `text` in it as `user`; returns the submit.
pub(crate) async fn remix(discord: &DiscordStandIn, message: &Value, text: &str, user: u64) -> InteractionBuilder {
    let id = custom_id(message, "Remix");
    let press = InteractionBuilder::button_press(message, &id).user(user, "remixer");
    discord.dispatch_interaction(press.build()).await;
    let opened = support::eventually(WAIT, || async { discord.modal_for(press.id()).is_some() }).await;
    assert!(opened, "the Remix press opened no modal");
    let modal = discord.modal_for(press.id()).unwrap();
    let input = modal["components"][0]["components"][0]["custom_id"].as_str().unwrap().to_owned();
    let submit = InteractionBuilder::modal_submit(message, modal["custom_id"].as_str().unwrap(), &[(&input, text)])
        .user(user, "remixer");
    discord.dispatch_interaction(submit.build()).await;
    submit
}

/// The answer to an interaction, once given.
async fn answer(discord: &DiscordStandIn, interaction: &InteractionBuilder) -> Value {
    let path = format!("/interactions/{}/", interaction.id());
    let request = discord.wait_for(WAIT, |r| r.is("POST", &path)).await.expect("an answer");
    let dispatched = discord.dispatched_at(interaction.id()).unwrap();
    assert!(request.at.duration_since(dispatched) < Duration::from_secs(3), "answered within 3 s");
    request.json.unwrap()
}

fn is_public_message(callback: &Value) -> bool {
    callback["type"] == 4 && callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remix_opens_a_modal_holding_the_prompt_as_sent() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a sci-fi city --chaos 10").await;
    let before = bot.job_count().await;
    let id = custom_id(&done, "Remix");
    let press = InteractionBuilder::button_press(&done, &id);
    bot.send(&press).await;
    let callback = bot.callback(&press).await;
    assert_eq!(callback["type"], 9, "a modal: {callback:#}");
    let modal = bot.discord.modal_for(press.id()).expect("the stand-in took the modal");
    assert_eq!(modal["custom_id"], id.as_str());
    assert_eq!(modal["title"], "Remix");
    assert_eq!(prefilled(&modal), "a sci fi city", "the prompt as it was sent, cleaned");
    assert_eq!(bot.job_count().await, before, "opening the modal makes no job");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remix_honours_typed_flags_and_keeps_the_rest_of_the_original() {
    let bot = TestBot::start().await;
    let source = png_with_seed(3100, 21);
    let source_url = bot.discord.ephemeral_attachment("remix-source.png", source.clone(), "image/png");
    let cmd = InteractionBuilder::command("imagine")
        .string("prompt", "a harbour town --stylize 200 --ar 4:5")
        .attachment("image", "remix-source.png", Some("image/png"), 3100, &source_url)
        .string("performance", "speed");
    bot.send(&cmd).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;

    let submit = remix(&bot.discord, &done, "a harbour town at night --ar 16:9 --chaos 60 --no cars", PRESSER).await;
    let callback = answer(&bot.discord, &submit).await;
    assert!(is_public_message(&callback), "{callback:#}");
    assert!(callback.to_string().contains("Remix of"), "the reply says what it is: {callback:#}");
    bot.wait_reply(&submit, |c| c.contains("Done")).await;
    bot.wait_job_settled(&submit).await;

    let creates: Vec<Value> = bot.shortapi.creates().iter().map(|c| c.args()).collect();
    let remixed = creates.iter().find(|a| a["prompt"] == "a harbour town at night").expect("the remix was sent");
    assert_eq!(remixed["aspect_ratio"], "16:9");
    assert_eq!(remixed["chaos"], 60);
    assert_eq!(remixed["negative_prompt"], "cars");
    assert_eq!(remixed["stylization"], 200, "kept from the original");
    assert_eq!(remixed["performance"], "speed", "kept from the original");
    let url = remixed["image_urls"][0].as_str().unwrap();
    assert!(reqwest::get(url).await.unwrap().bytes().await.unwrap().to_vec() == source, "the original source");
    let JobRow { user_id: owner, origin, .. } = bot.job(&submit).await.unwrap();
    assert_eq!((owner, origin.as_deref()), (PRESSER as i64, Some("Remix")));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_invalid_remix_is_refused_privately_and_counts_nothing() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a windmill --no fog").await;
    // Blocked after the job ran: a remix may not keep its negative prompt either.
    let block = InteractionBuilder::command("settings")
        .subcommand("blocked_words")
        .string("add", "gore, fog")
        .member_permissions(32);
    bot.send(&block).await;
    bot.callback(&block).await;
    let before = (bot.job_count().await, bot.shortapi.creates().len());
    for (text, expected) in [
        ("   ", "cannot be empty"),
        ("--ar 16:9", "empty once flags"),
        ("a windmill --chaos 500", "chaos"),
        ("a windmill full of gore", "`gore`"),
        ("a windmill at dusk", "negative prompt contains `fog`"),
    ] {
        let submit = remix(&bot.discord, &done, text, PRESSER).await;
        let callback = answer(&bot.discord, &submit).await;
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{text:?}: private");
        let said = callback["data"]["content"].as_str().unwrap();
        assert!(said.contains(expected), "{text:?}: {said}");
    }
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), before, "nothing created or sent");
    bot.stop().await;
}

/// The walk a member takes, with the real binary: result → V2 → (SIGKILL, restart) → Remix →
/// Reroll → U1, each step answered within 3 s, each new job owned by whoever pressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_v2_remix_reroll_u1_across_a_killed_process() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let (database, pool) = support::fresh_pool().await;
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    vars.insert("JOB_LEASE".into(), "2s".into());
    let mut first = BotProcess::spawn(&vars, "walk-first");
    assert!(discord.wait_ready(WAIT).await);
    discord.wait_registered(WAIT).await.unwrap();

    let done = |token: String| {
        let discord = &discord;
        async move {
            let message =
                discord.wait_original(&token, WAIT * 2, |m| m["content"].as_str().unwrap_or("").contains("Done")).await;
            message.expect("a delivered result")
        }
    };
    let cmd = support::imagine_command(&shortapi, "a lighthouse keeper");
    discord.dispatch_interaction(cmd.build()).await;
    let result = done(cmd.token()).await;

    let v2 = InteractionBuilder::button_press(&result, &custom_id(&result, "V2")).user(1001, "vera");
    discord.dispatch_interaction(v2.build()).await;
    assert!(is_public_message(&answer(&discord, &v2).await));
    let varied = done(v2.token()).await;

    first.kill();
    let _second = BotProcess::spawn(&vars, "walk-second");
    assert!(discord.wait_ready_count(2, WAIT).await, "the second process connected");

    let submit = remix(&discord, &varied, "a lighthouse keeper in a storm --ar 2:3", 1002).await;
    assert!(is_public_message(&answer(&discord, &submit).await));
    let remixed = done(submit.token()).await;

    let reroll = InteractionBuilder::button_press(&remixed, &custom_id(&remixed, "Reroll")).user(1003, "rae");
    discord.dispatch_interaction(reroll.build()).await;
    assert!(is_public_message(&answer(&discord, &reroll).await));
    let rerolled = done(reroll.token()).await;

    let u1 = InteractionBuilder::button_press(&rerolled, &custom_id(&rerolled, "U1")).user(1004, "uma");
    discord.dispatch_interaction(u1.build()).await;
    assert_eq!(answer(&discord, &u1).await["type"], 5);
    let single = discord.wait_original(&u1.token(), WAIT, |m| !m["attachments"].as_array().unwrap().is_empty()).await;
    assert!(single.is_some(), "U1 posted the image");

    // Whoever pressed owns and paid for each new job; U made none.
    let owners: Vec<(i64, Option<String>, bool)> =
        support::jobs::jobs(&pool).await.into_iter().map(|j| (j.user_id, j.origin, j.counted)).collect();
    let expected = [
        (support::discord::DEFAULT_USER_ID as i64, None, true),
        (1001, Some("V2".to_owned()), true),
        (1002, Some("Remix".to_owned()), true),
        (1003, Some("Reroll".to_owned()), true),
    ];
    assert_eq!(owners, expected);
    let remix_args =
        shortapi.creates().iter().map(|c| c.args()).find(|a| a["prompt"] == "a lighthouse keeper in a storm");
    assert_eq!(remix_args.expect("the remix was sent")["aspect_ratio"], "2:3");
}
