//! A server's settings (`guild_settings`, `guild_allowed_channels`, `guild_job_roles`,
//! `guild_blocked_words`) and the audit of every change to them (`settings_changes`).

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgExecutor, PgPool, types::Json};

use super::{DiscordId, int4, prefs::PrefsColumns};

use crate::{
    prefs::Prefs,
    settings::{
        self, BlockedWords, DefaultsUpdate, GuildDefaults, GuildSettings, LogSettings, Setting, SettingChange,
        WordsEdit,
    },
    spec::{AspectRatio, Performance},
};

/// Everything `/imagine` needs to know about the guild (see [`load_with_prefs`]).
pub async fn load(db: impl PgExecutor<'_>, guild_id: DiscordId) -> Result<GuildSettings, sqlx::Error> {
    Ok(load_with_prefs(db, guild_id, None).await?.0)
}

/// Everything `/imagine` needs to know about the guild and, with `user_id`, the member's own
/// preferences, in one statement (it runs inside the reservation's transaction, so it adds no
/// transaction of its own, and nothing is cached).
pub async fn load_with_prefs(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    user_id: Option<DiscordId>,
) -> Result<(GuildSettings, Prefs), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.aspect_ratio AS "aspect_ratio?: AspectRatio", s.performance AS "performance?: Performance",
                  s.stylization AS "stylization?", s.chaos AS "chaos?", s.weirdness AS "weirdness?",
                  s.negative_prompt AS "negative_prompt?",
                  ARRAY(SELECT channel_id FROM guild_allowed_channels WHERE guild_id = $1 ORDER BY channel_id)
                    AS "allowed_channels!: Vec<DiscordId>",
                  ARRAY(SELECT role_id FROM guild_job_roles WHERE guild_id = $1 ORDER BY role_id) AS "job_roles!: Vec<DiscordId>",
                  ARRAY(SELECT word FROM guild_blocked_words WHERE guild_id = $1 ORDER BY word) AS "blocked_words!",
                  p.aspect_ratio AS "p_aspect_ratio?: AspectRatio", p.performance AS "p_performance?: Performance",
                  p.stylization AS "p_stylization?", p.chaos AS "p_chaos?", p.weirdness AS "p_weirdness?",
                  p.negative_prompt AS "p_negative_prompt?", p.suffix AS "p_suffix?",
                  p.options AS "p_options?: Json<BTreeMap<String, String>>", p.remix AS "p_remix?"
           FROM (VALUES (1)) AS one
             LEFT JOIN guild_settings s ON s.guild_id = $1
             LEFT JOIN user_prefs p ON p.user_id = $2"#,
        guild_id as DiscordId,
        user_id as Option<DiscordId>,
    )
    .fetch_one(db)
    .await?;
    let prefs = PrefsColumns {
        aspect_ratio: row.p_aspect_ratio,
        performance: row.p_performance,
        stylization: row.p_stylization,
        chaos: row.p_chaos,
        weirdness: row.p_weirdness,
        negative_prompt: row.p_negative_prompt,
        suffix: row.p_suffix,
        options: row.p_options,
        remix: row.p_remix,
    }
    .into_prefs();
    let settings = GuildSettings {
        defaults: defaults_from_row(
            row.aspect_ratio,
            row.performance,
            [row.stylization, row.chaos, row.weirdness],
            row.negative_prompt,
        ),
        allowed_channels: row.allowed_channels.into_iter().map(DiscordId::get).collect(),
        job_roles: row.job_roles.into_iter().map(DiscordId::get).collect(),
        blocked_words: BlockedWords::new(row.blocked_words),
    };
    Ok((settings, prefs))
}

/// The guild's log channel and whether long jobs ping their owner.
pub async fn log_settings(db: impl PgExecutor<'_>, guild_id: DiscordId) -> Result<LogSettings, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.log_channel_id AS "log_channel_id?: DiscordId", COALESCE(s.notify, true) AS "notify!"
           FROM (VALUES (1)) AS one LEFT JOIN guild_settings s ON s.guild_id = $1"#,
        guild_id as DiscordId,
    )
    .fetch_one(db)
    .await?;
    Ok(LogSettings { log_channel: row.log_channel_id.map(DiscordId::get), notify: row.notify })
}

