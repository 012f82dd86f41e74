//! A private PostgreSQL cluster started from the machine's binaries, for running the bot (and
//! its tests) without setting a database up by hand. Started once and reused: later runs find
//! it running, or start it again from the same data directory.
//!
//! Private means only the bot gets in. `initdb` gives the superuser a random password, kept in
//! [`PASSWORD_FILE`] inside the data directory (mode 0600, owned by the cluster's user, which is the
//! bot's user, or `postgres` when the bot runs as root, who reads it anyway), and every connection
//! must prove it with SCRAM (`pg_hba.conf` trusts nobody). The server listens on 127.0.0.1 only
//! and opens no Unix socket. A cluster made by an older version, which trusted every local
//! connection, is given a password the first time this version opens it. Before handing out a
//! URL, the cluster's `postmaster.pid` is checked, so the bot never talks to another server that
//! happens to hold the port.
//!
//! Longer than 400 lines on purpose: starting, securing (password, pid checks) and stopping the
//! private cluster are one sequence of steps against one data directory; each step reads the last.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail};

/// The file in the data directory holding the superuser's password.
pub const PASSWORD_FILE: &str = "imagine-bot.password";

/// The superuser the bot connects as.
const SUPERUSER: &str = "postgres";

/// `pg_hba.conf` of a cluster made by an older version, once it has a password: every connection
/// needs it (Unix sockets are off, but would need it too).
const PG_HBA: &str = "\
# Written by imagine-bot: every connection needs the password in imagine-bot.password.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
";

/// How the cluster is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Normal settings, for a bot's data.
    Safe,
    /// fsync off and more connections: for throwaway test clusters only.
    Throwaway,
}

/// A running local cluster.
pub struct Cluster {
    /// The URL of its superuser, password included (no database name). Never log it.
    pub url: String,
    /// Whether this call started it (it was not running before).
    pub started: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("url", &"<redacted>").field("started", &self.started).finish()
    }
}

/// Makes sure a cluster lives in `dir` and listens on 127.0.0.1:`port`; returns a URL for its
/// `postgres` superuser, password included (no database name). See [`open_cluster`].
pub fn ensure_cluster(dir: &Path, port: u16, durability: Durability) -> anyhow::Result<String> {
    Ok(open_cluster(dir, port, durability)?.url)
}

