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

mod actions;
mod controls;
mod create;
mod history;
mod imagine;
mod interaction;
mod me;
mod on_error;
mod prefs;
mod press;
mod quota;
mod report;
mod settings;
mod upscale;

use std::{sync::Arc, time::Duration};

use poise::serenity_prelude as serenity;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    discord::{DiscordRest, SendError},
    health::{CommandsStatus, GatewayStatus},
    quota::Policy,
    spec::{ASPECT_RATIOS, AspectRatio, Performance},
    words::UserError,
};

// The choices of `/imagine` and `/settings defaults`.
string_choice_argument!(AspectRatio, ASPECT_RATIOS.iter().copied(), AspectRatio::parse_exact);
string_choice_argument!(Performance, Performance::ALL.iter().map(|p| p.as_str()), Performance::parse);

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
    /// Whether the commands are registered with Discord: the bot serves commands only then (and
    /// `/readyz` says so).
    pub commands: CommandsStatus,
    /// Fetches a pressed result image from Discord (see [`crate::provider::ShortApi::download_client`]).
    pub downloads: reqwest::Client,
    /// What bounds `U<n>` presses in this process.
    pub upscales: Upscales,
    /// While open, new jobs are refused before any reservation.
    pub breaker: Arc<crate::breaker::Breaker>,
    /// The log channel's notices.
    pub notices: crate::notices::Notices,
}

pub use upscale::Upscales;

pub type Error = anyhow::Error;
pub type Context<'a> = poise::Context<'a, Data, Error>;

pub use crate::words::{INTERNAL_ERROR, UNAVAILABLE};

/// Every command the bot registers.
pub fn commands() -> Vec<poise::Command<Data, Error>> {
    vec![
        imagine::imagine(),
        history::history(),
        me::me(),
        quota::quota(),
        quota::usage(),
        settings::settings(),
        prefs::prefs(),
    ]
}

/// What registering the commands with Discord needs.
pub struct Registration {
    /// The bot's own REST client: it reads a 429's `retry_after`, which serenity cannot.
    pub discord: DiscordRest,
    /// Register in this guild (instant) instead of globally.
    pub dev_guild: Option<u64>,
    /// Registration stops retrying when the bot shuts down.
    pub shutdown: CancellationToken,
}

/// What a command gets before the commands are registered.
pub const STARTING_UP: &str = "I am starting up; try again in a moment.";
/// How long a command that arrives before the commands are registered waits for them (a
/// registration in flight) before it is answered [`STARTING_UP`]; well within Discord's 3 s.
const STARTING_UP_GRACE: Duration = Duration::from_millis(1500);

/// Builds the poise framework, behind the readiness gate ([`Gated`]). Commands are registered in
/// `dev_guild` when given (instant), otherwise globally, by a task started on the first READY
/// that retries until Discord takes them.
pub fn framework(data: Data, registration: Registration) -> Gated {
    let gate = data.commands.clone();
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands(),
            on_error: |e| Box::pin(on_error::on_error(e)),
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
                    // poise routes only commands; a button press (and the Remix modal's submit)
                    // is answered here, from what the interaction and the database hold.
                    if let serenity::FullEvent::InteractionCreate { interaction } = event {
                        match interaction {
                            serenity::Interaction::Component(press) => {
                                actions::on_press(framework.serenity_context, framework.user_data, press).await
                            }
                            serenity::Interaction::Modal(submit) => {
                                actions::on_remix(framework.serenity_context, framework.user_data, submit).await
                            }
                            _ => {}
                        }
                    }
                    Ok(())
                })
            },
            ..Default::default()
        })
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                // Setup never fails: until it returns, poise holds back every event, so a failure
                // here would leave the bot connected but deaf. Registration runs on its own.
                data.gateway.set(ctx.shard_id.0, true);
                match command_definitions(&framework.options().commands) {
                    Ok(definitions) => {
                        let status = data.commands.clone();
                        tokio::spawn(register_commands(registration, ready.application.id.get(), definitions, status));
                    }
                    Err(e) => {
                        error!(error = ?e, "the command definitions could not be built; commands stay off");
                        data.commands.set_failing("the command definitions could not be built".into());
                    }
                }
                info!(user = %ready.user.name, "connected to Discord");
                Ok(data)
            })
        })
        .build();
    Gated { framework, commands: gate }
}

/// The poise framework behind a readiness gate: until the commands are registered, a slash
/// command is answered privately with [`STARTING_UP`] instead of being run (never silence).
/// Every other event, READY included, goes to poise at once.
pub struct Gated {
    framework: poise::Framework<Data, Error>,
    commands: CommandsStatus,
}

#[poise::async_trait]
impl serenity::Framework for Gated {
    async fn init(&mut self, client: &serenity::Client) {
        self.framework.init(client).await;
    }

