//! REST under `/api/v10/...`: every request is recorded, scripted failures and per-route rate
//! limits answer before the routes do.
//!
//! Longer than 400 lines on purpose: the REST routes, scripted faults and rate limits share one
//! request path, and Discord's rules read best beside the route that applies them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::attachments::{RecordedFile, parse_multipart, refresh_urls, resigned};
use super::messages::{MsgCtx, create_message, edit_stored};
use super::responses::{callback, webhook};
use super::{
    APP_ID, BOT_NAME, DEFAULT_ATTACHMENT_SIZE_LIMIT, DiscordStandIn, Inner, OWNER_ID, ScriptedFailure, Shared,
    bot_user_json, discord_error, form_error, guild_channel_json, id_of, known_channel, lock, snowflake,
};

#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names are lowercased.
    pub headers: Vec<(String, String)>,
    /// JSON body, or the parsed `payload_json` part of a multipart body.
    pub json: Option<Value>,
    /// Multipart `files[n]` parts.
    pub files: Vec<RecordedFile>,
    /// What the stand-in answered.
    pub status: u16,
    pub at: Instant,
}

impl RecordedRequest {
    /// Method (case-insensitive) equals `method` and the path contains `path_contains`.
    pub fn is(&self, method: &str, path_contains: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path.contains(path_contains)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn is_multipart(&self) -> bool {
        self.header("content-type").is_some_and(|ct| ct.starts_with("multipart/form-data"))
    }
}

impl DiscordStandIn {
    /// Every REST request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.inner).requests.clone()
    }

    /// Requests matching `method` + `path_contains`.
    pub fn requests_matching(&self, method: &str, path_contains: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.inner).requests.iter().filter(|r| r.is(method, path_contains)).cloned().collect()
    }

    /// First recorded request (already recorded or arriving before `timeout`) matching `pred`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        self.wait_until(timeout, |i| i.requests.iter().find(|r| pred(r)).cloned()).await
    }

    /// Last body PUT to `.../commands` (global or guild).
    pub fn registered_commands(&self) -> Option<Value> {
        lock(&self.shared.inner).registered.clone()
    }

    /// Id the stand-in returned for the registered command `name`.
    pub fn command_id(&self, name: &str) -> Option<u64> {
        lock(&self.shared.inner).command_ids.get(name).copied()
    }

    /// Waits until commands were registered; returns the PUT body.
    pub async fn wait_registered(&self, timeout: Duration) -> Option<Value> {
        self.wait_until(timeout, |i| i.registered.clone()).await
    }

    /// Queue a scripted failure: the next request matching method + path substring gets this
    /// status and JSON body (and is recorded). For 429 a `Retry-After` header (and
    /// `X-RateLimit-*` headers) are derived from `body.retry_after`.
    pub fn fail_next(&self, method: &str, path_contains: &str, status: u16, body: Value) {
        lock(&self.shared.inner).failures.push_back(ScriptedFailure {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
            body,
            after_effect: false,
        });
    }

    /// The next request matching method + path substring is carried out, but its answer is lost:
    /// the client gets `status` (a gateway error) instead.
    pub fn lose_next_answer(&self, method: &str, path_contains: &str, status: u16) {
        lock(&self.shared.inner).failures.push_back(ScriptedFailure {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
            body: json!({"message": "502: Bad Gateway", "code": 0}),
            after_effect: true,
        });
    }

    /// Every request matching method + path substring gets `status` (with a Discord-like body)
    /// for the next `duration`: an outage of that route.
    pub fn fail_for(&self, method: &str, path_contains: &str, status: u16, duration: Duration) {
        let failure = ScriptedFailure {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            status,
            body: json!({"message": format!("{status}: Service unavailable"), "code": 0}),
            after_effect: false,
        };
        lock(&self.shared.inner).outages.push((failure, Instant::now() + duration));
    }

    /// The next request matching method + path substring is held `duration` before it is
    /// carried out and answered (a request that hangs).
    pub fn hang_next(&self, method: &str, path_contains: &str, duration: Duration) {
        lock(&self.shared.inner).hangs.push_back((method.to_string(), path_contains.to_string(), duration));
    }

    /// How many requests are being held right now ([`DiscordStandIn::hang_next`]).
    pub fn hanging_requests(&self) -> usize {
        lock(&self.shared.inner).hanging
    }

    /// What `GET /applications/@me` says of Public Bot (Discord's default for a new application: on).
    pub fn set_bot_public(&self, public: bool) {
        lock(&self.shared.inner).bot_public = Some(public);
    }

    /// From now on the bot lacks the permissions to post in `channel_id`: `POST
    /// /channels/{id}/messages` there is refused as Discord refuses it (403, code 50013).
    pub fn refuse_posts_in(&self, channel_id: u64) {
        lock(&self.shared.inner).no_posting.insert(channel_id);
    }

    /// Drops the scripted failures not used yet: Discord answers normally again.
    pub fn clear_failures(&self) {
        lock(&self.shared.inner).failures.clear();
    }

    /// Enforce Discord-like per-route limits on message writes: at most `limit` requests per
    /// `window` on each route (429 with `retry_after` beyond).
    pub fn set_route_limit(&self, limit: usize, window: Duration) {
        lock(&self.shared.inner).route_limit = Some((limit.max(1), window));
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Self {
        Reply { status, body: Some(body), headers: Vec::new() }
    }
    pub(super) fn no_content() -> Self {
        Reply { status: 204, body: None, headers: Vec::new() }
    }
    pub(super) fn err(status: u16, code: i64, message: &str) -> Self {
        Self::json(status, discord_error(code, message))
    }
    pub(super) fn not_found() -> Self {
        Self::err(404, 0, "404: Not Found")
    }
}

