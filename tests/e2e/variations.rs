//! New jobs from a result's buttons, end to end: V<n> and Reroll start a job owned and paid for
//! by whoever pressed, answered with its own public reply that the worker drives like any
//! `/imagine` reply; refusals are private; a press dispatched twice makes one job; presses work
//! after a restart and after every link issued so far has expired.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::actions::{EPHEMERAL, buttons, custom_id, final_edit, result};
use crate::support::{
    JobRow, TestBot,
    discord::{APP_ID, DEFAULT_USER_ID, InteractionBuilder, OTHER_GUILD_ID},
    shortapi::{Behaviour, RecordedCreate, ShortApiStandIn, png_with_seed},
};

/// A member other than the one who ran `/imagine`.
const PRESSER: u64 = 424_242_424_242;

/// Presses `label` on `message` as `user`, and checks the answer is a public message sent within
/// Discord's three seconds.
async fn press_for_job(bot: &TestBot, message: &Value, label: &str, user: u64) -> InteractionBuilder {
    let press = InteractionBuilder::button_press(message, &custom_id(message, label)).user(user, "presser");
    bot.send(&press).await;
    let callback = bot.callback(&press).await;
    assert_eq!(callback["type"], 4, "{label}: answered with a new message: {callback:#}");
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, 0, "{label}: a public reply");
    let dispatched = bot.discord.dispatched_at(press.id()).unwrap();
    let acked = bot.discord.requests().into_iter().find(|r| r.is("POST", &format!("/interactions/{}/", press.id())));
    assert!(acked.unwrap().at.duration_since(dispatched) < Duration::from_secs(3), "{label}: answered within 3 s");
    press
}

/// The bytes behind a URL (a Discord attachment link, or an image on the provider's host).
async fn fetch(url: &str) -> Vec<u8> {
    let response = reqwest::get(url).await.unwrap();
    assert!(response.status().is_success(), "{url} answered {}", response.status());
    response.bytes().await.unwrap().to_vec()
}

