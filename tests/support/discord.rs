//! Discord stand-in: REST under `/api/v10/...` and a gateway WebSocket at `/gateway`, bound to
//! 127.0.0.1 on a random port. Everything the client sends is recorded so tests can assert on
//! what users would see.
//!
//! Faithfulness notes (serenity 0.12.5 / poise 0.7.1):
//! * serenity asks `GET /api/v10/gateway` for the WebSocket URL and connects to `<url>?v=10`;
//!   frames are plain-text JSON (serenity also accepts zlib binary frames, never sent here).
//! * serenity drops an INTERACTION_CREATE without `attachment_size_limit`, and fails on a
//!   registered-command echo without `type`; both are always provided here.
//! * A RESUME is answered by replaying the dispatches the session missed, then RESUMED.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// Application id; also the bot user's id.
pub const APP_ID: u64 = 1180000000000000001;
pub const DEFAULT_GUILD_ID: u64 = 1180000000000000100;
pub const DEFAULT_CHANNEL_ID: u64 = 1180000000000000200;
pub const DEFAULT_USER_ID: u64 = 1180000000000000300;
pub const DEFAULT_USER_NAME: &str = "alice";
pub const OWNER_ID: u64 = 1180000000000000900;
pub const BOT_NAME: &str = "imagine-bot";
/// Send messages, embed links, attach files, read history, use app commands, ... but neither
/// ADMINISTRATOR (8) nor MANAGE_GUILD (32).
pub const DEFAULT_PERMISSIONS: u64 = 2248473465835073;
pub const MANAGE_GUILD: u64 = 1 << 5;
pub const ADMINISTRATOR: u64 = 1 << 3;
pub const DEFAULT_ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;
pub const HEARTBEAT_INTERVAL_MS: u64 = 41250;
/// Limits Discord enforces on message payloads (checked by the stand-in).
pub const MAX_CONTENT_CHARS: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_FILES: usize = 10;

const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
const FLAG_EPHEMERAL: u64 = 1 << 6;
const FLAG_LOADING: u64 = 1 << 7;

static LAST_SNOWFLAKE: AtomicU64 = AtomicU64::new(0);

/// A unique, Discord-like snowflake whose timestamp part is "now" (so `created_at()` on ids
/// works as with real Discord ids). Strictly increasing within the process.
pub fn snowflake() -> u64 {
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    let candidate = (now_ms.saturating_sub(DISCORD_EPOCH_MS)) << 22;
    let mut prev = LAST_SNOWFLAKE.load(Ordering::SeqCst);
    loop {
        let next = candidate.max(prev + 1);
        match LAST_SNOWFLAKE.compare_exchange(prev, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(actual) => prev = actual,
        }
    }
}

fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn bot_user_json() -> Value {
    json!({
        "id": APP_ID.to_string(),
        "username": BOT_NAME,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": true,
        "system": false,
        "mfa_enabled": false,
        "verified": true,
        "email": null,
        "locale": "en-US",
        "flags": 0,
        "public_flags": 0,
        "banner": null,
        "accent_color": null
    })
}

fn plain_user_json(id: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": null,
        "public_flags": 0
    })
}

fn discord_error(code: i64, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

fn form_error(path: &str, code: &str, message: &str) -> Value {
    let mut errors = json!({ "_errors": [{ "code": code, "message": message }] });
    for key in path.rsplit('.') {
        errors = json!({ key: errors });
    }
    json!({ "code": 50035, "errors": errors, "message": "Invalid Form Body" })
}

// ------------------------------------------------------------------------------------------
// Recorded data
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct RecordedFile {
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
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

    /// Path segment after `/interactions/{id}/` or `/webhooks/{app}/` — the interaction token.
    pub fn token(&self) -> Option<&str> {
        let segs: Vec<&str> = self.path.split('/').collect();
        let pos = segs.iter().position(|s| *s == "interactions" || *s == "webhooks")?;
        segs.get(pos + 2).copied()
    }

    pub fn is_multipart(&self) -> bool {
        self.header("content-type").is_some_and(|ct| ct.starts_with("multipart/form-data"))
    }
}

#[derive(Clone, Debug)]
struct ScriptedFailure {
    method: String,
    path_contains: String,
    status: u16,
    body: Value,
}

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

struct InteractionState {
    token: String,
    channel_id: u64,
    guild_id: Option<u64>,
    user_id: Option<u64>,
    command_name: Option<String>,
    attachment_size_limit: u64,
    dispatched_at: Instant,
    acked_with: Option<u64>,
}

enum Out {
    Text(String),
    Close(u16, String),
}

struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    session: Option<String>,
}

struct Session {
    seq: u64,
    history: Vec<(u64, String)>,
    conn: Option<u64>,
    /// `[shard_id, num_shards]` from IDENTIFY.
    shard: (u64, u64),
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    failures: VecDeque<ScriptedFailure>,
    /// Per-route limit on message writes (requests per window), like Discord's buckets.
    route_limit: Option<(usize, Duration)>,
    route_hits: HashMap<String, VecDeque<Instant>>,
    registered: Option<Value>,
    command_ids: HashMap<String, u64>,
    interactions: HashMap<u64, InteractionState>,
    tokens: HashMap<String, u64>,
    expired_tokens: HashSet<String>,
    ack_deadline: Option<Duration>,
    messages: HashMap<u64, Value>,
    originals: HashMap<String, u64>,
    followups: HashMap<String, Vec<u64>>,
    channel_msgs: HashMap<u64, Vec<u64>>,
    files: HashMap<u64, (String, Vec<u8>)>,
    conns: HashMap<u64, Conn>,
    sessions: HashMap<String, Session>,
    next_conn: u64,
    ready_count: usize,
    resume_count: usize,
    heartbeats: usize,
    identifies: Vec<Value>,
}

struct Shared {
    addr: SocketAddr,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl Shared {
    fn ws_url(&self) -> String {
        format!("ws://{}/gateway", self.addr)
    }

    fn notify(&self) {
        self.changed.notify_waiters();
    }
}

/// The Discord stand-in. Cheap to clone; the server runs until the test's runtime ends.
#[derive(Clone)]
pub struct DiscordStandIn {
    shared: Arc<Shared>,
}

impl DiscordStandIn {
    pub async fn start() -> DiscordStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind discord stand-in");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared { addr, inner: Mutex::new(Inner::default()), changed: Notify::new() });
        let app = Router::new()
            .route("/gateway", get(gateway_upgrade))
            .route("/gateway/", get(gateway_upgrade))
            .route("/attachments/{channel}/{id}/{filename}", get(serve_attachment))
            .fallback(rest)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DiscordStandIn { shared }
    }

