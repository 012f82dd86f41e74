//! What the log channel's notices and the follow-up ping say, in one place; and which budget
//! thresholds a spend has crossed.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serenity::all::CreateEmbed;

use crate::render::{Rendered, truncate};

/// The shares of `monthly_budget` (per cent) that get a notice, once each a month.
pub const BUDGET_THRESHOLDS: [u32; 3] = [50, 80, 100];

const AMBER: u32 = 0xF0B232;
const RED: u32 = 0xDA373C;
const GREY: u32 = 0x80848E;

/// One event the server's admins hear about in their log channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `percent` of the monthly budget is spent (US dollars, as the budget counts them).
    Budget { percent: u32, spent: Decimal, budget: Decimal },
    /// The image service's moderation declined a member's job.
    Moderation { user_id: u64, prompt: String, reason: String },
    /// An admin blocked (`blocked`) or unblocked a member.
    Member { user_id: u64, admin: u64, blocked: bool },
    /// The operator's `DAILY_SPEND_LIMIT` refused a job.
    SpendLimit,
    /// The image service refused the bot's account (balance, key, plan).
    ServiceRefused,
}

impl Notice {
    /// The embed posted for the notice at `now`.
    pub fn message(&self, now: DateTime<Utc>) -> Rendered {
        let (title, description, colour) = match self {
            Notice::Budget { percent: 100, spent, budget } => (
                "Monthly budget reached".to_owned(),
                format!(
                    "This server has spent ${spent} of its ${budget} budget this month: new image jobs are refused \
                     until the month ends <t:{}:R>. `/quota set monthly_budget` changes the budget.",
                    crate::quota::next_month(now).timestamp()
                ),
                RED,
            ),
            Notice::Budget { percent, spent, budget } => (
                format!("Monthly budget {percent} % spent"),
                format!(
                    "This server has spent ${spent} of its ${budget} budget this month. At 100 % new image jobs are \
                     refused until the month ends <t:{}:R>.",
                    crate::quota::next_month(now).timestamp()
                ),
                AMBER,
            ),
            Notice::Moderation { user_id, prompt, reason } => (
                "Prompt declined by moderation".to_owned(),
                format!(
                    "The image service declined <@{user_id}>'s image job; nothing was counted.\n**Prompt:** {}\n\
                     **Reason:** {}",
                    quoted(prompt, 1000),
                    truncate(reason, 300)
                ),
                AMBER,
            ),
            Notice::Member { user_id, admin, blocked: true } => (
                "Member blocked".to_owned(),
                format!(
                    "<@{admin}> blocked <@{user_id}>: they cannot start image jobs in this server until unblocked."
                ),
                GREY,
            ),
            Notice::Member { user_id, admin, blocked: false } => (
                "Member unblocked".to_owned(),
                format!("<@{admin}> unblocked <@{user_id}>: they may start image jobs in this server again."),
                GREY,
            ),
            Notice::SpendLimit => (
                "The operator's daily spending limit is reached".to_owned(),
                format!(
                    "The bot's operator allows a set amount of spending a day across every server. New image jobs \
                     are refused until <t:{}:R>; jobs already accepted are still delivered.",
                    crate::quota::next_day(now).timestamp()
                ),
                RED,
            ),
            Notice::ServiceRefused => (
                "The image service is refusing this bot".to_owned(),
                "The image service refused this bot's account (its balance, key or plan), so jobs are not being \
                 made and nothing is counted for them. The bot's operator needs to fix the account. This notice \
                 comes at most once an hour."
                    .to_owned(),
                RED,
            ),
        };
        let embed = CreateEmbed::new().title(title).description(description).colour(colour);
        Rendered { content: String::new(), embeds: vec![embed], components: Vec::new() }
    }
}

/// The follow-up that pings a job's owner: a reply's edit does not notify anyone.
pub fn ping(user_id: u64, guild_id: u64, channel_id: u64, message_id: u64) -> Rendered {
    Rendered {
        content: format!(
            "<@{user_id}> your image job is done: https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"
        ),
        embeds: Vec::new(),
        components: Vec::new(),
    }
}

/// What the admin is told when the bot cannot post in the chosen log channel.
pub fn cannot_post(channel_id: u64) -> String {
    format!(
        "I cannot post in <#{channel_id}>, so it is not the log channel (nothing changed). Give me the View Channel, \
         Send Messages and Embed Links permissions there, then try again."
    )
}

/// The test post in a new log channel.
pub fn confirmation() -> CreateEmbed {
    CreateEmbed::new()
        .title("Log channel set")
        .description(
            "I will post here when this server's monthly budget reaches 50 %, 80 % and 100 %, when moderation \
             declines a prompt, when a member is blocked or unblocked, when the operator's daily spending limit is \
             reached, and when the image service refuses this bot.",
        )
        .colour(GREY)
}

/// `text` inside a code span, cut to about `max` characters, so a prompt cannot format the embed.
fn quoted(text: &str, max: usize) -> String {
    format!("`{}`", truncate(&text.replace('`', "'"), max))
}

/// The thresholds of [`BUDGET_THRESHOLDS`] that `spent` (US dollars) has reached under `budget`,
/// compared exactly on the decimal figures. A budget of zero has no thresholds to reach: its
/// refusals alone say it is spent.
pub fn thresholds_reached(spent: Decimal, budget: Decimal) -> Vec<u32> {
    if budget <= Decimal::ZERO {
        return Vec::new();
    }
    BUDGET_THRESHOLDS
        .into_iter()
        .filter(|percent| spent * Decimal::ONE_HUNDRED >= budget * Decimal::from(*percent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_compared_on_the_exact_decimals() {
        let reached = |spent: &str, budget: &str| thresholds_reached(spent.parse().unwrap(), budget.parse().unwrap());
        // 0.16 of 0.20 is exactly 80 %, which f64 arithmetic would miss (0.8 × 0.2 > 0.16).
        assert_eq!(reached("0.16", "0.20"), vec![50, 80]);
        assert_eq!(reached("0.12", "0.2"), vec![50]);
        assert_eq!(reached("0.0999999", "0.20"), Vec::<u32>::new());
        assert_eq!(reached("0.20000000000000000000", "0.2"), vec![50, 80, 100]);
        assert_eq!(reached("7", "5"), vec![50, 80, 100]);
        assert_eq!(reached("0", "0"), Vec::<u32>::new(), "a zero budget is spent by its refusals");
    }
}
