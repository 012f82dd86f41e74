//! Presses on the buttons under a delivered result (`U1`–`U4`, `V1`–`V4`, Reroll, Remix) and the
//! submit of the Remix modal.
//!
//! Nothing a press needs lives in memory, so buttons work after restarts and days later: the job
//! is read from the database by the id in the button's `custom_id`, and the pictures are taken
//! from the press's own `message` (the result, which carries the job's images and its own sources
//! uploaded again), whose attachment URLs Discord signed afresh for this interaction. A bad press
//! is answered privately and creates nothing. `U<n>` posts an image (see [`super::upscale`]); V,
//! Reroll and a Remix submit start a new job (see [`super::variations`]); Remix first opens a modal.

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::{Instrument, error, info, warn};

use super::Data;
use crate::{
    actions::{self, Action, BadButton, Press, SourceFile},
    db::{self, jobs::JobStatus, jobs::PressedJob},
    error::{INTERNAL_ERROR, UNAVAILABLE, UserError},
    imagine::{MAX_PROMPT_CHARS, Pictures},
    render,
    settings::GuildSettings,
};

/// The text input of the Remix modal.
pub(super) const REMIX_INPUT: &str = "prompt";

/// A press, or a Remix submit: what every action needs from the interaction.
pub(super) struct Pressed<'a> {
    pub id: serenity::InteractionId,
    pub token: &'a str,
    pub application_id: serenity::ApplicationId,
    pub guild_id: Option<serenity::GuildId>,
    pub channel_id: serenity::ChannelId,
    pub channel: Option<&'a serenity::PartialChannel>,
    pub user_id: serenity::UserId,
    pub member: Option<&'a serenity::Member>,
    pub attachment_size_limit: u32,
    pub custom_id: &'a str,
    /// The result message the button is on (for a modal submit: the one the modal was opened from).
    pub message: Option<&'a serenity::Message>,
    /// Whether the interaction came through the server's installation of the bot. serenity 0.12
    /// does not read `authorizing_integration_owners` of a modal submit, so a submit relies on
    /// this: the Remix modal is only ever opened by a press that passed the check, and the submit
    /// is checked again for the job's server and allowed channels.
    pub installed: bool,
}

impl<'a> Pressed<'a> {
    fn press(press: &'a serenity::ComponentInteraction) -> Self {
        Pressed {
            id: press.id,
            token: &press.token,
            application_id: press.application_id,
            guild_id: press.guild_id,
            channel_id: press.channel_id,
            channel: press.channel.as_ref(),
            user_id: press.user.id,
            member: press.member.as_ref(),
            attachment_size_limit: press.attachment_size_limit,
            custom_id: &press.data.custom_id,
            message: Some(&press.message),
            installed: super::guild_installation(&press.authorizing_integration_owners, press.guild_id),
        }
    }

    fn remix(submit: &'a serenity::ModalInteraction) -> Self {
        Pressed {
            id: submit.id,
            token: &submit.token,
            application_id: submit.application_id,
            guild_id: submit.guild_id,
            channel_id: submit.channel_id,
            channel: submit.channel.as_ref(),
            user_id: submit.user.id,
            member: submit.member.as_ref(),
            attachment_size_limit: submit.attachment_size_limit,
            custom_id: &submit.data.custom_id,
            message: submit.message.as_deref(),
            installed: true,
        }
    }

    fn span(&self, kind: &'static str) -> tracing::Span {
        tracing::info_span!(
            "press",
            kind,
            custom_id = %render::truncate(self.custom_id, 100),
            guild_id = self.guild_id.map(|g| g.get()),
            user_id = self.user_id.get()
        )
    }

    /// Answers the interaction (its 3-second acknowledgement).
    pub async fn respond(
        &self,
        ctx: &serenity::Context,
        response: serenity::CreateInteractionResponse,
    ) -> Result<(), crate::discord::SendError> {
        use serenity::Builder as _;
        response.execute(&ctx.http, (self.id, self.token)).await.map_err(crate::discord::classify_serenity)
    }
}

/// Answers a button press.
pub async fn on_press(ctx: &serenity::Context, data: &Data, press: &serenity::ComponentInteraction) {
    let pressed = Pressed::press(press);
    async {
        let outcome = async {
            match actions::decode(pressed.custom_id).map(|b| b.action) {
                // V and Reroll check the press inside their reservation's transaction.
                Ok(Action::Vary(_) | Action::Reroll) => {
                    return super::variations::start(ctx, data, &pressed, None).await;
                }
                Ok(Action::Upscale(number)) => return super::upscale::press(ctx, data, press, &pressed, number).await,
                Ok(Action::Remix) | Err(_) => {}
            }
            let mut conn = data.pool.acquire().await.context("reading the pressed job")?;
            let (button, job, _) = check(&mut conn, &pressed).await?;
            // The submit's reservation refuses a blocked member anyway; refused here, they are
            // not asked to type a prompt first.
            let member = db::members::state(&mut *conn, job.guild_id, pressed.user_id.get() as i64)
                .await
                .context("reading the member's controls")?;
            if member.blocked.is_some() {
                return Err(UserError::MemberBlocked.into());
            }
            drop(conn);
            open_remix(ctx, &pressed, &button, &job).await
        }
        .await;
        if let Err(error) = outcome {
            refuse(ctx, &pressed, error).await;
        }
    }
    .instrument(pressed.span("button"))
    .await
}

