//! Unit tests of `Config::from_lookup`: defaults, and that every error names the variable that is wrong.

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

const BASE: [(&str, &str); 2] = [("DISCORD_TOKEN", "discord-secret"), ("SHORTAPI_KEY", "shortapi-secret")];

#[test]
fn minimal_configuration_uses_defaults_and_a_local_database() {
    let c = config(&BASE).unwrap();
    assert_eq!(c.shortapi_base_url, "https://api.shortapi.ai");
    assert!(matches!(c.database, Database::Local { port: 54320, .. }));
    assert_eq!(c.poll.first_delay, Duration::from_secs(5));
    assert_eq!(c.poll.deadline, Duration::from_secs(600));
    assert_eq!(c.discord_token.expose_secret(), "discord-secret");
}

#[test]
fn missing_token_names_the_variable() {
    let err = config(&[("SHORTAPI_KEY", "k")]).unwrap_err().to_string();
    assert!(err.starts_with("DISCORD_TOKEN is not set"), "{err}");
    let err = config(&[("DISCORD_TOKEN", "t"), ("SHORTAPI_KEY", "  ")]).unwrap_err().to_string();
    assert!(err.starts_with("SHORTAPI_KEY is not set"), "{err}");
}

#[test]
fn malformed_values_name_the_variable() {
    for (name, value) in [
        ("DISCORD_PROXY_URL", "127.0.0.1:3000"),
        ("SHORTAPI_BASE_URL", "ftp://x"),
        ("DEV_GUILD_ID", "abc"),
        ("POLL_INTERVAL", "fast"),
        ("LOG_FORMAT", "xml"),
        ("WORKER_CONCURRENCY", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("DISCORD_SHARDS", "3/2"),
        ("HEALTH_ADDR", "localhost"),
        ("DEFAULT_DAILY_LIMIT", "-1"),
    ] {
        let mut vars = BASE.to_vec();
        vars.push((name, value));
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.starts_with(name), "{name}: {err}");
    }
}

#[test]
fn secrets_never_print() {
    let c = config(&[
        ("DISCORD_TOKEN", "discord-secret"),
        ("SHORTAPI_KEY", "shortapi-secret"),
        ("DATABASE_URL", "postgres://u:pw-secret@h/db"),
    ])
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["discord-secret", "shortapi-secret", "pw-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

/// Every setting the bot reads is documented in `.env.example`, and nothing else is.
#[test]
fn env_example_documents_every_setting() {
    let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
    // Settings read only when another is set (the callback ones) are asked the second time.
    for public in [None, Some("https://bot.example.com")] {
        let config = Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            match name {
                "DISCORD_TOKEN" | "SHORTAPI_KEY" => Some("x".into()),
                "PUBLIC_BASE_URL" => public.map(str::to_owned),
                _ => None,
            }
        });
        assert!(config.is_ok());
    }
    // Without DATABASE_URL the local-cluster settings are read too.
    let example = include_str!("../../.env.example");
    let documented: std::collections::BTreeSet<String> = example
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(name, _)| name.to_owned())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .filter(|name| name != "RUST_LOG")
        .collect();
    assert_eq!(*asked.borrow(), documented);
    let readme = include_str!("../../README.md");
    for name in &documented {
        assert!(readme.contains(&format!("`{name}`")), "{name} is missing from the README's settings table");
    }
}

