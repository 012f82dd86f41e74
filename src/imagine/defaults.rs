//! A server's defaults for `/imagine` under what a member chooses: which value wins, where each
//! came from, and the note that names the server defaults a job used. They sit below the prompt
//! translation (`super::prepare` fills gaps from them) and below the server's other rules
//! (`crate::settings`), so both can read them without importing each other. `Setting` lives here
//! because the defaults are named by it in their notes as in the audit of changes.

use crate::spec::{AspectRatio, Performance};
pub use crate::spec::{Source, Sources};

/// A server's defaults for `/imagine`; `None` where its admins set none and the bot's own default
/// applies. The negative prompt is kept as the provider will receive it (already cleaned).
pub type GuildDefaults = Choices;

/// The six choices of `/imagine` that a default can also make: what a member chose for one job
/// (the negative prompt as typed), or a set of defaults. `None`: not chosen there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
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

impl Choices {
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

/// The defaults a job falls back on: the member's own (`/prefs defaults`, the same in every
/// server) over the server's (`/settings defaults`), each value with the layer it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layered {
    pub values: GuildDefaults,
    /// [`Source::Yours`] or [`Source::ServerDefault`] for each value set, else [`Source::BuiltIn`].
    pub from: Sources,
}

impl Layered {
    pub fn new(mine: &GuildDefaults, server: &GuildDefaults) -> Layered {
        fn pick<T: Clone>(mine: &Option<T>, server: &Option<T>) -> (Option<T>, Source) {
            match (mine, server) {
                (Some(v), _) => (Some(v.clone()), Source::Yours),
                (None, Some(v)) => (Some(v.clone()), Source::ServerDefault),
                (None, None) => (None, Source::BuiltIn),
            }
        }
        let (aspect_ratio, aspect_ratio_from) = pick(&mine.aspect_ratio, &server.aspect_ratio);
        let (performance, performance_from) = pick(&mine.performance, &server.performance);
        let (stylization, stylization_from) = pick(&mine.stylization, &server.stylization);
        let (chaos, chaos_from) = pick(&mine.chaos, &server.chaos);
        let (weirdness, weirdness_from) = pick(&mine.weirdness, &server.weirdness);
        let (negative_prompt, negative_from) = pick(&mine.negative_prompt, &server.negative_prompt);
        Layered {
            values: GuildDefaults { aspect_ratio, performance, stylization, chaos, weirdness, negative_prompt },
            from: Sources {
                aspect_ratio: aspect_ratio_from,
                performance: performance_from,
                stylization: stylization_from,
                chaos: chaos_from,
                weirdness: weirdness_from,
                negative_prompt: negative_from,
            },
        }
    }

    /// The server's defaults alone (a member without preferences).
    pub fn server(server: &GuildDefaults) -> Layered {
        Layered::new(&GuildDefaults::default(), server)
    }
}

/// The member's value (the option, else the typed flag), else the default, and where it came
/// from. The member always wins.
pub fn effective<T>(option: Option<T>, flag: Option<T>, server: Option<T>) -> (Option<T>, Source) {
    match (option, flag, server) {
        (Some(v), _, _) => (Some(v), Source::SlashOption),
        (None, Some(v), _) => (Some(v), Source::TypedFlag),
        (None, None, Some(v)) => (Some(v), Source::ServerDefault),
        (None, None, None) => (None, Source::BuiltIn),
    }
}

/// A note for the reply naming the defaults a job uses, if any: the member's own, then the
/// server's.
pub fn defaults_note(defaults: &GuildDefaults, sources: &Sources) -> Option<String> {
    let named = |layer: Source| -> Vec<String> {
        defaults
            .entries()
            .into_iter()
            .zip(sources.each())
            .filter_map(|((setting, value), from)| match (from == layer, value) {
                (true, Some(_)) if setting == Setting::NegativePrompt => {
                    Some("negative prompt (under Avoid)".to_owned())
                }
                (true, Some(value)) => Some(format!("{} {value}", setting.label())),
                _ => None,
            })
            .collect()
    };
    let (yours, server) = (named(Source::Yours), named(Source::ServerDefault));
    let count = yours.len() + server.len();
    if count == 0 {
        return None;
    }
    let mut parts = Vec::new();
    if !yours.is_empty() {
        parts.push(format!("Your {}: {}.", if yours.len() == 1 { "default" } else { "defaults" }, yours.join(", ")));
    }
    if !server.is_empty() {
        parts.push(format!(
            "Server {}: {}.",
            if server.len() == 1 { "default" } else { "defaults" },
            server.join(", ")
        ));
    }
    let these = if count == 1 { "it" } else { "them" };
    Some(format!("{} Give the option or the flag to change {these}.", parts.join(" ")))
}
