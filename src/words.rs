//! What members are told, in one place, so that a translation has one list to work from: the
//! job reply's status words and failure reasons, the answers to presses, and every refusal. The
//! log channel's notices are in [`log_channel`]. Layout (embeds, buttons, escaping) stays in
//! `crate::render`; the replies of the admin commands stay beside their commands.
//!
//! A [`UserError`] is the only kind of error shown to a user word for word, privately; anything
//! else is an internal fault, logged with its chain, and the user sees one calm fixed sentence
//! ([`INTERNAL_ERROR`] or [`UNAVAILABLE`]). The bot speaks as "I".

pub mod log_channel;

use crate::quota::{LimitKind, Refusal};

/// The one sentence users see when something breaks on the bot's side.
pub const INTERNAL_ERROR: &str =
    "Something went wrong on my side and nothing was charged. Please try again in a minute.";

/// What users see while the database cannot be reached.
pub const UNAVAILABLE: &str = "I am temporarily unavailable and nothing was charged. Please try again in a minute.";

/// What members see while the image service refuses the bot's account (balance, key, plan): the
/// same sentence for a refused command and for a job the service turned down.
pub const SERVICE_REFUSING: &str = "The image service is not accepting this bot's jobs right now; nothing was counted.";

// The job reply's status line.

pub const QUEUED: &str = "⏳ **Queued** · waiting for the image service";
/// Accepted past the member's `max_concurrent`: `place` is [`in_line`] or empty.
pub fn waiting_for_slot(place: &str) -> String {
    format!("⏳ **Queued** · I send it when one of your jobs finishes{place}")
}
/// `outlook` is [`in_line`], [`sent_at`] and one of [`likely_ready`] or [`TAKING_LONGER`].
pub fn submitted(outlook: &str) -> String {
    format!("📨 **Submitted**{outlook}")
}
pub fn generating(progress: Option<u8>, outlook: &str) -> String {
    match progress {
        Some(p) => format!("🎨 **Generating** · {p}%{outlook}"),
        None => format!("🎨 **Generating**{outlook}"),
    }
}
/// `took` as [`crate::render::clock`] writes it; `cost` in US dollars as the provider reported it.
pub fn done(took: &str, images: usize, cost: Option<rust_decimal::Decimal>) -> String {
    let cost = cost.map(|a| format!(" · cost ${a}")).unwrap_or_default();
    let plural = if images == 1 { "image" } else { "images" };
    format!("✅ **Done** in {took} · {images} {plural}{cost}")
}
/// `reason` is one of the failure sentences below.
pub fn failed(reason: &str) -> String {
    format!("❌ **Failed** · {reason} This job does not count against your quota.")
}
/// The public line of a job the image service's moderation declined: no reason (see
/// [`declined_privately`]).
pub const DECLINED: &str = "❌ **Not generated** · the prompt was declined, nothing was counted.";
/// What a cancelled job's reply and `/history` say after who cancelled it.
pub const CANCELLED: &str = "never sent, so nothing was counted.";
pub fn cancelled(by: u64) -> String {
    format!("🚫 **Cancelled** by <@{by}> · {CANCELLED}")
}
/// The reason stored with a cancelled job.
pub fn cancelled_reason(by: u64) -> String {
    format!("Cancelled by <@{by}>: {CANCELLED}")
}
/// `ordinal`: `1st`, `2nd`.
pub fn in_line(ordinal: &str) -> String {
    format!(" · {ordinal} in line in this server")
}
pub fn sent_at(unix: i64) -> String {
    format!(" · sent <t:{unix}:R>")
}
pub fn likely_ready(unix: i64) -> String {
    format!(" · likely ready <t:{unix}:R>")
}
pub const TAKING_LONGER: &str = " · taking longer than I expected";

// The job reply's details.

