//! Result actions: the buttons under a delivered result (and `Cancel` under a job not sent yet),
//! and what a button's `custom_id` says.
//! Pure: builds and reads `custom_id`s, sends nothing.
//!
//! Discord keeps nothing for a button but its `custom_id`, so the id names the action and the job
//! and everything else is looked up in the database when it is pressed. The format is
//! `imagine:<version>:<action>:<job id, 32 hex digits>` (at most 100 characters, unique within a
//! message because the action differs); the version comes first so that a later format can be
//! told apart from this one. The actions are `U1`–`U4`, `V1`–`V4`, `Reroll`, `Remix` and `Delete`
//! under a result, `Retry` under a failed job and `Cancel` under the reply of a job not sent yet;
//! the Remix modal carries the Remix button's id.
//!
//! A result message also carries the job's own sources, uploaded again beside the results
//! (`source-1.png`, `style-1.png`, `omni-1.png`): a press brings the message with every URL freshly
//! signed, so V, Reroll and Remix can hand the provider live links days later, while the files a
//! member attached to `/imagine` (which belong to no message) have long expired. A failed,
//! timed-out or unconfirmed job's final message keeps its sources the same way, for `Retry`.

use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};
use uuid::Uuid;

const PREFIX: &str = "imagine";
const VERSION: &str = "1";
/// Discord's limit for a `custom_id`.
const CUSTOM_ID_MAX: usize = 100;
/// A result shows at most this many images (one gallery), so it has at most this many U buttons.
pub const MAX_IMAGES: u8 = 4;

/// What a button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `U<n>`: post result image n alone, full size.
    Upscale(u8),
    /// `V<n>`: a new job on result image n, with the original prompt, settings and references.
    Vary(u8),
    /// A new job with exactly the original sources, references, prompt and settings.
    Reroll,
    /// A modal to edit the prompt, then a new job on the original sources and settings.
    Remix,
    /// On a job that did not deliver images: a new job with exactly its arguments.
    Retry,
    /// Stops a job not sent yet (owner or Manage Messages): never sent, refunded.
    Cancel,
    /// Deletes a delivered result's message (owner or Manage Messages).
    Delete,
}

impl Action {
    /// The button's label, also its part of the `custom_id` (and the job's recorded origin).
    pub fn label(self) -> String {
        match self {
            Action::Upscale(n) => format!("U{n}"),
            Action::Vary(n) => format!("V{n}"),
            Action::Reroll => "Reroll".into(),
            Action::Remix => "Remix".into(),
            Action::Retry => "Retry".into(),
            Action::Cancel => "Cancel".into(),
            Action::Delete => "Delete".into(),
        }
    }

    /// Whether pressing it starts a new (paid) job.
    pub fn makes_job(self) -> bool {
        matches!(self, Action::Vary(_) | Action::Reroll | Action::Remix | Action::Retry)
    }

    fn parse(text: &str) -> Option<Action> {
        match text {
            "Reroll" => return Some(Action::Reroll),
            "Remix" => return Some(Action::Remix),
            "Retry" => return Some(Action::Retry),
            "Cancel" => return Some(Action::Cancel),
            "Delete" => return Some(Action::Delete),
            _ => {}
        }
        let (kind, digit) = text.split_at_checked(1)?;
        let n = match digit.as_bytes() {
            [d @ b'1'..=b'9'] if d - b'0' <= MAX_IMAGES => d - b'0',
            _ => return None,
        };
        match kind {
            "U" => Some(Action::Upscale(n)),
            "V" => Some(Action::Vary(n)),
            _ => None,
        }
    }
}

/// A pressed button, read from its `custom_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Press {
    pub job: Uuid,
    pub action: Action,
}

/// Why a `custom_id` cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadButton {
    /// Not one of this bot's result buttons, or damaged.
    Unknown,
    /// One of this bot's buttons in a format this version does not know (made by a newer one).
    OtherVersion,
}

/// The `custom_id` of `action` on `job`'s result.
pub fn custom_id(job: Uuid, action: Action) -> String {
    format!("{PREFIX}:{VERSION}:{}:{}", action.label(), job.simple())
}

/// Reads a `custom_id`. Anything but exactly what [`custom_id`] writes is refused.
pub fn decode(custom_id: &str) -> Result<Press, BadButton> {
    if custom_id.len() > CUSTOM_ID_MAX {
        return Err(BadButton::Unknown);
    }
    let mut parts = custom_id.split(':');
    let (Some(PREFIX), Some(version), Some(action), Some(job), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadButton::Unknown);
    };
    if version != VERSION {
        let numeric = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
        return Err(if numeric { BadButton::OtherVersion } else { BadButton::Unknown });
    }
    // Only the simple form, lowercase, exactly as written (`Uuid::parse_str` takes several forms).
    if job.len() != 32 || !job.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(BadButton::Unknown);
    }
    let job = Uuid::try_parse(job).map_err(|_| BadButton::Unknown)?;
    let action = Action::parse(action).ok_or(BadButton::Unknown)?;
    Ok(Press { job, action })
}

