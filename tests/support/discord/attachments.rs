//! Uploaded files: multipart bodies, the attachment list of a message, and the CDN route that
//! serves what was uploaded.
//!
//! Like Discord's CDN, an attachment URL carries `ex` (expiry, hex Unix seconds), `is` (issued)
//! and `hm` (a signature over the file, `ex` and `is`), and is refused with 404 once expired or
//! when tampered with. URLs live [`URL_LIFETIME`]; the CDN's clock can be moved forward
//! ([`DiscordStandIn::advance_cdn_clock`]) to make every URL issued so far expire. Messages read
//! back from Discord (a press's `message`, `GET .../messages/{id}`) carry freshly signed URLs.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{DiscordStandIn, Inner, Shared, lock, snowflake};

#[derive(Clone, Debug)]
pub struct RecordedFile {
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// How long a signed attachment URL works (Discord: about a day).
pub const URL_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl DiscordStandIn {
    /// Moves the CDN's clock forward: URLs issued more than [`URL_LIFETIME`] before the new "now"
    /// answer 404, as real ones do a day after they were issued.
    pub fn advance_cdn_clock(&self, by: Duration) {
        lock(&self.shared.inner).cdn_clock_offset += by.as_secs() as i64;
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

/// A freshly signed URL of the stored file `id`.
fn signed_url(shared: &Shared, inner: &Inner, channel_id: u64, id: u64, filename: &str) -> String {
    let issued = cdn_now(inner);
    let expires = issued + URL_LIFETIME.as_secs() as i64;
    let hm = signature(id, expires, issued);
    format!("http://{}/attachments/{channel_id}/{id}/{filename}?ex={expires:x}&is={issued:x}&hm={hm}&", shared.addr)
}

/// `msg` as Discord hands it out again: every attachment URL (and the embed images that show
/// them) signed afresh.
pub(super) fn resigned(shared: &Shared, inner: &Inner, msg: &Value) -> Value {
    let mut msg = msg.clone();
    // (old URL without its query, fresh URL) of every attachment.
    let mut fresh = Vec::new();
    for att in msg["attachments"].as_array_mut().into_iter().flatten() {
        let Some(path) = att["url"].as_str().and_then(|u| u.split('?').next()).map(str::to_owned) else { continue };
        let mut segs = path.rsplit('/');
        let (Some(filename), Some(Ok(id)), Some(Ok(channel))) =
            (segs.next(), segs.next().map(str::parse::<u64>), segs.next().map(str::parse::<u64>))
        else {
            continue;
        };
        let url = signed_url(shared, inner, channel, id, filename);
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

pub(super) async fn serve_attachment(
    State(shared): State<Arc<Shared>>,
    Path((_channel, id, _filename)): Path<(u64, u64, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let inner = lock(&shared.inner);
    let param = |name: &str| {
        query.as_deref()?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_owned)
    };
    let hex = |name: &str| param(name).and_then(|v| i64::from_str_radix(&v, 16).ok());
    let valid = match (hex("ex"), hex("is"), param("hm")) {
        (Some(expires), Some(issued), Some(hm)) => hm == signature(id, expires, issued) && cdn_now(&inner) < expires,
        _ => false,
    };
    match inner.files.get(&id) {
        Some((ct, bytes)) if valid => ([(header::CONTENT_TYPE, ct.clone())], bytes.clone()).into_response(),
        _ => (StatusCode::NOT_FOUND, "This content is no longer available.").into_response(),
    }
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
    let url = signed_url(shared, inner, channel_id, id, &filename);
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
