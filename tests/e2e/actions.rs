//! Result actions, end to end: the U buttons under a delivered result, presses on them (after a
//! restart, a day later, twice at once) and the private answers to bad presses.

use std::time::Duration;

use imagine_bot::db::DiscordId;
use serde_json::{Value, json};

use crate::support::{
    TestBot, WAIT,
    discord::{
        APP_ID, DEFAULT_CHANNEL_ID, DEFAULT_GUILD_ID, InteractionBuilder, OTHER_GUILD_ID, RecordedRequest,
        SECOND_CHANNEL_ID,
    },
    shortapi::Behaviour,
};

pub(crate) const EPHEMERAL: u64 = 64;

/// The buttons of a message: `(label, custom_id, style)` for each, row by row.
pub(crate) fn buttons(message: &Value) -> Vec<Vec<(String, String, u64)>> {
    message["components"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|row| {
            assert_eq!(row["type"], 1, "an action row: {row}");
            row["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    assert_eq!(b["type"], 2, "a button: {b}");
                    (
                        b["label"].as_str().unwrap().to_owned(),
                        b["custom_id"].as_str().unwrap().to_owned(),
                        b["style"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

/// The `custom_id` of the button labelled `label` on `message`.
pub(crate) fn custom_id(message: &Value, label: &str) -> String {
    buttons(message).concat().into_iter().find(|(l, _, _)| l == label).unwrap_or_else(|| panic!("no {label}")).1
}

/// The text of a refusal: `callback` must be an answer that is a private message.
pub(crate) fn refusal(callback: &Value) -> &str {
    assert_eq!(callback["type"], 4, "{callback:#}");
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "private: {callback:#}");
    callback["data"]["content"].as_str().unwrap()
}

/// Runs `/imagine` with `prompt` to its delivered result; returns the command and the result.
pub(crate) async fn result(bot: &TestBot, prompt: &str) -> (InteractionBuilder, Value) {
    let cmd = bot.imagine(prompt);
    bot.send(&cmd).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    (cmd, done)
}

/// The final edit of a job's reply: the request that uploaded its images.
pub(crate) fn final_edit(bot: &TestBot, cmd: &InteractionBuilder) -> RecordedRequest {
    let path = format!("/webhooks/{}/{}/messages/@original", APP_ID, cmd.token());
    bot.discord
        .requests_matching("PATCH", &path)
        .into_iter()
        .rev()
        .find(|r| !r.files.is_empty())
        .expect("a final edit with files")
}

/// Waits for the press's reply to carry an uploaded file.
pub(crate) async fn uploaded_reply(bot: &TestBot, press: &InteractionBuilder) -> Value {
    let reply =
        bot.discord.wait_original(&press.token(), WAIT, |m| !m["attachments"].as_array().unwrap().is_empty()).await;
    reply.unwrap_or_else(|| {
        panic!("the press got no image: {:#}", bot.discord.original_message(&press.token()).unwrap_or_default())
    })
}

/// The files the bot uploaded with this press's token.
pub(crate) fn uploads_for(bot: &TestBot, press: &InteractionBuilder) -> Vec<Vec<u8>> {
    let path = format!("/{}/messages/@original", press.token());
    bot.discord.requests_matching("PATCH", &path).into_iter().flat_map(|r| r.files).map(|f| f.bytes).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_has_u_buttons_and_u2_posts_image_two_alone() {
    let bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "a lighthouse at dusk").await;

    // Rows of U1–U4, V1–V4, then Reroll, Remix and Delete, with distinct short ids: Discord took them.
    let rows = buttons(&done);
    let labels: Vec<Vec<&str>> = rows.iter().map(|row| row.iter().map(|(l, _, _)| l.as_str()).collect()).collect();
    assert_eq!(
        labels,
        [vec!["U1", "U2", "U3", "U4"], vec!["V1", "V2", "V3", "V4"], vec!["Reroll", "Remix", "Delete"]],
        "{:#}",
        done["components"]
    );
    let all = rows.concat();
    let mut ids: Vec<&str> = all.iter().map(|(_, id, _)| id.as_str()).collect();
    assert!(ids.iter().all(|id| (1..=100).contains(&id.len())), "{ids:?}");
    assert!(rows[0].iter().all(|(_, _, style)| *style == 2));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 11);
    assert_eq!(final_edit(&bot, &cmd).status, 200);
    // Progress edits carry no buttons, and say so (an edit without `components` keeps old ones).
    let edits = bot.discord.requests_matching("PATCH", &cmd.token());
    let progress: Vec<&RecordedRequest> = edits.iter().filter(|r| r.files.is_empty()).collect();
    assert!(!progress.is_empty(), "the reply was edited while the job ran");
    assert!(progress.iter().all(|r| r.json.as_ref().unwrap()["components"] == json!([])));

    let creates = bot.shortapi.creates().len();
    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "U2"));
    bot.send(&press).await;
    let callback = bot.callback(&press).await;
    assert_eq!(callback["type"], 5, "acknowledged at once, before the download: {callback:#}");
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, 0, "a public answer");
    let dispatched = bot.discord.dispatched_at(press.id()).unwrap();
    let acked = bot.discord.requests().into_iter().find(|r| r.is("POST", &format!("/interactions/{}/", press.id())));
    assert!(acked.unwrap().at.duration_since(dispatched) < Duration::from_secs(3));

    // Image 2 alone, as an uploaded file, byte for byte the result's second image.
    let reply = uploaded_reply(&bot, &press).await;
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains("Image 2") && content.contains("a lighthouse at dusk"), "{content}");
    assert_eq!(reply["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(reply["components"], json!([]), "the single image has no buttons");
    let uploads = uploads_for(&bot, &press);
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0], final_edit(&bot, &cmd).files[1].bytes, "the upload is the result's second image");
    assert_ne!(uploads[0], final_edit(&bot, &cmd).files[0].bytes);

    // No provider call, nothing stored or counted.
    assert_eq!(bot.shortapi.creates().len(), creates);
    assert_eq!(bot.job_count().await, 1);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_works_after_a_restart_and_days_later() {
    let mut bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "an old mill in fog").await;
    let stale_url = done["attachments"][2]["url"].as_str().unwrap().to_owned();
    assert!(reqwest::get(&stale_url).await.unwrap().status().is_success());

    bot.restart().await;
    // Three days pass: every attachment URL issued so far is dead.
    bot.discord.advance_cdn_clock(Duration::from_secs(3 * 24 * 3600));
    assert_eq!(reqwest::get(&stale_url).await.unwrap().status(), 404, "the old URL expired");

    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "U3"));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 5);
    uploaded_reply(&bot, &press).await;
    assert_eq!(uploads_for(&bot, &press), [final_edit(&bot, &cmd).files[2].bytes.clone()]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_presses_are_answered_privately_and_create_nothing() {
    let bot = TestBot::start().await;
    bot.shortapi.script(
        "two images",
        Behaviour::Succeed {
            polls_before_done: 1,
            images: 2,
            image_bytes: 2048,
            amount: "0.04".into(),
            progress: false,
        },
    );
    bot.shortapi.script(
        "refused",
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "flagged".into() },
    );
    let (_, four) = result(&bot, "four images of a harbour").await;
    let (_, two) = result(&bot, "two images of a harbour").await;
    let failed_cmd = bot.imagine("refused harbour");
    bot.send(&failed_cmd).await;
    let failed = bot.wait_reply(&failed_cmd, |c| c.contains("Not generated")).await;
    bot.wait_job_settled(&failed_cmd).await;
    assert_eq!(buttons(&failed), Vec::<Vec<_>>::new(), "a declined job has no buttons");
    let two_labels: Vec<String> = buttons(&two).concat().into_iter().map(|(l, _, _)| l).collect();
    assert_eq!(
        two_labels,
        ["U1", "U2", "V1", "V2", "Reroll", "Remix", "Delete"],
        "only the numbers that have an image"
    );
    let failed_job: uuid::Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE interaction_id = $1")
        .bind(failed_cmd.id() as i64)
        .fetch_one(&bot.pool)
        .await
        .unwrap();
    let u1 = custom_id(&four, "U1");
    let two_u2 = custom_id(&two, "U2");
    let two_job = two_u2.rsplit(':').next().unwrap();
    let (jobs, creates) = (bot.job_count().await, bot.shortapi.creates().len());

    let cases = [
        (InteractionBuilder::button_press(&four, "imagine:1:U2:not-a-job"), "does not work any more"),
        (InteractionBuilder::button_press(&four, "something else entirely"), "does not work any more"),
        (InteractionBuilder::button_press(&four, &u1.replace("imagine:1:", "imagine:2:")), "newer version of the bot"),
        (
            InteractionBuilder::button_press(&four, &format!("imagine:1:U1:{}", uuid::Uuid::new_v4().simple())),
            "no longer exists",
        ),
        (InteractionBuilder::button_press(&four, &u1).guild(OTHER_GUILD_ID), "another server"),
        (
            InteractionBuilder::button_press(&failed, &format!("imagine:1:U1:{}", failed_job.simple())),
            "did not produce any images",
        ),
        (InteractionBuilder::button_press(&two, &format!("imagine:1:U4:{two_job}")), "has no image 4"),
        (InteractionBuilder::button_press(&four, &u1).user_installed(), "only works in servers that added it"),
    ];
    // The server keeps the bot to another channel: the buttons here stop working too.
    let elsewhere = InteractionBuilder::button_press(&four, &u1);
    for (press, expected) in &cases {
        bot.send(press).await;
        let callback = bot.callback(press).await;
        assert_eq!(callback["type"], 4, "{expected}: {callback:#}");
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{expected}: private");
        let text = callback["data"]["content"].as_str().unwrap();
        assert!(text.contains(expected), "{expected}: {text}");
    }
    imagine_bot::db::settings::set_channel(
        &bot.pool,
        DEFAULT_GUILD_ID.into(),
        SECOND_CHANNEL_ID.into(),
        true,
        DiscordId::new(1),
    )
    .await
    .unwrap();
    bot.send(&elsewhere).await;
    let callback = bot.callback(&elsewhere).await;
    assert_eq!((callback["type"].as_u64(), callback["data"]["flags"].as_u64()), (Some(4), Some(EPHEMERAL)));
    let text = callback["data"]["content"].as_str().unwrap();
    assert!(text.contains(&format!("only work in <#{SECOND_CHANNEL_ID}>")), "{text}");

    // Nothing followed the refusals, nothing was made.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (press, _) in &cases {
        assert!(bot.discord.requests_matching("PATCH", &press.token()).is_empty());
    }
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), (jobs, creates));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_posted_in_the_channel_has_buttons_that_work() {
    let bot = TestBot::start().await;
    bot.shortapi.script("late", Behaviour::succeed_after(8));
    let cmd = bot.imagine("late tram in the rain");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Submitted") || c.contains("Generating")).await;
    bot.discord.expire_token(&cmd.token());
    bot.wait_job_settled(&cmd).await;
    let posted = bot
        .discord
        .channel_messages(DEFAULT_CHANNEL_ID)
        .into_iter()
        .find(|m| m["content"].as_str().unwrap_or("").contains("Done"))
        .expect("the result went to the channel");
    let labels: Vec<String> = buttons(&posted).concat().into_iter().map(|(l, _, _)| l).collect();
    assert_eq!(labels, ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "Reroll", "Remix", "Delete"]);

    let press = InteractionBuilder::button_press(&posted, &custom_id(&posted, "U4"));
    bot.send(&press).await;
    uploaded_reply(&bot, &press).await;
    let post = bot.discord.requests_matching("POST", &format!("/channels/{DEFAULT_CHANNEL_ID}/messages"));
    assert_eq!(uploads_for(&bot, &press), [post.last().unwrap().files[3].bytes.clone()]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_dispatched_twice_posts_one_image() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "twin peaks at noon").await;
    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "U1"));
    // Two processes on one shard, or a gateway replay: the same interaction arrives twice.
    bot.send(&press).await;
    bot.send(&press).await;
    uploaded_reply(&bot, &press).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let callbacks = bot.discord.requests_matching("POST", &format!("/interactions/{}/", press.id()));
    let statuses: Vec<u16> = callbacks.iter().map(|r| r.status).collect();
    assert_eq!(statuses.len(), 2, "both deliveries of the press were handled: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "acknowledged once: {statuses:?}");
    assert_eq!(uploads_for(&bot, &press).len(), 1, "one upload");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discord_stand_in_refuses_invalid_buttons() {
    let bot = TestBot::start().await;
    let url = format!("{}/api/v10/channels/{DEFAULT_CHANNEL_ID}/messages", bot.discord.proxy_url());
    let button = |id: &str| json!({"type": 2, "style": 2, "label": "U1", "custom_id": id});
    let row = |buttons: Vec<Value>| json!({"type": 1, "components": buttons});
    let invalid = [
        json!([row(vec![])]),
        json!([row((0..6).map(|i| button(&format!("b{i}"))).collect())]),
        json!((0..6).map(|i| row(vec![button(&format!("r{i}"))])).collect::<Vec<_>>()),
        json!([row(vec![button("")])]),
        json!([row(vec![button(&"x".repeat(101))])]),
        json!([row(vec![button("same")]), row(vec![button("same")])]),
        json!([row(vec![json!({"type": 2, "style": 2, "label": "x".repeat(81), "custom_id": "a"})])]),
        json!([row(vec![json!({"type": 2, "style": 2, "label": "U1"})])]),
        json!([row(vec![json!({"type": 2, "style": 5, "label": "site", "custom_id": "a", "url": "https://x"})])]),
        json!([row(vec![json!({"type": 2, "style": 9, "label": "U1", "custom_id": "a"})])]),
        json!([{"type": 2, "components": [button("a")]}]),
    ];
    let http = reqwest::Client::new();
    for components in invalid {
        let response = http
            .post(&url)
            .header("Authorization", "Bot x")
            .json(&json!({"content": "hi", "components": components}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{components}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], 50035, "{components}");
    }
    let valid = json!([row(vec![button("a"), json!({"type": 2, "style": 5, "label": "site", "url": "https://x"})])]);
    let response = http.post(&url).json(&json!({"content": "hi", "components": valid})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["components"], valid, "stored on the message");
    bot.stop().await;
}