/// The buttons under a delivered result: a row of `U<n>` for each uploaded image number (1–4), a
/// row of `V<n>` for the same numbers, and a row with Reroll, Remix and Delete: at most 3 rows of
/// at most 4 buttons, each `custom_id` unique because its action is. A result whose images were
/// all too large to upload still offers Reroll, Remix and Delete.
pub fn result_buttons(job: Uuid, images: &[u8]) -> Vec<CreateActionRow> {
    let mut numbers: Vec<u8> = images.iter().copied().filter(|n| (1..=MAX_IMAGES).contains(n)).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let button = |action: Action, style| CreateButton::new(custom_id(job, action)).label(action.label()).style(style);
    let row =
        |actions: Vec<Action>, style| CreateActionRow::Buttons(actions.into_iter().map(|a| button(a, style)).collect());
    let mut rows = Vec::new();
    if !numbers.is_empty() {
        rows.push(row(numbers.iter().map(|&n| Action::Upscale(n)).collect(), ButtonStyle::Secondary));
        rows.push(row(numbers.iter().map(|&n| Action::Vary(n)).collect(), ButtonStyle::Secondary));
    }
    let mut last = vec![button(Action::Reroll, ButtonStyle::Primary), button(Action::Remix, ButtonStyle::Primary)];
    last.push(button(Action::Delete, ButtonStyle::Danger));
    rows.push(CreateActionRow::Buttons(last));
    rows
}

/// The button under the final message of a job that failed, timed out or was left unconfirmed.
pub fn retry_buttons(job: Uuid) -> Vec<CreateActionRow> {
    only(job, Action::Retry, ButtonStyle::Primary)
}

/// The button under the private message that tells a job's owner why moderation declined it.
pub fn declined_buttons(job: Uuid) -> Vec<CreateActionRow> {
    only(job, Action::Remix, ButtonStyle::Primary)
}

/// The one button under the reply of a job not sent to the provider yet.
pub fn cancel_buttons(job: Uuid) -> Vec<CreateActionRow> {
    only(job, Action::Cancel, ButtonStyle::Danger)
}

fn only(job: Uuid, action: Action, style: ButtonStyle) -> Vec<CreateActionRow> {
    let button = CreateButton::new(custom_id(job, action)).label(action.label()).style(style);
    vec![CreateActionRow::Buttons(vec![button])]
}

/// A job's own source picture, uploaded again with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFile {
    /// `image_urls[n - 1]`.
    Image(u8),
    /// `style_image_urls[n - 1]`.
    Style(u8),
    /// `omni_image_url`.
    Omni,
}

impl SourceFile {
    /// The uploaded file's name (`source-1.png`, `style-1.webp`, `omni-1.jpg`).
    pub fn file_name(self, extension: &str) -> String {
        match self {
            SourceFile::Image(n) => format!("source-{n}.{extension}"),
            SourceFile::Style(n) => format!("style-{n}.{extension}"),
            SourceFile::Omni => format!("omni-1.{extension}"),
        }
    }

    /// The source an uploaded file's name stands for, if it is one.
    pub fn of(filename: &str) -> Option<SourceFile> {
        let (stem, _extension) = filename.split_once('.')?;
        let (kind, number) = stem.split_once('-')?;
        let n = match number.as_bytes() {
            [d @ b'1'..=b'9'] => d - b'0',
            _ => return None,
        };
        match kind {
            "source" => Some(SourceFile::Image(n)),
            "style" => Some(SourceFile::Style(n)),
            "omni" if n == 1 => Some(SourceFile::Omni),
            _ => None,
        }
    }
}

/// The file name of result image `number` (`imagine-2.png`).
pub fn image_file_name(number: usize, extension: &str) -> String {
    format!("imagine-{number}.{extension}")
}

