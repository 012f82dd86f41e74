//! The bot's own Discord REST client and the classification of Discord errors, shared by the
//! commands (`bot/`) and the worker (`jobs/`): editing an interaction reply, or posting in the
//! channel when the reply can no longer be edited.
//!
//! These requests are made here rather than through serenity so that a 429's `retry_after` can
//! be honoured (serenity cannot read a 429 body) and so that the bot paces its own requests when
//! serenity's rate limiter is off behind a REST proxy. Errors never carry the request URL, which
//! contains the interaction token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::{
    Method,
    multipart::{Form, Part},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::{pace::Pacer, render::Rendered};

const DISCORD: &str = "https://discord.com";
/// Bot-token requests per second the worker allows itself, under Discord's global 50.
const REQUESTS_PER_SECOND: f64 = 40.0;
/// URLs `POST /attachments/refresh-urls` takes at once.
const REFRESH_AT_MOST: usize = 50;
/// The message flag that shows a message only to the member of its interaction.
const EPHEMERAL: u64 = 1 << 6;
/// Tries of a channel message that Discord keeps refusing for its rate limit (see
/// [`DiscordRest::post_message`]); the waits between them are Discord's own.
const POST_TRIES: u32 = 5;

/// Why a send failed, sorted by what to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The interaction token no longer works (expired, unknown, or the reply is too old to edit):
    /// post in the channel instead.
    ReplyGone(String),
    /// The request was too large: send fewer files.
    TooLarge,
    /// Try again after this long.
    RateLimited(Duration),
    /// Network trouble or a Discord 5xx: try again later.
    Transient(String),
    /// Discord refused for good (missing permissions, unknown channel, ...).
    Refused(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ReplyGone(why) => write!(f, "reply can no longer be edited ({why})"),
            SendError::TooLarge => f.write_str("request too large"),
            SendError::RateLimited(after) => write!(f, "rate limited for {after:?}"),
            SendError::Transient(why) => write!(f, "temporary failure ({why})"),
            SendError::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// Discord error codes meaning the interaction reply cannot be edited any more.
const REPLY_GONE_CODES: [i64; 4] = [10015, 50027, 10062, 30046];
const TOO_LARGE_CODES: [i64; 2] = [40005, 50045];

/// Sorts an error answer from Discord.
pub fn classify(status: u16, body: &Value, retry_after_header: Option<f64>) -> SendError {
    let code = body.get("code").and_then(Value::as_i64).unwrap_or(0);
    let what = format!("HTTP {status}, code {code}");
    if status == 429 {
        let seconds = body.get("retry_after").and_then(Value::as_f64).or(retry_after_header).unwrap_or(1.0);
        SendError::RateLimited(Duration::from_secs_f64(seconds.clamp(0.05, 600.0)))
    } else if REPLY_GONE_CODES.contains(&code) || status == 401 {
        SendError::ReplyGone(what)
    } else if TOO_LARGE_CODES.contains(&code) || status == 413 {
        SendError::TooLarge
    } else if status >= 500 {
        SendError::Transient(what)
    } else {
        let message = body.get("message").and_then(Value::as_str).unwrap_or("");
        SendError::Refused(format!("{what}: {}", crate::render::truncate(message, 200)))
    }
}

/// Sorts an error from serenity (used for the command's own replies).
pub fn classify_serenity(error: serenity::Error) -> SendError {
    use serenity::all::HttpError;
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => classify(
            response.status_code.as_u16(),
            &json!({"code": response.error.code, "message": response.error.message}),
            None,
        ),
        serenity::Error::Http(HttpError::Request(e)) => {
            SendError::Transient(if e.is_timeout() { "timeout".into() } else { "network error".into() })
        }
        serenity::Error::Model(e) => SendError::Refused(format!("message rejected before sending: {e}")),
        _ => SendError::Transient("unexpected client error".into()),
    }
}

/// A file to upload.
#[derive(Clone)]
pub struct Upload {
    pub filename: String,
    /// Shared, so that sending it (again, after a refusal) copies nothing.
    pub bytes: bytes::Bytes,
    /// Where the provider served it, for a link when it cannot be uploaded.
    pub source_url: String,
}

