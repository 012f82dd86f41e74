//! Starting up: never "connected but dead". Registering the commands is retried (backing off,
//! and waiting out a 429's `retry_after`) until Discord takes them; until then `/readyz` and the
//! container's health check say the bot does not serve, and a command gets a private "starting
//! up" answer instead of silence.

use std::{process::Command, time::Duration};

use serde_json::json;

use crate::support::{self, TestBot, WAIT};

const RATE_LIMITED: &str = "You are being rate limited.";

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `imagine-bot healthcheck` against `addr`: whether it passed, and what it printed.
async fn healthcheck(addr: &str) -> (bool, String) {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_imagine-bot"))
            .arg("healthcheck")
            .env_clear()
            .env("HEALTH_ADDR", addr)
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_registrations_are_retried_until_the_bot_serves() {
    let bot = TestBot::start_scripted(
        |discord| {
            discord.fail_next("PUT", "/commands", 500, json!({"code": 0, "message": "500: Internal Server Error"}));
            discord.fail_next(
                "PUT",
                "/commands",
                429,
                json!({"retry_after": 0.5, "global": false, "message": RATE_LIMITED}),
            );
        },
        |_| {},
    )
    .await;
    let registered = bot.discord.wait_registered(WAIT).await.expect("the commands are registered in the end");
    assert!(registered.as_array().is_some_and(|c| c.iter().any(|c| c["name"] == "imagine")), "{registered:#}");
    let puts = bot.discord.requests_matching("PUT", "/commands");
    assert_eq!(puts.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 429, 200], "one try per answer");
    assert!(puts[2].at.duration_since(puts[1].at) >= Duration::from_millis(500), "the 429's retry_after is waited out");

    let cmd = bot.imagine("after a rocky start");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_its_commands_are_registered_the_bot_says_it_is_starting_up() {
    let health = support::free_address();
    let bot = TestBot::start_scripted(
        |discord| {
            // Discord keeps refusing until the failures are cleared below.
            for _ in 0..1000 {
                discord.fail_next(
                    "PUT",
                    "/commands",
                    429,
                    json!({"retry_after": 0.2, "global": false, "message": RATE_LIMITED}),
                );
            }
        },
        |vars| {
            vars.insert("HEALTH_ADDR".into(), health.clone());
        },
    )
    .await;
    // Connected, and trying.
    bot.discord.wait_for(WAIT, |r| r.is("PUT", "/commands") && r.status == 429).await.expect("a registration");

    let (status, body) = get(&format!("http://{health}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("commands: not registered yet"), "{body}");
    assert!(body.contains("1/1 shards connected"), "the gateway is up, yet the bot does not serve: {body}");
    let (healthy, said) = healthcheck(&health).await;
    assert!(!healthy, "the container's health check notices");
    assert!(said.contains("commands: not registered yet"), "and says why: {said}");

    let early = bot.imagine("too early");
    bot.send(&early).await;
    let answer = bot.callback(&early).await;
    assert_eq!(answer["type"], 4, "{answer:#}");
    assert_eq!(answer["data"]["flags"], 64, "private: {answer:#}");
    assert_eq!(answer["data"]["content"], "The bot is starting up; try again in a moment.");
    let callback = bot.discord.requests_matching("POST", &format!("/interactions/{}/", early.id())).remove(0);
    let dispatched = bot.discord.dispatched_at(early.id()).unwrap();
    assert!(callback.at.duration_since(dispatched) < Duration::from_secs(3), "answered within Discord's 3 seconds");
    assert!(bot.job(&early).await.is_none(), "no job was created");
    assert!(bot.shortapi.creates().is_empty());

    // Discord takes the commands: the bot serves.
    bot.discord.clear_failures();
    bot.discord.wait_registered(WAIT).await.expect("registered once Discord answers");
    let ready = support::eventually(WAIT, || async { get(&format!("http://{health}/readyz")).await.0 == 200 }).await;
    assert!(ready, "ready once the commands are registered");
    let (_, body) = get(&format!("http://{health}/readyz")).await;
    assert!(body.contains("commands: registered"), "{body}");
    let (healthy, said) = healthcheck(&health).await;
    assert!(healthy, "{said}");

    let cmd = bot.imagine("now for real");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    bot.stop().await;
}
