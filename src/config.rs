//! Typed settings read from the environment. Every setting is validated up front so that a
//! mistake stops the bot at start-up with one line that names the variable.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

/// A setting that is missing or cannot be understood. Its message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error("{name} is malformed ({value:?}): {hint}")]
    Malformed { name: &'static str, value: String, hint: String },
}

/// A range of gateway shards: `first..=last` out of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    pub first: u32,
    pub last: u32,
    pub total: u32,
}

impl Shards {
    /// Parses `first-last/total` or `shard/total`.
    pub fn parse(text: &str) -> Option<Shards> {
        let (range, total) = text.trim().split_once('/')?;
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let shards = Shards {
            first: first.trim().parse().ok()?,
            last: last.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
        };
        (shards.first <= shards.last && shards.last < shards.total).then_some(shards)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the bot keeps its data.
#[derive(Debug, Clone)]
pub enum Database {
    /// An explicit `DATABASE_URL`.
    Url(SecretString),
    /// No `DATABASE_URL`: start (or reuse) a private PostgreSQL cluster from the machine's binaries.
    Local { dir: PathBuf, port: u16 },
}

/// Where the provider's completion callbacks arrive.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Public base URL of the callback listener, e.g. `https://bot.example.com`.
    pub public_base_url: String,
    /// Where the callback listener binds.
    pub addr: std::net::SocketAddr,
    /// With callbacks, polling is only a fallback: this often.
    pub fallback_poll: Duration,
}

/// How often the worker polls a job and how long it waits for one.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Delay between the provider accepting a job and the first status query.
    pub first_delay: Duration,
    /// Interval between queries while a job is young.
    pub interval: Duration,
    /// Interval between queries inside the window where jobs usually finish (once learned).
    pub dense_interval: Duration,
    /// Interval between queries once a job has run for `slow_after`.
    pub slow_interval: Duration,
    pub slow_after: Duration,
    /// A job still unfinished this long after it was submitted is timed out and refunded.
    pub deadline: Duration,
    /// Minimum time between two progress edits of one reply.
    pub progress_edit_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub discord_token: SecretString,
    pub shortapi_key: SecretString,
    pub database: Database,
    pub discord_proxy_url: Option<String>,
    pub shortapi_base_url: String,
    pub dev_guild_id: Option<u64>,
    /// The gateway shards this process runs (`DISCORD_SHARDS`); all of shard 0 of 1 by default.
    pub shards: Shards,
    /// Largest source image accepted from a user, in bytes.
    pub max_input_image_bytes: u64,
    /// Largest result image the bot downloads from the provider, in bytes.
    pub max_result_image_bytes: u64,
    pub provider_timeout: Duration,
    /// Cap on status queries per second from this process.
    pub provider_max_queries_per_second: f64,
    pub poll: PollSettings,
    /// Jobs one process works on at the same time.
    pub worker_concurrency: usize,
    /// How long a process owns a claimed job before another may take it over.
    pub lease: Duration,
    /// Provider callbacks: the public base URL that reaches `callback_addr`. Off when unset.
    pub callbacks: Option<CallbackSettings>,
    /// Where the operations listener (`/healthz`, `/readyz`, `/metrics`) binds, if anywhere.
    pub health_addr: Option<std::net::SocketAddr>,
    /// Quota defaults for guilds the bot has never seen (`None` = unlimited).
    pub default_limits: crate::quota::Limits,
    pub log_format: LogFormat,
}

