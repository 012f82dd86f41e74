//! What users see when a command goes wrong: a `UserError` word for word and privately; any other
//! failure logged with its chain, and one calm sentence for the user.

use tracing::{error, info, warn};

use super::{Data, Error, INTERNAL_ERROR, UNAVAILABLE, database_down, reply_ephemeral};
use crate::error::UserError;

pub(super) async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    use poise::FrameworkError as E;
    match error {
        E::Setup { error, .. } => error!(error = ?error, "setting up the bot failed"),
        E::Command { error, ctx, .. } => {
            if let Some(user_error) = error.downcast_ref::<UserError>() {
                info!(command = %ctx.command().qualified_name, refusal = %user_error, "told the user what to change");
                match user_error {
                    UserError::Limit(refusal) => {
                        metrics::counter!("imagine_quota_refusals_total", "limit" => refusal.kind.name()).increment(1)
                    }
                    UserError::BudgetSpent { .. } => {
                        metrics::counter!("imagine_quota_refusals_total", "limit" => "monthly_budget").increment(1)
                    }
                    UserError::SpendLimit { .. } => {
                        metrics::counter!("imagine_quota_refusals_total", "limit" => "daily_spend").increment(1)
                    }
                    _ => {}
                }
                reply_ephemeral(ctx, user_error.to_string()).await;
                return;
            }
            error!(command = %ctx.command().qualified_name, error = ?error, "command failed");
            reply_ephemeral(ctx, if database_down(&error) { UNAVAILABLE } else { INTERNAL_ERROR }).await;
        }
        E::CommandPanic { ctx, payload, .. } => {
            error!(command = %ctx.command().qualified_name, ?payload, "command panicked");
            reply_ephemeral(ctx, INTERNAL_ERROR).await;
        }
        E::ArgumentParse { ctx, input, error, .. } => {
            warn!(command = %ctx.command().qualified_name, ?input, %error, "could not read an option");
            reply_ephemeral(ctx, UserError::UnreadableOption.to_string()).await;
        }
        E::CommandStructureMismatch { ctx, description, .. } => {
            warn!(command = %ctx.command().qualified_name, description, "command definition out of date");
            reply_ephemeral(poise::Context::Application(ctx), UserError::OutdatedCommand.to_string()).await;
        }
        E::CommandCheckFailed { ctx, error, .. } => {
            let refusal = error.as_ref().and_then(|e| e.downcast_ref::<UserError>()).cloned();
            info!(command = %ctx.command().qualified_name, ?refusal, "a command check refused the command");
            reply_ephemeral(ctx, refusal.unwrap_or(UserError::NotInstalled).to_string()).await;
        }
        E::GuildOnly { ctx, .. } => reply_ephemeral(ctx, UserError::GuildOnly.to_string()).await,
        E::MissingUserPermissions { ctx, .. } => reply_ephemeral(ctx, UserError::NotAdmin.to_string()).await,
        E::MissingBotPermissions { ctx, missing_permissions, .. } => {
            reply_ephemeral(ctx, UserError::BotPermissions(missing_permissions.to_string()).to_string()).await
        }
        other => {
            let ctx = other.ctx();
            warn!(error = %other, "unhandled framework event");
            if let Some(ctx) = ctx {
                reply_ephemeral(ctx, INTERNAL_ERROR).await;
            }
        }
    }
}
