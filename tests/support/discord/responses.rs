//! Interaction responses: the callback (3-second acknowledgement) and the webhook routes that
//! edit the original response and post followups with the interaction token.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::attachments::{RecordedFile, resigned};
use super::messages::{MsgCtx, create_message, edit_stored};
use super::modals::validate_modal;
use super::rest::Reply;
use super::{
    APP_ID, DiscordStandIn, FLAG_EPHEMERAL, FLAG_LOADING, Inner, Shared, bot_user_json, form_error, id_of, lock,
    now_timestamp, snowflake,
};

impl DiscordStandIn {
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
}

/// The callback types Discord takes as the answer to an interaction of type `kind`: 1 pong for a
/// ping, 8 autocomplete results for an autocomplete; 6 and 7 (update the message) only for a
/// component or a modal opened from one; 9 (a modal) never for a modal submit.
fn allowed_callbacks(kind: u64, has_message: bool) -> &'static [u64] {
    match kind {
        1 => &[1],
        2 => &[4, 5, 9, 10, 12],
        3 => &[4, 5, 6, 7, 9, 10, 12],
        4 => &[8],
        5 if has_message => &[4, 5, 6, 7, 10],
        5 => &[4, 5, 10],
        _ => &[1, 4, 5, 6, 7, 8, 9, 10, 12],
    }
}

pub(super) fn callback(
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
    let interaction_kind = state.kind;
    let allowed = allowed_callbacks(interaction_kind, state.message_id.is_some());
    let Some(kind) = body["type"].as_u64().filter(|k| allowed.contains(k)) else {
        let choices = allowed.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        return Reply::json(
            400,
            form_error("type", "BASE_TYPE_CHOICES", &format!("Value must be one of {{{choices}}}.")),
        );
    };
    let empty = json!({});
    let data = body.get("data").filter(|d| d.is_object()).unwrap_or(&empty);
    let component_message = state.message_id.filter(|m| inner.messages.contains_key(m));
    let mut modal = None;
    let message = match kind {
        // The answer to a press (or to the submit of a modal a button opened) may update the
        // message the button is on: at once (7), or later through `@original` (6). Either way
        // that message becomes the original response.
        6 if component_message.is_some() => component_message.map(|m| inner.messages[&m].clone()),
        7 if component_message.is_some() => {
            let mid = component_message.expect("checked");
            match edit_stored(shared, inner, mid, data, files, ctx.size_limit) {
                Reply { status: 200, body: Some(m), .. } => Some(m),
                refused => return refused,
            }
        }
        4 => match create_message(shared, inner, &ctx, data, files) {
            Ok(m) => Some(m),
            Err(r) => return r,
        },
        5 => {
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
        // A modal is shown to the user alone: no message.
        9 => {
            if let Err(refused) = validate_modal(data) {
                return refused;
            }
            modal = Some(data.clone());
            None
        }
        // Pong, autocomplete results, and 6 or 7 on a message the stand-in never stored.
        _ => None,
    };
    if let Some(state) = inner.interactions.get_mut(&id) {
        state.acked_with = Some(kind);
        state.modal = modal;
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
                    "type": interaction_kind,
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
pub(super) fn webhook(
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
            if inner.deleted_while_loading.contains(token) {
                return Reply::err(404, 10008, "Unknown Message");
            }
            // After a deferred response the first followup edits the "thinking..." message
            // (and its ephemeral state cannot change). Once that was resolved (edited), a
            // followup is a message of its own, with its own flags.
            if let Some(mid) = original.filter(|mid| inner.messages.contains_key(mid)) {
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
                "GET" => Reply::json(200, resigned(shared, inner, &inner.messages[&mid])),
                "PATCH" => edit_stored(shared, inner, mid, body, files, size_limit),
                "DELETE" => {
                    let removed = inner.messages.remove(&mid);
                    let loading = removed.is_some_and(|m| m["flags"].as_u64().is_some_and(|f| f & FLAG_LOADING != 0));
                    if loading && Some(mid) == original {
                        inner.deleted_while_loading.insert(token.to_string());
                    }
                    Reply::no_content()
                }
                _ => Reply::not_found(),
            }
        }
        _ => Reply::not_found(),
    }
}