    /// `http://127.0.0.1:PORT` — give this to serenity's `HttpBuilder::proxy`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// `ws://127.0.0.1:PORT/gateway` (what `GET /api/v10/gateway` returns).
    pub fn gateway_url(&self) -> String {
        self.shared.ws_url()
    }

    async fn wait_until<T>(&self, timeout: Duration, mut check: impl FnMut(&Inner) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = check(&lock(&self.shared.inner)) {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&lock(&self.shared.inner));
            }
        }
    }

    /// True once some client IDENTIFYed and was sent READY.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |i| (i.ready_count > 0).then_some(())).await.is_some()
    }

    /// Waits until at least `n` READYs were sent in total.
    pub async fn wait_ready_count(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |i| (i.ready_count >= n).then_some(())).await.is_some()
    }

    /// Waits until at least `n` RESUMEs were answered with RESUMED.
    pub async fn wait_resumed(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |i| (i.resume_count >= n).then_some(())).await.is_some()
    }

    pub fn ready_count(&self) -> usize {
        lock(&self.shared.inner).ready_count
    }

    pub fn resume_count(&self) -> usize {
        lock(&self.shared.inner).resume_count
    }

    pub fn heartbeat_count(&self) -> usize {
        lock(&self.shared.inner).heartbeats
    }

    /// IDENTIFY payloads (`d`) received so far.
    pub fn identifies(&self) -> Vec<Value> {
        lock(&self.shared.inner).identifies.clone()
    }

    /// Number of gateway connections currently attached to a session (identified or resumed).
    pub fn connected_sessions(&self) -> usize {
        lock(&self.shared.inner).conns.values().filter(|c| c.session.is_some()).count()
    }

    /// Sends a dispatch `t` with payload `d` to every session whose shard owns `d.guild_id`
    /// (`(guild_id >> 22) % num_shards`, like Discord; with the usual `[0, 1]` that is every
    /// session). Connected sessions get it now, disconnected ones on RESUME.
    pub async fn dispatch(&self, t: &str, d: Value) {
        let mut inner = lock(&self.shared.inner);
        dispatch_locked(&mut inner, t, &d);
    }

    /// Sends INTERACTION_CREATE to every gateway session (of the guild's shard, see
    /// [`Self::dispatch`]) and remembers the interaction (id,
    /// token, channel, `attachment_size_limit`) so callbacks and webhook calls can be checked.
    /// If the command name was registered, `data.id` is set to the id returned at registration.
    pub async fn dispatch_interaction(&self, mut interaction: Value) {
        let mut inner = lock(&self.shared.inner);
        let name = interaction.pointer("/data/name").and_then(Value::as_str).map(str::to_string);
        if let Some(name) = &name
            && let Some(cmd_id) = inner.command_ids.get(name)
        {
            interaction["data"]["id"] = json!(cmd_id.to_string());
        }
        let id = id_of(&interaction["id"]).unwrap_or_else(snowflake);
        let token = interaction["token"].as_str().unwrap_or_default().to_string();
        let state = InteractionState {
            token: token.clone(),
            channel_id: id_of(&interaction["channel_id"]).unwrap_or(DEFAULT_CHANNEL_ID),
            guild_id: id_of(&interaction["guild_id"]),
            user_id: id_of(&interaction["member"]["user"]["id"]).or_else(|| id_of(&interaction["user"]["id"])),
            command_name: name,
            attachment_size_limit: interaction["attachment_size_limit"]
                .as_u64()
                .unwrap_or(DEFAULT_ATTACHMENT_SIZE_LIMIT),
            dispatched_at: Instant::now(),
            acked_with: None,
        };
        inner.tokens.insert(token, id);
        inner.interactions.insert(id, state);
        dispatch_locked(&mut inner, "INTERACTION_CREATE", &interaction);
        drop(inner);
        self.shared.notify();
    }

    /// When the interaction with this id was dispatched.
    pub fn dispatched_at(&self, interaction_id: u64) -> Option<Instant> {
        lock(&self.shared.inner).interactions.get(&interaction_id).map(|i| i.dispatched_at)
    }

    /// The callback type the interaction was acknowledged with (4 message, 5 deferred, ...).
    pub fn acknowledged_with(&self, interaction_id: u64) -> Option<u64> {
        lock(&self.shared.inner).interactions.get(&interaction_id).and_then(|i| i.acked_with)
    }

    /// Like Discord after 3 s: a callback later than `deadline` after dispatch answers
    /// 404 / 10062 Unknown interaction. `None` (default) disables the check.
    pub fn set_ack_deadline(&self, deadline: Option<Duration>) {
        lock(&self.shared.inner).ack_deadline = deadline;
    }

    /// Simulates the 15-minute token expiry: from now on every webhook call with this token
    /// answers 401 `{"code":50027,"message":"Invalid Webhook Token"}` and callbacks 10062.
    pub fn expire_token(&self, token: &str) {
        lock(&self.shared.inner).expired_tokens.insert(token.to_string());
    }

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

    /// Waits until at least `n` recorded requests match `pred`; returns all matches then.
    pub async fn wait_for_count(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Vec<RecordedRequest> {
        let found = self
            .wait_until(timeout, |i| {
                let v: Vec<_> = i.requests.iter().filter(|r| pred(r)).cloned().collect();
                (v.len() >= n).then_some(v)
            })
            .await;
        found.unwrap_or_else(|| lock(&self.shared.inner).requests.iter().filter(|r| pred(r)).cloned().collect())
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
        });
    }

    /// Enforce Discord-like per-route limits on message writes: at most `limit` requests per
    /// `window` on each route (429 with `retry_after` beyond).
    pub fn set_route_limit(&self, limit: usize, window: Duration) {
        lock(&self.shared.inner).route_limit = Some((limit.max(1), window));
    }

    /// Scripted failures not consumed yet.
    pub fn pending_failures(&self) -> usize {
        lock(&self.shared.inner).failures.len()
    }

    /// Closes every gateway socket (close code 4000); serenity reconnects and RESUMEs.
    pub fn disconnect_gateway(&self) {
        let mut inner = lock(&self.shared.inner);
        let conns: Vec<u64> = inner.conns.keys().copied().collect();
        for id in conns {
            if let Some(conn) = inner.conns.remove(&id) {
                let _ = conn.tx.send(Out::Close(4000, "stand-in disconnect".to_string()));
                if let Some(sid) = conn.session
                    && let Some(s) = inner.sessions.get_mut(&sid)
                {
                    s.conn = None;
                }
            }
        }
    }

    /// Sends op 7 RECONNECT to every connected gateway session.
    pub fn request_reconnect(&self) {
        let inner = lock(&self.shared.inner);
        for conn in inner.conns.values() {
            let _ = conn.tx.send(Out::Text(json!({"op":7,"d":null,"s":null,"t":null}).to_string()));
        }
    }

    /// Current state of the interaction's original response (after all edits), if any.
    pub fn original_message(&self, token: &str) -> Option<Value> {
        let inner = lock(&self.shared.inner);
        let id = inner.originals.get(token)?;
        inner.messages.get(id).cloned()
    }

    /// Waits until the original response exists and satisfies `pred`.
    pub async fn wait_original(&self, token: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.wait_until(timeout, |i| {
            let id = i.originals.get(token)?;
            i.messages.get(id).filter(|m| pred(m)).cloned()
        })
        .await
    }

    /// Followup messages created with this interaction token (current state).
    pub fn followups(&self, token: &str) -> Vec<Value> {
        let inner = lock(&self.shared.inner);
        inner
            .followups
            .get(token)
            .map(|ids| ids.iter().filter_map(|id| inner.messages.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// Messages posted with `POST /channels/{channel_id}/messages` (current state).
    pub fn channel_messages(&self, channel_id: u64) -> Vec<Value> {
        let inner = lock(&self.shared.inner);
        inner
            .channel_msgs
            .get(&channel_id)
            .map(|ids| ids.iter().filter_map(|id| inner.messages.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// Any message by id.
    pub fn message(&self, message_id: u64) -> Option<Value> {
        lock(&self.shared.inner).messages.get(&message_id).cloned()
    }

    /// Bytes of an uploaded attachment (by attachment id, as found in a message's
    /// `attachments[].id`).
    pub fn attachment_bytes(&self, attachment_id: u64) -> Option<Vec<u8>> {
        lock(&self.shared.inner).files.get(&attachment_id).map(|(_, b)| b.clone())
    }
}

fn id_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Shard that receives a guild's events: `(guild_id >> 22) % num_shards` (DMs go to shard 0).
pub fn shard_for_guild(guild_id: Option<u64>, num_shards: u64) -> u64 {
    guild_id.map_or(0, |g| (g >> 22) % num_shards.max(1))
}

fn dispatch_locked(inner: &mut Inner, t: &str, d: &Value) {
    let Inner { sessions, conns, .. } = inner;
    let guild_id = id_of(&d["guild_id"]);
    for session in sessions.values_mut() {
        let (shard_id, num_shards) = session.shard;
        if shard_for_guild(guild_id, num_shards) != shard_id {
            continue;
        }
        session.seq += 1;
        let frame = json!({"op": 0, "s": session.seq, "t": t, "d": d}).to_string();
        session.history.push((session.seq, frame.clone()));
        if let Some(conn) = session.conn.and_then(|c| conns.get(&c)) {
            let _ = conn.tx.send(Out::Text(frame));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Gateway
// ------------------------------------------------------------------------------------------

async fn gateway_upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    ws.on_upgrade(move |socket| gateway_conn(shared, socket))
}

async fn gateway_conn(shared: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let conn_id = {
        let mut inner = lock(&shared.inner);
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.conns.insert(id, Conn { tx: tx.clone(), session: None });
        id
    };
    let hello = json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": null, "t": null});
    let _ = tx.send(Out::Text(hello.to_string()));
    drop(tx);

    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(text)) => {
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close(code, reason)) => {
                    let _ = socket
                        .send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() })))
                        .await;
                    break;
                }
                None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Text(text))) => handle_gateway_frame(&shared, conn_id, text.as_str()),
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }

    let mut inner = lock(&shared.inner);
    if let Some(conn) = inner.conns.remove(&conn_id)
        && let Some(sid) = conn.session
        && let Some(s) = inner.sessions.get_mut(&sid)
        && s.conn == Some(conn_id)
    {
        s.conn = None;
    }
    drop(inner);
    shared.notify();
}

