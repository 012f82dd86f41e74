//! A member's preferences (`user_prefs`) and the audit of every change to them
//! (`user_prefs_changes`). Keyed by user alone: the same preferences in every guild.

use std::collections::BTreeMap;

use sqlx::{PgConnection, PgExecutor, PgPool, types::Json};

use super::{DiscordId, int4};

use crate::{
    prefs::{self, OptionEdit, OptionOutcome, PrefChange, Prefs},
    settings::{DefaultsUpdate, GuildDefaults},
    spec::{AspectRatio, Performance},
};

/// The columns of `user_prefs` as a query reads them (all `None` when the member has no row), so
/// that a statement joining `user_prefs` onto another table (the reservation reads them together
/// with the guild's settings) can build the [`Prefs`] with [`PrefsColumns::into_prefs`].
#[derive(Debug, Default)]
pub struct PrefsColumns {
    pub aspect_ratio: Option<AspectRatio>,
    pub performance: Option<Performance>,
    pub stylization: Option<i32>,
    pub chaos: Option<i32>,
    pub weirdness: Option<i32>,
    pub negative_prompt: Option<String>,
    pub suffix: Option<String>,
    pub options: Option<Json<BTreeMap<String, String>>>,
    pub remix: Option<bool>,
}

impl PrefsColumns {
    pub fn into_prefs(self) -> Prefs {
        Prefs {
            defaults: GuildDefaults {
                aspect_ratio: self.aspect_ratio,
                performance: self.performance,
                stylization: self.stylization.map(i64::from),
                chaos: self.chaos.map(i64::from),
                weirdness: self.weirdness.map(i64::from),
                negative_prompt: self.negative_prompt,
            },
            suffix: self.suffix,
            options: self.options.map(|o| o.0).unwrap_or_default(),
            remix: self.remix.unwrap_or(false),
        }
    }
}

/// One member's preferences, in one statement (the defaults when they have none). Takes any
/// executor, so it can run inside a caller's transaction (`&mut *tx`).
pub async fn load(db: impl PgExecutor<'_>, user_id: DiscordId) -> Result<Prefs, sqlx::Error> {
    sqlx::query_as!(
        PrefsColumns,
        r#"SELECT p.aspect_ratio AS "aspect_ratio?: AspectRatio", p.performance AS "performance?: Performance",
                  p.stylization AS "stylization?", p.chaos AS "chaos?", p.weirdness AS "weirdness?",
                  p.negative_prompt AS "negative_prompt?", p.suffix AS "suffix?",
                  p.options AS "options?: Json<BTreeMap<String, String>>", p.remix AS "remix?"
           FROM (VALUES (1)) AS one LEFT JOIN user_prefs p ON p.user_id = $1"#,
        user_id as DiscordId,
    )
    .fetch_one(db)
    .await
    .map(PrefsColumns::into_prefs)
}

/// Creates the member's row if they have none and locks it for the rest of the transaction, so
/// that one member's changes happen one after another. Returns their preferences.
async fn lock(tx: &mut PgConnection, user_id: DiscordId) -> Result<Prefs, sqlx::Error> {
    sqlx::query!("INSERT INTO user_prefs (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING", user_id as DiscordId)
        .execute(&mut *tx)
        .await?;
    sqlx::query_as!(
        PrefsColumns,
        r#"SELECT aspect_ratio AS "aspect_ratio: AspectRatio", performance AS "performance: Performance",
                  stylization, chaos, weirdness, negative_prompt, suffix,
                  options AS "options?: Json<BTreeMap<String, String>>", remix AS "remix?"
           FROM user_prefs WHERE user_id = $1 FOR UPDATE"#,
        user_id as DiscordId,
    )
    .fetch_one(&mut *tx)
    .await
    .map(PrefsColumns::into_prefs)
}

async fn record(
    tx: &mut PgConnection,
    user_id: DiscordId,
    guild_id: DiscordId,
    change: &PrefChange,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO user_prefs_changes (user_id, guild_id, what, old_value, new_value) VALUES ($1, $2, $3, $4, $5)",
        user_id as DiscordId,
        guild_id as DiscordId,
        change.what,
        change.old,
        change.new,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Applies `/prefs defaults` (used in `guild_id`) and records each default that changed. Returns
/// the member's defaults after the change and what changed.
pub async fn set_defaults(
    db: &PgPool,
    user_id: DiscordId,
    guild_id: DiscordId,
    update: &DefaultsUpdate,
) -> Result<(GuildDefaults, Vec<PrefChange>), sqlx::Error> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, user_id).await?.defaults;
    let new = update.apply(&current);
    let changes = prefs::default_changes(&current, &new);
    for change in &changes {
        record(&mut tx, user_id, guild_id, change).await?;
    }
    sqlx::query!(
        "UPDATE user_prefs SET aspect_ratio = $2, performance = $3, stylization = $4, chaos = $5, weirdness = $6, \
         negative_prompt = $7 WHERE user_id = $1",
        user_id as DiscordId,
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

/// Sets (or with `None`, clears) the member's suffix, recording the change. Returns the suffix it
/// had before.
pub async fn set_suffix(
    db: &PgPool,
    user_id: DiscordId,
    guild_id: DiscordId,
    suffix: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let old = lock(&mut tx, user_id).await?.suffix;
    if old.as_deref() != suffix {
        sqlx::query!("UPDATE user_prefs SET suffix = $2 WHERE user_id = $1", user_id as DiscordId, suffix)
            .execute(&mut *tx)
            .await?;
        let change = PrefChange { what: "suffix".into(), old: old.clone(), new: suffix.map(str::to_owned) };
        record(&mut tx, user_id, guild_id, &change).await?;
    }
    tx.commit().await?;
    Ok(old)
}

/// Applies `/prefs option` within the limit, recording the change.
pub async fn edit_option(
    db: &PgPool,
    user_id: DiscordId,
    guild_id: DiscordId,
    edit: &OptionEdit,
) -> Result<OptionOutcome, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut options = lock(&mut tx, user_id).await?.options;
    let outcome = edit.apply(&mut options);
    let old = match &outcome {
        OptionOutcome::Set { old } => old.clone(),
        OptionOutcome::Deleted { old } => Some(old.clone()),
        OptionOutcome::Unchanged | OptionOutcome::Full | OptionOutcome::NotFound => return Ok(outcome),
    };
    sqlx::query!("UPDATE user_prefs SET options = $2 WHERE user_id = $1", user_id as DiscordId, Json(&options) as _)
        .execute(&mut *tx)
        .await?;
    let change = PrefChange { what: format!("option --{}", edit.name), old, new: edit.value.clone() };
    record(&mut tx, user_id, guild_id, &change).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Turns remix mode on or off, recording the change. False when it already was so.
pub async fn set_remix(
    db: &PgPool,
    user_id: DiscordId,
    guild_id: DiscordId,
    enabled: bool,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let old = lock(&mut tx, user_id).await?.remix;
    let changed = old != enabled;
    if changed {
        sqlx::query!("UPDATE user_prefs SET remix = $2 WHERE user_id = $1", user_id as DiscordId, enabled)
            .execute(&mut *tx)
            .await?;
        let text = |on: bool| Some(if on { "on" } else { "off" }.to_owned());
        record(&mut tx, user_id, guild_id, &PrefChange { what: "remix".into(), old: text(old), new: text(enabled) })
            .await?;
    }
    tx.commit().await?;
    Ok(changed)
}
