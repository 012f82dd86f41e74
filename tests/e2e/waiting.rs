//! Honest waiting end to end: while a job waits, its reply shows its place among the server's
//! waiting jobs and when it was sent; once five jobs of its performance setting have finished on
//! this database, a likely-ready time measured from them; and the reply is edited only when what
//! it shows changes, not with a ticking clock.

use std::time::Duration;

use crate::support::{
    TestBot,
    discord::{APP_ID, InteractionBuilder},
    shortapi::Behaviour,
};

/// What the stand-in's scripted jobs take, from their creation to their result.
const QUEUED_FOR: Duration = Duration::from_secs(2);
const TAKES: Duration = Duration::from_secs(6);

/// The contents of every progress edit of the reply (those without files; the result has them).
fn progress_edits(bot: &TestBot, cmd: &InteractionBuilder) -> Vec<String> {
    let path = format!("/webhooks/{APP_ID}/{}/messages/@original", cmd.token());
    bot.discord
        .requests_matching("PATCH", &path)
        .into_iter()
        .filter(|r| r.files.is_empty())
        .filter_map(|r| Some(r.json?["content"].as_str()?.to_owned()))
        .filter(|c| !c.contains("Done"))
        .collect()
}

/// The Unix time in `<t:…:R>` right after `label` in `text`.
fn timestamp_after(text: &str, label: &str) -> Option<i64> {
    let rest = &text[text.find(&format!("{label} <t:"))? + label.len() + 4..];
    rest[..rest.find(':')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_shows_its_place_and_after_five_jobs_a_likely_ready_time() {
    let bot = TestBot::start().await;
    bot.shortapi.script("kite", Behaviour::QueuedThenSucceedAt { starts: QUEUED_FOR, finishes: TAKES });

    // Five jobs at once: each waits in the provider's queue, behind the ones sent before it.
    let first: Vec<InteractionBuilder> = (1..=5).map(|i| bot.imagine(&format!("kite number {i}"))).collect();
    for cmd in &first {
        bot.send(cmd).await;
    }
    for cmd in &first {
        bot.wait_job_settled(cmd).await;
    }
    // Each job showed its place while it waited, and it moved up as the jobs ahead started. The
    // commands are handled side by side, so the line is in the order they were stored.
    let mut places: Vec<String> = first
        .iter()
        .flat_map(|cmd| progress_edits(&bot, cmd))
        .filter_map(|c| {
            let waiting = c.strip_prefix("📨 **Submitted** · ")?;
            waiting.split_once(" in line in this server · sent <t:").map(|(place, _)| place.to_owned())
        })
        .collect();
    places.sort();
    places.dedup();
    assert_eq!(places, ["1st", "2nd", "3rd", "4th", "5th"]);
    for cmd in &first {
        let edits = progress_edits(&bot, cmd);
        assert!(edits.iter().any(|c| c.contains(" in line in this server · sent <t:")), "{edits:#?}");
    }
    let all: Vec<String> = first.iter().flat_map(|cmd| progress_edits(&bot, cmd)).collect();
    assert!(all.iter().all(|c| !c.contains("likely ready")), "no estimate before five jobs finished: {all:#?}");

    // The bot reads the measured durations every ten seconds; the sixth job comes after that.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let sixth = bot.imagine("kite number 6");
    bot.send(&sixth).await;
    let reply = bot.wait_reply(&sixth, |c| c.contains("likely ready")).await;
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains("1st in line in this server"), "{content}");
    let sent = timestamp_after(content, "sent").expect("the start time is shown");
    let ready = timestamp_after(content, "likely ready").expect("a likely-ready time");
    let submitted_at: i64 =
        sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM submitted_at)::int8 FROM jobs WHERE interaction_id = $1")
            .bind(sixth.id() as i64)
            .fetch_one(&bot.pool)
            .await
            .unwrap();
    assert!((sent - submitted_at).abs() <= 1, "sent <t:{sent}> is when it was submitted ({submitted_at})");
    let estimate = (ready - sent) as f64;
    let scripted = TAKES.as_secs_f64();
    assert!(
        (scripted * 0.8..=scripted * 1.2).contains(&estimate),
        "likely ready {estimate} s after it was sent; the jobs take {scripted} s"
    );
    bot.wait_job_settled(&sixth).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_state_does_not_change_is_not_edited_again() {
    let bot = TestBot::start().await;
    bot.shortapi.script("steady", Behaviour::SucceedAt { after: Duration::from_secs(4), images: 4, image_bytes: 2048 });
    let cmd = bot.imagine("a steady kite");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    // Four seconds of generating, polled every 150 ms with edits allowed every 100 ms: the reply
    // said "submitted" once and "generating" once, then showed the result.
    let edits = progress_edits(&bot, &cmd);
    assert_eq!(edits.len(), 2, "{edits:#?}");
    assert!(edits[0].starts_with("📨 **Submitted**") && edits[1].starts_with("🎨 **Generating**"), "{edits:#?}");
    assert!(bot.job(&cmd).await.unwrap().status == "succeeded");
    bot.stop().await;
}
