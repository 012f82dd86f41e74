//! What a test reads back about jobs: one typed row instead of positional tuples.

use sqlx::PgPool;
use uuid::Uuid;

/// A job as the tests see it. Enums are read as their SQL text, so a test compares with the
/// words the database uses (`"succeeded"`, `"edit"`, `"V2"`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub interaction_id: i64,
    pub user_id: i64,
    pub parent_job_id: Option<Uuid>,
    /// `None` for `/imagine`; the press that made it otherwise (`"V2"`, `"Reroll"`, `"Remix"`).
    pub origin: Option<String>,
    pub status: String,
    /// Whether the job counts against the quotas (a refund clears it).
    pub counted: bool,
    /// The amount the provider reported, as Postgres prints it.
    pub amount: Option<String>,
    pub delivery: Option<String>,
    pub provider_job_id: Option<String>,
    pub create_attempts: i32,
    /// How many result images the provider returned.
    pub results: i32,
    /// Whether the interaction token was erased (it is, once the job is delivered).
    pub token_erased: bool,
    /// `delivered_at` is set and no process holds the job: nothing more will happen to it.
    pub settled: bool,
}

const SELECT: &str = "SELECT id, interaction_id, user_id, parent_job_id, origin::text AS origin, \
     status::text AS status, counted, amount::text AS amount, delivery::text AS delivery, provider_job_id, \
     create_attempts, cardinality(result_urls)::int4 AS results, interaction_token IS NULL AS token_erased, \
     (delivered_at IS NOT NULL AND lease_owner IS NULL) AS settled FROM jobs";

/// The job an interaction (a command or a press) made, if any.
pub async fn job(pool: &PgPool, interaction_id: u64) -> Option<JobRow> {
    sqlx::query_as(&format!("{SELECT} WHERE interaction_id = $1"))
        .bind(interaction_id as i64)
        .fetch_optional(pool)
        .await
        .expect("reading the job")
}

/// Every job, in the order they were made.
pub async fn jobs(pool: &PgPool) -> Vec<JobRow> {
    sqlx::query_as(&format!("{SELECT} ORDER BY created_at, interaction_id"))
        .fetch_all(pool)
        .await
        .expect("reading the jobs")
}

/// How many jobs exist, in any state.
pub async fn job_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(pool).await.expect("counting the jobs")
}
