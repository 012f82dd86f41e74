//! `U<n>` presses: result image n posted alone, as an uploaded file, in the public answer to the
//! press. No provider call and nothing counted, so nothing but this module bounds what a flood of
//! presses costs: each member may post [`RateLimit::count`] images per window, a process serves
//! at most [`MAX_IN_FLIGHT`] presses at once, and the images they hold stay within the process's
//! [`ImageBudget`]. All are decided before the press is acknowledged, so a press beyond them is
//! refused privately at once and never waits in a queue.
//!
//! The counts are per process. Every process on a shard sees every press and counts each valid
//! one it has a place for, so their counts agree unless one was busy; of their answers, Discord
//! takes the first (see [`post`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::{
    Data,
    interaction::Interaction,
    press::{check, result_image},
};
use crate::{
    actions::Press,
    config::RateLimit,
    db::jobs::PressedJob,
    image_budget::{ImageBudget, OverBudget, Reservation},
    provider::{self, DownloadError},
    render,
    words::{self, UserError},
};

/// U presses one process serves at the same time (downloading, then uploading the image).
pub const MAX_IN_FLIGHT: usize = 8;

/// What bounds U presses in this process.
pub struct Upscales {
    rate: RateLimit,
    recent: Mutex<RecentPresses>,
    in_flight: Arc<Semaphore>,
    budget: ImageBudget,
}

/// One of the [`MAX_IN_FLIGHT`] places for a U press, held until it is dropped.
pub(super) struct Place {
    _permit: OwnedSemaphorePermit,
}

impl Upscales {
    pub fn new(rate: RateLimit, budget: ImageBudget) -> Self {
        Upscales {
            rate,
            recent: Mutex::new(RecentPresses::default()),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            budget,
        }
    }

    /// A place for a press of `U<number>`, or a refusal at once when every place is taken.
    fn place(&self, number: u8) -> Result<Place, UserError> {
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("imagine_presses_total", "outcome" => "upscale_busy").increment(1);
            UserError::UpscalesBusy(number)
        })?;
        Ok(Place { _permit: permit })
    }

    /// Room in the budget for `image`, or a refusal at once.
    fn room_for(&self, image: &SingleImage) -> Result<Reservation, UserError> {
        self.budget.try_reserve(image.expected_bytes).map_err(|over| {
            metrics::counter!("imagine_presses_total", "outcome" => "upscale_over_budget").increment(1);
            match over {
                OverBudget::Busy => UserError::UpscalesBusy(image.number),
                OverBudget::LargerThanBudget => {
                    UserError::TooLargeToPost { number: image.number, result: image.result_link.clone() }
                }
            }
        })
    }

    /// Counts a valid press against its member, or refuses it with the wait.
    fn count(&self, asked: &Interaction<'_>) -> Result<(), UserError> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.admit(self.rate, asked.user_id.get(), asked.id.get(), Instant::now()).map_err(|wait| {
            metrics::counter!("imagine_presses_total", "outcome" => "upscale_too_fast").increment(1);
            UserError::PressingTooFast { retry_after_secs: whole_seconds(wait) }
        })
    }
}

/// `wait` in whole seconds, rounded up, at least 1: waiting that long is always enough.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The U presses each member made within the last window: when, and which interaction.
#[derive(Default)]
struct RecentPresses {
    by_member: HashMap<u64, VecDeque<(Instant, u64)>>,
    /// Members are swept out once the map reaches this size, so it stays within the members who
    /// pressed in the last window (amortized: the threshold doubles with what is left).
    sweep_at: usize,
}

/// The smallest [`RecentPresses::sweep_at`].
const FIRST_SWEEP: usize = 64;

