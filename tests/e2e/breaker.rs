//! The provider circuit breaker, on the real binary: the image service refusing the bot's
//! account three times in a row stops new jobs privately (nothing stored, nothing sent), holds
//! the queued ones back unsent, says why in the operator's log and in `/metrics`, and a probe
//! every `BREAKER_PROBE_AFTER` closes it once the account is in order again.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;
use sqlx::PgPool;

use crate::actions::{EPHEMERAL, custom_id};
use crate::support::{
    self, JobRow, TestDatabase, WAIT,
    discord::{DiscordStandIn, InteractionBuilder},
    eventually,
    process::BotProcess,
    shortapi::{Behaviour, DEFAULT_API_KEY, ShortApiStandIn},
};

const REFUSING: &str = "The image service is not accepting this bot's jobs right now; nothing was counted. \
                        Please try again later.";
const PROBE_AFTER: Duration = Duration::from_secs(5);

struct World {
    discord: DiscordStandIn,
    shortapi: ShortApiStandIn,
    pool: PgPool,
    health: String,
    bot: BotProcess,
    _database: TestDatabase,
}

impl World {
    async fn start() -> World {
        let discord = DiscordStandIn::start().await;
        let shortapi = ShortApiStandIn::start().await;
        let (database, pool) = support::fresh_pool().await;
        let health = support::free_address();
        let mut vars: HashMap<String, String> = support::test_vars(&discord, &shortapi, &database);
        vars.insert("HEALTH_ADDR".into(), health.clone());
        vars.insert("BREAKER_PROBE_AFTER".into(), format!("{}s", PROBE_AFTER.as_secs()));
        // One create at a time, so the breaker's count is the provider's order of answers; and
        // time enough for creates the stand-in holds back.
        vars.insert("WORKER_CONCURRENCY".into(), "1".into());
        vars.insert("PROVIDER_TIMEOUT".into(), "60s".into());
        let bot = BotProcess::spawn(&vars, "breaker");
        let world = World { discord, shortapi, pool, health, bot, _database: database };
        assert!(world.discord.wait_ready(WAIT).await, "the bot never identified");
        world.discord.wait_registered(WAIT).await.expect("commands registered");
        assert!(eventually(WAIT, || async { world.get("readyz").await.0 == 200 }).await, "the bot never became ready");
        world
    }

