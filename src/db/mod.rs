//! PostgreSQL access: one module per table, one function per statement. Functions take an
//! executor so callers can pass a pool or a transaction.

pub mod jobs;
pub mod log_notices;
pub mod members;
pub mod prefs;
pub mod quotas;
pub mod role_limits;
pub mod settings;
mod types;

pub use types::DiscordId;
use types::{int4, out_of_range};

use std::time::Duration;

use sqlx::{
    PgExecutor, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connects to `url` and applies the embedded migrations.
///
/// Acquiring a connection gives up after two seconds so that a command can still answer within
/// Discord's three seconds when the database is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(2))
        // sqlx pings every connection it hands out by default: one more round trip before each
        // statement. A connection in steady use is known to be alive; only one idle for a while
        // (which a database restart may have cut) is pinged, and dropped if it does not answer.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Whether the database answers, for `/readyz`.
pub async fn ping(db: &PgPool) -> bool {
    sqlx::query!("SELECT 1 AS one").fetch_one(db).await.is_ok()
}

/// Whether the cluster has a database called `name`.
pub async fn database_exists(db: impl PgExecutor<'_>, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
        .fetch_one(db)
        .await
}

/// Creates the database `name`. (An identifier cannot be a bound parameter, so this one statement
/// is built at run time; the name is quoted and stripped of quotes.)
pub async fn create_database(db: impl PgExecutor<'_>, name: &str) -> Result<(), sqlx::Error> {
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
    sqlx::query(&create).execute(db).await?;
    Ok(())
}

/// Sets the password of the role `conn` is logged in as (the local cluster's superuser), stored
/// as a SCRAM verifier. `ALTER ROLE` takes no bound parameters, so the password goes in as one of
/// a transaction-local setting that a `DO` block reads: no statement text, and so no statement
/// log, ever holds it.
pub async fn set_own_password(conn: &mut sqlx::PgConnection, password: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query_scalar!(r#"SELECT set_config('imagine_bot.new_password', $1, true) IS NOT NULL AS "set!""#, password)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query!(
        r#"DO $$ BEGIN
            SET LOCAL password_encryption = 'scram-sha-256';
            EXECUTE format('ALTER ROLE %I PASSWORD %L', current_user, current_setting('imagine_bot.new_password'));
        END $$"#
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The server's version, for `doctor`.
pub async fn server_version(db: impl PgExecutor<'_>) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT current_setting('server_version') AS "version!""#).fetch_one(db).await
}

/// How many migrations the database has applied, for `doctor`. (The table is sqlx's own and
/// absent from a database the bot never started on, so this query is checked at run time.)
pub async fn applied_migrations(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(db).await
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
