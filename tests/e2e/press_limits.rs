//! What bounds `U<n>` presses, end to end: each member may post a few images per window, a
//! process serves a bounded number at once, and a flood is refused privately at once, every press
//! answered within Discord's three seconds and nothing queued.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;

use crate::actions::{custom_id, final_edit, refusal, result, uploaded_reply, uploads_for};
use crate::support::{
    self, TestBot, WAIT,
    discord::{DiscordStandIn, InteractionBuilder, RecordedRequest},
    process::BotProcess,
    shortapi::{Behaviour, ShortApiStandIn},
};

/// The defaults the bot ships with (`UPSCALE_RATE_LIMIT`, and the U presses one process serves
/// at once).
const PRESSES_PER_WINDOW: usize = 5;
const MAX_IN_FLIGHT: usize = 8;

const TOO_FAST: &str = "pressing U buttons too fast";
const BUSY: &str = "posting too many images right now";

/// A U press on `message` by `member`.
fn u_press(message: &Value, label: &str, member: u64) -> InteractionBuilder {
    InteractionBuilder::button_press(message, &custom_id(message, label)).user(member, &format!("member{member}"))
}

/// The one answer to `press`, checked to be a success sent within Discord's three seconds.
async fn only_answer(bot: &TestBot, press: &InteractionBuilder) -> Value {
    let callback = bot.callback(press).await;
    let answers = bot.discord.requests_matching("POST", &format!("/interactions/{}/", press.id()));
    assert_eq!(answers.len(), 1, "answered once: {answers:?}");
    assert!((200..300).contains(&answers[0].status), "Discord took the answer: {}", answers[0].status);
    let dispatched = bot.discord.dispatched_at(press.id()).unwrap();
    assert!(answers[0].at.duration_since(dispatched) < Duration::from_secs(3), "answered within 3 s");
    callback
}

/// The seconds a "too fast" refusal asks to wait.
fn retry_after_secs(text: &str) -> u64 {
    let after = text.split("try again in ").nth(1).unwrap_or_else(|| panic!("no wait in {text:?}"));
    after.split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("no number of seconds in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_u_presses_posts_a_bounded_number_and_refuses_the_rest_privately() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a flood of paper lanterns").await;
    let jobs = bot.job_count().await;
    let creates = bot.shortapi.creates().len();
    // Each download takes a while, so that presses served together overlap at the CDN.
    bot.discord.set_cdn_delay(Duration::from_millis(300));
    let members = [7001, 7002, 7003, 7004, 7005];
    let presses: Vec<(u64, InteractionBuilder)> = (0..300)
        .map(|i| (members[i % members.len()], format!("U{}", i % 4 + 1)))
        .map(|(member, label)| (member, u_press(&done, &label, member)))
        .collect();
    for (_, press) in &presses {
        bot.send(press).await;
    }

    let mut served: HashMap<u64, Vec<&InteractionBuilder>> = HashMap::new();
    let mut refused = Vec::new();
    for (member, press) in &presses {
        let callback = only_answer(&bot, press).await;
        if callback["type"] == 5 {
            served.entry(*member).or_default().push(press);
        } else {
            let text = refusal(&callback);
            assert!(text.contains(TOO_FAST) || text.contains(BUSY), "{text}");
            refused.push(press);
        }
    }
    let served_count: usize = served.values().map(Vec::len).sum();
    assert!(served_count >= 1, "some presses were served");
    assert!(
        served_count <= members.len() * PRESSES_PER_WINDOW,
        "at most {PRESSES_PER_WINDOW} images per member in the window: {served_count} were posted"
    );
    for (member, presses) in &served {
        assert!(presses.len() <= PRESSES_PER_WINDOW, "member {member} posted {}", presses.len());
        for press in presses {
            uploaded_reply(&bot, press).await;
            assert_eq!(uploads_for(&bot, press).len(), 1);
        }
    }
    assert_eq!(served_count + refused.len(), presses.len());
    for press in refused {
        assert!(bot.discord.requests_matching("PATCH", &press.token()).is_empty(), "a refusal posts nothing");
    }
    let most = bot.discord.cdn_max_concurrent_gets();
    assert!(most <= MAX_IN_FLIGHT, "at most {MAX_IN_FLIGHT} downloads at once, {most} seen");
    let jobs_now = bot.job_count().await;
    assert_eq!((jobs_now, bot.shortapi.creates().len()), (jobs, creates), "U makes no job and no provider call");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_pressed_too_fast_can_press_again_once_the_window_passed() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("UPSCALE_RATE_LIMIT".into(), "2/3s".into());
    })
    .await;
    let (cmd, done) = result(&bot, "a quiet harbour at dawn").await;
    let (member, other) = (8001, 8002);
    for label in ["U1", "U2"] {
        let press = u_press(&done, label, member);
        bot.send(&press).await;
        assert_eq!(only_answer(&bot, &press).await["type"], 5, "{label} is served");
        uploaded_reply(&bot, &press).await;
    }

    let third = u_press(&done, "U3", member);
    bot.send(&third).await;
    let callback = only_answer(&bot, &third).await;
    let text = refusal(&callback);
    assert!(text.contains(TOO_FAST), "{text}");
    let wait = retry_after_secs(text);
    assert!((1..=3).contains(&wait), "{text}");
    // Another member is not held back by this one.
    let others = u_press(&done, "U3", other);
    bot.send(&others).await;
    assert_eq!(only_answer(&bot, &others).await["type"], 5);
    uploaded_reply(&bot, &others).await;

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(300)).await;
    let again = u_press(&done, "U3", member);
    bot.send(&again).await;
    assert_eq!(only_answer(&bot, &again).await["type"], 5, "served once the window passed");
    uploaded_reply(&bot, &again).await;
    assert_eq!(uploads_for(&bot, &again), [final_edit(&bot, &cmd).files[2].bytes.clone()]);
    assert!(bot.discord.requests_matching("PATCH", &third.token()).is_empty(), "the refusal posted nothing");
    bot.stop().await;
}

