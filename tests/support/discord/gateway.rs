//! The gateway WebSocket: HELLO, IDENTIFY/READY, RESUME/RESUMED with replay, heartbeats, and
//! dispatches routed to sessions by shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::attachments::resigned;
use super::{
    APP_ID, Conn, DEFAULT_ATTACHMENT_SIZE_LIMIT, DEFAULT_CHANNEL_ID, DiscordStandIn, HEARTBEAT_INTERVAL_MS, Inner,
    InteractionState, Out, Session, Shared, bot_user_json, id_of, lock, shard_for_guild, snowflake,
};

impl DiscordStandIn {
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

    /// IDENTIFY payloads (`d`) received so far.
    pub fn identifies(&self) -> Vec<Value> {
        lock(&self.shared.inner).identifies.clone()
    }

    /// Number of gateway connections currently attached to a session (identified or resumed).
    pub fn connected_sessions(&self) -> usize {
        lock(&self.shared.inner).conns.values().filter(|c| c.session.is_some()).count()
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
        // A press (or the submit of a modal a button opened) carries the message of the button as
        // Discord holds it now, its attachment URLs signed afresh.
        let message_id = id_of(&interaction["message"]["id"]);
        if let Some(stored) = message_id.and_then(|m| inner.messages.get(&m)) {
            interaction["message"] = resigned(&self.shared, &inner, stored);
        }
        let state = InteractionState {
            kind: interaction["type"].as_u64().unwrap_or(2),
            token: token.clone(),
            channel_id: id_of(&interaction["channel_id"]).unwrap_or(DEFAULT_CHANNEL_ID),
            guild_id: id_of(&interaction["guild_id"]),
            attachment_size_limit: interaction["attachment_size_limit"]
                .as_u64()
                .unwrap_or(DEFAULT_ATTACHMENT_SIZE_LIMIT),
            dispatched_at: Instant::now(),
            acked_with: None,
            message_id,
            modal: None,
        };
        inner.tokens.insert(token, id);
        // The same interaction dispatched again (a replay) is still the one interaction: it can
        // be acknowledged once.
        inner.interactions.entry(id).or_insert(state);
        dispatch_locked(&mut inner, "INTERACTION_CREATE", &interaction);
        drop(inner);
        self.shared.notify();
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

pub(super) async fn gateway_upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
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
