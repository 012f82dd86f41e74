//! Uploaded files: multipart bodies, the attachment list of a message, the CDN routes that serve
//! what was uploaded, and `POST /attachments/refresh-urls`.
//!
//! Like Discord's CDN, an attachment URL carries `ex` (expiry, hex Unix seconds), `is` (issued)
//! and `hm` (a signature over the file, `ex` and `is`), and is refused with 404 once expired or
//! when tampered with. URLs live [`URL_LIFETIME`]; the CDN's clock can be moved forward
//! ([`DiscordStandIn::advance_cdn_clock`]) to make every URL issued so far expire. Messages read
//! back from Discord (a press's `message`, `GET .../messages/{id}`) carry freshly signed URLs, and
//! refresh-urls signs a message attachment's URL afresh however old the one given.
//!
//! Files attached to a slash command belong to no message: they live under
//! `ephemeral-attachments/<application>/<id>/<file>`, expire like the others, and refresh-urls
//! leaves them out (that Discord renews them is not documented).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::rest::Reply;
use super::{APP_ID, DiscordStandIn, Inner, Shared, form_error, lock, snowflake};

#[derive(Clone, Debug)]
pub struct RecordedFile {
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// How long a signed attachment URL works (Discord: about a day).
pub const URL_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// At most this many URLs in one refresh-urls request.
const MAX_REFRESH_URLS: usize = 50;

/// Where a stored file lives on the CDN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Home {
    /// `attachments/<channel>/<id>/<file>`: attached to a message in that channel.
    Message(u64),
    /// `ephemeral-attachments/<application>/<id>/<file>`: uploaded with a slash command.
    Ephemeral,
}

/// A file the CDN serves.
pub(super) struct StoredFile {
    home: Home,
    filename: String,
    content_type: String,
    bytes: Vec<u8>,
}

impl StoredFile {
    /// The URL path of the file stored as `id`, without its query.
    fn path(&self, id: u64) -> String {
        match self.home {
            Home::Message(channel) => format!("attachments/{channel}/{id}/{}", self.filename),
            Home::Ephemeral => format!("ephemeral-attachments/{APP_ID}/{id}/{}", self.filename),
        }
    }
}

/// The CDN under load: how long it takes to answer a GET, and how many GETs it was answering at
/// once (now, and at most so far).
#[derive(Default)]
pub(super) struct CdnLoad {
    delay: Duration,
    in_flight: usize,
    max_in_flight: usize,
}

impl DiscordStandIn {
    /// Makes every CDN GET take `delay` before it is answered (a busy CDN, or a large file), so
    /// that downloads running at the same time overlap and can be counted.
    pub fn set_cdn_delay(&self, delay: Duration) {
        lock(&self.shared.inner).cdn_load.delay = delay;
    }

    /// The most CDN GETs that were being answered at the same time so far.
    pub fn cdn_max_concurrent_gets(&self) -> usize {
        lock(&self.shared.inner).cdn_load.max_in_flight
    }

    /// Moves the CDN's clock forward: URLs issued more than [`URL_LIFETIME`] before the new "now"
    /// answer 404, as real ones do a day after they were issued.
    pub fn advance_cdn_clock(&self, by: Duration) {
        lock(&self.shared.inner).cdn_clock_offset += by.as_secs() as i64;
    }

    /// Moves the CDN's clock back: URLs issued from now on carry an `ex` that is already past by
    /// the wall clock (what the bot sees) until the clock is advanced again; as if they had been
    /// issued that long ago.
    pub fn rewind_cdn_clock(&self, by: Duration) {
        lock(&self.shared.inner).cdn_clock_offset -= by.as_secs() as i64;
    }

    /// Stores a file as Discord does one attached to a slash command (an ATTACHMENT option) and
    /// returns its signed URL, `.../ephemeral-attachments/<application>/<id>/<filename>?ex=&is=&hm=`,
    /// which works for [`URL_LIFETIME`] and is not renewed by refresh-urls.
    pub fn ephemeral_attachment(&self, filename: &str, bytes: Vec<u8>, content_type: &str) -> String {
        let mut inner = lock(&self.shared.inner);
        let file = StoredFile {
            home: Home::Ephemeral,
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            bytes,
        };
        let id = snowflake();
        let url = signed_url(&self.shared, &inner, id, &file);
        inner.files.insert(id, file);
        url
    }
}

/// The CDN's "now", in Unix seconds.
fn cdn_now(inner: &Inner) -> i64 {
    chrono::Utc::now().timestamp() + inner.cdn_clock_offset
}

fn signature(id: u64, expires: i64, issued: i64) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    ("stand-in cdn key", id, expires, issued).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// A freshly signed URL of `file`, stored as `id`.
fn signed_url(shared: &Shared, inner: &Inner, id: u64, file: &StoredFile) -> String {
    let issued = cdn_now(inner);
    let expires = issued + URL_LIFETIME.as_secs() as i64;
    let hm = signature(id, expires, issued);
    format!("http://{}/{}?ex={expires:x}&is={issued:x}&hm={hm}&", shared.addr, file.path(id))
}

/// The id of the stored file `url` names (any host, any query): its path must be the file's
/// path on this CDN.
fn stored_id(inner: &Inner, url: &str) -> Option<u64> {
    let path = url.split(['?', '#']).next()?;
    let id = path.rsplit('/').nth(1)?.parse::<u64>().ok()?;
    let file = inner.files.get(&id)?;
    path.ends_with(&format!("/{}", file.path(id))).then_some(id)
}

