//! Load benchmark: the real bot (release build, its own process) against the Discord and
//! ShortAPI stand-ins and a real PostgreSQL, with each figure printed next to the floor measured
//! in the same run. Run with `cargo bench --bench load` (see `--help`); it writes BENCHMARKS.md.
//!
//! Longer than 400 lines on purpose: one scenario read top to bottom (start everything, seed, send,
//! wait, measure each floor in the same run, write the table), which splitting would scatter.

// The test support, shared with the tests (`tests/e2e/main.rs`); the bench uses a small part.
#[allow(dead_code, reason = "the bench uses a small part of the test support")]
#[path = "../tests/support/harness.rs"]
mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use support::{
    discord::{DiscordStandIn, InteractionBuilder},
    process::BotProcess,
    shortapi::{Behaviour, ShortApiStandIn},
};

const HELP: &str = "cargo bench --bench load -- [--jobs N] [--guilds M] [--rate PER_SECOND] \
[--min-secs S] [--max-secs S] [--quick] [--callbacks] [--provider-qps N] [--write PATH]
  --jobs 500 --guilds 25 --rate 50 --min-secs 20 --max-secs 90 by default;
  --quick: 200 jobs of 2-6 s; --callbacks: the provider calls back; --provider-qps: the bot's
  PROVIDER_MAX_QUERIES_PER_SECOND (its default otherwise); --write: where the table goes
  (BENCHMARKS.md by default; --write - prints only)";