/// Sets (or with `None`, clears) the guild's log channel, recording the change. Returns the
/// channel it had before.
pub async fn set_log_channel(
    db: &PgPool,
    guild_id: DiscordId,
    channel_id: Option<DiscordId>,
    changed_by: DiscordId,
) -> Result<Option<DiscordId>, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx, guild_id).await?;
    let old = sqlx::query_scalar!(
        r#"SELECT log_channel_id AS "log_channel_id: DiscordId" FROM guild_settings WHERE guild_id = $1"#,
        guild_id as DiscordId
    )
    .fetch_one(&mut *tx)
    .await?;
    if old != channel_id {
        sqlx::query!(
            "UPDATE guild_settings SET log_channel_id = $2 WHERE guild_id = $1",
            guild_id as DiscordId,
            channel_id as Option<DiscordId>
        )
        .execute(&mut *tx)
        .await?;
        let text = |id: Option<DiscordId>| id.map(|id| id.to_string());
        let change = SettingChange { setting: Setting::LogChannel, old: text(old), new: text(channel_id) };
        record(&mut tx, guild_id, changed_by, &change).await?;
    }
    tx.commit().await?;
    Ok(old)
}

/// Turns the follow-up ping of long jobs on or off, recording the change. False when it already
/// was so (nothing recorded).
pub async fn set_notify(
    db: &PgPool,
    guild_id: DiscordId,
    enabled: bool,
    changed_by: DiscordId,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx, guild_id).await?;
    let old = sqlx::query_scalar!("SELECT notify FROM guild_settings WHERE guild_id = $1", guild_id as DiscordId)
        .fetch_one(&mut *tx)
        .await?;
    let changed = old != enabled;
    if changed {
        sqlx::query!("UPDATE guild_settings SET notify = $2 WHERE guild_id = $1", guild_id as DiscordId, enabled)
            .execute(&mut *tx)
            .await?;
        let text = |on: bool| Some(if on { "on" } else { "off" }.to_owned());
        let change = SettingChange { setting: Setting::Notify, old: text(old), new: text(enabled) };
        record(&mut tx, guild_id, changed_by, &change).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Creates the guild's settings row if it is new and locks it for the rest of the transaction,
/// so that changes to one guild's settings happen one after another. Returns its defaults.
async fn lock(tx: &mut PgConnection, guild_id: DiscordId) -> Result<GuildDefaults, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO guild_settings (guild_id) VALUES ($1) ON CONFLICT (guild_id) DO NOTHING",
        guild_id as DiscordId
    )
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query!(
        r#"SELECT aspect_ratio AS "aspect_ratio: AspectRatio", performance AS "performance: Performance",
             stylization, chaos, weirdness, negative_prompt FROM guild_settings WHERE guild_id = $1 FOR UPDATE"#,
        guild_id as DiscordId,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(defaults_from_row(
        row.aspect_ratio,
        row.performance,
        [row.stylization, row.chaos, row.weirdness],
        row.negative_prompt,
    ))
}

/// The defaults as stored (`[stylization, chaos, weirdness]` as the columns' integers).
fn defaults_from_row(
    aspect_ratio: Option<AspectRatio>,
    performance: Option<Performance>,
    [stylization, chaos, weirdness]: [Option<i32>; 3],
    negative_prompt: Option<String>,
) -> GuildDefaults {
    GuildDefaults {
        aspect_ratio,
        performance,
        stylization: stylization.map(i64::from),
        chaos: chaos.map(i64::from),
        weirdness: weirdness.map(i64::from),
        negative_prompt,
    }
}

