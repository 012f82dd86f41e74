//! Uploaded files: multipart bodies, the attachment list of a message, and the CDN route that
//! serves what was uploaded.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
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

impl DiscordStandIn {}

pub(super) async fn serve_attachment(
    State(shared): State<Arc<Shared>>,
    Path((_channel, id, _filename)): Path<(u64, u64, String)>,
) -> Response {
    let inner = lock(&shared.inner);
    match inner.files.get(&id) {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct.clone())], bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
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
