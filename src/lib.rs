//! imagine-bot: a Discord bot that turns `/imagine` into Midjourney v7 image-to-image jobs on
//! ShortAPI, with durable jobs and per-guild quotas in PostgreSQL.

pub mod actions;
pub mod bot;
pub mod breaker;
pub mod callbacks;
pub mod config;
pub mod db;
pub mod discord;
pub mod doctor;
pub mod health;
pub mod image_budget;
pub mod imagine;
pub mod jobs;
pub mod listener;
pub mod localpg;
pub mod notices;
pub mod pace;
pub mod prefs;
pub mod provider;
pub mod quota;
pub mod render;
pub mod settings;
pub mod spec;
pub mod usage_chart;
pub mod words;

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use serenity::all::{ClientBuilder, GatewayIntents, HttpBuilder};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use config::{Config, Database, LogFormat};

/// Libraries whose verbose logs print request URLs, headers or gateway payloads (which carry
/// interaction tokens and the bot token). Their level is capped at INFO whatever `RUST_LOG` says:
/// a target is capped when it starts with one of these (`reqwest::connect`, `hyper_util`, ...).
const CAPPED_TARGETS: [&str; 9] =
    ["reqwest", "hyper", "hyper_util", "h2", "tungstenite", "tokio_tungstenite", "rustls", "serenity", "poise"];

/// `RUST_LOG` when it is unset or unreadable.
const DEFAULT_LOG_FILTER: &str = "info,serenity=warn,poise=warn,sqlx=warn";

/// Sets up logging: human-readable by default, JSON with `LOG_FORMAT=json`; `RUST_LOG` filters.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::util::SubscriberInitExt;
    let rust_log = std::env::var("RUST_LOG").ok();
    let _ = log_subscriber(format, rust_log.as_deref(), std::io::stdout).try_init();
}

/// The subscriber [`init_tracing`] installs, writing to `writer`; `rust_log` is `RUST_LOG`.
///
/// An event is printed only when both filters let it through: `RUST_LOG`'s, and [`log_cap`].
/// Capping inside `RUST_LOG`'s own filter does not hold: a more specific directive
/// (`reqwest::connect=trace`) outranks `reqwest=info`, and a span directive (`[job]=trace`)
/// enables every event inside the span, whatever its target.
fn log_subscriber<W>(
    format: LogFormat,
    rust_log: Option<&str>,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _};
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(writer).boxed(),
    };
    tracing_subscriber::registry().with(filter).with(log_cap()).with(output)
}

/// Lets everything through except what the [`CAPPED_TARGETS`] log below INFO. It knows no spans
/// and reads no environment, so nothing in `RUST_LOG` can widen it.
fn log_cap() -> tracing_subscriber::filter::Targets {
    use tracing::level_filters::LevelFilter;
    CAPPED_TARGETS
        .into_iter()
        .fold(tracing_subscriber::filter::Targets::new().with_default(LevelFilter::TRACE), |cap, target| {
            cap.with_target(target, LevelFilter::INFO)
        })
}

/// Resolves the database URL, starting the local cluster when no `DATABASE_URL` is set.
pub async fn database_url(config: &Config) -> anyhow::Result<String> {
    Ok(open_database(config).await?.url)
}

/// The database [`open_database`] resolved.
pub struct OpenDatabase {
    /// Its URL, password included. Never log it.
    pub url: String,
    /// The local cluster's directory, when this call had to start it.
    pub started_cluster: Option<std::path::PathBuf>,
}

/// Resolves the database URL; with no `DATABASE_URL`, makes sure the local cluster runs (see
/// [`localpg`]) and has the `imagine_bot` database.
pub async fn open_database(config: &Config) -> anyhow::Result<OpenDatabase> {
    match &config.database {
        Database::Url(url) => Ok(OpenDatabase { url: url.expose_secret().to_owned(), started_cluster: None }),
        Database::Local { dir, port } => {
            let (dir, port) = (dir.clone(), *port);
            let cluster = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || localpg::open_cluster(&dir, port, localpg::Durability::Safe))
                    .await??
            };
            let url = match localpg::ensure_database(&cluster.url, "imagine_bot").await {
                Ok(url) => url,
                Err(e) => {
                    if cluster.started {
                        let _ = tokio::task::spawn_blocking(move || localpg::stop_cluster(&dir)).await;
                    }
                    return Err(e);
                }
            };
            info!(port, started = cluster.started, "using the local PostgreSQL cluster");
            Ok(OpenDatabase { url, started_cluster: cluster.started.then_some(dir) })
        }
    }
}

