//! The listeners resist strangers: a callback URL's secret is checked without the database, bodies
//! are capped, a flood of forged callbacks neither reaches the database nor slows `/imagine`, and
//! the operations listener caps its connections and cuts slow ones. (The genuine callback's own
//! flow is in `callbacks.rs`.)

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use imagine_bot::callbacks::Key;
use secrecy::SecretString;
use serde_json::json;
use sqlx::{Connection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::support::{
    self, TestBot, WAIT,
    discord::DiscordStandIn,
    process::BotProcess,
    shortapi::{self, Behaviour, ShortApiStandIn},
};

fn callback_vars(vars: &mut std::collections::HashMap<String, String>, addr: &str) {
    vars.insert("PUBLIC_BASE_URL".into(), format!("http://{addr}"));
    vars.insert("CALLBACK_ADDR".into(), addr.to_owned());
    // Polling alone would not look at a job within these tests: only a callback can.
    vars.insert("CALLBACK_FALLBACK_POLL".into(), "1h".into());
}

/// A random 64-hex-digit secret: the right shape, but no job's.
fn random_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// POSTs headers announcing a `length`-byte body, sends none of it, and returns the status the
/// listener answers with (it must not wait for a body it will not take).
async fn post_announcing(addr: &str, path: &str, length: usize) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("an answer without the body").unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_callbacks_are_refused_without_the_database() {
    let addr = support::free_address();
    let public = format!("http://{addr}");
    let bot = TestBot::start_with(|vars| callback_vars(vars, &addr)).await;
    bot.shortapi.script("waiting", Behaviour::NeverFinish);
    let cmd = bot.imagine("waiting");
    bot.send(&cmd).await;
    let creates = bot.shortapi.wait_creates(1, WAIT).await;
    let genuine = creates[0].json.as_ref().unwrap()["callback_url"].as_str().expect("a callback URL").to_owned();
    let provider_job = creates[0].job_id.clone().unwrap();
    bot.wait_job_idle(&cmd).await;

    // Any process sharing SHORTAPI_KEY derives the secret from the job's id alone.
    let job_id: Uuid = genuine.rsplit('/').nth(1).unwrap().parse().unwrap();
    let key = Key::derive(&SecretString::from(shortapi::DEFAULT_API_KEY));
    assert_eq!(genuine, format!("{public}/callbacks/shortapi/{job_id}/{}", key.secret(job_id)));
    let genuine_path = genuine.strip_prefix(&public).unwrap().to_owned();

    // A body over the cap is refused as soon as it is announced, even on the genuine URL.
    assert_eq!(post_announcing(&addr, &genuine_path, 1 << 20).await, 413);
    assert_eq!(
        post_announcing(&addr, &format!("/callbacks/shortapi/{job_id}/{}", random_secret()), 1 << 20).await,
        413
    );
    let client = reqwest::Client::new();
    let oversized = client.post(&genuine).body(vec![b' '; 64 * 1024]).send().await;
    assert!(oversized.is_err() || oversized.unwrap().status() == 413, "an oversized body is never taken");

    // Cut the bot off from its database: whatever still answers did not ask it.
    let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&bot.pool).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", support::pg::server_url())).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false")).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&mut admin)
        .await
        .unwrap();

    for forged in [
        format!("{public}/callbacks/shortapi/{job_id}/{}", key.secret(Uuid::new_v4())),
        format!("{public}/callbacks/shortapi/{job_id}/{}", random_secret()),
        format!("{public}/callbacks/shortapi/{}/{}", Uuid::new_v4(), random_secret()),
        format!("{public}/callbacks/shortapi/{job_id}/not-hex"),
        format!("{public}/callbacks/shortapi/not-a-job/{}", key.secret(job_id)),
    ] {
        let answer = client.post(&forged).json(&json!({"status": 2})).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{forged}: refused without the database");
        assert_eq!(answer.headers()["connection"], "close", "a stranger does not keep the connection");
    }
    // The genuine URL gets past the secret, and only then needs the database.
    let answer = client.post(&genuine).json(&json!({"status": 2})).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 503, "the database is needed, and unreachable");

    sqlx::query(&format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let accepted = support::eventually(WAIT, || async {
        client.post(&genuine).json(&json!({"status": 2})).send().await.is_ok_and(|a| a.status().as_u16() == 204)
    })
    .await;
    assert!(accepted, "the genuine callback works again once the database is back");
    assert!(
        support::eventually(WAIT, || async { bot.shortapi.queries_for(&provider_job).len() == 1 }).await,
        "and makes the bot query the job"
    );
    bot.stop().await;
}

