//! The private PostgreSQL the bot starts when `DATABASE_URL` is unset: only the bot can connect
//! (a random password kept in a 0600 file, SCRAM authentication), a server on its port that is not
//! `LOCAL_PG_DIR`'s is refused, a cluster made by an older version (passwordless) is given a
//! password, the password is never printed, and `doctor` leaves the cluster as it found it.

use std::{
    collections::HashMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::Command,
};

use imagine_bot::localpg::{self, Durability};
use sqlx::{Connection, PgConnection};

use crate::support::{
    self, WAIT, discord::DiscordStandIn, pg::ScratchCluster, process::BotProcess, shortapi::ShortApiStandIn,
};

const PASSWORD_FILE: &str = "imagine-bot.password";

/// The cluster's password, from its file, which must be private to the cluster's user.
fn password(dir: &Path) -> String {
    let file = dir.join(PASSWORD_FILE);
    let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the password file is readable by its owner only");
    let cluster_owner = std::fs::metadata(dir.join("PG_VERSION")).unwrap().uid();
    assert_eq!(meta.uid(), cluster_owner, "the password file belongs to the cluster's user");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(password.len() >= 32, "a long random password");
    password
}

async fn connect(port: u16, credentials: &str, database: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(&format!("postgres://{credentials}@127.0.0.1:{port}/{database}")).await
}

/// Only the password opens the cluster: no password, or a wrong one, is refused.
async fn assert_only_the_password_opens(port: u16, password: &str, database: &str) {
    for credentials in ["postgres", "postgres:wrong-password"] {
        let refused = connect(port, credentials, database).await.err().unwrap_or_else(|| {
            panic!("the cluster let {credentials}@ in without the password");
        });
        let code = refused.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("28P01"), "password authentication failed: {refused}");
    }
    let conn = connect(port, &format!("postgres:{password}"), database).await.expect("the password opens it");
    conn.close().await.unwrap();
}

/// No line of pg_hba.conf lets anyone in without a password.
fn assert_nothing_is_trusted(dir: &Path) {
    let hba = std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
    let trusted: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.split_whitespace().any(|w| w == "trust"))
        .collect();
    assert!(trusted.is_empty(), "pg_hba.conf still trusts: {trusted:?}");
}

/// The bot's environment with no `DATABASE_URL`: its own cluster in `cluster`'s directory.
fn local_vars(
    discord: &DiscordStandIn,
    shortapi: &ShortApiStandIn,
    cluster: &ScratchCluster,
) -> HashMap<String, String> {
    let mut vars = support::test_vars(discord, shortapi, "");
    vars.remove("DATABASE_URL");
    vars.insert("LOCAL_PG_DIR".into(), cluster.dir.display().to_string());
    vars.insert("LOCAL_PG_PORT".into(), cluster.port.to_string());
    vars
}

