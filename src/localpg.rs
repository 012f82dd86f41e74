//! A private PostgreSQL cluster started from the machine's binaries, for running the bot (and
//! its tests) without setting a database up by hand. Started once and reused: later runs find
//! it running, or start it again from the same data directory.

use std::{
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

/// How the cluster is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Normal settings, for a bot's data.
    Safe,
    /// fsync off and more connections: for throwaway test clusters only.
    Throwaway,
}

/// Makes sure a cluster lives in `dir` and listens on 127.0.0.1:`port`; returns a URL for its
/// `postgres` superuser (no database name). Safe to call from several processes at once.
pub fn ensure_cluster(dir: &Path, port: u16, durability: Durability) -> anyhow::Result<String> {
    let bin = server_binaries()?;
    let dir = std::path::absolute(dir).context("resolving the database directory")?;
    let parent = dir.parent().context("the database directory needs a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;

    // One process at a time initialises or starts the cluster.
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().context("locking the database directory")?;

    let as_postgres = running_as_root();
    if !dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(&dir), "chown")?;
        }
        let mut initdb = command(&bin, "initdb", as_postgres);
        initdb.arg("-D").arg(&dir).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"]);
        run(&mut initdb, "initdb")?;
    }

    let mut status = command(&bin, "pg_ctl", as_postgres);
    status.arg("status").arg("-D").arg(&dir);
    let running = status.output().context("running pg_ctl status")?.status.success();
    if !running {
        let mut options = format!("-p {port} -c listen_addresses=127.0.0.1 -k /tmp");
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400");
        }
        let log = dir.join("server.log");
        let mut start = command(&bin, "pg_ctl", as_postgres);
        start.arg("start").arg("-D").arg(&dir).arg("-l").arg(&log).args(["-w", "-t", "60", "-o", &options]);
        run(&mut start, "pg_ctl start").with_context(|| format!("see {}", log.display()))?;
    }
    drop(lock);
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}

/// Stops the cluster in `dir` (fast shutdown: open connections are closed).
pub fn stop_cluster(dir: &Path) -> anyhow::Result<()> {
    run(&mut stop_command(dir)?, "pg_ctl stop")
}

/// The command that stops the cluster in `dir` (fast shutdown), run as the cluster's user.
pub fn stop_command(dir: &Path) -> anyhow::Result<Command> {
    let bin = server_binaries()?;
    let dir = std::path::absolute(dir).context("resolving the database directory")?;
    let mut stop = command(&bin, "pg_ctl", running_as_root());
    stop.arg("stop").arg("-D").arg(dir).args(["-m", "fast", "-w"]);
    Ok(stop)
}

/// The directory holding the PostgreSQL server binaries the local cluster runs on.
pub fn server_binaries() -> anyhow::Result<PathBuf> {
    find_bin_dir().context(
        "no PostgreSQL server binaries found (looked for initdb on PATH and under /usr/lib/postgresql/*/bin); \
         install PostgreSQL or set DATABASE_URL",
    )
}

/// Creates `name` on the cluster at `server_url` unless it exists; returns the database's URL.
pub async fn ensure_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{server_url}/postgres"))
        .await
        .context("connecting to the local PostgreSQL")?;
    if !crate::db::database_exists(&mut conn, name).await?
        && let Err(e) = crate::db::create_database(&mut conn, name).await
    {
        // Another process may have created it first.
        let raced = e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P04" || c == "23505");
        if !raced {
            return Err(e).context("creating the database");
        }
    }
    Ok(format!("{server_url}/{name}"))
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    let path = bin.join(program);
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{what} failed: {}", stderr.trim());
    }
    Ok(())
}

/// The directory holding initdb, pg_ctl and postgres: from PATH, else the newest version under
/// /usr/lib/postgresql.
fn find_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("initdb"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| complete(d))
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, d)| complete(d))
            .collect();
        versions.sort();
        versions.pop().map(|(_, d)| d)
    })
}
