//! What the bot tells people outside a command's own reply: one short embed in the server's log
//! channel (`/settings log_channel`) for each event its admins should hear about, and the
//! follow-up that pings a long job's owner when it is done (`NOTIFY_AFTER`, `/settings notify`).
//!
//! Nothing here holds up or changes a job or a reply: each notice is sent from its own task, and
//! a failure is only logged. A notice that must go out once (a budget threshold a month, the
//! spend limit a day, a job's moderation refusal or ping, the image service's refusal an hour)
//! is claimed in `log_notices` first, so of several processes exactly one posts it.

use crate::words::log_channel as words;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tracing::{Instrument, debug, info_span, warn};

pub use words::{Notice, cannot_post, confirmation};

use crate::{
    db::{
        self,
        jobs::{Delivery, Job},
        members::MemberAction,
        quotas::SpendScope,
    },
    discord::DiscordRest,
    provider::{Created, ProviderError},
};

/// How often, at most, a guild hears that the image service refuses the bot.
const SERVICE_REFUSED_EVERY: Duration = Duration::from_secs(60 * 60);

/// Posts notices; cheap to clone, shared by the commands and the worker.
#[derive(Clone)]
pub struct Notices {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    discord: DiscordRest,
    /// The cost a job without a reported amount counts at (as the budget counts it).
    expected_job_cost: Decimal,
    /// A job delivered longer than this after it was accepted pings its owner (`None`: never).
    notify_after: Option<Duration>,
}

impl Notices {
    pub fn new(pool: PgPool, discord: DiscordRest, expected_job_cost: Decimal, notify_after: Option<Duration>) -> Self {
        Notices { inner: Arc::new(Inner { pool, discord, expected_job_cost, notify_after }) }
    }

    /// After a job was reserved (`refused`: the budget refused one): posts the budget threshold
    /// the guild's spend has newly reached, if any. A refusal means 100 %, whatever the figure.
    pub fn check_budget(&self, guild_id: u64, refused: bool) {
        self.spawn(guild_id, "budget", move |inner, channel, now| async move {
            inner.budget(guild_id, channel, refused, now).await
        });
    }

    /// The operator's `DAILY_SPEND_LIMIT` refused a job in this guild: once a UTC day.
    pub fn spend_limit_reached(&self, guild_id: u64) {
        self.spawn(guild_id, "spend limit", move |inner, channel, now| async move {
            let day = now.format("%Y-%m-%d").to_string();
            inner.post_once(guild_id, channel, "spend_limit", &day, None, &Notice::SpendLimit, now).await
        });
    }

    /// An admin changed a member with `/quota member`: a block or an unblock is posted.
    pub fn member_changed(&self, guild_id: u64, user_id: u64, admin: u64, actions: &[MemberAction]) {
        let blocked = match actions {
            a if a.contains(&MemberAction::Block) => true,
            a if a.contains(&MemberAction::Unblock) => false,
            _ => return,
        };
        self.spawn(guild_id, "member", move |inner, channel, now| async move {
            inner.post(channel, &Notice::Member { user_id, admin, blocked }, now).await
        });
    }

    /// A create was answered: a refusal of the bot's account is posted, at most once an hour; an
    /// accepted create records the job's amount, which may move the budget past a threshold.
    pub fn after_create(&self, guild_id: u64, outcome: &Result<Created, ProviderError>) {
        match outcome {
            Err(ProviderError::Rejected { message, http_status, .. })
                if crate::provider::concerns_the_account(message, *http_status) =>
            {
                self.spawn(guild_id, "service refused", move |inner, channel, now| async move {
                    let every = Some(SERVICE_REFUSED_EVERY);
                    inner.post_once(guild_id, channel, "service_refused", "", every, &Notice::ServiceRefused, now).await
                });
            }
            Ok(created) if created.amount.is_some() => self.check_budget(guild_id, false),
            _ => {}
        }
    }

    /// A job's final message was sent (or given up on): a moderation refusal goes to the log
    /// channel, and a long job's owner is pinged. Each once per job, however often this runs.
    pub fn after_delivery(&self, job: &Job) {
        if let Some(reason) = moderation_reason(job) {
            let (guild_id, user_id, job_id) = (job.guild_id.get(), job.user_id.get(), job.id.to_string());
            let notice = Notice::Moderation { user_id, prompt: job.spec.prompt.clone(), reason };
            self.spawn(guild_id, "moderation", move |inner, channel, now| async move {
                inner.post_once(guild_id, channel, "moderation", &job_id, None, &notice, now).await
            });
        }
        if let Some(message_id) = self.ping_due(job) {
            let inner = self.inner.clone();
            let (guild_id, channel_id, user_id, job_id) =
                (job.guild_id.get(), job.channel_id.get(), job.user_id.get(), job.id);
            tokio::spawn(
                async move {
                    if let Err(e) = inner.ping(guild_id, channel_id, user_id, job_id, message_id).await {
                        warn!(error = %e, "could not ping the job's owner");
                    }
                }
                .instrument(info_span!("ping", %job_id, guild_id)),
            );
        }
    }