const DEFAULT_SHORTAPI_BASE_URL: &str = "https://api.shortapi.ai";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let discord_token = get("DISCORD_TOKEN").ok_or(ConfigError::Missing {
            name: "DISCORD_TOKEN",
            hint: "set it to the bot token from the Discord developer portal",
        })?;
        let shortapi_key = get("SHORTAPI_KEY")
            .ok_or(ConfigError::Missing { name: "SHORTAPI_KEY", hint: "set it to your ShortAPI API key" })?;

        let database = match get("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::Malformed {
                        name: "DATABASE_URL",
                        value: "(hidden)".into(),
                        hint: "expected a postgres:// or postgresql:// URL".into(),
                    });
                }
                Database::Url(SecretString::from(url))
            }
            None => Database::Local {
                dir: PathBuf::from(get("LOCAL_PG_DIR").unwrap_or_else(|| ".data/postgres".into())),
                port: parse(&get, "LOCAL_PG_PORT", 54320u16, "a TCP port number")?,
            },
        };

        let discord_proxy_url = get("DISCORD_PROXY_URL").map(|v| base_url("DISCORD_PROXY_URL", v)).transpose()?;
        let shortapi_base_url = base_url(
            "SHORTAPI_BASE_URL",
            get("SHORTAPI_BASE_URL").unwrap_or_else(|| DEFAULT_SHORTAPI_BASE_URL.into()),
        )?;
        let dev_guild_id = get("DEV_GUILD_ID")
            .map(|v| {
                v.parse::<u64>().ok().filter(|id| *id > 0).ok_or(ConfigError::Malformed {
                    name: "DEV_GUILD_ID",
                    value: v.clone(),
                    hint: "expected a guild id (a number)".into(),
                })
            })
            .transpose()?;

        let shards = match get("DISCORD_SHARDS") {
            None => Shards { first: 0, last: 0, total: 1 },
            Some(v) => Shards::parse(&v).ok_or(ConfigError::Malformed {
                name: "DISCORD_SHARDS",
                value: v.clone(),
                hint: "expected first-last/total (e.g. 0-1/4) or shard/total (e.g. 2/4)".into(),
            })?,
        };

        let poll = PollSettings {
            first_delay: duration(&get, "POLL_FIRST_DELAY", "5s")?,
            interval: duration(&get, "POLL_INTERVAL", "3s")?,
            dense_interval: duration(&get, "POLL_DENSE_INTERVAL", "2s")?,
            slow_interval: duration(&get, "POLL_SLOW_INTERVAL", "10s")?,
            slow_after: duration(&get, "POLL_SLOW_AFTER", "60s")?,
            deadline: duration(&get, "JOB_DEADLINE", "10m")?,
            progress_edit_interval: duration(&get, "PROGRESS_EDIT_INTERVAL", "5s")?,
        };
        if poll.interval.is_zero() || poll.slow_interval.is_zero() || poll.dense_interval.is_zero() {
            return Err(ConfigError::Malformed {
                name: "POLL_INTERVAL",
                value: "0".into(),
                hint: "poll intervals must be longer than zero".into(),
            });
        }

        let health_addr = get("HEALTH_ADDR")
            .map(|v| {
                v.parse().map_err(|_| ConfigError::Malformed {
                    name: "HEALTH_ADDR",
                    value: v.clone(),
                    hint: "expected an address and port such as 127.0.0.1:8080".into(),
                })
            })
            .transpose()?;

        let callbacks = match get("PUBLIC_BASE_URL") {
            None => None,
            Some(url) => Some(CallbackSettings {
                public_base_url: base_url("PUBLIC_BASE_URL", url)?,
                addr: {
                    let v = get("CALLBACK_ADDR").unwrap_or_else(|| "0.0.0.0:8081".into());
                    v.parse().map_err(|_| ConfigError::Malformed {
                        name: "CALLBACK_ADDR",
                        value: v.clone(),
                        hint: "expected an address and port such as 0.0.0.0:8081".into(),
                    })?
                },
                fallback_poll: duration(&get, "CALLBACK_FALLBACK_POLL", "60s")?,
            }),
        };

        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Malformed {
                    name: "LOG_FORMAT",
                    value: other.into(),
                    hint: "expected text or json".into(),
                });
            }
        };

        let worker_concurrency: usize = parse(&get, "WORKER_CONCURRENCY", 32, "a positive number")?;
        if worker_concurrency == 0 {
            return Err(ConfigError::Malformed {
                name: "WORKER_CONCURRENCY",
                value: "0".into(),
                hint: "expected a positive number".into(),
            });
        }

        Ok(Config {
            discord_token: SecretString::from(discord_token),
            shortapi_key: SecretString::from(shortapi_key),
            database,
            discord_proxy_url,
            shortapi_base_url,
            dev_guild_id,
            shards,
            max_input_image_bytes: parse(&get, "MAX_INPUT_IMAGE_BYTES", 10 * 1024 * 1024, "a size in bytes")?,
            max_result_image_bytes: parse(&get, "MAX_RESULT_IMAGE_BYTES", 25 * 1024 * 1024, "a size in bytes")?,
            provider_timeout: duration(&get, "PROVIDER_TIMEOUT", "30s")?,
            provider_max_queries_per_second: positive(&get, "PROVIDER_MAX_QUERIES_PER_SECOND", 200.0)?,
            poll,
            worker_concurrency,
            lease: duration(&get, "JOB_LEASE", "2m")?,
            health_addr,
            callbacks,
            default_limits: crate::quota::Limits {
                daily: limit(&get, "DEFAULT_DAILY_LIMIT", Some(100))?,
                monthly: limit(&get, "DEFAULT_MONTHLY_LIMIT", Some(1000))?,
                per_user_daily: limit(&get, "DEFAULT_PER_USER_DAILY_LIMIT", Some(20))?,
                max_concurrent: limit(&get, "DEFAULT_MAX_CONCURRENT", Some(2))?,
            },
            log_format,
        })
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &str,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| ConfigError::Malformed { name, value: v, hint: format!("expected {expected}") })
        }
    }
}

