//! Delivery I/O: downloading a job's results and sending its messages to Discord (progress edits
//! and the final message). Decisions about the job's state are made in `lifecycle`; this module
//! only performs the requests and reports what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, error, info, warn};

use super::lifecycle::{self, Timing};
use crate::{
    actions::{self, SourceFile},
    db::{
        DiscordId,
        jobs::{self as store, Delivery, Job, JobStatus},
    },
    discord::{self, DiscordRest, SendError, Upload},
    image_budget::{ImageBudget, Reservation},
    provider::{self, DownloadError},
    render::{self, Stage},
    spec::Pictures,
};

/// Stop editing the reply this long before the interaction token expires.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// Discord takes at most ten files per message.
const MAX_FILES: usize = 10;
/// How long to wait before fetching a source picture a second time.
const SOURCE_RETRY_AFTER: Duration = Duration::from_secs(1);
/// A Discord link handed to the provider, or downloaded, must work at least this much longer;
/// one that expires sooner is renewed first.
const LINK_MARGIN: chrono::Duration = chrono::Duration::hours(1);

pub struct Deliverer {
    pub discord: DiscordRest,
    pub downloads: reqwest::Client,
    pub max_result_image_bytes: u64,
    pub progress_edit_interval: Duration,
    /// The database's clock: every time compared with a stored one is on it.
    pub clock: super::clock::DbClock,
    /// Bytes of images this process may hold at once, shared with the U presses.
    pub image_budget: ImageBudget,
    /// The log channel's notices and the follow-up ping of long jobs.
    pub notices: crate::notices::Notices,
}

impl Deliverer {
    /// Whether a progress edit of the reply may be made now: the token lives, and the last edit
    /// is at least the configured interval old.
    pub fn progress_edit_due(&self, job: &Job) -> bool {
        let now = self.clock.now();
        reply_token(job, now).is_some()
            && job.last_edit_at.is_none_or(|t| (now - t).to_std().unwrap_or_default() >= self.progress_edit_interval)
    }

    /// Updates the reply with the job's progress, no more often than the configured interval, and
    /// only when what it shows changed (state, place, likely-ready time, progress in steps).
    /// `typical`: how long jobs like this one take, once measured.
    pub async fn edit_progress(&self, job: &mut Job, typical: Option<Duration>) {
        let now = self.clock.now();
        if !self.progress_edit_due(job) {
            return;
        }
        let Some(token) = reply_token(job, now) else { return };
        let stage = super::outlook::stage(job, typical, now);
        let mut message = render::job_message(&job.spec, &job.notes, &stage, &[], &gallery_url(job));
        // Not sent yet: it can still be cancelled. Any later edit drops the button.
        if job.status == JobStatus::Queued {
            message.components = actions::cancel_buttons(job.id);
        }
        if job.last_edit_text.as_deref() == Some(message.content.as_str()) {
            return;
        }
        let token = token.to_owned();
        let outcome = self.discord.edit_reply(job.application_id.get(), &token, &message, &[]).await;
        if let Err(e) = &outcome {
            debug!(error = %e, "progress edit skipped");
        }
        lifecycle::on_progress_edit(job, outcome.map(|id| (id, message.content)), now);
    }

    /// Shows in the reply that member `by` cancelled the job: a progress edit of this copy may have
    /// landed after the cancel's own answer, and must not stay over it.
    pub async fn show_cancelled(&self, job: &Job, by: u64) {
        let Some(token) = reply_token(job, self.clock.now()) else { return };
        let message = render::job_message(&job.spec, &job.notes, &Stage::Cancelled { by }, &[], &gallery_url(job));
        if let Err(e) = self.discord.edit_reply(job.application_id.get(), token, &message, &[]).await {
            warn!(error = %e, "could not show the cancel again after a progress edit");
        }
    }