/// Forged callbacks sent by `tasks` concurrent senders, on a thread and runtime of their own so
/// the stand-ins in this process keep their pace.
struct Flood {
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(addr: &str, tasks: usize) -> Flood {
        let (stop, refused, other) = Default::default();
        let flood = Flood { stop, refused, other, thread: None };
        let (stop, refused, other) = (flood.stop.clone(), flood.refused.clone(), flood.other.clone());
        let base = format!("http://{addr}/callbacks/shortapi");
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let senders: Vec<_> = (0..tasks)
                    .map(|_| {
                        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
                        let (refused, other) = (refused.clone(), other.clone());
                        tokio::spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let url = format!("{base}/{}/{}", Uuid::new_v4(), random_secret());
                                match client.post(&url).body("{\"status\":2}").send().await {
                                    Ok(answer) if answer.status() == 404 => refused.fetch_add(1, Ordering::Relaxed),
                                    _ => other.fetch_add(1, Ordering::Relaxed),
                                };
                            }
                        })
                    })
                    .collect();
                for sender in senders {
                    let _ = sender.await;
                }
            });
        });
        Flood { thread: Some(thread), ..flood }
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops the senders; returns (refused with 404, anything else).
    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        (self.refused(), self.other.load(Ordering::Relaxed))
    }
}

/// Transactions committed in the database so far (as far as the statistics have been flushed).
async fn commits(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_callbacks_does_not_starve_imagine() {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let database = support::fresh_database().await;
    let addr = support::free_address();
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    callback_vars(&mut vars, &addr);
    // The bot in a process of its own, as in production: the flood shares no runtime with it.
    let mut bot = BotProcess::spawn(&vars, "callback-flood");
    assert!(discord.wait_ready(WAIT).await);
    discord.wait_registered(WAIT).await.unwrap();
    let pool = imagine_bot::db::connect(&database, 2).await.unwrap();
    shortapi.script(
        "through the flood",
        Behaviour::SucceedAt { after: Duration::from_millis(1500), images: 4, image_bytes: 2048 },
    );

    let flood = Flood::start(&addr, 200);
    assert!(support::eventually(WAIT, || async { flood.refused() >= 200 }).await, "the flood is on");
    let commits_before = commits(&pool).await;
    let refused_before = flood.refused();

    let cmd = support::imagine_command(&shortapi, "through the flood");
    discord.dispatch_interaction(cmd.build()).await;
    let path = format!("/interactions/{}/", cmd.id());
    let ack = discord.wait_for(WAIT, |r| r.is("POST", &path)).await.expect("an answer");
    let dispatched = discord.dispatched_at(cmd.id()).unwrap();
    assert!(ack.at.duration_since(dispatched) < Duration::from_secs(3), "acknowledged within Discord's 3 seconds");
    assert!(ack.json.as_ref().unwrap()["data"]["flags"].as_u64().unwrap_or(0) & 64 == 0, "accepted: {:?}", ack.json);
    // Polling would not look for an hour: the provider's genuine callback got through the flood.
    let done =
        discord.wait_original(&cmd.token(), WAIT, |m| m["content"].as_str().unwrap_or("").contains("Done")).await;
    assert!(done.is_some(), "the job is delivered during the flood");

    // Let every busy connection of the bot flush its statistics.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let forged = flood.refused() - refused_before;
    let (refused, other) = flood.stop();
    let committed = commits(&pool).await - commits_before;
    assert!(forged >= 200, "{forged} forged callbacks during the job");
    assert!(
        (committed as usize) < forged / 4,
        "{committed} transactions for {forged} forged callbacks: forgeries reach the database"
    );
    assert!(refused > other * 10, "{refused} refused, {other} answered otherwise or failed");
    assert!(bot.is_running());
    bot.kill();
}

/// Reads from `stream` until the peer closes it (or fails it); false if it stays open for [`WAIT`].
async fn closed_by_peer(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_listener_caps_its_connections_and_cuts_slow_ones() {
    let addr = support::free_address();
    let bot = TestBot::start_with(|vars| {
        vars.insert("HEALTH_ADDR".into(), addr.clone());
    })
    .await;
    let healthz = format!("http://{addr}/healthz");
    // A connection per request, so each request needs a place of its own.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(client.get(&healthz).send().await.unwrap().status(), 200);

    // Strangers holding every place: a new client waits instead of the process running out of
    // file descriptors, and gets its answer as soon as one place frees.
    let mut idle = Vec::new();
    for _ in 0..imagine_bot::health::MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let waiting = tokio::spawn({
        let (client, healthz) = (client.clone(), healthz.clone());
        async move { client.get(&healthz).send().await.map(|answer| answer.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a client past the cap waits for a place: {:?}", waiting.await);
    drop(idle.remove(0));
    let answer = tokio::time::timeout(WAIT, waiting).await.expect("answered once a place freed");
    assert_eq!(answer.unwrap().unwrap(), 200);
    drop(idle);

    // A connection that never finishes its request, or sends none, is cut after a while.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                return true;
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
                return true;
            }
        }
        false
    });
    assert!(closed_by_peer(&mut silent).await, "a silent connection is closed");
    let cut = tokio::time::timeout(WAIT, trickle).await;
    assert!(matches!(cut, Ok(Ok(true))), "a request trickling in forever is cut");
    assert_eq!(client.get(&healthz).send().await.unwrap().status(), 200, "others are still served");
    bot.stop().await;
}
