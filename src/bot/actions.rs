//! Presses on the buttons under a delivered result (`U1`–`U4`, `V1`–`V4`, Reroll, Remix, Delete),
//! under a failed one (Retry), on `Cancel` under a job not sent yet, and the submit of the Remix
//! modal: each is decoded once (see [`super::press`]) and routed once.
//!
//! Nothing a press needs lives in memory, so buttons work after restarts and days later. A bad
//! press is answered privately and creates nothing (see [`super::report`]). `U<n>` posts an image
//! (see [`super::upscale`]); V, Reroll, Retry and a Remix submit take the one road to a job (see
//! [`super::create`]); Remix first opens a modal; Cancel and Delete are the member's controls (see
//! [`super::controls`]).

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::{Instrument, info, warn};

use super::{
    Data, Error,
    create::{self, Origin, Variation},
    interaction::Interaction,
    press,
    report::{self, Asked},
};
use crate::{
    actions::{self, Action, Press},
    db,
    imagine::MAX_PROMPT_CHARS,
    render,
    words::{self, UserError},
};

/// The text input of the Remix modal.
const REMIX_INPUT: &str = "prompt";

/// Answers a button press.
pub async fn on_press(ctx: &serenity::Context, data: &Data, press: &serenity::ComponentInteraction) {
    let asked = Interaction::press(press);
    let outcome = async {
        let button = press::decode(&asked, &press.data.custom_id)?;
        let variation = match button.action {
            Action::Upscale(number) => return super::upscale::press(ctx, data, press, &asked, button, number).await,
            Action::Remix => return open_remix(ctx, data, &asked, button).await,
            Action::Cancel => return super::controls::cancel(ctx, data, &asked, button).await,
            Action::Delete => return super::controls::delete(ctx, data, press, &asked, button).await,
            // Remix mode (`/prefs remix`): the member edits the prompt before the job is made.
            Action::Vary(_) | Action::Reroll if in_remix_mode(data, &asked).await? => {
                return open_remix(ctx, data, &asked, button).await;
            }
            Action::Vary(number) => Variation::Vary(number),
            Action::Reroll => Variation::Reroll,
            Action::Retry => Variation::Retry,
        };
        create::create(ctx, data, &asked, Origin::Press { parent: button.job, action: variation }).await
    };
    answered(ctx, &asked, outcome).instrument(span("button", &press.data.custom_id, &asked)).await
}

/// Answers the submit of a Remix modal: the typed prompt becomes a new job.
pub async fn on_remix(ctx: &serenity::Context, data: &Data, submit: &serenity::ModalInteraction) {
    let asked = Interaction::remix(submit);
    let prompt = submit
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .find_map(|c| match c {
            serenity::ActionRowComponent::InputText(input) if input.custom_id == REMIX_INPUT => input.value.clone(),
            _ => None,
        })
        .unwrap_or_default();
    let outcome = async {
        let button = press::decode(&asked, &submit.data.custom_id)?;
        // The modal carries the id of the button that opened it: Remix, or V and Reroll in remix
        // mode. A V stays a V (on its image) under the edited prompt.
        let action = match button.action {
            Action::Remix | Action::Reroll => Variation::Remix { prompt },
            Action::Vary(number) => Variation::VaryRemixed { number, prompt },
            Action::Upscale(_) | Action::Retry | Action::Cancel | Action::Delete => {
                return Err(UserError::UnknownButton.into());
            }
        };
        create::create(ctx, data, &asked, Origin::Press { parent: button.job, action }).await
    };
    answered(ctx, &asked, outcome).instrument(span("remix", &submit.data.custom_id, &asked)).await
}

fn span(kind: &'static str, custom_id: &str, asked: &Interaction<'_>) -> tracing::Span {
    tracing::info_span!(
        "press",
        kind,
        custom_id = %render::truncate(custom_id, 100),
        guild_id = asked.guild_id.map(|g| g.get()),
        user_id = asked.user_id.get()
    )
}

/// Waits for a press's `outcome`; a refusal or a failure is answered privately through the one
/// reporter. Failures to answer are only logged.
async fn answered(ctx: &serenity::Context, asked: &Interaction<'_>, outcome: impl Future<Output = Result<(), Error>>) {
    let Err(error) = outcome.await else { return };
    let answer = serenity::CreateInteractionResponse::Message(
        serenity::CreateInteractionResponseMessage::new()
            .content(report::answer(&error, Asked::Press))
            .ephemeral(true)
            .allowed_mentions(serenity::CreateAllowedMentions::new()),
    );
    if let Err(e) = asked.respond(ctx, answer).await {
        warn!(error = %e, "could not answer a press");
    }
}

/// Whether the member pressing turned remix mode on (`/prefs remix`).
async fn in_remix_mode(data: &Data, asked: &Interaction<'_>) -> Result<bool, Error> {
    let prefs = db::prefs::load(&data.pool, asked.user_id.into()).await.context("reading the member's preferences")?;
    Ok(prefs.remix)
}

/// Answers a Remix press (or, in remix mode, a V or Reroll press) with a modal holding the prompt
/// as it was sent, ready to edit; the modal carries the pressed button's id.
async fn open_remix(ctx: &serenity::Context, data: &Data, asked: &Interaction<'_>, button: Press) -> Result<(), Error> {
    let mut conn = data.pool.acquire().await.context("reading the pressed job")?;
    let (job, _) = press::check(&mut conn, asked, button).await?;
    // The submit's reservation refuses a blocked member anyway; refused here, they are not asked
    // to type a prompt first.
    let member = db::members::state(&mut *conn, job.guild_id, asked.user_id.into())
        .await
        .context("reading the member's controls")?;
    if member.blocked.is_some() {
        return Err(UserError::MemberBlocked.into());
    }
    drop(conn);
    // Refused here rather than after the member typed a new prompt.
    press::pictures(asked.message.ok_or(UserError::UnknownButton)?, &job, button.action)?;
    let prefill: String = job.prompt_sent.chars().take(MAX_PROMPT_CHARS).collect();
    let input =
        serenity::CreateInputText::new(serenity::InputTextStyle::Paragraph, words::REMIX_PROMPT_LABEL, REMIX_INPUT)
            .value(prefill)
            .min_length(1)
            .max_length(u16::try_from(MAX_PROMPT_CHARS).expect("the prompt limit is below Discord's 4000"))
            .required(true);
    let title = match button.action {
        Action::Vary(number) => words::remix_vary(number),
        _ => Action::Remix.label(),
    };
    let modal = serenity::CreateModal::new(actions::custom_id(button.job, button.action), title)
        .components(vec![serenity::CreateActionRow::InputText(input)]);
    match asked.respond(ctx, serenity::CreateInteractionResponse::Modal(modal)).await {
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