    /// Sends the final message (results or failure), or reports why it could not be sent. The
    /// results are downloaded once: when Discord does not take them, they are kept in the
    /// database, and every later attempt (in any process) uploads the kept bytes, so a Discord
    /// outage that outlives the provider's short-lived links loses nothing.
    pub async fn deliver(&self, job: &mut Job, pool: &sqlx::PgPool, timing: &Timing) {
        let declined = job.status.declined_by_moderation(job.error_text.as_deref());
        let mut uploads = Vec::new();
        let mut linked = Vec::new();
        let mut sources = Vec::new();
        // Held until the message is sent: the images of this delivery count against the budget.
        let mut reservation = None;
        if job.status == JobStatus::Succeeded {
            reservation = Some(self.reserve_images(job).await);
            let results =
                if job.images_kept { self.kept_images(job, pool).await } else { self.fetch_images(job).await };
            match results {
                Ok((files, too_large)) => {
                    uploads = files;
                    linked = too_large;
                }
                Err(ResultsError::Download(reason)) => {
                    warn!(%reason, attempts = job.delivery_attempts + 1, "could not download the results");
                    lifecycle::on_download_failed(job, self.clock.now(), timing);
                    return;
                }
                Err(ResultsError::Database(e)) => {
                    warn!(error = %e, "could not read the kept results; trying again");
                    lifecycle::on_delivery(
                        job,
                        Err(SendError::Transient("kept results unreadable".into())),
                        self.clock.now(),
                        timing,
                    );
                    return;
                }
            }
        } else if job.status.retryable() && (!declined || reply_token(job, self.clock.now()).is_some()) {
            // Kept with the failure as with a result: Retry (or, privately, the owner's Remix
            // of a declined job, while its token lives) brings them back with freshly signed
            // links.
            reservation = Some(self.reserve_images(job).await);
        }
        if reservation.is_some() {
            sources = self.fetch_sources(job).await;
            if let Some(reservation) = &mut reservation {
                // What was reserved for the worst case, and not needed, goes back at once.
                let held: usize = uploads.iter().chain(&sources).map(|u| u.bytes.len()).sum();
                reservation.shrink_to(held as u64);
            }
            // Room for the sources before any result beyond the fourth (those have no buttons).
            while uploads.len() + sources.len() > MAX_FILES && uploads.len() > usize::from(actions::MAX_IMAGES) {
                linked.push(uploads.pop().expect("more than four").source_url);
            }
            sources.truncate(MAX_FILES.saturating_sub(uploads.len()));
        }
        // Moderation may have declined the pictures themselves: they go to the owner only.
        let private_sources = if declined { std::mem::take(&mut sources) } else { Vec::new() };
        // The token is spent once the job is delivered; the owner's private message needs it.
        let token = job.interaction_token.clone();

        let sent = loop {
            let message = final_message(job, &uploads, &sources, &linked);
            let files: Vec<&Upload> = uploads.iter().chain(&sources).collect();
            let result = self.send_final(job, &message, &files).await;
            if result == Err(SendError::TooLarge) && !files.is_empty() {
                // Drop the largest file (a result before a source of the same size), then try
                // again: a result is linked instead; a source is left out (a press then uses the
                // job's own link while it lives).
                let is_result = |i: usize| i < uploads.len();
                let largest =
                    (0..files.len()).max_by_key(|&i| (files[i].bytes.len(), is_result(i))).expect("not empty");
                if is_result(largest) {
                    linked.push(uploads.remove(largest).source_url);
                } else {
                    sources.remove(largest - uploads.len());
                }
                continue;
            }
            break result;
        };
        match &sent {
            Ok((route, _)) => info!(route = route.as_str(), "job delivered"),
            Err(SendError::RateLimited(wait)) => info!(?wait, "delivery rate limited; waiting as Discord asked"),
            Err(e) => warn!(error = %e, attempts = job.delivery_attempts + 1, "delivery failed"),
        }
        if let (true, Ok((Delivery::Edit, _)), Some(token)) = (declined, &sent, &token) {
            self.tell_owner_why_declined(job, token, &private_sources).await;
        }
        drop(reservation);
        lifecycle::on_delivery(job, sent, self.clock.now(), timing);
        if let Some(route) = job.delivery {
            metrics::counter!("imagine_deliveries_total", "route" => route.as_str()).increment(1);
        }
        match job.delivery {
            Some(Delivery::Edit | Delivery::Channel) => {
                if job.images_kept
                    && let Err(e) = store::forget_images(pool, job.id).await
                {
                    debug!(error = %e, "could not drop the kept images of a delivered job");
                }
            }
            // Not taken yet, or never: keep the images, for the next attempt or for /history.
            _ if !job.images_kept && !uploads.is_empty() => self.keep_images(job, pool, uploads).await,
            _ => {}
        }
    }