pub const SETTINGS: &str = "Settings";
pub const REFERENCES: &str = "References";
pub const NOTES: &str = "Notes";
pub const TOO_LARGE_TO_UPLOAD: &str = "Too large to upload (links expire soon)";
pub const FOOTER: &str = "Midjourney v7 · image to image";
pub fn prompt_line(prompt: &str) -> String {
    format!("**Prompt:** {prompt}")
}
pub fn avoid_line(negative: &str) -> String {
    format!("\n**Avoid:** {negative}")
}
pub fn image_link(n: usize, url: &str) -> String {
    format!("[image {n}]({url})")
}
/// Where a setting's value came from, after the value: empty for the member's own choice or the
/// bot's default.
pub const FROM_YOURS: &str = " (yours)";
pub const FROM_SERVER: &str = " (server)";
/// Each value is followed by where it came from.
pub fn settings_values(aspect: &str, performance: &str, stylize: &str, chaos: &str, weird: &str) -> String {
    format!("Aspect {aspect} · {performance} · stylize {stylize} · chaos {chaos} · weird {weird}")
}
pub fn source_images(n: usize) -> String {
    if n == 1 { "1 source image".to_owned() } else { format!("{n} source images") }
}
pub fn style_reference(weight: i64) -> String {
    format!("style reference (weight {weight})")
}
pub fn omni_reference(weight: i64) -> String {
    format!("omni reference (weight {weight})")
}
/// `41 s`, `2 min 05 s`.
pub fn duration(secs: u64) -> String {
    if secs < 60 { format!("{secs} s") } else { format!("{} min {:02} s", secs / 60, secs % 60) }
}

/// The first note of a job made from a button: `what` it is (one of the labels below), of which
/// message (`link`), for whom.
pub fn made_from(what: &str, link: &str, of_a_result: bool, user_id: u64) -> String {
    let of = if of_a_result { "this result" } else { "this job" };
    format!("{what} of [{of}]({link}), for <@{user_id}>.")
}
pub fn variation_of(n: u8) -> String {
    format!("Variation of image {n}")
}
pub fn remixed_variation_of(n: u8) -> String {
    format!("Remixed variation of image {n}")
}
/// The Remix modal: its title (`Remix`, or for `V<n>` in remix mode [`remix_vary`]) and its box.
pub const REMIX_PROMPT_LABEL: &str = "Prompt (flags like --ar 16:9 may follow)";
pub fn remix_vary(n: u8) -> String {
    format!("Remix · vary image {n}")
}

/// What the owner of a job the image service's moderation declined is told privately: its
/// reason, and the Remix button beside it.
pub fn declined_privately(reason: &str) -> String {
    format!("Only you can see this. {reason} Press **Remix** to change your prompt and try again; nothing was counted.")
}

/// The line above a result image posted alone (the answer to a `U<n>` press); `prompt` escaped.
pub fn single_image(number: u8, prompt: &str, user_id: u64) -> String {
    format!("🔍 **Image {number}** of {prompt} · full size · for <@{user_id}>")
}

// Why a job failed: the reason in its reply and in `/history`.

pub const REPLY_FAILED: &str = "The reply to the command could not be sent.";
pub const NEVER_ACKNOWLEDGED: &str =
    "I restarted before your request was confirmed, so nothing was sent or counted. Please run the command again.";
pub const UNCERTAIN: &str = "I could not confirm whether the image service accepted this request, so I stopped it; \
     nothing was counted. The bot's operator can check it.";
/// What the public sees when the provider's reason concerns the bot's account, not the request.
pub const DETAILS_IN_LOGS: &str = "nothing was counted, and the bot's operator has the details";
/// A job held back by the open provider breaker until its deadline passed: it was never sent.
pub const HELD_BY_BREAKER: &str = "The image service is not accepting this bot's jobs right now, so I never sent \
     this one; nothing was counted. Please try again later.";
pub const SERVICE_DOWN: &str =
    "The image service is not answering right now; nothing was counted. Please try again later.";
pub const UNKNOWN_STATE: &str =
    "The image service reported a state I do not understand, so I stopped the job; nothing was counted.";
pub const IMAGES_UNREACHABLE: &str =
    "The images were made but I could not fetch them from the image service; nothing was counted.";
/// The create was refused for a reason about the request (`words`: the provider's, cleaned).
pub fn request_refused(words: &str) -> String {
    format!("The image service refused this request: {words}.")
}
/// The provider failed the job: its words, none, or words the public should not see.
pub fn could_not_make(words: Option<Option<&str>>) -> String {
    match words {
        None => "The image service could not make this image: no reason given.".into(),
        Some(Some(words)) => format!("The image service could not make this image: {words}."),
        Some(None) => format!("The image service could not make this image; {DETAILS_IN_LOGS}."),
    }
}
/// Queries kept being refused or unreadable.
pub fn stopped_answering(words: Option<&str>) -> String {
    match words {
        Some(words) => format!("The image service stopped answering about this job: {words}."),
        None => format!("The image service stopped answering about this job; {DETAILS_IN_LOGS}."),
    }
}
/// `deadline` as [`crate::render::clock`] writes it.
pub fn did_not_finish(deadline: &str) -> String {
    format!("The image service did not finish within {deadline}.")
}