/// The result image number of an uploaded file's name (`imagine-2.png` is 2), if it is one.
pub fn image_number(filename: &str) -> Option<u8> {
    let (stem, _extension) = filename.strip_prefix("imagine-")?.split_once('.')?;
    if stem.is_empty() || stem.len() > 2 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const JOB: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

    #[test]
    fn an_id_reads_back_as_written() {
        let every = (1..=4).flat_map(|n| [Action::Upscale(n), Action::Vary(n)]).chain([
            Action::Reroll,
            Action::Remix,
            Action::Retry,
            Action::Cancel,
            Action::Delete,
        ]);
        for action in every {
            let id = custom_id(JOB, action);
            assert_eq!(id, format!("imagine:1:{}:0123456789abcdef0123456789abcdef", action.label()));
            assert!(id.len() <= CUSTOM_ID_MAX);
            assert_eq!(decode(&id), Ok(Press { job: JOB, action }));
        }
        assert_eq!(custom_id(JOB, Action::Vary(2)), "imagine:1:V2:0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn hostile_ids_are_refused() {
        let job = "0123456789abcdef0123456789abcdef";
        let unknown = [
            String::new(),
            "imagine".into(),
            "imagine:1:U2".into(),
            format!("imagine:1:U2:{job}:extra"),
            format!("imagine:1:U0:{job}"),
            format!("imagine:1:U5:{job}"),
            format!("imagine:1:U12:{job}"),
            format!("imagine:1:u2:{job}"),
            format!("imagine:1:V5:{job}"),
            format!("imagine:1:v2:{job}"),
            format!("imagine:1:reroll:{job}"),
            format!("imagine:1:Remix1:{job}"),
            format!("imagine:1:retry:{job}"),
            format!("imagine:1:cancel:{job}"),
            format!("imagine:1:Delete1:{job}"),
            format!("imagine:1:X2:{job}"),
            format!("imagine:1:U٢:{job}"),
            format!("other:1:U2:{job}"),
            format!("imagine::U2:{job}"),
            format!("imagine:x:U2:{job}"),
            "imagine:1:U2:0123456789ABCDEF0123456789ABCDEF".into(),
            "imagine:1:U2:01234567-89ab-cdef-0123-456789abcdef".into(),
            "imagine:1:U2:{0123456789abcdef0123456789abcdef}".into(),
            "imagine:1:U2:0123456789abcdef0123456789abcdeg".into(),
            "imagine:1:U2:0123456789abcdef0123456789abcde".into(),
            format!("imagine:1:U2:{job}{}", "0".repeat(200)),
            format!("imagine:1:U2:{job}\0"),
            format!(" imagine:1:U2:{job}"),
        ];
        for id in unknown {
            assert_eq!(decode(&id), Err(BadButton::Unknown), "{id:?}");
        }
        assert_eq!(decode(&format!("imagine:2:U2:{job}")), Err(BadButton::OtherVersion));
    }

    fn labels(rows: &[CreateActionRow]) -> Vec<Vec<String>> {
        let rows: Value = serde_json::to_value(rows).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|row| {
                assert_eq!(row["type"], 1);
                let buttons = row["components"].as_array().unwrap();
                assert!((1..=5).contains(&buttons.len()));
                buttons
                    .iter()
                    .map(|b| {
                        assert_eq!(b["type"], 2);
                        let label = b["label"].as_str().unwrap();
                        assert_eq!(b["custom_id"], json!(custom_id(JOB, Action::parse(label).unwrap())));
                        label.to_owned()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn buttons_are_rows_of_the_uploaded_numbers_then_reroll_remix_and_delete() {
        assert_eq!(
            labels(&result_buttons(JOB, &[1, 3, 4, 3, 7, 0])),
            [vec!["U1", "U3", "U4"], vec!["V1", "V3", "V4"], vec!["Reroll", "Remix", "Delete"]]
        );
        assert_eq!(labels(&result_buttons(JOB, &[2])), [vec!["U2"], vec!["V2"], vec!["Reroll", "Remix", "Delete"]]);
        assert_eq!(
            labels(&result_buttons(JOB, &[])),
            [["Reroll", "Remix", "Delete"]],
            "every image linked: still these"
        );
        assert_eq!(labels(&retry_buttons(JOB)), [["Retry"]]);
        assert_eq!(labels(&declined_buttons(JOB)), [["Remix"]]);
        let full = result_buttons(JOB, &[1, 2, 3, 4]);
        let ids: std::collections::HashSet<String> =
            labels(&full).concat().into_iter().map(|l| custom_id(JOB, Action::parse(&l).unwrap())).collect();
        assert_eq!(ids.len(), 11, "every custom_id in the message is unique");
        assert!(full.len() <= 5, "at most five rows");
    }

    #[test]
    fn a_job_not_sent_yet_has_one_cancel_button() {
        assert_eq!(labels(&cancel_buttons(JOB)), [["Cancel"]]);
        assert!(!Action::Cancel.makes_job() && !Action::Delete.makes_job() && !Action::Upscale(1).makes_job());
        assert!([Action::Reroll, Action::Vary(2), Action::Remix, Action::Retry].iter().all(|a| a.makes_job()));
    }

    #[test]
    fn source_files_are_named_and_read_back() {
        for source in [SourceFile::Image(1), SourceFile::Image(2), SourceFile::Style(1), SourceFile::Omni] {
            assert_eq!(SourceFile::of(&source.file_name("png")), Some(source));
        }
        assert_eq!(SourceFile::Image(2).file_name("jpg"), "source-2.jpg");
        assert_eq!(SourceFile::Omni.file_name("webp"), "omni-1.webp");
        for other in ["imagine-1.png", "source-.png", "source-10.png", "omni-2.png", "source-1", "style1.png"] {
            assert_eq!(SourceFile::of(other), None, "{other}");
        }
        assert_eq!(image_number("source-1.png"), None);
    }

    #[test]
    fn image_numbers_come_from_result_file_names() {
        assert_eq!(image_number(&image_file_name(2, "png")), Some(2));
        assert_eq!(image_number("imagine-4.webp"), Some(4));
        assert_eq!(image_number("imagine-.png"), None);
        assert_eq!(image_number("imagine-2"), None);
        assert_eq!(image_number("source.png"), None);
        assert_eq!(image_number("imagine-+2.png"), None);
        assert_eq!(image_number("imagine-999.png"), None);
    }
}
