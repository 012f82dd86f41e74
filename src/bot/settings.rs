//! `/settings show | defaults | channels | roles | blocked_words | log_channel | notify`: a server's own
//! rules for `/imagine`.
//! Admin only, like `/quota`: Discord hides the commands from members without Manage Server and
//! the bot checks the permission itself. Every change is recorded and shown by `/settings show`.

use std::time::Duration;

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::info;

mod log_channel;

use super::{Context, Error, reply_ephemeral, require_admin};
use crate::{
    db::{
        self,
        settings::{IdList, ListEdit, RecordedChange},
    },
    render::truncate,
    settings::{
        self, DefaultsInput, DefaultsUpdate, GuildDefaults, GuildSettings, LogSettings, Setting, SettingChange,
    },
    spec::{AspectRatio, Performance},
    words::UserError,
};

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2000;
/// Recent changes listed by `/settings show`.
const SHOWN_CHANGES: i64 = 10;
/// How long checking a channel with Discord may take before the command gives up.
const CHANNEL_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// See and change this server's rules for /imagine
#[poise::command(
    slash_command,
    guild_only,
    install_context = "Guild",
    subcommands(
        "show",
        "defaults",
        "channels",
        "roles",
        "blocked_words",
        "log_channel::log_channel",
        "log_channel::notify"
    ),
    subcommand_required,
    default_member_permissions = "MANAGE_GUILD"
)]
pub async fn settings(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

fn guild_id(ctx: Context<'_>) -> Result<serenity::GuildId, Error> {
    ctx.guild_id().context("guild_only command without a guild")
}

/// Every setting of this server, and who changed what recently
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn show(ctx: Context<'_>) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild_id = guild_id(ctx)?.get();
    let pool = &ctx.data().pool;
    let settings = db::settings::load(pool, guild_id.into()).await.context("loading settings")?;
    let log = db::settings::log_settings(pool, guild_id.into()).await.context("loading the log channel")?;
    let changes =
        db::settings::recent_changes(pool, guild_id.into(), SHOWN_CHANGES).await.context("loading changes")?;
    reply_ephemeral(ctx, overview(&settings, log, &changes)).await;
    Ok(())
}

/// Defaults for /imagine, used when a member gives neither the option nor the flag
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
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
    #[description = "Clear every default (on its own)"] reset: Option<bool>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let input = DefaultsInput {
        values: GuildDefaults { aspect_ratio, performance, stylization, chaos, weirdness, negative_prompt },
        reset: reset.unwrap_or(false),
    };
    let update = settings::defaults_update(input).map_err(UserError::Input)?;
    let guild_id = guild_id(ctx)?.get();
    let admin = ctx.author().id.get();
    let (defaults, changes) = db::settings::set_defaults(&ctx.data().pool, guild_id.into(), &update, admin.into())
        .await
        .context("changing the defaults")?;
    info!(guild_id, admin, ?changes, "settings defaults changed");
    let mut text = match (&update, changes.is_empty()) {
        (DefaultsUpdate::Reset, true) => "There were no defaults to clear.".to_owned(),
        (DefaultsUpdate::Reset, false) => "Every default is cleared: `/imagine` uses the bot's own again.".to_owned(),
        (DefaultsUpdate::Set { .. }, true) => "Nothing changed: those are already this server's defaults.".to_owned(),
        (DefaultsUpdate::Set { .. }, false) => {
            let list: Vec<String> = changes.iter().map(describe_default_change).collect();
            format!("Defaults changed: {}.", list.join("; "))
        }
    };
    if let DefaultsUpdate::Set { notes, .. } = &update {
        for note in notes {
            text.push('\n');
            text.push_str(note);
        }
    }
    text.push_str(&format!("\n{}", defaults_lines(&defaults)));
    reply_ephemeral(ctx, truncate(&text, MAX_CONTENT)).await;
    Ok(())
}

