//! PostgreSQL access: one module per table, one function per statement. Functions take an
//! executor so callers can pass a pool or a transaction.

pub mod jobs;
pub mod quotas;

use std::time::Duration;

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Connects to `url` and applies the embedded migrations.
///
/// Acquiring a connection gives up after two seconds so that a command can still answer within
/// Discord's three seconds when the database is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Whether the database answers, for `/readyz`.
pub async fn ping(db: &PgPool) -> bool {
    sqlx::query!("SELECT 1 AS one").fetch_one(db).await.is_ok()
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