// Answers to presses (beyond the refusals below).

/// Shown publicly for a moment, when a press acknowledged in public is answered privately.
pub const ANSWERED_PRIVATELY: &str = "I answered this press privately.";
pub fn could_not_post_image(n: u8) -> String {
    format!("I could not post image {n} just now. Please press U{n} again in a minute.")
}
pub fn image_over_upload_limit(n: u8, result_link: &str) -> String {
    format!("Image {n} is larger than this server's upload limit; open it in the result: {result_link}")
}
pub fn could_not_fetch_image(n: u8) -> String {
    format!("I could not fetch image {n} from Discord just now. Please press U{n} again in a minute.")
}

/// A user's mistake, or a rule they ran into: shown verbatim and privately. Nothing was sent to
/// the provider and nothing was counted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    /// An option or the prompt cannot be used as given; the text says what to change.
    #[error("{0}")]
    Input(String),
    /// A quota limit is reached.
    #[error("{}", .0.message())]
    Limit(Refusal),
    /// The guild's monthly budget is spent.
    #[error(
        "This server's monthly image budget of ${budget} is spent, so no new image jobs can start. \
         It resets <t:{}:R>; server admins can raise it with `/quota set monthly_budget`.", .resets_at.timestamp()
    )]
    BudgetSpent { budget: rust_decimal::Decimal, resets_at: chrono::DateTime<chrono::Utc> },
    /// The operator's `DAILY_SPEND_LIMIT` is reached, in every guild.
    #[error(
        "This bot has reached the spending limit its operator set for today, so no new image jobs can start. \
         It resets <t:{}:R>.", .resets_at.timestamp()
    )]
    SpendLimit { resets_at: chrono::DateTime<chrono::Utc> },
    /// The provider keeps refusing the bot's account: the breaker is open (see `crate::breaker`).
    #[error("{SERVICE_REFUSING} Please try again later.")]
    ServiceRefusing,
    /// `/quota set` above what the operator allows guilds to set.
    #[error(
        "This bot's operator allows at most {ceiling} for `{}` (the `{setting}` setting). Choose {ceiling} or less.",
        .kind.name()
    )]
    AboveCeiling { kind: LimitKind, ceiling: i32, setting: &'static str },
    /// The command came through a user installation: the bot serves only servers that added it.
    #[error(
        "This bot only works in servers that added it. Ask a server admin to add it to the server, then use it there."
    )]
    NotInstalled,
    /// `/imagine` outside the channels the server allows (`/settings channels`).
    #[error(
        "On this server, image jobs can only be started in {}. Please use `/imagine` there.",
        mention_list("#", .allowed)
    )]
    ChannelNotAllowed { allowed: Vec<u64> },
    /// A result button pressed outside the channels the server allows (`/settings channels`).
    #[error("On this server, the bot's buttons only work in {}.", mention_list("#", .allowed))]
    ButtonsNotHere { allowed: Vec<u64> },
    /// A member without any of the roles the server lets start jobs (`/settings roles`).
    #[error(
        "On this server, only members with {} can start image jobs. Ask a server admin if you think you should.",
        mention_list("@&", .roles)
    )]
    RoleRequired { roles: Vec<u64> },
    /// A member an admin blocked in this server (`/quota member block:True`).
    #[error("An admin of this server has paused your image jobs here.")]
    MemberBlocked,
    /// A prompt or negative prompt with a word the server blocked (`/settings blocked_words`).
    /// `place` names where it is: "your prompt", "your suffix", "your option `--cine`".
    #[error("{} contains `{word}`, which this server does not allow. Remove it and try again.", capitalised(place))]
    BlockedWord { word: String, place: String },
    #[error("You need the Manage Server permission to use this command.")]
    NotAdmin,
    #[error("Only members with the Manage Server permission can see other members' jobs.")]
    OthersHistory,
    #[error("This command only works in a server channel.")]
    GuildOnly,
    #[error("I could not read one of the options. Please check them and try again.")]
    UnreadableOption,
    #[error("This command was updated since Discord loaded it. Please reload Discord (Ctrl+R) and try again.")]
    OutdatedCommand,
    #[error("I am missing these permissions here: {0}.")]
    BotPermissions(String),
    /// A button the bot cannot read: not one of its result buttons, or damaged.
    #[error("This button does not work any more. Use `/imagine` to start a new job.")]
    UnknownButton,
    /// A result button made by a newer version of the bot.
    #[error("This button comes from a newer version of the bot. Please try again in a few minutes.")]
    NewerButton,
    /// The job behind a result button is gone from the database.
    #[error("The job behind this button no longer exists. Use `/imagine` to start a new one.")]
    JobGone,
    /// A result button pressed in a server that is not the job's.
    #[error("This button belongs to a result from another server, so it does not work here.")]
    OtherServer,
    /// A result button of a job that produced no images.
    #[error("This job did not produce any images, so its buttons have nothing to work on.")]
    NoImages,
    /// Retry on a job that did not fail (a copied button, or a crafted press).
    #[error("Only a job that failed, timed out or could not be confirmed can be retried. Use Reroll for new images.")]
    NothingToRetry,
    /// Retry on a job the image service's moderation declined: it would be declined again.
    #[error(
        "The image service declined this prompt, so I would not try it again unchanged. Change it with Remix, or \
         start again with `/imagine`."
    )]
    DeclinedNoRetry,
    /// V, Reroll or Remix on a result whose original pictures are no longer reachable: they could
    /// not be kept with the result, and the job's own links have expired.
    #[error(
        "This result's original pictures are no longer available, so {0} cannot work on it. Please start again with `/imagine`."
    )]
    PicturesGone(String),
    /// A result button on a message that is not its job's result (its `custom_id` copied onto
    /// another message, or a crafted press).
    #[error("This button does not belong to this message, so I ignored it. Use the buttons under the result itself.")]
    NotItsMessage,
    /// A member pressed more U buttons than the bot allows per window.
    #[error("You're pressing U buttons too fast: try again in {retry_after_secs} s.")]
    PressingTooFast { retry_after_secs: u64 },
    /// Every place for a U press in this process is taken.
    #[error("I'm posting too many images right now: press U{0} again in a few seconds.")]
    UpscalesBusy(u8),
    /// `U<n>` on an image larger than this process may hold in memory (`IMAGE_MEMORY_BUDGET`).
    #[error("Image {number} is too large for me to post; open it in the result: {result}")]
    TooLargeToPost { number: u8, result: String },
    /// `U<n>` or `V<n>` where the result carries no image n.
    #[error("This result has no image {0}. Use the buttons of an image it shows.")]
    NoSuchImage(u8),
    /// `Cancel` or `Delete` pressed by someone who neither started the job nor has Manage Messages.
    #[error("Only the member who started this job, or a member with Manage Messages, can {0} it.")]
    NotYourJob(&'static str),
    /// `Cancel` on a job already sent to the image service.
    #[error("This job was already sent to the image service: it is already paid for and will be delivered here.")]
    AlreadySent,
    /// `Cancel` on a job already cancelled.
    #[error("This job was already cancelled; nothing was counted.")]
    AlreadyCancelled,
    /// `Cancel` on a job that has finished.
    #[error("This job has already finished, so there is nothing to cancel.")]
    AlreadyFinished,
    /// `Delete` on a result already deleted.
    #[error("This result was already deleted.")]
    AlreadyDeleted,
}

