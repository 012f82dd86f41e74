//! Typed settings read from the environment. Every setting is validated up front so that a
//! mistake stops the bot at start-up with one line that names the variable.
//!
//! `Config::from_lookup` assembles sections (`Database`, `Shards`, `PollSettings`, ...), each read
//! through `Env`, whose one parse-and-validate step names the variable it was asked to read.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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

/// At most `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// Parses `count/duration`, such as `5/30s`; both must be more than zero.
    pub fn parse(text: &str) -> Option<RateLimit> {
        let (count, per) = text.split_once('/')?;
        let rate = RateLimit { count: count.trim().parse().ok()?, per: parse_duration(per)? };
        (rate.count > 0 && !rate.per.is_zero()).then_some(rate)
    }
}

/// A member may post every image of a result (four) and one more, then waits half a minute.
const DEFAULT_UPSCALE_RATE_LIMIT: RateLimit = RateLimit { count: 5, per: Duration::from_secs(30) };

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
    /// Where the callback listener binds (`CALLBACK_ADDR`; this machine only, 127.0.0.1:8081,
    /// unless told otherwise).
    pub addr: SocketAddr,
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
    /// Bytes of images this process may hold in memory at once (see [`crate::image_budget`]).
    pub image_memory_budget: u64,
    pub provider_timeout: Duration,
    /// Cap on status queries per second from this process.
    pub provider_max_queries_per_second: f64,
    pub poll: PollSettings,
    /// Jobs one process works on at the same time.
    pub worker_concurrency: usize,
    /// How long a process owns a claimed job before another may take it over.
    pub lease: Duration,
    /// This process's stable worker identity (`INSTANCE_ID`, else hostname and shard range): a
    /// restarted process takes back the jobs its previous life held at once.
    pub instance_id: String,
    /// How long after a job finished its final message may still be retried (`DELIVERY_DEADLINE`).
    pub delivery_deadline: Duration,
    /// Provider callbacks: the public base URL that reaches `callback_addr`. Off when unset.
    pub callbacks: Option<CallbackSettings>,
    /// Where the operations listener (`/healthz`, `/readyz`, `/metrics`) binds, if anywhere.
    pub health_addr: Option<SocketAddr>,
    /// Quota defaults for guilds the bot has never seen (`None` = unlimited).
    pub default_limits: crate::quota::Limits,
    /// What the operator allows across every guild: daily spend, ceilings on guild limits.
    pub operator_limits: crate::quota::OperatorLimits,
    /// How many `U<n>` presses one member may make per window, in this process.
    pub upscale_rate_limit: RateLimit,
    /// How long the provider breaker stays open before one create goes through as a probe.
    pub breaker_probe_after: Duration,
    /// A job delivered longer than this after it was accepted pings its owner (`NOTIFY_AFTER`;
    /// `None`: never).
    pub notify_after: Option<Duration>,
    pub log_format: LogFormat,
}

const DEFAULT_SHORTAPI_BASE_URL: &str = "https://api.shortapi.ai";
const MIB: u64 = 1024 * 1024;

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let shards = Shards::from_env(&env)?;
        // Read in this order: with several mistakes, the first one here is reported.
        Ok(Config {
            discord_token: env
                .required("DISCORD_TOKEN", "set it to the bot token from the Discord developer portal")?,
            shortapi_key: env.required("SHORTAPI_KEY", "set it to your ShortAPI API key")?,
            database: Database::from_env(&env)?,
            discord_proxy_url: env.base_url("DISCORD_PROXY_URL")?,
            shortapi_base_url: env.base_url("SHORTAPI_BASE_URL")?.unwrap_or_else(|| DEFAULT_SHORTAPI_BASE_URL.into()),
            dev_guild_id: env.parse("DEV_GUILD_ID", |v| {
                v.parse::<u64>().ok().filter(|id| *id > 0).ok_or("expected a guild id (a number)")
            })?,
            shards,
            poll: PollSettings::from_env(&env)?,
            health_addr: env.addr("HEALTH_ADDR", "expected an address and port such as 127.0.0.1:8080")?,
            callbacks: CallbackSettings::from_env(&env)?,
            log_format: LogFormat::from_env(&env)?,
            worker_concurrency: env.or_default("WORKER_CONCURRENCY", 32, |v| {
                v.parse::<usize>().ok().filter(|n| *n > 0).ok_or("expected a positive number")
            })?,
            max_input_image_bytes: env.or_default("MAX_INPUT_IMAGE_BYTES", 10 * MIB, bytes)?,
            max_result_image_bytes: env.or_default("MAX_RESULT_IMAGE_BYTES", 25 * MIB, bytes)?,
            image_memory_budget: env.or_default("IMAGE_MEMORY_BUDGET", 256 * MIB, |v| {
                Some(bytes(v)?).filter(|b| *b >= MIB).ok_or("expected a size in bytes, at least 1 MiB (1048576)")
            })?,
            provider_timeout: env.duration("PROVIDER_TIMEOUT", Duration::from_secs(30))?,
            provider_max_queries_per_second: env.or_default("PROVIDER_MAX_QUERIES_PER_SECOND", 1000.0, |v| {
                v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0).ok_or("expected a positive number")
            })?,
            lease: env.or_default("JOB_LEASE", Duration::from_secs(2 * 60), |v| match parse_duration(v) {
                None => Err(DURATION_HINT),
                // Held and running jobs are renewed every third of the lease, each renewal one
                // short statement: below 2 s a busy database could let a lease lapse mid-step.
                Some(d) if d < Duration::from_secs(2) => Err("a lease must be at least 2s"),
                Some(d) => Ok(d),
            })?,
            instance_id: instance_id(&env, &shards)?,
            delivery_deadline: env.duration("DELIVERY_DEADLINE", Duration::from_secs(60 * 60))?,
            default_limits: default_limits(&env)?,
            operator_limits: operator_limits(&env)?,
            upscale_rate_limit: env.or_default("UPSCALE_RATE_LIMIT", DEFAULT_UPSCALE_RATE_LIMIT, |v| {
                RateLimit::parse(v).ok_or("expected presses per duration, such as 5/30s")
            })?,
            breaker_probe_after: env.or_default("BREAKER_PROBE_AFTER", Duration::from_secs(5 * 60), |v| {
                parse_duration(v).filter(|d| !d.is_zero()).ok_or("expected a duration longer than zero, such as 5m")
            })?,
            notify_after: env.or_default("NOTIFY_AFTER", Some(Duration::from_secs(60)), |v| {
                parse_duration(v).map(|d| (!d.is_zero()).then_some(d)).ok_or(DURATION_HINT)
            })?,
        })
    }
}