    async fn get(&self, path: &str) -> (u16, String) {
        match reqwest::get(format!("http://{}/{path}", self.health)).await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("metrics").await;
        body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    async fn send(&self, interaction: &InteractionBuilder) -> Value {
        self.discord.dispatch_interaction(interaction.build()).await;
        let path = format!("/interactions/{}/", interaction.id());
        let callback = self.discord.wait_for(WAIT, |r| r.is("POST", &path)).await.expect("the interaction is answered");
        callback.json.expect("a JSON callback")
    }

    async fn imagine(&self, prompt: &str) -> (InteractionBuilder, Value) {
        let cmd = support::imagine_command(&self.shortapi, prompt);
        let callback = self.send(&cmd).await;
        (cmd, callback)
    }

    async fn wait_reply(&self, cmd: &InteractionBuilder, needle: &str) -> Value {
        let reply = self
            .discord
            .wait_original(&cmd.token(), WAIT, |m| m["content"].as_str().unwrap_or("").contains(needle))
            .await;
        reply.unwrap_or_else(|| {
            panic!("the reply never said {needle:?}: {:?}", self.discord.original_message(&cmd.token()))
        })
    }

    /// Every job, in the order they came.
    async fn jobs(&self) -> Vec<JobRow> {
        support::jobs::jobs(&self.pool).await
    }

    async fn wait_jobs(&self, what: &str, check: impl Fn(&[JobRow]) -> bool) {
        let holds = eventually(WAIT, || async { check(&self.jobs().await) }).await;
        assert!(holds, "{what}: {:?}", self.jobs().await);
    }

    /// The breaker refuses a new `/imagine` privately, storing and sending nothing.
    async fn refuses_new_jobs(&self, prompt: &str) {
        let (jobs, creates) = (self.jobs().await.len(), self.shortapi.creates().len());
        let (_, callback) = self.imagine(prompt).await;
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{callback:#}");
        assert_eq!(callback["data"]["content"], REFUSING, "{callback:#}");
        assert_eq!(self.jobs().await.len(), jobs, "nothing stored");
        assert_eq!(self.shortapi.creates().len(), creates, "nothing sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_account_refusals_open_the_breaker_and_an_accepted_probe_closes_it() {
    let world = World::start().await;
    assert_eq!(world.metric("imagine_provider_breaker_open").await, Some(0.0));
    let (first, _) = world.imagine("a sunny meadow").await;
    let result = world.wait_reply(&first, "Done").await;

    // The account runs dry while five jobs wait: the worker sends them one at a time.
    world.shortapi.script("", Behaviour::CreateError { code: 1001, message: "Insufficient balance: 0.00 USD".into() });
    world.shortapi.hold_creates();
    let mut queued = Vec::new();
    for n in 1..=5 {
        let (cmd, callback) = world.imagine(&format!("queued job {n}")).await;
        assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, 0, "accepted: {callback:#}");
        queued.push(cmd);
    }
    let all_acked = eventually(WAIT, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE acked_at IS NOT NULL")
            .fetch_one(&world.pool)
            .await
            .unwrap();
        n == 6
    })
    .await;
    assert!(all_acked, "every reply was sent");
    world.shortapi.answer_creates();

    // Three refusals in a row fail three jobs (refunded); the other two wait, never sent.
    let failed = |jobs: &[JobRow]| jobs.iter().filter(|j| j.status == "failed").count();
    world.wait_jobs("three refused", |jobs| failed(jobs) == 3).await;
    assert_eq!(world.shortapi.creates().len(), 4, "the first job, then three refusals: {:?}", world.jobs().await);
    let held: Vec<i64> = world
        .jobs()
        .await
        .into_iter()
        .filter(|j| j.status == "queued")
        .map(|j| {
            assert!(j.counted && j.provider_job_id.is_none());
            j.interaction_id
        })
        .collect();
    assert_eq!(held.len(), 2, "{:?}", world.jobs().await);
    for cmd in queued.iter().filter(|c| held.contains(&(c.id() as i64))) {
        let reply = world.discord.original_message(&cmd.token()).unwrap().to_string();
        assert!(!reply.contains("Failed"), "a held job is not failed: {reply}");
    }

    // The operator sees why; the bot still serves.
    assert_eq!(world.metric("imagine_provider_breaker_open").await, Some(1.0));
    assert_eq!(world.metric("imagine_provider_breaker_trips_total").await, Some(1.0));
    assert_eq!(world.get("readyz").await.0, 200);
    let log = world.bot.output();
    let opened = log.lines().find(|l| l.contains("times in a row")).unwrap_or_else(|| panic!("no log line:\n{log}"));
    assert!(opened.contains("ERROR") && opened.contains("Insufficient balance: 0.00 USD"), "{opened}");
    assert!(!log.contains(DEFAULT_API_KEY), "no secret in the log");

    // New jobs, by command or by button, are refused privately at once.
    world.refuses_new_jobs("while the account is dry").await;
    let jobs = world.jobs().await.len();
    let press = InteractionBuilder::button_press(&result, &custom_id(&result, "V1"));
    let callback = world.send(&press).await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, EPHEMERAL, "{callback:#}");
    assert_eq!(callback["data"]["content"], REFUSING, "{callback:#}");
    assert_eq!(world.jobs().await.len(), jobs, "the press stored nothing");

    // After the probe interval one held job is sent as a probe; refused, it keeps the breaker
    // open for another interval, and the last held job still waits.
    world.wait_jobs("the probe refused", |jobs| failed(jobs) == 4).await;
    world.refuses_new_jobs("right after a refused probe").await;
    assert_eq!(world.shortapi.creates().len(), 5, "one probe");
    assert_eq!(world.metric("imagine_provider_breaker_trips_total").await, Some(1.0), "the same outage");

    // The operator tops the balance up: the next probe is accepted and closes the breaker.
    world.shortapi.unscript("");
    world.wait_jobs("the last held job done", |jobs| jobs.iter().filter(|j| j.status == "queued").count() == 0).await;
    let last = queued.iter().find(|c| {
        world
            .discord
            .original_message(&c.token())
            .is_some_and(|m| !m["content"].as_str().unwrap_or("").contains("Failed"))
    });
    world.wait_reply(last.expect("one held job was not refused"), "Done").await;
    assert_eq!(world.metric("imagine_provider_breaker_open").await, Some(0.0));
    let (after, callback) = world.imagine("after the top up").await;
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL, 0, "accepted: {callback:#}");
    world.wait_reply(&after, "Done").await;
}
