//! How a job looks in Discord at each stage. Pure: builds text and embeds, sends nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use serenity::all::{CreateActionRow, CreateEmbed, CreateEmbedFooter};

use crate::{
    spec::{JobSpec, Performance, Source},
    words,
};

/// Discord's limit for an embed field value.
const FIELD_MAX: usize = 1024;
const ACCENT: u32 = 0x5865F2;
const SUCCESS: u32 = 0x3BA55C;
const FAILURE: u32 = 0xED4245;

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Queued,
    /// Accepted past the member's `max_concurrent`: it goes when one of their jobs finishes.
    WaitingForSlot {
        place: Option<i64>,
    },
    Submitted {
        outlook: Outlook,
    },
    Generating {
        outlook: Outlook,
        progress: Option<u8>,
    },
    Done {
        took: Duration,
        amount: Option<Decimal>,
        images: usize,
        linked: Vec<String>,
    },
    /// A failure, refunded; `reason` is a sentence for the user.
    Failed {
        reason: String,
    },
    /// The image service's moderation declined the job, refunded. Its reason goes to the owner
    /// only ([`declined_privately`]): the public reply does not repeat it.
    Declined,
    /// Stopped by member `by` before it was sent: never sent, refunded.
    Cancelled {
        by: u64,
    },
}

/// Where a job that is not done yet stands. Every part changes rarely, and Discord's own clock
/// renders the times, so the reply is edited only when one of them changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlook {
    /// Its place among this server's waiting jobs, while it waits.
    pub place: Option<i64>,
    /// When it was sent to the image service.
    pub sent_at: DateTime<Utc>,
    pub estimate: Estimate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimate {
    /// Too few jobs like it were measured yet.
    Unknown,
    LikelyReadyAt(DateTime<Utc>),
    /// The likely-ready time has passed.
    Overdue,
}

