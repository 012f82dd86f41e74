//! Optional queueing end to end (`/quota set max_queued`): a member's job past `max_concurrent`
//! is accepted, counted and shown waiting with its place, and is sent only once one of their jobs
//! finished; at most `max_queued` such jobs wait; with the default 0 it is refused as before.

use std::time::Duration;

use crate::roles::{accepted, private_answer};
use crate::support::{
    TestBot, WAIT,
    discord::{DEFAULT_PERMISSIONS, InteractionBuilder, MANAGE_GUILD},
    shortapi::Behaviour,
};

fn set() -> InteractionBuilder {
    InteractionBuilder::command("quota").subcommand("set").member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

/// `(submitted_at, finished_at)` of the interaction's job, as Unix seconds with fractions.
async fn times(bot: &TestBot, cmd: &InteractionBuilder) -> (Option<f64>, Option<f64>) {
    sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM submitted_at)::float8, EXTRACT(EPOCH FROM finished_at)::float8 FROM jobs \
         WHERE interaction_id = $1",
    )
    .bind(cmd.id() as i64)
    .fetch_one(&bot.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_max_concurrent_waits_its_turn_when_max_queued_allows() {
    let bot = TestBot::start().await;
    let answer = private_answer(&bot, &set().integer("max_concurrent", 1).integer("max_queued", 1)).await;
    assert!(answer.contains("Waiting past the in-progress limit, per member: 1"), "{answer}");
    let shown = private_answer(
        &bot,
        &InteractionBuilder::command("quota").subcommand("show").member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD),
    )
    .await;
    assert!(shown.contains("**Waiting their turn past that, per member:** up to 1"), "{shown}");
    bot.shortapi.script("kite", Behaviour::SucceedAt { after: Duration::from_secs(3), images: 4, image_bytes: 2048 });

    let first = bot.imagine("first kite");
    accepted(&bot, &first).await;
    bot.shortapi.wait_creates(1, WAIT).await;
    let second = bot.imagine("second kite");
    accepted(&bot, &second).await;
    let waiting = bot.wait_reply(&second, |c| c.contains("I send it when one of your jobs finishes")).await;
    let content = waiting["content"].as_str().unwrap();
    assert!(content.starts_with("⏳ **Queued**") && content.contains(" in line in this server"), "{content}");
    assert_eq!(bot.job(&second).await.unwrap().status, "queued", "counted, not sent");

    // One waiting job per member: the next is refused as before, and nothing is stored.
    let third = private_answer(&bot, &bot.imagine("third kite")).await;
    assert!(third.contains("in progress"), "{third}");
    assert_eq!(bot.job_count().await, 2);

    bot.wait_job_settled(&first).await;
    bot.wait_job_settled(&second).await;
    let creates = bot.shortapi.creates();
    assert_eq!(creates.len(), 2, "each job sent once");
    let (_, first_finished) = times(&bot, &first).await;
    let (second_sent, _) = times(&bot, &second).await;
    assert!(second_sent.unwrap() >= first_finished.unwrap(), "sent only after the first finished");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_max_queued_a_job_past_max_concurrent_is_refused_as_before() {
    let bot = TestBot::start().await;
    private_answer(&bot, &set().integer("max_concurrent", 1)).await;
    bot.shortapi.script("kite", Behaviour::NeverFinish);
    accepted(&bot, &bot.imagine("a kite that flies forever")).await;
    let refused = private_answer(&bot, &bot.imagine("another kite")).await;
    assert!(refused.contains("1 image job in progress, the most this server allows at once"), "{refused}");
    assert_eq!(bot.job_count().await, 1);
    bot.stop().await;
}
