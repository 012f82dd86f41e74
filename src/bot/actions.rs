//! Presses on the buttons under a delivered result (`U1`–`U4`).
//!
//! Nothing a press needs lives in memory, so buttons work after restarts and days later: the job
//! is read from the database by the id in the button's `custom_id`, and the image is taken from
//! the press's own `message`, whose attachment URLs Discord signed afresh for this interaction.
//! A bad press is answered privately and creates nothing; a good one is acknowledged (deferred,
//! public) before anything slow happens, and only by the process whose acknowledgement Discord
//! accepted.

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::{Instrument, error, info, warn};

use super::Data;
use crate::{
    actions::{self, Action, BadButton},
    db::{self, jobs::JobStatus},
    error::{INTERNAL_ERROR, UNAVAILABLE, UserError},
    provider::{self, DownloadError},
    render,
};

/// What a valid `U<n>` press shows.
struct SingleImage {
    number: u8,
    url: String,
    filename: String,
    prompt: String,
}

/// Answers a button press.
pub async fn on_press(ctx: &serenity::Context, data: &Data, press: &serenity::ComponentInteraction) {
    let span = tracing::info_span!(
        "press",
        custom_id = %render::truncate(&press.data.custom_id, 100),
        guild_id = press.guild_id.map(|g| g.get()),
        user_id = press.user.id.get()
    );
    async move {
        match check(data, press).await {
            Ok(image) => post_single_image(ctx, data, press, image).await,
            Err(error) => {
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
                answer_privately(ctx, press, text).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Everything a press must pass before it is acknowledged publicly; a refusal is a [`UserError`].
async fn check(data: &Data, press: &serenity::ComponentInteraction) -> anyhow::Result<SingleImage> {
    if !super::guild_installation(&press.authorizing_integration_owners, press.guild_id) {
        return Err(UserError::NotInstalled.into());
    }
    let guild_id = press.guild_id.ok_or(UserError::GuildOnly)?;
    let pressed = actions::decode(&press.data.custom_id).map_err(|bad| match bad {
        BadButton::Unknown => UserError::UnknownButton,
        BadButton::OtherVersion => UserError::NewerButton,
    })?;
    let job = db::jobs::for_press(&data.pool, pressed.job).await.context("reading the pressed job")?;
    let job = job.ok_or(UserError::JobGone)?;
    if job.guild_id != guild_id.get() as i64 {
        return Err(UserError::OtherServer.into());
    }
    let settings = db::settings::load(&data.pool, job.guild_id).await.context("reading the server's settings")?;
    if !settings.allows_channel(press.channel_id.get(), super::thread_parent(press.channel.as_ref())) {
        return Err(UserError::ButtonsNotHere { allowed: settings.allowed_channels }.into());
    }
    if job.status != JobStatus::Succeeded || job.images == 0 {
        return Err(UserError::NoImages.into());
    }
    let Action::Upscale(number) = pressed.action;
    let attachment = press
        .message
        .attachments
        .iter()
        .find(|a| actions::image_number(&a.filename) == Some(number))
        .filter(|_| i32::from(number) <= job.images)
        .ok_or(UserError::NoSuchImage(number))?;
    Ok(SingleImage {
        number,
        url: attachment.url.clone(),
        filename: attachment.filename.clone(),
        prompt: job.prompt_sent,
    })
}

/// Acknowledges the press publicly, then fills the reply with the image alone. Nothing is sent to
/// the provider and nothing is counted.
async fn post_single_image(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    image: SingleImage,
) {
    let defer = serenity::CreateInteractionResponse::Defer(serenity::CreateInteractionResponseMessage::new());
    if let Err(e) = press.create_response(&ctx.http, defer).await {
        // Another process on the same shard (or a replay) was acknowledged first and posts the
        // image; this one does nothing more.
        info!(error = %crate::discord::classify_serenity(e), "the press was answered elsewhere");
        return;
    }
    let cap = u64::from(press.attachment_size_limit);
    let edit = match provider::download(&data.downloads, &image.url, cap).await {
        Ok((bytes, _content_type)) => {
            metrics::counter!("imagine_presses_total", "outcome" => "upscale").increment(1);
            serenity::EditInteractionResponse::new()
                .content(render::single_image_line(image.number, &image.prompt, press.user.id.get()))
                .new_attachment(serenity::CreateAttachment::bytes(bytes, image.filename))
        }
        Err(e) => {
            warn!(error = %e, number = image.number, "could not fetch the pressed image");
            metrics::counter!("imagine_presses_total", "outcome" => "download_failed").increment(1);
            let n = image.number;
            serenity::EditInteractionResponse::new().content(match e {
                DownloadError::TooLarge { .. } => {
                    format!("Image {n} is larger than this server's upload limit; open it in the result above.")
                }
                _ => format!("I could not fetch image {n} from Discord just now. Please press U{n} again in a minute."),
            })
        }
    };
    let edit = edit.allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = press.edit_response(&ctx.http, edit).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not post the pressed image");
    }
}

/// Answers the press privately; failures to do so are only logged.
async fn answer_privately(ctx: &serenity::Context, press: &serenity::ComponentInteraction, text: String) {
    let answer = serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    );
    if let Err(e) = press.create_response(&ctx.http, answer).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not answer a press");
    }
}
