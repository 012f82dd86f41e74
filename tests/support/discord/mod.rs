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
//!
//! Layout: the handle and the state it shares with the server live here; `gateway` is the
//! WebSocket, `rest` the HTTP routes with scripted faults and rate limits, `responses` the
//! interaction callbacks and webhooks, `modals` the modal callback's rules, `messages` the stored
//! messages, `attachments` the uploaded files, multipart bodies and the CDN, `interaction` the
//! INTERACTION_CREATE payload builder.

mod attachments;
mod gateway;
mod interaction;
mod messages;
mod modals;
mod responses;
mod rest;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub use interaction::InteractionBuilder;
pub use rest::RecordedRequest;

/// Application id; also the bot user's id.
pub const APP_ID: u64 = 1180000000000000001;
pub const DEFAULT_GUILD_ID: u64 = 1180000000000000100;
pub const DEFAULT_CHANNEL_ID: u64 = 1180000000000000200;
/// A second text channel of the default guild.
pub const SECOND_CHANNEL_ID: u64 = 1180000000000000201;
/// A guild the bot is also in, and a channel of it.
pub const OTHER_GUILD_ID: u64 = 1180000000000000101;
pub const OTHER_GUILD_CHANNEL_ID: u64 = 1180000000000000210;
pub const DEFAULT_USER_ID: u64 = 1180000000000000300;
pub const DEFAULT_USER_NAME: &str = "alice";
pub const OWNER_ID: u64 = 1180000000000000900;
pub const BOT_NAME: &str = "imagine-bot";
/// Send messages, embed links, attach files, read history, use app commands, ... but neither
/// ADMINISTRATOR (8) nor MANAGE_GUILD (32).
pub const DEFAULT_PERMISSIONS: u64 = 2248473465835073;
pub const MANAGE_GUILD: u64 = 1 << 5;
pub const MANAGE_MESSAGES: u64 = 1 << 13;
pub const DEFAULT_ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;
pub const HEARTBEAT_INTERVAL_MS: u64 = 41250;
/// Limits Discord enforces on message payloads (checked by the stand-in).
pub const MAX_CONTENT_CHARS: usize = 2000;
pub const MAX_EMBEDS: usize = 10;
pub const MAX_FILES: usize = 10;
pub const MAX_COMPONENT_ROWS: usize = 5;
pub const MAX_ROW_BUTTONS: usize = 5;

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

/// The channels the stand-in knows: `(id, guild, name)`, all text channels (type 0).
const CHANNELS: [(u64, u64, &str); 3] = [
    (DEFAULT_CHANNEL_ID, DEFAULT_GUILD_ID, "art"),
    (SECOND_CHANNEL_ID, DEFAULT_GUILD_ID, "general"),
    (OTHER_GUILD_CHANNEL_ID, OTHER_GUILD_ID, "elsewhere"),
];

/// A known channel's guild and name.
fn known_channel(id: u64) -> Option<(u64, &'static str)> {
    CHANNELS.iter().find(|(c, _, _)| *c == id).map(|(_, guild, name)| (*guild, *name))
}

/// A guild text channel as `GET /channels/{id}` returns it.
fn guild_channel_json(id: u64, guild_id: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(), "type": 0, "guild_id": guild_id.to_string(), "name": name,
        "position": 1, "permission_overwrites": [], "nsfw": false, "flags": 0,
        "last_message_id": null, "rate_limit_per_user": 0, "parent_id": null, "topic": null
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

#[derive(Clone, Debug)]
struct ScriptedFailure {
    method: String,
    path_contains: String,
    status: u16,
    body: Value,
    /// The request is carried out first and only its answer is replaced (a response lost on the
    /// way back: the client cannot tell whether it took effect).
    after_effect: bool,
}

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

struct InteractionState {
    /// The interaction's type: 1 ping, 2 application command, 3 component, 5 modal submit.
    kind: u64,
    token: String,
    channel_id: u64,
    guild_id: Option<u64>,
    attachment_size_limit: u64,
    dispatched_at: Instant,
    acked_with: Option<u64>,
    /// The message a component interaction's component is on, or the one of the button that
    /// opened a submitted modal (callbacks 6 and 7 act on it).
    message_id: Option<u64>,
    /// The modal the interaction was answered with (callback 9).
    modal: Option<Value>,
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
    /// Outages: every request matching method + path substring gets the failure until then.
    outages: Vec<(ScriptedFailure, Instant)>,
    /// Requests to hold before answering: method, path substring, how long.
    hangs: VecDeque<(String, String, Duration)>,
    /// Requests being held right now.
    hanging: usize,
    /// Channels the bot may not post in (no View Channel / Send Messages there): a message
    /// posted there gets Discord's 403 Missing Permissions.
    no_posting: HashSet<u64>,
    /// Per-route limit on message writes (requests per window), like Discord's buckets.
    route_limit: Option<(usize, Duration)>,
    route_hits: HashMap<String, VecDeque<Instant>>,
    registered: Option<Value>,
    /// The application's Public Bot setting; unset: on.
    bot_public: Option<bool>,
    command_ids: HashMap<String, u64>,
    interactions: HashMap<u64, InteractionState>,
    tokens: HashMap<String, u64>,
    expired_tokens: HashSet<String>,
    ack_deadline: Option<Duration>,
    messages: HashMap<u64, Value>,
    originals: HashMap<String, u64>,
    followups: HashMap<String, Vec<u64>>,
    /// Tokens whose deferred ("thinking…") answer was deleted before it was resolved: Discord
    /// answers their followups with Unknown Message (discord-api-docs#2739).
    deleted_while_loading: HashSet<String>,
    channel_msgs: HashMap<u64, Vec<u64>>,
    /// `(channel, nonce)` of messages posted with `enforce_nonce`, and the message made.
    nonces: HashMap<(u64, String), (u64, Instant)>,
    files: HashMap<u64, attachments::StoredFile>,
    /// Seconds the CDN's clock is ahead of the real one (see `attachments`).
    cdn_clock_offset: i64,
    /// How slowly the CDN answers, and how many GETs it answered at once.
    cdn_load: attachments::CdnLoad,
    conns: HashMap<u64, Conn>,
    sessions: HashMap<String, Session>,
    next_conn: u64,
    ready_count: usize,
    resume_count: usize,
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
            .route("/gateway", get(gateway::gateway_upgrade))
            .route("/gateway/", get(gateway::gateway_upgrade))
            .route("/attachments/{channel}/{id}/{filename}", get(attachments::serve_attachment))
            .route("/ephemeral-attachments/{application}/{id}/{filename}", get(attachments::serve_ephemeral_attachment))
            .fallback(rest::rest)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        // Each frame and answer goes out at once (TCP_NODELAY). Without it, Nagle's algorithm held
        // a gateway frame sent while the previous one was unacknowledged until the bot's delayed
        // ACK (tens of ms): a 25 ms /imagine ack tail in the benchmark that was the stand-in's own.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DiscordStandIn { shared }
    }

    /// `http://127.0.0.1:PORT` — give this to serenity's `HttpBuilder::proxy`.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.shared.addr)
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
}
