//! A member's controls over their own job, end to end: `Cancel` on a reply whose job was not sent
//! yet (by the owner or a member with Manage Messages; never sent, refunded, racing the worker's
//! claim without both winning) and `Delete` on a delivered result.

use std::time::Duration;

use serde_json::{Value, json};

use crate::actions::{buttons, custom_id, refusal, result};
use crate::roles::{accepted, private_answer};
use crate::support::{
    TestBot, WAIT,
    discord::{
        DEFAULT_CHANNEL_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD, MANAGE_MESSAGES,
    },
    eventually,
    shortapi::Behaviour,
};

const STRANGER: u64 = 1_180_000_000_000_000_931;
const MODERATOR: u64 = 1_180_000_000_000_000_932;

fn stranger(press: InteractionBuilder) -> InteractionBuilder {
    press.user(STRANGER, "stranger")
}

fn moderator(press: InteractionBuilder) -> InteractionBuilder {
    press.user(MODERATOR, "moderator").member_permissions(DEFAULT_PERMISSIONS | MANAGE_MESSAGES)
}

/// How many create requests carried `prompt`.
fn creates_of(bot: &TestBot, prompt: &str) -> usize {
    bot.shortapi.creates().iter().filter(|c| c.args()["prompt"] == prompt).count()
}

/// A job that waits, unsent, for its member's slot: the member's first job never finishes and
/// the server lets one more wait (`max_concurrent` 1, `max_queued` 1). Returns its command and
/// the reply as it stands once the worker showed it waiting.
async fn waiting_job(bot: &TestBot, prompt: &str) -> (InteractionBuilder, Value) {
    one_slot_taken(bot, Behaviour::NeverFinish).await;
    let cmd = bot.imagine(prompt);
    accepted(bot, &cmd).await;
    let reply = bot.wait_reply(&cmd, |c| c.contains("I send it when one of your jobs finishes")).await;
    (cmd, reply)
}

/// Lets the member run one job at once and have one more wait, and takes that one slot with a
/// job that behaves as `blocker` at the provider. Returns the blocker's command.
async fn one_slot_taken(bot: &TestBot, blocker: Behaviour) -> InteractionBuilder {
    let set = InteractionBuilder::command("quota")
        .subcommand("set")
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
        .integer("max_concurrent", 1)
        .integer("max_queued", 1)
        .integer("per_user_daily", 5);
    private_answer(bot, &set).await;
    bot.shortapi.script("blocker", blocker);
    let cmd = bot.imagine("a blocker");
    accepted(bot, &cmd).await;
    bot.shortapi.wait_creates(1, WAIT).await;
    cmd
}

/// The labels of a message's buttons, row by row.
fn labels(message: &Value) -> Vec<Vec<String>> {
    buttons(message).into_iter().map(|row| row.into_iter().map(|(label, _, _)| label).collect()).collect()
}