/// A bot with room for 1 MiB of images at a time, and the result message of a job whose four
/// images are `image_bytes` each (its prompt: "four `word` dunes").
async fn result_of_four_images_on_a_one_mib_budget(word: &str, image_bytes: usize) -> (TestBot, Value) {
    let bot = TestBot::start_with(|vars| {
        vars.insert("IMAGE_MEMORY_BUDGET".into(), (1024 * 1024).to_string());
    })
    .await;
    let behaviour =
        Behaviour::Succeed { polls_before_done: 1, images: 4, image_bytes, amount: "0.04".into(), progress: false };
    bot.shortapi.script(word, behaviour);
    let (_, done) = result(&bot, &format!("four {word} dunes")).await;
    (bot, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u_presses_hold_no_more_images_than_the_memory_budget() {
    // Room for one of these images at a time, not two.
    const IMAGE_BYTES: usize = 600 * 1024;
    let (bot, done) = result_of_four_images_on_a_one_mib_budget("large", IMAGE_BYTES).await;
    bot.discord.set_cdn_delay(Duration::from_millis(500));
    let presses: Vec<InteractionBuilder> = (1..=4u64).map(|n| u_press(&done, &format!("U{n}"), 9000 + n)).collect();
    for press in &presses {
        bot.send(press).await;
    }
    let mut served = Vec::new();
    for press in &presses {
        let callback = only_answer(&bot, press).await;
        if callback["type"] == 5 {
            served.push(press);
        } else {
            let text = refusal(&callback);
            assert!(text.contains(BUSY), "{text}");
        }
    }
    assert!(!served.is_empty(), "a press within the budget is served");
    for press in &served {
        let reply = uploaded_reply(&bot, press).await;
        assert_eq!(reply["attachments"][0]["size"], IMAGE_BYTES);
    }
    let most = bot.discord.cdn_max_concurrent_gets();
    assert_eq!(most, 1, "one image in memory at a time: {most} downloads were running at once");

    // Once those are posted, their bytes are given back: a later press is served. The stand-in
    // records an upload a moment before the bot reads Discord's answer and lets the bytes go, so
    // a press in that moment may still find the budget busy; a few tries a little apart (each a
    // new member, so no rate limit applies) must be served, and none would be if the bytes were
    // kept.
    let mut later = None;
    for attempt in 0..20u64 {
        let press = u_press(&done, "U2", 9100 + attempt);
        bot.send(&press).await;
        let callback = only_answer(&bot, &press).await;
        if callback["type"] == 5 {
            later = Some(press);
            break;
        }
        assert!(refusal(&callback).contains(BUSY), "{callback}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = later.expect("the bytes of posted images are given back");
    uploaded_reply(&bot, &later).await;
    bot.stop().await;
}

/// An image larger than the whole memory budget is refused at once: the presser is sent,
/// privately, to the result message itself (a link, not "above": the result may be far up the
/// channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_u_press_on_an_image_too_large_to_hold_links_to_the_result() {
    let (bot, done) = result_of_four_images_on_a_one_mib_budget("huge", 1536 * 1024).await;
    let press = u_press(&done, "U3", 9200);
    bot.send(&press).await;
    let answer = only_answer(&bot, &press).await;
    let text = refusal(&answer);
    let link = format!(
        "https://discord.com/channels/{}/{}/{}",
        support::discord::DEFAULT_GUILD_ID,
        done["channel_id"].as_str().unwrap(),
        done["id"].as_str().unwrap()
    );
    assert!(text.contains("Image 3 is too large for me to post") && text.ends_with(&link), "{text}");
    bot.stop().await;
}

/// Two processes on one shard both see every press: each press is answered once, and both count
/// it, so a member's limit holds whichever process answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_shard_answer_each_u_press_once_and_agree_on_the_limit() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let (database, pool) = support::fresh_pool().await;
    let vars = support::test_vars(&discord, &shortapi, &database);
    let _first = BotProcess::spawn(&vars, "upscale-first");
    let _second = BotProcess::spawn(&vars, "upscale-second");
    assert!(discord.wait_ready_count(2, WAIT).await, "both processes connected");
    discord.wait_registered(WAIT).await.unwrap();
    let cmd = support::imagine_command(&shortapi, "a lighthouse in two minds");
    discord.dispatch_interaction(cmd.build()).await;
    let delivered = |m: &Value| m["content"].as_str().unwrap_or("").contains("Done");
    let done = discord.wait_original(&cmd.token(), WAIT, delivered).await.expect("a delivered result");

    let member = 9500;
    let labels = ["U1", "U2", "U3", "U4", "U1", "U2"];
    for (i, label) in labels.into_iter().enumerate() {
        let press = u_press(&done, label, member);
        discord.dispatch_interaction(press.build()).await;
        // Both processes tried to answer (and so had counted the press) before the next one.
        let path = format!("/interactions/{}/", press.id());
        let both = support::eventually(WAIT, || async { discord.requests_matching("POST", &path).len() == 2 }).await;
        assert!(both, "{label}: both processes answered");
        let answers = discord.requests_matching("POST", &path);
        let taken: Vec<&RecordedRequest> = answers.iter().filter(|r| (200..300).contains(&r.status)).collect();
        assert_eq!(taken.len(), 1, "{label}: Discord took one answer: {answers:?}");
        let callback = taken[0].json.as_ref().unwrap();
        if i < PRESSES_PER_WINDOW {
            assert_eq!(callback["type"], 5, "{label} #{i} is served");
            let token = press.token();
            let posted = |m: &Value| m["attachments"].as_array().is_some_and(|a| !a.is_empty());
            assert!(discord.wait_original(&token, WAIT, posted).await.is_some(), "{label} posted its image");
            let uploads = discord.requests_matching("PATCH", &token).into_iter().filter(|r| !r.files.is_empty());
            assert_eq!(uploads.count(), 1, "{label}: posted once");
        } else {
            assert!(refusal(callback).contains(TOO_FAST), "{callback:#}");
        }
    }
    let jobs = support::jobs::job_count(&pool).await;
    assert_eq!(jobs, 1, "U makes no job");
}
