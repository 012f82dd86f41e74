//! The one road to a job. `/imagine`, V, Reroll, Retry and the Remix submit come here with their
//! [`Origin`] and the member's [`Interaction`], and every job takes the same steps: the provider
//! breaker, the server's settings and checks (channel, roles, blocked words), the reservation and
//! the insert in one transaction keyed by the interaction's id (an interaction dispatched twice
//! makes one job), then the public "Queued" reply that the worker edits. The member who asked owns
//! the job and pays for it. Nothing here waits on the provider.

use anyhow::Context as _;
use chrono::Utc;
use poise::serenity_prelude as serenity;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::{Data, Error, interaction::Interaction, press};
use crate::{
    actions::{Action, Press},
    db::{
        self, DiscordId,
        jobs::{JobOrigin, NewJob},
        quotas::Reservation,
    },
    imagine::{
        self, ImagineRequest,
        defaults::{Layered, Source},
    },
    prefs::{self, Prefs},
    render::{self, Stage},
    settings::GuildSettings,
    spec::{JobSpec, Sources},
    words::{self, UserError},
};

/// Interaction tokens live 15 minutes from the interaction's creation.
const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);

/// Which way a job came in.
pub(super) enum Origin {
    /// `/imagine`, with what the member typed and attached.
    Command(Box<ImagineRequest>),
    /// A press on a result's button (or the Remix modal's submit): the pressed job, and what the
    /// button asks of it.
    Press { parent: Uuid, action: Variation },
}

/// What a press asks of the job it was pressed on.
pub(super) enum Variation {
    /// `V<n>`: result image n, with the original prompt, settings and references.
    Vary(u8),
    /// Exactly the original sources, references, prompt and settings.
    Reroll,
    /// The original sources and settings under the prompt typed into the Remix modal.
    Remix { prompt: String },
    /// `V<n>` in remix mode: result image n under the prompt typed into the Remix modal.
    VaryRemixed { number: u8, prompt: String },
    /// A job that failed, timed out or was left unconfirmed, made again exactly as it was.
    Retry,
}

impl Variation {
    fn action(&self) -> Action {
        match self {
            Variation::Vary(number) => Action::Vary(*number),
            Variation::Reroll => Action::Reroll,
            Variation::Remix { .. } => Action::Remix,
            Variation::VaryRemixed { number, .. } => Action::Vary(*number),
            Variation::Retry => Action::Retry,
        }
    }
}

/// A job every check but the blocked words and the reservation has passed, before it is stored.
struct Draft {
    settings: GuildSettings,
    prompt_raw: String,
    spec: JobSpec,
    notes: Vec<String>,
    /// What the member typed (a prompt, a negative prompt): checked for blocked words together
    /// with what would be sent.
    typed_prompt: Option<String>,
    typed_negative: Option<String>,
    /// The negative prompt sent is the server's own default, which is not checked.
    negative_from_server: bool,
    /// The job whose result button started this one, and the button.
    parent: Option<(Uuid, JobOrigin)>,
}

/// Makes the job `origin` asks for, or refuses it with a [`UserError`] (nothing stored, nothing
/// counted).
pub(super) async fn create(
    ctx: &serenity::Context,
    data: &Data,
    asked: &Interaction<'_>,
    origin: Origin,
) -> Result<(), Error> {
    super::provider_admits_new_jobs(data)?;
    // The settings (and a press's job) are read inside the reservation's transaction: a refusal
    // rolls it back, so nothing is created or counted.
    let mut tx = data.pool.begin().await.context("starting the reservation")?;
    let draft = match origin {
        Origin::Command(request) => from_command(&mut tx, data, asked, *request).await?,
        Origin::Press { parent, action } => from_press(&mut tx, asked, parent, action).await?,
    };
    if let Some(refusal) = draft.blocked_word() {
        return Err(refusal.into());
    }
    let from_press = draft.parent.is_some();
    let now = Utc::now();
    let job = new_job(asked, draft, now)?;
    if !reserve(data, tx, &job, &asked.member_roles(), now).await? {
        return Ok(());
    }
    if from_press {
        metrics::counter!("imagine_presses_total", "outcome" => "job").increment(1);
    }
    answer_queued(ctx, data, asked, &job).await;
    Ok(())
}

