//! Load benchmark: the real bot (release build, its own process) against the Discord and
//! ShortAPI stand-ins and a real PostgreSQL, with each figure printed next to the floor measured
//! in the same run. Run with `cargo bench --bench load` (see `--help`); it writes BENCHMARKS.md.
//!
//! The mix: about a third of all jobs come from V and Reroll presses on delivered results, the
//! rest from `/imagine`; a U press is made on every third result; every tenth `/imagine` is
//! cancelled by its member once answered, and every tenth member asks `/me`. After the figures, a
//! fresh bot process shows what one U press costs in memory on large images.
//!
//! Longer than 400 lines on purpose: one scenario read top to bottom (start everything, seed, send,
//! press, wait, measure each floor in the same run, write the table), which splitting would scatter.

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless,
    clippy::cast_precision_loss,
    reason = "the bench turns counts and durations into figures; the cast lints are for the bot (src/)"
)]

// The test support, shared with the tests (`tests/e2e/main.rs`); the bench uses a small part.
#[allow(dead_code, reason = "the bench uses a small part of the test support")]
#[path = "../tests/support/harness.rs"]
mod support;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{
    discord::{DEFAULT_GUILD_ID, DiscordStandIn, InteractionBuilder},
    process::BotProcess,
    shortapi::{Behaviour, ShortApiStandIn, png_with_seed},
};

const HELP: &str = "cargo bench --bench load -- [--jobs N] [--guilds M] [--rate PER_SECOND] \
[--min-secs S] [--max-secs S] [--quick] [--callbacks] [--no-presses] [--provider-qps N] [--bot-env KEY=VALUE]... \
[--write PATH]
  --jobs 500 --guilds 25 --rate 50 --min-secs 20 --max-secs 90 by default;
  --quick: 200 jobs of 2-6 s; --callbacks: the provider calls back; --no-presses: every job from
  /imagine, no presses and no memory probe; --provider-qps: the bot's
  PROVIDER_MAX_QUERIES_PER_SECOND (its default otherwise); --bot-env: a setting of the bot (for
  example POLL_DENSE_INTERVAL=3s), over the bench's own; --write: where the table goes
  (BENCHMARKS.md by default; --write - prints only)";

/// Each result image of the jobs in the run, and of the memory probe's small image.
const IMAGE_BYTES: usize = 256 * 1024;
/// The memory probe's large images.
const LARGE_IMAGE_BYTES: usize = 8 * 1024 * 1024;

struct Options {
    jobs: usize,
    guilds: u64,
    rate: f64,
    min_secs: u64,
    max_secs: u64,
    callbacks: bool,
    presses: bool,
    provider_qps: Option<f64>,
    bot_env: Vec<(String, String)>,
    write: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut o = Options {
        jobs: 500,
        guilds: 25,
        rate: 50.0,
        min_secs: 20,
        max_secs: 90,
        callbacks: false,
        presses: true,
        provider_qps: None,
        bot_env: Vec::new(),
        write: Some("BENCHMARKS.md".into()),
    };
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_else(|| panic!("{} needs a value\n{HELP}", args[i]));
        match args[i].as_str() {
            "--jobs" => o.jobs = value().parse().expect("--jobs N"),
            "--guilds" => o.guilds = value().parse().expect("--guilds M"),
            "--rate" => o.rate = value().parse().expect("--rate R"),
            "--min-secs" => o.min_secs = value().parse().expect("--min-secs S"),
            "--max-secs" => o.max_secs = value().parse().expect("--max-secs S"),
            "--write" => o.write = Some(value()).filter(|w| w != "-"),
            "--provider-qps" => o.provider_qps = Some(value().parse().expect("--provider-qps N")),
            "--bot-env" => {
                let setting = value();
                let (key, value) = setting.split_once('=').expect("--bot-env KEY=VALUE");
                o.bot_env.push((key.to_owned(), value.to_owned()));
            }
            "--quick" => {
                (o.jobs, o.min_secs, o.max_secs) = (200, 2, 6);
                i -= 1;
            }
            "--callbacks" => {
                o.callbacks = true;
                i -= 1;
            }
            "--no-presses" => {
                o.presses = false;
                i -= 1;
            }
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => panic!("unknown option {other}\n{HELP}"),
        }
        i += 2;
    }
    assert!(o.min_secs <= o.max_secs && o.jobs > 0 && o.guilds > 0 && o.rate > 0.0, "{HELP}");
    o
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// p50 / p95 / p99 of latencies in milliseconds.
fn p50_95_99(values: &mut [f64]) -> String {
    let (p50, p95, p99) = (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99));
    format!("{p50:.1} / {p95:.1} / {p99:.1} ms")
}

/// The member who runs the benchmark's `/imagine` number `i`.
fn member(i: usize) -> u64 {
    1_180_000_000_000_100_000 + i as u64
}

/// A press the benchmark made on a delivered result.
struct Press {
    interaction: InteractionBuilder,
    /// `U<n>`: one image posted, no job. Otherwise V<n> or Reroll: a new paid job.
    upscale: bool,
    /// The link of the image a U press asks for (for its floor).
    image_url: Option<String>,
}

/// The `custom_id` of the button labelled `label` on a result message.
fn button(message: &Value, label: &str) -> Option<String> {
    message["components"]
        .as_array()?
        .iter()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .find(|b| b["label"] == label)
        .and_then(|b| b["custom_id"].as_str())
        .map(str::to_owned)
}

/// The link of result image `number` as attached to a result message.
fn image_url(message: &Value, number: usize) -> Option<String> {
    let prefix = format!("imagine-{number}.");
    message["attachments"]
        .as_array()?
        .iter()
        .find(|a| a["filename"].as_str().is_some_and(|f| f.starts_with(&prefix)))
        .and_then(|a| a["url"].as_str())
        .map(str::to_owned)
}