impl RecentPresses {
    /// Counts `interaction` by `member` at `now`, or says how long until they may press again. A
    /// press seen before (an interaction dispatched twice) is let through without counting again.
    fn admit(&mut self, rate: RateLimit, member: u64, interaction: u64, now: Instant) -> Result<(), Duration> {
        let in_window = |at: &Instant| now.saturating_duration_since(*at) < rate.per;
        if self.by_member.len() >= self.sweep_at {
            self.by_member.retain(|_, presses| presses.back().is_some_and(|(at, _)| in_window(at)));
            self.sweep_at = (self.by_member.len() * 2).max(FIRST_SWEEP);
        }
        let presses = self.by_member.entry(member).or_default();
        while presses.front().is_some_and(|(at, _)| !in_window(at)) {
            presses.pop_front();
        }
        if presses.iter().any(|(_, id)| *id == interaction) {
            return Ok(());
        }
        if let Some((oldest, _)) = presses.front().filter(|_| presses.len() >= rate.count as usize) {
            return Err(rate.per.saturating_sub(now.saturating_duration_since(*oldest)));
        }
        presses.push_back((now, interaction));
        Ok(())
    }
}

/// Answers a `U<number>` press: given a place, checked, counted, then posted (see [`post`]).
pub(super) async fn press(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    asked: &Interaction<'_>,
    button: Press,
    number: u8,
) -> anyhow::Result<()> {
    // Taken before the database is asked, so a flood is turned away without costing a
    // connection; a member is counted only for presses that would be served.
    let place = data.upscales.place(number)?;
    let mut conn = data.pool.acquire().await.context("reading the pressed job")?;
    let (job, _) = check(&mut conn, asked, button).await?;
    drop(conn);
    let image = single_image(press, &job, number)?;
    let reservation = data.upscales.room_for(&image)?;
    data.upscales.count(asked)?;
    post(ctx, data, press, image, place, reservation).await;
    Ok(())
}

/// What a valid `U<n>` press shows.
struct SingleImage {
    number: u8,
    url: String,
    filename: String,
    prompt: String,
    /// The most bytes its download may bring: its size as Discord gives it, within the upload
    /// limit of the press.
    expected_bytes: u64,
    /// The pressed result message, where the image can be opened when it is too large to post.
    result_link: String,
}

fn single_image(
    press: &serenity::ComponentInteraction,
    job: &PressedJob,
    number: u8,
) -> Result<SingleImage, UserError> {
    let attachment = result_image(&press.message, job, number)?;
    let upload_limit = u64::from(press.attachment_size_limit);
    Ok(SingleImage {
        number,
        url: attachment.url.clone(),
        filename: attachment.filename.clone(),
        prompt: job.prompt_sent.clone(),
        expected_bytes: match u64::from(attachment.size) {
            0 => upload_limit,
            size => size.min(upload_limit),
        },
        result_link: press.message.id.link(press.channel_id, press.guild_id),
    })
}

/// Acknowledges the press publicly, then fills the reply with the image alone. `place` and
/// `reservation` (the image's bytes) are held until the upload is done. A failure after the
/// public acknowledgement is told to the presser privately (see [`tell_privately`]).
async fn post(
    ctx: &serenity::Context,
    data: &Data,
    press: &serenity::ComponentInteraction,
    image: SingleImage,
    place: Place,
    mut reservation: Reservation,
) {
    let defer = serenity::CreateInteractionResponse::Defer(serenity::CreateInteractionResponseMessage::new());
    if let Err(e) = press.create_response(&ctx.http, defer).await {
        // Another process on the same shard (or a replay) was acknowledged first and posts the
        // image; this one does nothing more.
        info!(error = %crate::discord::classify_serenity(e), "the press was answered elsewhere");
        return;
    }
    let n = image.number;
    match provider::download(&data.downloads, &image.url, image.expected_bytes).await {
        Ok((bytes, _content_type)) => {
            reservation.shrink_to(bytes.len() as u64);
            let edit = serenity::EditInteractionResponse::new()
                .content(render::single_image_line(n, &image.prompt, press.user.id.get()))
                .new_attachment(serenity::CreateAttachment::bytes(bytes, image.filename))
                .allowed_mentions(serenity::CreateAllowedMentions::new());
            match press.edit_response(&ctx.http, edit).await {
                Ok(_) => metrics::counter!("imagine_presses_total", "outcome" => "upscale").increment(1),
                Err(e) => {
                    warn!(error = %crate::discord::classify_serenity(e), "could not post the pressed image");
                    let text = words::could_not_post_image(n);
                    tell_privately(ctx, press, text).await;
                }
            }
        }
        Err(e) => {
            warn!(error = %e, number = n, "could not fetch the pressed image");
            metrics::counter!("imagine_presses_total", "outcome" => "download_failed").increment(1);
            let text = match e {
                DownloadError::TooLarge { .. } => words::image_over_upload_limit(n, &image.result_link),
                _ => words::could_not_fetch_image(n),
            };
            tell_privately(ctx, press, text).await;
        }
    }
    drop((place, reservation));
}

