//! A member's own preferences for `/imagine` (`/prefs`): personal defaults, a suffix added to every
//! prompt, named options that `--name` in a prompt expands to, and remix mode. They belong to the
//! member, not to a server: the same in every server of this deployment. Server rules still win
//! (blocked words are checked on the expanded text). Pure: nothing here talks to Discord or the
//! database.

use std::collections::BTreeMap;

use crate::{
    imagine::{clean, flags},
    render::truncate,
    settings::{self, BlockedWords, DefaultsInput, DefaultsUpdate, GuildDefaults, Setting},
};

/// Longest suffix, in characters as given.
pub const MAX_SUFFIX_CHARS: usize = 200;
/// Most named options a member may keep.
pub const MAX_OPTIONS: usize = 20;
/// Longest option name, without its `--`.
pub const MAX_OPTION_NAME_CHARS: usize = 32;
/// Longest option value, in characters.
pub const MAX_OPTION_VALUE_CHARS: usize = 200;

/// One member's preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefs {
    /// Used where the member gives neither option nor flag, before the server's defaults.
    pub defaults: GuildDefaults,
    /// Prompt text added to every prompt (already cleaned); `None`: no suffix.
    pub suffix: Option<String>,
    /// `--name` → value (prompt text and flags), names in lower case.
    pub options: BTreeMap<String, String>,
    /// V and Reroll open the Remix modal first.
    pub remix: bool,
}

/// A preference changed by its member: what, its value before and after (`None`: not set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefChange {
    pub what: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checking what `/prefs` was given
// ---------------------------------------------------------------------------------------------

/// Checks `/prefs defaults`: the same values and ranges as `/settings defaults`. An `Err` is a
/// sentence for the member.
pub fn defaults_update(input: DefaultsInput) -> Result<DefaultsUpdate, String> {
    // `settings::defaults_update` words these two refusals for `/settings`; the ranges and the
    // cleaning of the negative prompt are its own.
    let given = input.values != GuildDefaults::default();
    match (input.reset, given) {
        (true, true) => Err("`reset` clears every personal default, so it cannot come with new values. Run \
             `/prefs defaults reset:True` on its own, then set the defaults you want."
            .into()),
        (false, false) => Err("Give at least one default to set, for example `/prefs defaults aspect_ratio:16:9`, \
             or `reset:True` to clear them all."
            .into()),
        _ => settings::defaults_update(input),
    }
}

/// Checks `/prefs suffix`: `Ok(None)` clears the suffix; otherwise the cleaned suffix and a note if
/// cleaning changed it.
pub fn suffix_update(text: Option<&str>) -> Result<Option<(String, Option<String>)>, String> {
    let text = text.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_SUFFIX_CHARS {
        return Err(format!("The suffix is longer than {MAX_SUFFIX_CHARS} characters. Please shorten it."));
    }
    if let Some(flag) = text.split_whitespace().find(|t| looks_like_flag(t)) {
        return Err(format!(
            "The suffix is prompt text, so `{}` would lose its meaning. Put flags in your defaults \
             (`/prefs defaults`) or in an option (`/prefs option`).",
            flag.replace('`', "'")
        ));
    }
    let cleaned = clean::clean(text, "suffix");
    if cleaned.text.is_empty() {
        return Err("The suffix is empty once unsupported characters are removed. Use words.".into());
    }
    Ok(Some((cleaned.text, cleaned.change)))
}

/// A valid `/prefs option`: set `name` to `value`, or delete it (`value: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionEdit {
    pub name: String,
    pub value: Option<String>,
    /// What flag parsing will make of the value (a ratio snapped, a flag ignored).
    pub notes: Vec<String>,
}

/// What an [`OptionEdit`] did to a member's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionOutcome {
    /// Set; the value it had before, if any.
    Set { old: Option<String> },
    /// Deleted; the value it had.
    Deleted { old: String },
    /// Already so: nothing to change, nothing recorded.
    Unchanged,
    /// A new option, but the member already has [`MAX_OPTIONS`]; nothing changed.
    Full,
    /// Deleting an option the member does not have; nothing changed.
    NotFound,
}

/// Checks `/prefs option`. A name is a letter then up to 31 letters, digits, `_` or `-` (a
/// leading `--` is accepted and dropped; upper case is folded, as flags are read in any case),
/// and may not be a flag the prompt parser reads. An empty or missing value deletes.
pub fn option_edit(name: &str, value: Option<&str>) -> Result<OptionEdit, String> {
    let name = name.trim();
    let name = name.strip_prefix("--").unwrap_or(name).to_ascii_lowercase();
    let well_formed = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().count() <= MAX_OPTION_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !well_formed {
        return Err(format!(
            "An option name starts with a letter and has up to {MAX_OPTION_NAME_CHARS} letters, digits, `_` or \
             `-`, for example `cine`; you gave `{}`.",
            truncate(&name.replace('`', "'"), 40)
        ));
    }
    if flags::is_known(&name) {
        return Err(format!("`--{name}` is already a flag of `/imagine`, so an option cannot take its name."));
    }
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let Some(value) = value else { return Ok(OptionEdit { name, value: None, notes: Vec::new() }) };
    if value.chars().count() > MAX_OPTION_VALUE_CHARS {
        return Err(format!("The value of `--{name}` is longer than {MAX_OPTION_VALUE_CHARS} characters."));
    }
    let parsed = flags::parse_prompt(value).map_err(|why| format!("In the value of `--{name}`: {why}"))?;
    let notes = parsed.notes.into_iter().map(|note| format!("In `--{name}`: {note}")).collect();
    Ok(OptionEdit { name, value: Some(value.split_whitespace().collect::<Vec<_>>().join(" ")), notes })
}