#[test]
fn shard_ranges() {
    assert_eq!(Shards::parse("0-1/4"), Some(Shards { first: 0, last: 1, total: 4 }));
    assert_eq!(Shards::parse("2/4"), Some(Shards { first: 2, last: 2, total: 4 }));
    for bad in ["4/4", "2-1/4", "x/2", "1", "0-1"] {
        assert_eq!(Shards::parse(bad), None, "{bad}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("x"), None);
    assert_eq!(parse_duration("5d"), None);
}

#[test]
fn rate_limits() {
    assert_eq!(RateLimit::parse("5/30s"), Some(RateLimit { count: 5, per: Duration::from_secs(30) }));
    assert_eq!(RateLimit::parse(" 2 / 500ms"), Some(RateLimit { count: 2, per: Duration::from_millis(500) }));
    for bad in ["0/30s", "5/0s", "5", "/30s", "5/", "-1/30s", "5/30d", "five/30s"] {
        assert_eq!(RateLimit::parse(bad), None, "{bad}");
    }
    assert_eq!(config(&BASE).unwrap().upscale_rate_limit, RateLimit { count: 5, per: Duration::from_secs(30) });
}

#[test]
fn the_image_memory_budget_defaults_to_256_mib() {
    assert_eq!(config(&BASE).unwrap().image_memory_budget, 256 * MIB);
    let mut vars = BASE.to_vec();
    vars.push(("IMAGE_MEMORY_BUDGET", "1048576"));
    assert_eq!(config(&vars).unwrap().image_memory_budget, MIB);
}

#[test]
fn limits_accept_unlimited() {
    let mut vars = BASE.to_vec();
    vars.push(("DEFAULT_DAILY_LIMIT", "unlimited"));
    vars.push(("DEFAULT_MAX_CONCURRENT", "0"));
    let c = config(&vars).unwrap();
    assert_eq!(c.default_limits.daily, None);
    assert_eq!(c.default_limits.max_concurrent, Some(0));
}

/// The variable an error names, and the value it shows.
fn named(vars: &[(&str, &str)]) -> (&'static str, Option<String>) {
    let mut all = BASE.to_vec();
    all.extend_from_slice(vars);
    match config(&all).expect_err("configuration should be rejected") {
        ConfigError::Missing { name, .. } => (name, None),
        ConfigError::Malformed { name, value, .. } => (name, Some(value)),
    }
}

#[test]
fn every_malformed_setting_is_the_one_named() {
    for (name, value) in [
        ("LOCAL_PG_PORT", "70000"),
        ("DEV_GUILD_ID", "0"),
        ("POLL_FIRST_DELAY", "soon"),
        ("POLL_INTERVAL", "fast"),
        ("POLL_DENSE_INTERVAL", "2x"),
        ("POLL_SLOW_INTERVAL", "slow"),
        ("POLL_SLOW_AFTER", "-1s"),
        ("JOB_DEADLINE", "10d"),
        ("PROGRESS_EDIT_INTERVAL", "often"),
        ("HEALTH_ADDR", "127.0.0.1"),
        ("WORKER_CONCURRENCY", "many"),
        ("MAX_INPUT_IMAGE_BYTES", "10MB"),
        ("MAX_RESULT_IMAGE_BYTES", "-1"),
        ("PROVIDER_TIMEOUT", "30 seconds"),
        ("PROVIDER_MAX_QUERIES_PER_SECOND", "0"),
        ("PROVIDER_MAX_QUERIES_PER_SECOND", "-5"),
        ("PROVIDER_MAX_QUERIES_PER_SECOND", "1e999"),
        ("JOB_LEASE", "2 minutes"),
        ("DEFAULT_MONTHLY_LIMIT", "lots"),
        ("DEFAULT_PER_USER_DAILY_LIMIT", "-3"),
        ("DEFAULT_MAX_CONCURRENT", "2.5"),
        ("UPSCALE_RATE_LIMIT", "5 per minute"),
        ("IMAGE_MEMORY_BUDGET", "256MiB"),
        ("IMAGE_MEMORY_BUDGET", "1048575"),
    ] {
        assert_eq!(named(&[(name, value)]), (name, Some(value.to_owned())), "{name}={value}");
    }
}

#[test]
fn a_zero_poll_interval_names_its_own_variable() {
    // Any zero interval used to be reported as POLL_INTERVAL.
    for name in ["POLL_DENSE_INTERVAL", "POLL_SLOW_INTERVAL", "POLL_INTERVAL"] {
        let err = config(&[BASE[0], BASE[1], (name, "0")]).unwrap_err().to_string();
        assert_eq!(err, format!("{name} is malformed (\"0\"): poll intervals must be longer than zero"));
        assert_eq!(named(&[(name, "0s")]), (name, Some("0s".to_owned())));
    }
}

#[test]
fn callback_errors_name_the_callback_variable() {
    let public = ("PUBLIC_BASE_URL", "https://bot.example.com");
    assert_eq!(named(&[public, ("CALLBACK_ADDR", "bot:80")]), ("CALLBACK_ADDR", Some("bot:80".into())));
    assert_eq!(named(&[public, ("CALLBACK_FALLBACK_POLL", "1x")]), ("CALLBACK_FALLBACK_POLL", Some("1x".into())));
    let bad_public = ("PUBLIC_BASE_URL", "bot.example.com");
    assert_eq!(named(&[bad_public, ("CALLBACK_ADDR", "0.0.0.0:9000")]).0, "PUBLIC_BASE_URL");
    // Without PUBLIC_BASE_URL, callbacks are off and their other settings are not read.
    let c = config(&[BASE[0], BASE[1], ("CALLBACK_ADDR", "bot:80")]).unwrap();
    assert!(c.callbacks.is_none());
    let c = config(&[BASE[0], BASE[1], public, ("CALLBACK_ADDR", " 127.0.0.1:9000 ")]).unwrap();
    let callbacks = c.callbacks.unwrap();
    assert_eq!(callbacks.addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(callbacks.fallback_poll, Duration::from_secs(60));
}

#[test]
fn a_malformed_database_url_is_named_but_not_shown() {
    let err = config(&[BASE[0], BASE[1], ("DATABASE_URL", "mysql://u:pw-secret@h/db")]).unwrap_err();
    assert_eq!(named(&[("DATABASE_URL", "mysql://u:pw-secret@h/db")]), ("DATABASE_URL", Some("(hidden)".into())));
    assert!(!err.to_string().contains("pw-secret"), "{err}");
}

#[test]
fn a_lease_too_short_to_renew_is_refused() {
    let err = config(&[BASE[0], BASE[1], ("JOB_LEASE", "500ms")]).unwrap_err().to_string();
    assert_eq!(err, "JOB_LEASE is malformed (\"500ms\"): a lease must be at least 2s");
    assert_eq!(config(&[BASE[0], BASE[1], ("JOB_LEASE", "2s")]).unwrap().lease, Duration::from_secs(2));
}

#[test]
fn operator_limits_are_read_and_checked() {
    let c = config(&[BASE[0], BASE[1]]).unwrap();
    assert_eq!(c.operator_limits, crate::quota::OperatorLimits::default(), "no operator limit by default");
    let c = config(&[
        BASE[0],
        BASE[1],
        ("DAILY_SPEND_LIMIT", "$12.50"),
        ("EXPECTED_JOB_COST", "0.05"),
        ("MAX_GUILD_DAILY_LIMIT", "200"),
    ])
    .unwrap();
    assert_eq!(c.operator_limits.daily_spend_limit.map(|d| d.to_string()).as_deref(), Some("12.50"));
    assert_eq!(c.operator_limits.expected_job_cost.to_string(), "0.05");
    assert_eq!(c.operator_limits.ceilings.daily, Some(200));
    assert_eq!(named(&[("DAILY_SPEND_LIMIT", "ten")]), ("DAILY_SPEND_LIMIT", Some("ten".into())));
    assert_eq!(named(&[("MAX_GUILD_MAX_CONCURRENT", "-1")]), ("MAX_GUILD_MAX_CONCURRENT", Some("-1".into())));
}

#[test]
fn the_callback_listener_binds_this_machine_only_unless_told_otherwise() {
    let public = ("PUBLIC_BASE_URL", "https://bot.example.com");
    let c = config(&[BASE[0], BASE[1], public]).unwrap();
    assert_eq!(c.callbacks.unwrap().addr, "127.0.0.1:8081".parse().unwrap());
    assert!(config(&[BASE[0], BASE[1]]).unwrap().health_addr.is_none(), "no operations listener unless asked");
}

#[test]
fn notify_after_defaults_to_a_minute_and_zero_turns_it_off() {
    assert_eq!(config(&BASE).unwrap().notify_after, Some(Duration::from_secs(60)));
    let with = |v: &str| config(&[BASE[0], BASE[1], ("NOTIFY_AFTER", v)]);
    assert_eq!(with("90s").unwrap().notify_after, Some(Duration::from_secs(90)));
    assert_eq!(with("0").unwrap().notify_after, None);
    let err = with("soon").unwrap_err().to_string();
    assert!(err.starts_with("NOTIFY_AFTER"), "{err}");
}
