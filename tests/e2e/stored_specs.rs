//! Jobs stored before `JobSpec` (their `args` in the provider's own shape, with `mode` and the
//! pictures at the top) keep working: the worker sends them, their message renders them, and a
//! press on their result varies them.

use std::time::Duration;

use crate::actions::custom_id;
use crate::support::{TestBot, discord::InteractionBuilder, shortapi::Behaviour};

/// Rewrites the stored spec of `cmd`'s job into the shape jobs were stored in before, with its
/// aspect ratio changed to 16:9 so that what is sent and shown can only come from this row.
async fn store_in_the_old_shape(bot: &TestBot, cmd: &InteractionBuilder) {
    let updated = sqlx::query(
        "UPDATE jobs SET args = jsonb_build_object('mode', 'fast', 'prompt', args->'prompt', \
         'aspect_ratio', '16:9', 'image_urls', args->'pictures'->'images') WHERE interaction_id = $1",
    )
    .bind(cmd.id() as i64)
    .execute(&bot.pool)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stored_in_the_old_shape_is_sent_rendered_and_varied() {
    let mut bot = TestBot::start().await;
    // The first create is turned away for a while, so the job is back in the queue, unsent, when
    // its row is rewritten; the restarted bot reads it from the database.
    let behaviour = Behaviour::CreateHttpErrorThenSucceed { times: 1, status: 429, retry_after_secs: Some(5) };
    bot.shortapi.script("an old row", behaviour);
    let cmd = bot.imagine("an old row");
    bot.send(&cmd).await;
    bot.shortapi.wait_creates(1, Duration::from_secs(20)).await;
    store_in_the_old_shape(&bot, &cmd).await;
    bot.restart().await;

    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    let sent: Vec<_> = bot.shortapi.creates().into_iter().filter(|c| c.job_id.is_some()).collect();
    assert_eq!(sent.len(), 1, "one create taken");
    assert_eq!(sent[0].args()["aspect_ratio"], "16:9", "sent from the stored row: {}", sent[0].args());
    assert!(done.to_string().contains("Aspect 16:9"), "rendered from the stored row: {done}");

    let press = InteractionBuilder::button_press(&done, &custom_id(&done, "Reroll"));
    bot.send(&press).await;
    bot.wait_reply(&press, |c| c.contains("Done")).await;
    let rerolled = bot.shortapi.creates().into_iter().rev().find(|c| c.job_id.is_some()).unwrap().args();
    assert_eq!(rerolled["aspect_ratio"], "16:9", "varied from the stored row: {rerolled}");
    assert_eq!(rerolled["prompt"], "an old row");
    bot.stop().await;
}
