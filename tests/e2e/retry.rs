//! Retry and the words of a moderation refusal, end to end. A failed, timed-out or unconfirmed
//! job's final message keeps its sources and carries `Retry`: a new job with exactly the original
//! arguments, owned and paid for by whoever pressed, with links signed afresh. A job moderation
//! declined is public only as "not generated"; its owner is told why privately, with a Remix that
//! works from that private message. A press that fails after its public acknowledgement is told
//! privately too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::actions::{EPHEMERAL, buttons, custom_id, result};
use crate::remix::remix;
use crate::roles::{accepted, private_answer};
use crate::support::{
    JobRow, TestBot, WAIT,
    discord::{DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD},
    shortapi::{Behaviour, RecordedCreate, ShortApiStandIn},
};

/// A member other than the one who ran `/imagine`.
const PRESSER: u64 = 616_161_616_161;
const ARTISTS: u64 = 1_180_000_000_000_000_910;

/// The creates the provider received for prompts containing `needle`, in order.
fn creates_for(bot: &TestBot, needle: &str) -> Vec<RecordedCreate> {
    bot.shortapi
        .creates()
        .into_iter()
        .filter(|c| c.args()["prompt"].as_str().is_some_and(|p| p.contains(needle)))
        .collect()
}

/// Every picture link a create handed the provider.
fn links(args: &Value) -> Vec<String> {
    let mut urls: Vec<String> = ["image_urls", "style_image_urls"]
        .iter()
        .flat_map(|k| args[k].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    urls.extend(args["omni_image_url"].as_str().map(str::to_owned));
    urls
}

/// Runs `/imagine` with `prompt` (scripted to end as `behaviour`) to its final message.
async fn unfinished(bot: &TestBot, prompt: &str, behaviour: Behaviour, shows: &str) -> (InteractionBuilder, Value) {
    bot.shortapi.script(prompt, behaviour);
    let cmd = InteractionBuilder::command("imagine")
        .string("prompt", &format!("{prompt} --ar 3:2 --chaos 20"))
        .string("negative_prompt", "people")
        .attachment("image", "source.png", Some("image/png"), 2048, &bot.source_url("source.png"));
    bot.send(&cmd).await;
    let reply = bot.wait_reply(&cmd, |c| c.contains(shows)).await;
    bot.wait_job_settled(&cmd).await;
    bot.shortapi.unscript(prompt);
    (cmd, reply)
}

fn filenames(message: &Value) -> Vec<String> {
    message["attachments"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_a_failed_job_makes_the_same_job_paid_by_the_presser() {
    let bot = TestBot::start().await;
    let failing =
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "internal error".into() };
    let (cmd, failed) = unfinished(&bot, "a copper kettle", failing, "Failed").await;
    let original = bot.job(&cmd).await.unwrap();
    assert_eq!(filenames(&failed), ["source-1.png"], "the source is kept with the failure: {failed:#}");
    let rows = buttons(&failed);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].iter().map(|(l, _, _)| l.as_str()).collect::<Vec<_>>(), ["Retry"]);
    assert_eq!(rows[0][0].1, format!("imagine:1:Retry:{}", original.id.simple()));

    let press = InteractionBuilder::button_press(&failed, &custom_id(&failed, "Retry")).user(PRESSER, "presser");
    accepted(&bot, &press).await;
    let done = bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    assert!(done.to_string().contains("Retry of [this job]"), "the reply says what it is: {done:#}");
    let JobRow { user_id, parent_job_id, origin, status, counted, .. } = bot.job(&press).await.unwrap();
    assert_eq!(
        (user_id, parent_job_id, origin.as_deref(), status.as_str(), counted),
        (PRESSER as i64, Some(original.id), Some("Retry"), "succeeded", true)
    );

    // Exactly the original's arguments; only the link to the source is a new one, to the same bytes.
    let creates = creates_for(&bot, "a copper kettle");
    assert_eq!(creates.len(), 2);
    let (first, again) = (creates[0].args(), creates[1].args());
    let mut expected = first.clone();
    expected["image_urls"] = again["image_urls"].clone();
    assert_eq!(again, expected, "everything but the link is the original's");
    let source = reqwest::get(again["image_urls"][0].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert!(source == ShortApiStandIn::tiny_png(2048), "the same picture");

    // The presser paid; the failed job was refunded.
    let counted: Vec<(i64, i64)> = sqlx::query_as("SELECT user_id, count(*) FROM jobs WHERE counted GROUP BY user_id")
        .fetch_all(&bot.pool)
        .await
        .unwrap();
    assert_eq!(counted, [(PRESSER as i64, 1)]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_an_uncertain_job_after_its_links_expired_sends_only_fresh_links() {
    let bot = TestBot::start().await;
    // The create's answer is lost: the job may or may not exist at the provider.
    let lost = Behaviour::CreatedThenHttpError { status: 502 };
    let (cmd, uncertain) = unfinished(&bot, "a foggy pier", lost, "could not confirm").await;
    assert_eq!(bot.job(&cmd).await.unwrap().status, "uncertain");
    assert_eq!(filenames(&uncertain), ["source-1.png"]);
    let sent_first = links(&creates_for(&bot, "a foggy pier")[0].args());

    // Three days on: the link attached to /imagine and the one kept with the reply are dead.
    bot.discord.advance_cdn_clock(Duration::from_secs(3 * 24 * 3600));
    let kept = uncertain["attachments"][0]["url"].as_str().unwrap();
    for dead in sent_first.iter().map(String::as_str).chain([kept]) {
        assert_eq!(reqwest::get(dead).await.unwrap().status(), 404, "{dead} is dead");
    }
    let inputs_before = bot.shortapi.fetched_inputs().len();

    let press = InteractionBuilder::button_press(&uncertain, &custom_id(&uncertain, "Retry")).user(PRESSER, "presser");
    accepted(&bot, &press).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    bot.wait_job_settled(&press).await;
    let JobRow { origin, user_id, status, .. } = bot.job(&press).await.unwrap();
    assert_eq!((origin.as_deref(), user_id, status.as_str()), (Some("Retry"), PRESSER as i64, "succeeded"));

    let retried = creates_for(&bot, "a foggy pier");
    assert_eq!(retried.len(), 2, "one new create");
    let sent = links(&retried[1].args());
    assert_eq!(sent.len(), 1);
    assert!(sent.iter().all(|url| !sent_first.contains(url) && url != kept), "no stale link: {sent:?}");
    let fetched: Vec<(String, u16)> = bot.shortapi.fetched_inputs()[inputs_before..].to_vec();
    assert_eq!(
        fetched.iter().map(|(url, status)| (url.as_str(), *status)).collect::<Vec<_>>(),
        [(sent[0].as_str(), 200)]
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_keeps_its_source_and_offers_retry() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("JOB_DEADLINE".into(), "2s".into());
    })
    .await;
    let (cmd, timed_out) = unfinished(&bot, "an endless tide", Behaviour::NeverFinish, "did not finish").await;
    assert_eq!(bot.job(&cmd).await.unwrap().status, "timed_out");
    assert_eq!(filenames(&timed_out), ["source-1.png"]);
    assert_eq!(buttons(&timed_out).concat().into_iter().map(|(l, _, _)| l).collect::<Vec<_>>(), ["Retry"]);
    let press = InteractionBuilder::button_press(&timed_out, &custom_id(&timed_out, "Retry"));
    accepted(&bot, &press).await;
    let JobRow { origin, user_id, counted, .. } = bot.job(&press).await.unwrap();
    assert_eq!((origin.as_deref(), user_id, counted), (Some("Retry"), DEFAULT_USER_ID as i64, true));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_retry_in_a_role_gated_server_is_refused() {
    let bot = TestBot::start().await;
    let timing_out =
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "internal error".into() };
    let (_, failed) = unfinished(&bot, "a gated lantern", timing_out, "Failed").await;
    let set = InteractionBuilder::command("settings")
        .subcommand("roles")
        .role_option("role", ARTISTS)
        .boolean("allowed", true)
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD);
    bot.send(&set).await;
    bot.callback(&set).await;
    let before = (bot.job_count().await, bot.shortapi.creates().len());

    let stranger = InteractionBuilder::button_press(&failed, &custom_id(&failed, "Retry")).user(PRESSER, "stranger");
    let text = private_answer(&bot, &stranger).await;
    assert!(text.contains(&format!("<@&{ARTISTS}>")), "names the role: {text}");
    assert_eq!((bot.job_count().await, bot.shortapi.creates().len()), before, "nothing created or sent");

    let artist = InteractionBuilder::button_press(&failed, &custom_id(&failed, "Retry")).member_roles(&[ARTISTS]);
    accepted(&bot, &artist).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderation_refusal_is_public_only_as_not_generated_and_its_owner_can_remix_it_privately() {
    let bot = TestBot::start().await;
    let flagged = Behaviour::FailAtProvider {
        polls_before_fail: 1,
        status: json!(3),
        message: "Image flagged by moderation: nsfw".into(),
    };
    let (cmd, declined) = unfinished(&bot, "a daring statue", flagged, "Not generated").await;
    let job = bot.job(&cmd).await.unwrap();

    // Public: no reason, no button, not the pictures moderation may have declined.
    assert!(declined["content"].as_str().unwrap().contains("the prompt was declined, nothing was counted"));
    let public = declined.to_string().to_lowercase();
    assert!(!public.contains("nsfw") && !public.contains("flagged"), "no reason in public: {declined:#}");
    assert!(buttons(&declined).is_empty() && filenames(&declined).is_empty(), "{declined:#}");

    // Private: the reason, with Remix and the job's source.
    let followups = bot.discord.followups(&cmd.token());
    assert_eq!(followups.len(), 1, "{followups:#?}");
    let private = &followups[0];
    assert_eq!(private["flags"].as_u64().unwrap() & EPHEMERAL, EPHEMERAL, "{private:#}");
    assert!(private["content"].as_str().unwrap().contains("flagged by moderation: nsfw"), "{private:#}");
    assert_eq!(custom_id(private, "Remix"), format!("imagine:1:Remix:{}", job.id.simple()));
    assert_eq!(filenames(private), ["source-1.png"]);

    // A Retry of it (crafted: it has no such button) and a stranger's Remix are refused.
    let retry = InteractionBuilder::button_press(&declined, &format!("imagine:1:Retry:{}", job.id.simple()));
    assert!(private_answer(&bot, &retry).await.contains("declined this prompt"));
    let stranger = InteractionBuilder::button_press(private, &custom_id(private, "Remix")).user(PRESSER, "stranger");
    let text = private_answer(&bot, &stranger).await;
    assert!(text.contains("did not produce any images"), "only its owner may remix it: {text}");
    let before = bot.job_count().await;

    // The owner's Remix from the private message opens the modal, and its submit makes a job.
    let submit = remix(&bot.discord, private, "a modest statue in a park", DEFAULT_USER_ID).await;
    let callback = bot.callback(&submit).await;
    assert_eq!((callback["type"].as_u64(), callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL), (Some(4), 0));
    bot.wait_reply(&submit, |c| c.contains("Done")).await;
    bot.wait_job_settled(&submit).await;
    let JobRow { origin, parent_job_id, counted, .. } = bot.job(&submit).await.unwrap();
    assert_eq!((origin.as_deref(), parent_job_id, counted), (Some("Remix"), Some(job.id), true));
    assert_eq!(bot.job_count().await, before + 1);
    let remixed = creates_for(&bot, "a modest statue").pop().unwrap().args();
    let source = reqwest::get(remixed["image_urls"][0].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert!(source == ShortApiStandIn::tiny_png(2048), "the original source");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderation_refusal_after_the_token_expired_keeps_its_reason_in_history() {
    let bot = TestBot::start().await;
    let flagged = Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "banned word".into() };
    bot.shortapi.script("a late statue", flagged);
    // The job is declined only once its reply can no longer be edited.
    bot.shortapi.hold_creates();
    let cmd = bot.imagine("a late statue");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Queued")).await;
    bot.discord.expire_token(&cmd.token());
    bot.shortapi.answer_creates();
    bot.wait_job_settled(&cmd).await;
    assert!(bot.discord.followups(&cmd.token()).is_empty(), "no private message without a token");
    let posted = bot.discord.channel_messages(crate::support::discord::DEFAULT_CHANNEL_ID);
    let declined = posted.last().expect("posted in the channel");
    assert!(declined["content"].as_str().unwrap().contains("Not generated"), "{declined:#}");
    assert!(!declined.to_string().contains("banned word"), "{declined:#}");

    let history = InteractionBuilder::command("history");
    let text = private_answer(&bot, &history).await;
    assert!(text.contains("banned word"), "the owner finds the reason in /history: {text}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_u_press_that_fails_after_its_public_acknowledgement_is_answered_privately() {
    let bot = TestBot::start().await;
    let (_, done) = result(&bot, "a wide valley").await;
    // The presser's upload limit is below the image's size, found only once it is downloaded.
    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "U2")).attachment_size_limit(1000);
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 5, "acknowledged publicly first");
    let told = crate::support::eventually(WAIT, || async { !bot.discord.followups(&press.token()).is_empty() }).await;
    assert!(told, "no follow-up; the reply is {:#}", bot.discord.original_message(&press.token()).unwrap_or_default());
    let private = &bot.discord.followups(&press.token())[0];
    assert_eq!(private["flags"].as_u64().unwrap() & EPHEMERAL, EPHEMERAL, "{private:#}");
    let text = private["content"].as_str().unwrap();
    assert!(text.contains("larger than this server's upload limit"), "{text}");
    assert!(text.ends_with(done["id"].as_str().unwrap()), "links the result message: {text}");
    assert!(bot.discord.original_message(&press.token()).is_none(), "no public answer is left");
    bot.stop().await;
}