impl Outlook {
    fn describe(&self) -> String {
        let place = place_in_line(self.place);
        let estimate = match self.estimate {
            Estimate::Unknown => String::new(),
            Estimate::LikelyReadyAt(at) => words::likely_ready(at.timestamp()),
            Estimate::Overdue => words::TAKING_LONGER.to_owned(),
        };
        format!("{place}{}{estimate}", words::sent_at(self.sent_at.timestamp()))
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`.
fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A rendered message: one line of status, the embeds that carry the details (and, once done,
/// the gallery) and the buttons under it. `components` is always sent, empty included: an edit
/// that leaves it out keeps the message's old buttons.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub content: String,
    pub embeds: Vec<CreateEmbed>,
    pub components: Vec<CreateActionRow>,
}

/// The message for a job at `stage`. `gallery_url` groups the image embeds into one gallery;
/// images are referenced as `attachment://{file}`.
pub fn job_message(spec: &JobSpec, notes: &[String], stage: &Stage, files: &[String], gallery_url: &str) -> Rendered {
    let content = status_line(stage);
    let colour = match stage {
        Stage::Done { .. } => SUCCESS,
        Stage::Failed { .. } | Stage::Declined | Stage::Cancelled { .. } => FAILURE,
        _ => ACCENT,
    };
    let mut details = CreateEmbed::new().colour(colour).description(describe_prompt(spec)).field(
        words::SETTINGS,
        settings_line(spec),
        false,
    );
    details = details.field(words::REFERENCES, references_line(spec), false);
    if !notes.is_empty() {
        details = details.field(words::NOTES, truncate(&notes.join("\n"), FIELD_MAX), false);
    }
    if let Stage::Done { linked, .. } = stage
        && !linked.is_empty()
    {
        let links = linked.iter().zip(1..).map(|(u, n)| words::image_link(n, u)).collect::<Vec<_>>().join(" · ");
        details = details.field(words::TOO_LARGE_TO_UPLOAD, truncate(&links, FIELD_MAX), false);
    }
    details = details.footer(CreateEmbedFooter::new(words::FOOTER));

    let mut embeds = Vec::new();
    if files.is_empty() {
        embeds.push(details);
    } else {
        // Embeds that share a URL are shown by Discord as one gallery of up to four images.
        for (i, file) in files.iter().take(4).enumerate() {
            let image = format!("attachment://{file}");
            let embed = if i == 0 {
                details.clone().url(gallery_url).image(image)
            } else {
                CreateEmbed::new().url(gallery_url).image(image)
            };
            embeds.push(embed);
        }
    }
    Rendered { content, embeds, components: Vec::new() }
}

/// The line above a result image posted alone (the answer to a `U<n>` press): the image exactly
/// as generated, at full size, for the member who pressed.
pub fn single_image_line(number: u8, prompt: &str, user_id: u64) -> String {
    words::single_image(number, &truncate(&escape(prompt), 1500), user_id)
}

fn place_in_line(place: Option<i64>) -> String {
    place.map(|p| words::in_line(&ordinal(p))).unwrap_or_default()
}

pub fn status_line(stage: &Stage) -> String {
    match stage {
        Stage::Queued => words::QUEUED.into(),
        Stage::WaitingForSlot { place } => words::waiting_for_slot(&place_in_line(*place)),
        Stage::Submitted { outlook } => words::submitted(&outlook.describe()),
        Stage::Generating { outlook, progress } => words::generating(*progress, &outlook.describe()),
        Stage::Done { took, amount, images, .. } => words::done(&clock(*took), *images, *amount),
        Stage::Failed { reason } => words::failed(reason),
        Stage::Declined => words::DECLINED.into(),
        Stage::Cancelled { by } => words::cancelled(*by),
    }
}

/// What the owner of a job the image service's moderation declined is told privately: its
/// reason, and the Remix button beside it.
pub fn declined_privately(reason: &str) -> String {
    words::declined_privately(&truncate(reason, 1500))
}

fn describe_prompt(spec: &JobSpec) -> String {
    let mut text = words::prompt_line(&escape(&spec.prompt));
    if let Some(negative) = &spec.negative_prompt {
        text.push_str(&words::avoid_line(&escape(negative)));
    }
    truncate(&text, 4000)
}

/// The effective settings, defaults included, as one line; a value taken from the member's own
/// defaults says "(yours)", one from the server's "(server)".
pub fn settings_line(spec: &JobSpec) -> String {
    let from = |source: Source| match source {
        Source::Yours => words::FROM_YOURS,
        Source::ServerDefault => words::FROM_SERVER,
        _ => "",
    };
    let sources = &spec.sources;
    words::settings_values(
        &format!("{}{}", spec.aspect_ratio, from(sources.aspect_ratio)),
        &format!("{}{}", spec.performance.unwrap_or(Performance::Balance), from(sources.performance)),
        &format!("{}{}", spec.stylization.unwrap_or(100), from(sources.stylization)),
        &format!("{}{}", spec.chaos.unwrap_or(0), from(sources.chaos)),
        &format!("{}{}", spec.weirdness.unwrap_or(0), from(sources.weirdness)),
    )
}

fn references_line(spec: &JobSpec) -> String {
    let mut parts = vec![words::source_images(spec.pictures.images.len())];
    if !spec.pictures.style.is_empty() {
        parts.push(words::style_reference(spec.style_weight.unwrap_or(100)));
    }
    if spec.pictures.omni.is_some() {
        parts.push(words::omni_reference(spec.omni_weight.unwrap_or(100)));
    }
    parts.join(" · ")
}

/// `41 s`, `2 min 05 s`.
pub fn clock(d: Duration) -> String {
    words::duration(d.as_secs())
}

/// Keeps user text from turning into markdown or mentions.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '_' | '~' | '`' | '|' | '>' | '#' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.replace('@', "@\u{200b}")
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn spec() -> JobSpec {
        serde_json::from_value(json!({"mode":"fast","prompt":"a fox","aspect_ratio":"16:9","chaos":20,
            "image_urls":["https://cdn/a.png"],"style_image_urls":["https://cdn/s.png"]}))
        .unwrap()
    }

    fn embeds(r: &Rendered) -> Value {
        serde_json::to_value(&r.embeds).unwrap()
    }

    #[test]
    fn queued_shows_prompt_settings_and_status() {
        let r = job_message(&spec(), &["Adjusted your prompt.".into()], &Stage::Queued, &[], "https://x");
        assert!(r.content.contains("Queued"));
        let e = embeds(&r);
        let text = e.to_string();
        assert!(text.contains("**Prompt:** a fox"));
        assert!(text.contains("Aspect 16:9 · balance · stylize 100 · chaos 20 · weird 0"), "{text}");
        assert!(text.contains("style reference (weight 100)"));
        assert!(text.contains("Adjusted your prompt."));
    }

    #[test]
    fn done_is_a_gallery_of_attachments() {
        let files: Vec<String> = (1..=4).map(|i| format!("imagine-{i}.png")).collect();
        let stage =
            Stage::Done { took: Duration::from_secs(75), amount: Some(Decimal::new(4, 2)), images: 4, linked: vec![] };
        let r = job_message(&spec(), &[], &stage, &files, "https://gallery");
        assert_eq!(r.content, "✅ **Done** in 1 min 15 s · 4 images · cost $0.04");
        let e = embeds(&r);
        assert_eq!(e.as_array().unwrap().len(), 4);
        for (i, embed) in e.as_array().unwrap().iter().enumerate() {
            assert_eq!(embed["url"], "https://gallery");
            assert_eq!(embed["image"]["url"], format!("attachment://imagine-{}.png", i + 1));
        }
    }

    #[test]
    fn a_cancel_names_who_did_it_and_that_nothing_was_counted() {
        let line = status_line(&Stage::Cancelled { by: 42 });
        assert_eq!(line, "🚫 **Cancelled** by <@42> · never sent, so nothing was counted.");
    }

    #[test]
    fn failure_says_it_is_refunded() {
        let line = status_line(&Stage::Failed { reason: "The image service refused this job: banned word.".into() });
        assert!(line.contains("banned word") && line.contains("does not count"));
    }

    #[test]
    fn a_declined_job_keeps_its_reason_out_of_the_public_reply() {
        let public = status_line(&Stage::Declined);
        assert_eq!(public, "❌ **Not generated** · the prompt was declined, nothing was counted.");
        let private = declined_privately("The image service could not make this image: nsfw.");
        assert!(private.contains("could not make this image: nsfw.") && private.contains("Remix"), "{private}");
    }

    #[test]
    fn a_single_image_names_its_number_prompt_and_presser() {
        let line = single_image_line(2, "a *fox* @everyone", 42);
        assert_eq!(line, "🔍 **Image 2** of a \\*fox\\* @\u{200b}everyone · full size · for <@42>");
        assert!(single_image_line(1, &"x".repeat(5000), 42).chars().count() < 2000);
    }

    #[test]
    fn a_waiting_job_shows_its_place_when_it_was_sent_and_when_it_is_likely_ready() {
        let sent_at: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let ready = sent_at + chrono::Duration::seconds(42);
        let outlook = Outlook { place: Some(2), sent_at, estimate: Estimate::LikelyReadyAt(ready) };
        assert_eq!(
            status_line(&Stage::Submitted { outlook: outlook.clone() }),
            format!(
                "📨 **Submitted** · 2nd in line in this server · sent <t:{}:R> · likely ready <t:{}:R>",
                sent_at.timestamp(),
                ready.timestamp()
            )
        );
        let running = Outlook { place: None, estimate: Estimate::Overdue, ..outlook };
        assert_eq!(
            status_line(&Stage::Generating { outlook: running, progress: Some(45) }),
            format!("🎨 **Generating** · 45% · sent <t:{}:R> · taking longer than I expected", sent_at.timestamp())
        );
        let unknown = Outlook { place: Some(1), sent_at, estimate: Estimate::Unknown };
        assert!(
            status_line(&Stage::Submitted { outlook: unknown })
                .ends_with(&format!("1st in line in this server · sent <t:{}:R>", sent_at.timestamp()))
        );
        let ordinals: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 103, 111].map(ordinal).into();
        assert_eq!(ordinals, ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "103rd", "111th"]);
    }

    #[test]
    fn user_text_cannot_ping_or_format() {
        assert_eq!(escape("@everyone **hi**"), "@\u{200b}everyone \\*\\*hi\\*\\*");
    }
}
