//! The job store's three concurrency primitives, against a real PostgreSQL and without a bot:
//! `claim_due` (which jobs a worker may take, and in what order), `renew_leases` (which leases are
//! still this process's), and the lease fencing of `save` (a process that lost a job writes nothing).

use std::{collections::HashSet, time::Duration};

use imagine_bot::db::jobs::{self as store, JobStatus};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support;

const LEASE: Duration = Duration::from_secs(30);

/// How a test job looks in the table before any worker touched it.
struct Row {
    status: &'static str,
    /// The public reply was sent (`acked_at` set).
    acked: bool,
    /// Seconds from now until it is due (negative: overdue).
    due_in: i64,
    /// Seconds since it was accepted.
    age: i64,
    reply_failed: bool,
    delivered: bool,
    /// Seconds until another process's lease on it expires (negative: expired).
    leased_for: Option<i64>,
}

const DUE: Row =
    Row { status: "queued", acked: true, due_in: -1, age: 5, reply_failed: false, delivered: false, leased_for: None };

async fn insert(pool: &PgPool, interaction_id: i64, row: Row) -> Uuid {
    let id = Uuid::new_v4();
    let args = serde_json::json!({"mode": "fast", "prompt": "a test", "aspect_ratio": "1:1"});
    sqlx::query(
        "INSERT INTO jobs (id, interaction_id, application_id, guild_id, channel_id, user_id, interaction_token, \
         token_expires_at, attachment_size_limit, prompt_raw, prompt_sent, args, input_urls, status, acked_at, \
         next_run_at, created_at, reply_failed, delivered_at, lease_owner, lease_expires_at, lease_token) \
         VALUES ($1, $2, 1, 2, 3, 4, 'token', now() + interval '15 minutes', 8388608, 'a test', 'a test', $3, '{}', \
         $4::job_status, CASE WHEN $5 THEN now() END, now() + make_interval(secs => $6), \
         now() - make_interval(secs => $7), $8, CASE WHEN $9 THEN now() END, \
         CASE WHEN $10::bigint IS NOT NULL THEN gen_random_uuid() END, now() + make_interval(secs => $10), \
         CASE WHEN $10::bigint IS NOT NULL THEN gen_random_uuid() END)",
    )
    .bind(id)
    .bind(interaction_id)
    .bind(args)
    .bind(row.status)
    .bind(row.acked)
    .bind(row.due_in as f64)
    .bind(row.age as f64)
    .bind(row.reply_failed)
    .bind(row.delivered)
    .bind(row.leased_for)
    .execute(pool)
    .await
    .expect("inserting a test job");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_due_takes_each_due_job_once_finished_jobs_first() {
    let (_db, pool) = support::fresh_pool().await;
    let due = insert(&pool, 1, DUE).await;
    let finished = insert(&pool, 2, Row { status: "succeeded", ..DUE }).await;
    let lease_lapsed = insert(&pool, 3, Row { leased_for: Some(-5), ..DUE }).await;
    // The reply failed, or never came within a minute: taken, so the worker can drop the job.
    let reply_failed = insert(&pool, 4, Row { acked: false, reply_failed: true, ..DUE }).await;
    let never_acked = insert(&pool, 5, Row { acked: false, age: 120, ..DUE }).await;
    // Not taken: the reply may still be on its way, not due yet, delivered, or leased elsewhere.
    insert(&pool, 6, Row { acked: false, ..DUE }).await;
    insert(&pool, 7, Row { due_in: 60, ..DUE }).await;
    insert(&pool, 8, Row { status: "succeeded", delivered: true, ..DUE }).await;
    insert(&pool, 9, Row { leased_for: Some(25), ..DUE }).await;

    let owner = Uuid::new_v4();
    let first = store::claim_due(&pool, owner, LEASE, 1).await.unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), [finished], "a finished job is delivered first");
    let rest = store::claim_due(&pool, owner, LEASE, 10).await.unwrap();
    let taken: HashSet<Uuid> = rest.iter().map(|j| j.id).collect();
    assert_eq!(taken, HashSet::from([due, lease_lapsed, reply_failed, never_acked]));

    let tokens: HashSet<Uuid> = first.iter().chain(&rest).map(|j| j.lease_token).collect();
    assert_eq!(tokens.len(), 5, "every claim has its own lease token");
    let other = store::claim_due(&pool, Uuid::new_v4(), LEASE, 10).await.unwrap();
    assert!(other.is_empty(), "a leased job is nobody else's: {:?}", other.iter().map(|j| j.id).collect::<Vec<_>>());
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_leases_extends_only_the_leases_still_held() {
    let (_db, pool) = support::fresh_pool().await;
    let kept = insert(&pool, 1, DUE).await;
    let lost = insert(&pool, 2, DUE).await;
    let delivered = insert(&pool, 3, DUE).await;
    let owner = Uuid::new_v4();
    let claimed = store::claim_due(&pool, owner, Duration::from_secs(2), 10).await.unwrap();
    let token = |id: Uuid| claimed.iter().find(|j| j.id == id).unwrap().lease_token;

    // `lost` was taken over after its lease lapsed; `delivered` is done.
    sqlx::query("UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = $1")
        .bind(lost)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET delivered_at = now() WHERE id = $1").bind(delivered).execute(&pool).await.unwrap();

    let stranger = Uuid::new_v4();
    let renewed =
        store::renew_leases(&pool, LEASE, &[token(kept), token(lost), token(delivered), stranger]).await.unwrap();
    assert_eq!(renewed, [token(kept)]);
    let expires_in: f64 =
        sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM lease_expires_at - now())::float8 FROM jobs WHERE id = $1")
            .bind(kept)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(expires_in > 20.0, "the lease now runs for LEASE: {expires_in} s left");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_writes_nothing_for_a_process_that_lost_the_lease() {
    let (_db, pool) = support::fresh_pool().await;
    let id = insert(&pool, 1, DUE).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let mut stale = store::claim_due(&pool, first, LEASE, 1).await.unwrap().remove(0);

    // The first process stalls past its lease; the second takes the job over.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let mut current = store::claim_due(&pool, second, LEASE, 1).await.unwrap().remove(0);
    assert_ne!(current.lease_token, stale.lease_token);

    stale.status = JobStatus::Failed;
    stale.counted = false;
    assert!(!store::save(&pool, &stale, first, true).await.unwrap(), "the stale save is refused");
    let status: String =
        sqlx::query_scalar("SELECT status::text FROM jobs WHERE id = $1").bind(id).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "queued", "nothing of the stale save was written");

    // Even the right owner with an old token is refused: the token, not the owner, is the fence.
    let mut old_token = current.clone();
    old_token.lease_token = stale.lease_token;
    assert!(!store::save(&pool, &old_token, second, false).await.unwrap());

    current.status = JobStatus::Submitting;
    assert!(store::save(&pool, &current, second, true).await.unwrap(), "the holder's save lands");
    let (status, released): (String, bool) =
        sqlx::query_as("SELECT status::text, lease_owner IS NULL AND lease_token IS NULL FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), released), ("submitting", true), "written, and the lease given up");
    assert!(!store::save(&pool, &current, second, false).await.unwrap(), "a released lease fences too");
    pool.close().await;
}