/// `/imagine`: where it was run, by whom, and what was typed, under the server's settings.
async fn from_command(
    tx: &mut sqlx::PgConnection,
    data: &Data,
    asked: &Interaction<'_>,
    mut request: ImagineRequest,
) -> Result<Draft, Error> {
    let guild_id = asked.guild_id.context("guild_only command without a guild")?;
    let (settings, prefs) = db::settings::load_with_prefs(&mut *tx, guild_id.into(), Some(asked.user_id.into()))
        .await
        .context("reading the server's settings and the member's preferences")?;
    if !settings.allows_channel(asked.channel_id.get(), asked.thread_parent()) {
        return Err(UserError::ChannelNotAllowed { allowed: settings.allowed_channels }.into());
    }
    asked.check_job_roles(&settings)?;
    let (typed_prompt, typed_negative) = (Some(request.prompt.clone()), request.chosen.negative_prompt.clone());
    request.prompt = with_preferences(&request.prompt, &prefs, &settings)?;
    let defaults = Layered::new(&prefs.defaults, &settings.defaults);
    let prepared =
        imagine::prepare_layered(request, data.max_input_image_bytes, &defaults).map_err(UserError::Input)?;
    Ok(Draft {
        settings,
        prompt_raw: prepared.prompt_raw,
        spec: prepared.spec,
        notes: prepared.notes,
        typed_prompt,
        typed_negative,
        negative_from_server: prepared.sources.negative_prompt == Source::ServerDefault,
        parent: None,
    })
}

/// The prompt with the member's options expanded and suffix added (see [`prefs::expand`]), or as
/// typed when they have neither. A word the server blocked in what the preferences added is
/// refused naming where it came from ("your suffix"); the rest is checked with what was typed.
fn with_preferences(typed: &str, prefs: &Prefs, settings: &GuildSettings) -> Result<String, UserError> {
    let expanded = prefs::expand(typed, prefs);
    if expanded.pieces.iter().all(|piece| piece.origin == prefs::Origin::Typed) {
        return Ok(typed.to_owned());
    }
    if let Some((word, origin)) = expanded.blocked_word_source(&settings.blocked_words)
        && origin != prefs::Origin::Typed
    {
        return Err(UserError::BlockedWord { word, place: origin.describe() });
    }
    Ok(expanded.text)
}

/// A press on a result: the pressed job's prompt, settings and pictures, varied as asked.
async fn from_press(
    tx: &mut sqlx::PgConnection,
    asked: &Interaction<'_>,
    parent: Uuid,
    variation: Variation,
) -> Result<Draft, Error> {
    let action = variation.action();
    let (job, settings) = press::check(tx, asked, Press { job: parent, action }).await?;
    let message = asked.message.ok_or(UserError::UnknownButton)?;
    let pictures = press::pictures(message, &job, action)?;
    let mut notes = vec![origin_note(&variation, asked, message)];
    let (prompt_raw, spec, typed_prompt) = match variation {
        Variation::Remix { prompt } | Variation::VaryRemixed { prompt, .. } => {
            if prompt.trim().is_empty() {
                return Err(UserError::Input("Type a prompt for the remix; it cannot be empty.".into()).into());
            }
            let prepared = imagine::remix(&prompt, &job.spec, pictures).map_err(UserError::Input)?;
            notes.extend(prepared.notes);
            (prompt.clone(), prepared.spec, Some(prompt))
        }
        Variation::Vary(_) | Variation::Reroll | Variation::Retry => {
            // The original's values, wherever they came from: no source is shown for them.
            let spec = JobSpec { pictures, sources: Sources::default(), ..job.spec.0 };
            (job.prompt_sent, spec, None)
        }
    };
    Ok(Draft {
        settings,
        prompt_raw,
        spec,
        notes,
        typed_prompt,
        typed_negative: None,
        // What is kept from the original job is checked too: the server may have blocked a
        // word after it ran.
        negative_from_server: false,
        parent: Some((
            parent,
            JobOrigin::of_label(&action.label()).context("a press that starts a job without an origin")?,
        )),
    })
}

impl Draft {
    /// The first word the server blocked, in what the member typed or in what would be sent.
    fn blocked_word(&self) -> Option<UserError> {
        let sent_negative = self.spec.negative_prompt.as_deref().filter(|_| !self.negative_from_server);
        [
            ("prompt", self.typed_prompt.as_deref()),
            ("prompt", Some(self.spec.prompt.as_str())),
            ("negative prompt", self.typed_negative.as_deref()),
            ("negative prompt", sent_negative),
        ]
        .into_iter()
        .find_map(|(place, text)| {
            let word = self.settings.blocked_words.find_in(text?)?;
            Some(UserError::BlockedWord { word: word.to_owned(), place: format!("your {place}") })
        })
    }
}

