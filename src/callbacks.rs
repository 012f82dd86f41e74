//! The provider's completion callbacks. A callback is only a hint: it makes the worker query the
//! job at once (the query is the truth), and only a URL carrying the job's secret counts, so
//! forged or replayed callbacks change nothing.
//!
//! The listener faces the internet, so it is built to shrug strangers off:
//! - a job's secret is `hex(HMAC-SHA256(key, job id))`, with a [`Key`] every process derives from
//!   `SHORTAPI_KEY`; it is checked before anything else, without the database, so a forged
//!   callback costs one HMAC and never a database connection;
//! - bodies are capped ([`MAX_BODY_BYTES`]; 413 beyond), and only read once the URL is genuine;
//! - at most [`MAX_WORKING`] genuine callbacks use the database at once (503 beyond), well under
//!   the pool's size, so callbacks can never take the connections commands need;
//! - each request gets [`REQUEST_TIME`], each connection [`CONNECTION_LIFETIME`], at most
//!   [`MAX_CONNECTIONS`] connections are open at once (more wait to be accepted), and a refused
//!   request's connection is closed, so strangers cannot sit on connections.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::PgPool;
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::listener::GuardedListener;

/// Largest callback body accepted. The body is only a hint and is not used.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Genuine callbacks handled at once; more are answered 503 (the provider may retry, and polling
/// covers a lost callback). Kept well under the database pool's 20 connections.
pub const MAX_WORKING: usize = 8;
/// Time allowed for one request, body included.
pub const REQUEST_TIME: Duration = Duration::from_secs(10);
/// Connections open at once; more wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection is closed this long after it was opened, whatever it is doing (slow clients).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Label of the callback key derived from `SHORTAPI_KEY`. Changing it invalidates every callback
/// URL handed out before (those jobs fall back to polling).
const KEY_LABEL: &[u8] = b"imagine-bot callback URL key v1";

/// The key that signs callback URLs. Every process sharing `SHORTAPI_KEY` derives the same key;
/// the provider key itself never appears in a URL.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("callbacks::Key(..)")
    }
}

impl Key {
    /// `HMAC-SHA256(SHORTAPI_KEY, label)`.
    pub fn derive(shortapi_key: &SecretString) -> Key {
        let mut mac = hmac(shortapi_key.expose_secret().as_bytes());
        mac.update(KEY_LABEL);
        Key(mac.finalize().into_bytes().into())
    }