struct Options {
    jobs: usize,
    guilds: u64,
    rate: f64,
    min_secs: u64,
    max_secs: u64,
    callbacks: bool,
    provider_qps: Option<f64>,
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
        provider_qps: None,
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
            "--quick" => {
                (o.jobs, o.min_secs, o.max_secs) = (200, 2, 6);
                i -= 1;
            }
            "--callbacks" => {
                o.callbacks = true;
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

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
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
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_ack_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        .execute(&pool)
        .await
        .unwrap();
    let mut ack_floor = Vec::new();
    for i in 0..200i64 {
        let t = Instant::now();
        client.get(format!("{}/api/v10/gateway", discord.proxy_url())).send().await.unwrap().bytes().await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO bench_ack_floor (id) VALUES ($1)").bind(i).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        ack_floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    for seconds in o.min_secs..=o.max_secs {
        shortapi.script(
            &format!("takes {seconds}s"),
            Behaviour::SucceedAt { after: Duration::from_secs(seconds), images: 4, image_bytes: 256 * 1024 },
        );
    }
    shortapi.add_image("source.png", ShortApiStandIn::tiny_png(64 * 1024), "image/png");
    let source = format!("{}?ex=1&is=2&hm=3&", shortapi.image_url("source.png"));

    let cpu_before = cpu_seconds(bot.pid());
    let tx_before = transactions(&pool).await;
    let started = Instant::now();
    let mut commands = Vec::with_capacity(o.jobs);
    let gap = Duration::from_secs_f64(1.0 / o.rate);
    let mut next = tokio::time::Instant::now();
    for i in 0..o.jobs {
        let seconds = o.min_secs + fastrand::u64(0..=(o.max_secs - o.min_secs));
        let guild = support::discord::DEFAULT_GUILD_ID + ((i as u64 % o.guilds) << 22);
        let cmd = InteractionBuilder::command("imagine")
            .guild(guild)
            .channel(guild + 1)
            .user(1_180_000_000_000_100_000 + i as u64, "member")
            .string("prompt", &format!("bench picture {i} takes {seconds}s"))
            .attachment("image", "source.png", Some("image/png"), 64 * 1024, &source);
        tokio::time::sleep_until(next).await;
        discord.dispatch_interaction(cmd.build()).await;
        commands.push(cmd);
        next += gap;
    }

    let mut own_queries = 0i64;
    let deadline = Instant::now() + Duration::from_secs(o.max_secs + 300);
    loop {
        let delivered: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE interaction_id > 0 AND delivered_at IS NOT NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        own_queries += 1;
        if delivered as usize >= o.jobs || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds(bot.pid()) - cpu_before;
    let rss = peak_rss_mib(bot.pid());
    let db_round_trips = (transactions(&pool).await - tx_before - own_queries - 1) as f64 / o.jobs as f64;

    // What happened, from the stand-ins' records.
    let requests = discord.requests();
    let jobs: Vec<(i64, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT interaction_id, provider_job_id, delivery::text FROM jobs WHERE interaction_id > 0")
            .fetch_all(&pool)
            .await
            .unwrap();
    let provider_ids: HashMap<i64, String> = jobs.iter().filter_map(|(i, p, _)| Some((*i, p.clone()?))).collect();
    let delivered = jobs.iter().filter(|(_, _, d)| d.is_some()).count();
    let mut acks = Vec::new();
    let mut delivery = Vec::new();
    let mut edit_gaps = Vec::new();
    let mut budget = 0.0;
    for cmd in &commands {
        let dispatched = discord.dispatched_at(cmd.id()).unwrap();
        let token = cmd.token();
        let callback = format!("/interactions/{}/", cmd.id());
        if let Some(ack) = requests.iter().find(|r| r.is("POST", &callback)) {
            acks.push(ack.at.duration_since(dispatched).as_secs_f64() * 1000.0);
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
        }
    }
    let queries = shortapi.queries();
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for q in &queries {
        *per_second.entry(q.at.duration_since(started).as_secs()).or_default() += 1;
    }
    let peak_qps = per_second.values().copied().max().unwrap_or(0);
    let discord_requests = requests
        .iter()
        .filter(|r| r.path.contains("/interactions/") || r.path.contains("/webhooks/") || r.path.contains("/channels/"))
        .count();
    let limited = requests.iter().filter(|r| r.status == 429).count();

    // Delivery floor: download one job's four images and upload them to the stand-in directly.
    let mut floor = Vec::new();
    for job in provider_ids.values().take(50) {
        let urls: Vec<String> = (0..4).map(|i| shortapi.image_url(&format!("{job}-{i}.png"))).collect();
        let t = Instant::now();
        let images = futures::future::join_all(urls.iter().map(|u| {
            let client = &client;
            async move { client.get(u).send().await.unwrap().bytes().await.unwrap() }
        }))
        .await;
        let mut form = reqwest::multipart::Form::new().text("payload_json", r#"{"content":"floor"}"#);
        for (i, bytes) in images.into_iter().enumerate() {
            form = form.part(
                format!("files[{i}]"),
                reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(format!("{i}.png")),
            );
        }
        client
            .post(format!("{}/api/v10/channels/1/messages", discord.proxy_url()))
            .multipart(form)
            .send()
            .await
            .unwrap();
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let n = o.jobs as f64;
    let rows = vec![
        ("jobs delivered", format!("{delivered} / {}", o.jobs), "-".to_owned(), "all".to_owned()),
        ("wall time", format!("{:.0} s", elapsed.as_secs_f64()), "-".into(), "-".into()),
        (
            "ack latency p50 / p99",
            format!("{:.1} / {:.1} ms", percentile(&mut acks, 0.5), percentile(&mut acks, 0.99)),
            format!(
                "{:.2} / {:.2} ms (bare HTTP round trip); {:.2} / {:.2} ms (round trip + one committed transaction)",
                percentile(&mut round_trips, 0.5),
                percentile(&mut round_trips, 0.99),
                percentile(&mut ack_floor, 0.5),
                percentile(&mut ack_floor, 0.99)
            ),
            "p99 < 100 ms".into(),
        ),
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
        ("Discord requests per job", format!("{:.2}", discord_requests as f64 / n), "-".into(), "-".into()),
        ("Discord 429s", format!("{limited}"), "0 (stand-in allows 5 writes / 5 s per route)".into(), "0".into()),
        (
            "min gap between progress edits of one reply",
            format!("{:.1} s", edit_gaps.iter().copied().fold(f64::INFINITY, f64::min)),
            "-".into(),
            "≥ 5 s".into(),
        ),
        (
            "bot CPU per 1,000 jobs",
            format!("{:.2} s ({:.2} ms per job)", cpu / n * 1000.0, cpu / n * 1000.0),
            "-".into(),
            "< 10 ms per job".into(),
        ),
        ("bot peak RSS", format!("{rss:.0} MiB"), "-".into(), "< 150 MB".into()),
        ("database round trips per job", format!("{db_round_trips:.1}"), "-".into(), "-".into()),
    ];
    let mut table = String::from("| figure | measured | floor (same run) | target |\n|---|---|---|---|\n");
    for (name, measured, floor, target) in &rows {
        table.push_str(&format!("| {name} | {measured} | {floor} | {target} |\n"));
    }
    println!("\n{table}");
    if let Some(path) = o.write {
        let mode = if o.callbacks { "callbacks" } else { "polling" };
        let section = format!(
            "## {mode}: {} jobs, {} guilds, {}/s, jobs of {}-{} s\n\nCommand: `{}`  \nMachine: {}  \nRun: {}\n\n{table}\n",
            o.jobs,
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
    drop(bot);
}
