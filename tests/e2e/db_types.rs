//! Types at the database boundary, against a real PostgreSQL and without a bot: Discord ids cross
//! it unchanged or not at all, and the settings' aspect ratio and performance are enum columns
//! that the migration filled from the text they held before.

use imagine_bot::{
    db::{self, DiscordId, MIGRATOR},
    spec::{AspectRatio, Performance},
};
use sqlx::PgPool;

use crate::support;

/// The migration that made `aspect_ratio` and `performance` enum columns.
const SETTINGS_ENUMS: i64 = 20261203120000;

#[tokio::test]
async fn discord_ids_cross_the_database_unchanged_or_not_at_all() {
    let (_database, pool) = support::fresh_pool().await;
    let (guild, admin) = (DiscordId::new(1180000000000000100), DiscordId::new(1180000000000000300));
    let largest = DiscordId::new(u64::try_from(i64::MAX).unwrap());
    let (_, listed) = db::settings::set_channel(&pool, guild, largest, true, admin).await.unwrap();
    assert_eq!(listed, vec![largest.get()]);
    assert_eq!(db::settings::load(&pool, guild).await.unwrap().allowed_channels, vec![largest.get()]);

    // One past what a bigint holds is refused, not stored as a negative number.
    let beyond = DiscordId::new(largest.get() + 1);
    assert!(db::settings::set_channel(&pool, guild, beyond, true, admin).await.is_err());
    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT channel_id FROM guild_allowed_channels").fetch_all(&pool).await.unwrap();
    assert_eq!(stored, vec![i64::MAX]);

    // A negative id written by hand is refused on the way out, not read as a huge one.
    sqlx::query("INSERT INTO guild_allowed_channels (guild_id, channel_id) VALUES ($1, -5)")
        .bind(guild)
        .execute(&pool)
        .await
        .unwrap();
    assert!(db::settings::load(&pool, guild).await.is_err());
}

#[tokio::test]
async fn the_settings_migration_keeps_known_defaults_and_clears_unknown_ones() {
    let database = support::fresh_database().await;
    let pool = PgPool::connect(&database).await.unwrap();
    let (before, from_enums): (Vec<_>, Vec<_>) = MIGRATOR.iter().partition(|m| m.version < SETTINGS_ENUMS);
    for migration in before {
        sqlx::raw_sql(&migration.sql).execute(&pool).await.unwrap();
    }
    // A value outside the set needs the old CHECK dropped, as someone could have by hand.
    sqlx::raw_sql(
        "INSERT INTO guild_settings (guild_id, aspect_ratio, performance) VALUES (1, '16:9', 'quality'), (2, NULL, NULL);
         ALTER TABLE user_prefs DROP CONSTRAINT user_prefs_aspect_ratio_check;
         INSERT INTO user_prefs (user_id, aspect_ratio, performance) VALUES (3, '7:3', 'speed');",
    )
    .execute(&pool)
    .await
    .unwrap();
    for migration in from_enums {
        sqlx::raw_sql(&migration.sql).execute(&pool).await.unwrap();
    }

    let kept = db::settings::load(&pool, DiscordId::new(1)).await.unwrap().defaults;
    assert_eq!((kept.aspect_ratio, kept.performance), (AspectRatio::parse_exact("16:9"), Some(Performance::Quality)));
    let unset = db::settings::load(&pool, DiscordId::new(2)).await.unwrap().defaults;
    assert_eq!((unset.aspect_ratio, unset.performance), (None, None));
    let cleared = db::prefs::load(&pool, DiscordId::new(3)).await.unwrap().defaults;
    assert_eq!((cleared.aspect_ratio, cleared.performance), (None, Some(Performance::Speed)), "7:3: no default");

    // The columns refuse what the bot could not read.
    let refused = sqlx::query("UPDATE user_prefs SET aspect_ratio = '7:3' WHERE user_id = 3").execute(&pool).await;
    assert!(refused.is_err(), "an unknown ratio was stored");
}