/// Answers the submit of a Remix modal: the typed prompt becomes a new job.
pub async fn on_remix(ctx: &serenity::Context, data: &Data, submit: &serenity::ModalInteraction) {
    let pressed = Pressed::remix(submit);
    let text = submit
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|c| match c {
            serenity::ActionRowComponent::InputText(input) if input.custom_id == REMIX_INPUT => input.value.clone(),
            _ => None,
        })
        .unwrap_or_default();
    async {
        if let Err(error) = super::variations::start(ctx, data, &pressed, Some(&text)).await {
            refuse(ctx, &pressed, error).await;
        }
    }
    .instrument(pressed.span("remix"))
    .await
}

/// Everything a press must pass before anything is shown or started: this bot's button, a job
/// of this server that produced images, pressed on that job's result message, where the server
/// allows the bot, by a member the server lets start jobs (for V, Reroll and Remix). A refusal is
/// a [`UserError`].
pub(super) async fn check(
    db: &mut sqlx::PgConnection,
    pressed: &Pressed<'_>,
) -> anyhow::Result<(Press, PressedJob, GuildSettings)> {
    if !pressed.installed {
        return Err(UserError::NotInstalled.into());
    }
    let guild_id = pressed.guild_id.ok_or(UserError::GuildOnly)?;
    let button = actions::decode(pressed.custom_id).map_err(|bad| match bad {
        BadButton::Unknown => UserError::UnknownButton,
        BadButton::OtherVersion => UserError::NewerButton,
    })?;
    let job = db::jobs::for_press(&mut *db, button.job).await.context("reading the pressed job")?;
    let job = job.ok_or(UserError::JobGone)?;
    if job.guild_id != guild_id.get() as i64 {
        return Err(UserError::OtherServer.into());
    }
    let settings = db::settings::load(&mut *db, job.guild_id).await.context("reading the server's settings")?;
    if !settings.allows_channel(pressed.channel_id.get(), super::thread_parent(pressed.channel)) {
        return Err(UserError::ButtonsNotHere { allowed: settings.allowed_channels }.into());
    }
    // U posts an image that exists already; only presses that start a job need the server's roles.
    if button.action.makes_job() {
        super::imagine::check_job_roles(&settings, pressed.member)?;
    }
    if job.status != JobStatus::Succeeded || job.images == 0 {
        return Err(UserError::NoImages.into());
    }
    // Anyone can copy a `custom_id` onto another message: a press counts only on the job's own
    // result, whose pictures are the ones it acts on.
    let carried_by = pressed.message.map(|m| m.id.get() as i64);
    if carried_by.is_none() || carried_by != job.message_id {
        return Err(UserError::NotItsMessage.into());
    }
    Ok((button, job, settings))
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
        urls.iter().enumerate().map(|(i, url)| pick(kind(i as u8 + 1), url)).collect()
    };
    let style = numbered(&job.args.style_image_urls, SourceFile::Style)?;
    let omni = job.args.omni_image_url.as_ref().map(|url| pick(SourceFile::Omni, url)).transpose()?;
    let images = match action {
        Action::Vary(number) => vec![result_image(message, job, number)?.url.clone()],
        _ => numbered(&job.args.image_urls, SourceFile::Image)?,
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

/// Answers a Remix press with a modal holding the prompt as it was sent, ready to edit.
async fn open_remix(
    ctx: &serenity::Context,
    pressed: &Pressed<'_>,
    button: &Press,
    job: &PressedJob,
) -> anyhow::Result<()> {
    // Refused here rather than after the member typed a new prompt.
    pictures(pressed.message.ok_or(UserError::UnknownButton)?, job, Action::Remix)?;
    let prefill: String = job.prompt_sent.chars().take(MAX_PROMPT_CHARS).collect();
    let input = serenity::CreateInputText::new(
        serenity::InputTextStyle::Paragraph,
        "Prompt (flags like --ar 16:9 may follow)",
        REMIX_INPUT,
    )
    .value(prefill)
    .min_length(1)
    .max_length(MAX_PROMPT_CHARS as u16)
    .required(true);
    let modal = serenity::CreateModal::new(actions::custom_id(button.job, Action::Remix), "Remix")
        .components(vec![serenity::CreateActionRow::InputText(input)]);
    match pressed.respond(ctx, serenity::CreateInteractionResponse::Modal(modal)).await {
        Ok(()) => {
            metrics::counter!("imagine_presses_total", "outcome" => "remix_opened").increment(1);
            Ok(())
        }
        // Answered by another process on the same shard, or too late: nothing more to say.
        Err(e @ crate::discord::SendError::ReplyGone(_)) => {
            info!(error = %e, "the Remix press was answered elsewhere or too late");
            Ok(())
        }
        // Discord refused the modal: the member gets the calm sentence instead of a silent failure.
        Err(e) => Err(anyhow::anyhow!("Discord refused the Remix modal: {e}")),
    }
}

/// Answers a refused or failed press privately: a [`UserError`] word for word, anything else as
/// one calm sentence (the fault is logged). Failures to answer are only logged.
async fn refuse(ctx: &serenity::Context, pressed: &Pressed<'_>, error: anyhow::Error) {
    let text = match error.downcast_ref::<UserError>() {
        Some(refusal) => {
            info!(%refusal, "refused a press");
            metrics::counter!("imagine_presses_total", "outcome" => "refused").increment(1);
            refusal.to_string()
        }
        None => {
            error!(error = ?error, "a press failed");
            metrics::counter!("imagine_presses_total", "outcome" => "failed").increment(1);
            if super::database_down(&error) { UNAVAILABLE } else { INTERNAL_ERROR }.to_owned()
        }
    };
    let answer = serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    );
    if let Err(e) = pressed.respond(ctx, answer).await {
        warn!(error = %e, "could not answer a press");
    }
}