    /// Tells the owner of a job moderation declined why, privately through the job's interaction
    /// token, with a Remix button and the job's sources (the Remix works on those). Best effort:
    /// when the token has expired (the job was posted in the channel) or Discord refuses, the
    /// reason stays in the owner's `/history`.
    async fn tell_owner_why_declined(&self, job: &Job, token: &str, sources: &[Upload]) {
        let reason = job.error_text.as_deref().unwrap_or_default();
        let message = render::Rendered {
            content: render::declined_privately(reason),
            embeds: Vec::new(),
            components: actions::declined_buttons(job.id),
        };
        let mut files: Vec<&Upload> = sources.iter().collect();
        let sent = loop {
            match self.discord.private_followup(job.application_id.get(), token, &message, &files).await {
                // Without the pictures, the Remix uses the job's own links while they live.
                Err(SendError::TooLarge) if !files.is_empty() => files.clear(),
                sent => break sent,
            }
        };
        match sent {
            Ok(_) => info!("told the owner privately why the job was declined"),
            Err(e) => warn!(error = %e, "could not tell the owner why the job was declined; /history has it"),
        }
    }

    /// Reserves room for the largest images this delivery may hold (every result and every
    /// source at the download cap), waiting for it if other deliveries or presses hold too much.
    /// A delivery larger than the whole budget waits for all of it, so it runs alone.
    async fn reserve_images(&self, job: &Job) -> Reservation {
        let pictures = job.result_urls.len() + job.spec.pictures.urls().count();
        self.image_budget.reserve_up_to(self.download_cap(job).saturating_mul(pictures as u64)).await
    }

    /// The most bytes one downloaded picture of this job may have.
    fn download_cap(&self, job: &Job) -> u64 {
        self.max_result_image_bytes.min(u64::try_from(job.attachment_size_limit).unwrap_or(0))
    }

    /// Stores the downloaded results, so that later attempts (and `/history`) need no download.
    async fn keep_images(&self, job: &mut Job, pool: &sqlx::PgPool, uploads: Vec<Upload>) {
        let prefix = job.id.simple().to_string();
        let images: Vec<(String, bytes::Bytes)> =
            uploads.into_iter().map(|u| (format!("{}-{}", &prefix[..KEPT_PREFIX], u.filename), u.bytes)).collect();
        match store::save_images(pool, job.id, &images).await {
            Ok(()) => job.images_kept = true,
            Err(e) => error!(error = %e, "could not keep a job's result images; a retry downloads them again"),
        }
    }

    /// The results kept by an earlier attempt, as [`Deliverer::fetch_images`] returns them.
    async fn kept_images(&self, job: &Job, pool: &sqlx::PgPool) -> Result<(Vec<Upload>, Vec<String>), ResultsError> {
        let kept = store::kept_images(pool, job.id).await.map_err(ResultsError::Database)?;
        let uploads: Vec<Upload> = kept
            .into_iter()
            .filter_map(|(stored_name, bytes)| {
                let filename = stored_name.get(KEPT_PREFIX + 1..)?.to_owned();
                let number = usize::from(actions::image_number(&filename)?);
                let source_url = job.result_urls.get(number.checked_sub(1)?)?.clone();
                Some(Upload { filename, bytes: bytes.into(), source_url })
            })
            .collect();
        let linked =
            job.result_urls.iter().filter(|url| !uploads.iter().any(|u| &u.source_url == *url)).cloned().collect();
        Ok((uploads, linked))
    }