async fn record(
    tx: &mut PgConnection,
    guild_id: DiscordId,
    changed_by: DiscordId,
    change: &SettingChange,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO settings_changes (guild_id, changed_by, setting, old_value, new_value) VALUES ($1, $2, $3, $4, $5)",
        guild_id as DiscordId,
        changed_by as DiscordId,
        change.setting as Setting,
        change.old,
        change.new,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies `/settings defaults` and records each default that changed. Returns the defaults
/// after the change and what changed.
pub async fn set_defaults(
    db: &PgPool,
    guild_id: DiscordId,
    update: &DefaultsUpdate,
    changed_by: DiscordId,
) -> Result<(GuildDefaults, Vec<SettingChange>), sqlx::Error> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, guild_id).await?;
    let new = update.apply(&current);
    let changes = settings::default_changes(&current, &new);
    for change in &changes {
        record(&mut tx, guild_id, changed_by, change).await?;
    }
    sqlx::query!(
        "UPDATE guild_settings SET aspect_ratio = $2, performance = $3, stylization = $4, chaos = $5, weirdness = $6, \
         negative_prompt = $7 WHERE guild_id = $1",
        guild_id as DiscordId,
        new.aspect_ratio as Option<AspectRatio>,
        new.performance as Option<Performance>,
        int4(new.stylization)?,
        int4(new.chaos)?,
        int4(new.weirdness)?,
        new.negative_prompt,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((new, changes))
}

/// What a change to a list (channels, roles, words) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListEdit {
    Changed,
    /// Already so: nothing to change, nothing recorded.
    Unchanged,
    /// The list is full; nothing changed.
    Full,
}

/// A list of a guild's settings that admins change one id at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdList {
    /// Channels `/imagine` and the buttons work in (`/settings channels`).
    AllowedChannels,
    /// Roles whose members may start jobs (`/settings roles`).
    JobRoles,
}

impl IdList {
    fn setting(self) -> Setting {
        match self {
            IdList::AllowedChannels => Setting::AllowedChannel,
            IdList::JobRoles => Setting::JobRole,
        }
    }

    fn max(self) -> usize {
        match self {
            IdList::AllowedChannels => settings::MAX_ALLOWED_CHANNELS,
            IdList::JobRoles => settings::MAX_JOB_ROLES,
        }
    }
}

/// Allows `/imagine` in a channel (`allowed`) or takes the channel off the list: [`set_listed`]
/// for [`IdList::AllowedChannels`].
pub async fn set_channel(
    db: &PgPool,
    guild_id: DiscordId,
    channel_id: DiscordId,
    allowed: bool,
    changed_by: DiscordId,
) -> Result<(ListEdit, Vec<u64>), sqlx::Error> {
    set_listed(db, guild_id, IdList::AllowedChannels, channel_id, allowed, changed_by).await
}

/// Puts `id` on the guild's `list` (`listed`) or takes it off, and records the change. Returns
/// what happened and the list afterwards, sorted.
pub async fn set_listed(
    db: &PgPool,
    guild_id: DiscordId,
    list: IdList,
    id: DiscordId,
    listed: bool,
    changed_by: DiscordId,
) -> Result<(ListEdit, Vec<u64>), sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx, guild_id).await?;
    let mut ids: Vec<u64> = match list {
        IdList::AllowedChannels => {
            sqlx::query_scalar!(
                r#"SELECT channel_id AS "channel_id: DiscordId" FROM guild_allowed_channels WHERE guild_id = $1"#,
                guild_id as DiscordId
            )
            .fetch_all(&mut *tx)
            .await?
        }
        IdList::JobRoles => {
            sqlx::query_scalar!(
                r#"SELECT role_id AS "role_id: DiscordId" FROM guild_job_roles WHERE guild_id = $1"#,
                guild_id as DiscordId
            )
            .fetch_all(&mut *tx)
            .await?
        }
    }
    .into_iter()
    .map(DiscordId::get)
    .collect();
    let was_listed = ids.contains(&id.get());
    let edit = if listed == was_listed {
        ListEdit::Unchanged
    } else if listed && ids.len() >= list.max() {
        ListEdit::Full
    } else {
        match (list, listed) {
            (IdList::AllowedChannels, true) => {
                sqlx::query!(
                    "INSERT INTO guild_allowed_channels (guild_id, channel_id) VALUES ($1, $2)",
                    guild_id as DiscordId,
                    id as DiscordId
                )
            }
            (IdList::AllowedChannels, false) => {
                sqlx::query!(
                    "DELETE FROM guild_allowed_channels WHERE guild_id = $1 AND channel_id = $2",
                    guild_id as DiscordId,
                    id as DiscordId
                )
            }
            (IdList::JobRoles, true) => {
                sqlx::query!(
                    "INSERT INTO guild_job_roles (guild_id, role_id) VALUES ($1, $2)",
                    guild_id as DiscordId,
                    id as DiscordId
                )
            }
            (IdList::JobRoles, false) => {
                sqlx::query!(
                    "DELETE FROM guild_job_roles WHERE guild_id = $1 AND role_id = $2",
                    guild_id as DiscordId,
                    id as DiscordId
                )
            }
        }
        .execute(&mut *tx)
        .await?;
        let text = Some(id.to_string());
        let change = if listed {
            ids.push(id.get());
            SettingChange { setting: list.setting(), old: None, new: text }
        } else {
            ids.retain(|listed| *listed != id.get());
            SettingChange { setting: list.setting(), old: text, new: None }
        };
        record(&mut tx, guild_id, changed_by, &change).await?;
        ListEdit::Changed
    };
    tx.commit().await?;
    ids.sort_unstable();
    Ok((edit, ids))
}

