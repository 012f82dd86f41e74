//! New jobs from a result's buttons: `V<n>`, Reroll, and the submit of the Remix modal.
//!
//! The member who pressed owns the new job and pays for it: it goes through the same reservation
//! as `/imagine` (their roles, their per-member limits, the guild's limits and budget, the
//! operator's spend limit), keyed by the press's interaction id so that a press dispatched twice
//! makes one job. The answer to the press is the new job's own public reply, which the worker then
//! edits like any `/imagine` reply. Nothing here waits on the provider.

use anyhow::Context as _;
use chrono::Utc;
use poise::serenity_prelude as serenity;
use uuid::Uuid;

use super::{
    Data,
    actions::{self as press, Pressed},
    imagine::{TOKEN_LIFETIME, first_blocked, replied, reserve},
};
use crate::{
    actions::Action,
    db::jobs::NewJob,
    error::UserError,
    imagine,
    render::{self, Stage},
};

/// Starts the job a V or Reroll press, or a Remix submit (`remix` holds the typed prompt), asks for.
pub(super) async fn start(
    ctx: &serenity::Context,
    data: &Data,
    pressed: &Pressed<'_>,
    remix: Option<&str>,
) -> anyhow::Result<()> {
    super::provider_admits_new_jobs(data)?;
    // The job, the settings and the reservation are read and written in one transaction: a
    // refusal rolls it back, so nothing is created or counted.
    let mut tx = data.pool.begin().await.context("starting the reservation")?;
    let (button, parent, settings) = press::check(&mut tx, pressed).await?;
    let message = pressed.message.ok_or(UserError::UnknownButton)?;
    let pictures = press::pictures(message, &parent, button.action)?;

    let mut notes = vec![origin_note(button.action, pressed, message)];
    let (prompt_raw, args) = match (button.action, remix) {
        (Action::Remix, Some(text)) => {
            if text.trim().is_empty() {
                return Err(UserError::Input("Type a prompt for the remix; it cannot be empty.".into()).into());
            }
            let prepared = imagine::remix(text, &parent.args, &pictures).map_err(UserError::Input)?;
            notes.extend(prepared.notes);
            (text.to_owned(), prepared.args)
        }
        (Action::Vary(_) | Action::Reroll, None) => {
            let mut args = parent.args.0.clone();
            args.image_urls = pictures.images;
            args.style_image_urls = pictures.style;
            args.omni_image_url = pictures.omni;
            (parent.prompt_sent.clone(), args)
        }
        // A Remix press opens the modal, and a modal only ever carries a Remix id.
        _ => return Err(UserError::UnknownButton.into()),
    };
    // What a Remix typed, and what would be sent: what is kept from the original job is checked
    // too, since the server may have blocked a word after it ran.
    let texts =
        [("prompt", remix), ("prompt", Some(&args.prompt)), ("negative prompt", args.negative_prompt.as_deref())];
    if let Some(refusal) = first_blocked(&settings, texts) {
        return Err(refusal.into());
    }

    let now = Utc::now();
    let id = Uuid::new_v4();
    let job = NewJob {
        id,
        interaction_id: pressed.id.get() as i64,
        application_id: pressed.application_id.get() as i64,
        guild_id: parent.guild_id,
        channel_id: pressed.channel_id.get() as i64,
        user_id: pressed.user_id.get() as i64,
        interaction_token: pressed.token.to_owned(),
        token_expires_at: now + TOKEN_LIFETIME,
        attachment_size_limit: i64::from(pressed.attachment_size_limit),
        prompt_raw,
        args,
        notes,
        callback_secret: data.callback_key.secret(id),
        origin: Some((button.job, button.action.label())),
    };
    let member_roles = super::member_roles(pressed.member);
    if !reserve(data, tx, &job, &member_roles, now).await? {
        return Ok(());
    }
    metrics::counter!("imagine_presses_total", "outcome" => "job").increment(1);

    let rendered = render::job_message(&job.args, &job.notes, &Stage::Queued, &[], "https://discord.com");
    let reply = serenity::CreateInteractionResponseMessage::new()
        .content(rendered.content)
        .embeds(rendered.embeds)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    let sent = pressed.respond(ctx, serenity::CreateInteractionResponse::Message(reply)).await;
    replied(data, job.id, sent).await;
    Ok(())
}

/// The first note of a job made from a button: what it is, where it came from, who asked.
fn origin_note(action: Action, pressed: &Pressed<'_>, message: &serenity::Message) -> String {
    let what = match action {
        Action::Vary(n) => format!("Variation of image {n}"),
        Action::Reroll => "Reroll".to_owned(),
        _ => "Remix".to_owned(),
    };
    let guild = pressed.guild_id.map_or(0, |g| g.get());
    format!(
        "{what} of [this result](https://discord.com/channels/{guild}/{}/{}), for <@{}>.",
        message.channel_id, message.id, pressed.user_id
    )
}