/// Allow /imagine in a channel, or take it off the list (no list: every channel)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn channels(
    ctx: Context<'_>,
    #[description = "The channel"]
    #[channel_types("Text", "News", "Forum", "Voice", "Stage", "PublicThread", "PrivateThread", "NewsThread")]
    channel: serenity::PartialChannel,
    #[description = "True: /imagine works there; False: take it off the list"] allowed: bool,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild = guild_id(ctx)?;
    if allowed {
        check_channel_is_here(ctx, &channel, guild).await?;
    }
    let (guild_id, admin) = (guild.get(), ctx.author().id.get());
    let (edit, list) =
        db::settings::set_channel(&ctx.data().pool, guild_id.into(), channel.id.into(), allowed, admin.into())
            .await
            .context("changing the allowed channels")?;
    info!(guild_id, admin, channel = channel.id.get(), allowed, ?edit, "settings channels changed");
    let mention = format!("<#{}>", channel.id);
    let text = match (edit, allowed) {
        (ListEdit::Full, _) => {
            return Err(UserError::Input(format!(
                "This server already allows {} channels, the most it can. Take one off with `allowed:False` first.",
                settings::MAX_ALLOWED_CHANNELS
            ))
            .into());
        }
        (ListEdit::Changed, true) => format!("{mention} is allowed. {}", where_allowed(&list, MAX_CONTENT / 2)),
        (ListEdit::Changed, false) => format!("{mention} is off the list. {}", where_allowed(&list, MAX_CONTENT / 2)),
        (ListEdit::Unchanged, true) => {
            format!("{mention} was already allowed; nothing changed. {}", where_allowed(&list, MAX_CONTENT / 2))
        }
        (ListEdit::Unchanged, false) => {
            format!("{mention} was not on the list; nothing changed. {}", where_allowed(&list, MAX_CONTENT / 2))
        }
    };
    reply_ephemeral(ctx, text).await;
    Ok(())
}

/// Let members with a role start image jobs, or take the role off the list (no list: everyone)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn roles(
    ctx: Context<'_>,
    #[description = "The role"] role: serenity::RoleId,
    #[description = "True: its members may start image jobs; False: take it off the list"] allowed: bool,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild = guild_id(ctx)?;
    // Discord leaves @everyone (whose id is the server's) out of a member's roles, so listing it
    // would lock out everyone it names.
    if allowed && role.get() == guild.get() {
        return Err(UserError::Input(
            "@everyone is every member: to let everyone start image jobs, take the other roles off the list with \
             `allowed:False`."
                .into(),
        )
        .into());
    }
    let (guild_id, admin) = (guild.get(), ctx.author().id.get());
    let (edit, list) = db::settings::set_listed(
        &ctx.data().pool,
        guild_id.into(),
        IdList::JobRoles,
        role.into(),
        allowed,
        admin.into(),
    )
    .await
    .context("changing the roles that may start jobs")?;
    info!(guild_id, admin, role = role.get(), allowed, ?edit, "settings roles changed");
    let mention = format!("<@&{role}>");
    let text = match (edit, allowed) {
        (ListEdit::Full, _) => {
            return Err(UserError::Input(format!(
                "This server already lists {} roles, the most it can. Take one off with `allowed:False` first.",
                settings::MAX_JOB_ROLES
            ))
            .into());
        }
        (ListEdit::Changed, true) => {
            format!("Members with {mention} may start image jobs. {}", who_may_start(&list, MAX_CONTENT / 2))
        }
        (ListEdit::Changed, false) => format!("{mention} is off the list. {}", who_may_start(&list, MAX_CONTENT / 2)),
        (ListEdit::Unchanged, true) => {
            format!("{mention} was already on the list; nothing changed. {}", who_may_start(&list, MAX_CONTENT / 2))
        }
        (ListEdit::Unchanged, false) => {
            format!("{mention} was not on the list; nothing changed. {}", who_may_start(&list, MAX_CONTENT / 2))
        }
    };
    reply_ephemeral(ctx, text).await;
    Ok(())
}