/// A succeeded job, submitted `submitted_ago` seconds ago, that took `took` seconds; or, when it
/// has not finished yet (`took` beyond its age), a job still running at the provider.
async fn insert_submitted(pool: &PgPool, interaction_id: i64, submitted_ago: f64, took: f64) {
    let finished = took <= submitted_ago;
    sqlx::query(
        "INSERT INTO jobs (id, interaction_id, application_id, guild_id, channel_id, user_id, token_expires_at, \
         attachment_size_limit, prompt_raw, prompt_sent, args, input_urls, status, acked_at, submitted_at, \
         finished_at, next_run_at) \
         VALUES ($1, $2, 1, 2, 3, 4, now() + interval '15 minutes', 8388608, 'a test', 'a test', \
         '{\"mode\":\"fast\",\"prompt\":\"a test\",\"aspect_ratio\":\"1:1\"}', '{}', \
         CASE WHEN $5 THEN 'succeeded' ELSE 'submitted' END::job_status, now() - make_interval(secs => $3), \
         now() - make_interval(secs => $3), \
         CASE WHEN $5 THEN now() - make_interval(secs => $3) + make_interval(secs => $4) END, now())",
    )
    .bind(Uuid::new_v4())
    .bind(interaction_id)
    .bind(submitted_ago)
    .bind(took)
    .bind(finished)
    .execute(pool)
    .await
    .expect("inserting a submitted job");
}

/// The schedule learns where jobs finish from recent jobs, the ones still running included: in a
/// burst, the first to finish are its short ones, and a model read from the latest finishes alone
/// would end its dense window before the burst's long jobs finish, leaving them to the slow
/// interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_durations_count_the_jobs_still_running_not_only_the_first_finishes_of_a_burst() {
    let (_db, pool) = support::fresh_pool().await;
    // An hour of steady work: jobs of 20 to 90 s, all long settled.
    for i in 0..100u32 {
        let took = 20.0 + 70.0 * f64::from(i * 37 % 100) / 99.0;
        insert_submitted(&pool, i.into(), 3600.0 - f64::from(i) * 30.0, took).await;
    }
    // A burst in the last minute, ten a second, of the same spread: only its short jobs are done
    // yet, and more of them than the sample takes.
    for i in 0..600u32 {
        let took = 20.0 + 70.0 * f64::from(i * 37 % 600) / 599.0;
        insert_submitted(&pool, (1000 + i).into(), 60.0 - f64::from(i) * 0.1, took).await;
    }

    let samples = store::recent_durations(&pool, 100).await.unwrap();
    let finished = samples.iter().filter(|s| s.finished).count();
    assert_eq!((finished, samples.len()), (100, 200), "the latest finishes and the longest running");
    assert!(samples.iter().filter(|s| !s.finished).all(|s| s.seconds >= 40.0), "the oldest running jobs");
    let window = imagine_bot::jobs::schedule::DurationModel::from_samples(&samples).window("balance").unwrap();
    assert!(
        window.late >= Duration::from_secs(85),
        "the dense window reaches the slow jobs of the spread, not only the burst's first finishes: {window:?}"
    );
    pool.close().await;
}