/// `INSTANCE_ID`, or the host's name and the shard range: the same after a restart on the same
/// host, so the restarted process knows which jobs were its own.
fn instance_id(env: &Env<'_>, shards: &Shards) -> Result<String, ConfigError> {
    env.or_default(
        "INSTANCE_ID",
        format!("{}/shards-{}-{}-of-{}", hostname(), shards.first, shards.last, shards.total),
        |v| {
            let v = v.trim();
            (!v.is_empty() && v.len() <= 200).then(|| v.to_owned()).ok_or("expected a short name (1 to 200 characters)")
        },
    )
}

/// The kernel's host name (a container's, in Docker), or "localhost" where it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Database {
    /// `DATABASE_URL`, or without it the private cluster's `LOCAL_PG_DIR` and `LOCAL_PG_PORT`.
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env
            .parse("DATABASE_URL", |v| {
                (v.starts_with("postgres://") || v.starts_with("postgresql://"))
                    .then(|| SecretString::from(v))
                    .ok_or("expected a postgres:// or postgresql:// URL")
            })
            .map_err(ConfigError::hiding_value)?;
        Ok(match url {
            Some(url) => Database::Url(url),
            None => Database::Local {
                dir: env.or_default("LOCAL_PG_DIR", PathBuf::from(".data/postgres"), |v| Ok(PathBuf::from(v)))?,
                port: env
                    .or_default("LOCAL_PG_PORT", 54320, |v| v.parse().map_err(|_| "expected a TCP port number"))?,
            },
        })
    }
}

impl Shards {
    /// `DISCORD_SHARDS`; all of shard 0 of 1 by default.
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        env.or_default("DISCORD_SHARDS", Shards { first: 0, last: 0, total: 1 }, |v| {
            Shards::parse(v).ok_or("expected first-last/total (e.g. 0-1/4) or shard/total (e.g. 2/4)")
        })
    }
}

impl PollSettings {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(PollSettings {
            first_delay: env.duration("POLL_FIRST_DELAY", Duration::from_secs(5))?,
            interval: env.interval("POLL_INTERVAL", Duration::from_secs(3))?,
            dense_interval: env.interval("POLL_DENSE_INTERVAL", Duration::from_secs(2))?,
            slow_interval: env.interval("POLL_SLOW_INTERVAL", Duration::from_secs(10))?,
            slow_after: env.duration("POLL_SLOW_AFTER", Duration::from_secs(60))?,
            deadline: env.duration("JOB_DEADLINE", Duration::from_secs(10 * 60))?,
            progress_edit_interval: env.duration("PROGRESS_EDIT_INTERVAL", Duration::from_secs(5))?,
        })
    }
}

impl CallbackSettings {
    /// Off without `PUBLIC_BASE_URL`; the other callback settings are read only when it is set.
    fn from_env(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(public_base_url) = env.base_url("PUBLIC_BASE_URL")? else {
            return Ok(None);
        };
        Ok(Some(CallbackSettings {
            public_base_url,
            addr: env
                .addr("CALLBACK_ADDR", "expected an address and port such as 127.0.0.1:8081")?
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081))),
            fallback_poll: env.duration("CALLBACK_FALLBACK_POLL", Duration::from_secs(60))?,
        }))
    }
}

