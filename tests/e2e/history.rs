//! `/history` end to end: the kept images of undelivered jobs ride along with the list, within the
//! upload limit of the interaction that asked.

use crate::support::{TestBot, WAIT, discord::InteractionBuilder};

const UPLOAD_LIMIT: u64 = 1000;

/// Keeps `bytes` as image `position` of the interaction's job, and marks the job undelivered, as
/// the worker does when Discord refuses a result for good.
async fn keep_image(bot: &TestBot, job: &InteractionBuilder, position: i32, filename: &str, bytes: usize) {
    sqlx::query("UPDATE jobs SET delivery = 'undelivered', images_kept = true WHERE interaction_id = $1")
        .bind(job.id() as i64)
        .execute(&bot.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO job_images (job_id, position, filename, bytes) \
         SELECT id, $2, $3, $4 FROM jobs WHERE interaction_id = $1",
    )
    .bind(job.id() as i64)
    .bind(position)
    .bind(filename)
    .bind(vec![7u8; bytes])
    .execute(&bot.pool)
    .await
    .unwrap();
}

/// Asks `/history` with a small upload limit; returns the answer's status, text and files.
async fn history(bot: &TestBot) -> (u16, String, Vec<(String, usize)>) {
    let history = InteractionBuilder::command("history").attachment_size_limit(UPLOAD_LIMIT);
    bot.send(&history).await;
    let path = format!("/interactions/{}/", history.id());
    let answer = bot.discord.wait_for(WAIT, |r| r.is("POST", &path)).await.expect("an answer to /history");
    let text = answer.json.as_ref().and_then(|j| j["data"]["content"].as_str()).unwrap_or_default().to_owned();
    let files = answer.files.iter().map(|f| (f.filename.clone(), f.bytes.len())).collect();
    (answer.status, text, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_its_attachments_within_the_upload_limit() {
    let bot = TestBot::start().await;
    let mut jobs = Vec::new();
    for prompt in ["oldest harbour", "middle harbour", "newest harbour"] {
        let job = bot.imagine(prompt);
        bot.send(&job).await;
        bot.wait_reply(&job, |c| c.contains("Done")).await;
        bot.wait_job_settled(&job).await;
        jobs.push(job);
    }
    keep_image(&bot, &jobs[0], 0, "oldest-1.png", 300).await;
    keep_image(&bot, &jobs[0], 1, "oldest-2.png", 300).await;
    keep_image(&bot, &jobs[1], 0, "middle-1.png", 300).await;
    keep_image(&bot, &jobs[2], 0, "newest-1.png", 300).await;

    // 1200 bytes kept, 1000 allowed: the newest images that fit, and a word about the rest.
    let (status, text, files) = history(&bot).await;
    assert!(status < 300, "Discord took the answer: {status}");
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["newest-1.png", "middle-1.png", "oldest-1.png"]);
    assert!(files.iter().map(|(_, size)| size).sum::<usize>() as u64 <= UPLOAD_LIMIT);
    assert!(text.contains("oldest harbour"), "the list is still there: {text}");
    assert!(text.contains("1 kept image was left out"), "{text}");

    // One image bigger than the limit on its own (kept from a server with a larger limit) would
    // make Discord refuse the whole answer: it is left out, the others still come.
    keep_image(&bot, &jobs[2], 1, "newest-2.png", 1500).await;
    let (status, text, files) = history(&bot).await;
    assert!(status < 300, "Discord took the answer: {status}");
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["newest-1.png", "middle-1.png", "oldest-1.png"]);
    assert!(text.contains("2 kept images were left out"), "{text}");
    bot.stop().await;
}
