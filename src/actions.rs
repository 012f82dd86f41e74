//! Result actions: the buttons under a delivered result, and what a button's `custom_id` says.
//! Pure: builds and reads `custom_id`s, sends nothing.
//!
//! Discord keeps nothing for a button but its `custom_id`, so the id names the action and the job
//! and everything else is looked up in the database when it is pressed. The format is
//! `imagine:<version>:<action>:<job id, 32 hex digits>` (at most 100 characters, unique within a
//! message because the action differs); the version comes first so that a later format can be
//! told apart from this one. Today the actions are `U1`–`U4`.

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
}

impl Action {
    /// The button's label, also its part of the `custom_id`.
    pub fn label(self) -> String {
        match self {
            Action::Upscale(n) => format!("U{n}"),
        }
    }

    fn parse(text: &str) -> Option<Action> {
        let digit = text.strip_prefix('U')?;
        match digit.as_bytes() {
            [d @ b'1'..=b'9'] if d - b'0' <= MAX_IMAGES => Some(Action::Upscale(d - b'0')),
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

/// The buttons under a delivered result: `U<n>` for each uploaded image number (1–4) in one row.
pub fn result_buttons(job: Uuid, images: &[u8]) -> Vec<CreateActionRow> {
    let mut numbers: Vec<u8> = images.iter().copied().filter(|n| (1..=MAX_IMAGES).contains(n)).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return Vec::new();
    }
    let buttons = numbers
        .into_iter()
        .map(|n| {
            let action = Action::Upscale(n);
            CreateButton::new(custom_id(job, action)).label(action.label()).style(ButtonStyle::Secondary)
        })
        .collect();
    vec![CreateActionRow::Buttons(buttons)]
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
        for n in 1..=4 {
            let id = custom_id(JOB, Action::Upscale(n));
            assert_eq!(id, format!("imagine:1:U{n}:0123456789abcdef0123456789abcdef"));
            assert!(id.len() <= CUSTOM_ID_MAX);
            assert_eq!(decode(&id), Ok(Press { job: JOB, action: Action::Upscale(n) }));
        }
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
            format!("imagine:1:V2:{job}"),
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

    #[test]
    fn buttons_are_one_row_of_the_uploaded_numbers() {
        let rows: Value = serde_json::to_value(result_buttons(JOB, &[1, 3, 4, 3, 7, 0])).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["type"], 1);
        let buttons = rows[0]["components"].as_array().unwrap();
        let labels: Vec<&str> = buttons.iter().map(|b| b["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["U1", "U3", "U4"]);
        for b in buttons {
            assert_eq!(b["type"], 2);
            assert_eq!(b["style"], 2);
            assert_eq!(b["custom_id"], json!(custom_id(JOB, Action::parse(b["label"].as_str().unwrap()).unwrap())));
        }
        assert!(result_buttons(JOB, &[]).is_empty());
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