/// A positive number, such as a rate.
fn positive(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: f64) -> Result<f64, ConfigError> {
    let value: f64 = parse(get, name, default, "a positive number")?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::Malformed { name, value: value.to_string(), hint: "expected a positive number".into() })
    }
}

/// A quota limit: a number of jobs, or `unlimited`.
fn limit(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Option<i32>,
) -> Result<Option<i32>, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("unlimited") => Ok(None),
        Some(v) => v.parse::<i32>().ok().filter(|n| *n >= 0).map(Some).ok_or(ConfigError::Malformed {
            name,
            value: v,
            hint: "expected a number of jobs (0 or more) or `unlimited`".into(),
        }),
    }
}

fn duration(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
    let value = get(name).unwrap_or_else(|| default.to_owned());
    parse_duration(&value).ok_or(ConfigError::Malformed {
        name,
        value,
        hint: "expected a duration such as 500ms, 5s, 2m or 1h".into(),
    })
}

/// Parses `500ms`, `5s`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => number,
        "" | "s" => number.checked_mul(1000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

fn base_url(name: &'static str, value: String) -> Result<String, ConfigError> {
    let trimmed = value.trim_end_matches('/');
    let ok = reqwest::Url::parse(trimmed)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false);
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::Malformed { name, value, hint: "expected an http:// or https:// base URL".into() })
    }
}

#[cfg(test)]
mod tests {
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
        let example = include_str!("../.env.example");
        let documented: std::collections::BTreeSet<String> = example
            .lines()
            .map(|l| l.trim_start_matches('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(name, _)| name.to_owned())
            .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .filter(|name| name != "RUST_LOG")
            .collect();
        assert_eq!(*asked.borrow(), documented);
        let readme = include_str!("../README.md");
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
    fn limits_accept_unlimited() {
        let mut vars = BASE.to_vec();
        vars.push(("DEFAULT_DAILY_LIMIT", "unlimited"));
        vars.push(("DEFAULT_MAX_CONCURRENT", "0"));
        let c = config(&vars).unwrap();
        assert_eq!(c.default_limits.daily, None);
        assert_eq!(c.default_limits.max_concurrent, Some(0));
    }
}
