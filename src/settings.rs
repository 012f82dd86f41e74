//! A server's own rules for `/imagine`, set by its admins with `/settings`: defaults merged under
//! what a member gives, the channels image jobs may start in, the roles that may start them, and
//! words the server does not allow. Pure: nothing here talks to Discord or the database.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

mod disguise;

pub use crate::imagine::defaults::{GuildDefaults, Setting, Source, Sources, defaults_note, effective};
use crate::imagine::{MAX_NEGATIVE_CHARS, clean, flags};

/// Most channels a server may allow (a refusal names them all).
pub const MAX_ALLOWED_CHANNELS: usize = 25;
/// Most roles a server may let start jobs (a refusal names them all).
pub const MAX_JOB_ROLES: usize = 25;
/// Most blocked words (or phrases) a server may keep.
pub const MAX_BLOCKED_WORDS: usize = 200;
/// Longest blocked word or phrase, in characters once folded.
pub const MAX_BLOCKED_WORD_CHARS: usize = 100;

/// Everything `/imagine` needs to know about the server it runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildSettings {
    pub defaults: GuildDefaults,
    /// Empty: every channel.
    pub allowed_channels: Vec<u64>,
    /// Empty: every member may start jobs; otherwise only members holding one of these roles.
    pub job_roles: Vec<u64>,
    pub blocked_words: BlockedWords,
}

/// Where the server's admins hear about the bot, and whether long jobs ping their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// `/settings log_channel` (`None`: no log channel).
    pub log_channel: Option<u64>,
    /// `/settings notify` (on unless an admin turned it off).
    pub notify: bool,
}

impl GuildSettings {
    /// Whether `/imagine` may run in `channel`; a thread counts as its parent channel (`parent`).
    pub fn allows_channel(&self, channel: u64, parent: Option<u64>) -> bool {
        self.allowed_channels.is_empty()
            || self.allowed_channels.contains(&channel)
            || parent.is_some_and(|p| self.allowed_channels.contains(&p))
    }

    /// Whether a member holding `roles` may start jobs; members who may manage the server
    /// (`admin`) always may, so a role list can never lock its own admins out.
    pub fn allows_member(&self, roles: &[u64], admin: bool) -> bool {
        admin || self.job_roles.is_empty() || roles.iter().any(|r| self.job_roles.contains(r))
    }
}

/// A setting changed by an admin: its value before and after (`None`: not set, not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub setting: Setting,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The defaults that differ between `old` and `new`, one change each.
pub fn default_changes(old: &GuildDefaults, new: &GuildDefaults) -> Vec<SettingChange> {
    old.entries()
        .into_iter()
        .zip(new.entries())
        .filter(|((_, a), (_, b))| a != b)
        .map(|((setting, old), (_, new))| SettingChange { setting, old, new })
        .collect()
}

/// What `/settings defaults` was given: the defaults to set (`None` where not given), or `reset`.
#[derive(Debug, Clone, Default)]
pub struct DefaultsInput {
    pub values: GuildDefaults,
    pub reset: bool,
}

/// A valid `/settings defaults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultsUpdate {
    /// Clear every default.
    Reset,
    /// Set the defaults given (`Some`), keep the others; `notes` say how the text was cleaned.
    Set { values: GuildDefaults, notes: Vec<String> },
}

impl DefaultsUpdate {
    /// The server's defaults after this update.
    pub fn apply(&self, current: &GuildDefaults) -> GuildDefaults {
        match self {
            DefaultsUpdate::Reset => GuildDefaults::default(),
            DefaultsUpdate::Set { values, .. } => GuildDefaults {
                aspect_ratio: values.aspect_ratio.or(current.aspect_ratio),
                performance: values.performance.or(current.performance),
                stylization: values.stylization.or(current.stylization),
                chaos: values.chaos.or(current.chaos),
                weirdness: values.weirdness.or(current.weirdness),
                negative_prompt: values.negative_prompt.clone().or_else(|| current.negative_prompt.clone()),
            },
        }
    }
}

/// Checks `/settings defaults`. An `Err` is a sentence for the admin that says what to change.
pub fn defaults_update(input: DefaultsInput) -> Result<DefaultsUpdate, String> {
    let DefaultsInput { values, reset } = input;
    let given = values != GuildDefaults::default();
    match (reset, given) {
        (true, true) => {
            return Err("`reset` clears every default, so it cannot come with new values. Run \
                 `/settings defaults reset:True` on its own, then set the defaults you want."
                .into());
        }
        (true, false) => return Ok(DefaultsUpdate::Reset),
        (false, false) => {
            return Err("Give at least one default to set, for example `/settings defaults aspect_ratio:16:9`, \
                 or `reset:True` to clear them all."
                .into());
        }
        (false, true) => {}
    }
    for (option, value, (min, max)) in [
        ("stylization", values.stylization, flags::STYLIZE),
        ("chaos", values.chaos, flags::CHAOS),
        ("weirdness", values.weirdness, flags::WEIRD),
    ] {
        if let Some(v) = value
            && !(min..=max).contains(&v)
        {
            return Err(format!("`{option}` must be from {min} to {max}; you gave {v}."));
        }
    }
    let mut notes = Vec::new();
    let negative_prompt = match values.negative_prompt.clone() {
        Some(text) => {
            if text.chars().count() > MAX_NEGATIVE_CHARS {
                return Err(format!(
                    "The negative prompt is longer than {MAX_NEGATIVE_CHARS} characters. Please shorten it."
                ));
            }
            let cleaned = clean::clean(&text, "negative prompt");
            if cleaned.text.is_empty() {
                return Err("The negative prompt is empty once unsupported characters are removed. \
                     Describe what to leave out in words."
                    .into());
            }
            notes.extend(cleaned.change);
            Some(cleaned.text)
        }
        None => None,
    };
    Ok(DefaultsUpdate::Set { values: GuildDefaults { negative_prompt, ..values }, notes })
}

