//! ShortAPI client: typed create and query calls, status normalisation and error classes.
//!
//! The two calls, their error classes and the downloads (`download`, with the link rules of
//! `links`) share the transport helpers (timeouts, URL-free errors) that keep secrets out of
//! messages.

mod download;
mod links;
pub mod status;

use std::time::Duration;

use reqwest::{StatusCode, header};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

pub use download::{DownloadError, download};
pub use status::{JobState, Phase};

use crate::spec::{JobSpec, Performance};

pub const MODEL: &str = "midjourney/midjourney-v7/image-to-image";
/// Status queries that fall due together may go at once up to this much of the query cap's
/// worth (the worker starts held jobs on a grid of the same step); past it they are spaced.
const QUERY_BURST: Duration = Duration::from_millis(100);
/// How long every status query of this process waits after one was answered 429 without a
/// `Retry-After`.
const QUERY_HOLD_ON_429: Duration = Duration::from_secs(1);
/// The provider's "upstream unstable, try again" code.
const CODE_UPSTREAM_UNSTABLE: i64 = 3000;

/// The `args` of an image-to-image job on the wire, made from a [`JobSpec`] when it is sent.
/// Optional arguments the user did not set are omitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageToImageArgs {
    pub mode: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    pub aspect_ratio: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<Performance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stylization: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weirdness: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub style_image_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omni_image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omni_weight: Option<i64>,
}

impl From<&JobSpec> for ImageToImageArgs {
    fn from(spec: &JobSpec) -> Self {
        ImageToImageArgs {
            // The only mode this bot uses: "fast" is what its prices and quotas are set for.
            mode: "fast".into(),
            prompt: spec.prompt.clone(),
            negative_prompt: spec.negative_prompt.clone(),
            aspect_ratio: spec.aspect_ratio.as_str().into(),
            performance: spec.performance,
            stylization: spec.stylization,
            chaos: spec.chaos,
            weirdness: spec.weirdness,
            image_urls: spec.pictures.images.clone(),
            style_image_urls: spec.pictures.style.clone(),
            omni_image_url: spec.pictures.omni.clone(),
            style_weight: spec.style_weight,
            omni_weight: spec.omni_weight,
        }
    }
}

/// A job the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub job_id: String,
    /// The price the provider reported, exactly (for example 0.04 US dollars).
    pub amount: Option<Decimal>,
}

/// Why a call failed, sorted by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Worth trying again later: network trouble, a timeout, HTTP 429 or 5xx, code 3000, a body
    /// that could not be read. `may_have_landed` is true when the request reached the provider
    /// and may have taken effect (a create that timed out must not be sent again blindly).
    #[error("temporary provider problem: {reason}")]
    Transient { reason: String, retry_after: Option<Duration>, may_have_landed: bool },
    /// The provider refused the request; trying again will not help.
    #[error("provider refused the request: {message}")]
    Rejected { message: String, code: Option<i64>, http_status: Option<u16> },
}

impl ProviderError {
    fn transient(reason: impl Into<String>, may_have_landed: bool) -> Self {
        ProviderError::Transient { reason: reason.into(), retry_after: None, may_have_landed }
    }
}

#[derive(Clone)]
pub struct ShortApi {
    http: reqwest::Client,
    base_url: String,
    key: SecretString,
    /// Caps the status queries of this process (creates are never delayed).
    queries: std::sync::Arc<crate::pace::Pacer>,
    /// `base_url`'s host and port, whose result links are fetched whatever their scheme and address.
    origin: Option<links::TrustedOrigin>,
}