/// `msg` as Discord hands it out again: every attachment URL (and the embed images that show
/// them) signed afresh.
pub(super) fn resigned(shared: &Shared, inner: &Inner, msg: &Value) -> Value {
    let mut msg = msg.clone();
    // (old URL without its query, fresh URL) of every attachment.
    let mut fresh = Vec::new();
    for att in msg["attachments"].as_array_mut().into_iter().flatten() {
        let Some(old) = att["url"].as_str() else { continue };
        let Some(id) = stored_id(inner, old) else { continue };
        let path = old.split('?').next().unwrap_or_default().to_owned();
        let url = signed_url(shared, inner, id, &inner.files[&id]);
        att["url"] = json!(url);
        att["proxy_url"] = json!(url);
        fresh.push((path, url));
    }
    for embed in msg["embeds"].as_array_mut().into_iter().flatten() {
        for key in ["image", "thumbnail"] {
            let path = embed[key]["url"].as_str().and_then(|u| u.split('?').next()).map(str::to_owned);
            if let Some((_, url)) = path.and_then(|p| fresh.iter().find(|(old, _)| *old == p)) {
                embed[key]["url"] = json!(url);
                embed[key]["proxy_url"] = json!(url);
            }
        }
    }
    msg
}

/// `GET /attachments/<channel>/<id>/<file>`: a message attachment.
pub(super) async fn serve_attachment(
    State(shared): State<Arc<Shared>>,
    Path((channel, id, filename)): Path<(u64, u64, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    serve_in_turn(&shared, Home::Message(channel), id, &filename, query.as_deref()).await
}

/// `GET /ephemeral-attachments/<application>/<id>/<file>`: a file attached to a slash command.
pub(super) async fn serve_ephemeral_attachment(
    State(shared): State<Arc<Shared>>,
    Path((application, id, filename)): Path<(u64, u64, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if application != APP_ID {
        return gone();
    }
    serve_in_turn(&shared, Home::Ephemeral, id, &filename, query.as_deref()).await
}

/// Counts one GET in flight for as long as it lives (a client that hangs up ends it too).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn start(shared: &'a Shared) -> (Self, Duration) {
        let mut inner = lock(&shared.inner);
        let load = &mut inner.cdn_load;
        load.in_flight += 1;
        load.max_in_flight = load.max_in_flight.max(load.in_flight);
        (InFlight(shared), load.delay)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.inner).cdn_load.in_flight -= 1;
    }
}

/// [`serve`], after the CDN's delay, counted among the GETs in flight.
async fn serve_in_turn(shared: &Shared, home: Home, id: u64, filename: &str, query: Option<&str>) -> Response {
    let (_in_flight, delay) = InFlight::start(shared);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    serve(shared, home, id, filename, query)
}

fn gone() -> Response {
    (StatusCode::NOT_FOUND, "This content is no longer available.").into_response()
}

fn serve(shared: &Shared, home: Home, id: u64, filename: &str, query: Option<&str>) -> Response {
    let inner = lock(&shared.inner);
    let param =
        |name: &str| query?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_owned);
    let hex = |name: &str| param(name).and_then(|v| i64::from_str_radix(&v, 16).ok());
    let valid = match (hex("ex"), hex("is"), param("hm")) {
        (Some(expires), Some(issued), Some(hm)) => hm == signature(id, expires, issued) && cdn_now(&inner) < expires,
        _ => false,
    };
    match inner.files.get(&id) {
        Some(file) if valid && file.home == home && file.filename == filename => {
            ([(header::CONTENT_TYPE, file.content_type.clone())], file.bytes.clone()).into_response()
        }
        _ => gone(),
    }
}

/// `POST /attachments/refresh-urls` (bot token checked by the caller): `{"attachment_urls": [1
/// to 50 URLs]}` answered with `{"refreshed_urls": [{"original", "refreshed"}]}` for each URL that
/// names a message attachment stored here, expired or not; other URLs are left out.
pub(super) fn refresh_urls(shared: &Shared, inner: &Inner, body: &Value) -> Reply {
    let invalid = |path: &str, code: &str, message: &str| Reply::json(400, form_error(path, code, message));
    let urls = match body.get("attachment_urls") {
        None | Some(Value::Null) => return invalid("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required"),
        Some(Value::Array(urls)) => urls,
        Some(_) => return invalid("attachment_urls", "BASE_TYPE_ARRAY", "Must be an array."),
    };
    if urls.is_empty() || urls.len() > MAX_REFRESH_URLS {
        return invalid("attachment_urls", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 50 in length.");
    }
    let mut refreshed = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let Some(url) = url.as_str() else {
            return invalid(&format!("attachment_urls.{i}"), "BASE_TYPE_STRING", "Must be a string.");
        };
        let Some(id) = stored_id(inner, url) else { continue };
        let file = &inner.files[&id];
        if matches!(file.home, Home::Message(_)) {
            refreshed.push(json!({"original": url, "refreshed": signed_url(shared, inner, id, file)}));
        }
    }
    Reply::json(200, json!({ "refreshed_urls": refreshed }))
}

pub(super) async fn parse_multipart(req: Request) -> (Option<Value>, Vec<RecordedFile>) {
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
    let stored = StoredFile {
        home: Home::Message(channel_id),
        filename: filename.clone(),
        content_type: content_type.clone(),
        bytes: file.bytes.clone(),
    };
    let url = signed_url(shared, inner, id, &stored);
    inner.files.insert(id, stored);
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
pub(super) fn compute_attachments(
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