pub(super) type Rejection = Reply;

pub(super) async fn rest(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let (json, files) = if is_multipart {
        parse_multipart(Request::from_parts(parts, Body::from(bytes))).await
    } else if bytes.is_empty() {
        (None, Vec::new())
    } else {
        (serde_json::from_slice(&bytes).ok(), Vec::new())
    };

    let hang = {
        let mut inner = lock(&shared.inner);
        let hang = inner
            .hangs
            .iter()
            .position(|(m, p, _)| m.eq_ignore_ascii_case(&method) && path.contains(p.as_str()))
            .and_then(|pos| inner.hangs.remove(pos))
            .map(|(_, _, duration)| duration);
        inner.hanging += usize::from(hang.is_some());
        hang
    };
    if let Some(duration) = hang {
        tokio::time::sleep(duration).await;
        lock(&shared.inner).hanging -= 1;
    }

    let reply = {
        let mut inner = lock(&shared.inner);
        let now = Instant::now();
        inner.outages.retain(|(_, until)| *until > now);
        let scripted = inner
            .failures
            .iter()
            .position(|f| f.method.eq_ignore_ascii_case(&method) && path.contains(&f.path_contains))
            .and_then(|pos| inner.failures.remove(pos))
            .or_else(|| {
                inner
                    .outages
                    .iter()
                    .find(|(f, _)| f.method.eq_ignore_ascii_case(&method) && path.contains(&f.path_contains))
                    .map(|(f, _)| f.clone())
            });
        let (limited, room) = match rate_limited(&mut inner, &method, &path) {
            Limit::Refused(f) => (Some(f), None),
            Limit::Room(room) => (None, room),
        };
        let mut reply = match (scripted, limited) {
            (Some(f), _) if f.after_effect => {
                let _ = route(&shared, &mut inner, &method, &path, query.as_deref(), &headers, json.as_ref(), &files);
                scripted_reply(f)
            }
            (Some(f), _) => scripted_reply(f),
            (None, Some(f)) => scripted_reply(f),
            (None, None) => {
                route(&shared, &mut inner, &method, &path, query.as_deref(), &headers, json.as_ref(), &files)
            }
        };
        // Discord tells what is left of a route's limit on every answer, not only on a 429.
        if let Some((remaining, reset_after)) = room.filter(|_| reply.status < 300) {
            reply.headers.push(("x-ratelimit-limit".into(), inner.route_limit.map_or(0, |l| l.0).to_string()));
            reply.headers.push(("x-ratelimit-remaining".into(), remaining.to_string()));
            reply.headers.push(("x-ratelimit-reset-after".into(), format!("{:.3}", reset_after.as_secs_f64())));
        }
        inner.requests.push(RecordedRequest {
            method,
            path,
            headers,
            json,
            files,
            status: reply.status,
            at: Instant::now(),
        });
        reply
    };
    shared.notify();

    let mut resp = match reply.body {
        Some(body) => (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        None => StatusCode::from_u16(reply.status).unwrap_or(StatusCode::NO_CONTENT).into_response(),
    };
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// What the per-route limit on message writes says of a request.
enum Limit {
    /// Over the limit: a 429 with `retry_after`.
    Refused(ScriptedFailure),
    /// Let through; for a limited route, the requests left in its window and when it resets.
    Room(Option<(usize, Duration)>),
}

/// Enforces the per-route limit on message writes: a 429 with `retry_after` when exceeded.
fn rate_limited(inner: &mut Inner, method: &str, path: &str) -> Limit {
    let Some((limit, window)) = inner.route_limit else { return Limit::Room(None) };
    let writes = matches!(method, "PATCH" | "POST") && (path.contains("/webhooks/") || path.contains("/messages"));
    if !writes {
        return Limit::Room(None);
    }
    let now = Instant::now();
    let hits = inner.route_hits.entry(path.to_string()).or_default();
    while hits.front().is_some_and(|t| now.duration_since(*t) >= window) {
        hits.pop_front();
    }
    if hits.len() >= limit {
        let retry = window.saturating_sub(now.duration_since(*hits.front().expect("limit > 0"))).as_secs_f64();
        return Limit::Refused(ScriptedFailure {
            method: method.to_string(),
            path_contains: path.to_string(),
            status: 429,
            body: json!({"message": "You are being rate limited.", "retry_after": retry, "global": false}),
            after_effect: false,
        });
    }
    hits.push_back(now);
    let reset_after = window.saturating_sub(now.duration_since(*hits.front().expect("just pushed")));
    Limit::Room(Some((limit - hits.len(), reset_after)))
}

fn scripted_reply(f: ScriptedFailure) -> Reply {
    let mut reply = Reply::json(f.status, f.body.clone());
    if f.status == 429 {
        let retry = f.body["retry_after"].as_f64().unwrap_or(1.0);
        reply.headers.push(("retry-after".into(), format!("{}", retry.ceil() as u64)));
        reply.headers.push(("x-ratelimit-limit".into(), "5".into()));
        reply.headers.push(("x-ratelimit-remaining".into(), "0".into()));
        reply.headers.push(("x-ratelimit-reset-after".into(), format!("{retry:.3}")));
        let scope = if f.body["global"].as_bool() == Some(true) { "global" } else { "user" };
        reply.headers.push(("x-ratelimit-scope".into(), scope.into()));
        if scope == "global" {
            reply.headers.push(("x-ratelimit-global".into(), "true".into()));
        }
    }
    reply
}

/// True when the request names a bot: `Authorization: Bot <token>`.
fn bot_authorized(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| k == "authorization" && v.strip_prefix("Bot ").is_some_and(|t| !t.trim().is_empty()))
}

#[allow(clippy::too_many_arguments)]
fn route(
    shared: &Shared,
    inner: &mut Inner,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &[(String, String)],
    json: Option<&Value>,
    files: &[RecordedFile],
) -> Reply {
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return Reply::not_found();
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let empty = json!({});
    let body = json.unwrap_or(&empty);
    match (method, segs.as_slice()) {
        ("GET", ["gateway"]) => Reply::json(200, json!({"url": shared.ws_url()})),
        ("GET", ["gateway", "bot"]) => Reply::json(
            200,
            json!({
                "url": shared.ws_url(),
                "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
            }),
        ),
        ("GET", ["oauth2", "applications", "@me"]) | ("GET", ["applications", "@me"]) => {
            if bot_authorized(headers) {
                Reply::json(200, application_json(inner.bot_public.unwrap_or(true)))
            } else {
                Reply::err(401, 0, "401: Unauthorized")
            }
        }
        ("GET", ["users", "@me"]) => Reply::json(200, bot_user_json()),
        ("PUT", ["applications", app, "commands"]) => put_commands(inner, app, None, body),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => put_commands(inner, app, Some(guild), body),
        ("GET", ["applications", _, "commands"]) | ("GET", ["applications", _, "guilds", _, "commands"]) => {
            Reply::json(200, inner.registered.clone().unwrap_or_else(|| json!([])))
        }
        ("POST", ["attachments", "refresh-urls"]) => {
            if bot_authorized(headers) {
                refresh_urls(shared, inner, body)
            } else {
                Reply::err(401, 0, "401: Unauthorized")
            }
        }
        ("POST", ["interactions", id, token, "callback"]) => callback(shared, inner, id, token, query, body, files),
        (_, ["webhooks", app, token, rest @ ..]) => webhook(shared, inner, method, app, token, rest, body, files),
        ("GET", ["channels", channel]) => {
            match channel.parse::<u64>().ok().and_then(|id| known_channel(id).map(|(guild, name)| (id, guild, name))) {
                Some((id, guild, name)) => Reply::json(200, guild_channel_json(id, guild, name)),
                None => Reply::err(404, 10003, "Unknown Channel"),
            }
        }
        ("POST", ["channels", channel, "messages"]) => {
            let Ok(channel_id) = channel.parse::<u64>() else {
                return Reply::err(404, 10003, "Unknown Channel");
            };
            if inner.no_posting.contains(&channel_id) {
                return Reply::err(403, 50013, "Missing Permissions");
            }
            // Discord: `nonce` is an integer or a string of at most 25 characters; with
            // `enforce_nonce`, a second message with the same nonce within a few minutes returns
            // the first one instead of posting again.
            let nonce = match &body["nonce"] {
                Value::Null => None,
                Value::String(s) if s.chars().count() <= 25 => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => return Reply::err(400, 50035, "Invalid Form Body (nonce)"),
            };
            let enforced = body["enforce_nonce"].as_bool() == Some(true);
            if enforced
                && let Some(nonce) = &nonce
                && let Some((id, at)) = inner.nonces.get(&(channel_id, nonce.clone())).copied()
                && at.elapsed() < Duration::from_secs(300)
                && let Some(msg) = inner.messages.get(&id)
            {
                return Reply::json(200, msg.clone());
            }
            let ctx =
                MsgCtx { channel_id, guild_id: None, interaction: false, size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT };
            match create_message(shared, inner, &ctx, body, files) {
                Ok(msg) => {
                    let id = id_of(&msg["id"]).unwrap_or_default();
                    inner.channel_msgs.entry(channel_id).or_default().push(id);
                    if let (true, Some(nonce)) = (enforced, nonce) {
                        inner.nonces.insert((channel_id, nonce), (id, Instant::now()));
                    }
                    Reply::json(200, msg)
                }
                Err(r) => r,
            }
        }
        (m, ["channels", channel, "messages", mid]) => {
            let (Ok(channel_id), Ok(mid)) = (channel.parse::<u64>(), mid.parse::<u64>()) else {
                return Reply::err(404, 10008, "Unknown Message");
            };
            let known = inner.channel_msgs.get(&channel_id).is_some_and(|v| v.contains(&mid))
                || inner.messages.get(&mid).is_some_and(|m| id_of(&m["channel_id"]) == Some(channel_id));
            if !known {
                return Reply::err(404, 10008, "Unknown Message");
            }
            match m {
                "GET" => Reply::json(200, resigned(shared, inner, &inner.messages[&mid])),
                "PATCH" => edit_stored(shared, inner, mid, body, files, DEFAULT_ATTACHMENT_SIZE_LIMIT),
                "DELETE" => {
                    inner.messages.remove(&mid);
                    if let Some(v) = inner.channel_msgs.get_mut(&channel_id) {
                        v.retain(|x| *x != mid);
                    }
                    Reply::no_content()
                }
                _ => Reply::not_found(),
            }
        }
        _ => Reply::not_found(),
    }
}

/// The application object. A public bot has the Installation tab's "Discord Provided Link" (Discord
/// keeps Public Bot on while an install link exists); a private one has none.
fn application_json(bot_public: bool) -> Value {
    let install_params = json!({"scopes": ["applications.commands", "bot"], "permissions": "0"});
    let guild_install = if bot_public { json!({"oauth2_install_params": install_params}) } else { json!({}) };
    let mut app = json!({
        "id": APP_ID.to_string(),
        "name": BOT_NAME,
        "icon": null,
        "description": "Midjourney v7 image-to-image (stand-in)",
        "summary": "",
        "type": null,
        "rpc_origins": [],
        "bot_public": bot_public,
        "bot_require_code_grant": false,
        "terms_of_service_url": null,
        "privacy_policy_url": null,
        "owner": {
            "id": OWNER_ID.to_string(),
            "username": "owner",
            "discriminator": "0",
            "global_name": "Owner",
            "avatar": null,
            "public_flags": 0,
            "flags": 0
        },
        "verify_key": "0f3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80",
        "team": null,
        "guild_id": null,
        "flags": 0,
        "tags": [],
        "hook": true,
        "is_monetized": false,
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "role_connections_verification_url": null,
        "approximate_guild_count": 1,
        "approximate_user_install_count": 0,
        "integration_types_config": {"0": guild_install, "1": {}},
        "bot": bot_user_json()
    });
    if bot_public {
        app["install_params"] = install_params;
    }
    app
}

fn put_commands(inner: &mut Inner, app: &str, guild: Option<&str>, body: &Value) -> Reply {
    if app.parse::<u64>().ok() != Some(APP_ID) {
        return Reply::err(403, 50001, "Missing Access");
    }
    let Some(list) = body.as_array() else {
        return Reply::json(400, form_error("_root", "BASE_TYPE_ARRAY", "Must be an array."));
    };
    let mut echoed = Vec::new();
    for cmd in list {
        let Some(obj) = cmd.as_object() else {
            return Reply::json(
                400,
                form_error("0", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"),
            );
        };
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            return Reply::json(400, form_error("0.name", "BASE_TYPE_REQUIRED", "This field is required"));
        }
        let id = *inner.command_ids.entry(name).or_insert_with(snowflake);
        let mut out = obj.clone();
        out.insert("id".into(), json!(id.to_string()));
        out.insert("application_id".into(), json!(APP_ID.to_string()));
        out.insert("version".into(), json!(snowflake().to_string()));
        out.entry("type").or_insert(json!(1));
        out.entry("description").or_insert(json!(""));
        out.entry("default_member_permissions").or_insert(Value::Null);
        out.entry("nsfw").or_insert(json!(false));
        if let Some(g) = guild {
            out.insert("guild_id".into(), json!(g));
        }
        echoed.push(Value::Object(out));
    }
    inner.registered = Some(body.clone());
    Reply::json(200, Value::Array(echoed))
}