/// `<#1>, <#2> or <#3>` (with `kind` `#`; `@&` for roles): Discord shows each as a link to the
/// channel or the role's name.
fn mention_list(kind: &str, ids: &[u64]) -> String {
    let mentions: Vec<String> = ids.iter().map(|id| format!("<{kind}{id}>")).collect();
    match mentions.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => mentions.concat(),
    }
}

/// `text` with its first letter in upper case, to start a sentence.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_read_as_sentences() {
        assert_eq!(UserError::Input("Attach a picture.".into()).to_string(), "Attach a picture.");
        assert!(UserError::NotAdmin.to_string().contains("Manage Server"));
        assert_eq!(
            UserError::BotPermissions("Attach Files".into()).to_string(),
            "I am missing these permissions here: Attach Files."
        );
        assert_eq!(
            UserError::ChannelNotAllowed { allowed: vec![1, 2, 3] }.to_string(),
            "On this server, image jobs can only be started in <#1>, <#2> or <#3>. Please use `/imagine` there."
        );
        assert!(UserError::ChannelNotAllowed { allowed: vec![7] }.to_string().contains("started in <#7>."));
        assert_eq!(
            UserError::RoleRequired { roles: vec![4, 5] }.to_string(),
            "On this server, only members with <@&4> or <@&5> can start image jobs. Ask a server admin if you think \
             you should."
        );
        let refusal = Refusal { kind: LimitKind::Daily, limit: 0, resets_at: None };
        assert_eq!(UserError::Limit(refusal).to_string(), refusal.message());
    }
}
