//! The one way a failed command or press reaches the member: a [`UserError`] word for word, any
//! other failure logged with its chain and told as one calm sentence. Refusals by a limit are
//! counted in `imagine_quota_refusals_total` the same way whichever road the job came by.

use tracing::{error, info};

use super::Error;
use crate::words::{INTERNAL_ERROR, UNAVAILABLE, UserError};

/// What was refused or failed: a command (by name) or a press on a result (or the Remix submit).
#[derive(Debug, Clone, Copy)]
pub(super) enum Asked<'a> {
    Command(&'a str),
    Press,
}

/// The private answer to `error`, after logging it and counting it.
pub(super) fn answer(error: &Error, asked: Asked<'_>) -> String {
    match error.downcast_ref::<UserError>() {
        Some(refusal) => {
            match asked {
                Asked::Command(command) => info!(command, %refusal, "told the user what to change"),
                Asked::Press => {
                    info!(%refusal, "refused a press");
                    metrics::counter!("imagine_presses_total", "outcome" => "refused").increment(1);
                }
            }
            if let Some(limit) = limit_name(refusal) {
                metrics::counter!("imagine_quota_refusals_total", "limit" => limit).increment(1);
            }
            refusal.to_string()
        }
        None => {
            match asked {
                Asked::Command(command) => error!(command, error = ?error, "command failed"),
                Asked::Press => {
                    error!(error = ?error, "a press failed");
                    metrics::counter!("imagine_presses_total", "outcome" => "failed").increment(1);
                }
            }
            if database_down(error) { UNAVAILABLE } else { INTERNAL_ERROR }.to_owned()
        }
    }
}

/// The `limit` label of a refusal by a quota, budget or spend limit.
fn limit_name(refusal: &UserError) -> Option<&'static str> {
    match refusal {
        UserError::Limit(refusal) => Some(refusal.kind.name()),
        UserError::BudgetSpent { .. } => Some("monthly_budget"),
        UserError::SpendLimit { .. } => Some("daily_spend"),
        _ => None,
    }
}

/// Whether an internal error comes from the database being out of reach: no connection to be
/// had, or one that the server is closing ("terminating connection due to administrator
/// command", SQLSTATE class 57P) or that broke (class 08). The pool checks only connections idle
/// for a while, so a statement can be the first to meet a server that went away.
fn database_down(error: &Error) -> bool {
    error.chain().any(|e| match e.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
        Some(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
        }
        _ => false,
    })
}
