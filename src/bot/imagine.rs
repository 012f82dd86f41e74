//! `/imagine`: validate, reserve quota and store the job, then answer publicly within Discord's
//! three seconds. The provider is never called from here; the worker takes it from the database.

use anyhow::Context as _;
use chrono::Utc;
use poise::serenity_prelude as serenity;
use tracing::{Instrument, error, info, warn};
use uuid::Uuid;

use super::{Context, Error};
use crate::{
    db::{self, jobs::NewJob, quotas::Reservation},
    error::UserError,
    imagine::{
        self, ImagineRequest, InputImage,
        options::{AspectRatio, Performance},
    },
    render::{self, Stage},
    settings::{GuildSettings, Source},
};

/// Interaction tokens live 15 minutes from the interaction's creation.
pub(super) const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);

fn input(attachment: Option<serenity::Attachment>) -> Option<InputImage> {
    attachment.map(|a| InputImage {
        filename: a.filename,
        content_type: a.content_type,
        size: u64::from(a.size),
        url: a.url,
    })
}

/// The first blocked word in what the member typed (the prompt with its flags, the negative
/// prompt) or in what would be sent. The server's own default negative prompt is not checked.
pub(super) fn blocked_word(
    settings: &GuildSettings,
    typed_prompt: &str,
    typed_negative: Option<&str>,
    prepared: &imagine::PreparedJob,
) -> Option<UserError> {
    let sent_negative =
        prepared.args.negative_prompt.as_deref().filter(|_| prepared.sources.negative_prompt != Source::ServerDefault);
    first_blocked(
        settings,
        [
            ("prompt", Some(typed_prompt)),
            ("prompt", Some(prepared.args.prompt.as_str())),
            ("negative prompt", typed_negative),
            ("negative prompt", sent_negative),
        ],
    )
}

/// The refusal for the first of `texts` (each named by where it stands) that holds a word the
/// server blocked.
pub(super) fn first_blocked<'a>(
    settings: &GuildSettings,
    texts: impl IntoIterator<Item = (&'static str, Option<&'a str>)>,
) -> Option<UserError> {
    texts.into_iter().find_map(|(place, text)| {
        let word = settings.blocked_words.find_in(text?)?;
        Some(UserError::BlockedWord { word: word.to_owned(), place })
    })
}

/// Refuses a member whom the server's roles (`/settings roles`) do not let start jobs. The roles
/// and permissions come with the interaction (no Discord call); members who may manage the server
/// always pass.
pub(super) fn check_job_roles(settings: &GuildSettings, member: Option<&serenity::Member>) -> Result<(), UserError> {
    let roles: Vec<u64> = member.map(|m| m.roles.iter().map(|r| r.get()).collect()).unwrap_or_default();
    let admin = member.and_then(|m| m.permissions).is_some_and(|p| p.manage_guild() || p.administrator());
    if settings.allows_member(&roles, admin) {
        Ok(())
    } else {
        Err(UserError::RoleRequired { roles: settings.job_roles.clone() })
    }
}

