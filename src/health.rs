//! The optional operations listener (`HEALTH_ADDR`): `/healthz` (the process is up), `/readyz`
//! (the database answers and the gateway is connected) and `/metrics` (Prometheus text).

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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

#[derive(Clone)]
struct Ops {
    pool: PgPool,
    gateway: GatewayStatus,
    expected_shards: usize,
}

/// Serves the operations endpoints until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    gateway: GatewayStatus,
    expected_shards: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    prometheus();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Ops { pool, gateway, expected_shards });
    info!(addr = %listener.local_addr()?, "operations listener started");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    let database = tokio::time::timeout(Duration::from_secs(2), crate::db::ping(&ops.pool)).await.unwrap_or(false);
    let connected = ops.gateway.connected();
    let gateway = connected >= ops.expected_shards;
    let body = format!(
        "database: {}\ngateway: {connected}/{} shards connected\n",
        if database { "ok" } else { "unreachable" },
        ops.expected_shards
    );
    let status = if database && gateway { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body)
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    // Jobs by state are read from the database at scrape time, so every process reports the
    // shared truth.
    let states = tokio::time::timeout(Duration::from_secs(2), crate::db::jobs::count_by_status(&ops.pool))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    match states {
        Ok(states) => {
            for status in crate::db::jobs::JobStatus::ALL {
                let count = states.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                metrics::gauge!("imagine_jobs", "state" => status.as_sql()).set(count as f64);
            }
        }
        Err(e) => warn!(error = %e, "could not count jobs for /metrics"),
    }
    metrics::gauge!("imagine_gateway_shards_connected").set(ops.gateway.connected() as f64);
    ([("content-type", "text/plain; version=0.0.4")], prometheus().render())
}

/// `imagine-bot healthcheck`: asks a running bot's `/healthz`. For container health checks.
pub async fn check(addr: SocketAddr) -> Result<(), String> {
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().map_err(|e| e.to_string())?;
    let response = client.get(format!("http://{target}/healthz")).send().await.map_err(|e| e.to_string())?;
    if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status().as_u16())) }
}
