//! A member's controls over their own job: `Cancel` under the reply of a job not sent yet, and
//! `Delete` under a delivered result. Either may be pressed by the member who started the job or
//! by a member with Manage Messages; anyone else is refused privately (see [`super::report`]).
//!
//! A cancel is decided by the database in one statement that only a `queued` job passes, against
//! the worker's fenced save of `submitting` (`db::jobs::cancel`): exactly one of them wins. The
//! press is answered by updating the reply itself (callback 7). A delete defers the update of the
//! result (callback 6), deletes that message through the press's token (`@original` is the message
//! carrying the button), then marks the job deleted: `/history` keeps its line without the link.

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::{error, info, warn};

use super::{Data, Error, interaction::Interaction};
use crate::{
    actions::Press,
    db::{
        self, DiscordId,
        jobs::{ControlledJob, JobStatus},
    },
    render::{self, Stage},
    words::{self, INTERNAL_ERROR, UserError},
};

/// Discord's "Unknown Message": the message is already gone.
const UNKNOWN_MESSAGE: isize = 10008;

/// Cancels the pressed job if it was not sent yet, and shows who cancelled it in its reply.
pub(super) async fn cancel(
    ctx: &serenity::Context,
    data: &Data,
    asked: &Interaction<'_>,
    button: Press,
) -> Result<(), Error> {
    let job = controlled(data, asked, button, "cancel").await?;
    let pressed_on = asked.message.map(|m| DiscordId::from(m.id));
    if job.message_id.is_some() && pressed_on != job.message_id {
        return Err(UserError::NotItsMessage.into());
    }
    let by = asked.user_id.get();
    let reason = words::cancelled_reason(by);
    let cancelled =
        db::jobs::cancel(&data.pool, button.job, by.into(), pressed_on, &reason).await.context("cancelling the job")?;
    let Some(cancelled) = cancelled else {
        // Not queued any more: the worker sent it first, or another press cancelled it.
        let now = db::jobs::for_control(&data.pool, button.job).await.context("reading the job again")?;
        return Err(not_cancellable(now.map_or(job.status, |j| j.status)).into());
    };
    info!(job_id = %button.job, "job cancelled");
    metrics::counter!("imagine_jobs_finished_total", "status" => JobStatus::Cancelled.as_sql()).increment(1);
    metrics::counter!("imagine_refunds_total").increment(1);
    metrics::counter!("imagine_presses_total", "outcome" => "cancelled").increment(1);
    let shown = render::job_message(&cancelled.spec, &cancelled.notes, &Stage::Cancelled { by }, &[], "");
    let update = serenity::CreateInteractionResponseMessage::new()
        .content(shown.content)
        .embeds(shown.embeds)
        .components(Vec::new())
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = asked.respond(ctx, serenity::CreateInteractionResponse::UpdateMessage(update)).await {
        // The job is cancelled either way; only its reply still shows it waiting.
        warn!(job_id = %button.job, error = %e, "could not show the cancel in the reply");
    }
    Ok(())
}

/// Why a job that is not queued cannot be cancelled.
fn not_cancellable(status: JobStatus) -> UserError {
    match status {
        JobStatus::Cancelled => UserError::AlreadyCancelled,
        JobStatus::Queued | JobStatus::Submitting | JobStatus::Submitted | JobStatus::Running => UserError::AlreadySent,
        JobStatus::Succeeded | JobStatus::Failed | JobStatus::TimedOut | JobStatus::Uncertain => {
            UserError::AlreadyFinished
        }
    }
}

/// Deletes the pressed result's message (its images and re-posted sources with it) and marks the
/// job deleted.
pub(super) async fn delete(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    asked: &Interaction<'_>,
    button: Press,
) -> Result<(), Error> {
    let job = controlled(data, asked, button, "delete").await?;
    if job.deleted {
        return Err(UserError::AlreadyDeleted.into());
    }
    if job.status != JobStatus::Succeeded || !job.delivered {
        return Err(UserError::NoImages.into());
    }
    if job.message_id.is_none() || asked.message.map(|m| DiscordId::from(m.id)) != job.message_id {
        return Err(UserError::NotItsMessage.into());
    }
    if let Err(e) = asked.respond(ctx, serenity::CreateInteractionResponse::Acknowledge).await {
        warn!(error = %e, "could not acknowledge a Delete press");
        return Ok(());
    }
    match press.delete_response(&ctx.http).await {
        Ok(()) => {}
        Err(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(r))) if r.error.code == UNKNOWN_MESSAGE => {
            info!(job_id = %button.job, "the result message was already gone");
        }
        Err(e) => {
            error!(job_id = %button.job, error = %crate::discord::classify_serenity(e), "could not delete a result");
            let calm = serenity::CreateInteractionResponseFollowup::new()
                .content(INTERNAL_ERROR)
                .ephemeral(true)
                .allowed_mentions(serenity::CreateAllowedMentions::new());
            if let Err(e) = press.create_followup(&ctx.http, calm).await {
                warn!(error = %crate::discord::classify_serenity(e), "could not answer a failed Delete press");
            }
            return Ok(());
        }
    }
    metrics::counter!("imagine_presses_total", "outcome" => "deleted").increment(1);
    match db::jobs::mark_deleted(&data.pool, button.job, asked.user_id.into()).await {
        Ok(_) => info!(job_id = %button.job, "result deleted"),
        // The message is gone; only `/history` still links to it.
        Err(e) => error!(job_id = %button.job, error = %e, "could not mark a deleted result"),
    }
    Ok(())
}

/// The pressed job, once the press passed what both controls require: a job of this server and
/// channel, pressed by the member who started it or by a member with Manage Messages.
async fn controlled(
    data: &Data,
    asked: &Interaction<'_>,
    button: Press,
    verb: &'static str,
) -> Result<ControlledJob, Error> {
    let guild_id = asked.guild_id.ok_or(UserError::GuildOnly)?;
    let job = db::jobs::for_control(&data.pool, button.job).await.context("reading the pressed job")?;
    let job = job.ok_or(UserError::JobGone)?;
    if job.guild_id != DiscordId::from(guild_id) {
        return Err(UserError::OtherServer.into());
    }
    if job.channel_id != DiscordId::from(asked.channel_id) {
        return Err(UserError::NotItsMessage.into());
    }
    let moderator = asked.member.and_then(|m| m.permissions).is_some_and(|p| p.manage_messages());
    if job.user_id != DiscordId::from(asked.user_id) && !moderator {
        return Err(UserError::NotYourJob(verb).into());
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_past_queued_says_why_it_cannot_be_cancelled() {
        assert_eq!(not_cancellable(JobStatus::Cancelled), UserError::AlreadyCancelled);
        for sent in [JobStatus::Submitting, JobStatus::Submitted, JobStatus::Running] {
            assert!(not_cancellable(sent).to_string().contains("paid for and will be delivered"));
        }
        assert_eq!(not_cancellable(JobStatus::Failed), UserError::AlreadyFinished);
    }
}
