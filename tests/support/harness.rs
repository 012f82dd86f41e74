//! Test harness: a real PostgreSQL, the Discord and ShortAPI stand-ins, and the real bot
//! (serenity + poise) running against them in this process.

pub mod discord;
pub mod jobs;
pub mod pg;
pub mod process;
pub mod shortapi;

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use imagine_bot::config::Config;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use discord::{DiscordStandIn, InteractionBuilder};
pub use jobs::JobRow;
pub use pg::TestDatabase;
use shortapi::ShortApiStandIn;

pub const DISCORD_TOKEN: &str = "test-discord-token.secret";
pub const WAIT: Duration = Duration::from_secs(20);

/// A fresh, empty database for one test on the shared server.
pub async fn fresh_database() -> TestDatabase {
    TestDatabase::create(&pg::server_url(), "test").await
}

/// A migrated pool on a fresh database.
pub async fn fresh_pool() -> (TestDatabase, PgPool) {
    let database = fresh_database().await;
    let pool = imagine_bot::db::connect(&database, 10).await.expect("connecting to the test database");
    (database, pool)
}

/// Polls `check` every 50 ms until it holds; false if it still does not after `timeout`.
pub async fn eventually<F: Future<Output = bool>>(timeout: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port below the kernel's ephemeral range, so no stand-in bound to port 0 can take it between
/// choosing it and the bot binding it.
pub fn free_address() -> String {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    loop {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20000 + (std::process::id() % 1000) as u16 * 10 + offset % 10;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
}

/// The bot under test with its stand-ins.
pub struct TestBot {
    pub discord: DiscordStandIn,
    pub shortapi: ShortApiStandIn,
    pub pool: PgPool,
    /// `HEALTH_ADDR`, when the test set one.
    health_addr: Option<String>,
    /// The source images attached so far ([`TestBot::source_url`]): file name → URL.
    sources: Mutex<HashMap<String, String>>,
    /// The bot's environment, for [`TestBot::restart`].
    vars: HashMap<String, String>,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// Dropped last, with the bot: the database goes with the test.
    _database: TestDatabase,
}

/// Settings for tests: fast polling so jobs finish in well under a second of waiting.
pub fn test_vars(discord: &DiscordStandIn, shortapi: &ShortApiStandIn, database_url: &str) -> HashMap<String, String> {
    [
        ("DISCORD_TOKEN", DISCORD_TOKEN.to_owned()),
        ("SHORTAPI_KEY", shortapi::DEFAULT_API_KEY.to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("DISCORD_PROXY_URL", discord.proxy_url()),
        ("SHORTAPI_BASE_URL", shortapi.base_url()),
        ("DEV_GUILD_ID", discord::DEFAULT_GUILD_ID.to_string()),
        ("POLL_FIRST_DELAY", "100ms".into()),
        ("POLL_INTERVAL", "150ms".into()),
        ("POLL_SLOW_INTERVAL", "300ms".into()),
        ("POLL_SLOW_AFTER", "10s".into()),
        ("PROGRESS_EDIT_INTERVAL", "100ms".into()),
        ("PROVIDER_TIMEOUT", "5s".into()),
        ("DEFAULT_DAILY_LIMIT", "unlimited".into()),
        ("DEFAULT_MONTHLY_LIMIT", "unlimited".into()),
        ("DEFAULT_PER_USER_DAILY_LIMIT", "unlimited".into()),
        ("DEFAULT_MAX_CONCURRENT", "unlimited".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Size of the source image every `/imagine` of the helpers attaches.
const SOURCE_BYTES: usize = 2048;

/// An `/imagine` with a prompt and one PNG (`source.png`) served by `shortapi`'s image host, for
/// tests that drive the stand-ins without a [`TestBot`] (the real binary, say).
pub fn imagine_command(shortapi: &ShortApiStandIn, prompt: &str) -> InteractionBuilder {
    shortapi.add_image("source.png", ShortApiStandIn::tiny_png(SOURCE_BYTES), "image/png");
    imagine_with_source(prompt, &source_url(shortapi, "source.png"))
}

/// An `/imagine` with a prompt and `source.png` at `url`.
fn imagine_with_source(prompt: &str, url: &str) -> InteractionBuilder {
    InteractionBuilder::command("imagine").string("prompt", prompt).attachment(
        "image",
        "source.png",
        Some("image/png"),
        SOURCE_BYTES as u64,
        url,
    )
}

/// A signed-looking Discord CDN URL for a file on `shortapi`'s image host, passed through
/// untouched. Its expiry is far in the future (2106), so it never looks stale.
pub fn source_url(shortapi: &ShortApiStandIn, name: &str) -> String {
    format!("{}?ex=ffffffff&is=66a06143&hm=3f1c2a9b7d4e5f60&", shortapi.image_url(name))
}

/// The content type Discord gives a file named `name`.
fn content_type_of(name: &str) -> &'static str {
    match name.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl TestBot {
    pub async fn start() -> TestBot {
        Self::start_with(|_| {}).await
    }

    /// Starts the stand-ins and the bot; `adjust` may change the bot's environment first.
    pub async fn start_with(adjust: impl FnOnce(&mut HashMap<String, String>)) -> TestBot {
        let bot = Self::start_scripted(|_| {}, adjust).await;
        assert!(bot.discord.wait_registered(WAIT).await.is_some(), "the bot never registered its commands");
        // The bot serves once it has read Discord's answer, a moment after the stand-in sent it.
        if let Some(addr) = &bot.health_addr {
            let ready = eventually(WAIT, || async {
                reqwest::get(format!("http://{addr}/readyz")).await.is_ok_and(|r| r.status().is_success())
            })
            .await;
            assert!(ready, "the bot never became ready");
        }
        bot
    }

    /// Like [`TestBot::start_with`], with `script` run on the Discord stand-in before the bot
    /// starts (scripted failures, say); returns once the bot identified on the gateway, without
    /// waiting for its commands to be registered.
    pub async fn start_scripted(
        script: impl FnOnce(&DiscordStandIn),
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> TestBot {
        init_logs();
        let discord = DiscordStandIn::start().await;
        script(&discord);
        let shortapi = ShortApiStandIn::start().await;
        let (database, pool) = fresh_pool().await;
        let mut vars = test_vars(&discord, &shortapi, &database);
        adjust(&mut vars);
        let health_addr = vars.get("HEALTH_ADDR").cloned();
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration is valid");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(imagine_bot::run(config, shutdown.clone()));
        assert!(discord.wait_ready(WAIT).await, "the bot never identified on the gateway");
        TestBot {
            discord,
            shortapi,
            pool,
            health_addr,
            sources: Mutex::default(),
            vars,
            shutdown,
            handle: Some(handle),
            _database: database,
        }
    }

    /// Stops the bot gracefully and starts a new one on the same database and stand-ins: only
    /// what the database holds carries over. Returns once the new bot identified.
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
        }
        let readies = self.discord.ready_count();
        let config = Config::from_lookup(|k| self.vars.get(k).cloned()).expect("test configuration is valid");
        self.shutdown = CancellationToken::new();
        self.handle = Some(tokio::spawn(imagine_bot::run(config, self.shutdown.clone())));
        assert!(self.discord.wait_ready_count(readies + 1, WAIT).await, "the restarted bot never identified");
    }

    /// Sends an interaction through the gateway, as Discord would.
    pub async fn send(&self, interaction: &InteractionBuilder) {
        self.discord.dispatch_interaction(interaction.build()).await;
    }

    /// An `/imagine` with a prompt and one PNG, `source.png` ([`TestBot::source_url`]).
    pub fn imagine(&self, prompt: &str) -> InteractionBuilder {
        imagine_with_source(prompt, &self.source_url("source.png"))
    }

    /// The URL of a file named `name` attached to a slash command, as Discord's CDN serves it
    /// (an ephemeral attachment of the Discord stand-in, signed, expiring a day after it was
    /// first asked for): a 2 KiB PNG, or a short text for a `.txt`. Attached once per bot, so the
    /// same name gives the same URL.
    pub fn source_url(&self, name: &str) -> String {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let url = sources.entry(name.to_owned()).or_insert_with(|| {
            let content_type = content_type_of(name);
            let bytes = if content_type.starts_with("image/") {
                ShortApiStandIn::tiny_png(SOURCE_BYTES)
            } else {
                b"not an image".to_vec()
            };
            self.discord.ephemeral_attachment(name, bytes, content_type)
        });
        url.clone()
    }

    /// Waits for the interaction's callback (the first answer) and returns its JSON body.
    pub async fn callback(&self, interaction: &InteractionBuilder) -> Value {
        let path = format!("/interactions/{}/", interaction.id());
        let request = self
            .discord
            .wait_for(WAIT, |r| r.is("POST", &path))
            .await
            .unwrap_or_else(|| panic!("no callback for interaction {}", interaction.id()));
        request.json.expect("callback body is JSON")
    }

    /// Waits until the reply's content satisfies `pred`.
    pub async fn wait_reply(&self, interaction: &InteractionBuilder, pred: impl Fn(&str) -> bool) -> Value {
        let token = interaction.token();
        match self.discord.wait_original(&token, WAIT, |m| pred(m["content"].as_str().unwrap_or(""))).await {
            Some(message) => message,
            None => {
                panic!("reply never matched; it is {:#}", self.discord.original_message(&token).unwrap_or(Value::Null))
            }
        }
    }

    /// Waits until the interaction's job has been delivered (or given up on) and saved.
    pub async fn wait_job_settled(&self, interaction: &InteractionBuilder) {
        self.wait_job_settled_within(interaction, WAIT).await;
    }

    /// [`TestBot::wait_job_settled`], for jobs that take longer than [`WAIT`].
    pub async fn wait_job_settled_within(&self, interaction: &InteractionBuilder, timeout: Duration) {
        let settled = self.wait_job(interaction, "delivered_at IS NOT NULL AND lease_owner IS NULL", timeout).await;
        assert!(settled, "job for interaction {} never settled: {:?}", interaction.id(), self.job(interaction).await);
    }

    /// Waits until no step of the interaction's (acknowledged) job is running or due: whatever a
    /// callback or a wake-up set in motion has been done, and the stand-ins have recorded it.
    pub async fn wait_job_idle(&self, interaction: &InteractionBuilder) {
        let idle = self
            .wait_job(interaction, "lease_owner IS NULL AND (delivered_at IS NOT NULL OR next_run_at > now())", WAIT)
            .await;
        assert!(idle, "job for interaction {} never came to rest", interaction.id());
    }

    /// Waits until `condition` (SQL on the job's row) holds; false if it did not within `timeout`.
    async fn wait_job(&self, interaction: &InteractionBuilder, condition: &str, timeout: Duration) -> bool {
        let sql = format!("SELECT {condition} FROM jobs WHERE interaction_id = $1");
        eventually(timeout, || async {
            let holds: Option<bool> = sqlx::query_scalar(&sql)
                .bind(interaction.id() as i64)
                .fetch_optional(&self.pool)
                .await
                .expect("reading the job");
            holds == Some(true)
        })
        .await
    }

    /// The job an interaction (a command or a press) made, if any.
    pub async fn job(&self, interaction: &InteractionBuilder) -> Option<JobRow> {
        jobs::job(&self.pool, interaction.id()).await
    }

    /// How many jobs exist, in any state.
    pub async fn job_count(&self) -> i64 {
        jobs::job_count(&self.pool).await
    }

    /// Stops the bot gracefully and waits for it; then its database is dropped.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
        }
        self.pool.close().await;
    }
}

impl Drop for TestBot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
    });
}
