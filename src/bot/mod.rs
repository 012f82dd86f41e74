//! The Discord face of the bot: poise framework setup, the command registry and error handling.

mod history;
mod imagine;

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::quota::Limits;

/// Shared state of every command.
pub struct Data {
    pub pool: PgPool,
    /// Wakes this process's worker when a job is accepted.
    pub wake: Arc<Notify>,
    pub default_limits: Limits,
    pub max_input_image_bytes: u64,
}

pub type Error = anyhow::Error;
pub type Context<'a> = poise::Context<'a, Data, Error>;

/// The one sentence users see when something breaks on our side.
pub const INTERNAL_ERROR: &str =
    "Something went wrong on our side and nothing was charged. Please try again in a minute.";

/// Every command the bot registers.
pub fn commands() -> Vec<poise::Command<Data, Error>> {
    vec![imagine::imagine(), history::history()]
}

/// Builds the poise framework. Commands are registered in `dev_guild` when given (instant),
/// otherwise globally.
pub fn framework(data: Data, dev_guild: Option<u64>) -> poise::Framework<Data, Error> {
    poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands(),
            on_error: |e| Box::pin(on_error(e)),
            ..Default::default()
        })
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let commands = &framework.options().commands;
                match dev_guild {
                    Some(guild) => {
                        poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(guild)).await?;
                        info!(guild, "registered commands in the development guild");
                    }
                    None => {
                        poise::builtins::register_globally(ctx, commands).await?;
                        info!("registered commands globally");
                    }
                }
                info!(user = %ready.user.name, "connected to Discord");
                Ok(data)
            })
        })
        .build()
}

/// Replies privately; failures to do so are only logged.
async fn reply_ephemeral(ctx: Context<'_>, text: impl Into<String>) {
    let reply = poise::CreateReply::default()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = ctx.send(reply).await {
        warn!(error = %crate::jobs::discord::classify(e), "could not send an ephemeral reply");
    }
}

async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    use poise::FrameworkError as E;
    match error {
        E::Setup { error, .. } => error!(error = ?error, "setting up the bot failed"),
        E::Command { error, ctx, .. } => {
            error!(command = %ctx.command().qualified_name, error = ?error, "command failed");
            reply_ephemeral(ctx, INTERNAL_ERROR).await;
        }
        E::CommandPanic { ctx, payload, .. } => {
            error!(command = %ctx.command().qualified_name, ?payload, "command panicked");
            reply_ephemeral(ctx, INTERNAL_ERROR).await;
        }
        E::ArgumentParse { ctx, input, error, .. } => {
            warn!(command = %ctx.command().qualified_name, ?input, %error, "could not read an option");
            reply_ephemeral(ctx, "I could not read one of the options. Please check them and try again.").await;
        }
        E::CommandStructureMismatch { ctx, description, .. } => {
            warn!(command = %ctx.command().qualified_name, description, "command definition out of date");
            reply_ephemeral(
                poise::Context::Application(ctx),
                "This command was updated since Discord loaded it. Please reload Discord (Ctrl+R) and try again.",
            )
            .await;
        }
        E::GuildOnly { ctx, .. } => reply_ephemeral(ctx, "This command only works in a server channel.").await,
        E::MissingUserPermissions { ctx, .. } => {
            reply_ephemeral(ctx, "You need the Manage Server permission to use this command.").await
        }
        E::MissingBotPermissions { ctx, missing_permissions, .. } => {
            reply_ephemeral(ctx, format!("I am missing these permissions here: {missing_permissions}.")).await
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