/// The create the provider received for the job whose prompt contains `needle`, the `nth` one.
fn create_for(bot: &TestBot, needle: &str, nth: usize) -> RecordedCreate {
    let creates: Vec<RecordedCreate> = bot
        .shortapi
        .creates()
        .into_iter()
        .filter(|c| c.args()["prompt"].as_str().is_some_and(|p| p.contains(needle)))
        .collect();
    creates.get(nth).cloned().unwrap_or_else(|| panic!("no create #{nth} for {needle:?}: {} seen", creates.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_starts_a_job_on_image_two_owned_and_paid_by_the_presser() {
    let bot = TestBot::start().await;
    let prompt = "a harbour at dawn --ar 3:2 --chaos 20 --no boats";
    let (cmd, done) = result(&bot, prompt).await;
    let parent = bot.job(&cmd).await.unwrap().id;
    let image_two = final_edit(&bot, &cmd).files.into_iter().find(|f| f.filename == "imagine-2.png").unwrap().bytes;

    let press = press_for_job(&bot, &done, "V2", PRESSER).await;
    let queued = bot.discord.original_message(&press.token()).unwrap();
    assert!(queued["content"].as_str().unwrap().contains("Queued"), "{queued:#}");
    assert!(queued.to_string().contains("Variation of image 2"), "the reply says what it is: {queued:#}");

    // Its own reply is driven to a result with buttons of its own.
    let child_done = bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    let JobRow { id: child, user_id: owner, parent_job_id: from, origin, status, counted, .. } =
        bot.job(&press).await.unwrap();
    assert_eq!(
        (owner, from, origin.as_deref(), status.as_str(), counted),
        (PRESSER as i64, Some(parent), Some("V2"), "succeeded", true)
    );
    let ids: Vec<String> = buttons(&child_done).concat().into_iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids.len(), 11, "{:#}", child_done["components"]);
    assert!(ids.iter().all(|id| id.ends_with(&child.simple().to_string())), "the new result's buttons are its own");
    assert_ne!(done["id"], child_done["id"], "never an edit of the pressed result");

    // Image 2 is the source; prompt, settings and negative prompt are the original's.
    let original = create_for(&bot, "a harbour at dawn", 0).args();
    let varied = create_for(&bot, "a harbour at dawn", 1).args();
    let sources = varied["image_urls"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert!(fetch(sources[0].as_str().unwrap()).await == image_two, "image_urls[0] is result image 2");
    for key in ["prompt", "negative_prompt", "aspect_ratio", "chaos", "mode"] {
        assert_eq!(varied[key], original[key], "{key}");
    }
    assert_eq!(varied["aspect_ratio"], "3:2");
    assert_eq!(varied["negative_prompt"], "boats");

    // The presser paid: their job counts against them, not against the member who ran /imagine.
    let per_user: Vec<(i64, i64)> =
        sqlx::query_as("SELECT user_id, count(*) FROM jobs WHERE counted GROUP BY user_id ORDER BY user_id")
            .fetch_all(&bot.pool)
            .await
            .unwrap();
    let mut expected = [(DEFAULT_USER_ID as i64, 1), (PRESSER as i64, 1)];
    expected.sort_unstable();
    assert_eq!(per_user, expected);

    // The presser's history links the new job to the result it came from.
    let history = InteractionBuilder::command("history").user(PRESSER, "presser");
    bot.send(&history).await;
    let text = bot.callback(&history).await["data"]["content"].as_str().unwrap().to_owned();
    let link = format!(
        "V2 of [this result](https://discord.com/channels/{}/{}/{})",
        done["guild_id"].as_str().unwrap(),
        done["channel_id"].as_str().unwrap(),
        done["id"].as_str().unwrap()
    );
    assert!(text.contains(&link), "{text}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reroll_sends_exactly_the_original_sources_references_prompt_and_settings() {
    let bot = TestBot::start().await;
    // Two sources, a style and an omni reference: eight files with the four results.
    let pictures: Vec<(&str, &str, Vec<u8>)> = vec![
        ("image", "reroll-source.png", png_with_seed(3000, 11)),
        ("image2", "reroll-second.png", png_with_seed(2900, 13)),
        ("style_image", "reroll-style.png", png_with_seed(2500, 12)),
        ("omni_image", "reroll-omni.png", png_with_seed(2700, 14)),
    ];
    let mut cmd = InteractionBuilder::command("imagine")
        .string("prompt", "a glass greenhouse --stylize 300 --weird 50")
        .integer("style_weight", 400)
        .integer("omni_weight", 700)
        .string("performance", "quality")
        .string("negative_prompt", "people");
    for (option, name, bytes) in &pictures {
        let url = bot.discord.ephemeral_attachment(name, bytes.clone(), "image/png");
        cmd = cmd.attachment(option, name, Some("image/png"), bytes.len() as u64, &url);
    }
    bot.send(&cmd).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    let names: Vec<&str> =
        done["attachments"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "imagine-1.png",
            "imagine-2.png",
            "imagine-3.png",
            "imagine-4.png",
            "source-1.png",
            "source-2.png",
            "style-1.png",
            "omni-1.png"
        ]
    );

    let press = press_for_job(&bot, &done, "Reroll", PRESSER).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    let original = create_for(&bot, "a glass greenhouse", 0).args();
    let rerolled = create_for(&bot, "a glass greenhouse", 1).args();
    let mut expected = original.clone();
    for key in ["image_urls", "style_image_urls", "omni_image_url"] {
        expected[key] = rerolled[key].clone();
    }
    assert_eq!(rerolled, expected, "everything but the links is the original's");
    let sent = [
        &rerolled["image_urls"][0],
        &rerolled["image_urls"][1],
        &rerolled["style_image_urls"][0],
        &rerolled["omni_image_url"],
    ];
    for (url, (option, _, bytes)) in sent.into_iter().zip(&pictures) {
        assert!(fetch(url.as_str().unwrap()).await == *bytes, "{option}: the same picture");
    }
    assert_eq!((&rerolled["style_weight"], &rerolled["omni_weight"]), (&400.into(), &700.into()));
    assert_eq!(bot.job(&press).await.unwrap().origin.as_deref(), Some("Reroll"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_dispatched_twice_makes_one_job() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a quiet pond").await;
    let before = (bot.job_count().await, bot.shortapi.creates().len());
    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "V1")).user(PRESSER, "presser");
    bot.send(&press).await;
    bot.send(&press).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    assert_eq!(bot.job_count().await, before.0 + 1);
    assert_eq!(bot.shortapi.creates().len(), before.1 + 1, "one create");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_over_quota_is_refused_privately_naming_the_limit() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("DEFAULT_PER_USER_DAILY_LIMIT".into(), "1".into());
    })
    .await;
    let (_, done) = result(&bot, "a red kite").await;
    let before = (bot.job_count().await, bot.shortapi.creates().len());
    for label in ["V3", "Reroll"] {
        // The member who ran /imagine has used their one job today.
        let press = InteractionBuilder::button_press(&done, &custom_id(&done, label));
        bot.send(&press).await;
        let callback = bot.callback(&press).await;
        assert_eq!(callback["type"], 4);
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "private");
        let text = callback["data"]["content"].as_str().unwrap();
        assert!(text.contains("your daily quota of 1 image job"), "{label}: names the limit: {text}");
    }
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), before, "nothing created or sent");
    // Someone else still has their own quota.
    let press = press_for_job(&bot, &done, "Reroll", PRESSER).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    bot.stop().await;
}

