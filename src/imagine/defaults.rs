//! A server's defaults for `/imagine` under what a member chooses: which value wins, where each
//! came from, and the note that names the server defaults a job used. They sit below the prompt
//! translation (`super::prepare` fills gaps from them) and below the server's other rules
//! (`crate::settings`), so both can read them without importing each other. `Setting` lives here
//! because the defaults are named by it in their notes as in the audit of changes.

use crate::spec::{AspectRatio, Performance};

/// A server's defaults for `/imagine`; `None` where its admins set none and the bot's own default
/// applies. The negative prompt is kept as the provider will receive it (already cleaned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildDefaults {
    pub aspect_ratio: Option<AspectRatio>,
    pub performance: Option<Performance>,
    pub stylization: Option<i64>,
    pub chaos: Option<i64>,
    pub weirdness: Option<i64>,
    pub negative_prompt: Option<String>,
}

/// One setting of a server, as recorded in the audit of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "setting_name", rename_all = "snake_case")]
pub enum Setting {
    AspectRatio,
    Performance,
    Stylization,
    Chaos,
    Weirdness,
    NegativePrompt,
    AllowedChannel,
    BlockedWord,
    JobRole,
    LogChannel,
    Notify,
}

impl Setting {
    /// The name admins see.
    pub fn label(self) -> &'static str {
        match self {
            Setting::AspectRatio => "aspect ratio",
            Setting::Performance => "performance",
            Setting::Stylization => "stylization",
            Setting::Chaos => "chaos",
            Setting::Weirdness => "weirdness",
            Setting::NegativePrompt => "negative prompt",
            Setting::AllowedChannel => "allowed channel",
            Setting::BlockedWord => "blocked word",
            Setting::JobRole => "role that may start jobs",
            Setting::LogChannel => "log channel",
            Setting::Notify => "ping when a long job is done",
        }
    }
}

impl GuildDefaults {
    /// Each default with its value as text (`None`: not set), in the order of the command.
    pub fn entries(&self) -> [(Setting, Option<String>); 6] {
        [
            (Setting::AspectRatio, self.aspect_ratio.map(|r| r.to_string())),
            (Setting::Performance, self.performance.map(|p| p.to_string())),
            (Setting::Stylization, self.stylization.map(|v| v.to_string())),
            (Setting::Chaos, self.chaos.map(|v| v.to_string())),
            (Setting::Weirdness, self.weirdness.map(|v| v.to_string())),
            (Setting::NegativePrompt, self.negative_prompt.clone()),
        ]
    }

    /// What `/imagine` uses when neither the member nor the server chose a value.
    pub fn built_in(setting: Setting) -> &'static str {
        match setting {
            Setting::AspectRatio => "1:1",
            Setting::Performance => "balance",
            Setting::Stylization => "100",
            Setting::Chaos | Setting::Weirdness => "0",
            _ => "none",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults under the member's choices
// ---------------------------------------------------------------------------------------------

/// Where an effective value of a job came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// An option of the command.
    SlashOption,
    /// A flag typed in the prompt (`--ar 16:9`).
    TypedFlag,
    /// The server's default (`/settings defaults`).
    ServerDefault,
    /// Nobody chose: the provider's own default.
    #[default]
    BuiltIn,
}

/// Where each value with a server default came from, for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    pub aspect_ratio: Source,
    pub performance: Source,
    pub stylization: Source,
    pub chaos: Source,
    pub weirdness: Source,
    pub negative_prompt: Source,
}

/// The member's value (the option, else the typed flag), else the server's default, and where it
/// came from. The member always wins.
pub fn effective<T>(option: Option<T>, flag: Option<T>, server: Option<T>) -> (Option<T>, Source) {
    match (option, flag, server) {
        (Some(v), _, _) => (Some(v), Source::SlashOption),
        (None, Some(v), _) => (Some(v), Source::TypedFlag),
        (None, None, Some(v)) => (Some(v), Source::ServerDefault),
        (None, None, None) => (None, Source::BuiltIn),
    }
}

/// A note for the reply naming the server defaults a job uses, if any.
pub fn defaults_note(defaults: &GuildDefaults, sources: &Sources) -> Option<String> {
    let from_server = [
        sources.aspect_ratio,
        sources.performance,
        sources.stylization,
        sources.chaos,
        sources.weirdness,
        sources.negative_prompt,
    ]
    .map(|s| s == Source::ServerDefault);
    let used: Vec<String> = defaults
        .entries()
        .into_iter()
        .zip(from_server)
        .filter_map(|((setting, value), used)| match (used, value) {
            (true, Some(_)) if setting == Setting::NegativePrompt => Some("negative prompt (under Avoid)".to_owned()),
            (true, Some(value)) => Some(format!("{} {value}", setting.label())),
            _ => None,
        })
        .collect();
    if used.is_empty() {
        return None;
    }
    let (noun, these) = if used.len() == 1 { ("default", "it") } else { ("defaults", "them") };
    Some(format!("Server {noun}: {}. Give the option or the flag to change {these}.", used.join(", ")))
}