    /// The result message to link, when the job's owner is to be pinged: it was delivered by
    /// editing the reply (a message posted in the channel already mentions them) longer than
    /// `NOTIFY_AFTER` after it was accepted.
    fn ping_due(&self, job: &Job) -> Option<u64> {
        let after = self.inner.notify_after?;
        let took = (job.delivered_at? - job.created_at).to_std().unwrap_or_default();
        (job.delivery == Some(Delivery::Edit) && took > after).then_some(job.message_id?.get())
    }

    /// Runs `post` for the guild's log channel in its own task, when the guild has one.
    fn spawn<F, Fut>(&self, guild_id: u64, what: &'static str, post: F)
    where
        F: FnOnce(Arc<Inner>, u64, DateTime<Utc>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let inner = self.inner.clone();
        tokio::spawn(
            async move {
                let settings = match db::settings::log_settings(&inner.pool, guild_id.into()).await {
                    Ok(settings) => settings,
                    Err(e) => return warn!(error = %e, "could not read the log channel"),
                };
                let Some(channel) = settings.log_channel else { return };
                if let Err(e) = post(inner, channel, Utc::now()).await {
                    warn!(error = %e, channel, "could not post in the log channel");
                }
            }
            .instrument(info_span!("log_channel", guild_id, notice = what)),
        );
    }
}

impl Inner {
    async fn budget(&self, guild_id: u64, channel: u64, refused: bool, now: DateTime<Utc>) -> anyhow::Result<()> {
        let Some(budget) = db::quotas::budget_unlocked(&self.pool, guild_id.into()).await? else { return Ok(()) };
        let mut conn = self.pool.acquire().await?;
        let since = crate::quota::month_start(now);
        let spent =
            db::quotas::spend(&mut conn, SpendScope::Guild(guild_id.into()), since, self.expected_job_cost, None)
                .await?
                .total;
        drop(conn);
        let mut reached = words::thresholds_reached(spent, budget);
        if refused && !reached.contains(&100) {
            reached.push(100);
        }
        let month = now.format("%Y-%m").to_string();
        // Every threshold reached is claimed, the highest new one posted: a jump from 40 % to
        // 85 % says 80 %, and never 50 % afterwards.
        let mut newest = None;
        for percent in reached {
            if db::log_notices::claim(&self.pool, guild_id.into(), &format!("budget_{percent}"), &month, None).await? {
                newest = Some(percent);
            }
        }
        match newest {
            Some(percent) => self.post(channel, &Notice::Budget { percent, spent, budget }, now).await,
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn post_once(
        &self,
        guild_id: u64,
        channel: u64,
        notice_name: &str,
        period: &str,
        repeat_after: Option<Duration>,
        notice: &Notice,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if db::log_notices::claim(&self.pool, guild_id.into(), notice_name, period, repeat_after).await? {
            self.post(channel, notice, now).await?;
        } else {
            debug!(notice_name, "already posted");
        }
        Ok(())
    }

    async fn post(&self, channel: u64, notice: &Notice, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.discord.post_message(channel, &notice.message(now), None).await.map_err(refused)?;
        Ok(())
    }

    async fn ping(
        &self,
        guild_id: u64,
        channel_id: u64,
        user_id: u64,
        job_id: uuid::Uuid,
        message_id: u64,
    ) -> anyhow::Result<()> {
        if !db::settings::log_settings(&self.pool, guild_id.into()).await?.notify {
            return Ok(());
        }
        if db::log_notices::claim(&self.pool, guild_id.into(), "ping", &job_id.to_string(), None).await? {
            let message = words::ping(user_id, guild_id, channel_id, message_id);
            self.discord.post_message(channel_id, &message, Some(user_id)).await.map_err(refused)?;
        }
        Ok(())
    }
}

fn refused(e: crate::discord::SendError) -> anyhow::Error {
    anyhow::anyhow!("Discord did not take the message: {e}")
}

/// The reason a failed job gives, when it is the image service's moderation declining it.
fn moderation_reason(job: &Job) -> Option<String> {
    job.error_text.clone().filter(|_| job.status.declined_by_moderation(job.error_text.as_deref()))
}