/// What `/settings blocked_words` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordsOutcome {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Asked to add, but already blocked.
    pub already: Vec<String>,
    /// Asked to remove, but not blocked.
    pub missing: Vec<String>,
    /// Adding would pass [`settings::MAX_BLOCKED_WORDS`]: nothing changed.
    pub full: bool,
    /// The blocked words afterwards.
    pub words: Vec<String>,
}

/// Adds and removes blocked words, recording each one that changed. All or nothing: a list that
/// would grow past the maximum changes nothing.
pub async fn edit_blocked_words(
    db: &PgPool,
    guild_id: DiscordId,
    edit: &WordsEdit,
    changed_by: DiscordId,
) -> Result<WordsOutcome, sqlx::Error> {
    let mut tx = db.begin().await?;
    lock(&mut tx, guild_id).await?;
    let current = sqlx::query_scalar!(
        "SELECT word FROM guild_blocked_words WHERE guild_id = $1 ORDER BY word",
        guild_id as DiscordId
    )
    .fetch_all(&mut *tx)
    .await?;
    let (added, already): (Vec<String>, Vec<String>) = edit.add.iter().cloned().partition(|w| !current.contains(w));
    let (removed, missing): (Vec<String>, Vec<String>) = edit.remove.iter().cloned().partition(|w| current.contains(w));
    let mut words: Vec<String> =
        current.iter().filter(|w| !removed.contains(w)).cloned().chain(added.iter().cloned()).collect();
    words.sort();
    if !added.is_empty() && words.len() > settings::MAX_BLOCKED_WORDS {
        tx.rollback().await?;
        return Ok(WordsOutcome { full: true, words: current, ..Default::default() });
    }
    sqlx::query!(
        "DELETE FROM guild_blocked_words WHERE guild_id = $1 AND word = ANY($2)",
        guild_id as DiscordId,
        &removed
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO guild_blocked_words (guild_id, word) SELECT $1, unnest($2::text[])",
        guild_id as DiscordId,
        &added
    )
    .execute(&mut *tx)
    .await?;
    let changes =
        added.iter().map(|w| SettingChange { setting: Setting::BlockedWord, old: None, new: Some(w.clone()) }).chain(
            removed.iter().map(|w| SettingChange { setting: Setting::BlockedWord, old: Some(w.clone()), new: None }),
        );
    for change in changes {
        record(&mut tx, guild_id, changed_by, &change).await?;
    }
    tx.commit().await?;
    Ok(WordsOutcome { added, removed, already, missing, full: false, words })
}

/// One recorded change, for `/settings show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedChange {
    pub changed_by: DiscordId,
    pub changed_at: chrono::DateTime<chrono::Utc>,
    pub setting: Setting,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// The guild's most recent changes, newest first.
pub async fn recent_changes(
    db: impl PgExecutor<'_>,
    guild_id: DiscordId,
    limit: i64,
) -> Result<Vec<RecordedChange>, sqlx::Error> {
    sqlx::query_as!(
        RecordedChange,
        r#"SELECT changed_by AS "changed_by: DiscordId", changed_at, setting AS "setting: Setting", old_value, new_value
           FROM settings_changes WHERE guild_id = $1 ORDER BY changed_at DESC, id DESC LIMIT $2"#,
        guild_id as DiscordId,
        limit,
    )
    .fetch_all(db)
    .await
}
