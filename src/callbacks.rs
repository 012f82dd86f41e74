//! The provider's completion callbacks. A callback is only a hint: it makes the worker query the
//! job at once (the query is the truth), and only a URL carrying the job's secret counts, so
//! forged or replayed callbacks change nothing.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

#[derive(Clone)]
struct Callbacks {
    pool: PgPool,
    wake: Arc<Notify>,
}

/// The callback URL for a job, under the public base URL.
pub fn url(public_base: &str, job_id: Uuid, secret: &str) -> String {
    format!("{}/callbacks/shortapi/{job_id}/{secret}", public_base.trim_end_matches('/'))
}

/// A fresh unguessable secret (244 random bits).
pub fn new_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app =
        Router::new().route("/callbacks/shortapi/{job}/{secret}", post(callback)).with_state(Callbacks { pool, wake });
    info!(addr = %listener.local_addr()?, "callback listener started");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn callback(State(state): State<Callbacks>, Path((job, secret)): Path<(String, String)>) -> StatusCode {
    let Ok(job_id) = Uuid::parse_str(&job) else {
        metrics::counter!("imagine_callbacks_total", "outcome" => "forged").increment(1);
        return StatusCode::NOT_FOUND;
    };
    let stored = match crate::db::jobs::callback_secret(&state.pool, job_id).await {
        Ok(stored) => stored,
        Err(e) => {
            warn!(error = %e, "could not check a callback; polling continues");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    };
    if !stored.is_some_and(|s| constant_time_eq(s.as_bytes(), secret.as_bytes())) {
        metrics::counter!("imagine_callbacks_total", "outcome" => "forged").increment(1);
        return StatusCode::NOT_FOUND;
    }
    match crate::db::jobs::poll_now(&state.pool, job_id).await {
        Ok(true) => {
            metrics::counter!("imagine_callbacks_total", "outcome" => "accepted").increment(1);
            state.wake.notify_one();
        }
        Ok(false) => metrics::counter!("imagine_callbacks_total", "outcome" => "stale").increment(1),
        Err(e) => warn!(error = %e, "could not act on a callback; polling continues"),
    }
    StatusCode::NO_CONTENT
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_ne!(new_secret(), new_secret());
        assert_eq!(new_secret().len(), 64);
    }
}
