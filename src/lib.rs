//! imagine-bot: a Discord bot that turns `/imagine` into Midjourney v7 image-to-image jobs on
//! ShortAPI, with durable jobs and per-guild quotas in PostgreSQL.

pub mod bot;
pub mod callbacks;
pub mod config;
pub mod db;
pub mod discord;
pub mod doctor;
pub mod error;
pub mod health;
pub mod imagine;
pub mod jobs;
pub mod localpg;
pub mod pace;
pub mod provider;
pub mod quota;
pub mod render;
pub mod settings;
pub mod usage_chart;

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use serenity::all::{ClientBuilder, GatewayIntents, HttpBuilder};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use config::{Config, Database, LogFormat};

/// Libraries whose verbose logs print request URLs, headers or gateway payloads (which carry
/// interaction tokens and the bot token). Their level is capped whatever `RUST_LOG` says.
const CAPPED_TARGETS: [&str; 9] =
    ["reqwest", "hyper", "hyper_util", "h2", "tungstenite", "tokio_tungstenite", "rustls", "serenity", "poise"];

/// Sets up logging: human-readable by default, JSON with `LOG_FORMAT=json`; `RUST_LOG` filters.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(mut filter) => {
            for target in CAPPED_TARGETS {
                filter = filter.add_directive(format!("{target}=info").parse().expect("static directive parses"));
            }
            filter
        }
        Err(_) => EnvFilter::new("info,serenity=warn,poise=warn,sqlx=warn"),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves the database URL, starting the local cluster when no `DATABASE_URL` is set.
pub async fn database_url(config: &Config) -> anyhow::Result<String> {
    match &config.database {
        Database::Url(url) => Ok(url.expose_secret().to_owned()),
        Database::Local { dir, port } => {
            let (dir, port) = (dir.clone(), *port);
            let server =
                tokio::task::spawn_blocking(move || localpg::ensure_cluster(&dir, port, localpg::Durability::Safe))
                    .await??;
            let url = localpg::ensure_database(&server, "imagine_bot").await?;
            info!(port, "using the local PostgreSQL cluster");
            Ok(url)
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
    let callback_key = callbacks::Key::derive(&config.shortapi_key);
    // Listeners are bound here, so a bad address stops start-up instead of running without them.
    if let Some(addr) = config.health_addr {
        let listener = bind(addr, "HEALTH_ADDR").await?;
        let expected = (config.shards.last - config.shards.first + 1) as usize;
        let (gateway, commands) = (gateway.clone(), commands.clone());
        tokio::spawn(health::serve(listener, pool.clone(), gateway, expected, commands, shutdown.clone()));
    }
    if let Some(callbacks) = &config.callbacks {
        let listener = bind(callbacks.addr, "CALLBACK_ADDR").await?;
        let key = callback_key.clone();
        tokio::spawn(callbacks::serve(listener, key, pool.clone(), wake.clone(), shutdown.clone()));
    }
    let data = bot::Data {
        pool: pool.clone(),
        wake: wake.clone(),
        policy: quota::Policy { defaults: config.default_limits, operator: config.operator_limits.clone() },
        max_input_image_bytes: config.max_input_image_bytes,
        gateway,
        commands,
        callback_key,
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
        downloads: provider::download_client(config.provider_timeout.max(std::time::Duration::from_secs(60)))
            .context("building the download client")?,
        max_result_image_bytes: config.max_result_image_bytes,
        progress_edit_interval: config.poll.progress_edit_interval,
    };
    let worker = Arc::new(jobs::Worker::new(
        pool.clone(),
        provider,
        deliverer,
        jobs::WorkerSettings::from_config(&config),
        wake,
    ));
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));

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