/// The count of `imagine_quota_refusals_total{limit="<limit>"}` on the bot's `/metrics` (the
/// recorder is process-wide, so another test may add to it, never take from it).
async fn quota_refusals(metrics_base: &str, limit: &str) -> f64 {
    let text = reqwest::get(format!("{metrics_base}/metrics")).await.unwrap().text().await.unwrap();
    let series = format!("imagine_quota_refusals_total{{limit=\"{limit}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(series.as_str())).map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_refused_by_a_quota_is_counted_like_a_command() {
    let addr = crate::support::free_address();
    let bot = TestBot::start_with(|vars| {
        vars.insert("HEALTH_ADDR".into(), addr.clone());
        vars.insert("DEFAULT_PER_USER_DAILY_LIMIT".into(), "1".into());
    })
    .await;
    let base = format!("http://{addr}");
    let (_, done) = result(&bot, "a counted kite").await;
    let before = quota_refusals(&base, "per_user_daily").await;
    for label in ["V1", "Reroll"] {
        let press = InteractionBuilder::button_press(&done, &custom_id(&done, label));
        bot.send(&press).await;
        let text = bot.callback(&press).await["data"]["content"].as_str().unwrap().to_owned();
        assert!(text.contains("your daily quota of 1 image job"), "{label}: {text}");
    }
    let after = quota_refusals(&base, "per_user_daily").await;
    assert!(after >= before + 2.0, "two refused presses counted: {before} -> {after}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presses_work_after_a_restart_when_every_earlier_link_has_expired() {
    let mut bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "an old lighthouse").await;
    let image_one = final_edit(&bot, &cmd).files.into_iter().find(|f| f.filename == "imagine-1.png").unwrap().bytes;
    bot.restart().await;
    // Three days on: every link issued so far answers 404.
    bot.discord.advance_cdn_clock(Duration::from_secs(3 * 24 * 3600));
    let stale = done["attachments"][0]["url"].as_str().unwrap();
    assert_eq!(reqwest::get(stale).await.unwrap().status(), 404, "the old links are dead");

    // The press carries the result as Discord holds it now, its links signed afresh.
    for label in ["V1", "Reroll"] {
        let press = press_for_job(&bot, &done, label, PRESSER).await;
        bot.wait_reply(&press, |c| c.contains("Done")).await;
        bot.wait_job_settled(&press).await;
    }
    let varied = create_for(&bot, "an old lighthouse", 1).args();
    assert!(fetch(varied["image_urls"][0].as_str().unwrap()).await == image_one, "the bytes differ");
    let rerolled = create_for(&bot, "an old lighthouse", 2).args();
    assert!(
        fetch(rerolled["image_urls"][0].as_str().unwrap()).await == ShortApiStandIn::tiny_png(2048),
        "the original source, from the copy kept with the result"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_presses_on_v_and_reroll_are_answered_privately_and_create_nothing() {
    let bot = TestBot::start().await;
    bot.shortapi.script(
        "refused",
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "flagged".into() },
    );
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
    let (_, done) = result(&bot, "a tall ship").await;
    let (_, two) = result(&bot, "two images of a ship").await;
    let failed = bot.imagine("a refused ship");
    bot.send(&failed).await;
    bot.wait_reply(&failed, |c| c.contains("Not generated")).await;
    bot.wait_job_settled(&failed).await;
    let failed_job = bot.job(&failed).await.unwrap().id;
    let before = (bot.job_count().await, bot.shortapi.creates().len());

    let cases = [
        (InteractionBuilder::button_press(&two, &custom_id(&two, "V1").replace(":V1:", ":V3:")), "has no image 3"),
        (InteractionBuilder::button_press(&done, &custom_id(&done, "V2")).guild(OTHER_GUILD_ID), "another server"),
        (
            InteractionBuilder::button_press(&done, &format!("imagine:1:V2:{}", Uuid::new_v4().simple())),
            "no longer exists",
        ),
        (InteractionBuilder::button_press(&done, &custom_id(&done, "V2")).user_installed(), "only works in servers"),
        (
            InteractionBuilder::button_press(&done, &format!("imagine:1:Reroll:{}", failed_job.simple())),
            "did not produce any images",
        ),
        (
            InteractionBuilder::button_press(&done, &format!("imagine:1:V5:{}", failed_job.simple())),
            "does not work any more",
        ),
    ];
    for (press, expected) in cases {
        bot.send(&press).await;
        let callback = bot.callback(&press).await;
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{expected}");
        let text = callback["data"]["content"].as_str().unwrap();
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), before, "nothing created or sent");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_link_that_expired_before_the_create_is_renewed_first() {
    let bot = TestBot::start().await;
    // A result from two days ago: its links expired a day ago.
    let two_days = Duration::from_secs(2 * 24 * 3600);
    bot.discord.rewind_cdn_clock(two_days);
    let (cmd, done) = result(&bot, "a first result").await;
    let image_one = final_edit(&bot, &cmd).files.into_iter().find(|f| f.filename == "imagine-1.png").unwrap().bytes;
    let old = done["attachments"][0]["url"].as_str().unwrap().to_owned();
    bot.discord.advance_cdn_clock(two_days);
    assert_eq!(reqwest::get(&old).await.unwrap().status(), 404);
    let before = bot.discord.requests_matching("POST", "/attachments/refresh-urls").len();
    // A job handed that link (as one that waited through a long outage would be).
    let again = InteractionBuilder::command("imagine").string("prompt", "a renewed link").attachment(
        "image",
        "imagine-1.png",
        Some("image/png"),
        image_one.len() as u64,
        &old,
    );
    bot.send(&again).await;
    bot.wait_reply(&again, |c| c.contains("Done")).await;
    let sent = create_for(&bot, "a renewed link", 0).args();
    let url = sent["image_urls"][0].as_str().unwrap();
    assert_ne!(url, old, "the provider was given a renewed link");
    assert!(fetch(url).await == image_one, "the bytes differ");
    assert_eq!(bot.discord.requests_matching("POST", "/attachments/refresh-urls").len(), before + 1);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_the_bot_cannot_renew_fails_the_job_at_the_provider_refunded() {
    let bot = TestBot::start().await;
    // Attached to a command two days ago: the link expired a day ago, and Discord does not renew
    // links to files attached to commands.
    let two_days = Duration::from_secs(2 * 24 * 3600);
    bot.discord.rewind_cdn_clock(two_days);
    let url = bot.discord.ephemeral_attachment("gone.png", ShortApiStandIn::tiny_png(2048), "image/png");
    bot.discord.advance_cdn_clock(two_days);
    let cmd = InteractionBuilder::command("imagine").string("prompt", "a dead link").attachment(
        "image",
        "gone.png",
        Some("image/png"),
        2048,
        &url,
    );
    bot.send(&cmd).await;
    let failed = bot.wait_reply(&cmd, |c| c.contains("Failed")).await;
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted), ("failed", false), "refunded: {failed:#}");
    bot.stop().await;
}

/// Makes the result of `cmd` a result without its own pictures (as when they were too large to
/// upload again with it): its reply is edited to keep only the result images. Returns it.
async fn without_sources(bot: &TestBot, cmd: &InteractionBuilder, result: &Value) -> Value {
    let kept: Vec<Value> = result["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["filename"].as_str().unwrap().starts_with("imagine-"))
        .map(|a| json!({"id": a["id"]}))
        .collect();
    let url = format!("{}/api/v10/webhooks/{APP_ID}/{}/messages/@original", bot.discord.proxy_url(), cmd.token());
    let edited = reqwest::Client::new().patch(url).json(&json!({"attachments": kept})).send().await.unwrap();
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["attachments"].as_array().unwrap().len(), 4, "only the result images are left");
    edited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_without_its_pictures_uses_the_jobs_own_links_while_they_live() {
    let bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "a paper boat").await;
    let press = press_for_job(&bot, &without_sources(&bot, &cmd, &done).await, "Reroll", PRESSER).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    let original = create_for(&bot, "a paper boat", 0).args();
    let rerolled = create_for(&bot, "a paper boat", 1).args();
    assert_eq!(rerolled["image_urls"], original["image_urls"], "the job's own link, still alive");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_without_its_pictures_whose_links_died_is_refused_privately() {
    let bot = TestBot::start().await;
    // The job ran two days ago: the link to the file attached to /imagine died a day ago, and
    // Discord does not renew links to files attached to commands.
    let two_days = Duration::from_secs(2 * 24 * 3600);
    bot.discord.rewind_cdn_clock(two_days);
    let (cmd, done) = result(&bot, "a paper plane").await;
    let done = without_sources(&bot, &cmd, &done).await;
    bot.discord.advance_cdn_clock(two_days);
    let before = (bot.job_count().await, bot.shortapi.creates().len());
    for label in ["Reroll", "Remix"] {
        let press = InteractionBuilder::button_press(&done, &custom_id(&done, label));
        bot.send(&press).await;
        let callback = bot.callback(&press).await;
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{label}: private");
        let text = callback["data"]["content"].as_str().unwrap();
        assert!(text.contains("original pictures are no longer available"), "{label}: {text}");
    }
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), before, "nothing created or sent");
    bot.stop().await;
}