impl std::fmt::Debug for ShortApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShortApi").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl ShortApi {
    pub fn new(base_url: &str, key: SecretString, timeout: Duration, max_queries_per_second: f64) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("imagine-bot/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls builds");
        ShortApi {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            queries: std::sync::Arc::new(crate::pace::Pacer::with_burst(max_queries_per_second, QUERY_BURST)),
            origin: links::TrustedOrigin::of(base_url),
        }
    }

    /// `POST /api/v1/job/create`.
    pub async fn create(&self, spec: &JobSpec, callback_url: Option<&str>) -> Result<Created, ProviderError> {
        #[derive(Serialize)]
        struct Body<'a> {
            model: &'static str,
            args: ImageToImageArgs,
            #[serde(skip_serializing_if = "Option::is_none")]
            callback_url: Option<&'a str>,
        }
        let request = self
            .http
            .post(format!("{}/api/v1/job/create", self.base_url))
            .bearer_auth(self.key.expose_secret())
            .json(&Body { model: MODEL, args: ImageToImageArgs::from(spec), callback_url });
        let data = self.call(request, true).await?;
        let job_id = match data.get("job_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ProviderError::transient("create answered without a job id", true)),
        };
        let amount = parse_amount(data.get("amount"));
        if amount.is_none() {
            // Still a paid job: it is recorded and followed; only its price is unknown.
            tracing::warn!(amount = ?data.get("amount"), "the provider reported no readable amount for a job");
        }
        Ok(Created { job_id, amount })
    }

    /// `GET /api/v1/job/query?id=JOB_ID`.
    pub async fn query(&self, job_id: &str) -> Result<JobState, ProviderError> {
        self.queries.wait().await;
        let request = self
            .http
            .get(format!("{}/api/v1/job/query", self.base_url))
            .query(&[("id", job_id)])
            .bearer_auth(self.key.expose_secret());
        let data = self.call(request, false).await?;
        Ok(links::without_unsafe_links(JobState::from_data(&data), self.origin.as_ref()))
    }

    /// Sends a request, unwraps the `{"code":0,"data":...}` envelope, and records metrics.
    async fn call(&self, request: reqwest::RequestBuilder, is_create: bool) -> Result<Value, ProviderError> {
        let started = std::time::Instant::now();
        let result = self.call_unmetered(request, is_create).await;
        let call = if is_create { "create" } else { "query" };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ProviderError::Transient { .. }) => "transient",
            Err(ProviderError::Rejected { .. }) => "rejected",
        };
        metrics::histogram!("imagine_provider_request_seconds", "call" => call).record(started.elapsed().as_secs_f64());
        metrics::counter!("imagine_provider_requests_total", "call" => call, "outcome" => outcome).increment(1);
        result
    }

    async fn call_unmetered(&self, request: reqwest::RequestBuilder, is_create: bool) -> Result<Value, ProviderError> {
        let response = request.send().await.map_err(|e| {
            // A request that never connected cannot have created anything.
            let landed = is_create && !e.is_connect();
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "network error"
            };
            ProviderError::transient(format!("{what}: {}", without_url(&e)), landed)
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(600.0)));
        let body = response.bytes().await.map_err(|e| {
            ProviderError::transient(format!("reading the answer failed: {}", without_url(&e)), is_create)
        })?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let message = json.as_ref().and_then(error_message).unwrap_or_else(|| snippet(&body));

        if status == StatusCode::TOO_MANY_REQUESTS {
            if !is_create {
                // The provider's limit is the process's, not one job's: every query waits.
                self.queries.hold_until(std::time::Instant::now() + retry_after.unwrap_or(QUERY_HOLD_ON_429));
            }
            return Err(ProviderError::Transient {
                reason: format!("rate limited: {message}"),
                retry_after,
                may_have_landed: false,
            });
        }
        if status.is_server_error() {
            // 503 says the service did not take the request. Any other 5xx (500, 502, 504: a
            // gateway in front of the provider, or the provider failing halfway) may come after
            // the job was made and billed: a create answered so is never sent again blindly.
            let landed = is_create && status != StatusCode::SERVICE_UNAVAILABLE;
            return Err(ProviderError::Transient {
                reason: format!("HTTP {}: {message}", status.as_u16()),
                retry_after,
                may_have_landed: landed,
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Rejected { message, code: None, http_status: Some(status.as_u16()) });
        }
        let Some(json) = json else {
            return Err(ProviderError::transient(format!("unreadable answer: {}", snippet(&body)), is_create));
        };
        let code = json.get("code").and_then(|c| c.as_i64().or_else(|| c.as_str().and_then(|s| s.parse().ok())));
        match code {
            Some(0) => Ok(json.get("data").cloned().unwrap_or(Value::Null)),
            Some(CODE_UPSTREAM_UNSTABLE) => Err(ProviderError::Transient {
                reason: format!("upstream unstable: {message}"),
                retry_after,
                may_have_landed: false,
            }),
            Some(code) => {
                Err(ProviderError::Rejected { message, code: Some(code), http_status: Some(status.as_u16()) })
            }
            None => Err(ProviderError::transient(format!("answer without a code: {}", snippet(&body)), is_create)),
        }
    }
}

