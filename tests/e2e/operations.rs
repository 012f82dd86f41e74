//! Operating the bot: health and metrics endpoints, `healthcheck`, JSON logs (`doctor` has its own file).

use std::process::Command;

use serde_json::Value;

use crate::support::{self, TestBot, WAIT, discord::DiscordStandIn, process::BotProcess, shortapi::ShortApiStandIn};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let addr = support::free_address();
    let bot = TestBot::start_with(|vars| {
        vars.insert("HEALTH_ADDR".into(), addr.clone());
        vars.insert("DEFAULT_DAILY_LIMIT".into(), "1".into());
    })
    .await;
    let base = format!("http://{addr}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("database: ok") && body.contains("1/1 shards connected"), "{body}");
    assert!(body.contains("commands: registered"), "{body}");

    let cmd = bot.imagine("a measured job");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    let refused = bot.imagine("one too many");
    bot.send(&refused).await;
    bot.callback(&refused).await;

    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for expected in [
        // Jobs not yet delivered, by state: the delivered job has left the gauge.
        "imagine_jobs{state=\"succeeded\"} 0",
        "imagine_jobs{state=\"queued\"} 0",
        "imagine_provider_requests_total{call=\"create\",outcome=\"ok\"}",
        "imagine_provider_request_seconds_bucket{call=\"query\"",
        "imagine_discord_requests_total{route=\"edit\",outcome=\"ok\"}",
        "imagine_deliveries_total{route=\"edit\"}",
        "imagine_quota_refusals_total{limit=\"daily\"}",
        "imagine_commands_total{command=\"imagine\"}",
        "imagine_gateway_shards_connected 1",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_and_json_logs() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let database = support::fresh_database().await;
    let addr = support::free_address();
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    vars.insert("HEALTH_ADDR".into(), addr.clone());
    vars.insert("LOG_FORMAT".into(), "json".into());
    let healthcheck = |addr: String| {
        Command::new(env!("CARGO_BIN_EXE_imagine-bot"))
            .arg("healthcheck")
            .env_clear()
            .env("HEALTH_ADDR", addr)
            .status()
            .unwrap()
    };
    let nobody = support::free_address();
    assert!(!tokio::task::spawn_blocking(move || healthcheck(nobody)).await.unwrap().success(), "nothing listening");

    let bot = BotProcess::spawn(&vars, "json-logs");
    assert!(discord.wait_ready(WAIT).await);
    discord.wait_registered(WAIT).await.unwrap();
    // Ready once the bot has read Discord's answer to the registration, a moment after it was sent.
    let ready = support::eventually(WAIT, || {
        let probe = addr.clone();
        async move { tokio::task::spawn_blocking(move || healthcheck(probe)).await.unwrap().success() }
    })
    .await;
    assert!(ready, "the health check passes once the bot serves");

    let cmd = support::imagine_command(&shortapi, "logged job");
    discord.dispatch_interaction(cmd.build()).await;
    discord
        .wait_original(&cmd.token(), WAIT, |m| m["content"].as_str().unwrap_or("").contains("Done"))
        .await
        .expect("job done");
    // The delivery is logged right after the edit that shows "Done".
    assert!(
        support::eventually(WAIT, || async { bot.output().contains("\"job delivered\"") }).await,
        "no delivery log line:\n{}",
        bot.output()
    );
    let output = bot.output();
    let lines: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == output.lines().count(), "every log line is JSON:\n{output}");
    let delivered = lines.iter().find(|l| l["fields"]["message"] == "job delivered").expect("a delivery log line");
    let span = &delivered["span"];
    assert_eq!(span["name"], "job");
    assert!(span["job_id"].is_string() && span["guild_id"].is_number(), "{delivered}");
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "command" && l["span"]["guild_id"].is_number()),
        "commands log within a span"
    );
}