/// The job to store: who asked, where, with which token, and what the draft decided.
fn new_job(asked: &Interaction<'_>, draft: Draft, now: chrono::DateTime<Utc>) -> Result<NewJob, Error> {
    let guild_id = asked.guild_id.context("a job without a guild")?;
    Ok(NewJob {
        id: Uuid::new_v4(),
        interaction_id: asked.id.into(),
        application_id: asked.application_id.into(),
        guild_id: guild_id.into(),
        channel_id: asked.channel_id.into(),
        user_id: asked.user_id.into(),
        interaction_token: asked.token.to_owned(),
        token_expires_at: now + TOKEN_LIFETIME,
        attachment_size_limit: i64::from(asked.attachment_size_limit),
        prompt_raw: draft.prompt_raw,
        spec: draft.spec,
        notes: draft.notes,
        origin: draft.parent,
    })
}

/// The first note of a job made from a button: what it is, where it came from, who asked.
fn origin_note(variation: &Variation, asked: &Interaction<'_>, message: &serenity::Message) -> String {
    let what = match variation {
        Variation::Vary(n) => words::variation_of(*n),
        Variation::VaryRemixed { number, .. } => words::remixed_variation_of(*number),
        Variation::Reroll | Variation::Remix { .. } | Variation::Retry => variation.action().label(),
    };
    let guild = asked.guild_id.map_or(0, |g| g.get());
    let link = format!("https://discord.com/channels/{guild}/{}/{}", message.channel_id, message.id);
    words::made_from(&what, &link, !matches!(variation, Variation::Retry), asked.user_id.get())
}

/// Reserves quota for `job` and stores it, all in `tx` with the guild's lock, then commits. False
/// when another process on the same shard already took this interaction (it answers); a refusal
/// is a [`UserError`] naming the limit, and nothing is stored or counted.
async fn reserve(
    data: &Data,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    job: &NewJob,
    member_roles: &[DiscordId],
    now: chrono::DateTime<Utc>,
) -> Result<bool, Error> {
    let reservation = db::quotas::reserve_and_insert(&mut tx, job, member_roles, &data.policy, now)
        .await
        .context("reserving quota for a job")?;
    match reservation {
        Reservation::Duplicate => {
            info!(interaction_id = job.interaction_id.get(), "interaction already taken by another process");
            Ok(false)
        }
        Reservation::Refused(refusal) => Err(UserError::Limit(refusal).into()),
        Reservation::MemberBlocked => Err(UserError::MemberBlocked.into()),
        Reservation::BudgetSpent { budget } => {
            data.notices.check_budget(job.guild_id.get(), true);
            Err(UserError::BudgetSpent { budget, resets_at: crate::quota::next_month(now) }.into())
        }
        Reservation::SpendLimit { limit } => {
            warn!(%limit, "the operator's daily spend limit refused a job");
            data.notices.spend_limit_reached(job.guild_id.get());
            Err(UserError::SpendLimit { resets_at: crate::quota::next_day(now) }.into())
        }
        Reservation::Accepted { budgeted } => {
            tx.commit().await.context("storing the job")?;
            // Only a guild with a budget has thresholds to report: no extra statement otherwise.
            if budgeted {
                data.notices.check_budget(job.guild_id.get(), false);
            }
            Ok(true)
        }
    }
}

/// The public reply to a stored job (the message the worker edits, with `Cancel` until the job is
/// sent), and what became of it: a job
/// whose reply did not reach Discord is dropped (refunded) before it reaches the provider. The
/// worker is woken either way.
async fn answer_queued(ctx: &serenity::Context, data: &Data, asked: &Interaction<'_>, job: &NewJob) {
    let rendered = render::job_message(&job.spec, &job.notes, &Stage::Queued, &[], "https://discord.com");
    let reply = serenity::CreateInteractionResponseMessage::new()
        .content(rendered.content)
        .embeds(rendered.embeds)
        .components(crate::actions::cancel_buttons(job.id))
        .allowed_mentions(serenity::CreateAllowedMentions::new());
    let job_id = job.id;
    match asked.respond(ctx, serenity::CreateInteractionResponse::Message(reply)).await {
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
