//! `/prefs show | defaults | suffix | option | remix`: a member's own preferences for `/imagine`,
//! the same in every server of this deployment. Every member may use it; answers are private and
//! every change is recorded.

use anyhow::Context as _;
use tracing::info;

use super::{Context, Error, reply_ephemeral};
use crate::{
    db,
    prefs::{self, MAX_OPTIONS, OptionOutcome, PrefChange, Prefs},
    render::truncate,
    settings::{DefaultsInput, DefaultsUpdate, GuildDefaults},
    spec::{AspectRatio, Performance},
    words::UserError,
};

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2000;
/// How much of each value `/prefs show` lists, so that a full list of options usually fits one message.
const SHOWN_VALUE_CHARS: usize = 60;

/// Your own preferences for /imagine, the same in every server
#[poise::command(
    slash_command,
    guild_only,
    install_context = "Guild",
    subcommands("show", "defaults", "suffix", "option", "remix"),
    subcommand_required
)]
pub async fn prefs(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Who is changing what, and where (the guild is recorded with each change).
fn member_and_guild(ctx: Context<'_>) -> Result<(u64, u64), Error> {
    let guild = ctx.guild_id().context("guild_only command without a guild")?;
    Ok((ctx.author().id.get(), guild.get()))
}

/// Your preferences, and what /imagine would use in this server
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn show(ctx: Context<'_>) -> Result<(), Error> {
    let (user_id, guild_id) = member_and_guild(ctx)?;
    let pool = &ctx.data().pool;
    let mine = db::prefs::load(pool, user_id.into()).await.context("loading preferences")?;
    let server = db::settings::load(pool, guild_id.into()).await.context("loading settings")?;
    reply_ephemeral(ctx, truncate(&overview(&mine, &server.defaults), MAX_CONTENT)).await;
    Ok(())
}

/// Your own defaults for /imagine, used before this server's when you give neither option nor flag
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn defaults(
    ctx: Context<'_>,
    #[description = "Shape of the result"] aspect_ratio: Option<AspectRatio>,
    #[description = "Speed or quality"] performance: Option<Performance>,
    #[description = "How strongly Midjourney's style applies, 0-1000"]
    #[min = 0]
    #[max = 1000]
    stylization: Option<i64>,
    #[description = "How varied the results are, 0-100"]
    #[min = 0]
    #[max = 100]
    chaos: Option<i64>,
    #[description = "How unusual the results are, 0-3000"]
    #[min = 0]
    #[max = 3000]
    weirdness: Option<i64>,
    #[description = "What to leave out of every picture"]
    #[max_length = 500]
    negative_prompt: Option<String>,
    #[description = "Clear every personal default (on its own)"] reset: Option<bool>,
) -> Result<(), Error> {
    let input = DefaultsInput {
        values: GuildDefaults { aspect_ratio, performance, stylization, chaos, weirdness, negative_prompt },
        reset: reset.unwrap_or(false),
    };
    let update = prefs::defaults_update(input).map_err(UserError::Input)?;
    let (user_id, guild_id) = member_and_guild(ctx)?;
    let (_, changes) = db::prefs::set_defaults(&ctx.data().pool, user_id.into(), guild_id.into(), &update)
        .await
        .context("changing defaults")?;
    info!(user_id, guild_id, ?changes, "personal defaults changed");
    let mut text = match (&update, changes.is_empty()) {
        (DefaultsUpdate::Reset, true) => "You had no personal defaults to clear.".to_owned(),
        (DefaultsUpdate::Reset, false) => {
            "Your personal defaults are cleared: `/imagine` uses each server's (or the bot's) again.".to_owned()
        }
        (DefaultsUpdate::Set { .. }, true) => "Nothing changed: those are already your defaults.".to_owned(),
        (DefaultsUpdate::Set { .. }, false) => {
            let list: Vec<String> = changes.iter().map(describe_change).collect();
            format!("Your defaults changed: {}.", list.join("; "))
        }
    };
    if let DefaultsUpdate::Set { notes, .. } = &update {
        notes.iter().for_each(|note| text.push_str(&format!("\n{note}")));
    }
    reply_ephemeral(ctx, truncate(&text, MAX_CONTENT)).await;
    Ok(())
}

/// Text added to every prompt you write (leave empty to remove it)
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn suffix(
    ctx: Context<'_>,
    #[description = "Prompt text to add, up to 200 characters; empty removes your suffix"]
    #[max_length = 200]
    text: Option<String>,
) -> Result<(), Error> {
    let update = prefs::suffix_update(text.as_deref()).map_err(UserError::Input)?;
    let (user_id, guild_id) = member_and_guild(ctx)?;
    let new = update.as_ref().map(|(text, _)| text.as_str());
    let old = db::prefs::set_suffix(&ctx.data().pool, user_id.into(), guild_id.into(), new)
        .await
        .context("changing the suffix")?;
    info!(user_id, guild_id, changed = old.as_deref() != new, "suffix changed");
    let mut answer = match (new, old.as_deref() == new) {
        (None, true) => "You have no suffix.".to_owned(),
        (None, false) => "Your suffix is removed.".to_owned(),
        (Some(text), true) => format!("`{text}` is already your suffix."),
        (Some(text), false) => format!("Your suffix is now `{text}`: it is added to every prompt you write."),
    };
    if let Some((_, Some(note))) = &update {
        answer.push_str(&format!("\n{note}"));
    }
    reply_ephemeral(ctx, answer).await;
    Ok(())
}

/// A shortcut: --name in a prompt becomes its value (leave the value empty to delete it)
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn option(
    ctx: Context<'_>,
    #[description = "The name you type after --, e.g. cine"]
    #[max_length = 34]
    name: String,
    #[description = "Prompt text and flags it stands for, e.g. cinematic lighting --ar 16:9; empty deletes"]
    #[max_length = 200]
    value: Option<String>,
) -> Result<(), Error> {
    let edit = prefs::option_edit(&name, value.as_deref()).map_err(UserError::Input)?;
    let (user_id, guild_id) = member_and_guild(ctx)?;
    let outcome = db::prefs::edit_option(&ctx.data().pool, user_id.into(), guild_id.into(), &edit)
        .await
        .context("changing an option")?;
    info!(user_id, guild_id, option = %edit.name, ?outcome, "personal option edited");
    let name = &edit.name;
    let mut answer = match outcome {
        OptionOutcome::Full => {
            return Err(UserError::Input(format!(
                "You already have {MAX_OPTIONS} options, the most you can keep. Delete one first \
                 (`/prefs option name:` with no value)."
            ))
            .into());
        }
        OptionOutcome::NotFound => {
            return Err(UserError::Input(format!(
                "You have no option `--{name}` to delete. To set it, give a `value`."
            ))
            .into());
        }
        OptionOutcome::Unchanged => format!("`--{name}` already stands for that."),
        OptionOutcome::Deleted { .. } => format!("Your option `--{name}` is deleted."),
        OptionOutcome::Set { .. } => format!(
            "`--{name}` in a prompt now becomes `{}`.",
            edit.value.as_deref().unwrap_or_default().replace('`', "'")
        ),
    };
    edit.notes.iter().for_each(|note| answer.push_str(&format!("\n{note}")));
    reply_ephemeral(ctx, truncate(&answer, MAX_CONTENT)).await;
    Ok(())
}

/// Remix mode: V and Reroll let you edit the prompt before the job starts
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn remix(
    ctx: Context<'_>,
    #[description = "True: V and Reroll open the Remix form first"] enabled: bool,
) -> Result<(), Error> {
    let (user_id, guild_id) = member_and_guild(ctx)?;
    let changed = db::prefs::set_remix(&ctx.data().pool, user_id.into(), guild_id.into(), enabled)
        .await
        .context("changing remix mode")?;
    info!(user_id, guild_id, enabled, changed, "remix mode set");
    let state = if enabled {
        "on: V and Reroll open the Remix form first, so you can edit the prompt"
    } else {
        "off: V and Reroll start their job at once"
    };
    let already = if changed { "" } else { "already " };
    reply_ephemeral(ctx, format!("Remix mode is {already}{state}.")).await;
    Ok(())
}

/// "aspect ratio not set → **16:9**".
fn describe_change(change: &PrefChange) -> String {
    let old = change.old.as_deref().unwrap_or("not set");
    match change.new.as_deref() {
        Some(new) => format!("{} {old} → **{new}**", change.what),
        None => format!("{} {old} → not set", change.what),
    }
}

/// What `/prefs show` says.
fn overview(mine: &Prefs, server: &GuildDefaults) -> String {
    let mut lines = vec!["**Your preferences** (the same in every server)".to_owned()];
    lines.push("What `/imagine` uses here when you give neither the option nor the flag:".into());
    for (setting, value, layer) in prefs::effective_defaults(&mine.defaults, server) {
        lines.push(format!("- {}: {} ({})", setting.label(), shown(&value), layer.label()));
    }
    lines.push(match &mine.suffix {
        Some(suffix) => format!("Suffix: `{suffix}`"),
        None => "Suffix: none".into(),
    });
    if mine.options.is_empty() {
        lines.push(format!("Options: none (up to {MAX_OPTIONS}, see `/prefs option`)"));
    } else {
        lines.push(format!("Options ({} of {MAX_OPTIONS}):", mine.options.len()));
        for (name, value) in &mine.options {
            lines.push(format!("- `--{name}` → `{}`", shown(value)));
        }
    }
    lines.push(format!("Remix mode: {}", if mine.remix { "on" } else { "off" }));
    lines.join("\n")
}

/// A value inside backticks, shortened.
fn shown(value: &str) -> String {
    truncate(&value.replace('`', "'"), SHOWN_VALUE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overview_lists_everything_with_sources() {
        let mine = Prefs {
            defaults: GuildDefaults { aspect_ratio: AspectRatio::parse_exact("16:9"), ..GuildDefaults::default() },
            suffix: Some("soft light".into()),
            options: [("cine".to_owned(), "film `grain` --ar 21:9".to_owned())].into(),
            remix: true,
        };
        let server = GuildDefaults { chaos: Some(20), ..GuildDefaults::default() };
        let text = overview(&mine, &server);
        for expected in [
            "- aspect ratio: 16:9 (yours)",
            "- performance: balance (built-in)",
            "- chaos: 20 (server)",
            "Suffix: `soft light`",
            "Options (1 of 20):\n- `--cine` → `film 'grain' --ar 21:9`",
            "Remix mode: on",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
    }
}
