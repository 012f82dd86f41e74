//! What a result button's press is checked against, beside the job itself ([`super::jobs::for_press`]).

use sqlx::PgExecutor;
use uuid::Uuid;

/// The message that carries job `id`'s result (the edited reply, or the message posted in the
/// channel once the token had expired): the only message whose buttons act on the job. `None`
/// when the job does not exist or never got a message.
pub async fn result_message(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query_scalar!("SELECT message_id FROM jobs WHERE id = $1", id).fetch_optional(db).await?;
    Ok(row.flatten())
}
