//! The real binary as separate processes sharing one PostgreSQL: killed and restarted, several
//! at once on distinct shards, stopped with SIGTERM, cut off from its database. Every output is
//! scanned for secrets.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{
    self, DISCORD_TOKEN, JobRow, TestDatabase, WAIT,
    discord::{DiscordStandIn, InteractionBuilder, shard_for_guild},
    eventually,
    pg::OwnCluster,
    process::BotProcess,
    shortapi::{Behaviour, DEFAULT_API_KEY, ShortApiStandIn},
};

struct World {
    discord: DiscordStandIn,
    shortapi: ShortApiStandIn,
    pool: PgPool,
    vars: HashMap<String, String>,
    _database: TestDatabase,
}

async fn world() -> World {
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let (database, pool) = support::fresh_pool().await;
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    // A dead process's jobs are taken over quickly.
    vars.insert("JOB_LEASE".into(), "2s".into());
    World { discord, shortapi, pool, vars, _database: database }
}

impl World {
    fn imagine(&self, prompt: &str) -> InteractionBuilder {
        support::imagine_command(&self.shortapi, prompt)
    }

    async fn job(&self, cmd: &InteractionBuilder) -> Option<JobRow> {
        support::jobs::job(&self.pool, cmd.id()).await
    }

    async fn wait_settled(&self, cmd: &InteractionBuilder) -> (String, bool, Option<String>) {
        let deadline = tokio::time::Instant::now() + WAIT * 2;
        loop {
            let job = self.job(cmd).await;
            if let Some(JobRow { status, counted, delivery, settled: true, .. }) = job {
                return (status, counted, delivery);
            }
            assert!(tokio::time::Instant::now() < deadline, "job never settled: {job:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Successful creates (the provider returned a job id) for a prompt.
    fn accepted_creates(&self, prompt: &str) -> usize {
        self.shortapi.creates().iter().filter(|c| c.args()["prompt"] == prompt && c.job_id.is_some()).count()
    }

    /// Edits of the reply that carried files: the final delivery.
    fn deliveries(&self, cmd: &InteractionBuilder) -> usize {
        let token = cmd.token();
        self.discord
            .requests()
            .iter()
            .filter(|r| {
                r.is("PATCH", &format!("/{token}/messages/@original")) && !r.files.is_empty() && r.status == 200
            })
            .count()
    }

    /// Nothing secret appears in any process output or in anything sent to Discord.
    fn assert_no_secrets(&self, processes: &[&BotProcess], commands: &[&InteractionBuilder]) {
        let mut secrets = vec![DISCORD_TOKEN.to_owned(), DEFAULT_API_KEY.to_owned()];
        secrets.extend(commands.iter().map(|c| c.token()));
        let sent: Vec<String> =
            self.discord.requests().iter().filter_map(|r| r.json.as_ref().map(Value::to_string)).collect();
        for process in processes {
            let output = process.output();
            assert!(!output.is_empty(), "the process logged nothing");
            for secret in &secrets {
                assert!(
                    !output.contains(secret.as_str()),
                    "a secret ({}…) appears in the process output",
                    &secret[..6]
                );
            }
        }
        for body in &sent {
            for secret in &secrets {
                assert!(!body.contains(secret.as_str()), "a secret appears in a message sent to Discord");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_flight_then_restarted_every_job_is_delivered_once() {
    let w = world().await;
    w.shortapi.script("long job", Behaviour::succeed_after(25));
    w.shortapi.script(
        "retried job",
        Behaviour::CreateHttpErrorThenSucceed { times: 1, status: 503, retry_after_secs: Some(3) },
    );
    let mut first = BotProcess::spawn(&w.vars, "first");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();

    let quick = w.imagine("quick job");
    let long = w.imagine("long job");
    let retried = w.imagine("retried job");
    for cmd in [&quick, &long, &retried] {
        w.discord.dispatch_interaction(cmd.build()).await;
    }
    // Kill while one job is generating and another waits to be sent again.
    let ready = eventually(WAIT, || async {
        let long = w.job(&long).await;
        let retried = w.job(&retried).await;
        long.is_some_and(|j| j.status == "running")
            && retried.is_some_and(|j| j.status == "queued" && j.create_attempts >= 1)
    })
    .await;
    assert!(ready, "jobs never reached the states to interrupt");
    first.kill();

    let second = BotProcess::spawn(&w.vars, "second");
    for cmd in [&quick, &long, &retried] {
        let (status, counted, delivery) = w.wait_settled(cmd).await;
        assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")), "{}", cmd.id());
        assert_eq!(w.deliveries(cmd), 1, "delivered exactly once");
    }
    for prompt in ["quick job", "long job", "retried job"] {
        assert_eq!(w.accepted_creates(prompt), 1, "{prompt} was created at the provider exactly once");
    }
    w.assert_no_secrets(&[&first, &second], &[&quick, &long, &retried]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_cut_off_by_a_crash_is_marked_uncertain_not_resent() {
    let w = world().await;
    w.shortapi.script("cut off", Behaviour::SlowCreate { delay: Duration::from_secs(20) });
    let mut first = BotProcess::spawn(&w.vars, "first");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    let cmd = w.imagine("cut off");
    w.discord.dispatch_interaction(cmd.build()).await;
    assert!(eventually(WAIT, || async { w.job(&cmd).await.is_some_and(|j| j.status == "submitting") }).await);
    // Kill once the create request has reached the provider (it answers only after 20 s).
    assert_eq!(w.shortapi.wait_creates(1, WAIT).await.len(), 1);
    first.kill();

    let second = BotProcess::spawn(&w.vars, "second");
    let (status, counted, _) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), counted), ("uncertain", false));
    let reply = w.discord.original_message(&cmd.token()).unwrap();
    assert!(reply["content"].as_str().unwrap().contains("could not confirm"), "the user is told: {reply:#}");
    assert_eq!(w.shortapi.creates().len(), 1, "never sent twice");
    w.assert_no_secrets(&[&first, &second], &[&cmd]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_provider_accepted_is_delivered_after_a_crash_during_its_first_edit() {
    let w = world().await;
    w.shortapi.script("paid for", Behaviour::succeed_after(3));
    let mut first = BotProcess::spawn(&w.vars, "first");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    // The first edit of the reply, right after the create answers, hangs: the process dies in it.
    w.discord.hang_next("PATCH", "/messages/@original", Duration::from_secs(40));
    let cmd = w.imagine("paid for");
    w.discord.dispatch_interaction(cmd.build()).await;
    assert!(eventually(WAIT, || async { w.discord.hanging_requests() == 1 }).await, "the edit never came");
    assert_eq!(w.accepted_creates("paid for"), 1, "the provider has the job");
    first.kill();

    let second = BotProcess::spawn(&w.vars, "second");
    let (status, counted, delivery) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")));
    assert_eq!(w.accepted_creates("paid for"), 1, "followed, never sent again");
    assert_eq!(w.shortapi.creates().len(), 1);
    let reply = w.discord.original_message(&cmd.token()).unwrap();
    assert!(reply["content"].as_str().unwrap().contains("Done"), "{reply:#}");
    assert_eq!(w.deliveries(&cmd), 1);
    w.assert_no_secrets(&[&first, &second], &[&cmd]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_takes_back_its_jobs_at_once() {
    let mut w = world().await;
    // The default lease (2 minutes): nothing but the process's own identity can make this quick.
    w.vars.remove("JOB_LEASE");
    w.shortapi.script(
        "fifteen seconds",
        Behaviour::SucceedAt { after: Duration::from_secs(15), images: 4, image_bytes: 2048 },
    );
    let mut first = BotProcess::spawn(&w.vars, "first");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    let cmd = w.imagine("fifteen seconds");
    w.discord.dispatch_interaction(cmd.build()).await;
    assert!(eventually(WAIT, || async { w.job(&cmd).await.is_some_and(|j| j.status == "submitted") }).await);
    first.kill();

    let second = BotProcess::spawn(&w.vars, "second");
    let (status, _, delivery) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    assert_eq!(w.accepted_creates("fifteen seconds"), 1);
    let finished = w.shortapi.finishes_at(&w.shortapi.job_id_for("fifteen seconds")).unwrap();
    let token = cmd.token();
    let delivered = w
        .discord
        .requests()
        .into_iter()
        .find(|r| r.is("PATCH", &format!("/{token}/messages/@original")) && !r.files.is_empty())
        .expect("the result was uploaded")
        .at;
    let late = delivered.saturating_duration_since(finished);
    assert!(late < Duration::from_secs(10), "delivered {late:?} after the provider finished");
    assert!(second.output().contains("took back the jobs this instance held"), "{}", second.output());
    w.assert_no_secrets(&[&first, &second], &[&cmd]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_distinct_shards_share_the_work_and_take_over() {
    let w = world().await;
    // Two guilds that land on different shards of two.
    let guild_a = support::discord::DEFAULT_GUILD_ID;
    let guild_b = (1u64..)
        .map(|i| guild_a + (i << 22))
        .find(|g| shard_for_guild(Some(*g), 2) != shard_for_guild(Some(guild_a), 2))
        .unwrap();
    let shard_a = shard_for_guild(Some(guild_a), 2);
    let mut vars_a = w.vars.clone();
    vars_a.insert("DISCORD_SHARDS".into(), format!("{shard_a}/2"));
    let mut vars_b = w.vars.clone();
    vars_b.insert("DISCORD_SHARDS".into(), format!("{}/2", 1 - shard_a));
    let mut a = BotProcess::spawn(&vars_a, "shard-a");
    let b = BotProcess::spawn(&vars_b, "shard-b");
    assert!(w.discord.wait_ready_count(2, WAIT).await, "both processes identify");

    w.shortapi.script("long", Behaviour::succeed_after(30));
    let mut commands = Vec::new();
    for i in 0..4 {
        commands.push(w.imagine(&format!("guild a picture {i}")).guild(guild_a));
        commands.push(w.imagine(&format!("guild b picture {i}")).guild(guild_b));
    }
    let long = w.imagine("long guild a picture").guild(guild_a);
    for cmd in commands.iter().chain([&long]) {
        w.discord.dispatch_interaction(cmd.build()).await;
    }
    for cmd in &commands {
        let (status, _, delivery) = w.wait_settled(cmd).await;
        assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
        assert_eq!(w.deliveries(cmd), 1, "delivered once");
        assert_eq!(w.discord.acknowledged_with(cmd.id()), Some(4), "acknowledged once, publicly");
    }
    for i in 0..4 {
        for guild in ["a", "b"] {
            assert_eq!(w.accepted_creates(&format!("guild {guild} picture {i}")), 1);
        }
    }
    // The process of shard A dies while its long job runs: B takes it over after the lease.
    assert!(eventually(WAIT, || async { w.job(&long).await.is_some_and(|j| j.status == "running") }).await);
    a.kill();
    let (status, _, delivery) = w.wait_settled(&long).await;
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    assert_eq!(w.accepted_creates("long guild a picture"), 1);
    let refs: Vec<&InteractionBuilder> = commands.iter().chain([&long]).collect();
    w.assert_no_secrets(&[&a, &b], &refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_shard_answer_each_command_once() {
    let w = world().await;
    let a = BotProcess::spawn(&w.vars, "same-shard-a");
    let b = BotProcess::spawn(&w.vars, "same-shard-b");
    assert!(w.discord.wait_ready_count(2, WAIT).await, "both processes identify");
    let commands: Vec<InteractionBuilder> = (0..6).map(|i| w.imagine(&format!("shared shard {i}"))).collect();
    for cmd in &commands {
        // Both processes receive every interaction on a shared shard.
        w.discord.dispatch_interaction(cmd.build()).await;
    }
    for (i, cmd) in commands.iter().enumerate() {
        w.wait_settled(cmd).await;
        let callbacks = w.discord.requests_matching("POST", &format!("/interactions/{}/", cmd.id()));
        assert_eq!(callbacks.len(), 1, "exactly one process answered");
        assert_eq!(w.accepted_creates(&format!("shared shard {i}")), 1);
        assert_eq!(w.deliveries(cmd), 1);
    }
    let jobs = support::jobs::job_count(&w.pool).await;
    assert_eq!(jobs, 6);

    // A press reaches both processes too: one answer, one new job, one create.
    let token = commands[0].token();
    let result = w.discord.wait_original(&token, WAIT, |m| m["content"].as_str().unwrap_or("").contains("Done")).await;
    let result = result.expect("a delivered result");
    let reroll_id = result["components"][2]["components"][0]["custom_id"].as_str().unwrap().to_owned();
    assert!(reroll_id.contains(":Reroll:"), "{reroll_id}");
    let press = InteractionBuilder::button_press(&result, &reroll_id);
    w.discord.dispatch_interaction(press.build()).await;
    w.wait_settled(&press).await;
    assert_eq!(w.discord.requests_matching("POST", &format!("/interactions/{}/", press.id())).len(), 1);
    assert_eq!(w.accepted_creates("shared shard 0"), 2, "the original and one reroll");
    let jobs = support::jobs::job_count(&w.pool).await;
    assert_eq!(jobs, 7);

    // Same host, same shards: one name, which only one live process may use.
    let one_off =
        || [&a, &b].iter().filter(|p| p.output().contains("another live process uses this INSTANCE_ID")).count();
    assert!(eventually(WAIT, || async { one_off() == 1 }).await, "exactly one process takes the shared name");

    let mut refs: Vec<&InteractionBuilder> = commands.iter().collect();
    refs.push(&press);
    w.assert_no_secrets(&[&a, &b], &refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_outlives_the_lease_is_not_taken_over() {
    // The create takes 5 s, far past the 2 s lease: the owner renews the lease while it waits,
    // so the other process never takes the job over (which would make it uncertain, or worse).
    let mut w = world().await;
    w.vars.insert("PROVIDER_TIMEOUT".into(), "10s".into());
    w.shortapi.script("slow to accept", Behaviour::SlowCreate { delay: Duration::from_secs(5) });
    let a = BotProcess::spawn(&w.vars, "lease-a");
    let b = BotProcess::spawn(&w.vars, "lease-b");
    assert!(w.discord.wait_ready_count(2, WAIT).await, "both processes identify");
    let cmd = w.imagine("slow to accept");
    w.discord.dispatch_interaction(cmd.build()).await;
    let (status, counted, delivery) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")));
    let sent = w.shortapi.creates().iter().filter(|c| c.args()["prompt"] == "slow to accept").count();
    assert_eq!(sent, 1, "sent once, never taken over and resent or marked uncertain");
    assert_eq!(w.deliveries(&cmd), 1, "delivered once");
    w.assert_no_secrets(&[&a, &b], &[&cmd]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_releases_leases() {
    let w = world().await;
    w.shortapi.script("drawn out", Behaviour::succeed_after(200));
    let mut first = BotProcess::spawn(&w.vars, "first");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    let cmd = w.imagine("drawn out");
    w.discord.dispatch_interaction(cmd.build()).await;
    assert!(eventually(WAIT, || async { w.job(&cmd).await.is_some_and(|j| j.status == "running") }).await);

    first.terminate();
    let exit = first.wait(Duration::from_secs(30)).await.expect("the bot exits after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        eventually(WAIT, || async { w.discord.connected_sessions() == 0 }).await,
        "the gateway is closed: no new commands"
    );
    let leased: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL").fetch_one(&w.pool).await.unwrap();
    assert_eq!(leased, 0, "leases are released at shutdown");
    let JobRow { status, .. } = w.job(&cmd).await.unwrap();
    assert_eq!(status, "running", "the job is left for the next process, not failed");
    w.assert_no_secrets(&[&first], &[&cmd]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gets_a_calm_answer_and_the_worker_resumes() {
    // A cluster of this test's own, so stopping it disturbs no other test.
    let cluster = OwnCluster::start("pg-outage", support::pg::port() + 2);
    let database = TestDatabase::create(cluster.url(), "outage").await;
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    let health = support::free_address();
    vars.insert("HEALTH_ADDR".into(), health.clone());
    let pool = imagine_bot::db::connect(&database, 2).await.unwrap();
    let w = World { discord, shortapi, pool, vars, _database: database };
    let mut bot = BotProcess::spawn(&w.vars, "outage");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();

    cluster.stop();
    let cmd = w.imagine("while the database sleeps");
    w.discord.dispatch_interaction(cmd.build()).await;
    let path = format!("/interactions/{}/", cmd.id());
    let callback = w.discord.wait_for(WAIT, |r| r.is("POST", &path)).await.expect("an answer");
    let dispatched = w.discord.dispatched_at(cmd.id()).unwrap();
    assert!(callback.at.duration_since(dispatched) < Duration::from_secs(3), "answered within Discord's 3 seconds");
    let data = &callback.json.as_ref().unwrap()["data"];
    assert_eq!(data["flags"], 64);
    assert!(data["content"].as_str().unwrap().contains("temporarily unavailable"), "{data:#}");
    assert!(bot.is_running(), "the process stays up");
    let ready = reqwest::get(format!("http://{health}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready without the database");
    assert!(ready.text().await.unwrap().contains("database: unreachable"));

    cluster.restart();
    let after = w.imagine("after the database woke");
    w.discord.dispatch_interaction(after.build()).await;
    let pool = imagine_bot::db::connect(&w.vars["DATABASE_URL"], 2).await.unwrap();
    let w = World { pool, ..w };
    let (status, _, delivery) = w.wait_settled(&after).await;
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    w.assert_no_secrets(&[&bot], &[&cmd, &after]);
    bot.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_lease_cannot_be_renewed_stops_editing() {
    // A cluster of this test's own, so stopping it disturbs no other test.
    // On a port below the kernel's ephemeral range, which no outgoing connection can be holding.
    let port = support::free_address().rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a free port");
    let cluster = OwnCluster::start("pg-renewals", port);
    let database = TestDatabase::create(cluster.url(), "renewals").await;
    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let mut vars = support::test_vars(&discord, &shortapi, &database);
    vars.insert("JOB_LEASE".into(), "3s".into());
    let pool = imagine_bot::db::connect(&database, 2).await.unwrap();
    let w = World { discord, shortapi, pool, vars, _database: database };
    w.shortapi.script(
        "held through an outage",
        Behaviour::Succeed {
            polls_before_done: 40,
            images: 4,
            image_bytes: 2048,
            amount: "0.04".into(),
            progress: true,
        },
    );
    let mut bot = BotProcess::spawn(&w.vars, "renewals");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    let cmd = w.imagine("held through an outage");
    w.discord.dispatch_interaction(cmd.build()).await;
    let token = cmd.token();
    let edits = || w.discord.requests_matching("PATCH", &format!("/{token}/messages/@original"));
    // The job is at the provider, held in memory between polls, its reply edited as the seconds pass.
    assert!(eventually(WAIT, || async { edits().len() >= 3 }).await, "the reply was never edited");

    // The database goes away: no lease can be renewed, so after the lease another process could
    // own the job. This copy must stop editing before that.
    cluster.stop();
    let stopped = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let late: Vec<Duration> = edits()
        .iter()
        .filter_map(|r| r.at.checked_duration_since(stopped))
        .filter(|after| *after > Duration::from_secs(3))
        .collect();
    assert!(late.is_empty(), "edits {late:?} after the database stopped, past the 3 s lease");
    assert!(bot.is_running());

    // Back again: the job is claimed afresh and delivered.
    cluster.restart();
    let pool = imagine_bot::db::connect(&w.vars["DATABASE_URL"], 2).await.unwrap();
    let w = World { pool, ..w };
    let (status, _, delivery) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("edit")));
    assert_eq!(w.accepted_creates("held through an outage"), 1);
    w.assert_no_secrets(&[&bot], &[&cmd]);
    bot.kill();
}

/// libfaketime, which shifts a process's wall clock (Debian's `faketime` package; `.ci/run`
/// installs it).
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists());
    found.expect("libfaketime is missing: apt-get install faketime").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_clock_ten_minutes_fast_does_not_stall_jobs() {
    let mut w = world().await;
    // The bot's host clock runs ten minutes ahead of the database's (its monotonic clock is true).
    w.vars.insert("LD_PRELOAD".into(), libfaketime());
    w.vars.insert("FAKETIME".into(), "+10m".into());
    w.vars.insert("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into());
    // A job waits 2 s for its first look: longer than half the 2 s lease, so it is written back
    // to the database with the time it is due, instead of being held in memory.
    w.vars.insert("POLL_FIRST_DELAY".into(), "2s".into());
    let bot = BotProcess::spawn(&w.vars, "fast-clock");
    assert!(w.discord.wait_ready(WAIT).await);
    w.discord.wait_registered(WAIT).await.unwrap();
    let cmd = w.imagine("a fast clock");
    w.discord.dispatch_interaction(cmd.build()).await;
    let (status, counted, delivery) = w.wait_settled(&cmd).await;
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("edit")));
    // Stored times are the database's: the job did not finish ten minutes after it was made.
    let took: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at)::float8 FROM jobs WHERE interaction_id = $1",
    )
    .bind(cmd.id() as i64)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert!((0.0..60.0).contains(&took), "finished {took} s after it was made");
    w.assert_no_secrets(&[&bot], &[&cmd]);
}