/// Presses `label` on `message` and waits until the reply carries its uploaded image.
async fn press_for_image(discord: &DiscordStandIn, message: &Value, label: &str) -> Result<(), String> {
    let id = button(message, label).ok_or_else(|| format!("no {label} on the result"))?;
    let press = InteractionBuilder::button_press(message, &id);
    discord.dispatch_interaction(press.build()).await;
    let posted = |m: &Value| m["attachments"].as_array().is_some_and(|a| !a.is_empty());
    match discord.wait_original(&press.token(), Duration::from_secs(30), posted).await {
        Some(_) => Ok(()),
        None => Err(format!("{label} posted no image")),
    }
}

/// What one U press holds in memory. The run's peak RSS is a high-water mark that delivery sets
/// (four images at once), so the press is measured on a fresh bot process: the rise of its peak
/// during a U press on the small image of a result whose other three images are large, then
/// during one on a large image. `bot`, the run's bot, delivers that result and is then stopped;
/// `warm_up` is a result of the run, pressed once first so that the rises leave out start-up.
/// Returns both rises in MiB.
async fn upscale_memory_probe(
    bot: BotProcess,
    vars: &HashMap<String, String>,
    discord: &DiscordStandIn,
    shortapi: &ShortApiStandIn,
    pool: &sqlx::PgPool,
    source: &str,
    warm_up: &Value,
) -> Result<(f64, f64), String> {
    let large: Vec<Vec<u8>> = (1..4).map(|seed| png_with_seed(LARGE_IMAGE_BYTES, 9000 + seed)).collect();
    shortapi.script(
        "memory probe",
        Behaviour::SucceedAt { after: Duration::from_secs(3), images: 4, image_bytes: IMAGE_BYTES },
    );
    // `quality` has no learned finish window (the history is `balance`): looked at after the first
    // fixed delay, not when the run's jobs usually finish.
    let cmd = InteractionBuilder::command("imagine")
        .guild(DEFAULT_GUILD_ID)
        .channel(DEFAULT_GUILD_ID + 1)
        .string("prompt", "memory probe")
        .string("performance", "quality")
        .attachment("image", "source.png", Some("image/png"), 64 * 1024, source);
    discord.dispatch_interaction(cmd.build()).await;
    let created = Instant::now();
    let job = loop {
        let probe = shortapi.creates().into_iter().rev().find(|c| c.args()["prompt"] == "memory probe");
        if let Some(job) = probe.and_then(|c| c.job_id) {
            break job;
        }
        if created.elapsed() > Duration::from_secs(30) {
            return Err("the probe's job was never created".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Images 2-4 become large before the job finishes (3 s after its creation).
    for (i, bytes) in large.into_iter().enumerate() {
        shortapi.add_image(&format!("{job}-{}.png", i + 1), bytes, "image/png");
    }
    let result = discord
        .wait_original(&cmd.token(), Duration::from_secs(90), |m| button(m, "U1").is_some())
        .await
        .ok_or("the probe's result was not delivered")?;
    // Stopped only once the delivery is saved: a process restarted under the same identity takes
    // back what its previous life held, and would deliver the large images again.
    let saved = Instant::now();
    loop {
        let settled: Option<bool> = sqlx::query_scalar(
            "SELECT delivered_at IS NOT NULL AND lease_owner IS NULL FROM jobs WHERE interaction_id = $1",
        )
        .bind(cmd.id() as i64)
        .fetch_optional(pool)
        .await
        .map_err(|e| e.to_string())?;
        if settled == Some(true) {
            break;
        }
        if saved.elapsed() > Duration::from_secs(30) {
            return Err("the probe's delivery was never saved".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let readies = discord.ready_count();
    drop(bot);
    let fresh = BotProcess::spawn(vars, "bench-memory-probe");
    if !discord.wait_ready_count(readies + 1, Duration::from_secs(60)).await {
        return Err(format!("the probe's bot did not start:\n{}", fresh.output()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    press_for_image(discord, warm_up, "U1").await?;
    let before = peak_rss_mib(fresh.pid());
    press_for_image(discord, &result, "U1").await?;
    let after_small = peak_rss_mib(fresh.pid());
    press_for_image(discord, &result, "U2").await?;
    let after_large = peak_rss_mib(fresh.pid());
    Ok((after_small - before, after_large - after_small))
}

const FLOOR_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS bench_ack_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())";

/// A bare HTTP round trip to the Discord stand-in, then one committed write transaction: the
/// least an interaction that reserves something costs before it can be answered. In ms.
async fn ack_floor_once(client: &reqwest::Client, gateway: &str, pool: &sqlx::PgPool, id: i64) -> f64 {
    let t = Instant::now();
    client.get(gateway).send().await.unwrap().bytes().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO bench_ack_floor (id) VALUES ($1)").bind(id).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    t.elapsed().as_secs_f64() * 1000.0
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The machine's busy and total CPU time so far, in ticks of all cores (`/proc/stat`).
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: f64 = ticks.iter().take(8).sum();
    // idle and iowait
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Times the threads of a process gave up the CPU (waiting for I/O, a timer or a lock) or were
/// made to: every wake-up costs a context switch, which on a virtual machine costs far more
/// than most of the work done per request.
fn context_switches(pid: u32) -> u64 {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    threads
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("status")).unwrap_or_default())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:").or(l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Peak resident set size of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn transactions(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB RAM, Linux; stand-ins and PostgreSQL on the same machine")
}

/// Seeds finished jobs drawn from the same spread, as a bot in steady state has: the polling
/// schedule learns where jobs finish from this history.
async fn seed_history(pool: &sqlx::PgPool, min: u64, max: u64) {
    for i in 0..200i64 {
        let seconds = min as f64 + (max - min) as f64 * fastrand::f64();
        sqlx::query(
            "INSERT INTO jobs (id, interaction_id, application_id, guild_id, channel_id, user_id, token_expires_at, \
             attachment_size_limit, prompt_raw, prompt_sent, args, input_urls, status, submitted_at, finished_at, \
             delivered_at, acked_at, delivery, counted) \
             VALUES ($1, $2, 1, 1, 1, 1, now(), 0, 'history', 'history', '{\"mode\":\"fast\",\"prompt\":\"history\",\"aspect_ratio\":\"1:1\"}', \
             '{}', 'succeeded', now() - make_interval(secs => $3 + 60), now() - interval '60 seconds', now(), now(), 'edit', false)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(-1 - i)
        .bind(seconds)
        .execute(pool)
        .await
        .expect("seeding history");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let command = format!(
        "cargo bench --bench load -- {}",
        std::env::args().skip(1).filter(|a| a != "--bench").collect::<Vec<_>>().join(" ")
    );
    println!(
        "imagine-bot load benchmark: {} jobs over {} guilds at {}/s, jobs of {}-{} s{}",
        o.jobs,
        o.guilds,
        o.rate,
        o.min_secs,
        o.max_secs,
        if o.callbacks { ", with callbacks" } else { "" }
    );

    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    discord.set_route_limit(5, Duration::from_secs(5));
    let (url, pool) = support::fresh_pool().await;
    seed_history(&pool, o.min_secs, o.max_secs).await;

    let mut vars = support::test_vars(&discord, &shortapi, &url);
    for key in [
        "POLL_FIRST_DELAY",
        "POLL_INTERVAL",
        "POLL_SLOW_INTERVAL",
        "POLL_SLOW_AFTER",
        "PROGRESS_EDIT_INTERVAL",
        "PROVIDER_TIMEOUT",
    ] {
        vars.remove(key); // production defaults
    }
    vars.insert("RUST_LOG".into(), std::env::var("BENCH_BOT_LOG").unwrap_or_else(|_| "warn".into()));
    if let Some(qps) = o.provider_qps {
        vars.insert("PROVIDER_MAX_QUERIES_PER_SECOND".into(), qps.to_string());
    }
    vars.extend(o.bot_env.iter().cloned());
    if o.callbacks {
        let addr = support::free_address();
        vars.insert("PUBLIC_BASE_URL".into(), format!("http://{addr}"));
        vars.insert("CALLBACK_ADDR".into(), addr);
    }
    let bot = BotProcess::spawn(&vars, "bench");
    assert!(discord.wait_ready(Duration::from_secs(60)).await, "the bot did not start:\n{}", bot.output());
    discord.wait_registered(Duration::from_secs(60)).await.unwrap();

    // Floors measured in this run.
    let client = reqwest::Client::new();
    let mut round_trips = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        client.get(format!("{}/api/v10/gateway", discord.proxy_url())).send().await.unwrap().bytes().await.unwrap();
        round_trips.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The ack's true floor: the same round trip plus one committed write transaction on the same
    // database (an accepted /imagine cannot answer before its reservation is durable).
    let gateway = format!("{}/api/v10/gateway", discord.proxy_url());
    sqlx::query(FLOOR_TABLE).execute(&pool).await.unwrap();
    let mut ack_floor = Vec::new();
    for i in 0..200i64 {
        ack_floor.push(ack_floor_once(&client, &gateway, &pool, i).await);
    }
    // The same floor every 100 ms while the run goes on, on a database of its own so that the
    // bot's database figures stay its own: what this machine allows an answer under the run's load.
    let (_sampling_database, sampling_pool) = support::fresh_pool().await;
    sqlx::query(FLOOR_TABLE).execute(&sampling_pool).await.unwrap();
    let floor_samples: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let sampler = tokio::spawn({
        let (client, gateway, samples) = (client.clone(), gateway.clone(), floor_samples.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for i in 0.. {
                tick.tick().await;
                let at = Instant::now();
                let ms = ack_floor_once(&client, &gateway, &sampling_pool, i).await;
                samples.lock().unwrap().push((at, ms));
            }
        }
    });

    // Each second, the share of one core the bot used and of the whole machine in use: whether
    // the bot, or the machine, was saturated at the run's busiest.
    let busy_seconds: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let busy_sampler = tokio::spawn({
        let (samples, pid) = (busy_seconds.clone(), bot.pid());
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let (mut bot_before, mut machine_before) = (cpu_seconds(pid), machine_ticks());
            loop {
                tick.tick().await;
                let (bot_now, machine_now) = (cpu_seconds(pid), machine_ticks());
                let (busy, total) = (machine_now.0 - machine_before.0, machine_now.1 - machine_before.1);
                if total > 0.0 {
                    samples.lock().unwrap().push((bot_now - bot_before, busy / total));
                }
                (bot_before, machine_before) = (bot_now, machine_now);
            }
        }
    });

    // Durations in tenths of a second: whole seconds would lock the finishes in phase with the
    // 2 s dense polling, and the delivery delay would measure where that phase fell in the run.
    for tenths in o.min_secs * 10..=o.max_secs * 10 {
        shortapi.script(
            &format!("takes {} and {} tenths", tenths / 10, tenths % 10),
            Behaviour::SucceedAt { after: Duration::from_millis(tenths * 100), images: 4, image_bytes: IMAGE_BYTES },
        );
    }
    shortapi.add_image("source.png", ShortApiStandIn::tiny_png(64 * 1024), "image/png");
    // Signed like a Discord attachment link fresh from the upload (valid a day): the bot renews
    // links that expire within the hour before it uses them, which a fresh one never needs.
    let issued = chrono::Utc::now().timestamp();
    let source = format!("{}?ex={:x}&is={issued:x}&hm=3&", shortapi.image_url("source.png"), issued + 24 * 3600);

    // A third of all jobs come from V and Reroll presses, spread evenly over the results in the
    // order they are delivered (at most one a result); every third result also gets a U press.
    let press_jobs = if o.presses { o.jobs / 3 } else { 0 };
    let imagines = o.jobs - press_jobs;
    // The results that can be pressed: every /imagine but the tenth that are cancelled (below).
    let pressable = if o.presses { imagines - (imagines + 4) / 10 } else { imagines };
    let upscales = if o.presses { pressable.div_ceil(3) } else { 0 };
    // With presses, a third of the /imagine commands wait for the first results and are then sent
    // interleaved with the presses: their acks are measured under the same load as the presses'.
    let early = if o.presses { imagines - imagines / 3 } else { imagines };

    let cpu_before = cpu_seconds(bot.pid());
    let switches_before = context_switches(bot.pid());
    let tx_before = transactions(&pool).await;
    let started = Instant::now();
    let mut commands: Vec<InteractionBuilder> = Vec::with_capacity(imagines);
    let mut presses: Vec<Press> = Vec::new();
    let mut planned: VecDeque<Press> = VecDeque::new();
    // With presses, every tenth /imagine is cancelled by its member as soon as its reply is answered
    // (before or after the worker sent it), and every tenth member also asks /me.
    let mut to_cancel: Vec<usize> = Vec::new();
    let mut cancels: Vec<InteractionBuilder> = Vec::new();
    let mut mes: Vec<InteractionBuilder> = Vec::new();
    // The /imagine commands whose result has not been seen yet, and how many results were seen.
    let mut awaiting: Vec<usize> = Vec::new();
    let mut results = 0usize;
    let (mut planned_jobs, mut planned_upscales) = (0usize, 0usize);
    let gap = Duration::from_secs_f64(1.0 / o.rate);
    let mut next = tokio::time::Instant::now();
    let mut last_look = Instant::now();
    // While both are waiting, /imagine and presses take turns at the same pace.
    let mut press_turn = false;
    let give_up = started + Duration::from_secs_f64(o.jobs as f64 / o.rate) + Duration::from_secs(o.max_secs + 300);
    while commands.len() < imagines || planned_jobs < press_jobs || planned_upscales < upscales || !planned.is_empty() {
        if Instant::now() > give_up {
            break;
        }
        tokio::time::sleep_until(next).await;
        next += gap;
        if o.presses && last_look.elapsed() >= Duration::from_millis(200) {
            last_look = Instant::now();
            let mut delivered = Vec::new();
            awaiting.retain(|&i| {
                match discord.original_message(&commands[i].token()).filter(|m| button(m, "U1").is_some()) {
                    Some(result) => {
                        delivered.push(result);
                        false
                    }
                    None => true,
                }
            });
            for result in delivered {
                let k = results;
                results += 1;
                let presser = 1_180_000_000_000_200_000 + k as u64;
                if (k + 1) * press_jobs / pressable > k * press_jobs / pressable {
                    let label = ["V1", "V2", "V3", "V4", "Reroll"][planned_jobs % 5];
                    planned_jobs += 1;
                    if let Some(id) = button(&result, label) {
                        let interaction = InteractionBuilder::button_press(&result, &id).user(presser, "presser");
                        planned.push_back(Press { interaction, upscale: false, image_url: None });
                    }
                }
                if k.is_multiple_of(3) {
                    let number = k / 3 % 4 + 1;
                    planned_upscales += 1;
                    if let Some(id) = button(&result, &format!("U{number}")) {
                        let interaction = InteractionBuilder::button_press(&result, &id).user(presser, "presser");
                        planned.push_back(Press { interaction, upscale: true, image_url: image_url(&result, number) });
                    }
                }
            }
        }
        for i in std::mem::take(&mut to_cancel) {
            let answered = discord.requests_matching("POST", &format!("/interactions/{}/", commands[i].id()));
            let cancel = answered.first().and_then(|r| button(&r.json.as_ref()?["data"], "Cancel"));
            match (cancel, discord.original_message(&commands[i].token())) {
                (Some(id), Some(reply)) => {
                    let press = InteractionBuilder::button_press(&reply, &id).user(member(i), "member");
                    discord.dispatch_interaction(press.build()).await;
                    cancels.push(press);
                }
                _ => to_cancel.push(i),
            }
        }
        let press_now = !planned.is_empty() && (commands.len() == imagines || press_turn);
        press_turn = !press_turn;
        if press_now {
            let press = planned.pop_front().expect("a planned press");
            discord.dispatch_interaction(press.interaction.build()).await;
            presses.push(press);
        } else if commands.len() < early || (commands.len() < imagines && results > 0) {
            let i = commands.len();
            let tenths = o.min_secs * 10 + fastrand::u64(0..=(o.max_secs - o.min_secs) * 10);
            let guild = DEFAULT_GUILD_ID + ((i as u64 % o.guilds) << 22);
            let cmd = InteractionBuilder::command("imagine")
                .guild(guild)
                .channel(guild + 1)
                .user(member(i), "member")
                .string("prompt", &format!("bench picture {i} takes {} and {} tenths", tenths / 10, tenths % 10))
                .attachment("image", "source.png", Some("image/png"), 64 * 1024, &source);
            discord.dispatch_interaction(cmd.build()).await;
            if o.presses {
                match i % 10 {
                    5 => to_cancel.push(i),
                    0 => {
                        let me =
                            InteractionBuilder::command("me").guild(guild).channel(guild + 1).user(member(i), "member");
                        discord.dispatch_interaction(me.build()).await;
                        mes.push(me);
                        awaiting.push(i);
                    }
                    _ => awaiting.push(i),
                }
            }
            commands.push(cmd);
        }
    }
    let made_by_presses = presses.iter().filter(|p| !p.upscale).count();
    let upscale_count = presses.len() - made_by_presses;

    // Every job is in the database once its interaction was answered; a refused press made none.
    support::eventually(Duration::from_secs(10), || async {
        presses.iter().all(|p| discord.acknowledged_with(p.interaction.id()).is_some())
    })
    .await;
    let mut own_queries = 0i64;
    let deadline = Instant::now() + Duration::from_secs(o.max_secs + 300);
    let jobs_made = loop {
        let (delivered, made): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), count(*) FROM jobs WHERE interaction_id > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        own_queries += 1;
        if (made as usize >= commands.len() && delivered == made) || Instant::now() > deadline {
            break made as usize;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    for press in presses.iter().filter(|p| p.upscale) {
        let posted = |m: &Value| m["attachments"].as_array().is_some_and(|a| !a.is_empty());
        let left = deadline.saturating_duration_since(Instant::now());
        discord.wait_original(&press.interaction.token(), left, posted).await;
    }
    sampler.abort();
    busy_sampler.abort();
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(bot.pid()) - cpu_before;
    let switches = context_switches(bot.pid()).saturating_sub(switches_before) as f64;
    let rss = peak_rss_mib(bot.pid());
    let db_round_trips = (transactions(&pool).await - tx_before - own_queries - 1) as f64 / jobs_made as f64;

    // What happened, from the stand-ins' records.
    let requests = discord.requests();
    // (interaction, provider job, delivered, made by a press)
    let jobs: Vec<(i64, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT interaction_id, provider_job_id, delivery IS NOT NULL, origin IS NOT NULL FROM jobs \
         WHERE interaction_id > 0",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let provider_ids: HashMap<i64, String> = jobs.iter().filter_map(|(i, p, _, _)| Some((*i, p.clone()?))).collect();
    let delivered = jobs.iter().filter(|(_, _, delivered, _)| *delivered).count();
    let delivered_from_presses = jobs.iter().filter(|(_, _, delivered, pressed)| *delivered && *pressed).count();
    let callback_of = |interaction: &InteractionBuilder| {
        let path = format!("/interactions/{}/", interaction.id());
        requests.iter().find(|r| r.is("POST", &path))
    };
    let since_dispatch = |interaction: &InteractionBuilder, at: Instant| {
        at.duration_since(discord.dispatched_at(interaction.id()).unwrap()).as_secs_f64() * 1000.0
    };
    let mut acks = Vec::new();
    // (ack ms, seconds into the run it was sent, when): where the slowest /imagine acks fell. The
    // `Instant` prints as CLOCK_MONOTONIC, the clock of `perf record -k CLOCK_MONOTONIC -p <bot>`:
    // what the bot was doing meanwhile.
    let mut slowest_acks: Vec<(f64, f64, Instant)> = Vec::new();
    let mut press_acks = Vec::new();
    // /imagine acks of the commands sent interleaved with the presses.
    let mut late_acks = Vec::new();
    let mut upscale_acks = Vec::new();
    let acks_of = |interactions: &[InteractionBuilder]| -> Vec<f64> {
        interactions.iter().filter_map(|i| callback_of(i).map(|ack| since_dispatch(i, ack.at))).collect()
    };
    let (mut cancel_acks, mut me_acks) = (acks_of(&cancels), acks_of(&mes));
    let cancelled = cancels
        .iter()
        .filter(|c| callback_of(c).and_then(|ack| ack.json.as_ref()).is_some_and(|j| j["type"] == 7))
        .count();
    let mut upscale_posted = Vec::new();
    // Presses refused, failed or not answered: each should be a public message (V, Reroll) or a
    // deferred answer (U).
    let mut presses_not_taken = 0usize;
    // What the presses not taken were answered, by kind of answer.
    let mut not_taken_answers: HashMap<String, usize> = HashMap::new();
    let mut note_answer = |kind: &str, ack: Option<&support::discord::RecordedRequest>| {
        let answer = match ack.and_then(|a| a.json.as_ref()) {
            None => "no answer".to_owned(),
            Some(j) => {
                let content: String = j["data"]["content"].as_str().unwrap_or("").chars().take(60).collect();
                format!("type {} {content:?}", j["type"])
            }
        };
        *not_taken_answers.entry(format!("{kind}: {answer}")).or_default() += 1;
    };
    let mut delivery = Vec::new();
    // The delivery delay in two parts: from the finish to the query that saw it (the polling
    // schedule, and how late the worker kept it), and from that query to the posted images.
    let (mut seen_after, mut posted_after) = (Vec::new(), Vec::new());
    let queries = shortapi.queries();
    let mut queried_at: HashMap<&str, Vec<Instant>> = HashMap::new();
    for q in &queries {
        queried_at.entry(q.job_id.as_str()).or_default().push(q.at);
    }
    // How far apart the worker kept two queries of one job (the dense interval is 2 s).
    let mut query_gaps: Vec<f64> = queried_at
        .values()
        .flat_map(|at| at.windows(2).map(|pair| pair[1].duration_since(pair[0]).as_secs_f64() * 1000.0))
        .collect();
    let mut edit_gaps = Vec::new();
    let mut budget = 0.0;
    let job_makers = commands
        .iter()
        .map(|c| (c, false))
        .chain(presses.iter().filter(|p| !p.upscale).map(|p| (&p.interaction, true)));
    for (cmd, pressed) in job_makers {
        let token = cmd.token();
        match callback_of(cmd) {
            Some(ack) if pressed => {
                let public = ack
                    .json
                    .as_ref()
                    .is_some_and(|j| j["type"] == 4 && j["data"]["flags"].as_u64().unwrap_or(0) & 64 == 0);
                presses_not_taken += usize::from(!public);
                if !public {
                    note_answer("V/Reroll", Some(ack));
                }
                press_acks.push(since_dispatch(cmd, ack.at));
            }
            Some(ack) => {
                let ms = since_dispatch(cmd, ack.at);
                acks.push(ms);
                let sent = discord.dispatched_at(cmd.id()).unwrap();
                slowest_acks.push((ms, sent.duration_since(started).as_secs_f64(), sent));
                if commands.iter().position(|c| c.id() == cmd.id()).is_some_and(|i| i >= early) {
                    late_acks.push(ms);
                }
            }
            None => {
                presses_not_taken += usize::from(pressed);
                if pressed {
                    note_answer("V/Reroll", None);
                }
            }
        }
        let edits: Vec<_> =
            requests.iter().filter(|r| r.is("PATCH", &format!("/{token}/messages/@original"))).collect();
        for pair in edits.windows(2) {
            if pair[0].files.is_empty() && pair[1].files.is_empty() {
                edit_gaps.push(pair[1].at.duration_since(pair[0].at).as_secs_f64());
            }
        }
        let Some(job) = provider_ids.get(&(cmd.id() as i64)) else { continue };
        let finished = shortapi.finishes_at(job).unwrap();
        budget += finished
            .duration_since(shortapi.creates().iter().find(|c| c.job_id.as_deref() == Some(job.as_str())).unwrap().at)
            .as_secs_f64()
            / 2.5
            + 2.0;
        if let Some(done) = edits.iter().find(|r| !r.files.is_empty() && r.status == 200) {
            delivery.push(done.at.saturating_duration_since(finished).as_secs_f64() * 1000.0);
            let seen = queried_at.get(job.as_str()).and_then(|at| at.iter().find(|&&at| at >= finished));
            if let Some(&seen) = seen.filter(|&&seen| seen <= done.at) {
                seen_after.push(seen.duration_since(finished).as_secs_f64() * 1000.0);
                posted_after.push(done.at.duration_since(seen).as_secs_f64() * 1000.0);
            }
        }
    }
    for press in presses.iter().filter(|p| p.upscale) {
        let cmd = &press.interaction;
        match callback_of(cmd) {
            Some(ack) if ack.json.as_ref().is_some_and(|j| j["type"] == 5) => {
                upscale_acks.push(since_dispatch(cmd, ack.at));
            }
            other => {
                presses_not_taken += 1;
                note_answer("U", other);
            }
        }
        let path = format!("/{}/messages/@original", cmd.token());
        if let Some(posted) = requests.iter().find(|r| r.is("PATCH", &path) && !r.files.is_empty() && r.status == 200) {
            upscale_posted.push(since_dispatch(cmd, posted.at));
        }
    }
    // The floor as sampled while /imagine commands, and then presses, were being sent.
    let samples = std::mem::take(&mut *floor_samples.lock().unwrap());
    let sampled_while = |interactions: Vec<&InteractionBuilder>| -> Vec<f64> {
        let sent: Vec<Instant> = interactions.iter().filter_map(|i| discord.dispatched_at(i.id())).collect();
        let (Some(from), Some(to)) = (sent.iter().min(), sent.iter().max()) else { return Vec::new() };
        samples.iter().filter(|(at, _)| at >= from && at <= to).map(|(_, ms)| *ms).collect()
    };
    let mut imagine_floor = sampled_while(commands.iter().collect());
    let mut press_floor = sampled_while(presses.iter().map(|p| &p.interaction).collect());
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for q in &queries {
        *per_second.entry(q.at.duration_since(started).as_secs()).or_default() += 1;
    }
    let peak_qps = per_second.values().copied().max().unwrap_or(0);
    // A U press's requests (its answer and its image, both under its token) are counted apart:
    // it makes no job.
    let upscale_tokens: HashSet<String> = presses.iter().filter(|p| p.upscale).map(|p| p.interaction.token()).collect();
    let (upscale_requests, job_requests) = requests
        .iter()
        .filter(|r| r.path.contains("/interactions/") || r.path.contains("/webhooks/") || r.path.contains("/channels/"))
        .fold((0usize, 0usize), |(upscale, job), r| {
            if r.path.split('/').any(|segment| upscale_tokens.contains(segment)) {
                (upscale + 1, job)
            } else {
                (upscale, job + 1)
            }
        });
    let limited = requests.iter().filter(|r| r.status == 429).count();
    // The routes that met a 429, tokens and ids left out: `PATCH /webhooks/{id}/{token}/...`.
    let mut limited_routes: HashMap<String, usize> = HashMap::new();
    for r in requests.iter().filter(|r| r.status == 429) {
        let shape: Vec<&str> = r
            .path
            .split('/')
            .map(|s| match s {
                s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => "{id}",
                s if s.len() > 30 => "{token}",
                s => s,
            })
            .collect();
        *limited_routes.entry(format!("{} {}", r.method, shape.join("/"))).or_default() += 1;
    }
    let mut limited_routes: Vec<String> = limited_routes.into_iter().map(|(r, n)| format!("{n} on {r}")).collect();
    limited_routes.sort();
    // Every upload the stand-in received is in there: free it before the floors and the probe.
    drop(requests);

    // Delivery floor: download one job's four images and upload them to the stand-in directly.
    let upload = |files: Vec<Vec<u8>>| {
        let mut form = reqwest::multipart::Form::new().text("payload_json", r#"{"content":"floor"}"#);
        for (i, bytes) in files.into_iter().enumerate() {
            form =
                form.part(format!("files[{i}]"), reqwest::multipart::Part::bytes(bytes).file_name(format!("{i}.png")));
        }
        client.post(format!("{}/api/v10/channels/1/messages", discord.proxy_url())).multipart(form).send()
    };
    let mut floor = Vec::new();
    for job in provider_ids.values().take(50) {
        let urls: Vec<String> = (0..4).map(|i| shortapi.image_url(&format!("{job}-{i}.png"))).collect();
        let t = Instant::now();
        let images = futures::future::join_all(urls.iter().map(|u| {
            let client = &client;
            async move { client.get(u).send().await.unwrap().bytes().await.unwrap().to_vec() }
        }))
        .await;
        upload(images).await.unwrap();
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // U floor: download the pressed image from the Discord stand-in and upload it again.
    let mut upscale_floor = Vec::new();
    for url in presses.iter().filter_map(|p| p.image_url.as_ref()).take(50) {
        let t = Instant::now();
        let image = client.get(url).send().await.unwrap().bytes().await.unwrap().to_vec();
        upload(vec![image]).await.unwrap();
        upscale_floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let memory = if o.presses {
        let delivered =
            |c: &InteractionBuilder| discord.original_message(&c.token()).filter(|m| button(m, "U1").is_some());
        let warm_up = commands.iter().find_map(delivered);
        match warm_up {
            Some(result) => upscale_memory_probe(bot, &vars, &discord, &shortapi, &pool, &source, &result).await,
            None => Err("no result of the run to warm up on".into()),
        }
    } else {
        drop(bot);
        Err("--no-presses".into())
    };

    let n = jobs_made as f64;
    let imagine_p99 = percentile(&mut acks, 0.99);
    slowest_acks.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slowest: Vec<String> =
        slowest_acks.iter().take(6).map(|(ms, at, when)| format!("{ms:.1} ms at {at:.2} s ({when:?})")).collect();
    eprintln!("slowest /imagine acks: {}", slowest.join(", "));
    let press_floor_text = format!(
        "{:.2} / {:.2} ms (round trip + one committed transaction, while presses were sent)",
        percentile(&mut press_floor, 0.5),
        percentile(&mut press_floor, 0.99)
    );
    let late_p99 = percentile(&mut late_acks, 0.99);
    let press_target = format!(
        "p99 ≤ 2 × /imagine ack p99 = {:.1} ms ({:.1} ms against the /imagine sent among the presses)",
        2.0 * imagine_p99,
        2.0 * late_p99
    );
    let mut rows = vec![
        (
            "jobs delivered",
            if o.presses {
                format!(
                    "{delivered} / {} ({} from /imagine, {delivered_from_presses} from V and Reroll presses)",
                    o.jobs,
                    delivered - delivered_from_presses
                )
            } else {
                format!("{delivered} / {}", o.jobs)
            },
            "-".to_owned(),
            "all".to_owned(),
        ),
        ("wall time", format!("{:.0} s", elapsed.as_secs_f64()), "-".into(), "-".into()),
        (
            "/imagine ack p50 / p99",
            format!("{:.1} / {imagine_p99:.1} ms", percentile(&mut acks, 0.5)),
            format!(
                "{:.2} / {:.2} ms (bare HTTP round trip); {:.2} / {:.2} ms (round trip + one committed transaction); \
                 {:.2} / {:.2} ms (the latter while /imagine commands were sent)",
                percentile(&mut round_trips, 0.5),
                percentile(&mut round_trips, 0.99),
                percentile(&mut ack_floor, 0.5),
                percentile(&mut ack_floor, 0.99),
                percentile(&mut imagine_floor, 0.5),
                percentile(&mut imagine_floor, 0.99)
            ),
            "p99 < 100 ms".into(),
        ),
    ];
    if o.presses {
        rows.extend([
            (
                "/imagine ack p50 / p95 / p99, sent among the presses",
                format!("{} ({} commands)", p50_95_99(&mut late_acks), late_acks.len()),
                press_floor_text.clone(),
                "-".into(),
            ),
            (
                "V / Reroll press ack p50 / p95 / p99",
                format!("{} ({made_by_presses} presses)", p50_95_99(&mut press_acks)),
                press_floor_text.clone(),
                press_target.clone(),
            ),
            (
                "U press ack p50 / p95 / p99",
                format!("{} ({upscale_count} presses)", p50_95_99(&mut upscale_acks)),
                press_floor_text.clone(),
                press_target.clone(),
            ),
            (
                "Cancel press ack p50 / p95 / p99",
                format!(
                    "{} ({} presses; {cancelled} cancelled before sending, the rest told it was sent)",
                    p50_95_99(&mut cancel_acks),
                    cancels.len()
                ),
                press_floor_text.clone(),
                press_target.clone(),
            ),
            (
                "/me ack p50 / p95 / p99",
                format!("{} ({} commands)", p50_95_99(&mut me_acks), mes.len()),
                press_floor_text,
                press_target,
            ),
            (
                "U press: image posted p50 / p95",
                format!(
                    "{:.0} / {:.0} ms",
                    percentile(&mut upscale_posted, 0.5),
                    percentile(&mut upscale_posted, 0.95)
                ),
                format!(
                    "{:.0} / {:.0} ms (download + upload the same image)",
                    percentile(&mut upscale_floor, 0.5),
                    percentile(&mut upscale_floor, 0.95)
                ),
                "-".into(),
            ),
            (
                "presses refused, failed or unanswered",
                if not_taken_answers.is_empty() {
                    format!("{presses_not_taken}")
                } else {
                    let mut answers: Vec<String> =
                        not_taken_answers.iter().map(|(answer, n)| format!("{n} × {answer}")).collect();
                    answers.sort();
                    format!("{presses_not_taken} ({})", answers.join("; "))
                },
                "-".into(),
                "0".into(),
            ),
        ]);
    }
    rows.extend([
        (
            "delivery delay p50 / p95",
            format!("{:.0} / {:.0} ms", percentile(&mut delivery, 0.5), percentile(&mut delivery, 0.95)),
            format!(
                "{:.0} / {:.0} ms (download + upload the same bytes)",
                percentile(&mut floor, 0.5),
                percentile(&mut floor, 0.95)
            ),
            if o.callbacks { "p95 < 500 ms".into() } else { "p95 < 3 s".into() },
        ),
        (
            "delivery delay, split: finish to the query that saw it / that query to the images posted, p50 / p95",
            format!(
                "{:.0} / {:.0} ms · {:.0} / {:.0} ms",
                percentile(&mut seen_after, 0.5),
                percentile(&mut seen_after, 0.95),
                percentile(&mut posted_after, 0.5),
                percentile(&mut posted_after, 0.95)
            ),
            "-".into(),
            "-".into(),
        ),
        (
            "busiest seconds: bot CPU (share of one core) p90 / max · machine busy p90 / max",
            {
                let samples = busy_seconds.lock().unwrap().clone();
                let (mut bot_share, mut machine): (Vec<f64>, Vec<f64>) = samples.into_iter().unzip();
                format!(
                    "{:.0} / {:.0} % · {:.0} / {:.0} %",
                    percentile(&mut bot_share, 0.9) * 100.0,
                    percentile(&mut bot_share, 1.0) * 100.0,
                    percentile(&mut machine, 0.9) * 100.0,
                    percentile(&mut machine, 1.0) * 100.0
                )
            },
            "-".into(),
            "-".into(),
        ),
        (
            "gap between two queries of one job p50 / p95 / max",
            format!(
                "{:.0} / {:.0} / {:.0} ms",
                percentile(&mut query_gaps, 0.5),
                percentile(&mut query_gaps, 0.95),
                percentile(&mut query_gaps, 1.0)
            ),
            "-".into(),
            "-".into(),
        ),
        (
            "provider queries per job",
            format!("{:.2}", queries.len() as f64 / n),
            format!("budget {:.2} (job time / 2.5 s + 2)", budget / n),
            if o.callbacks { "≤ 2".into() } else { "≤ budget".into() },
        ),
        (
            "provider queries per second at peak",
            format!("{peak_qps}"),
            "-".into(),
            "capped by PROVIDER_MAX_QUERIES_PER_SECOND".into(),
        ),
        (
            "Discord requests per job",
            if o.presses {
                format!(
                    "{:.2} (and {:.2} per U press)",
                    job_requests as f64 / n,
                    upscale_requests as f64 / upscale_count.max(1) as f64
                )
            } else {
                format!("{:.2}", job_requests as f64 / n)
            },
            "-".into(),
            "-".into(),
        ),
        (
            "Discord 429s",
            if limited_routes.is_empty() {
                format!("{limited}")
            } else {
                format!("{limited} ({})", limited_routes.join(", "))
            },
            "0 (stand-in allows 5 writes / 5 s per route)".into(),
            "0".into(),
        ),
        (
            "min gap between progress edits of one reply",
            format!("{:.1} s", edit_gaps.iter().copied().fold(f64::INFINITY, f64::min)),
            "-".into(),
            "≥ 5 s".into(),
        ),
        (
            if o.presses { "bot CPU per 1,000 jobs (U presses' work included)" } else { "bot CPU per 1,000 jobs" },
            format!("{:.2} s ({:.2} ms per job)", cpu / n * 1000.0, cpu / n * 1000.0),
            "-".into(),
            "< 10 ms per job".into(),
        ),
        ("bot context switches per job", format!("{:.0}", switches / n), "-".into(), "-".into()),
        ("bot peak RSS", format!("{rss:.0} MiB"), "-".into(), "< 150 MB".into()),
        (
            if o.presses {
                "database round trips per job (U presses' included)"
            } else {
                "database round trips per job"
            },
            format!("{db_round_trips:.1}"),
            "-".into(),
            "-".into(),
        ),
    ]);
    if o.presses {
        let large = LARGE_IMAGE_BYTES as f64 / 1024.0 / 1024.0;
        rows.push((
            "U press, peak RSS rise of a fresh bot: on a 256 KiB image beside three of 8 MiB / on an 8 MiB one",
            match memory {
                Ok((small, large)) => format!("+{small:.1} / +{large:.1} MiB"),
                Err(why) => format!("not measured: {why}"),
            },
            format!("the pressed image: 0.25 / {large:.0} MiB; the whole result: {:.2} MiB", 3.0 * large + 0.25),
            "the pressed image only, never the others".into(),
        ));
    }
    let mut table = String::from("| figure | measured | floor (same run) | target |\n|---|---|---|---|\n");
    for (name, measured, floor, target) in &rows {
        table.push_str(&format!("| {name} | {measured} | {floor} | {target} |\n"));
    }
    println!("\n{table}");
    if let Some(path) = o.write {
        let mode = if o.callbacks { "callbacks" } else { "polling" };
        let section = format!(
            "## {mode}: {} jobs{}, {} guilds, {}/s, jobs of {}-{} s\n\nCommand: `{}`  \nMachine: {}  \nRun: {}\n\n{table}\n",
            o.jobs,
            if o.presses {
                format!(" ({press_jobs} from V and Reroll presses; {upscales} U presses besides)")
            } else {
                String::new()
            },
            o.guilds,
            o.rate,
            o.min_secs,
            o.max_secs,
            command.trim(),
            machine(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        // Replace this mode's section; keep every other one (the other mode's, and hand-written
        // sections such as before/after comparisons).
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let this = format!("## {mode}: ");
        let kept: Vec<String> = existing
            .split("\n## ")
            .skip(1)
            .map(|s| format!("## {}", s.trim_end()))
            .filter(|s| !s.starts_with(&this))
            .collect();
        let (mut sections, notes): (Vec<String>, Vec<String>) =
            kept.into_iter().partition(|s| s.starts_with("## polling: ") || s.starts_with("## callbacks: "));
        sections.push(section.trim_end().to_owned());
        sections.sort();
        sections.extend(notes);
        let mut out = String::from(
            "# Benchmarks\n\nFigures from `benches/load.rs`: the release binary in its own process against the \
             stand-ins and PostgreSQL on one machine, each figure beside the floor measured in the same run.\n\n",
        );
        out.push_str(&sections.join("\n\n"));
        out.push('\n');
        std::fs::write(&path, out).unwrap();
        println!("written to {path}");
    }
}