    async fn dispatch(&self, ctx: serenity::Context, event: serenity::FullEvent) {
        if let serenity::FullEvent::InteractionCreate { interaction: serenity::Interaction::Command(command) } = &event
            && !self.commands.wait_registered(STARTING_UP_GRACE).await
        {
            info!(command = %command.data.name, "a command arrived before the commands were registered");
            let answer = serenity::CreateInteractionResponse::Message(
                serenity::CreateInteractionResponseMessage::new()
                    .content(STARTING_UP)
                    .ephemeral(true)
                    .allowed_mentions(serenity::CreateAllowedMentions::new()),
            );
            if let Err(e) = command.create_response(&ctx.http, answer).await {
                warn!(error = %crate::discord::classify_serenity(e), "could not answer a command while starting up");
            }
            return;
        }
        self.framework.dispatch(ctx, event).await;
    }
}

/// First wait after a failed registration; it doubles up to [`REGISTRATION_MAX_BACKOFF`]. A 429
/// is waited out for exactly as long as it asks instead.
const REGISTRATION_FIRST_BACKOFF: Duration = Duration::from_secs(1);
const REGISTRATION_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Registers the commands, retrying with backoff (and as long as a 429 asks) until Discord takes
/// them or the bot shuts down; then the bot serves.
async fn register_commands(
    registration: Registration,
    application_id: u64,
    definitions: serde_json::Value,
    status: CommandsStatus,
) {
    let Registration { discord, dev_guild, shutdown } = registration;
    let mut backoff = REGISTRATION_FIRST_BACKOFF;
    for attempt in 1u32.. {
        let attempt_result = tokio::select! {
            result = discord.register_commands(application_id, dev_guild, &definitions) => result,
            _ = shutdown.cancelled() => return,
        };
        let error = match attempt_result {
            Ok(()) => {
                status.set_registered();
                match dev_guild {
                    Some(guild) => info!(guild, attempt, "registered commands in the development guild"),
                    None => info!(attempt, "registered commands globally"),
                }
                return;
            }
            Err(error) => error,
        };
        let wait = match &error {
            SendError::RateLimited(after) => *after + Duration::from_millis(fastrand::u64(0..100)),
            _ => {
                let wait = backoff.mul_f64(0.8 + fastrand::f64() * 0.4);
                backoff = (backoff * 2).min(REGISTRATION_MAX_BACKOFF);
                wait
            }
        };
        let why = registration_failure(&error);
        if matches!(error, SendError::Refused(_)) {
            error!(attempt, error = %why, retry_in = ?wait, "Discord refused the command definitions; retrying");
        } else {
            warn!(attempt, error = %why, retry_in = ?wait, "registering the commands failed; retrying");
        }
        status.set_failing(why);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Why a registration failed, in words for logs and `/readyz` (no URL, no token).
fn registration_failure(error: &SendError) -> String {
    match error {
        SendError::RateLimited(after) => format!("rate limited for {:.1} s", after.as_secs_f64()),
        SendError::Transient(why) | SendError::Refused(why) | SendError::ReplyGone(why) => why.clone(),
        SendError::TooLarge => "the command definitions are too large".into(),
    }
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
                            // Whole numbers poise wrote from the options' integer bounds: exact.
                            #[allow(clippy::cast_possible_truncation)]
                            let whole = n as i64;
                            option[key] = serde_json::Value::from(whole);
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
    guild_installation(&actx.interaction.authorizing_integration_owners, actx.interaction.guild_id)
}

/// Whether `owners` name the bot's installation in `guild` (key `"0"` with the guild's id).
fn guild_installation(owners: &serenity::AuthorizingIntegrationOwners, guild: Option<serenity::GuildId>) -> bool {
    owners.0.iter().any(
        |owner| matches!(owner, serenity::AuthorizingIntegrationOwner::GuildInstall(Some(id)) if Some(*id) == guild),
    )
}

/// Refuses a new job at once, before anything is reserved, while the provider breaker is open.
fn provider_admits_new_jobs(data: &Data) -> Result<(), UserError> {
    if data.breaker.admits_new_jobs(std::time::Instant::now()) { Ok(()) } else { Err(UserError::ServiceRefusing) }
}

/// Whether the invoking member may manage the server, from the permissions Discord resolved for
/// this interaction. Checked by the bot itself, whatever the command's permission overrides say.
pub fn can_manage_guild(ctx: Context<'_>) -> bool {
    let poise::Context::Application(actx) = ctx else { return false };
    actx.interaction.member.as_ref().and_then(|m| m.permissions).is_some_and(|p| p.manage_guild() || p.administrator())
}

/// Admin commands are for members who may manage the server, whatever the overrides say.
fn require_admin(ctx: Context<'_>) -> Result<(), UserError> {
    if can_manage_guild(ctx) { Ok(()) } else { Err(UserError::NotAdmin) }
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