// ---------------------------------------------------------------------------------------------
// Blocked words
// ---------------------------------------------------------------------------------------------

/// Folds text for comparison: compatibility decomposition (full-width and other variant letters
/// become plain ones, accented letters come apart), lower case, accents dropped. `ＧＯＲＥ`,
/// `Gore` and `góre` all fold to `gore`.
pub fn fold(text: &str) -> String {
    text.nfkd().flat_map(char::to_lowercase).filter(|c| !is_combining_mark(*c)).collect()
}

/// The whole words of `text`, folded: its runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    split_words(&fold(text))
}

fn split_words(folded: &str) -> Vec<String> {
    folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

/// Whether `entry`'s words stand in a row among `text`'s.
fn contains_run<T: AsRef<str>>(text: &[String], entry: &[T]) -> bool {
    text.windows(entry.len()).any(|window| window.iter().zip(entry).all(|(a, b)| a == b.as_ref()))
}

/// A blocked word or phrase as stored and matched: its folded words joined by single spaces.
/// `None` when it has no letters or digits.
pub fn blocked_form(entry: &str) -> Option<String> {
    let words = words(entry);
    (!words.is_empty()).then(|| words.join(" "))
}

/// The words (and phrases) a server does not allow, in their folded form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedWords(Vec<String>);

impl BlockedWords {
    /// From stored entries (already in [`blocked_form`]).
    pub fn new(words: Vec<String>) -> Self {
        BlockedWords(words)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The first blocked entry found in `text` as whole words, ignoring case, accents and
    /// full-width forms, and seeing through invisible characters, dots between letters and
    /// look-alike letters of other alphabets. A phrase matches its words in a row.
    pub fn find_in(&self, text: &str) -> Option<&str> {
        if self.0.is_empty() {
            return None;
        }
        let as_written = words(text);
        let seen = disguise::as_seen(text);
        let as_seen = [split_words(&seen), split_words(&disguise::join_dotted(&seen))];
        self.0.iter().map(String::as_str).find(|entry| {
            let written: Vec<&str> = entry.split(' ').collect();
            let seen = split_words(&disguise::as_seen(entry));
            contains_run(&as_written, &written) || as_seen.iter().any(|text| contains_run(text, &seen))
        })
    }
}

/// A valid `/settings blocked_words`: entries to add and to remove, in their folded form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordsEdit {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// Checks `/settings blocked_words` (comma-separated lists). An `Err` is a sentence for the admin.
pub fn words_edit(add: Option<&str>, remove: Option<&str>) -> Result<WordsEdit, String> {
    if add.is_none() && remove.is_none() {
        return Err("Give words to block with `add`, or words to allow again with `remove`, separated by commas, \
             for example `/settings blocked_words add:gore, blood`."
            .into());
    }
    let edit = WordsEdit {
        add: add.map(|list| word_list("add", list)).transpose()?.unwrap_or_default(),
        remove: remove.map(|list| word_list("remove", list)).transpose()?.unwrap_or_default(),
    };
    if let Some(both) = edit.add.iter().find(|w| edit.remove.contains(w)) {
        return Err(format!("`{both}` is in both `add` and `remove`; pick one."));
    }
    Ok(edit)
}

fn word_list(option: &str, list: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split([',', '，', '、']).map(str::trim).filter(|i| !i.is_empty()) {
        let Some(form) = blocked_form(item) else {
            return Err(format!(
                "`{}` in `{option}` has no letters or digits, so it can never match. Leave it out.",
                shown(item)
            ));
        };
        if form.chars().count() > MAX_BLOCKED_WORD_CHARS {
            return Err(format!(
                "`{}` in `{option}` is longer than {MAX_BLOCKED_WORD_CHARS} characters; block a shorter word or phrase.",
                shown(item)
            ));
        }
        if !out.contains(&form) {
            out.push(form);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "`{option}` has no words in it. Separate words with commas, for example `{option}:gore, blood`."
        ));
    }
    Ok(out)
}

/// An admin's text in a message, without backticks and shortened.
fn shown(text: &str) -> String {
    let text = text.replace('`', "'");
    if text.chars().count() > 40 { text.chars().take(39).collect::<String>() + "…" } else { text }
}

#[cfg(test)]
mod tests;