/// Runs `imagine-bot doctor` with exactly `vars`; whether it passed, and what it printed.
async fn doctor(vars: &HashMap<String, String>) -> (bool, String) {
    let vars = vars.clone();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_imagine-bot"))
            .arg("doctor")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "trace")
            .envs(&vars)
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), printed)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_own_cluster_opens_only_with_its_password_and_doctor_leaves_it_as_found() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let cluster = ScratchCluster::new("bot-made");
    let vars = local_vars(&discord, &shortapi, &cluster);

    // No cluster yet: doctor creates and starts one to check it, then stops it again.
    let (ok, out) = doctor(&vars).await;
    assert!(ok, "{out}");
    assert!(out.contains("✓ database: connected to PostgreSQL"), "{out}");
    assert!(!cluster.is_running(), "doctor stops the cluster it started:\n{out}");
    let password = password(&cluster.dir);
    assert_nothing_is_trusted(&cluster.dir);
    assert!(!out.contains(&password), "doctor printed the database password");

    let mut bot = BotProcess::spawn(&vars, "private-pg");
    assert!(discord.wait_ready(WAIT).await, "the bot starts on its own cluster:\n{}", bot.output());
    assert!(cluster.is_running());
    assert_only_the_password_opens(cluster.port, &password, "imagine_bot").await;

    // The cluster was running: doctor leaves it running.
    let (ok, out) = doctor(&vars).await;
    assert!(ok, "{out}");
    assert!(cluster.is_running(), "doctor stopped a cluster it did not start:\n{out}");
    assert!(!out.contains(&password), "doctor printed the database password");

    bot.terminate();
    bot.wait(WAIT).await.expect("the bot exits after SIGTERM");
    let output = bot.output();
    assert!(!output.is_empty());
    assert!(!output.contains(&password), "the bot printed the database password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_the_port_that_is_not_local_pg_dirs_is_refused() {
    let owner = ScratchCluster::new("port-owner");
    localpg::ensure_cluster(&owner.dir, owner.port, Durability::Throwaway).expect("starting a cluster");
    let other = ScratchCluster::new("port-taker");

    let refused = |dir: &Path, port: u16| {
        let error = localpg::ensure_cluster(dir, port, Durability::Throwaway).expect_err("refused");
        let message = format!("{error:#}");
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(message.contains("LOCAL_PG_PORT") && message.contains("LOCAL_PG_DIR"), "{message}");
        message
    };
    // Another cluster holds the port.
    let message = refused(&other.dir, owner.port);
    assert!(message.contains(&owner.port.to_string()), "{message}");
    assert!(!other.dir.join("PG_VERSION").exists(), "nothing is initialised for a port it cannot have");
    // Something that is not PostgreSQL at all holds the port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    refused(&other.dir, listener.local_addr().unwrap().port());
    // LOCAL_PG_DIR's cluster runs, but on another port than LOCAL_PG_PORT.
    let message = refused(&owner.dir, other.port);
    assert!(message.contains(&owner.port.to_string()), "names the port it runs on: {message}");
    // Nothing listens on the port, but a connection's end holds it: the server cannot bind it.
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    refused(&other.dir, _client.local_addr().unwrap().port());
    assert!(!other.is_running());

    // The bot and doctor say the same, in one line.
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let mut vars = local_vars(&discord, &shortapi, &other);
    vars.insert("LOCAL_PG_PORT".into(), owner.port.to_string());
    let (ok, out) = doctor(&vars).await;
    assert!(!ok, "{out}");
    let line = out.lines().find(|l| l.contains("✗ database")).unwrap_or_else(|| panic!("no database line:\n{out}"));
    assert!(line.contains("LOCAL_PG_PORT") && line.contains("LOCAL_PG_DIR"), "{line}");
    assert!(owner.is_running() && !other.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passwordless_cluster_of_an_older_version_is_given_a_password() {
    let cluster = ScratchCluster::new("legacy");
    // What older versions did: initdb with trust, started on 127.0.0.1 (as postgres when root).
    let bin = localpg::server_binaries().unwrap();
    let as_cluster_user = |program: &str| {
        let mut command = if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        };
        command.stdout(std::process::Stdio::null());
        command
    };
    std::fs::create_dir_all(&cluster.dir).unwrap();
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        assert!(Command::new("chown").arg("postgres:postgres").arg(&cluster.dir).status().unwrap().success());
    }
    let initdb = as_cluster_user("initdb")
        .arg("-D")
        .arg(&cluster.dir)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"])
        .status()
        .unwrap();
    assert!(initdb.success());
    let options = format!("-p {} -c listen_addresses=127.0.0.1 -k /tmp -c fsync=off", cluster.port);
    let start = as_cluster_user("pg_ctl")
        .arg("start")
        .arg("-D")
        .arg(&cluster.dir)
        .arg("-l")
        .arg(cluster.dir.join("server.log"))
        .args(["-w", "-o", &options])
        .status()
        .unwrap();
    assert!(start.success());
    let mut conn = connect(cluster.port, "postgres", "postgres").await.expect("trust lets anyone in");
    sqlx::query("CREATE DATABASE kept").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    // The new version, on the running cluster: a password, and nothing trusted any more.
    let url = localpg::ensure_cluster(&cluster.dir, cluster.port, Durability::Throwaway).expect("taking it over");
    let password = password(&cluster.dir);
    assert_nothing_is_trusted(&cluster.dir);
    assert_only_the_password_opens(cluster.port, &password, "kept").await;
    let conn = PgConnection::connect(&format!("{url}/kept")).await.expect("the returned URL works");
    conn.close().await.unwrap();

    // And after a restart, with the same password.
    localpg::stop_cluster(&cluster.dir).unwrap();
    let again = localpg::ensure_cluster(&cluster.dir, cluster.port, Durability::Throwaway).expect("restarting");
    assert_eq!(again, url);
    assert_only_the_password_opens(cluster.port, &password, "kept").await;
}