/// Turn your images into new ones with Midjourney v7
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, guild_only, install_context = "Guild")]
pub async fn imagine(
    ctx: Context<'_>,
    #[description = "What to imagine. Flags like --ar 16:9 --chaos 20 --no cars may follow at the end"]
    #[max_length = 1500]
    prompt: String,
    #[description = "The source image (PNG, JPEG or WebP)"] image: serenity::Attachment,
    #[description = "A second source image"] image2: Option<serenity::Attachment>,
    #[description = "Shape of the result (default 1:1)"] aspect_ratio: Option<AspectRatio>,
    #[description = "Speed or quality (default balance)"] performance: Option<Performance>,
    #[description = "How strongly Midjourney's style applies, 0-1000 (default 100)"]
    #[min = 0]
    #[max = 1000]
    stylization: Option<i64>,
    #[description = "How varied the results are, 0-100 (default 0)"]
    #[min = 0]
    #[max = 100]
    chaos: Option<i64>,
    #[description = "How unusual the results are, 0-3000 (default 0)"]
    #[min = 0]
    #[max = 3000]
    weirdness: Option<i64>,
    #[description = "What to leave out of the picture"]
    #[max_length = 500]
    negative_prompt: Option<String>,
    #[description = "A style reference image"] style_image: Option<serenity::Attachment>,
    #[description = "How strongly the style reference applies, 0-1000 (default 100)"]
    #[min = 0]
    #[max = 1000]
    style_weight: Option<i64>,
    #[description = "An omni reference image: put this in the picture"] omni_image: Option<serenity::Attachment>,
    #[description = "How strongly the omni reference applies, 0-2000 (default 100)"]
    #[min = 0]
    #[max = 2000]
    omni_weight: Option<i64>,
) -> Result<(), Error> {
    let poise::Context::Application(actx) = ctx else {
        return Ok(());
    };
    let interaction = actx.interaction;
    let data = ctx.data();
    let request = ImagineRequest {
        prompt,
        image: input(Some(image)),
        image2: input(image2),
        aspect_ratio,
        performance,
        stylization,
        chaos,
        weirdness,
        negative_prompt,
        style_image: input(style_image),
        style_weight,
        omni_image: input(omni_image),
        omni_weight,
    };
    let span = tracing::info_span!(
        "command",
        name = "imagine",
        guild_id = interaction.guild_id.map(|g| g.get()),
        user_id = interaction.user.id.get()
    );
    async move {
        let guild_id = interaction.guild_id.context("guild_only command without a guild")?;
        super::provider_admits_new_jobs(data)?;
        // The server's settings are one statement inside the reservation's transaction (no
        // connection or transaction of their own); a refusal below rolls it back, so nothing is
        // created or counted.
        let mut tx = data.pool.begin().await.context("starting the reservation")?;
        let settings =
            db::settings::load(&mut *tx, guild_id.get() as i64).await.context("reading the server's settings")?;
        let parent = super::thread_parent(interaction.channel.as_ref());
        if !settings.allows_channel(interaction.channel_id.get(), parent) {
            return Err(UserError::ChannelNotAllowed { allowed: settings.allowed_channels }.into());
        }
        check_job_roles(&settings, interaction.member.as_deref())?;
        let typed_prompt = request.prompt.clone();
        let typed_negative = request.negative_prompt.clone();
        let prepared = match imagine::prepare(request, data.max_input_image_bytes, &settings.defaults) {
            Ok(prepared) => prepared,
            Err(message) => return Err(UserError::Input(message).into()),
        };
        if let Some(refusal) = blocked_word(&settings, &typed_prompt, typed_negative.as_deref(), &prepared) {
            return Err(refusal.into());
        }

        let now = Utc::now();
        let id = Uuid::new_v4();
        let job = NewJob {
            id,
            interaction_id: interaction.id.get() as i64,
            application_id: interaction.application_id.get() as i64,
            guild_id: guild_id.get() as i64,
            channel_id: interaction.channel_id.get() as i64,
            user_id: interaction.user.id.get() as i64,
            interaction_token: interaction.token.clone(),
            token_expires_at: now + TOKEN_LIFETIME,
            attachment_size_limit: i64::from(interaction.attachment_size_limit),
            prompt_raw: prepared.prompt_raw,
            args: prepared.args,
            notes: prepared.notes,
            callback_secret: data.callback_key.secret(id),
            origin: None,
        };

        // The member's roles come with the interaction: role tiers need no Discord call.
        let member_roles = super::member_roles(interaction.member.as_deref());
        if !reserve(data, tx, &job, &member_roles, now).await? {
            return Ok(());
        }

        let message = render::job_message(&job.args, &job.notes, &Stage::Queued, &[], "https://discord.com");
        let mut reply = poise::CreateReply::default()
            .content(message.content)
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        for embed in message.embeds {
            reply = reply.embed(embed);
        }
        let sent = ctx.send(reply).await.map(drop).map_err(crate::discord::classify_serenity);
        replied(data, job.id, sent).await;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Reserves quota for `job` and stores it, all in `tx` with the guild's lock, then commits. False
/// when another process on the same shard already took this interaction (it answers); a refusal
/// is a [`UserError`] naming the limit, and nothing is stored or counted.
pub(super) async fn reserve(
    data: &super::Data,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    job: &NewJob,
    member_roles: &[i64],
    now: chrono::DateTime<Utc>,
) -> Result<bool, Error> {
    let reservation = db::quotas::reserve_and_insert(&mut tx, job, member_roles, &data.policy, now)
        .await
        .context("reserving quota for a job")?;
    match reservation {
        Reservation::Duplicate => {
            info!(interaction_id = job.interaction_id, "interaction already taken by another process");
            Ok(false)
        }
        Reservation::Refused(refusal) => Err(UserError::Limit(refusal).into()),
        Reservation::MemberBlocked => Err(UserError::MemberBlocked.into()),
        Reservation::BudgetSpent { budget } => {
            data.notices.check_budget(job.guild_id, true);
            Err(UserError::BudgetSpent { budget, resets_at: crate::quota::next_month(now) }.into())
        }
        Reservation::SpendLimit { limit } => {
            warn!(%limit, "the operator's daily spend limit refused a job");
            data.notices.spend_limit_reached(job.guild_id);
            Err(UserError::SpendLimit { resets_at: crate::quota::next_day(now) }.into())
        }
        Reservation::Accepted => {
            tx.commit().await.context("storing the job")?;
            data.notices.check_budget(job.guild_id, false);
            Ok(true)
        }
    }
}

/// Records how the public reply to a stored job went, and wakes the worker: a job whose reply
/// did not reach Discord is dropped (refunded) before it reaches the provider.
pub(super) async fn replied(data: &super::Data, job_id: Uuid, sent: Result<(), crate::discord::SendError>) {
    match sent {
        Ok(()) => {
            info!(%job_id, "job accepted");
            if let Err(e) = db::jobs::mark_acked(&data.pool, job_id).await {
                error!(%job_id, error = %e, "could not mark the job as acknowledged");
            }
        }
        Err(e) => {
            warn!(%job_id, error = %e, "the reply did not reach Discord; dropping the job");
            if let Err(e) = db::jobs::mark_reply_failed(&data.pool, job_id).await {
                error!(%job_id, error = %e, "could not drop a job whose reply failed");
            }
        }
    }
    data.wake.notify_one();
}