/// Words of the provider that put a refusal on the bot's operator: account, balance, key, plan.
const OPERATOR_WORDS: [&str; 20] = [
    "balance",
    "credit",
    "insufficient",
    "recharge",
    "payment",
    "billing",
    "account",
    "api key",
    "apikey",
    "api_key",
    "token",
    "auth",
    "forbidden",
    "permission",
    "subscription",
    "quota",
    "plan",
    "expired",
    "suspend",
    "limit",
];

/// Whether a refusal is about the bot's own account — its balance, key, plan or standing — by
/// the HTTP status (401, 402, 403, 407) or the provider's words. Such refusals would refuse every
/// job alike, whoever asks (see [`crate::breaker`]).
pub fn concerns_the_account(message: &str, http_status: Option<u16>) -> bool {
    if matches!(http_status, Some(401 | 402 | 403 | 407)) {
        return true;
    }
    let words = message.to_lowercase();
    OPERATOR_WORDS.iter().any(|w| words.contains(w))
}

/// Whether the provider's words for a refusal or a failure are about the user's own request —
/// moderation, an invalid image or prompt — and so fit for a public reply. Account, balance, key
/// and any other problems of the bot's operator are not: they stay in the logs.
pub fn concerns_the_request(message: &str, http_status: Option<u16>) -> bool {
    const REQUEST: [&str; 10] =
        ["prompt", "image", "picture", "photo", "aspect", "invalid", "parameter", "argument", "format", "resolution"];
    if http_status == Some(429) || concerns_the_account(message, http_status) {
        return false;
    }
    let words = message.to_lowercase();
    MODERATION.iter().chain(&REQUEST).any(|w| words.contains(w))
}

/// Words of a refusal or a failure that mean the image service's moderation declined the request.
const MODERATION: [&str; 10] =
    ["moderat", "nsfw", "banned", "prohibited", "inappropriate", "policy", "violat", "unsafe", "sensitive", "flagged"];

/// Whether a failed job's reason (`jobs.error_text`) says the image service's moderation declined
/// it. The reason holds the provider's words only when they concern the request, so a refusal of
/// the bot's account never reads as moderation.
pub fn declined_by_moderation(reason: &str) -> bool {
    let words = reason.to_lowercase();
    MODERATION.iter().any(|w| words.contains(w))
}

/// The price of a job in US dollars, exactly, from whatever form the provider used: a number, or
/// a string that may carry a currency sign, spaces or a decimal comma. Anything else is `None`: an
/// odd format must never make a paid job look lost.
pub fn parse_amount(value: Option<&Value>) -> Option<Decimal> {
    let text = match value? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().trim_start_matches('$').trim_end_matches("USD").trim().replace(',', "."),
        _ => return None,
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let valid = !whole.is_empty() && whole.len() <= 12 && digits(whole) && fraction.len() <= 12 && digits(fraction);
    let plain = if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") };
    if valid { plain.parse().ok() } else { None }
}

/// The provider's own words for an error: `info`, `message`, `msg` or `error.message`.
fn error_message(json: &Value) -> Option<String> {
    ["info", "message", "msg", "error"].iter().filter_map(|k| json.get(k)).find_map(status::message_text)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty answer)".into();
    }
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// A short description of a transport error: its innermost cause, without the request URL.
fn without_url(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if std::ptr::addr_eq(cause, e as &dyn std::error::Error) {
        if e.is_timeout() { "timeout".into() } else { "request error".into() }
    } else {
        cause.to_string()
    }
}

#[cfg(test)]
mod tests;