impl OptionEdit {
    /// Applies the edit to a member's `options`, within the limit.
    pub fn apply(&self, options: &mut BTreeMap<String, String>) -> OptionOutcome {
        let old = options.get(&self.name).cloned();
        match (&self.value, old) {
            (None, None) => OptionOutcome::NotFound,
            (None, Some(old)) => {
                options.remove(&self.name);
                OptionOutcome::Deleted { old }
            }
            (Some(new), Some(old)) if *new == old => OptionOutcome::Unchanged,
            (Some(_), None) if options.len() >= MAX_OPTIONS => OptionOutcome::Full,
            (Some(new), old) => {
                options.insert(self.name.clone(), new.clone());
                OptionOutcome::Set { old }
            }
        }
    }
}

/// The personal defaults that differ between `old` and `new`, one change each.
pub fn default_changes(old: &GuildDefaults, new: &GuildDefaults) -> Vec<PrefChange> {
    settings::default_changes(old, new)
        .into_iter()
        .map(|c| PrefChange { what: c.setting.label().to_owned(), old: c.old, new: c.new })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Expansion
// ---------------------------------------------------------------------------------------------

/// Where a part of an expanded prompt came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Typed by the member.
    Typed,
    /// The member's suffix.
    Suffix,
    /// The value of the member's option of this name.
    Option(String),
}

impl Origin {
    /// How a refusal names it: "your suffix", "your option `--cine`".
    pub fn describe(&self) -> String {
        match self {
            Origin::Typed => "your prompt".into(),
            Origin::Suffix => "your suffix".into(),
            Origin::Option(name) => format!("your option `--{name}`"),
        }
    }
}

/// A run of words of an expanded prompt with one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub origin: Origin,
}

/// A prompt with the member's options expanded and suffix added. `text` is the pieces joined by
/// single spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    pub pieces: Vec<Piece>,
}

/// Expands `prompt` with `prefs`: each `--name` of one of the member's options becomes its value,
/// once (a value's own `--other` stays as written and reaches flag parsing as-is), and the suffix
/// goes at the end of the prompt text, before the first flag, so that a `--no` at the end cannot
/// swallow it. Words are separated by single spaces, as flag parsing reads them anyway.
pub fn expand(prompt: &str, prefs: &Prefs) -> Expanded {
    let mut words: Vec<(&str, Origin)> = Vec::new();
    for token in prompt.split_whitespace() {
        match option_name(token).and_then(|name| prefs.options.get_key_value(&name)) {
            Some((name, value)) => words.extend(value.split_whitespace().map(|w| (w, Origin::Option(name.clone())))),
            None => words.push((token, Origin::Typed)),
        }
    }
    if let Some(suffix) = &prefs.suffix {
        let at = words.iter().position(|(w, _)| looks_like_flag(w)).unwrap_or(words.len());
        words.splice(at..at, suffix.split_whitespace().map(|w| (w, Origin::Suffix)));
    }
    let mut pieces: Vec<Piece> = Vec::new();
    for (word, origin) in words {
        match pieces.last_mut() {
            Some(last) if last.origin == origin => {
                last.text.push(' ');
                last.text.push_str(word);
            }
            _ => pieces.push(Piece { text: word.to_owned(), origin }),
        }
    }
    let text = pieces.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" ");
    Expanded { text, pieces }
}

impl Expanded {
    /// The first blocked word of the expanded text and where it came from. What the member typed is
    /// named first; a phrase that only forms across parts counts as typed.
    pub fn blocked_word_source(&self, words: &BlockedWords) -> Option<(String, Origin)> {
        let typed_first = self.pieces.iter().filter(|p| p.origin == Origin::Typed);
        let others = self.pieces.iter().filter(|p| p.origin != Origin::Typed);
        typed_first
            .chain(others)
            .find_map(|p| words.find_in(&p.text).map(|w| (w.to_owned(), p.origin.clone())))
            .or_else(|| words.find_in(&self.text).map(|w| (w.to_owned(), Origin::Typed)))
    }
}

/// The option a prompt word names (`--cine`, or `—cine` from an autocorrecting keyboard), lower
/// case as flags are read.
fn option_name(token: &str) -> Option<String> {
    let name =
        token.strip_prefix("--").or_else(|| token.strip_prefix(['—', '–']).map(|r| r.trim_start_matches('-')))?;
    Some(name.to_ascii_lowercase())
}

/// Whether a prompt word starts a flag, as flag parsing sees it.
fn looks_like_flag(token: &str) -> bool {
    option_name(token).is_some_and(|name| name.starts_with(|c: char| c.is_ascii_alphabetic()))
}

// ---------------------------------------------------------------------------------------------
// What `/imagine` would use
// ---------------------------------------------------------------------------------------------

/// Whose value `/imagine` uses for a setting the member does not give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Yours,
    Server,
    BuiltIn,
}

impl Layer {
    pub fn label(self) -> &'static str {
        match self {
            Layer::Yours => "yours",
            Layer::Server => "server",
            Layer::BuiltIn => "built-in",
        }
    }
}

/// Each default `/imagine` would use in a server with `server` defaults, with whose it is: the
/// member's own, else the server's, else the bot's.
pub fn effective_defaults(mine: &GuildDefaults, server: &GuildDefaults) -> Vec<(Setting, String, Layer)> {
    mine.entries()
        .into_iter()
        .zip(server.entries())
        .map(|((setting, mine), (_, server))| match (mine, server) {
            (Some(v), _) => (setting, v, Layer::Yours),
            (None, Some(v)) => (setting, v, Layer::Server),
            (None, None) => (setting, GuildDefaults::built_in(setting).to_owned(), Layer::BuiltIn),
        })
        .collect()
}

#[cfg(test)]
mod tests;
