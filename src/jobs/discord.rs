//! Sending a job's message to Discord: editing the interaction reply, or posting in the channel
//! when the reply can no longer be edited. Errors are classified without ever printing the
//! request URL, which carries the interaction token.

use std::time::Duration;

use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateAttachment, CreateMessage, EditInteractionResponse, Http, HttpError,
    MessageId, MessageReference, MessageReferenceKind, UserId,
};

use crate::render::Rendered;

/// Why a send failed, sorted by what to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The interaction token no longer works (expired, unknown, or the reply is too old to edit):
    /// post in the channel instead.
    ReplyGone(String),
    /// The request was too large: send fewer files.
    TooLarge,
    /// Try again after this long.
    RateLimited(Duration),
    /// Network trouble or a Discord 5xx: try again later.
    Transient(String),
    /// Discord refused for good (missing permissions, unknown channel, ...).
    Refused(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ReplyGone(why) => write!(f, "reply can no longer be edited ({why})"),
            SendError::TooLarge => f.write_str("request too large"),
            SendError::RateLimited(after) => write!(f, "rate limited for {after:?}"),
            SendError::Transient(why) => write!(f, "temporary failure ({why})"),
            SendError::Refused(why) => write!(f, "refused ({why})"),
        }
    }
}

/// Discord error codes that mean the interaction reply cannot be edited any more.
const REPLY_GONE_CODES: [isize; 4] = [10015, 50027, 10062, 30046];
const TOO_LARGE_CODES: [isize; 2] = [40005, 50045];

pub fn classify(error: serenity::Error) -> SendError {
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            let status = response.status_code.as_u16();
            let code = response.error.code;
            let what = format!("HTTP {status}, code {code}");
            if status == 429 {
                // serenity cannot read Discord's 429 body (it has no `code`), so the precise
                // `retry_after` is lost; wait a conservative few seconds.
                SendError::RateLimited(Duration::from_secs(3))
            } else if REPLY_GONE_CODES.contains(&code) || status == 401 {
                SendError::ReplyGone(what)
            } else if TOO_LARGE_CODES.contains(&code) || status == 413 {
                SendError::TooLarge
            } else if status >= 500 {
                SendError::Transient(what)
            } else {
                SendError::Refused(format!("{what}: {}", response.error.message))
            }
        }
        serenity::Error::Http(HttpError::Request(e)) => {
            SendError::Transient(if e.is_timeout() { "timeout".into() } else { "network error".into() })
        }
        serenity::Error::Model(e) => SendError::Refused(format!("message rejected before sending: {e}")),
        serenity::Error::Json(_) => SendError::Transient("unreadable answer".into()),
        _ => SendError::Transient("unexpected client error".into()),
    }
}

/// A file to upload.
#[derive(Clone)]
pub struct Upload {
    pub filename: String,
    pub bytes: Vec<u8>,
    /// Where the provider served it, for a link when it cannot be uploaded.
    pub source_url: String,
}

/// Edits the interaction's original reply. Mentions never ping from an edit.
pub async fn edit_reply(
    http: &Http,
    token: &str,
    message: &Rendered,
    uploads: &[Upload],
) -> Result<MessageId, SendError> {
    let mut edit = EditInteractionResponse::new()
        .content(message.content.clone())
        .embeds(message.embeds.clone())
        .allowed_mentions(CreateAllowedMentions::new());
    for upload in uploads {
        edit = edit.new_attachment(CreateAttachment::bytes(upload.bytes.clone(), upload.filename.clone()));
    }
    use serenity::builder::Builder;
    edit.execute(http, token).await.map(|m| m.id).map_err(classify)
}

/// Posts the job's message in its channel, mentioning the user, as a reply to the original
/// message when there is one.
pub async fn post_in_channel(
    http: &Http,
    channel_id: u64,
    user_id: u64,
    reply_to: Option<u64>,
    message: &Rendered,
    uploads: &[Upload],
) -> Result<MessageId, SendError> {
    let channel = ChannelId::new(channel_id);
    let mut create = CreateMessage::new()
        .content(format!("<@{user_id}> {}", message.content))
        .embeds(message.embeds.clone())
        .allowed_mentions(CreateAllowedMentions::new().users([UserId::new(user_id)]).replied_user(false))
        .add_files(uploads.iter().map(|u| CreateAttachment::bytes(u.bytes.clone(), u.filename.clone())));
    if let Some(reply_to) = reply_to {
        create = create.reference_message(
            MessageReference::new(MessageReferenceKind::Default, channel)
                .message_id(MessageId::new(reply_to))
                .fail_if_not_exists(false),
        );
    }
    channel.send_message(http, create).await.map(|m| m.id).map_err(classify)
}
