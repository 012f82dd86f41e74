//! The member's interaction, whatever brought it: `/imagine`, a press on a result's button, or the
//! submit of the Remix modal. Everything a job's creation, a press's checks and an answer need
//! from Discord's payload, read once.

use poise::serenity_prelude as serenity;

use crate::{db::DiscordId, settings::GuildSettings, words::UserError};

/// What every road into a job (and every press) needs from the interaction.
pub(super) struct Interaction<'a> {
    pub id: serenity::InteractionId,
    pub token: &'a str,
    pub application_id: serenity::ApplicationId,
    pub guild_id: Option<serenity::GuildId>,
    pub channel_id: serenity::ChannelId,
    pub channel: Option<&'a serenity::PartialChannel>,
    pub user_id: serenity::UserId,
    pub member: Option<&'a serenity::Member>,
    pub attachment_size_limit: u32,
    /// The result message a button is on (for a modal submit: the one the modal was opened
    /// from); none for a command.
    pub message: Option<&'a serenity::Message>,
    /// Whether the interaction came through the server's installation of the bot. serenity 0.12
    /// does not read `authorizing_integration_owners` of a modal submit, so a submit relies on
    /// this: the Remix modal is only ever opened by a press that passed the check, and the submit
    /// is checked again for the job's server and allowed channels. A command passed poise's
    /// `command_check` already.
    pub installed: bool,
}

impl<'a> Interaction<'a> {
    pub fn command(command: &'a serenity::CommandInteraction) -> Self {
        Interaction {
            id: command.id,
            token: &command.token,
            application_id: command.application_id,
            guild_id: command.guild_id,
            channel_id: command.channel_id,
            channel: command.channel.as_ref(),
            user_id: command.user.id,
            member: command.member.as_deref(),
            attachment_size_limit: command.attachment_size_limit,
            message: None,
            installed: true,
        }
    }

    pub fn press(press: &'a serenity::ComponentInteraction) -> Self {
        Interaction {
            id: press.id,
            token: &press.token,
            application_id: press.application_id,
            guild_id: press.guild_id,
            channel_id: press.channel_id,
            channel: press.channel.as_ref(),
            user_id: press.user.id,
            member: press.member.as_ref(),
            attachment_size_limit: press.attachment_size_limit,
            message: Some(&press.message),
            installed: super::guild_installation(&press.authorizing_integration_owners, press.guild_id),
        }
    }

    pub fn remix(submit: &'a serenity::ModalInteraction) -> Self {
        Interaction {
            id: submit.id,
            token: &submit.token,
            application_id: submit.application_id,
            guild_id: submit.guild_id,
            channel_id: submit.channel_id,
            channel: submit.channel.as_ref(),
            user_id: submit.user.id,
            member: submit.member.as_ref(),
            attachment_size_limit: submit.attachment_size_limit,
            message: submit.message.as_deref(),
            installed: true,
        }
    }

    /// Answers the interaction (its 3-second acknowledgement).
    pub async fn respond(
        &self,
        ctx: &serenity::Context,
        response: serenity::CreateInteractionResponse,
    ) -> Result<(), crate::discord::SendError> {
        use serenity::Builder as _;
        response.execute(&ctx.http, (self.id, self.token)).await.map_err(crate::discord::classify_serenity)
    }

    /// The member's role ids, from the interaction itself: role tiers need no Discord call.
    pub fn member_roles(&self) -> Vec<DiscordId> {
        self.member.map(|m| m.roles.iter().map(|r| DiscordId::from(*r)).collect()).unwrap_or_default()
    }

    /// The channel a thread belongs to, when the interaction came from a thread (the server's
    /// allowed channels then count for its threads too).
    pub fn thread_parent(&self) -> Option<u64> {
        self.channel
            .filter(|c| {
                matches!(
                    c.kind,
                    serenity::ChannelType::PublicThread
                        | serenity::ChannelType::PrivateThread
                        | serenity::ChannelType::NewsThread
                )
            })
            .and_then(|c| c.parent_id)
            .map(|p| p.get())
    }

    /// Refuses a member whom the server's roles (`/settings roles`) do not let start jobs. The
    /// roles and permissions come with the interaction (no Discord call); members who may manage
    /// the server always pass.
    pub fn check_job_roles(&self, settings: &GuildSettings) -> Result<(), UserError> {
        let roles: Vec<u64> = self.member.map(|m| m.roles.iter().map(|r| r.get()).collect()).unwrap_or_default();
        let admin = self.member.and_then(|m| m.permissions).is_some_and(|p| p.manage_guild() || p.administrator());
        if settings.allows_member(&roles, admin) {
            Ok(())
        } else {
            Err(UserError::RoleRequired { roles: settings.job_roles.clone() })
        }
    }
}
