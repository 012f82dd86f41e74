//! What every press on a result's buttons must pass, and what it acts on: its button decoded
//! once, the pressed job read from the database by the id in the button, and the pictures taken
//! from the press's own message (the result, which carries the job's images and its own sources
//! uploaded again), whose attachment URLs Discord signed afresh for this interaction.

use anyhow::Context as _;
use poise::serenity_prelude as serenity;

use super::interaction::Interaction;
use crate::{
    actions::{self, Action, BadButton, Press, SourceFile},
    db::{self, DiscordId, jobs::JobStatus, jobs::PressedJob},
    settings::GuildSettings,
    spec::Pictures,
    words::UserError,
};

/// The press's button, decoded once: refused first when the interaction did not come through
/// the server's installation or not from a server, then when the bot cannot read the button.
pub(super) fn decode(asked: &Interaction<'_>, custom_id: &str) -> Result<Press, UserError> {
    if !asked.installed {
        return Err(UserError::NotInstalled);
    }
    asked.guild_id.ok_or(UserError::GuildOnly)?;
    actions::decode(custom_id).map_err(|bad| match bad {
        BadButton::Unknown => UserError::UnknownButton,
        BadButton::OtherVersion => UserError::NewerButton,
    })
}

/// Everything a decoded press must pass before anything is shown or started: a job of this
/// server, pressed on that job's result message, where the server allows the bot, by a member the
/// server lets start jobs (for every button but U). U, V, Reroll and Remix need a job that produced
/// images; Retry one that failed, timed out or was left unconfirmed, unless moderation declined
/// it. One press counts on another message: Remix on the private message that tells the owner
/// why moderation declined their job. A refusal is a [`UserError`].
pub(super) async fn check(
    db: &mut sqlx::PgConnection,
    asked: &Interaction<'_>,
    button: Press,
) -> anyhow::Result<(PressedJob, GuildSettings)> {
    let guild_id = asked.guild_id.ok_or(UserError::GuildOnly)?;
    let job = db::jobs::for_press(&mut *db, button.job).await.context("reading the pressed job")?;
    let job = job.ok_or(UserError::JobGone)?;
    if job.guild_id != DiscordId::from(guild_id) {
        return Err(UserError::OtherServer.into());
    }
    let settings = db::settings::load(&mut *db, job.guild_id).await.context("reading the server's settings")?;
    if !settings.allows_channel(asked.channel_id.get(), asked.thread_parent()) {
        return Err(UserError::ButtonsNotHere { allowed: settings.allowed_channels }.into());
    }
    // U posts an image that exists already; only presses that start a job need the server's roles.
    if button.action.makes_job() {
        asked.check_job_roles(&settings)?;
    }
    let declined = job.status.declined_by_moderation(job.error_text.as_deref());
    match button.action {
        Action::Retry if declined => return Err(UserError::DeclinedNoRetry.into()),
        Action::Retry if !job.status.retryable() => return Err(UserError::NothingToRetry.into()),
        Action::Retry => {}
        Action::Remix if declined && on_owners_private_message(asked, &job) => return Ok((job, settings)),
        _ if job.status != JobStatus::Succeeded || job.images == 0 => return Err(UserError::NoImages.into()),
        _ => {}
    }
    // Anyone can copy a `custom_id` onto another message: a press counts only on the job's own
    // result, whose pictures are the ones it acts on.
    let carried_by = asked.message.map(|m| DiscordId::from(m.id));
    if carried_by.is_none() || carried_by != job.message_id {
        return Err(UserError::NotItsMessage.into());
    }
    Ok((job, settings))
}

/// Whether the press comes from the job's owner on a private message (which only they can see,
/// and only the bot can send): the one that tells them why moderation declined the job, carrying
/// its sources.
fn on_owners_private_message(asked: &Interaction<'_>, job: &PressedJob) -> bool {
    let private = asked.message.and_then(|m| m.flags).is_some_and(|f| f.contains(serenity::MessageFlags::EPHEMERAL));
    private && job.user_id == DiscordId::from(asked.user_id)
}

/// The pictures of a new job made by `action` on a result, as links that work now: result image n
/// for `V<n>` (else the original sources), plus the original references. Each comes from the
/// copy kept with the result (its link freshly signed in the press), else from the job's own link
/// while that can still be used; a picture with neither refuses the press before anything is
/// counted.
pub(super) fn pictures(message: &serenity::Message, job: &PressedJob, action: Action) -> Result<Pictures, UserError> {
    let now = chrono::Utc::now().timestamp();
    let gone = || UserError::PicturesGone(action.label());
    let pick = |wanted: SourceFile, stored: &String| {
        let kept = message.attachments.iter().find(|a| SourceFile::of(&a.filename) == Some(wanted));
        match kept {
            Some(attachment) => Ok(attachment.url.clone()),
            None if stored_link_usable(stored, now) => Ok(stored.clone()),
            None => Err(gone()),
        }
    };
    let numbered = |urls: &[String], kind: fn(u8) -> SourceFile| -> Result<Vec<String>, UserError> {
        (1..).zip(urls).map(|(number, url)| pick(kind(number), url)).collect()
    };
    let style = numbered(&job.spec.pictures.style, SourceFile::Style)?;
    let omni = job.spec.pictures.omni.as_ref().map(|url| pick(SourceFile::Omni, url)).transpose()?;
    let images = match action {
        Action::Vary(number) => vec![result_image(message, job, number)?.url.clone()],
        _ => numbered(&job.spec.pictures.images, SourceFile::Image)?,
    };
    if images.is_empty() {
        return Err(gone());
    }
    Ok(Pictures { images, style, omni })
}

/// Whether a job's own link can still be handed to the provider: it is no signed Discord link, or
/// it lives a while longer, or it belongs to a message (the worker renews those before the
/// create). Links to files attached to a command cannot be renewed.
fn stored_link_usable(url: &str, now: i64) -> bool {
    match crate::discord::link_expires_at(url) {
        None => true,
        Some(expires) if expires > now + STORED_LINK_MARGIN_SECS => true,
        Some(_) => url.contains("/attachments/") && !url.contains("/ephemeral-attachments/"),
    }
}

/// A job's own link must live at least this much longer to be used for a new job.
const STORED_LINK_MARGIN_SECS: i64 = 15 * 60;

/// Result image `number` as attached to the result message.
pub(super) fn result_image<'m>(
    message: &'m serenity::Message,
    job: &PressedJob,
    number: u8,
) -> Result<&'m serenity::Attachment, UserError> {
    message
        .attachments
        .iter()
        .find(|a| actions::image_number(&a.filename) == Some(number))
        .filter(|_| i32::from(number) <= job.images)
        .ok_or(UserError::NoSuchImage(number))
}
