//! The PostgreSQL the tests use, and one database per test that is dropped when the test is done
//! with it. A cluster the tests start is stopped when the test process ends, however it ends.

use std::{
    ops::Deref,
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

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
        let running_before = postmaster_pid(&dir).is_some();
        let url =
            localpg::ensure_cluster(&dir, port, localpg::Durability::Throwaway).expect("starting the test PostgreSQL");
        // A cluster another process started (another test run, say) is left to it.
        if !running_before {
            stop_when_this_process_exits(&dir);
        }
        url
    })
    .clone()
}

/// A cluster of one test's own under `target/tmp/`, for a test that stops and starts it. Stopped
/// when dropped, and when the test process ends should it end first.
pub struct OwnCluster {
    dir: PathBuf,
    port: u16,
    url: String,
}

impl OwnCluster {
    pub fn start(name: &str, port: u16) -> OwnCluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let url = localpg::ensure_cluster(&dir, port, localpg::Durability::Throwaway).expect("starting a cluster");
        stop_when_this_process_exits(&dir);
        OwnCluster { dir, port, url }
    }

    /// The server URL (no database).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn stop(&self) {
        localpg::stop_cluster(&self.dir).expect("stopping the cluster");
    }

    pub fn restart(&self) {
        localpg::ensure_cluster(&self.dir, self.port, localpg::Durability::Throwaway).expect("restarting the cluster");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // Already stopped when the test failed while it was down.
        let _ = localpg::stop_cluster(&self.dir);
    }
}

/// The postmaster running in `dir`, if one is.
fn postmaster_pid(dir: &Path) -> Option<u32> {
    let pid_file = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let pid: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    (exe.file_name()? == "postgres").then_some(pid)
}

/// Rust's test harness has no teardown: a process of its own waits for this one to end, however it
/// ends, then stops the cluster in `dir` (`pg_ctl stop -m fast`) with the binaries that run it, as
/// `localpg` does: as the `postgres` user when root.
fn stop_when_this_process_exits(dir: &Path) {
    let Some(postgres) = postmaster_pid(dir).and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok()) else {
        eprintln!("the test PostgreSQL in {} is not running; nothing to stop later", dir.display());
        return;
    };
    let dir = std::path::absolute(dir).expect("an absolute data directory");
    let mut stop: Vec<std::ffi::OsString> = Vec::new();
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        stop.extend(["runuser", "-u", "postgres", "--"].map(Into::into));
    }
    stop.push(postgres.with_file_name("pg_ctl").into());
    stop.extend(["stop", "-D"].map(Into::into));
    stop.push(dir.into());
    stop.extend(["-m", "fast", "-w"].map(Into::into));
    let watchdog = Command::new("sh")
        .args(["-c", r#"pid=$1; shift; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; exec "$@""#])
        .arg("test-pg-watchdog")
        .arg(std::process::id().to_string())
        .args(stop)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the terminal's process group: a Ctrl-C ends the tests, not the watchdog.
        .process_group(0)
        .spawn();
    if let Err(e) = watchdog {
        eprintln!("could not start the watchdog that stops the test PostgreSQL: {e}");
    }
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
