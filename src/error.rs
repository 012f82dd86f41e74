//! What users are told. A [`UserError`] is the only kind of error shown to a user word for word,
//! privately; anything else is an internal fault, logged with its chain, and the user sees one
//! calm fixed sentence ([`INTERNAL_ERROR`] or [`UNAVAILABLE`]).

use crate::quota::{LimitKind, Refusal};

/// The one sentence users see when something breaks on the bot's side.
pub const INTERNAL_ERROR: &str =
    "Something went wrong on my side and nothing was charged. Please try again in a minute.";

/// What users see while the database cannot be reached.
pub const UNAVAILABLE: &str = "I am temporarily unavailable and nothing was charged. Please try again in a minute.";

/// What members see while the image service refuses the bot's account (balance, key, plan): the
/// same sentence for a refused command and for a job the service turned down.
pub const SERVICE_REFUSING: &str = "The image service is not accepting this bot's jobs right now; nothing was counted.";

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