/// Asks Discord which server the channel belongs to: the resolved channel of an interaction
/// carries no server, so a channel of another server can only be told apart this way.
async fn check_channel_is_here(
    ctx: Context<'_>,
    channel: &serenity::PartialChannel,
    guild: serenity::GuildId,
) -> Result<(), Error> {
    let mention = format!("<#{}>", channel.id);
    if channel.kind == serenity::ChannelType::Category {
        return Err(UserError::Input(format!(
            "{mention} is a category. Pick a channel where members can use `/imagine`."
        ))
        .into());
    }
    let fetched = tokio::time::timeout(CHANNEL_CHECK_TIMEOUT, ctx.http().get_channel(channel.id))
        .await
        .context("Discord did not answer in time about a channel")?;
    match fetched {
        Ok(serenity::Channel::Guild(found)) if found.guild_id == guild => Ok(()),
        Ok(_) => Err(not_here(&mention)),
        Err(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response))) => {
            match response.status_code.as_u16() {
                404 => Err(not_here(&mention)),
                403 => Err(UserError::Input(format!(
                    "I cannot see {mention}, so I cannot check that it belongs to this server. Give me the View \
                     Channel permission there (I need it to post results there too), then try again."
                ))
                .into()),
                status => Err(anyhow::anyhow!("Discord answered HTTP {status} about a channel")),
            }
        }
        Err(e) => Err(anyhow::Error::new(e).context("asking Discord about a channel")),
    }
}

fn not_here(mention: &str) -> Error {
    UserError::Input(format!("{mention} is not a channel of this server. Pick one of this server's channels.")).into()
}

/// Block words in prompts, or allow them again (comma-separated)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn blocked_words(
    ctx: Context<'_>,
    #[description = "Words to block, separated by commas"]
    #[max_length = 1000]
    add: Option<String>,
    #[description = "Words to allow again, separated by commas"]
    #[max_length = 1000]
    remove: Option<String>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let edit = settings::words_edit(add.as_deref(), remove.as_deref()).map_err(UserError::Input)?;
    let guild_id = guild_id(ctx)?.get();
    let admin = ctx.author().id.get();
    let outcome = db::settings::edit_blocked_words(&ctx.data().pool, guild_id.into(), &edit, admin.into())
        .await
        .context("changing the blocked words")?;
    if outcome.full {
        return Err(UserError::Input(format!(
            "That would block more than {} words, the most a server can. Remove some with `remove:` first.",
            settings::MAX_BLOCKED_WORDS
        ))
        .into());
    }
    info!(guild_id, admin, added = ?outcome.added, removed = ?outcome.removed, "settings blocked words changed");
    let mut lines = Vec::new();
    for (label, words) in [
        ("Blocked", &outcome.added),
        ("Allowed again", &outcome.removed),
        ("Already blocked", &outcome.already),
        ("Not on the list", &outcome.missing),
    ] {
        if !words.is_empty() {
            lines.push(format!("{label}: {}.", word_list(words, 300)));
        }
    }
    lines.push(blocked_summary(&outcome.words, 1200));
    reply_ephemeral(ctx, truncate(&lines.join("\n"), MAX_CONTENT)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// How settings read
// ---------------------------------------------------------------------------------------------

fn defaults_lines(defaults: &GuildDefaults) -> String {
    let shown: Vec<String> = defaults
        .entries()
        .into_iter()
        .map(|(setting, value)| {
            let name = capitalised(setting.label());
            match value {
                Some(v) if setting == Setting::NegativePrompt => format!("{name}: **{}**", truncate(&v, 200)),
                Some(v) => format!("{name}: **{v}**"),
                None => format!("{name}: not set ({})", GuildDefaults::built_in(setting)),
            }
        })
        .collect();
    format!("{}\n{}", shown[..5].join(" · "), shown[5])
}

fn capitalised(label: &str) -> String {
    let mut chars = label.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Where `/imagine` works, the channels listed within about `budget` characters.
fn where_allowed(channels: &[u64], budget: usize) -> String {
    if channels.is_empty() {
        "`/imagine` works in every channel.".to_owned()
    } else {
        let mentions: Vec<String> = channels.iter().map(|c| format!("<#{c}>")).collect();
        format!("`/imagine` works only in {} (and their threads).", listed(&mentions, budget))
    }
}

/// Who may start image jobs, the roles listed within about `budget` characters.
fn who_may_start(roles: &[u64], budget: usize) -> String {
    if roles.is_empty() {
        "Every member may start image jobs.".to_owned()
    } else {
        let mentions: Vec<String> = roles.iter().map(|r| format!("<@&{r}>")).collect();
        format!("Only members with {} (and admins) may start image jobs.", listed(&mentions, budget))
    }
}

/// `` `a`, `b` and 3 more `` within about `budget` characters.
fn word_list(words: &[String], budget: usize) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    listed(&quoted, budget)
}

/// `a, b and 3 more` within about `budget` characters.
fn listed(items: &[String], budget: usize) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if !out.is_empty() && out.len() + item.len() + 2 > budget {
            return format!("{out} and {} more", items.len() - i);
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(item);
    }
    out
}