    /// The secret in job `job_id`'s callback URL: 64 hex digits of `HMAC-SHA256(key, job id)`.
    pub fn secret(&self, job_id: Uuid) -> String {
        let mut mac = hmac(&self.0);
        mac.update(job_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `secret` is job `job_id`'s secret (compared in constant time).
    pub fn verify(&self, job_id: Uuid, secret: &str) -> bool {
        let Some(tag) = unhex(secret) else { return false };
        let mut mac = hmac(&self.0);
        mac.update(job_id.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase or uppercase hex to bytes; `None` for anything else (or an odd length).
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The callback URL for a job, under the public base URL. `secret` is [`Key::secret`] of its id,
/// derived by the worker when it sends the create.
pub fn url(public_base: &str, job_id: Uuid, secret: &str) -> String {
    format!("{}/callbacks/shortapi/{job_id}/{secret}", public_base.trim_end_matches('/'))
}

#[derive(Clone)]
struct Callbacks {
    key: Key,
    pool: PgPool,
    wake: Arc<Notify>,
    working: Arc<Semaphore>,
}

pub async fn serve(
    listener: TcpListener,
    key: Key,
    pool: PgPool,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = Callbacks { key, pool, wake, working: Arc::new(Semaphore::new(MAX_WORKING)) };
    let app = Router::new().route("/callbacks/shortapi/{job}/{secret}", post(callback)).with_state(state);
    info!(addr = %listener.local_addr()?, "callback listener started");
    let listener = GuardedListener::new(listener, "callbacks", MAX_CONNECTIONS, CONNECTION_LIFETIME);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn callback(
    State(state): State<Callbacks>,
    Path((job, secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        metrics::counter!("imagine_callbacks_total", "outcome" => "too_large").increment(1);
        return refuse(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // The secret is checked first, without the database.
    let job_id = match Uuid::parse_str(&job) {
        Ok(id) if state.key.verify(id, &secret) => id,
        _ => {
            metrics::counter!("imagine_callbacks_total", "outcome" => "forged").increment(1);
            return refuse(StatusCode::NOT_FOUND);
        }
    };
    let Ok(_permit) = state.working.try_acquire() else {
        metrics::counter!("imagine_callbacks_total", "outcome" => "busy").increment(1);
        return refuse(StatusCode::SERVICE_UNAVAILABLE);
    };
    match tokio::time::timeout(REQUEST_TIME, act(&state, job_id, body)).await {
        Ok(StatusCode::NO_CONTENT) => StatusCode::NO_CONTENT.into_response(),
        Ok(status) => refuse(status),
        Err(_) => {
            warn!(%job_id, "a callback took too long; polling continues");
            refuse(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// A refusal, closing the connection: a stranger does not keep a connection (and its place
/// among [`MAX_CONNECTIONS`]) between requests.
fn refuse(status: StatusCode) -> Response {
    (status, [(header::CONNECTION, "close")]).into_response()
}

/// Reads the (capped) body of a genuine callback and makes the job due for a query.
async fn act(state: &Callbacks, job_id: Uuid, body: Body) -> StatusCode {
    // Read to the end so the connection can be reused; the content is not needed.
    if axum::body::to_bytes(body, MAX_BODY_BYTES).await.is_err() {
        metrics::counter!("imagine_callbacks_total", "outcome" => "too_large").increment(1);
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match crate::db::jobs::poll_now(&state.pool, job_id).await {
        Ok(true) => {
            metrics::counter!("imagine_callbacks_total", "outcome" => "accepted").increment(1);
            state.wake.notify_one();
            StatusCode::NO_CONTENT
        }
        Ok(false) => {
            metrics::counter!("imagine_callbacks_total", "outcome" => "stale").increment(1);
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            warn!(%job_id, error = %e, "could not act on a callback; polling continues");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::derive(&SecretString::from("provider-key"))
    }

    #[test]
    fn secrets_are_derived_from_the_job_and_the_provider_key() {
        let (key, job) = (key(), Uuid::new_v4());
        let secret = key.secret(job);
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(secret, key.secret(job), "every process derives the same secret");
        assert!(key.verify(job, &secret));
        assert!(key.verify(job, &secret.to_uppercase()));
        assert!(!key.verify(Uuid::new_v4(), &secret), "bound to the job");
        assert!(!Key::derive(&SecretString::from("another key")).verify(job, &secret), "bound to the key");
        for forged in ["", "0", &"0".repeat(64), &secret[..62], &format!("{secret}00"), &format!("{}zz", &secret[..62])]
        {
            assert!(!key.verify(job, forged), "{forged}");
        }
        assert!(!secret.contains("provider-key"));
        assert_eq!(format!("{key:?}"), "callbacks::Key(..)", "the key is never printed");
    }

    /// A pool that would fail (after its acquire timeout) if anything asked it for a connection.
    fn unreachable_pool() -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool")
    }

    fn state(permits: usize) -> Callbacks {
        Callbacks {
            key: key(),
            pool: unreachable_pool(),
            wake: Arc::new(Notify::new()),
            working: Arc::new(Semaphore::new(permits)),
        }
    }

    async fn call(state: &Callbacks, job: &str, secret: &str, headers: HeaderMap, body: impl Into<Body>) -> StatusCode {
        let answer = callback(State(state.clone()), Path((job.to_owned(), secret.to_owned())), headers, body.into());
        let answer = tokio::time::timeout(Duration::from_secs(2), answer)
            .await
            .expect("answered without waiting on the database");
        assert_eq!(answer.headers().get(header::CONNECTION).unwrap(), "close", "a refusal closes the connection");
        answer.status()
    }

    #[tokio::test]
    async fn forged_callbacks_are_refused_before_the_database() {
        let state = state(MAX_WORKING);
        let job = Uuid::new_v4();
        let other = state.key.secret(Uuid::new_v4());
        assert_eq!(call(&state, &job.to_string(), &other, HeaderMap::new(), "{}").await, StatusCode::NOT_FOUND);
        assert_eq!(call(&state, "not-a-job", &other, HeaderMap::new(), "{}").await, StatusCode::NOT_FOUND);
        assert_eq!(call(&state, &job.to_string(), "zz", HeaderMap::new(), "{}").await, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn oversized_bodies_and_saturation_are_refused() {
        let state = state(MAX_WORKING);
        let job = Uuid::new_v4();
        let secret = state.key.secret(job);
        let mut big = HeaderMap::new();
        big.insert(header::CONTENT_LENGTH, (MAX_BODY_BYTES + 1).to_string().parse().unwrap());
        assert_eq!(call(&state, &job.to_string(), &secret, big.clone(), "{}").await, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(call(&state, &job.to_string(), "00", big, "{}").await, StatusCode::PAYLOAD_TOO_LARGE);
        // A body that does not say its length is cut off at the cap.
        let unannounced = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            call(&state, &job.to_string(), &secret, HeaderMap::new(), unannounced).await,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        let saturated = state_with_no_room();
        assert_eq!(
            call(&saturated, &job.to_string(), &saturated.key.secret(job), HeaderMap::new(), "{}").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    fn state_with_no_room() -> Callbacks {
        state(0)
    }
}
