//! The Discord face of the bot: poise framework setup, the command registry and error handling.

/// Implements `poise::SlashArgument` for a type with a fixed set of string values, registered
/// as a STRING option with string choices. (poise registers its own choice parameters as
/// INTEGER options whose values are indexes, which break if the list is ever reordered.)
macro_rules! string_choice_argument {
    ($ty:ty, $values:expr, $parse:expr) => {
        #[poise::async_trait]
        impl poise::SlashArgument for $ty {
            async fn extract(
                _: &poise::serenity_prelude::Context,
                _: &poise::serenity_prelude::CommandInteraction,
                value: &poise::serenity_prelude::ResolvedValue<'_>,
            ) -> Result<Self, poise::SlashArgError> {
                match value {
                    poise::serenity_prelude::ResolvedValue::String(s) => {
                        ($parse)(s).ok_or(poise::SlashArgError::new_command_structure_mismatch("unknown choice"))
                    }
                    _ => Err(poise::SlashArgError::new_command_structure_mismatch("expected a string")),
                }
            }

            fn create(
                builder: poise::serenity_prelude::CreateCommandOption,
            ) -> poise::serenity_prelude::CreateCommandOption {
                ($values).fold(builder.kind(poise::serenity_prelude::CommandOptionType::String), |b, v| {
                    b.add_string_choice(v, v)
                })
            }
        }
    };
}

mod history;
mod imagine;
mod quota;

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use sqlx::PgPool;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::{error::UserError, health::GatewayStatus, quota::Policy};

/// Shared state of every command.
pub struct Data {
    pub pool: PgPool,
    /// Wakes this process's worker when a job is accepted.
    pub wake: Arc<Notify>,
    /// Guild defaults and the operator's limits, checked by every reservation.
    pub policy: Policy,
    pub max_input_image_bytes: u64,
    /// Connected shards, for `/readyz`.
    pub gateway: GatewayStatus,
}

pub type Error = anyhow::Error;
pub type Context<'a> = poise::Context<'a, Data, Error>;

pub use crate::error::{INTERNAL_ERROR, UNAVAILABLE};

/// Every command the bot registers.
pub fn commands() -> Vec<poise::Command<Data, Error>> {
    vec![imagine::imagine(), history::history(), quota::quota(), quota::usage()]
}

/// Builds the poise framework. Commands are registered in `dev_guild` when given (instant),
/// otherwise globally.
pub fn framework(data: Data, dev_guild: Option<u64>) -> poise::Framework<Data, Error> {
    poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands(),
            on_error: |e| Box::pin(on_error(e)),
            // The bot serves only servers that installed it: a command reached through a user
            // installation (no guild installation among its owners) creates nothing.
            command_check: Some(|ctx| {
                Box::pin(
                    async move { if installed_in_guild(ctx) { Ok(true) } else { Err(UserError::NotInstalled.into()) } },
                )
            }),
            pre_command: |ctx| {
                Box::pin(async move {
                    metrics::counter!("imagine_commands_total", "command" => ctx.command().qualified_name.clone())
                        .increment(1);
                })
            },
            event_handler: |framework, event| {
                Box::pin(async move {
                    track_gateway(&framework.user_data.gateway, framework.serenity_context.shard_id.0, event);
                    Ok(())
                })
            },
            ..Default::default()
        })
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                data.gateway.set(ctx.shard_id.0, true);
                let definitions = command_definitions(&framework.options().commands)?;
                match dev_guild {
                    Some(guild) => {
                        ctx.http.create_guild_commands(serenity::GuildId::new(guild), &definitions).await?;
                        info!(guild, "registered commands in the development guild");
                    }
                    None => {
                        ctx.http.create_global_commands(&definitions).await?;
                        info!("registered commands globally");
                    }
                }
                info!(user = %ready.user.name, "connected to Discord");
                Ok(data)
            })
        })
        .build()
}

/// Keeps the gateway part of `/readyz` true to the shards' connections.
fn track_gateway(gateway: &GatewayStatus, shard: u32, event: &serenity::FullEvent) {
    match event {
        serenity::FullEvent::Ready { .. } | serenity::FullEvent::Resume { .. } => gateway.set(shard, true),
        serenity::FullEvent::ShardStageUpdate { event } => {
            gateway.set(event.shard_id.0, event.new == serenity::ConnectionStage::Connected)
        }
        _ => {}
    }
}

/// The JSON registered with Discord. poise writes integer bounds as floats (`0.0`); Discord
/// documents them as integers for INTEGER options, so they are written as integers here.
pub fn command_definitions(commands: &[poise::Command<Data, Error>]) -> Result<serde_json::Value, Error> {
    fn integer_bounds(value: &mut serde_json::Value) {
        if let Some(options) = value.get_mut("options").and_then(|o| o.as_array_mut()) {
            for option in options {
                if option["type"] == 4 {
                    for key in ["min_value", "max_value"] {
                        if let Some(n) = option.get(key).and_then(serde_json::Value::as_f64) {
                            option[key] = serde_json::Value::from(n as i64);
                        }
                    }
                }
                integer_bounds(option);
            }
        }
    }
    let mut definitions = serde_json::to_value(poise::builtins::create_application_commands(commands))?;
    if let Some(list) = definitions.as_array_mut() {
        list.iter_mut().for_each(integer_bounds);
    }
    Ok(definitions)
}

/// Whether the interaction comes through the bot's installation in this guild (the
/// `authorizing_integration_owners` key `"0"` naming the guild).
fn installed_in_guild(ctx: Context<'_>) -> bool {
    let poise::Context::Application(actx) = ctx else { return false };
    let guild = actx.interaction.guild_id;
    actx.interaction.authorizing_integration_owners.0.iter().any(
        |owner| matches!(owner, serenity::AuthorizingIntegrationOwner::GuildInstall(Some(id)) if Some(*id) == guild),
    )
}

/// Whether the invoking member may manage the server, from the permissions Discord resolved for
/// this interaction. Checked by the bot itself, whatever the command's permission overrides say.
pub fn can_manage_guild(ctx: Context<'_>) -> bool {
    let poise::Context::Application(actx) = ctx else { return false };
    actx.interaction.member.as_ref().and_then(|m| m.permissions).is_some_and(|p| p.manage_guild() || p.administrator())
}

/// Replies privately; failures to do so are only logged.
async fn reply_ephemeral(ctx: Context<'_>, text: impl Into<String>) {
    let reply = poise::CreateReply::default()
        .content(text)
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    if let Err(e) = ctx.send(reply).await {
        warn!(error = %crate::discord::classify_serenity(e), "could not send an ephemeral reply");
    }
}

async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
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
                    UserError::SpendLimit { .. } => {
                        metrics::counter!("imagine_quota_refusals_total", "limit" => "daily_spend").increment(1)
                    }
                    _ => {}
                }
                reply_ephemeral(ctx, user_error.to_string()).await;
                return;
            }
            error!(command = %ctx.command().qualified_name, error = ?error, "command failed");
            let database_down = error.chain().any(|e| {
                e.downcast_ref::<sqlx::Error>().is_some_and(|e| {
                    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
                })
            });
            reply_ephemeral(ctx, if database_down { UNAVAILABLE } else { INTERNAL_ERROR }).await;
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
