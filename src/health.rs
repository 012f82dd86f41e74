//! The optional operations listener (`HEALTH_ADDR`): `/healthz` (the process is up), `/readyz`
//! (the database answers, the gateway is connected and the commands are registered: the bot
//! serves) and `/metrics` (Prometheus text, with the same readiness as `imagine_ready`).
//!
//! What `/readyz` and `/metrics` read from the database is shared by concurrent requests and kept
//! for a moment ([`PING_TTL`], [`COUNTS_TTL`]), so however often they are asked, the database is
//! asked at most once per period, and each read gives up after 2 s.
//!
//! The listener has the callback listener's guard ([`GuardedListener`]): at most
//! [`MAX_CONNECTIONS`] connections, each closed [`CONNECTION_LIFETIME`] after it opened, so
//! strangers who reach the port cannot sit on it.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::listener::GuardedListener;

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("seconds".into()),
                &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            )
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("the Prometheus recorder is installed once")
    })
}

/// Which gateway shards are connected right now.
#[derive(Debug, Default, Clone)]
pub struct GatewayStatus(Arc<Mutex<HashSet<u32>>>);

impl GatewayStatus {
    pub fn set(&self, shard: u32, connected: bool) {
        let mut shards = self.0.lock().expect("gateway status lock");
        if connected {
            shards.insert(shard);
        } else {
            shards.remove(&shard);
        }
    }

    pub fn connected(&self) -> usize {
        self.0.lock().expect("gateway status lock").len()
    }
}

/// Whether this process's commands are registered with Discord. Until they are, the bot does not
/// serve: commands are answered "starting up" and `/readyz` says why it is not ready.
#[derive(Debug, Clone)]
pub struct CommandsStatus(Arc<CommandsInner>);

#[derive(Debug)]
struct CommandsInner {
    state: Mutex<Registration>,
    registered: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
enum Registration {
    #[default]
    Pending,
    /// The last attempt failed (why, without secrets); another follows.
    Failing(String),
    Registered,
}

impl Default for CommandsStatus {
    fn default() -> Self {
        let (registered, _) = tokio::sync::watch::channel(false);
        CommandsStatus(Arc::new(CommandsInner { state: Mutex::new(Registration::Pending), registered }))
    }
}

impl CommandsStatus {
    pub fn set_registered(&self) {
        *self.0.state.lock().expect("commands status lock") = Registration::Registered;
        self.0.registered.send_replace(true);
    }

    pub fn set_failing(&self, why: String) {
        let mut state = self.0.state.lock().expect("commands status lock");
        if !matches!(*state, Registration::Registered) {
            *state = Registration::Failing(why);
        }
    }

    pub fn registered(&self) -> bool {
        *self.0.registered.borrow()
    }

    /// Whether the commands are registered, or become so within `grace`.
    pub async fn wait_registered(&self, grace: Duration) -> bool {
        let mut registered = self.0.registered.subscribe();
        tokio::time::timeout(grace, registered.wait_for(|r| *r)).await.is_ok_and(|r| r.is_ok())
    }

    fn describe(&self) -> String {
        match &*self.0.state.lock().expect("commands status lock") {
            Registration::Pending => "not registered yet".into(),
            Registration::Failing(why) => format!("not registered yet (last attempt: {why}; retrying)"),
            Registration::Registered => "registered".into(),
        }
    }
}

/// Connections open at once; more wait in the kernel's backlog until one closes. Operations
/// clients are few: a health check and a scraper.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection is closed this long after it was opened, whatever it is doing (slow clients).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// How long a database ping answers `/readyz`.
pub const PING_TTL: Duration = Duration::from_secs(1);
/// How long job counts answer `/metrics`.
pub const COUNTS_TTL: Duration = Duration::from_secs(5);

/// A value read from the database, shared by concurrent readers and kept for a while.
struct Cached<T>(tokio::sync::Mutex<Option<(Instant, T)>>);

impl<T: Clone> Cached<T> {
    fn new() -> Self {
        Cached(tokio::sync::Mutex::new(None))
    }

