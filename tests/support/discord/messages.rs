//! Stored messages: created and edited from payloads checked against Discord's limits, with
//! embeds resolved against attachments and mentions filtered by `allowed_mentions`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::attachments::{RecordedFile, compute_attachments};
use super::rest::{Rejection, Reply};
use super::{
    APP_ID, DEFAULT_CHANNEL_ID, DiscordStandIn, FLAG_EPHEMERAL, FLAG_LOADING, Inner, MAX_COMPONENT_ROWS,
    MAX_CONTENT_CHARS, MAX_EMBEDS, MAX_FILES, MAX_ROW_BUTTONS, Shared, bot_user_json, form_error, id_of, lock,
    now_timestamp, plain_user_json, snowflake,
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
    validate_components(&body["components"])
}

/// Discord's rules for message components (legacy layout): at most 5 action rows (type 1) of 1–5
/// buttons (type 2); styles 1–4 carry a `custom_id` of 1–100 characters, unique in the message,
/// style 5 a `url` and no `custom_id`; a label of at most 80 characters, or an emoji.
fn validate_components(components: &Value) -> Result<(), Rejection> {
    let invalid = |path: String, code: &str, message: &str| Err(Reply::json(400, form_error(&path, code, message)));
    let rows = match components {
        Value::Null => return Ok(()),
        Value::Array(rows) => rows,
        _ => return invalid("components".into(), "BASE_TYPE_ARRAY", "Must be an array."),
    };
    if rows.len() > MAX_COMPONENT_ROWS {
        return invalid("components".into(), "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.");
    }
    let mut custom_ids = HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        if row["type"] != 1 {
            return invalid(format!("components.{r}.type"), "BASE_TYPE_CHOICES", "Value must be one of {1}.");
        }
        let buttons = row["components"].as_array().map_or(&[][..], Vec::as_slice);
        if buttons.is_empty() || buttons.len() > MAX_ROW_BUTTONS {
            return invalid(
                format!("components.{r}.components"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            );
        }
        for (b, button) in buttons.iter().enumerate() {
            let at = |field: &str| format!("components.{r}.components.{b}.{field}");
            if button["type"] != 2 {
                return invalid(at("type"), "BASE_TYPE_CHOICES", "Value must be one of {2}.");
            }
            let label = button["label"].as_str();
            if label.is_some_and(|l| l.chars().count() > 80) {
                return invalid(at("label"), "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.");
            }
            if label.is_none_or(str::is_empty) && button["emoji"].is_null() {
                return invalid(at("label"), "BUTTON_LABEL_OR_EMOJI_REQUIRED", "A label or an emoji is required.");
            }
            let custom_id = button.get("custom_id").filter(|c| !c.is_null());
            let url = button.get("url").filter(|u| !u.is_null());
            match button["style"].as_u64() {
                Some(1..=4) => {
                    if url.is_some() {
                        return invalid(at("url"), "BUTTON_URL_NOT_ALLOWED", "A URL is only allowed for link buttons.");
                    }
                    let Some(id) = custom_id.and_then(Value::as_str) else {
                        return invalid(at("custom_id"), "BASE_TYPE_REQUIRED", "This field is required");
                    };
                    if id.is_empty() || id.chars().count() > 100 {
                        return invalid(
                            at("custom_id"),
                            "BASE_TYPE_BAD_LENGTH",
                            "Must be between 1 and 100 in length.",
                        );
                    }
                    if !custom_ids.insert(id.to_owned()) {
                        return invalid(
                            at("custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        );
                    }
                }
                Some(5) => {
                    if custom_id.is_some() {
                        return invalid(
                            at("custom_id"),
                            "BUTTON_CUSTOM_ID_NOT_ALLOWED",
                            "Link buttons have no custom id.",
                        );
                    }
                    if url.and_then(Value::as_str).is_none_or(str::is_empty) {
                        return invalid(at("url"), "BASE_TYPE_REQUIRED", "This field is required");
                    }
                }
                _ => return invalid(at("style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5}."),
            }
        }
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
