//! The PostgreSQL the tests use, and one database per test that is dropped when the test is done
//! with it. A cluster the tests start is stopped when the test process ends, however it ends.

use std::{
    ops::Deref,
    os::unix::process::CommandExt,
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
        // A cluster another process started (another test run, say) is left to it. The watchdog
        // is set before starting, so a start that fails half-way is cleaned up too.
        if postmaster_pid(&dir).is_none() {
            stop_when_this_process_exits(&dir);
        }
        localpg::ensure_cluster(&dir, port, localpg::Durability::Throwaway).expect("starting the test PostgreSQL")
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
    /// The data directory is named after `name` and the port, so test runs on other ports
    /// (`TEST_PG_PORT`) never share it.
    pub fn start(name: &str, port: u16) -> OwnCluster {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{port}"));
        stop_when_this_process_exits(&dir);
        let url = localpg::ensure_cluster(&dir, port, localpg::Durability::Throwaway).expect("starting a cluster");
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

/// A fresh data directory of one test's own under `target/tmp/scratch-pg/`, and a free port, for
/// a cluster the test or the bot it runs creates there. Dropping it stops any cluster running
/// there and removes the directory; a watchdog stops the cluster if the test process ends first.
pub struct ScratchCluster {
    pub dir: PathBuf,
    pub port: u16,
}

impl ScratchCluster {
    pub fn new(name: &str) -> ScratchCluster {
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch-pg");
        std::fs::create_dir_all(&parent).expect("creating target/tmp/scratch-pg");
        let dir = parent.join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        let port = super::free_address().rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a free port");
        stop_when_this_process_exits(&dir);
        ScratchCluster { dir, port }
    }

    /// Whether a postmaster runs in the directory.
    pub fn is_running(&self) -> bool {
        postmaster_pid(&self.dir).is_some()
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        if self.is_running()
            && let Err(e) = localpg::stop_cluster(&self.dir)
        {
            eprintln!("could not stop the cluster in {}: {e:#}", self.dir.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for leftover in ["lock", "initpw"] {
            let _ = std::fs::remove_file(self.dir.with_extension(leftover));
        }
    }
}

/// The postmaster running in `dir`, if one is.
pub fn postmaster_pid(dir: &Path) -> Option<u32> {
    let pid_file = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
    let pid: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    (exe.file_name()? == "postgres").then_some(pid)
}

/// Rust's test harness has no teardown: a process of its own waits for this one to end, however it
/// ends, then stops the cluster in `dir` (`pg_ctl stop -m fast`, as `localpg` does: as the
/// `postgres` user when root). Harmless when no cluster runs there by then.
fn stop_when_this_process_exits(dir: &Path) {
    let stop = match localpg::stop_command(dir) {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("could not set up stopping the test PostgreSQL in {}: {e:#}", dir.display());
            return;
        }
    };
    let watchdog = Command::new("sh")
        .args(["-c", r#"pid=$1; shift; while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; exec "$@""#])
        .arg("test-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(stop.get_program())
        .args(stop.get_args())
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
