//! The PostgreSQL the tests use, and one database per test that is dropped when the test is done
//! with it.

use std::{ops::Deref, path::Path, sync::OnceLock, time::Duration};

use imagine_bot::localpg;
use sqlx::Connection;

/// Port of the shared throwaway cluster the suite starts when `DATABASE_URL` is not set.
const TEST_PG_PORT: u16 = 54329;

/// The port of the shared throwaway cluster: `TEST_PG_PORT`, else 54329.
pub fn port() -> u16 {
    std::env::var("TEST_PG_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(TEST_PG_PORT)
}

/// The server URL (no database) of the PostgreSQL the tests use: `DATABASE_URL`'s server when
/// set, else a throwaway cluster under `target/` started once and shared by every test.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let base = url.rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or(url);
            return base;
        }
        let port = port();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pg-{port}"));
        localpg::ensure_cluster(&dir, port, localpg::Durability::Throwaway).expect("starting the test PostgreSQL")
    })
    .clone()
}

/// A database of one test. Dereferences to its URL. Dropping it drops the database, closing
/// whatever connections are still open to it, also when the test failed.
pub struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `<prefix>_<uuid>` on the server at `server_url`.
    pub async fn create(server_url: &str, prefix: &str) -> TestDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let url = localpg::ensure_database(server_url, &name).await.expect("creating a test database");
        TestDatabase { server: server_url.to_owned(), name, url }
    }
}

impl Deref for TestDatabase {
    type Target = str;

    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs within the test's runtime, or while a failed test unwinds: the statement runs
        // on a thread and runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), drop_database(&server, &name))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop the test database {}: the thread panicked", self.name),
        }
    }
}

async fn drop_database(server_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(&format!("{server_url}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await?;
    conn.close().await
}
