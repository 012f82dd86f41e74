//! What users see when a command goes wrong: a command's own error goes through the one reporter
//! (`super::report`), as a press's does; poise's other failures get a fixed sentence here.

use tracing::{error, info, warn};

use super::{
    Data, Error, INTERNAL_ERROR, reply_ephemeral,
    report::{self, Asked},
};
use crate::words::UserError;

pub(super) async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    use poise::FrameworkError as E;
    match error {
        E::Setup { error, .. } => error!(error = ?error, "setting up the bot failed"),
        E::Command { error, ctx, .. } => {
            let name = ctx.command().qualified_name.clone();
            reply_ephemeral(ctx, report::answer(&error, Asked::Command(&name))).await;
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