fn handle_gateway_frame(shared: &Shared, conn_id: u64, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let mut inner = lock(&shared.inner);
    let Some(tx) = inner.conns.get(&conn_id).map(|c| c.tx.clone()) else {
        return;
    };
    match frame["op"].as_u64() {
        Some(1) => {
            inner.heartbeats += 1;
            let _ = tx.send(Out::Text(json!({"op": 11, "d": null, "s": null, "t": null}).to_string()));
        }
        Some(2) => {
            let d = frame["d"].clone();
            let shard = if d["shard"].is_array() { d["shard"].clone() } else { json!([0, 1]) };
            inner.identifies.push(d);
            let session_id = uuid::Uuid::new_v4().simple().to_string();
            let ready = json!({
                "op": 0, "s": 1, "t": "READY",
                "d": {
                    "v": 10,
                    "user": bot_user_json(),
                    "guilds": [],
                    "session_id": session_id,
                    "resume_gateway_url": shared.ws_url(),
                    "shard": shard,
                    "application": {"id": APP_ID.to_string(), "flags": 0},
                    "private_channels": [],
                    "relationships": [],
                    "presences": [],
                    "guild_join_requests": [],
                    "geo_ordered_rtc_regions": [],
                    "_trace": ["stand-in"]
                }
            });
            let _ = tx.send(Out::Text(ready.to_string()));
            inner.sessions.insert(
                session_id.clone(),
                Session {
                    seq: 1,
                    history: Vec::new(),
                    conn: Some(conn_id),
                    shard: (shard[0].as_u64().unwrap_or(0), shard[1].as_u64().unwrap_or(1)),
                },
            );
            if let Some(c) = inner.conns.get_mut(&conn_id) {
                c.session = Some(session_id);
            }
            inner.ready_count += 1;
            drop(inner);
            shared.notify();
        }
        Some(6) => {
            let sid = frame["d"]["session_id"].as_str().unwrap_or_default().to_string();
            let seq = frame["d"]["seq"].as_u64().unwrap_or(0);
            let Some(session) = inner.sessions.get_mut(&sid) else {
                let _ = tx.send(Out::Text(json!({"op": 9, "d": false, "s": null, "t": null}).to_string()));
                return;
            };
            session.conn = Some(conn_id);
            for (s, f) in &session.history {
                if *s > seq {
                    let _ = tx.send(Out::Text(f.clone()));
                }
            }
            session.seq += 1;
            let resumed = json!({"op": 0, "s": session.seq, "t": "RESUMED", "d": {"_trace": ["stand-in"]}});
            let resumed = resumed.to_string();
            session.history.push((session.seq, resumed.clone()));
            let _ = tx.send(Out::Text(resumed));
            if let Some(c) = inner.conns.get_mut(&conn_id) {
                c.session = Some(sid);
            }
            inner.resume_count += 1;
            drop(inner);
            shared.notify();
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// REST
// ------------------------------------------------------------------------------------------

async fn serve_attachment(
    State(shared): State<Arc<Shared>>,
    Path((_channel, id, _filename)): Path<(u64, u64, String)>,
) -> Response {
    let inner = lock(&shared.inner);
    match inner.files.get(&id) {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct.clone())], bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn parse_multipart(req: Request) -> (Option<Value>, Vec<RecordedFile>) {
    let mut json = None;
    let mut files = Vec::new();
    let Ok(mut mp) = Multipart::from_request(req, &()).await else {
        return (json, files);
    };
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let Ok(data) = field.bytes().await else {
            break;
        };
        if name == "payload_json" {
            json = serde_json::from_slice(&data).ok();
        } else if filename.is_some() || name.starts_with("files[") || name == "file" {
            files.push(RecordedFile {
                field: name,
                filename: filename.unwrap_or_default(),
                content_type,
                bytes: data.to_vec(),
            });
        }
    }
    (json, files)
}

struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply { status, body: Some(body), headers: Vec::new() }
    }
    fn no_content() -> Self {
        Reply { status: 204, body: None, headers: Vec::new() }
    }
    fn err(status: u16, code: i64, message: &str) -> Self {
        Self::json(status, discord_error(code, message))
    }
    fn not_found() -> Self {
        Self::err(404, 0, "404: Not Found")
    }
}