/// Makes sure a cluster lives in `dir` (initialising one if there is none) and runs on
/// 127.0.0.1:`port` (starting it if it is not running). Refuses, in one line naming
/// `LOCAL_PG_PORT` and `LOCAL_PG_DIR`, when `dir`'s cluster runs on another port or another
/// server holds `port`. Safe to call from several processes at once.
pub fn open_cluster(dir: &Path, port: u16, durability: Durability) -> anyhow::Result<Cluster> {
    let bin = server_binaries()?;
    let dir = std::path::absolute(dir).context("resolving the database directory")?;
    let parent = dir.parent().context("the database directory needs a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;

    // One process at a time initialises or starts the cluster.
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().context("locking the database directory")?;

    // PostgreSQL refuses to run as root: then the cluster belongs to the postgres user.
    let as_postgres = running_as_root();
    let running = match running_postmaster(&dir) {
        Some(postmaster) if postmaster.port != port => bail!(
            "the PostgreSQL of LOCAL_PG_DIR ({}) is running on port {}, not on LOCAL_PG_PORT ({port}): \
             set LOCAL_PG_PORT={} or stop that server",
            dir.display(),
            postmaster.port,
            postmaster.port
        ),
        Some(_) => true,
        None if port_in_use(port) => bail!(
            "127.0.0.1:{port} (LOCAL_PG_PORT) is taken by another server, not the PostgreSQL of LOCAL_PG_DIR ({}): \
             stop that server or set LOCAL_PG_PORT to a free port",
            dir.display()
        ),
        None => false,
    };
    if !dir.join("PG_VERSION").exists() {
        init(&bin, &dir, as_postgres)?;
    }
    let hba_path = dir.join("pg_hba.conf");
    let hba = std::fs::read_to_string(&hba_path).with_context(|| format!("reading {}", hba_path.display()))?;
    let trusting = trusts_anyone(&hba);
    let password = match read_password(&dir)? {
        Some(password) => password,
        None if trusting => {
            // Made by an older version: its password is chosen now, and set below.
            let password = new_password()?;
            write_private(&dir.join(PASSWORD_FILE), &password, as_postgres)?;
            password
        }
        None => bail!(
            "{} is missing: it holds the password of the PostgreSQL in LOCAL_PG_DIR ({}); restore it, \
             or move LOCAL_PG_DIR aside to start a new cluster",
            dir.join(PASSWORD_FILE).display(),
            dir.display()
        ),
    };
    if !running {
        start(&bin, &dir, port, durability, as_postgres)?;
    }
    let ready = (|| {
        match running_postmaster(&dir) {
            Some(postmaster) if postmaster.port == port => {}
            _ => bail!(
                "the PostgreSQL of LOCAL_PG_DIR ({}) is not running on LOCAL_PG_PORT ({port}) after starting it; \
                 see {}",
                dir.display(),
                dir.join("server.log").display()
            ),
        }
        if trusting {
            require_password(&bin, &dir, port, &password, as_postgres)
                .context("giving the local PostgreSQL (made by an older version) a password")?;
        }
        Ok(())
    })();
    if let Err(e) = ready {
        // Leave it as it was found.
        if !running {
            let _ = stop_cluster(&dir);
        }
        return Err(e);
    }
    drop(lock);
    Ok(Cluster { url: format!("postgres://{SUPERUSER}:{password}@127.0.0.1:{port}"), started: !running })
}

/// Initialises a cluster in `dir` whose superuser has a new random password.
fn init(bin: &Path, dir: &Path, as_postgres: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if as_postgres {
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir), "chown")?;
    }
    // initdb wants an empty directory: the password waits beside it, then moves in.
    let pending = dir.with_extension("initpw");
    write_private(&pending, &new_password()?, as_postgres)?;
    let mut pwfile = std::ffi::OsString::from("--pwfile=");
    pwfile.push(&pending);
    let mut initdb = command(bin, "initdb", as_postgres);
    initdb
        .arg("-D")
        .arg(dir)
        .args(["-U", SUPERUSER, "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions"])
        .arg(pwfile);
    if let Err(e) = run(&mut initdb, "initdb") {
        let _ = std::fs::remove_file(&pending);
        return Err(e);
    }
    let file = dir.join(PASSWORD_FILE);
    std::fs::rename(&pending, &file).with_context(|| format!("moving the password to {}", file.display()))
}

fn start(bin: &Path, dir: &Path, port: u16, durability: Durability, as_postgres: bool) -> anyhow::Result<()> {
    // TCP on 127.0.0.1 only, and no Unix socket.
    let mut options = format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
    if durability == Durability::Throwaway {
        options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400");
    }
    let log = dir.join("server.log");
    let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut start = command(bin, "pg_ctl", as_postgres);
    start.arg("start").arg("-D").arg(dir).arg("-l").arg(&log).args(["-w", "-t", "60", "-o", &options]);
    let Err(e) = run(&mut start, "pg_ctl start") else { return Ok(()) };
    // The port can be free when checked and taken by the time the server binds it.
    let mut logged = String::new();
    if let Ok(mut file) = File::open(&log) {
        use std::io::{Seek, SeekFrom};
        let _ = file.seek(SeekFrom::Start(logged_before)).and_then(|_| file.read_to_string(&mut logged));
    }
    if logged.contains("could not create any TCP/IP sockets") {
        bail!(
            "127.0.0.1:{port} (LOCAL_PG_PORT) is in use, so the PostgreSQL of LOCAL_PG_DIR ({}) could not listen on it: \
             stop whatever holds the port or set LOCAL_PG_PORT to a free port",
            dir.display()
        );
    }
    Err(e).with_context(|| format!("see {}", log.display()))
}