    /// The kept value if younger than `ttl`, else a fresh one from `read` (one reader at a time).
    async fn get(&self, ttl: Duration, read: impl Future<Output = T>) -> T {
        let mut kept = self.0.lock().await;
        if let Some((at, value)) = &*kept
            && at.elapsed() < ttl
        {
            return value.clone();
        }
        let value = read.await;
        *kept = Some((Instant::now(), value.clone()));
        value
    }
}

type JobCounts = Result<Vec<(crate::db::jobs::JobStatus, i64)>, String>;

/// What the process reports about itself, besides the database.
#[derive(Clone)]
pub struct Status {
    pub gateway: GatewayStatus,
    /// Shards this process runs: it is ready when every one is connected.
    pub expected_shards: usize,
    pub commands: CommandsStatus,
    /// Shown in `/metrics`; an open breaker does not make the bot unready: it still answers.
    pub breaker: Arc<crate::breaker::Breaker>,
}

#[derive(Clone)]
struct Ops {
    pool: PgPool,
    status: Status,
    ping: Arc<Cached<bool>>,
    counts: Arc<Cached<JobCounts>>,
}

/// Serves the operations endpoints until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    status: Status,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    prometheus();
    let ops = Ops { pool, status, ping: Arc::new(Cached::new()), counts: Arc::new(Cached::new()) };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ops);
    info!(addr = %listener.local_addr()?, "operations listener started");
    let listener = GuardedListener::new(listener, "operations", MAX_CONNECTIONS, CONNECTION_LIFETIME);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    let (ready, body) = readiness(&ops).await;
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

/// Whether the bot serves — the database answers, every shard is connected, the commands are
/// registered — and the `/readyz` body that says which part is missing.
async fn readiness(ops: &Ops) -> (bool, String) {
    let ping =
        async { tokio::time::timeout(Duration::from_secs(2), crate::db::ping(&ops.pool)).await.unwrap_or(false) };
    let database = ops.ping.get(PING_TTL, ping).await;
    let connected = ops.status.gateway.connected();
    let gateway = connected >= ops.status.expected_shards;
    let commands = ops.status.commands.registered();
    let body = format!(
        "database: {}\ngateway: {connected}/{} shards connected\ncommands: {}\n",
        if database { "ok" } else { "unreachable" },
        ops.status.expected_shards,
        ops.status.commands.describe(),
    );
    (database && gateway && commands, body)
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    // Jobs not yet delivered, by state, are read from the database (so every process reports the
    // shared truth), through the partial index on undelivered jobs: a scrape never reads the
    // history of delivered jobs.
    let count = async {
        tokio::time::timeout(Duration::from_secs(2), crate::db::jobs::count_undelivered_by_status(&ops.pool))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
            .map_err(|e| e.to_string())
    };
    match ops.counts.get(COUNTS_TTL, count).await {
        Ok(states) => {
            for status in crate::db::jobs::JobStatus::ALL {
                let count = states.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                // Gauges are f64: a count of jobs stays far below 2^52, exact.
                #[allow(clippy::cast_precision_loss)]
                let count = count as f64;
                metrics::gauge!("imagine_jobs", "state" => status.as_sql()).set(count);
            }
        }
        Err(e) => warn!(error = %e, "could not count jobs for /metrics"),
    }
    let connected = u32::try_from(ops.status.gateway.connected()).unwrap_or(u32::MAX);
    metrics::gauge!("imagine_gateway_shards_connected").set(f64::from(connected));
    // `/readyz` as a gauge, for alerts that cannot probe the endpoint itself.
    let ready = readiness(&ops).await.0;
    metrics::gauge!("imagine_ready").set(if ready { 1.0 } else { 0.0 });
    let breaker = &ops.status.breaker;
    metrics::gauge!("imagine_provider_breaker_open").set(if breaker.is_open() { 1.0 } else { 0.0 });
    metrics::counter!("imagine_provider_breaker_trips_total").absolute(breaker.trips());
    ([("content-type", "text/plain; version=0.0.4")], prometheus().render())
}

/// What `imagine-bot healthcheck` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/readyz`: the bot serves (the container's health check).
    Ready,
    /// `/healthz`: the process is up.
    Live,
}

/// `imagine-bot healthcheck`: asks a running bot's `/readyz` (or `/healthz`). For container
/// health checks. The error says why, from the bot's own answer.
pub async fn check(addr: SocketAddr, probe: Probe) -> Result<(), String> {
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let path = match probe {
        Probe::Ready => "readyz",
        Probe::Live => "healthz",
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().map_err(|e| e.to_string())?;
    let response = client.get(format!("http://{target}/{path}")).send().await.map_err(|e| {
        if e.is_timeout() { format!("no answer from {target} within 3 s") } else { format!("cannot reach {target}") }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let why: Vec<&str> = body.lines().map(str::trim).filter(|l| !l.is_empty()).take(10).collect();
    Err(format!("HTTP {}: {}", status.as_u16(), crate::render::truncate(&why.join("; "), 500)))
}