type Rejection = Reply;

async fn rest(State(shared): State<Arc<Shared>>, req: Request) -> Response {
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

    let reply = {
        let mut inner = lock(&shared.inner);
        let scripted = inner
            .failures
            .iter()
            .position(|f| f.method.eq_ignore_ascii_case(&method) && path.contains(&f.path_contains))
            .and_then(|pos| inner.failures.remove(pos));
        let limited = rate_limited(&mut inner, &method, &path);
        let reply = match (scripted, limited) {
            (Some(f), _) => scripted_reply(f),
            (None, Some(f)) => scripted_reply(f),
            (None, None) => route(&shared, &mut inner, &method, &path, query.as_deref(), json.as_ref(), &files),
        };
        inner.requests.push(RecordedRequest {
            method,
            path,
            query,
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

/// Enforces the per-route limit on message writes: a 429 with `retry_after` when exceeded.
fn rate_limited(inner: &mut Inner, method: &str, path: &str) -> Option<ScriptedFailure> {
    let (limit, window) = inner.route_limit?;
    let writes = matches!(method, "PATCH" | "POST") && (path.contains("/webhooks/") || path.contains("/messages"));
    if !writes {
        return None;
    }
    let now = Instant::now();
    let hits = inner.route_hits.entry(path.to_string()).or_default();
    while hits.front().is_some_and(|t| now.duration_since(*t) >= window) {
        hits.pop_front();
    }
    if hits.len() >= limit {
        let retry = window.saturating_sub(now.duration_since(*hits.front().expect("limit > 0"))).as_secs_f64();
        return Some(ScriptedFailure {
            method: method.to_string(),
            path_contains: path.to_string(),
            status: 429,
            body: json!({"message": "You are being rate limited.", "retry_after": retry, "global": false}),
        });
    }
    hits.push_back(now);
    None
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

fn route(
    shared: &Shared,
    inner: &mut Inner,
    method: &str,
    path: &str,
    query: Option<&str>,
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
            Reply::json(200, application_json())
        }
        ("GET", ["users", "@me"]) => Reply::json(200, bot_user_json()),
        ("PUT", ["applications", app, "commands"]) => put_commands(inner, app, None, body),
        ("PUT", ["applications", app, "guilds", guild, "commands"]) => put_commands(inner, app, Some(guild), body),
        ("GET", ["applications", _, "commands"]) | ("GET", ["applications", _, "guilds", _, "commands"]) => {
            Reply::json(200, inner.registered.clone().unwrap_or_else(|| json!([])))
        }
        ("POST", ["interactions", id, token, "callback"]) => callback(shared, inner, id, token, query, body, files),
        (_, ["webhooks", app, token, rest @ ..]) => webhook(shared, inner, method, app, token, rest, body, files),
        ("POST", ["channels", channel, "messages"]) => {
            let Ok(channel_id) = channel.parse::<u64>() else {
                return Reply::err(404, 10003, "Unknown Channel");
            };
            let ctx =
                MsgCtx { channel_id, guild_id: None, interaction: false, size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT };
            match create_message(shared, inner, &ctx, body, files) {
                Ok(msg) => {
                    let id = id_of(&msg["id"]).unwrap_or_default();
                    inner.channel_msgs.entry(channel_id).or_default().push(id);
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
                "GET" => Reply::json(200, inner.messages[&mid].clone()),
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

fn application_json() -> Value {
    json!({
        "id": APP_ID.to_string(),
        "name": BOT_NAME,
        "icon": null,
        "description": "Midjourney v7 image-to-image (stand-in)",
        "summary": "",
        "type": null,
        "rpc_origins": [],
        "bot_public": true,
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
        "bot": bot_user_json()
    })
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

struct MsgCtx {
    channel_id: u64,
    guild_id: Option<u64>,
    interaction: bool,
    size_limit: u64,
}

fn validate_payload(body: &Value, files: &[RecordedFile], size_limit: u64) -> Result<(), Rejection> {
    if let Some(content) = body["content"].as_str()
        && content.chars().count() > MAX_CONTENT_CHARS
    {
        return Err(Reply::json(
            400,
            form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."),
        ));
    }
    if let Some(embeds) = body["embeds"].as_array() {
        if embeds.len() > MAX_EMBEDS {
            return Err(Reply::json(
                400,
                form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."),
            ));
        }
        let mut total = 0usize;
        for (i, e) in embeds.iter().enumerate() {
            let len = |p: &str| e.pointer(p).and_then(Value::as_str).map_or(0, |s| s.chars().count());
            let checks = [
                ("/title", "title", 256),
                ("/description", "description", 4096),
                ("/footer/text", "footer.text", 2048),
                ("/author/name", "author.name", 256),
            ];
            for (ptr, name, max) in checks {
                let l = len(ptr);
                total += l;
                if l > max {
                    return Err(Reply::json(
                        400,
                        form_error(
                            &format!("embeds.{i}.{name}"),
                            "BASE_TYPE_MAX_LENGTH",
                            &format!("Must be {max} or fewer in length."),
                        ),
                    ));
                }
            }
            if let Some(fields) = e["fields"].as_array() {
                if fields.len() > 25 {
                    return Err(Reply::json(
                        400,
                        form_error(
                            &format!("embeds.{i}.fields"),
                            "BASE_TYPE_MAX_LENGTH",
                            "Must be 25 or fewer in length.",
                        ),
                    ));
                }
                for (j, f) in fields.iter().enumerate() {
                    let n = f["name"].as_str().map_or(0, |s| s.chars().count());
                    let v = f["value"].as_str().map_or(0, |s| s.chars().count());
                    total += n + v;
                    if n > 256 || v > 1024 {
                        return Err(Reply::json(
                            400,
                            form_error(
                                &format!("embeds.{i}.fields.{j}"),
                                "BASE_TYPE_MAX_LENGTH",
                                "Field name/value too long.",
                            ),
                        ));
                    }
                }
            }
        }
        if total > 6000 {
            return Err(Reply::json(
                400,
                form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"),
            ));
        }
    }
    if files.len() > MAX_FILES || body["attachments"].as_array().is_some_and(|a| a.len() > MAX_FILES) {
        return Err(Reply::json(
            400,
            form_error("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."),
        ));
    }
    if files.iter().any(|f| f.bytes.len() as u64 > size_limit) {
        return Err(Reply::err(413, 40005, "Request entity too large"));
    }
    Ok(())
}

fn file_index(f: &RecordedFile, pos: usize) -> usize {
    f.field.strip_prefix("files[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse().ok()).unwrap_or(pos)
}

fn store_file(
    shared: &Shared,
    inner: &mut Inner,
    channel_id: u64,
    file: &RecordedFile,
    entry: Option<&Value>,
) -> Value {
    let id = snowflake();
    let filename = entry
        .and_then(|e| e["filename"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| file.filename.clone());
    let content_type = file.content_type.clone().unwrap_or_else(|| "application/octet-stream".to_string());
    let sig = format!(
        "?ex={:x}&is={:x}&hm={:016x}&",
        chrono::Utc::now().timestamp() + 86400,
        chrono::Utc::now().timestamp(),
        id
    );
    let url = format!("http://{}/attachments/{channel_id}/{id}/{filename}{sig}", shared.addr);
    inner.files.insert(id, (content_type.clone(), file.bytes.clone()));
    let mut att = json!({
        "id": id.to_string(),
        "filename": filename,
        "size": file.bytes.len(),
        "url": url,
        "proxy_url": url,
        "content_type": content_type,
    });
    if let Some(desc) = entry.and_then(|e| e["description"].as_str()) {
        att["description"] = json!(desc);
    }
    att
}

/// Computes the attachment list of a message from the request's `attachments` array and files.
/// `existing` = attachments of the message before an edit (None for a new message).
fn compute_attachments(
    shared: &Shared,
    inner: &mut Inner,
    channel_id: u64,
    body: &Value,
    files: &[RecordedFile],
    existing: Option<&Vec<Value>>,
) -> Vec<Value> {
    let indexed: Vec<(usize, &RecordedFile)> =
        files.iter().enumerate().map(|(pos, f)| (file_index(f, pos), f)).collect();
    let mut used = HashSet::new();
    let mut result = Vec::new();
    match body.get("attachments").and_then(Value::as_array) {
        Some(listed) => {
            for entry in listed {
                let id_str = match &entry["id"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                if let Some(old) = existing.and_then(|ex| ex.iter().find(|a| a["id"].as_str() == Some(id_str.as_str())))
                {
                    let mut kept = old.clone();
                    if let Some(desc) = entry["description"].as_str() {
                        kept["description"] = json!(desc);
                    }
                    result.push(kept);
                    continue;
                }
                if let Ok(n) = id_str.parse::<usize>()
                    && let Some((_, f)) = indexed.iter().find(|(i, _)| *i == n)
                {
                    used.insert(n);
                    result.push(store_file(shared, inner, channel_id, f, Some(entry)));
                }
            }
            if existing.is_none() {
                for (i, f) in &indexed {
                    if !used.contains(i) {
                        result.push(store_file(shared, inner, channel_id, f, None));
                    }
                }
            }
        }
        None => {
            if let Some(ex) = existing {
                result.extend(ex.iter().cloned());
            }
            for (_, f) in &indexed {
                result.push(store_file(shared, inner, channel_id, f, None));
            }
        }
    }
    result
}

fn resolve_embeds(embeds: &[Value], attachments: &[Value]) -> Vec<Value> {
    embeds
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e.is_object() && e.get("type").is_none() {
                e["type"] = json!("rich");
            }
            for key in ["image", "thumbnail"] {
                if let Some(url) = e[key]["url"].as_str()
                    && let Some(name) = url.strip_prefix("attachment://")
                    && let Some(att) = attachments.iter().find(|a| a["filename"] == name)
                {
                    e[key]["url"] = att["url"].clone();
                    e[key]["proxy_url"] = att["proxy_url"].clone();
                }
            }
            e
        })
        .collect()
}

fn mentions_for(content: &str, allowed: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut rest = content;
    while let Some(pos) = rest.find("<@") {
        rest = &rest[pos + 2..];
        let r = rest.strip_prefix('!').unwrap_or(rest);
        let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
        if r[digits.len()..].starts_with('>')
            && let Ok(id) = digits.parse::<u64>()
        {
            let allowed_ok = match allowed {
                None => true,
                Some(a) => {
                    a["parse"].as_array().is_some_and(|p| p.iter().any(|x| x == "users"))
                        || a["users"].as_array().is_some_and(|u| u.iter().any(|x| id_of(x) == Some(id)))
                }
            };
            if allowed_ok && seen.insert(id) {
                out.push(plain_user_json(id, &format!("user{}", id % 10000)));
            }
        }
    }
    out
}

fn create_message(
    shared: &Shared,
    inner: &mut Inner,
    ctx: &MsgCtx,
    body: &Value,
    files: &[RecordedFile],
) -> Result<Value, Rejection> {
    validate_payload(body, files, ctx.size_limit)?;
    let content = body["content"].as_str().unwrap_or_default().to_string();
    let has_components = body["components"].as_array().is_some_and(|c| !c.is_empty());
    let attachments = compute_attachments(shared, inner, ctx.channel_id, body, files, None);
    let flags = body["flags"].as_u64().unwrap_or(0);
    if content.is_empty()
        && body["embeds"].as_array().is_none_or(Vec::is_empty)
        && attachments.is_empty()
        && !has_components
        && body["poll"].is_null()
        && body["sticker_ids"].is_null()
    {
        return Err(Reply::err(400, 50006, "Cannot send an empty message"));
    }
    let embeds = resolve_embeds(body["embeds"].as_array().map_or(&[][..], Vec::as_slice), &attachments);
    let id = snowflake();
    let mut msg = json!({
        "id": id.to_string(),
        "channel_id": ctx.channel_id.to_string(),
        "author": bot_user_json(),
        "content": content,
        "timestamp": now_timestamp(),
        "edited_timestamp": null,
        "tts": body["tts"].as_bool().unwrap_or(false),
        "mention_everyone": false,
        "mentions": mentions_for(&content, body.get("allowed_mentions")),
        "mention_roles": [],
        "mention_channels": [],
        "attachments": attachments,
        "embeds": embeds,
        "components": body["components"].as_array().cloned().unwrap_or_default(),
        "reactions": [],
        "pinned": false,
        "type": if ctx.interaction { 20 } else if body["message_reference"].is_object() { 19 } else { 0 },
        "flags": if ctx.interaction { flags } else { flags & !FLAG_EPHEMERAL },
    });
    if let Some(g) = ctx.guild_id {
        msg["guild_id"] = json!(g.to_string());
    }
    if ctx.interaction {
        msg["webhook_id"] = json!(APP_ID.to_string());
        msg["application_id"] = json!(APP_ID.to_string());
    }
    if let Some(r) = body["message_reference"].as_object() {
        let mut r = r.clone();
        r.entry("channel_id").or_insert(json!(ctx.channel_id.to_string()));
        r.entry("type").or_insert(json!(0));
        msg["message_reference"] = Value::Object(r);
    }
    if let Some(nonce) = body.get("nonce") {
        msg["nonce"] = nonce.clone();
    }
    inner.messages.insert(id, msg.clone());
    Ok(msg)
}

fn edit_message(
    shared: &Shared,
    inner: &mut Inner,
    msg: &mut Value,
    body: &Value,
    files: &[RecordedFile],
    size_limit: u64,
) -> Result<(), Rejection> {
    validate_payload(body, files, size_limit)?;
    let channel_id = id_of(&msg["channel_id"]).unwrap_or(DEFAULT_CHANNEL_ID);
    let existing = msg["attachments"].as_array().cloned().unwrap_or_default();
    let attachments = compute_attachments(shared, inner, channel_id, body, files, Some(&existing));
    if let Some(c) = body.get("content") {
        let content = c.as_str().unwrap_or_default().to_string();
        msg["mentions"] = json!(mentions_for(&content, body.get("allowed_mentions")));
        msg["content"] = json!(content);
    }
    msg["attachments"] = json!(attachments);
    if let Some(e) = body.get("embeds") {
        let embeds = e.as_array().map_or(&[][..], Vec::as_slice);
        msg["embeds"] = json!(resolve_embeds(embeds, &attachments));
    } else {
        let current = msg["embeds"].as_array().cloned().unwrap_or_default();
        msg["embeds"] = json!(resolve_embeds(&current, &attachments));
    }
    if let Some(c) = body.get("components") {
        msg["components"] = c.as_array().map_or_else(|| json!([]), |a| json!(a));
    }
    let old_flags = msg["flags"].as_u64().unwrap_or(0);
    // The ephemeral state cannot change on edit; the loading state ends with the first edit.
    let mut flags = old_flags & FLAG_EPHEMERAL;
    match body.get("flags").and_then(Value::as_u64) {
        Some(f) => flags |= f & !(FLAG_EPHEMERAL | FLAG_LOADING),
        None => flags |= old_flags & !(FLAG_EPHEMERAL | FLAG_LOADING),
    }
    msg["flags"] = json!(flags);
    msg["edited_timestamp"] = json!(now_timestamp());
    Ok(())
}

fn edit_stored(
    shared: &Shared,
    inner: &mut Inner,
    mid: u64,
    body: &Value,
    files: &[RecordedFile],
    size_limit: u64,
) -> Reply {
    let Some(mut msg) = inner.messages.get(&mid).cloned() else {
        return Reply::err(404, 10008, "Unknown Message");
    };
    if let Err(r) = edit_message(shared, inner, &mut msg, body, files, size_limit) {
        return r;
    }
    inner.messages.insert(mid, msg.clone());
    Reply::json(200, msg)
}

fn callback(
    shared: &Shared,
    inner: &mut Inner,
    id: &str,
    token: &str,
    query: Option<&str>,
    body: &Value,
    files: &[RecordedFile],
) -> Reply {
    let Ok(id) = id.parse::<u64>() else {
        return Reply::err(404, 10062, "Unknown interaction");
    };
    let deadline = inner.ack_deadline;
    let Some(state) = inner.interactions.get(&id) else {
        return Reply::err(404, 10062, "Unknown interaction");
    };
    if state.token != token {
        return Reply::err(401, 50027, "Invalid Webhook Token");
    }
    if inner.expired_tokens.contains(token) || deadline.is_some_and(|d| state.dispatched_at.elapsed() > d) {
        return Reply::err(404, 10062, "Unknown interaction");
    }
    if state.acked_with.is_some() {
        return Reply::err(400, 40060, "Interaction has already been acknowledged.");
    }
    let ctx = MsgCtx {
        channel_id: state.channel_id,
        guild_id: state.guild_id,
        interaction: true,
        size_limit: state.attachment_size_limit,
    };
    let kind = body["type"].as_u64();
    let empty = json!({});
    let data = body.get("data").filter(|d| d.is_object()).unwrap_or(&empty);
    let message = match kind {
        Some(4) => match create_message(shared, inner, &ctx, data, files) {
            Ok(m) => Some(m),
            Err(r) => return r,
        },
        Some(5) => {
            let flags = FLAG_LOADING | (data["flags"].as_u64().unwrap_or(0) & FLAG_EPHEMERAL);
            let mid = snowflake();
            let mut msg = json!({
                "id": mid.to_string(),
                "channel_id": ctx.channel_id.to_string(),
                "author": bot_user_json(),
                "content": "",
                "timestamp": now_timestamp(),
                "edited_timestamp": null,
                "tts": false,
                "mention_everyone": false,
                "mentions": [],
                "mention_roles": [],
                "mention_channels": [],
                "attachments": [],
                "embeds": [],
                "components": [],
                "reactions": [],
                "pinned": false,
                "type": 20,
                "flags": flags,
                "webhook_id": APP_ID.to_string(),
                "application_id": APP_ID.to_string(),
            });
            if let Some(g) = ctx.guild_id {
                msg["guild_id"] = json!(g.to_string());
            }
            inner.messages.insert(mid, msg.clone());
            Some(msg)
        }
        Some(1 | 6..=12) => None,
        _ => {
            return Reply::json(
                400,
                form_error("type", "BASE_TYPE_CHOICES", "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}."),
            );
        }
    };
    let kind = kind.unwrap_or_default();
    if let Some(state) = inner.interactions.get_mut(&id) {
        state.acked_with = Some(kind);
    }
    if let Some(m) = &message {
        let mid = id_of(&m["id"]).unwrap_or_default();
        inner.originals.insert(token.to_string(), mid);
    }
    if query.is_some_and(|q| q.contains("with_response=true")) {
        let flags = message.as_ref().and_then(|m| m["flags"].as_u64()).unwrap_or(0);
        return Reply::json(
            200,
            json!({
                "interaction": {
                    "id": id.to_string(),
                    "type": 2,
                    "activity_instance_id": null,
                    "response_message_id": message.as_ref().map(|m| m["id"].clone()),
                    "response_message_loading": flags & FLAG_LOADING != 0,
                    "response_message_ephemeral": flags & FLAG_EPHEMERAL != 0,
                },
                "resource": {"type": kind, "message": message},
            }),
        );
    }
    Reply::no_content()
}

#[allow(clippy::too_many_arguments)]
fn webhook(
    shared: &Shared,
    inner: &mut Inner,
    method: &str,
    app: &str,
    token: &str,
    rest: &[&str],
    body: &Value,
    files: &[RecordedFile],
) -> Reply {
    if app.parse::<u64>().ok() != Some(APP_ID) {
        return Reply::err(404, 10015, "Unknown Webhook");
    }
    if inner.expired_tokens.contains(token) {
        return Reply::err(401, 50027, "Invalid Webhook Token");
    }
    let Some(iid) = inner.tokens.get(token).copied() else {
        return Reply::err(404, 10015, "Unknown Webhook");
    };
    let (channel_id, guild_id, size_limit, acked) = {
        let s = &inner.interactions[&iid];
        (s.channel_id, s.guild_id, s.attachment_size_limit, s.acked_with.is_some())
    };
    let original = inner.originals.get(token).copied();
    match (method, rest) {
        ("POST", []) => {
            if !acked {
                return Reply::err(404, 10015, "Unknown Webhook");
            }
            // After a deferred response the first followup edits the "thinking..." message
            // (and its ephemeral state cannot change).
            if let Some(mid) = original {
                let loading = inner.messages[&mid]["flags"].as_u64().is_some_and(|f| f & FLAG_LOADING != 0);
                if loading {
                    return edit_stored(shared, inner, mid, body, files, size_limit);
                }
            }
            let ctx = MsgCtx { channel_id, guild_id, interaction: true, size_limit };
            match create_message(shared, inner, &ctx, body, files) {
                Ok(msg) => {
                    let mid = id_of(&msg["id"]).unwrap_or_default();
                    inner.followups.entry(token.to_string()).or_default().push(mid);
                    Reply::json(200, msg)
                }
                Err(r) => r,
            }
        }
        (m, ["messages", which]) => {
            let mid = if *which == "@original" {
                original
            } else {
                which
                    .parse::<u64>()
                    .ok()
                    .filter(|mid| Some(*mid) == original || inner.followups.get(token).is_some_and(|v| v.contains(mid)))
            };
            let Some(mid) = mid.filter(|m| inner.messages.contains_key(m)) else {
                return Reply::err(404, 10008, "Unknown Message");
            };
            match m {
                "GET" => Reply::json(200, inner.messages[&mid].clone()),
                "PATCH" => edit_stored(shared, inner, mid, body, files, size_limit),
                "DELETE" => {
                    inner.messages.remove(&mid);
                    Reply::no_content()
                }
                _ => Reply::not_found(),
            }
        }
        _ => Reply::not_found(),
    }
}

// ------------------------------------------------------------------------------------------
// Interaction payloads
// ------------------------------------------------------------------------------------------

/// Builds INTERACTION_CREATE payloads (`d`) shaped like Discord's (reference §4.3), accepted by
/// serenity 0.12.
#[derive(Clone, Debug)]
pub struct InteractionBuilder {
    id: u64,
    token: String,
    name: String,
    command_id: u64,
    guild_id: Option<u64>,
    channel_id: u64,
    user_id: u64,
    user_name: String,
    permissions: u64,
    app_permissions: u64,
    options: Vec<Value>,
    subcommand: Option<String>,
    users: serde_json::Map<String, Value>,
    members: serde_json::Map<String, Value>,
    attachments: serde_json::Map<String, Value>,
    attachment_size_limit: u64,
    locale: String,
}

impl InteractionBuilder {
    /// A CHAT_INPUT (type 2 interaction, command type 1) with a fresh id and token.
    pub fn command(name: &str) -> Self {
        InteractionBuilder {
            id: snowflake(),
            token: format!("tok-{}", uuid::Uuid::new_v4()),
            name: name.to_string(),
            command_id: snowflake(),
            guild_id: Some(DEFAULT_GUILD_ID),
            channel_id: DEFAULT_CHANNEL_ID,
            user_id: DEFAULT_USER_ID,
            user_name: DEFAULT_USER_NAME.to_string(),
            permissions: DEFAULT_PERMISSIONS,
            app_permissions: DEFAULT_PERMISSIONS,
            options: Vec::new(),
            subcommand: None,
            users: serde_json::Map::new(),
            members: serde_json::Map::new(),
            attachments: serde_json::Map::new(),
            attachment_size_limit: DEFAULT_ATTACHMENT_SIZE_LIMIT,
            locale: "en-US".to_string(),
        }
    }

    pub fn guild(mut self, id: u64) -> Self {
        self.guild_id = Some(id);
        self
    }

    /// Invoked in a DM with the bot (no guild, `user` instead of `member`).
    pub fn dm(mut self) -> Self {
        self.guild_id = None;
        self
    }

    pub fn channel(mut self, id: u64) -> Self {
        self.channel_id = id;
        self
    }

    pub fn user(mut self, id: u64, name: &str) -> Self {
        self.user_id = id;
        self.user_name = name.to_string();
        self
    }

    pub fn member_permissions(mut self, perms: u64) -> Self {
        self.permissions = perms;
        self
    }

    /// The bot's permissions in the channel (`app_permissions`).
    pub fn app_permissions(mut self, perms: u64) -> Self {
        self.app_permissions = perms;
        self
    }

    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = locale.to_string();
        self
    }

    pub fn string(mut self, name: &str, v: &str) -> Self {
        self.options.push(json!({"name": name, "type": 3, "value": v}));
        self
    }

    pub fn integer(mut self, name: &str, v: i64) -> Self {
        self.options.push(json!({"name": name, "type": 4, "value": v}));
        self
    }

    pub fn boolean(mut self, name: &str, v: bool) -> Self {
        self.options.push(json!({"name": name, "type": 5, "value": v}));
        self
    }

    pub fn number(mut self, name: &str, v: f64) -> Self {
        self.options.push(json!({"name": name, "type": 10, "value": v}));
        self
    }

    /// Any option object, added as is.
    pub fn raw_option(mut self, option: Value) -> Self {
        self.options.push(option);
        self
    }

    pub fn user_option(mut self, name: &str, user_id: u64) -> Self {
        let uname = format!("user{}", user_id % 10000);
        self.options.push(json!({"name": name, "type": 6, "value": user_id.to_string()}));
        self.users.insert(user_id.to_string(), plain_user_json(user_id, &uname));
        self.members.insert(
            user_id.to_string(),
            json!({
                "roles": [], "nick": null, "avatar": null, "premium_since": null,
                "joined_at": "2025-03-01T12:00:00.000000+00:00", "pending": false, "flags": 0,
                "permissions": DEFAULT_PERMISSIONS.to_string(), "communication_disabled_until": null
            }),
        );
        self
    }

    /// An ATTACHMENT option (type 11); its value is a generated attachment id that is filled
    /// into `data.resolved.attachments` with `url`/`proxy_url` (passed through untouched).
    pub fn attachment(mut self, name: &str, filename: &str, content_type: Option<&str>, size: u64, url: &str) -> Self {
        let id = snowflake();
        self.options.push(json!({"name": name, "type": 11, "value": id.to_string()}));
        let proxy_url = url.replacen("https://cdn.discordapp.com/", "https://media.discordapp.net/", 1);
        let mut att = json!({
            "id": id.to_string(),
            "filename": filename,
            "size": size,
            "url": url,
            "proxy_url": proxy_url,
            "ephemeral": true,
        });
        if let Some(ct) = content_type {
            att["content_type"] = json!(ct);
            if ct.starts_with("image/") {
                att["width"] = json!(1024);
                att["height"] = json!(1024);
            }
        }
        self.attachments.insert(id.to_string(), att);
        self
    }

    /// Wraps all options (given before and after this call) into a type-1 sub-command option.
    pub fn subcommand(mut self, name: &str) -> Self {
        self.subcommand = Some(name.to_string());
        self
    }

    pub fn attachment_size_limit(mut self, bytes: u64) -> Self {
        self.attachment_size_limit = bytes;
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn token(&self) -> String {
        self.token.clone()
    }

    pub fn build(&self) -> Value {
        let options = match &self.subcommand {
            Some(sub) => json!([{"name": sub, "type": 1, "options": self.options}]),
            None => json!(self.options),
        };
        let mut resolved = serde_json::Map::new();
        if !self.users.is_empty() {
            resolved.insert("users".into(), Value::Object(self.users.clone()));
        }
        if !self.members.is_empty() && self.guild_id.is_some() {
            resolved.insert("members".into(), Value::Object(self.members.clone()));
        }
        if !self.attachments.is_empty() {
            resolved.insert("attachments".into(), Value::Object(self.attachments.clone()));
        }
        let mut data = json!({
            "id": self.command_id.to_string(),
            "name": self.name,
            "type": 1,
            "options": options,
        });
        if !resolved.is_empty() {
            data["resolved"] = Value::Object(resolved);
        }
        let user = plain_user_json(self.user_id, &self.user_name);
        let mut d = json!({
            "id": self.id.to_string(),
            "application_id": APP_ID.to_string(),
            "type": 2,
            "version": 1,
            "token": self.token,
            "channel_id": self.channel_id.to_string(),
            "app_permissions": self.app_permissions.to_string(),
            "locale": self.locale,
            "entitlements": [],
            "attachment_size_limit": self.attachment_size_limit,
            "data": data,
        });
        match self.guild_id {
            Some(g) => {
                let gs = g.to_string();
                d["data"]["guild_id"] = json!(gs);
                d["guild_id"] = json!(gs);
                d["guild"] = json!({"id": gs, "locale": "en-US", "features": []});
                d["guild_locale"] = json!("en-US");
                d["channel"] = json!({
                    "id": self.channel_id.to_string(), "type": 0, "name": "art", "guild_id": gs,
                    "nsfw": false, "flags": 0, "permissions": self.permissions.to_string(),
                    "last_message_id": null, "rate_limit_per_user": 0, "position": 1,
                    "parent_id": null, "topic": null
                });
                d["member"] = json!({
                    "user": user,
                    "roles": [], "nick": null, "avatar": null,
                    "joined_at": "2025-03-01T12:00:00.000000+00:00", "premium_since": null,
                    "deaf": false, "mute": false, "pending": false, "flags": 0,
                    "permissions": self.permissions.to_string(),
                    "communication_disabled_until": null
                });
                d["authorizing_integration_owners"] = json!({"0": gs});
                d["context"] = json!(0);
            }
            None => {
                d["channel"] = json!({
                    "id": self.channel_id.to_string(), "type": 1, "flags": 0,
                    "last_message_id": null,
                    "recipients": [user.clone()]
                });
                d["user"] = user;
                d["authorizing_integration_owners"] = json!({"0": "0"});
                d["context"] = json!(1);
            }
        }
        d
    }
}
