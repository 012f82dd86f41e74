//! Paid results are not lost: deliveries that outlive the provider's links and a Discord outage,
//! retries bounded in time (rate limits included), status queries whose failures cost one short
//! interval, and job outcomes and money in `/metrics`.

use std::{collections::HashMap, time::Duration};

use serde_json::json;

use crate::support::{
    self, JobRow, TestBot, WAIT,
    discord::{DiscordStandIn, InteractionBuilder},
    eventually,
    process::BotProcess,
    shortapi::{Behaviour, ShortApiStandIn},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_outlive_their_links_and_a_discord_outage() {
    let bot = TestBot::start().await;
    // A result Discord takes at once is not stored.
    let quick = bot.imagine("straight through");
    bot.send(&quick).await;
    bot.wait_job_settled(&quick).await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM job_images").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(kept, 0, "nothing is kept for a result delivered at the first attempt");

    // The provider's links die 10 s after the job is done; Discord fails every edit for 30 s.
    bot.shortapi.results_expire_after(Duration::from_secs(10));
    bot.shortapi.script("through the storm", Behaviour::succeed_after(1));
    bot.discord.fail_for("PATCH", "/messages/@original", 502, Duration::from_secs(30));
    let cmd = bot.imagine("through the storm");
    bot.send(&cmd).await;
    bot.wait_job_settled_within(&cmd, Duration::from_secs(90)).await;

    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")));
    let token = cmd.token();
    let failed = bot.discord.requests_matching("PATCH", &format!("/{token}/messages/@original"));
    assert!(failed.iter().filter(|r| r.status == 502 && !r.files.is_empty()).count() >= 3, "Discord failed first");
    let delivered = failed.iter().find(|r| r.status == 200 && !r.files.is_empty()).expect("the result arrived");
    let images: Vec<_> = delivered.files.iter().filter(|f| f.filename.starts_with("imagine-")).collect();
    assert_eq!(images.len(), 4, "every image is uploaded, not linked");
    assert!(images.iter().all(|f| f.bytes.starts_with(b"\x89PNG") && f.bytes.len() >= 2048));
    let job_id = bot.shortapi.job_id_for("through the storm");
    assert_eq!(bot.shortapi.result_fetches(&job_id), 4, "each result was downloaded once, then kept");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM job_images").fetch_one(&bot.pool).await.unwrap();
    assert_eq!(kept, 0, "the kept copies are dropped once the result is delivered");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_that_never_ends_leaves_the_result_for_history() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("DELIVERY_DEADLINE".into(), "4s".into());
    })
    .await;
    bot.shortapi.script("never let through", Behaviour::succeed_after(1));
    // Every edit and every channel post is rate limited, for longer than the test.
    bot.discord.fail_for("PATCH", "/messages/@original", 429, Duration::from_secs(120));
    bot.discord.fail_for("POST", "/messages", 429, Duration::from_secs(120));
    let cmd = bot.imagine("never let through");
    bot.send(&cmd).await;
    bot.wait_job_settled_within(&cmd, WAIT).await;
    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("undelivered")));
    let job_id = bot.shortapi.job_id_for("never let through");
    assert_eq!(bot.shortapi.result_fetches(&job_id), 4, "downloaded once, however many attempts");

    let history = InteractionBuilder::command("history");
    bot.send(&history).await;
    let callback = bot.callback(&history).await;
    assert!(callback["data"]["content"].as_str().unwrap().contains("could not be posted"), "{callback:#}");
    let request =
        bot.discord.requests().into_iter().find(|r| r.is("POST", &format!("/interactions/{}/", history.id()))).unwrap();
    assert_eq!(request.files.len(), 4, "the kept images are attached to /history");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_status_queries_cost_one_short_interval_each() {
    // The production cadence: first look after 5 s, then every 3 s (2 s in the dense window).
    let bot = TestBot::start_with(|vars| {
        vars.insert("POLL_FIRST_DELAY".into(), "5s".into());
        vars.insert("POLL_INTERVAL".into(), "3s".into());
        vars.insert("POLL_DENSE_INTERVAL".into(), "2s".into());
    })
    .await;
    // The job is done after 4 s, but the next three queries meet a failing gateway.
    bot.shortapi
        .script("flaky gateway", Behaviour::FinishAtThenQueryErrors { after: Duration::from_secs(4), errors: 3 });
    let cmd = bot.imagine("flaky gateway");
    bot.send(&cmd).await;
    bot.wait_job_settled_within(&cmd, Duration::from_secs(40)).await;
    let JobRow { status, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    let job_id = bot.shortapi.job_id_for("flaky gateway");
    let finished = bot.shortapi.finishes_at(&job_id).unwrap();
    let token = cmd.token();
    let delivered = bot
        .discord
        .requests_matching("PATCH", &format!("/{token}/messages/@original"))
        .into_iter()
        .find(|r| r.status == 200 && !r.files.is_empty())
        .expect("the result arrived")
        .at;
    let late = delivered.saturating_duration_since(finished);
    assert!(late < Duration::from_secs(10), "delivered {late:?} after the provider finished");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_is_asked_about_once_more_before_it_is_given_up() {
    // Looked at 2 s after the create, then every 4 s; the deadline is 3 s and the job is done
    // at 3.5 s: the look at 6 s, past the deadline, finds it done, and it is delivered, paid for.
    let bot = TestBot::start_with(|vars| {
        vars.insert("JOB_DEADLINE".into(), "3s".into());
        vars.insert("POLL_FIRST_DELAY".into(), "2s".into());
        vars.insert("POLL_INTERVAL".into(), "4s".into());
        vars.insert("POLL_DENSE_INTERVAL".into(), "4s".into());
    })
    .await;
    bot.shortapi.script(
        "just in time",
        Behaviour::SucceedAt { after: Duration::from_millis(3500), images: 4, image_bytes: 2048 },
    );
    let cmd = bot.imagine("just in time");
    bot.send(&cmd).await;
    bot.wait_job_settled_within(&cmd, WAIT).await;
    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")));
    let job_id = bot.shortapi.job_id_for("just in time");
    assert!(bot.shortapi.queries_for(&job_id).len() >= 2, "looked at before and after the deadline");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_hold_no_more_images_than_the_memory_budget() {
    // 1 MiB for images in memory; each job's four results are 150 KiB, its worst case (five
    // pictures at the 10 MiB upload limit) the whole budget: one delivery downloads at a time.
    let bot = TestBot::start_with(|vars| {
        vars.insert("IMAGE_MEMORY_BUDGET".into(), (1u64 << 20).to_string());
    })
    .await;
    bot.shortapi.set_image_delay(Duration::from_millis(300));
    bot.shortapi
        .script("budgeted", Behaviour::SucceedAt { after: Duration::from_secs(2), images: 4, image_bytes: 150 << 10 });
    let commands: Vec<InteractionBuilder> = (0..3).map(|i| bot.imagine(&format!("budgeted {i}"))).collect();
    for cmd in &commands {
        bot.send(cmd).await;
    }
    for cmd in &commands {
        bot.wait_job_settled_within(cmd, Duration::from_secs(40)).await;
        let JobRow { status, delivery, .. } = bot.job(cmd).await.unwrap();
        assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    }
    let most = bot.shortapi.max_concurrent_image_gets();
    assert!(most <= 4, "{most} result images were downloaded at once: more than one job's");
    bot.stop().await;
}

/// `name{labels} value` lines of a Prometheus text page, keyed by everything before the value.
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_outcomes_refunds_and_spend_are_in_metrics() {
    // A process of its own: its counters hold this test's jobs only.
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let (_database, pool) = support::fresh_pool().await;
    let mut vars = support::test_vars(&discord, &shortapi, &_database);
    let health = support::free_address();
    vars.insert("HEALTH_ADDR".into(), health.clone());
    shortapi.script(
        "declined",
        Behaviour::FailAtProvider { polls_before_fail: 1, status: json!(3), message: "nsfw".into() },
    );
    let bot = BotProcess::spawn(&vars, "metrics");
    assert!(discord.wait_ready(WAIT).await);
    discord.wait_registered(WAIT).await.unwrap();

    let done = support::imagine_command(&shortapi, "a finished job");
    let declined = support::imagine_command(&shortapi, "declined job");
    for cmd in [&done, &declined] {
        discord.dispatch_interaction(cmd.build()).await;
    }
    let settled = eventually(WAIT, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE delivered_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        n == 2
    })
    .await;
    assert!(settled, "both jobs finish");
    let page = reqwest::get(format!("http://{health}/metrics")).await.unwrap().text().await.unwrap();
    let page = page.as_str();
    let figures = samples(page);
    for (sample, expected) in [
        ("imagine_jobs_finished_total{status=\"succeeded\"}", 1.0),
        ("imagine_jobs_finished_total{status=\"failed\"}", 1.0),
        ("imagine_refunds_total", 1.0),
        // Both were billed $0.04: the failed one's money is spent too.
        ("imagine_spend_dollars_total", 0.08),
    ] {
        let value = figures.get(sample).unwrap_or_else(|| panic!("{sample} missing from:\n{page}"));
        assert!((value - expected).abs() < 1e-9, "{sample} = {value}, expected {expected}");
    }
    drop(bot);
}