async fn left_today(bot: &TestBot) -> String {
    let me = private_answer(bot, &InteractionBuilder::command("me")).await;
    me.lines().find(|l| l.starts_with("**You can start:**")).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_cancels_a_waiting_job_which_is_never_sent_and_refunded() {
    let health = crate::support::free_address();
    let bot = TestBot::start_with(|vars| {
        vars.insert("HEALTH_ADDR".into(), health.clone());
    })
    .await;
    // The first job finishes a few seconds in, which would let the waiting one go.
    let blocker =
        one_slot_taken(&bot, Behaviour::SucceedAt { after: Duration::from_secs(4), images: 1, image_bytes: 2048 })
            .await;
    let cmd = bot.imagine("a kite to cancel");
    accepted(&bot, &cmd).await;
    let waiting = bot.wait_reply(&cmd, |c| c.contains("I send it when one of your jobs finishes")).await;
    // The waiting reply keeps its one button through the worker's edits.
    assert_eq!(labels(&waiting), [["Cancel"]], "{:#}", waiting["components"]);
    let cancel = custom_id(&waiting, "Cancel");
    assert_eq!(cancel, format!("imagine:1:Cancel:{}", bot.job(&cmd).await.unwrap().id.simple()));
    assert_eq!(left_today(&bot).await, "**You can start:** 3 more today");

    let press = InteractionBuilder::button_press(&waiting, &cancel);
    bot.send(&press).await;
    let answer = bot.callback(&press).await;
    assert_eq!(answer["type"], 7, "the reply itself is updated: {answer:#}");
    assert_eq!(answer["data"]["allowed_mentions"]["parse"], json!([]), "no ping: {answer:#}");
    let reply = bot.wait_reply(&cmd, |c| c.contains("Cancelled")).await;
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains(&format!("by <@{DEFAULT_USER_ID}>")), "{content}");
    assert!(buttons(&reply).is_empty(), "no button left: {:#}", reply["components"]);

    let job = bot.job(&cmd).await.unwrap();
    assert_eq!((job.status.as_str(), job.counted, job.settled), ("cancelled", false, true), "{job:?}");
    assert_eq!(left_today(&bot).await, "**You can start:** 4 more today", "refunded");
    // Once the first job is done, its slot goes to the next job; the cancelled one, which would
    // have had it, is never sent.
    bot.wait_job_settled(&blocker).await;
    accepted(&bot, &bot.imagine("a kite after the cancel")).await;
    assert!(eventually(WAIT, || async { creates_of(&bot, "a kite after the cancel") == 1 }).await);
    assert_eq!(creates_of(&bot, "a kite to cancel"), 0, "never sent");
    let history = private_answer(&bot, &InteractionBuilder::command("history")).await;
    assert!(history.contains("cancelled"), "{history}");
    let metrics = reqwest::get(format!("http://{health}/metrics")).await.unwrap().text().await.unwrap();
    for outcome in ["imagine_jobs_finished_total{status=\"cancelled\"}", "imagine_presses_total{outcome=\"cancelled\"}"]
    {
        assert!(metrics.contains(outcome), "{outcome} missing from:\n{metrics}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progress_edit_that_lands_after_the_cancel_does_not_stay_over_it() {
    let bot = TestBot::start().await;
    one_slot_taken(&bot, Behaviour::NeverFinish).await;
    let cmd = bot.imagine("a kite cancelled mid-edit");
    // The worker's first edit of the waiting reply is held on its way to Discord.
    bot.discord.hang_next("PATCH", &cmd.token(), Duration::from_secs(2));
    accepted(&bot, &cmd).await;
    assert!(eventually(WAIT, || async { bot.discord.hanging_requests() == 1 }).await, "the worker edits the reply");
    let queued = bot.discord.original_message(&cmd.token()).unwrap();
    let press = InteractionBuilder::button_press(&queued, &custom_id(&queued, "Cancel"));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 7);

    // The held edit lands over the cancel; the worker then finds the job cancelled and shows it.
    let edits = || bot.discord.requests_matching("PATCH", &cmd.token());
    assert!(eventually(WAIT, || async { edits().len() >= 2 }).await, "the cancel is shown again: {:?}", edits());
    let reply = bot.discord.original_message(&cmd.token()).unwrap();
    let content = reply["content"].as_str().unwrap();
    assert!(content.starts_with("🚫 **Cancelled** by "), "{content}");
    assert!(buttons(&reply).is_empty(), "{:#}", reply["components"]);
    assert_eq!(creates_of(&bot, "a kite cancelled mid-edit"), 0);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_may_not_cancel_but_a_member_with_manage_messages_may() {
    let bot = TestBot::start().await;
    let (cmd, waiting) = waiting_job(&bot, "a kite others press").await;
    let cancel = custom_id(&waiting, "Cancel");

    let refused = private_answer(&bot, &stranger(InteractionBuilder::button_press(&waiting, &cancel))).await;
    assert!(refused.contains("Manage Messages"), "{refused}");
    assert_eq!(bot.job(&cmd).await.unwrap().status, "queued", "nothing changed");
    assert_eq!(labels(&bot.discord.original_message(&cmd.token()).unwrap()), [["Cancel"]]);

    let press = moderator(InteractionBuilder::button_press(&waiting, &cancel));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 7);
    let reply = bot.wait_reply(&cmd, |c| c.contains("Cancelled")).await;
    assert!(reply["content"].as_str().unwrap().contains(&format!("by <@{MODERATOR}>")), "{reply:#}");
    let job = bot.job(&cmd).await.unwrap();
    assert_eq!((job.status.as_str(), job.counted), ("cancelled", false));

    // A second press on the same button finds it done.
    let again = private_answer(&bot, &InteractionBuilder::button_press(&waiting, &cancel)).await;
    assert!(again.contains("already cancelled"), "{again}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_cancel_is_told_the_job_is_paid_for_and_the_button_is_gone() {
    let bot = TestBot::start().await;
    bot.shortapi.hold_creates();
    let cmd = bot.imagine("a kite already on its way");
    accepted(&bot, &cmd).await;
    let queued = bot.discord.original_message(&cmd.token()).unwrap();
    let cancel = custom_id(&queued, "Cancel");
    bot.shortapi.wait_creates(1, WAIT).await;
    assert_eq!(bot.job(&cmd).await.unwrap().status, "submitting");

    let late = private_answer(&bot, &InteractionBuilder::button_press(&queued, &cancel)).await;
    assert!(late.contains("already paid for") && late.contains("will be delivered"), "{late}");
    assert_eq!(bot.job(&cmd).await.unwrap().status, "submitting", "nothing changed");

    bot.shortapi.answer_creates();
    let submitted = bot.wait_reply(&cmd, |c| c.contains("Submitted")).await;
    assert!(buttons(&submitted).is_empty(), "Cancel is gone once the job is sent: {:#}", submitted["components"]);
    let job = bot.job(&cmd).await.unwrap();
    assert!(job.counted && job.status != "cancelled", "{job:?}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_workers_claim_never_wins_together_with_it() {
    const JOBS: usize = 40;
    let bot = TestBot::start().await;
    bot.shortapi.script("race", Behaviour::NeverFinish);
    // Each job is pressed the moment its reply shows, while the worker, woken by the same reply,
    // claims it: the database decides which comes first.
    let races = (0..JOBS).map(|i| {
        let bot = &bot;
        async move {
            let cmd = bot.imagine(&format!("race {i}"));
            bot.send(&cmd).await;
            bot.callback(&cmd).await;
            let reply = bot.discord.original_message(&cmd.token()).expect("the public reply");
            let press = InteractionBuilder::button_press(&reply, &custom_id(&reply, "Cancel"));
            bot.send(&press).await;
            (cmd, bot.callback(&press).await)
        }
    });
    let races = futures::future::join_all(races).await;

    let (mut cancelled, mut sent) = (0, 0);
    for (i, (cmd, answer)) in races.iter().enumerate() {
        let prompt = format!("race {i}");
        let settled = eventually(WAIT, || async {
            let status = bot.job(cmd).await.unwrap().status;
            status == "cancelled"
                || (["submitted", "running"].contains(&status.as_str()) && creates_of(&bot, &prompt) == 1)
        })
        .await;
        let job = bot.job(cmd).await.unwrap();
        assert!(settled, "{prompt} never came to rest: {job:?}");
        if answer["type"] == 7 {
            cancelled += 1;
            assert_eq!((job.status.as_str(), job.counted), ("cancelled", false), "{prompt}: {job:?}");
            assert_eq!(creates_of(&bot, &prompt), 0, "{prompt} was cancelled and still sent");
        } else {
            sent += 1;
            assert!(refusal(answer).contains("already paid for"), "{prompt}: {answer:#}");
            assert!(job.counted && job.status != "cancelled", "{prompt} was sent and also cancelled: {job:?}");
            assert_eq!(creates_of(&bot, &prompt), 1);
        }
    }
    eprintln!("cancel race: {cancelled} cancels won, {sent} claims won, of {JOBS}");
    bot.stop().await;
}

/// Who the job of `cmd` is marked deleted by, once it is (`None` if it never is): the bot marks it
/// when Discord confirmed the delete, a moment after the stand-in did it.
async fn marked_deleted_by(bot: &TestBot, cmd: &InteractionBuilder) -> Option<i64> {
    let deleted_by = || async {
        let by: Option<i64> = sqlx::query_scalar("SELECT deleted_by FROM jobs WHERE interaction_id = $1")
            .bind(cmd.id() as i64)
            .fetch_one(&bot.pool)
            .await
            .unwrap();
        by
    };
    eventually(WAIT, || async { deleted_by().await.is_some() }).await;
    deleted_by().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_to_a_stranger_and_done_for_a_moderator() {
    let bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "a lighthouse to delete").await;
    let rows = labels(&done);
    assert_eq!(rows.last().unwrap(), &["Reroll", "Remix", "Delete"], "{rows:?}");
    let delete = custom_id(&done, "Delete");

    let refused = private_answer(&bot, &stranger(InteractionBuilder::button_press(&done, &delete))).await;
    assert!(refused.contains("Manage Messages"), "{refused}");
    assert!(bot.discord.original_message(&cmd.token()).is_some(), "the result is still there");

    let press = moderator(InteractionBuilder::button_press(&done, &delete));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 6, "a deferred update of the result");
    let gone = eventually(WAIT, || async { bot.discord.original_message(&cmd.token()).is_none() }).await;
    assert!(gone, "the result message, images and sources with it, is deleted");
    assert_eq!(marked_deleted_by(&bot, &cmd).await, Some(MODERATOR as i64));

    let history = private_answer(&bot, &InteractionBuilder::command("history")).await;
    let line = history.lines().find(|l| l.contains("a lighthouse to delete")).expect("the line stays");
    assert!(!line.contains("[open]") && line.contains("deleted"), "{line}");

    // A press that was already on its way finds the result gone and is told so calmly.
    let again = moderator(InteractionBuilder::button_press(&done, &delete));
    let answer = private_answer(&bot, &again).await;
    assert!(answer.contains("already deleted"), "{answer}");
    let job = bot.job(&cmd).await.unwrap();
    assert_eq!((job.status.as_str(), job.counted), ("succeeded", true), "still paid for: {job:?}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_deletes_a_result_that_was_posted_in_the_channel() {
    let bot = TestBot::start().await;
    bot.shortapi.script("late", Behaviour::succeed_after(8));
    let cmd = bot.imagine("a late tram to delete");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Submitted") || c.contains("Generating")).await;
    bot.discord.expire_token(&cmd.token());
    bot.wait_job_settled(&cmd).await;
    let posted = || {
        bot.discord
            .channel_messages(DEFAULT_CHANNEL_ID)
            .into_iter()
            .find(|m| m["content"].as_str().unwrap_or("").contains("Done"))
    };
    let result = posted().expect("the result went to the channel");

    let press = InteractionBuilder::button_press(&result, &custom_id(&result, "Delete"));
    bot.send(&press).await;
    assert_eq!(bot.callback(&press).await["type"], 6);
    assert!(eventually(WAIT, || async { posted().is_none() }).await, "the channel message is deleted");
    assert_eq!(marked_deleted_by(&bot, &cmd).await, Some(DEFAULT_USER_ID as i64));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deletes_at_once_delete_the_result_once_and_neither_sees_an_error() {
    let bot = TestBot::start().await;
    let (cmd, done) = result(&bot, "a lighthouse deleted twice").await;
    let delete = custom_id(&done, "Delete");
    let presses =
        [moderator(InteractionBuilder::button_press(&done, &delete)), InteractionBuilder::button_press(&done, &delete)];
    futures::future::join_all(presses.iter().map(|p| bot.send(p))).await;
    let mut deferred = 0;
    for press in &presses {
        let answer = bot.callback(press).await;
        match answer["type"].as_u64() {
            Some(6) => deferred += 1,
            _ => assert!(refusal(&answer).contains("already deleted"), "{answer:#}"),
        }
    }
    let deleted = || async {
        sqlx::query_scalar::<_, bool>("SELECT deleted_at IS NOT NULL FROM jobs WHERE interaction_id = $1")
            .bind(cmd.id() as i64)
            .fetch_one(&bot.pool)
            .await
            .unwrap()
    };
    assert!(eventually(WAIT, deleted).await, "marked deleted");
    assert!(bot.discord.original_message(&cmd.token()).is_none(), "the message is gone");
    // Whichever press came second found the message already gone (Discord's 10008): not an error.
    let deletes = || bot.discord.requests_matching("DELETE", "/messages/@original");
    assert!(eventually(WAIT, || async { deletes().len() == deferred }).await, "{:?}", deletes());
    assert!(deletes().iter().all(|d| [204, 404].contains(&d.status)), "{:?}", deletes());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(presses.iter().all(|p| bot.discord.followups(&p.token()).is_empty()), "no one was told of a fault");
    bot.stop().await;
}