/// Tells the presser why their publicly acknowledged press has no image, privately: the public
/// "thinking…" reply is deleted first, because the first follow-up after a public defer would
/// edit it (and stay public) instead of being a message of its own.
async fn tell_privately(ctx: &serenity::Context, press: &serenity::ComponentInteraction, text: String) {
    // Discord turns the first follow-up after a deferred answer into that answer, public whatever
    // its flags: the "thinking…" answer is resolved first (an edit), so that the follow-up is a
    // private message of its own, and only then removed.
    let resolve = serenity::EditInteractionResponse::new().content(words::ANSWERED_PRIVATELY);
    if let Err(e) = press.edit_response(&ctx.http, resolve).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not resolve the public answer to a press");
        return;
    }
    let followup = serenity::CreateInteractionResponseFollowup::new()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = press.create_followup(&ctx.http, followup).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not tell the presser what went wrong");
    }
    if let Err(e) = press.delete_response(&ctx.http).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not remove the public answer to a press");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: RateLimit = RateLimit { count: 3, per: Duration::from_secs(30) };
    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_member_gets_count_presses_per_window_then_the_wait_until_the_oldest_leaves_it() {
        let mut recent = RecentPresses::default();
        let start = Instant::now();
        for (i, at) in [0, 5, 6].into_iter().enumerate() {
            assert_eq!(recent.admit(RATE, 1, i as u64, start + at * SECOND), Ok(()));
        }
        assert_eq!(recent.admit(RATE, 1, 10, start + 10 * SECOND), Err(20 * SECOND));
        assert_eq!(recent.admit(RATE, 1, 11, start + 29 * SECOND), Err(SECOND), "refusals are not counted");
        assert_eq!(recent.admit(RATE, 2, 12, start + 29 * SECOND), Ok(()), "another member is not held back");
        assert_eq!(recent.admit(RATE, 1, 13, start + 30 * SECOND), Ok(()), "the first press left the window");
        assert_eq!(recent.admit(RATE, 1, 14, start + 31 * SECOND), Err(4 * SECOND));
        assert_eq!(recent.admit(RATE, 1, 15, start + 36 * SECOND), Ok(()));
    }

    #[test]
    fn a_press_dispatched_twice_is_counted_once() {
        let mut recent = RecentPresses::default();
        let start = Instant::now();
        assert_eq!(recent.admit(RATE, 1, 7, start), Ok(()));
        assert_eq!(recent.admit(RATE, 1, 7, start + SECOND), Ok(()), "the same interaction again");
        assert_eq!(recent.admit(RATE, 1, 8, start + SECOND), Ok(()));
        assert_eq!(recent.admit(RATE, 1, 9, start + SECOND), Ok(()));
        assert!(recent.admit(RATE, 1, 10, start + SECOND).is_err());
        assert_eq!(recent.admit(RATE, 1, 9, start + 2 * SECOND), Ok(()), "a replay of a counted press");
    }

    #[test]
    fn members_who_stopped_pressing_are_forgotten() {
        let mut recent = RecentPresses::default();
        let start = Instant::now();
        for member in 0..1000 {
            recent.admit(RATE, member, member, start).unwrap();
        }
        let later = start + RATE.per;
        for member in 1000..1100 {
            recent.admit(RATE, member, member, later).unwrap();
        }
        assert_eq!(recent.by_member.len(), 100, "only the members of the current window are kept");
    }

    #[test]
    fn waits_are_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::from_millis(3001)), 4);
    }
}