/// A minimal Discord REST client for the worker's deliveries.
pub struct DiscordRest {
    http: reqwest::Client,
    base: String,
    bot_token: SecretString,
    /// Global pacing, held back by global 429s.
    pacer: Pacer,
    /// Per channel, for the messages the bot posts there: one at a time, and none before the time
    /// Discord's last answer said the channel's limit resets, when it said none were left.
    channels: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl DiscordRest {
    /// `proxy` replaces `https://discord.com` when set.
    pub fn new(proxy: Option<&str>, bot_token: SecretString, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!(
                "DiscordBot (https://github.com/imagine-bot/imagine-bot, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .expect("a reqwest client with rustls builds");
        DiscordRest {
            http,
            base: proxy.unwrap_or(DISCORD).trim_end_matches('/').to_owned(),
            bot_token,
            pacer: Pacer::per_second(REQUESTS_PER_SECOND),
            channels: Mutex::default(),
        }
    }

    /// Edits the interaction's original reply. Mentions never ping from an edit.
    pub async fn edit_reply(
        &self,
        application_id: u64,
        token: &str,
        message: &Rendered,
        uploads: &[&Upload],
    ) -> Result<u64, SendError> {
        let payload = payload(message, uploads, json!({"parse": []}), None);
        let url = format!("{}/api/v10/webhooks/{application_id}/{token}/messages/@original", self.base);
        self.send("edit", Method::PATCH, url, false, payload, uploads).await.0
    }

    /// Sends a message that only the interaction's member sees (an ephemeral follow-up), while
    /// the interaction's token lives.
    pub async fn private_followup(
        &self,
        application_id: u64,
        token: &str,
        message: &Rendered,
        uploads: &[&Upload],
    ) -> Result<u64, SendError> {
        let mut payload = payload(message, uploads, json!({"parse": []}), None);
        payload["flags"] = json!(EPHEMERAL);
        let url = format!("{}/api/v10/webhooks/{application_id}/{token}", self.base);
        self.send("followup", Method::POST, url, false, payload, uploads).await.0
    }

    /// Posts the job's message in its channel, mentioning (and pinging) the user, as a reply to
    /// the original message when there is one. `nonce` (at most 25 characters, the same on every
    /// try) with `enforce_nonce` makes Discord return the first message instead of posting a
    /// second one when a retry follows an answer that was lost.
    pub async fn post_in_channel(
        &self,
        channel_id: u64,
        user_id: u64,
        reply_to: Option<u64>,
        nonce: &str,
        message: &Rendered,
        uploads: &[&Upload],
    ) -> Result<u64, SendError> {
        let content = format!("<@{user_id}> {}", message.content);
        let message = Rendered { content, embeds: message.embeds.clone(), components: message.components.clone() };
        let reference = reply_to
            .map(|id| json!({"message_id": id.to_string(), "channel_id": channel_id.to_string(), "fail_if_not_exists": false}));
        let mut payload = payload(&message, uploads, json!({"parse": [], "users": [user_id.to_string()]}), reference);
        payload["nonce"] = json!(nonce.chars().take(25).collect::<String>());
        payload["enforce_nonce"] = json!(true);
        self.to_channel("channel", channel_id, &payload, uploads, 1).await
    }

    /// Posts a message in a channel: a log channel's notice, or the follow-up ping of a long job.
    /// Only `mention` (when given) is pinged, whatever the content names.
    ///
    /// A busy channel (Discord takes a few messages in a few seconds per channel) delays the
    /// message rather than dropping it. The bot's messages to one channel go one at a time, and
    /// when Discord's answer says the channel has no message left (`X-RateLimit-Remaining: 0`),
    /// the next waits for its `X-RateLimit-Reset-After`. A 429 (another process, say, took the
    /// channel's room) means the message was not posted: it waits as Discord asks and tries
    /// again, up to [`POST_TRIES`] times in all.
    pub async fn post_message(
        &self,
        channel_id: u64,
        message: &Rendered,
        mention: Option<u64>,
    ) -> Result<u64, SendError> {
        let users: Vec<String> = mention.iter().map(u64::to_string).collect();
        let payload = payload(message, &[], json!({"parse": [], "users": users}), None);
        self.to_channel("post", channel_id, &payload, &[], POST_TRIES).await
    }

    /// Posts in a channel, the only way the bot writes to one: the bot's messages to a channel go
    /// one at a time, none before the time Discord's last answer there said the channel's limit
    /// resets (when it said none were left, or answered 429). A message refused with a 429 was not
    /// posted and is tried again after Discord's wait, up to `tries` times in all; the last 429 is
    /// returned, for the caller to wait out.
    async fn to_channel(
        &self,
        route: &'static str,
        channel_id: u64,
        payload: &Value,
        uploads: &[&Upload],
        tries: u32,
    ) -> Result<u64, SendError> {
        let url = format!("{}/api/v10/channels/{channel_id}/messages", self.base);
        let channel = self.channel(channel_id);
        let mut not_before = channel.lock().await;
        let mut tried = 0;
        loop {
            if let Some(at) = not_before.take() {
                tokio::time::sleep_until(at.into()).await;
            }
            let (result, room) = self.send(route, Method::POST, url.clone(), true, payload.clone(), uploads).await;
            tried += 1;
            if let Room::NoneUntil(at) = room {
                *not_before = Some(at);
            }
            match result {
                Err(SendError::RateLimited(wait)) => {
                    *not_before = Some(Instant::now() + wait);
                    if tried >= tries {
                        return Err(SendError::RateLimited(wait));
                    }
                }
                result => return result,
            }
        }
    }

    /// The state of the bot's posts in `channel_id` (see [`DiscordRest::to_channel`]).
    fn channel(&self, channel_id: u64) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        channels.entry(channel_id).or_default().clone()
    }

    /// Registers (overwrites) the application's commands, in `guild` when given, else globally.
    pub async fn register_commands(
        &self,
        application_id: u64,
        guild: Option<u64>,
        definitions: &Value,
    ) -> Result<(), SendError> {
        let url = match guild {
            Some(guild) => format!("{}/api/v10/applications/{application_id}/guilds/{guild}/commands", self.base),
            None => format!("{}/api/v10/applications/{application_id}/commands", self.base),
        };
        let result = self.bot_json(Method::PUT, url, definitions).await.map(drop);
        let outcome = match &result {
            Ok(()) => "ok",
            Err(SendError::RateLimited(_)) => "rate_limited",
            Err(_) => "failed",
        };
        metrics::counter!("imagine_discord_requests_total", "route" => "commands", "outcome" => outcome).increment(1);
        result
    }

    /// Fresh links for Discord attachment URLs (`POST /attachments/refresh-urls`, at most 50 at a
    /// time): each URL Discord renewed, mapped from the URL as given. URLs Discord does not renew
    /// are left out.
    pub async fn refresh_urls(&self, urls: &[String]) -> Result<HashMap<String, String>, SendError> {
        let mut fresh = HashMap::new();
        for chunk in urls.chunks(REFRESH_AT_MOST) {
            let url = format!("{}/api/v10/attachments/refresh-urls", self.base);
            let result = self.bot_json(Method::POST, url, &json!({ "attachment_urls": chunk })).await;
            let outcome = if result.is_ok() { "ok" } else { "failed" };
            metrics::counter!("imagine_discord_requests_total", "route" => "refresh_urls", "outcome" => outcome)
                .increment(1);
            let body = match result {
                Ok(body) => body,
                Err(e) if fresh.is_empty() => return Err(e),
                // Keep what earlier batches renewed.
                Err(_) => break,
            };
            for pair in body["refreshed_urls"].as_array().into_iter().flatten() {
                if let (Some(original), Some(refreshed)) = (pair["original"].as_str(), pair["refreshed"].as_str()) {
                    fresh.insert(original.to_owned(), refreshed.to_owned());
                }
            }
        }
        Ok(fresh)
    }

    /// One paced bot-token JSON request; the answer's body on success.
    async fn bot_json(&self, method: Method, url: String, body: &Value) -> Result<Value, SendError> {
        self.pacer.wait().await;
        let response = self
            .http
            .request(method, url)
            .header("Authorization", format!("Bot {}", self.bot_token.expose_secret()))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                SendError::Transient(if e.is_timeout() { "timeout".into() } else { "network error".into() })
            })?;
        let status = response.status();
        let retry_after =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(classify(status.as_u16(), &body, retry_after))
    }

    /// Sends one request and records its outcome (`route` names it in metrics); also says what
    /// Discord's answer said is left of the route's limit.
    async fn send(
        &self,
        route: &'static str,
        method: Method,
        url: String,
        authorised: bool,
        payload: Value,
        uploads: &[&Upload],
    ) -> (Result<u64, SendError>, Room) {
        let mut room = Room::Some;
        let result = async {
            if authorised {
                // Interaction webhooks are outside the bot's global rate limit; bot-token routes
                // share it, so only those are paced.
                self.pacer.wait().await;
            }
            let mut request = self.http.request(method, url);
            if authorised {
                request = request.header("Authorization", format!("Bot {}", self.bot_token.expose_secret()));
            }
            request = if uploads.is_empty() {
                request.json(&payload)
            } else {
                let mut form = Form::new().text("payload_json", payload.to_string());
                for (i, upload) in uploads.iter().enumerate() {
                    let length = upload.bytes.len() as u64;
                    let part = Part::stream_with_length(upload.bytes.clone(), length)
                        .file_name(upload.filename.clone())
                        .mime_str(mime_for(&upload.filename))
                        .expect("static MIME types parse");
                    form = form.part(format!("files[{i}]"), part);
                }
                request.multipart(form)
            };
            let response = request.send().await.map_err(|e| {
                SendError::Transient(if e.is_timeout() { "timeout".into() } else { "network error".into() })
            })?;
            let status = response.status();
            let retry_after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
            let global = response.headers().get("x-ratelimit-scope").is_some_and(|v| v == "global");
            room = Room::of(response.headers(), Instant::now());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return body
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| id.parse().ok())
                    .ok_or(SendError::Transient("answer without a message id".into()));
            }
            let error = classify(status.as_u16(), &body, retry_after);
            if let SendError::RateLimited(wait) = &error
                && (global || body.get("global").and_then(Value::as_bool) == Some(true))
            {
                // A global limit holds back every request, not just this one.
                self.pacer.hold_until(Instant::now() + *wait);
            }
            Err(error)
        }
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(SendError::RateLimited(_)) => "rate_limited",
            Err(SendError::ReplyGone(_)) => "reply_gone",
            Err(SendError::TooLarge) => "too_large",
            Err(SendError::Transient(_)) => "transient",
            Err(SendError::Refused(_)) => "refused",
        };
        metrics::counter!("imagine_discord_requests_total", "route" => route, "outcome" => outcome).increment(1);
        (result, room)
    }
}

