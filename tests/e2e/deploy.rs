//! The operations kit in `deploy/`: every `imagine_*` metric its alert rules and its Grafana
//! dashboard name is one a running bot exports, so no alert or panel watches a name that never
//! comes.

use std::collections::BTreeSet;

use crate::support::{self, TestBot, shortapi::Behaviour};

const ALERTS: &str = include_str!("../../deploy/alerts.yml");
const DASHBOARD: &str = include_str!("../../deploy/grafana-dashboard.json");

/// The `imagine_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("imagine_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// The series names in a Prometheus text exposition (`_bucket`, `_sum` and `_count` of histograms
/// included), and the names of its `# TYPE` lines (a histogram's own name).
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_is_grafana_json_on_a_prometheus_datasource_variable() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("valid JSON");
    let variables = dashboard["templating"]["list"].as_array().expect("template variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource" && v["query"] == "prometheus" && v["name"] == "datasource")
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty() && targets.iter().all(|t| t["expr"].is_string()), "{}", panel["title"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
    let addr = support::free_address();
    let bot = TestBot::start_with(|vars| {
        vars.insert("HEALTH_ADDR".into(), addr.clone());
    })
    .await;
    // A success and a failure, so the counters of outcomes, refunds, spend and deliveries exist.
    bot.shortapi
        .script("refused", Behaviour::CreateError { code: 400, message: "prompt contains banned words".into() });
    for (prompt, outcome) in [("a paid success", "Done"), ("a refused prompt", "Not generated")] {
        let cmd = bot.imagine(prompt);
        bot.send(&cmd).await;
        bot.wait_reply(&cmd, |c| c.contains(outcome)).await;
        bot.wait_job_settled(&cmd).await;
    }
    let metrics = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "imagine_ready 1"), "the serving bot says it is ready:\n{metrics}");
    let exported = exported(&metrics);

    // What each file must watch: the alerts' five concerns, and the dashboard's panels.
    let alerts = [
        "imagine_jobs_finished_total",
        "imagine_spend_dollars_total",
        "imagine_provider_breaker_open",
        "imagine_ready",
        "imagine_jobs",
    ];
    let panels = [
        "imagine_jobs_finished_total",
        "imagine_refunds_total",
        "imagine_spend_dollars_total",
        "imagine_jobs",
        "imagine_provider_request_seconds_bucket",
        "imagine_provider_requests_total",
        "imagine_discord_requests_total",
        "imagine_deliveries_total",
        "imagine_provider_breaker_open",
    ];
    let files: [(&str, &str, Vec<&str>); 2] =
        [("deploy/alerts.yml", ALERTS, alerts.to_vec()), ("deploy/grafana-dashboard.json", DASHBOARD, panels.to_vec())];
    for (file, text, required) in files {
        let named = metric_names(text);
        let unwatched: Vec<&str> = required.into_iter().filter(|name| !named.contains(*name)).collect();
        assert!(unwatched.is_empty(), "{file} does not watch {unwatched:?}");
        let missing: Vec<&String> = named.iter().filter(|name| !exported.contains(*name)).collect();
        assert!(missing.is_empty(), "{file} names metrics the bot does not export: {missing:?}\n{metrics}");
    }
    bot.stop().await;
}