fn blocked_summary(words: &[String], budget: usize) -> String {
    match words.len() {
        0 => "No words are blocked.".to_owned(),
        n => format!("Blocked words ({n}): {}.", word_list(words, budget)),
    }
}

fn shown_value(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("**{}**", truncate(v, 60)),
        None => "not set".to_owned(),
    }
}

fn describe_default_change(change: &SettingChange) -> String {
    format!("{} {} → {}", change.setting.label(), shown_value(&change.old), shown_value(&change.new))
}

fn describe_recorded(change: &RecordedChange) -> String {
    let what = match (change.setting, &change.old_value, &change.new_value) {
        (Setting::AllowedChannel, None, Some(id)) => format!("allowed <#{id}>"),
        (Setting::AllowedChannel, Some(id), _) => format!("took <#{id}> off the allowed channels"),
        (Setting::BlockedWord, None, Some(word)) => format!("blocked `{word}`"),
        (Setting::BlockedWord, Some(word), _) => format!("allowed `{word}` again"),
        (Setting::JobRole, None, Some(id)) => format!("let <@&{id}> start image jobs"),
        (Setting::JobRole, Some(id), _) => format!("took <@&{id}> off the roles that may start image jobs"),
        (Setting::LogChannel, _, Some(id)) => format!("made <#{id}> the log channel"),
        (Setting::LogChannel, _, None) => "cleared the log channel".to_owned(),
        (Setting::Notify, _, Some(on)) => format!("turned the ping when a long job is done **{on}**"),
        (setting, old, new) => describe_default_change(&SettingChange { setting, old: old.clone(), new: new.clone() }),
    };
    format!("<t:{}:R> <@{}> {what}", change.changed_at.timestamp(), change.changed_by)
}

/// `/settings show`, within Discord's 2000 characters: the oldest changes are left out first.
fn overview(settings: &GuildSettings, log: LogSettings, changes: &[RecordedChange]) -> String {
    let words = settings.blocked_words.as_slice();
    let blocked = match words.len() {
        0 => "**Blocked words:** none".to_owned(),
        n => format!("**Blocked words** ({n}): {}", word_list(words, 400)),
    };
    let mut text = format!(
        "**Settings for this server**\n\
         **Defaults for /imagine** (used when a member gives neither the option nor the flag)\n{}\n\
         **Channels:** {}\n**Roles:** {}\n{blocked}\n**Log channel:** {}\n**Ping when a long job is done:** {}\n",
        defaults_lines(&settings.defaults),
        where_allowed(&settings.allowed_channels, 400),
        who_may_start(&settings.job_roles, 300),
        log.log_channel.map_or("none".to_owned(), |id| format!("<#{id}>")),
        if log.notify { "on" } else { "off" },
    );
    if changes.is_empty() {
        text.push_str(
            "No changes yet: see `/settings defaults`, `/settings channels`, `/settings roles`, \
             `/settings blocked_words`, `/settings log_channel` and `/settings notify`.",
        );
        return text;
    }
    text.push_str("**Recent changes**");
    for change in changes {
        let line = format!("\n{}", describe_recorded(change));
        if text.chars().count() + line.chars().count() > MAX_CONTENT {
            break;
        }
        text.push_str(&line);
    }
    text
}

#[cfg(test)]
mod tests;