/// What an answer said is left of its route's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Requests are left, or the answer did not say.
    Some,
    /// None is left until then (`X-RateLimit-Remaining: 0`, reset after `X-RateLimit-Reset-After`).
    NoneUntil(Instant),
}

impl Room {
    fn of(headers: &reqwest::header::HeaderMap, now: Instant) -> Room {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let reset_after = header("x-ratelimit-reset-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(600.0)));
        match (header("x-ratelimit-remaining"), reset_after) {
            (Some("0"), Some(after)) => Room::NoneUntil(now + after),
            _ => Room::Some,
        }
    }
}

/// When a Discord attachment URL stops working: its `ex` parameter (hex Unix seconds). `None`
/// for a URL without one (not a signed Discord link).
pub fn link_expires_at(url: &str) -> Option<i64> {
    let (_, query) = url.split_once('?')?;
    let ex = query.split(['&', '#']).find_map(|kv| kv.strip_prefix("ex="))?;
    i64::from_str_radix(ex, 16).ok()
}

/// The JSON part of a message: content, embeds, buttons, mentions, and the files being uploaded
/// (on an edit, listing exactly these files replaces any earlier ones; `components` is always
/// sent, so an edit without buttons removes any earlier ones).
fn payload(message: &Rendered, uploads: &[&Upload], allowed_mentions: Value, reference: Option<Value>) -> Value {
    let attachments: Vec<Value> =
        uploads.iter().enumerate().map(|(i, u)| json!({"id": i, "filename": u.filename})).collect();
    let mut payload = json!({
        "content": message.content,
        "embeds": message.embeds,
        "components": message.components,
        "allowed_mentions": allowed_mentions,
        "attachments": attachments,
    });
    if let Some(reference) = reference {
        payload["message_reference"] = reference;
    }
    payload
}

fn mime_for(filename: &str) -> &'static str {
    match filename.rsplit_once('.').map(|(_, e)| e) {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        _ => "image/png",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_leaves_no_room_says_until_when() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let now = Instant::now();
        let mut headers = HeaderMap::new();
        assert_eq!(Room::of(&headers, now), Room::Some, "an answer that says nothing");
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset-after", HeaderValue::from_static("2.5"));
        assert_eq!(Room::of(&headers, now), Room::NoneUntil(now + Duration::from_millis(2500)));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("3"));
        assert_eq!(Room::of(&headers, now), Room::Some, "room left");
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset-after", HeaderValue::from_static("soon"));
        assert_eq!(Room::of(&headers, now), Room::Some, "a reset it cannot read holds nothing back");
    }

    #[test]
    fn errors_are_sorted_by_what_to_do() {
        assert_eq!(
            classify(429, &json!({"message":"You are being rate limited.","retry_after":2.5,"global":false}), None),
            SendError::RateLimited(Duration::from_millis(2500))
        );
        assert_eq!(classify(429, &Value::Null, Some(4.0)), SendError::RateLimited(Duration::from_secs(4)));
        for code in [10015, 50027, 10062, 30046] {
            assert!(matches!(classify(400, &json!({"code": code}), None), SendError::ReplyGone(_)), "{code}");
        }
        assert!(matches!(classify(401, &Value::Null, None), SendError::ReplyGone(_)));
        assert_eq!(classify(413, &Value::Null, None), SendError::TooLarge);
        assert_eq!(classify(400, &json!({"code": 40005}), None), SendError::TooLarge);
        assert!(matches!(classify(502, &Value::Null, None), SendError::Transient(_)));
        assert!(
            matches!(classify(403, &json!({"code": 50013, "message": "Missing Permissions"}), None), SendError::Refused(m) if m.contains("Missing Permissions"))
        );
    }

    #[test]
    fn signed_links_say_when_they_expire() {
        let url = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=66a1b2c3&is=66a06143&hm=3f1c&";
        assert_eq!(link_expires_at(url), Some(0x66a1b2c3));
        assert_eq!(link_expires_at("https://cdn.discordapp.com/attachments/1/2/a.png"), None);
        assert_eq!(link_expires_at("https://x/a.png?is=1&hm=2"), None);
        assert_eq!(link_expires_at("https://x/a.png?ex=zz"), None);
        assert_eq!(link_expires_at("https://x/a.png?hex=10"), None);
    }

    #[test]
    fn payload_lists_the_uploaded_files() {
        let message = Rendered { content: "done".into(), embeds: vec![], components: vec![] };
        let uploads = [Upload {
            filename: "imagine-1.png".into(),
            bytes: bytes::Bytes::from_static(&[1]),
            source_url: "u".into(),
        }];
        let p = payload(&message, &[&uploads[0]], json!({"parse": []}), None);
        assert_eq!(p["attachments"], json!([{"id": 0, "filename": "imagine-1.png"}]));
        assert_eq!(p["components"], json!([]), "an edit without buttons removes the old ones");
        assert_eq!(p["allowed_mentions"], json!({"parse": []}));
    }
}