async fn bind(addr: std::net::SocketAddr, setting: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr} ({setting})"))
}

/// Runs the bot until `shutdown` is cancelled or the Discord connection ends for good.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let url = database_url(&config).await?;
    let pool = db::connect(&url, 20).await.context("connecting to the database and applying migrations")?;

    let provider = provider::ShortApi::new(
        &config.shortapi_base_url,
        config.shortapi_key.clone(),
        config.provider_timeout,
        config.provider_max_queries_per_second,
    );
    let mut http = HttpBuilder::new(config.discord_token.expose_secret());
    if let Some(proxy) = &config.discord_proxy_url {
        // serenity's rate limiter ignores the proxy; the proxy (or the bot's own pacing) limits.
        http = http.proxy(proxy.clone()).ratelimiter_disabled(true);
    }
    let wake = Arc::new(Notify::new());
    let gateway = health::GatewayStatus::default();
    let commands = health::CommandsStatus::default();
    let breaker = Arc::new(breaker::Breaker::new(config.breaker_probe_after));
    // Listeners are bound here, so a bad address stops start-up instead of running without them.
    if let Some(addr) = config.health_addr {
        let listener = bind(addr, "HEALTH_ADDR").await?;
        let expected = (config.shards.last - config.shards.first + 1) as usize;
        let status = health::Status {
            gateway: gateway.clone(),
            expected_shards: expected,
            commands: commands.clone(),
            breaker: breaker.clone(),
        };
        tokio::spawn(health::serve(listener, pool.clone(), status, shutdown.clone()));
    }
    if let Some(callbacks) = &config.callbacks {
        let listener = bind(callbacks.addr, "CALLBACK_ADDR").await?;
        let key = callbacks::Key::derive(&config.shortapi_key);
        tokio::spawn(callbacks::serve(listener, key, pool.clone(), wake.clone(), shutdown.clone()));
    }
    let notices = notices::Notices::new(
        pool.clone(),
        discord::DiscordRest::new(
            config.discord_proxy_url.as_deref(),
            config.discord_token.clone(),
            std::time::Duration::from_secs(30),
        ),
        config.operator_limits.expected_job_cost,
        config.notify_after,
    );
    // For everything that holds images in memory: U presses (the worker's deliveries are to follow).
    let image_budget = image_budget::ImageBudget::new(config.image_memory_budget);
    let data = bot::Data {
        pool: pool.clone(),
        wake: wake.clone(),
        policy: quota::Policy { defaults: config.default_limits, operator: config.operator_limits.clone() },
        max_input_image_bytes: config.max_input_image_bytes,
        gateway,
        commands,
        downloads: provider
            .download_client(std::time::Duration::from_secs(30))
            .context("building the download client")?,
        upscales: bot::Upscales::new(config.upscale_rate_limit, image_budget.clone()),
        breaker: breaker.clone(),
        notices: notices.clone(),
    };
    // Commands are registered through the bot's own client, which honours a 429's retry_after.
    let registration = bot::Registration {
        discord: discord::DiscordRest::new(
            config.discord_proxy_url.as_deref(),
            config.discord_token.clone(),
            std::time::Duration::from_secs(30),
        ),
        dev_guild: config.dev_guild_id,
        shutdown: shutdown.clone(),
    };
    let mut client = ClientBuilder::new_with_http(http.build(), GatewayIntents::empty())
        .framework(bot::framework(data, registration))
        .await
        .context("building the Discord client")?;

    let deliverer = jobs::deliver::Deliverer {
        discord: discord::DiscordRest::new(
            config.discord_proxy_url.as_deref(),
            config.discord_token.clone(),
            std::time::Duration::from_secs(60),
        ),
        downloads: provider
            .download_client(config.provider_timeout.max(std::time::Duration::from_secs(60)))
            .context("building the download client")?,
        max_result_image_bytes: config.max_result_image_bytes,
        progress_edit_interval: config.poll.progress_edit_interval,
        clock: jobs::clock::DbClock::default(),
        image_budget,
        notices,
    };
    let worker_settings = jobs::WorkerSettings::from_config(&config);
    let (worker_pool, worker_shutdown) = (pool.clone(), shutdown.clone());
    let worker_task = tokio::spawn(async move {
        // The identity may take a few seconds (a restart right after a crash waits for the
        // server to notice the dead process); the gateway does not wait for it.
        let identity = jobs::identity::Identity::claim(&worker_pool, &worker_settings.instance_id).await;
        let worker =
            Arc::new(jobs::Worker::new(worker_pool, provider, deliverer, worker_settings, identity, wake, breaker));
        worker.run(worker_shutdown).await
    });

    let shards = config.shards;
    info!(first = shards.first, last = shards.last, total = shards.total, "connecting to the Discord gateway");
    let shard_manager = client.shard_manager.clone();
    // serenity's range end is the last shard, inclusive.
    let gateway = client.start_shard_range(shards.first..shards.last, shards.total);
    tokio::pin!(gateway);
    let result = tokio::select! {
        result = &mut gateway => result.context("the Discord connection failed"),
        _ = shutdown.cancelled() => {
            info!("shutting down: no new commands");
            // serenity keeps retrying a shard that never connected; do not wait on it forever.
            let stop = async {
                shard_manager.shutdown_all().await;
                let _ = (&mut gateway).await;
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stop).await;
            Ok(())
        }
    };
    shutdown.cancel();
    let _ = worker_task.await;
    pool.close().await;
    result
}

