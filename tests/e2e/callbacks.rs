//! Provider callbacks: a hint that makes the bot query once and deliver at once; forged and
//! replayed callbacks change nothing.

use std::time::Duration;

use crate::support::{self, JobRow, TestBot, WAIT, shortapi::Behaviour};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_delivers_at_once_and_forgeries_change_nothing() {
    let addr = support::free_address();
    let public = format!("http://{addr}");
    let bot = TestBot::start_with(|vars| {
        vars.insert("PUBLIC_BASE_URL".into(), public.clone());
        vars.insert("CALLBACK_ADDR".into(), addr.clone());
        // Polling alone would not look at the job within this test.
        vars.insert("CALLBACK_FALLBACK_POLL".into(), "1h".into());
    })
    .await;
    bot.shortapi.script(
        "called back",
        Behaviour::SucceedAt { after: Duration::from_millis(800), images: 4, image_bytes: 2048 },
    );
    bot.shortapi.script("never done", Behaviour::NeverFinish);

    let cmd = bot.imagine("called back");
    bot.send(&cmd).await;
    let creates = bot.shortapi.wait_creates(1, WAIT).await;
    let callback_url = creates[0].json.as_ref().unwrap()["callback_url"].as_str().expect("a callback URL").to_owned();
    let job_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE interaction_id = $1")
        .bind(cmd.id() as i64)
        .fetch_one(&bot.pool)
        .await
        .unwrap();
    assert!(callback_url.starts_with(&format!("{public}/callbacks/shortapi/{job_id}/")), "{callback_url}");
    let secret = callback_url.rsplit('/').next().unwrap();
    assert!(secret.len() >= 32, "an unguessable secret");

    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    let provider_job = creates[0].job_id.clone().unwrap();
    assert_eq!(bot.shortapi.queries_for(&provider_job).len(), 1, "one query confirms the callback");

    // Replaying the genuine callback after delivery changes nothing.
    let client = reqwest::Client::new();
    let edits_before = bot.discord.requests_matching("PATCH", "/messages/@original").len();
    let replay = client.post(&callback_url).json(&serde_json::json!({"status": 2})).send().await.unwrap();
    assert!(replay.status().is_success());
    // The bot acts on a callback before answering it: once the job is at rest, anything the
    // replay set in motion has happened.
    bot.wait_job_idle(&cmd).await;
    assert_eq!(bot.shortapi.queries_for(&provider_job).len(), 1, "a replay triggers no query");
    assert_eq!(bot.discord.requests_matching("PATCH", "/messages/@original").len(), edits_before, "nor any edit");

    // Forged callbacks for a running job are refused and trigger nothing.
    let running = bot.imagine("never done");
    bot.send(&running).await;
    bot.shortapi.wait_creates(2, WAIT).await;
    let running_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE interaction_id = $1")
        .bind(running.id() as i64)
        .fetch_one(&bot.pool)
        .await
        .unwrap();
    for forged in [
        format!("{public}/callbacks/shortapi/{running_id}/{secret}"),
        format!("{public}/callbacks/shortapi/{running_id}/{}", "0".repeat(64)),
        format!("{public}/callbacks/shortapi/not-a-job/{secret}"),
    ] {
        let answer = client.post(&forged).body("{}").send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{forged}");
    }
    bot.wait_job_idle(&running).await;
    let running_provider_job = bot.shortapi.creates()[1].job_id.clone().unwrap();
    assert!(bot.shortapi.queries_for(&running_provider_job).is_empty(), "forged callbacks trigger no query");
    let JobRow { status, counted, .. } = bot.job(&running).await.unwrap();
    assert_eq!((status.as_str(), counted), ("submitted", true));
    bot.stop().await;
}
