//! `/history`: your recent jobs, privately.

use anyhow::Context as _;

use poise::serenity_prelude as serenity;

use super::{Context, Error, can_manage_guild, reply_ephemeral};
use crate::{
    db,
    db::{
        DiscordId,
        jobs::{Delivery, JobStatus},
    },
    render,
    words::UserError,
};

const SHOWN: i64 = 10;

/// Your recent /imagine jobs in this server
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn history(
    ctx: Context<'_>,
    #[description = "Admins: see this member's jobs instead"] member: Option<serenity::User>,
) -> Result<(), Error> {
    let poise::Context::Application(actx) = ctx else {
        return Ok(());
    };
    let upload_limit = u64::from(actx.interaction.attachment_size_limit);
    let guild_id = DiscordId::from(ctx.guild_id().context("guild_only command without a guild")?);
    let own = member.as_ref().is_none_or(|m| m.id == ctx.author().id);
    if !own && !can_manage_guild(ctx) {
        return Err(UserError::OthersHistory.into());
    }
    let user_id = DiscordId::from(member.map_or(ctx.author().id, |m| m.id));
    let jobs =
        db::jobs::recent_for_user(&ctx.data().pool, guild_id, user_id, SHOWN).await.context("loading job history")?;
    if jobs.is_empty() {
        let text = if own {
            "You have no /imagine jobs in this server yet."
        } else {
            "That member has no /imagine jobs in this server."
        };
        reply_ephemeral(ctx, text).await;
        return Ok(());
    }
    let whose = if own { "Your".to_owned() } else { format!("<@{user_id}>'s") };
    let mut lines = vec![format!("**{whose} last {} jobs here**", jobs.len())];
    for job in &jobs {
        let icon = match job.status {
            JobStatus::Succeeded => "✅",
            JobStatus::Failed | JobStatus::TimedOut | JobStatus::Uncertain => "❌",
            JobStatus::Cancelled => "🚫",
            _ => "⏳",
        };
        let mut line = format!(
            "{icon} {} · <t:{}:R> · {}",
            job.status.label(),
            job.created_at.timestamp(),
            render::truncate(&job.prompt_sent, 60).replace(['*', '_', '`', '~', '|', '@'], " ")
        );
        if job.deleted {
            line.push_str(" · result deleted");
        } else if let Some(message_id) = job.message_id {
            line.push_str(&format!(
                " · [open](https://discord.com/channels/{}/{}/{message_id})",
                job.guild_id, job.channel_id
            ));
        }
        if let Some(origin) = &job.origin {
            match (job.parent_channel_id, job.parent_message_id) {
                (Some(channel), Some(message)) => line.push_str(&format!(
                    " · {origin} of [this result](https://discord.com/channels/{}/{channel}/{message})",
                    job.guild_id
                )),
                _ => line.push_str(&format!(" · {origin} of an earlier job")),
            }
        }
        if job.delivery == Some(Delivery::Undelivered) && job.status == JobStatus::Succeeded {
            line.push_str(" · could not be posted; images attached below");
        }
        if job.status != JobStatus::Succeeded
            && let Some(error) = &job.error_text
        {
            line.push_str(&format!("\n  {}", render::truncate(error, 150)));
        }
        lines.push(line);
    }
    let images =
        db::jobs::undelivered_images(&ctx.data().pool, guild_id, user_id, 10).await.context("loading kept images")?;
    let (images, left_out) = within_upload_limit(images, upload_limit);
    let note = match left_out {
        0 => String::new(),
        1 => "1 kept image was left out to stay within Discord's upload limit.".to_owned(),
        n => format!("{n} kept images were left out to stay within Discord's upload limit."),
    };
    let mut text = String::new();
    for line in lines {
        if text.len() + line.len() + 1 + note.len() > 1990 {
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&note);
    let mut reply = poise::CreateReply::default()
        .content(text.trim_end())
        .ephemeral(true)
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    for (filename, bytes) in images {
        reply = reply.attachment(serenity::CreateAttachment::bytes(bytes, filename));
    }
    if let Err(e) = ctx.send(reply).await {
        tracing::warn!(error = %crate::discord::classify_serenity(e), "could not send /history");
    }
    Ok(())
}

/// The kept images that go with the answer, in the order given (newest first), and how many were
/// left out. Discord refuses the whole answer when one file is over the interaction's upload limit;
/// the total is held to the same limit as well, so the answer stays light and stays valid should
/// Discord count the request as a whole again (as it did until April 2025). An image that does not
/// fit is skipped and smaller older ones may still go.
fn within_upload_limit(images: Vec<(String, Vec<u8>)>, limit: u64) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut room = limit;
    let (kept, left_out): (Vec<_>, Vec<_>) = images.into_iter().partition(|(_, bytes)| {
        let size = bytes.len() as u64;
        let fits = size <= room;
        if fits {
            room -= size;
        }
        fits
    });
    (kept, left_out.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(sizes: &[usize]) -> Vec<(String, Vec<u8>)> {
        sizes.iter().enumerate().map(|(i, size)| (format!("{i}.png"), vec![0; *size])).collect()
    }

    #[test]
    fn the_newest_images_that_fit_are_kept() {
        for (sizes, limit, kept, left_out) in [
            (&[][..], 1000, &[][..], 0),
            (&[300, 300, 300], 1000, &["0.png", "1.png", "2.png"][..], 0),
            (&[300, 300, 300, 300], 1000, &["0.png", "1.png", "2.png"][..], 1),
            (&[400, 700, 600], 1000, &["0.png", "2.png"][..], 1),
            (&[1500, 300], 1000, &["1.png"][..], 1),
            (&[1000], 1000, &["0.png"][..], 0),
            (&[1], 0, &[][..], 1),
        ] {
            let (images, left) = within_upload_limit(sized(sizes), limit);
            let names: Vec<&str> = images.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!((names.as_slice(), left), (kept, left_out), "{sizes:?} within {limit}");
        }
    }
}
