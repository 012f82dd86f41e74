//! Stored messages: created and edited from payloads checked against Discord's limits, with
//! embeds resolved against attachments and mentions filtered by `allowed_mentions`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::attachments::{RecordedFile, compute_attachments};
use super::rest::{Rejection, Reply};
use super::{
    APP_ID, DEFAULT_CHANNEL_ID, DiscordStandIn, FLAG_EPHEMERAL, FLAG_LOADING, Inner, MAX_CONTENT_CHARS, MAX_EMBEDS,
    MAX_FILES, Shared, bot_user_json, form_error, id_of, lock, now_timestamp, plain_user_json, snowflake,
};

impl DiscordStandIn {
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
}

pub(super) struct MsgCtx {
    pub(super) channel_id: u64,
    pub(super) guild_id: Option<u64>,
    pub(super) interaction: bool,
    pub(super) size_limit: u64,
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

pub(super) fn create_message(
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

pub(super) fn edit_stored(
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