    /// Edits the reply while its token is valid, else posts in the channel.
    async fn send_final(
        &self,
        job: &Job,
        message: &render::Rendered,
        uploads: &[&Upload],
    ) -> Result<(Delivery, u64), SendError> {
        if let Some(token) = reply_token(job, self.clock.now()) {
            match self.discord.edit_reply(job.application_id.get(), token, message, uploads).await {
                Ok(id) => return Ok((Delivery::Edit, id)),
                Err(SendError::ReplyGone(why)) => info!(%why, "reply can no longer be edited; posting in the channel"),
                Err(e) => return Err(e),
            }
        }
        self.discord
            .post_in_channel(
                job.channel_id.get(),
                job.user_id.get(),
                job.message_id.map(DiscordId::get),
                &job.id.simple().to_string()[..25],
                message,
                uploads,
            )
            .await
            .map(|id| (Delivery::Channel, id))
    }

    /// Renews the Discord links among `pictures` that expire within [`LINK_MARGIN`], so that
    /// every link the provider is given works when it is sent. A link Discord does not renew (or a
    /// failed renewal) is left as it was: the provider then fails the job on it, refunded.
    pub async fn refresh_links(&self, pictures: &mut Pictures) {
        let soon = (Utc::now() + LINK_MARGIN).timestamp();
        let expiring: Vec<String> =
            pictures.urls().filter(|url| discord::link_expires_at(url).is_some_and(|ex| ex < soon)).cloned().collect();
        if expiring.is_empty() {
            return;
        }
        match self.discord.refresh_urls(&expiring).await {
            Ok(fresh) => {
                for url in pictures.urls_mut() {
                    if let Some(renewed) = fresh.get(url.as_str()) {
                        *url = renewed.clone();
                    }
                }
                info!(expiring = expiring.len(), renewed = fresh.len(), "renewed expiring picture links");
            }
            Err(e) => warn!(error = %e, expiring = expiring.len(), "could not renew expiring picture links"),
        }
    }

    /// Downloads the job's own pictures (sources, then references) to upload them again beside
    /// the results, so that the result message keeps them alive for V, Reroll and Remix. Best
    /// effort, picture by picture: one that cannot be fetched (after one retry) or is larger than
    /// the message may carry is left out, and a press then falls back to the job's own link.
    async fn fetch_sources(&self, job: &Job) -> Vec<Upload> {
        let mut pictures = job.spec.pictures.clone();
        self.refresh_links(&mut pictures).await;
        let named = pictures
            .images
            .iter()
            .zip(1..)
            .map(|(url, number)| (SourceFile::Image(number), url))
            .chain(pictures.style.iter().zip(1..).map(|(url, number)| (SourceFile::Style(number), url)))
            .chain(pictures.omni.iter().map(|url| (SourceFile::Omni, url)));
        let cap = self.download_cap(job);
        let mut uploads = Vec::new();
        // One at a time: at most one picture is being downloaded at once.
        for (source, url) in named {
            let mut fetched = provider::download(&self.downloads, url, cap).await;
            if matches!(fetched, Err(DownloadError::Failed(_))) {
                tokio::time::sleep(SOURCE_RETRY_AFTER).await;
                fetched = provider::download(&self.downloads, url, cap).await;
            }
            match fetched {
                Ok((bytes, content_type)) => uploads.push(Upload {
                    filename: source.file_name(extension(content_type.as_deref(), url)),
                    bytes: bytes.into(),
                    source_url: url.clone(),
                }),
                Err(e) => warn!(error = %e, ?source, "one of the job's pictures is not uploaded again with it"),
            }
        }
        uploads
    }

    /// Downloads every result image, each capped at the smaller of the download cap and this
    /// interaction's upload limit (a bigger one could not be uploaded, so it is linked, never
    /// downloaded whole). Images redirected to another host are linked too.
    async fn fetch_images(&self, job: &Job) -> Result<(Vec<Upload>, Vec<String>), ResultsError> {
        let cap = self.download_cap(job);
        let downloads = job.result_urls.iter().map(|url| provider::download(&self.downloads, url, cap));
        let results = futures::future::join_all(downloads).await;
        let mut uploads = Vec::new();
        let mut linked = Vec::new();
        for (i, (url, result)) in job.result_urls.iter().zip(results).enumerate() {
            match result {
                Ok((bytes, content_type)) => {
                    if i64::try_from(bytes.len()).map_or(true, |len| len > job.attachment_size_limit)
                        || uploads.len() >= MAX_FILES
                    {
                        linked.push(url.clone());
                    } else {
                        let filename = file_name(i, content_type.as_deref(), url);
                        uploads.push(Upload { filename, bytes: bytes.into(), source_url: url.clone() });
                    }
                }
                Err(e @ (DownloadError::TooLarge { .. } | DownloadError::Redirected)) => {
                    warn!(error = %e, "result image not downloaded; linking it");
                    linked.push(url.clone());
                }
                Err(e) => return Err(ResultsError::Download(e)),
            }
        }
        Ok((uploads, linked))
    }
}

