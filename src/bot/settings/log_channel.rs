//! `/settings log_channel` and `/settings notify`: where the server's admins hear about the bot,
//! and whether long jobs ping their owner when they are done.

use anyhow::Context as _;
use poise::serenity_prelude as serenity;
use tracing::{info, warn};

use super::{Context, Error, guild_id, reply_ephemeral, require_admin};
use crate::{
    db::{self, DiscordId},
    notices,
    words::UserError,
};

/// Where the bot reports budget thresholds, moderation refusals, blocked members and outages
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn log_channel(
    ctx: Context<'_>,
    #[description = "The channel the bot posts its reports in"]
    #[channel_types("Text", "News", "Voice", "Stage", "PublicThread", "PrivateThread", "NewsThread")]
    channel: Option<serenity::PartialChannel>,
    #[description = "True: no log channel"] clear: Option<bool>,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let guild = guild_id(ctx)?;
    let chosen = match (channel, clear.unwrap_or(false)) {
        (Some(_), true) => {
            return Err(UserError::Input("Give either `channel` or `clear:True`, not both.".into()).into());
        }
        (None, false) => {
            return Err(UserError::Input(
                "Give `channel` to choose where I post my reports, or `clear:True` to stop them.".into(),
            )
            .into());
        }
        (channel, _) => channel,
    };
    if let Some(channel) = &chosen {
        super::check_channel_is_here(ctx, channel, guild).await?;
        post_confirmation(ctx, channel.id).await?;
    }
    let (guild_id, admin) = (guild.get(), ctx.author().id.get());
    let new = chosen.as_ref().map(|c| DiscordId::from(c.id));
    let old = db::settings::set_log_channel(&ctx.data().pool, guild_id.into(), new, admin.into())
        .await
        .context("changing the log channel")?;
    info!(guild_id, admin, ?old, ?new, "settings log channel changed");
    let text = match (new, old == new) {
        (Some(id), false) => format!("<#{id}> is the log channel: I posted a test message there."),
        (Some(id), true) => format!("<#{id}> was already the log channel; I posted a test message there."),
        (None, false) => "There is no log channel any more: I will not post reports.".to_owned(),
        (None, true) => "There was no log channel; nothing changed.".to_owned(),
    };
    reply_ephemeral(ctx, text).await;
    Ok(())
}

/// Posts the test message that shows the bot can post in the channel, and what it will post.
/// Discord's refusal (no access, missing permissions) is the admin's to fix, and named.
async fn post_confirmation(ctx: Context<'_>, channel: serenity::ChannelId) -> Result<(), Error> {
    let message = serenity::CreateMessage::new()
        .embed(notices::confirmation())
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    match channel.send_message(ctx.http(), message).await {
        Ok(_) => Ok(()),
        Err(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)))
            if response.status_code.as_u16() == 403 =>
        {
            warn!(channel = channel.get(), code = response.error.code, "cannot post in the chosen log channel");
            Err(UserError::Input(notices::cannot_post(channel.get())).into())
        }
        Err(e) => Err(anyhow::Error::new(e).context("posting the log channel's test message")),
    }
}

/// Ping a job's owner when a long job is done (an edited reply does not notify them)
#[poise::command(slash_command, guild_only, install_context = "Guild", default_member_permissions = "MANAGE_GUILD")]
pub async fn notify(
    ctx: Context<'_>,
    #[description = "True: a job that took long pings its owner when it is done; False: no ping"] enabled: bool,
) -> Result<(), Error> {
    require_admin(ctx)?;
    let (guild_id, admin) = (guild_id(ctx)?.get(), ctx.author().id.get());
    let changed = db::settings::set_notify(&ctx.data().pool, guild_id.into(), enabled, admin.into())
        .await
        .context("changing the follow-up ping")?;
    info!(guild_id, admin, enabled, changed, "settings notify changed");
    let text = match (enabled, changed) {
        (true, true) => "A job that takes long now pings its owner once it is done.",
        (true, false) => "A job that takes long already pings its owner once it is done; nothing changed.",
        (false, true) => "Jobs no longer ping their owner when they are done.",
        (false, false) => "Jobs already do not ping their owner; nothing changed.",
    };
    reply_ephemeral(ctx, text.to_owned()).await;
    Ok(())
}