#[cfg(test)]
mod log_tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the bot's subscriber prints, with `RUST_LOG` set to `rust_log`, for events of the
    /// capped libraries at every level (inside a `job` span) and of the bot itself.
    fn printed(rust_log: &str) -> String {
        #[derive(Clone)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture(Arc::default());
        let writer = capture.clone();
        let subscriber = log_subscriber(LogFormat::Text, Some(rust_log), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job_id = 7);
            let _entered = span.enter();
            tracing::trace!(target: "reqwest::connect", "LEAK reqwest trace");
            tracing::debug!(target: "reqwest", "LEAK reqwest debug");
            tracing::trace!(target: "hyper_util::client::legacy::pool", "LEAK hyper_util trace");
            tracing::trace!(target: "hyper::proto::h1", "LEAK hyper trace");
            tracing::trace!(target: "h2::codec", "LEAK h2 trace");
            tracing::debug!(target: "tungstenite::protocol", "LEAK tungstenite debug");
            tracing::debug!(target: "tokio_tungstenite", "LEAK tokio_tungstenite debug");
            tracing::trace!(target: "rustls::client", "LEAK rustls trace");
            tracing::trace!(target: "serenity::http::client", "LEAK serenity trace");
            tracing::debug!(target: "serenity::gateway::shard", "LEAK serenity debug");
            tracing::debug!(target: "poise::dispatch", "LEAK poise debug");
            tracing::warn!(target: "serenity::gateway::shard", "serenity warning shown");
            tracing::debug!(target: "imagine_bot::jobs", "bot debug shown");
        });
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn rust_log_cannot_raise_the_level_of_libraries_that_log_tokens() {
        let mut leaks = Vec::new();
        for rust_log in [
            "trace",
            "debug",
            "reqwest=trace,serenity=trace,h2=trace",
            "trace,reqwest=trace,hyper=trace,hyper_util=trace,h2=trace,tungstenite=trace,tokio_tungstenite=trace,rustls=trace,serenity=trace,poise=trace",
            "reqwest::connect=trace,hyper_util::client=trace,hyper::proto=trace,h2::codec=trace",
            "tungstenite::protocol=debug,tokio_tungstenite=debug,rustls::client=trace,serenity::http=trace,serenity::gateway=debug,poise::dispatch=debug",
            "debug,[job]=trace",
            "imagine_bot=debug,[{job_id}]=trace",
            "imagine_bot=debug,serenity[job]=trace,reqwest[{job_id=7}]=trace",
            "imagine_bot[job]=trace",
        ] {
            let printed = printed(rust_log);
            if printed.contains("LEAK") {
                leaks.push(format!("RUST_LOG={rust_log} let a capped library log below INFO:\n{printed}"));
            }
        }
        assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    }

    #[test]
    fn rust_log_still_sets_every_level_below_the_cap() {
        assert!(printed("debug").contains("bot debug shown"));
        assert!(printed("imagine_bot=debug,[job]=trace").contains("bot debug shown"));
        assert!(!printed("info").contains("bot debug shown"));
        // The cap only lowers: capped libraries still log at INFO and above.
        assert!(printed("trace").contains("serenity warning shown"));
        assert!(printed("serenity::gateway=trace").contains("serenity warning shown"));
        assert!(!printed("serenity=error").contains("serenity warning shown"));
    }
}