impl LogFormat {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        env.or_default("LOG_FORMAT", LogFormat::Text, |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json"),
        })
    }
}

/// Quota defaults for guilds the bot has never seen.
fn default_limits(env: &Env<'_>) -> Result<crate::quota::Limits, ConfigError> {
    Ok(crate::quota::Limits {
        daily: env.limit("DEFAULT_DAILY_LIMIT", Some(100))?,
        monthly: env.limit("DEFAULT_MONTHLY_LIMIT", Some(1000))?,
        per_user_daily: env.limit("DEFAULT_PER_USER_DAILY_LIMIT", Some(20))?,
        max_concurrent: env.limit("DEFAULT_MAX_CONCURRENT", Some(2))?,
    })
}

fn operator_limits(env: &Env<'_>) -> Result<crate::quota::OperatorLimits, ConfigError> {
    let dollars = |v: &str| {
        crate::provider::parse_amount(Some(&serde_json::Value::String(v.to_owned())))
            .ok_or("expected an amount in US dollars such as 25 or 0.50")
    };
    Ok(crate::quota::OperatorLimits {
        daily_spend_limit: env.parse("DAILY_SPEND_LIMIT", dollars)?,
        expected_job_cost: env.or_default("EXPECTED_JOB_COST", crate::quota::DEFAULT_EXPECTED_JOB_COST, dollars)?,
        ceilings: crate::quota::Limits {
            daily: env.limit("MAX_GUILD_DAILY_LIMIT", None)?,
            monthly: env.limit("MAX_GUILD_MONTHLY_LIMIT", None)?,
            per_user_daily: env.limit("MAX_GUILD_PER_USER_DAILY_LIMIT", None)?,
            max_concurrent: env.limit("MAX_GUILD_MAX_CONCURRENT", None)?,
        },
    })
}

fn bytes(v: &str) -> Result<u64, &'static str> {
    v.parse().map_err(|_| "expected a size in bytes")
}

impl ConfigError {
    /// The same error without the value, for settings that may hold a password.
    fn hiding_value(self) -> Self {
        match self {
            ConfigError::Malformed { name, hint, .. } => {
                ConfigError::Malformed { name, value: "(hidden)".into(), hint }
            }
            missing => missing,
        }
    }
}

/// Reads settings through the lookup closure. Every value goes through [`Env::parse`], which builds
/// any error from the name it was asked to read, so an error cannot name a different variable.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// The one parse-and-validate step: `None` when `name` is unset or blank, otherwise its trimmed
    /// value passed through `check`, whose `Err` is the hint shown after the variable and value.
    fn parse<T>(
        &self,
        name: &'static str,
        check: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        check(&value).map(Some).map_err(|hint| ConfigError::Malformed { name, value, hint: hint.into() })
    }

    fn or_default<T>(
        &self,
        name: &'static str,
        default: T,
        check: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<T, ConfigError> {
        Ok(self.parse(name, check)?.unwrap_or(default))
    }

    /// A secret that must be set.
    fn required(&self, name: &'static str, hint: &'static str) -> Result<SecretString, ConfigError> {
        self.parse(name, |v| Ok(SecretString::from(v)))?.ok_or(ConfigError::Missing { name, hint })
    }

    fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.or_default(name, default, |v| parse_duration(v).ok_or(DURATION_HINT))
    }

    /// A duration between two polls, which must be longer than zero.
    fn interval(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.or_default(name, default, |v| match parse_duration(v) {
            None => Err(DURATION_HINT),
            Some(d) if d.is_zero() => Err("poll intervals must be longer than zero"),
            Some(d) => Ok(d),
        })
    }

    /// A quota limit: a number of jobs, or `unlimited` (`None`).
    fn limit(&self, name: &'static str, default: Option<i32>) -> Result<Option<i32>, ConfigError> {
        self.or_default(name, default, |v| {
            if v.eq_ignore_ascii_case("unlimited") {
                return Ok(None);
            }
            v.parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or("expected a number of jobs (0 or more) or `unlimited`")
        })
    }

    /// An http(s) base URL, without trailing slashes.
    fn base_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        self.parse(name, |v| {
            let trimmed = v.trim_end_matches('/');
            reqwest::Url::parse(trimmed)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .then(|| trimmed.to_owned())
                .ok_or("expected an http:// or https:// base URL")
        })
    }

    fn addr(&self, name: &'static str, hint: &'static str) -> Result<Option<SocketAddr>, ConfigError> {
        self.parse(name, |v| v.parse().map_err(|_| hint))
    }
}

const DURATION_HINT: &str = "expected a duration such as 500ms, 5s, 2m or 1h";

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

#[cfg(test)]
mod tests;