/// Gives the running cluster of an older version, which trusts local connections, its password:
/// set over one last passwordless connection, then `pg_hba.conf` is replaced (the old one is kept
/// as `pg_hba.conf.trust`) and reloaded, and a passwordless connection is checked to be refused.
fn require_password(bin: &Path, dir: &Path, port: u16, password: &str, as_postgres: bool) -> anyhow::Result<()> {
    let without_password = sqlx::postgres::PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username(SUPERUSER)
        .password("")
        .database("postgres");
    let set = {
        let (options, password) = (without_password.clone(), password.to_owned());
        on_own_runtime(async move {
            use sqlx::{ConnectOptions, Connection};
            let mut conn =
                options.disable_statement_logging().connect().await.context("connecting without a password")?;
            crate::db::set_own_password(&mut conn, &password).await.context("setting the password")?;
            conn.close().await.context("closing the connection")
        })
    };
    set?;

    let hba = dir.join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).with_context(|| format!("reading {}", hba.display()))?;
    write_private(&dir.join("pg_hba.conf.trust"), &old, as_postgres)?;
    let next = dir.join("pg_hba.conf.next");
    write_private(&next, PG_HBA, as_postgres)?;
    std::fs::rename(&next, &hba).with_context(|| format!("replacing {}", hba.display()))?;
    let mut reload = command(bin, "pg_ctl", as_postgres);
    reload.arg("reload").arg("-D").arg(dir);
    run(&mut reload, "pg_ctl reload")?;

    // The server reloads in its own time: wait until it refuses a connection without a password.
    on_own_runtime(async move {
        use sqlx::ConnectOptions;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match without_password.connect().await {
                Err(e) if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "28P01") => return Ok(()),
                _ if tokio::time::Instant::now() >= deadline => {
                    bail!("after reloading pg_hba.conf it still lets a connection in without the password")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
}

/// Runs `work` to completion on a runtime of its own, on a thread of its own: callable from
/// blocking code whether or not a runtime is running on this thread.
fn on_own_runtime<T: Send + 'static>(
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(work)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread talking to the local PostgreSQL panicked"))?
}

/// The cluster's password from [`PASSWORD_FILE`], None when there is none. Tightens the file's
/// mode back to 0600 should it have been loosened.
fn read_password(dir: &Path) -> anyhow::Result<Option<String>> {
    let file = dir.join(PASSWORD_FILE);
    let pending = dir.with_extension("initpw");
    if !file.exists() && pending.exists() {
        // initdb used it; the process stopped before moving it in.
        std::fs::rename(&pending, &file).with_context(|| format!("moving the password to {}", file.display()))?;
    }
    let meta = match std::fs::metadata(&file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", file.display()))?;
    }
    let password = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let password = password.trim();
    if password.is_empty() {
        bail!("{} is empty", file.display());
    }
    Ok(Some(password.to_owned()))
}

/// Writes `contents` to a new file `path` readable and writable by its owner only, the cluster's
/// user (postgres when `as_postgres`).
fn write_private(path: &Path, contents: &str, as_postgres: bool) -> anyhow::Result<()> {
    let written = (|| {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(contents.as_bytes())?;
        if !contents.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        file.sync_all()
    })();
    written.with_context(|| format!("writing {}", path.display()))?;
    if as_postgres {
        run(Command::new("chown").arg("postgres:postgres").arg(path), "chown")?;
    }
    Ok(())
}

/// 32 random bytes from the kernel, as hex: safe in a URL and in a `--pwfile`.
fn new_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom for the database password")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a rule of `pg_hba.conf` lets a connection in without a password.
fn trusts_anyone(hba: &str) -> bool {
    hba.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .any(|rule| rule.split_whitespace().any(|word| word == "trust"))
}

/// The fields of `postmaster.pid` this module reads.
#[derive(Debug, PartialEq, Eq)]
struct Postmaster {
    pid: u32,
    data_dir: PathBuf,
    port: u16,
}

/// Parses `postmaster.pid`: the pid on line 1, the data directory on line 2, the port on line 4.
fn parse_postmaster_pid(text: &str) -> Option<Postmaster> {
    let lines: Vec<&str> = text.lines().collect();
    Some(Postmaster {
        pid: lines.first()?.trim().parse().ok()?,
        data_dir: PathBuf::from(lines.get(1)?.trim()),
        port: lines.get(3)?.trim().parse().ok()?,
    })
}

/// The postmaster serving `dir`, if one runs: `postmaster.pid` names a live `postgres` process
/// whose data directory is `dir`. A stale file (after a crash) counts as not running.
fn running_postmaster(dir: &Path) -> Option<Postmaster> {
    let postmaster = parse_postmaster_pid(&std::fs::read_to_string(dir.join("postmaster.pid")).ok()?)?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", postmaster.pid)).ok()?;
    // " (deleted)" follows the name when the binaries were upgraded under a running server.
    let is_postgres = exe.file_name()?.to_str()?.starts_with("postgres");
    let same_dir = std::fs::canonicalize(&postmaster.data_dir).ok()? == std::fs::canonicalize(dir).ok()?;
    (is_postgres && same_dir).then_some(postmaster)
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn port_in_use(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&(std::net::Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(2)).is_ok()
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

#[cfg(test)]
mod tests;