/// Why a job's results could not be had for a delivery attempt.
enum ResultsError {
    /// Downloading them from the provider failed (and none were kept yet).
    Download(DownloadError),
    /// Reading the kept ones failed.
    Database(sqlx::Error),
}

/// Kept images are stored as `<first 8 hex digits of the job id>-<file name>`, so that `/history`,
/// which attaches several jobs' images, gives each file a name of its own.
const KEPT_PREFIX: usize = 8;

/// The interaction token while the reply can still be edited with it.
fn reply_token(job: &Job, now: DateTime<Utc>) -> Option<&str> {
    job.interaction_token.as_deref().filter(|_| job.acked_at.is_some() && now + TOKEN_MARGIN < job.token_expires_at)
}

fn file_name(index: usize, content_type: Option<&str>, url: &str) -> String {
    actions::image_file_name(index + 1, extension(content_type, url))
}

/// The file extension of a picture: from its type, else its URL, else `png`.
fn extension<'a>(content_type: Option<&str>, url: &'a str) -> &'a str {
    match content_type {
        Some("image/jpeg") => "jpg",
        Some("image/webp") => "webp",
        Some("image/gif") => "gif",
        Some("image/png") => "png",
        _ => url
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rsplit_once('.'))
            .map(|(_, e)| e)
            .filter(|e| matches!(*e, "png" | "jpg" | "jpeg" | "webp" | "gif"))
            .unwrap_or("png"),
    }
}

/// The final message of a job: its results with their buttons, or why it failed with Retry (a
/// moderation refusal: only that it was declined, no button; its owner is told why privately).
/// `sources` are the job's own pictures uploaded again; the first shows as the gallery's
/// thumbnail.
fn final_message(job: &Job, uploads: &[Upload], sources: &[Upload], linked: &[String]) -> render::Rendered {
    let declined = job.status.declined_by_moderation(job.error_text.as_deref());
    let stage = if job.status == JobStatus::Succeeded {
        let took = (job.finished_at.unwrap_or_else(Utc::now) - job.created_at).to_std().unwrap_or_default();
        Stage::Done { took, amount: job.amount, images: job.result_urls.len(), linked: linked.to_vec() }
    } else if declined {
        Stage::Declined
    } else {
        Stage::Failed { reason: job.error_text.clone().unwrap_or_else(|| "Something went wrong.".into()) }
    };
    let files: Vec<String> = uploads.iter().map(|u| u.filename.clone()).collect();
    let mut message = render::job_message(&job.spec, &job.notes, &stage, &files, &gallery_url(job));
    let numbers: Vec<u8> = files.iter().filter_map(|f| actions::image_number(f)).collect();
    if job.status == JobStatus::Succeeded {
        message.components = actions::result_buttons(job.id, &numbers);
    } else if job.status.retryable() && !declined {
        message.components = actions::retry_buttons(job.id);
    }
    if let (Some(first), Some(embed)) = (sources.first(), message.embeds.first_mut()) {
        *embed = embed.clone().thumbnail(format!("attachment://{}", first.filename));
    }
    message
}

/// Groups a job's image embeds into one gallery.
fn gallery_url(job: &Job) -> String {
    format!("https://discord.com/channels/{}/{}#imagine-{}", job.guild_id, job.channel_id, job.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_files_are_named_by_type() {
        assert_eq!(file_name(0, Some("image/jpeg"), "https://x/a"), "imagine-1.jpg");
        assert_eq!(file_name(1, None, "https://x/b.webp?sig=1"), "imagine-2.webp");
        assert_eq!(file_name(2, Some("application/octet-stream"), "https://x/c"), "imagine-3.png");
    }
}
