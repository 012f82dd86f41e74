//! `/settings log_channel` end to end: the bot proves it can post in the chosen channel (and says
//! privately which permissions it lacks when it cannot), then posts one short embed there for
//! each budget threshold (once a month), moderation refusal, blocked or unblocked member, the
//! operator's daily spend limit (once a day) and the image service refusing it (once an hour).

use std::time::Duration;

use serde_json::json;

use crate::actions::result;
use crate::roles::{accepted, count, private_answer};
use crate::support::{
    TestBot, WAIT,
    discord::{
        DEFAULT_CHANNEL_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD,
        OTHER_GUILD_CHANNEL_ID, OTHER_GUILD_ID, SECOND_CHANNEL_ID,
    },
    eventually,
    shortapi::Behaviour,
};

const MEMBER: u64 = 1_180_000_000_000_000_831;
/// Time given to a notice that should not come, after everything that could post it happened.
const GRACE: Duration = Duration::from_secs(1);

fn admin(command: &str, subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command(command).subcommand(subcommand).member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn set_log_channel(channel: u64) -> InteractionBuilder {
    admin("settings", "log_channel").channel_option("channel", channel)
}

/// The titles of the embeds the bot posted in `channel`, oldest first.
fn titles(bot: &TestBot, channel: u64) -> Vec<String> {
    bot.discord
        .channel_messages(channel)
        .iter()
        .flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default())
        .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until `channel` holds `n` embeds, then gives any further one time to arrive; returns
/// every title.
async fn settled_titles(bot: &TestBot, channel: u64, n: usize) -> Vec<String> {
    eventually(WAIT, || async { titles(bot, channel).len() >= n }).await;
    tokio::time::sleep(GRACE).await;
    titles(bot, channel)
}

fn description(bot: &TestBot, channel: u64, title: &str) -> String {
    let messages = bot.discord.channel_messages(channel);
    let embed = messages
        .iter()
        .flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default())
        .find(|e| e["title"] == title)
        .unwrap_or_else(|| panic!("no embed titled {title}"));
    embed["description"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_channel_the_bot_cannot_post_in_is_refused_privately() {
    let bot = TestBot::start().await;
    bot.discord.refuse_posts_in(SECOND_CHANNEL_ID);
    let refused = private_answer(&bot, &set_log_channel(SECOND_CHANNEL_ID)).await;
    assert!(refused.contains(&format!("I cannot post in <#{SECOND_CHANNEL_ID}>")), "{refused}");
    assert!(refused.contains("View Channel, Send Messages and Embed Links"), "{refused}");
    assert_eq!(count(&bot, "settings_changes").await, 0, "nothing changed");

    // Neither both options nor none; and members cannot set it.
    let both = private_answer(&bot, &set_log_channel(SECOND_CHANNEL_ID).boolean("clear", true)).await;
    assert!(both.contains("not both"), "{both}");
    let member = set_log_channel(OTHER_GUILD_CHANNEL_ID).member_permissions(DEFAULT_PERMISSIONS);
    assert!(private_answer(&bot, &member).await.contains("Manage Server"));

    // A channel it can post in: a test post there, the setting shown and audited; then cleared.
    let set = private_answer(&bot, &set_log_channel(DEFAULT_CHANNEL_ID)).await;
    assert!(set.contains("is the log channel"), "{set}");
    assert_eq!(titles(&bot, DEFAULT_CHANNEL_ID), ["Log channel set"]);
    let shown = private_answer(&bot, &admin("settings", "show")).await;
    let mention = format!("<#{}>", DEFAULT_CHANNEL_ID);
    assert!(shown.contains(&format!("**Log channel:** {mention}")), "{shown}");
    assert!(shown.contains(&format!("made {mention} the log channel")), "{shown}");
    let cleared = private_answer(&bot, &admin("settings", "log_channel").boolean("clear", true)).await;
    assert!(cleared.contains("no log channel any more"), "{cleared}");
    let shown = private_answer(&bot, &admin("settings", "show")).await;
    assert!(shown.contains("**Log channel:** none") && shown.contains("cleared the log channel"), "{shown}");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_moderation_and_the_image_service_are_reported() {
    let bot = TestBot::start().await;
    // A server without a log channel gets nothing posted anywhere.
    let block = |blocked: bool| admin("quota", "member").user_option("member", MEMBER).boolean("block", blocked);
    assert!(private_answer(&bot, &block(true).guild(OTHER_GUILD_ID)).await.contains("is blocked"));
    private_answer(&bot, &set_log_channel(SECOND_CHANNEL_ID)).await;

    assert!(private_answer(&bot, &block(true)).await.contains("is blocked"));
    // Blocking again changes nothing, so it reports nothing.
    assert!(private_answer(&bot, &block(true)).await.contains("already blocked"));
    assert!(private_answer(&bot, &block(false)).await.contains("may start image jobs here again"));

    bot.shortapi.script(
        "forbidden",
        Behaviour::FailAtProvider {
            polls_before_fail: 1,
            status: json!(3),
            message: "Image flagged by moderation".into(),
        },
    );
    let declined = bot.imagine("a forbidden scene --ar 16:9");
    accepted(&bot, &declined).await;
    bot.wait_job_settled(&declined).await;

    bot.shortapi.script("refused", Behaviour::CreateError { code: 402, message: "insufficient balance".into() });
    for prompt in ["refused one", "refused two"] {
        let cmd = bot.imagine(prompt);
        accepted(&bot, &cmd).await;
        bot.wait_job_settled(&cmd).await;
    }

    let titles = settled_titles(&bot, SECOND_CHANNEL_ID, 5).await;
    assert_eq!(
        titles,
        [
            "Log channel set",
            "Member blocked",
            "Member unblocked",
            "Prompt declined by moderation",
            "The image service is refusing this bot"
        ],
        "each once"
    );
    let blocked = description(&bot, SECOND_CHANNEL_ID, "Member blocked");
    assert!(blocked.starts_with(&format!("<@{DEFAULT_USER_ID}> blocked <@{MEMBER}>")), "{blocked}");
    let moderation = description(&bot, SECOND_CHANNEL_ID, "Prompt declined by moderation");
    assert!(moderation.contains(&format!("<@{DEFAULT_USER_ID}>'s image job")), "{moderation}");
    assert!(moderation.contains("**Prompt:** `a forbidden scene`"), "the cleaned prompt: {moderation}");
    assert!(moderation.contains("flagged by moderation"), "{moderation}");
    // The embeds name people without pinging them, and only the log channel got any.
    for request in bot.discord.requests_matching("POST", "/messages") {
        assert!(request.path.contains(&format!("/channels/{SECOND_CHANNEL_ID}/messages")), "{}", request.path);
        let mentions = &request.json.expect("JSON")["allowed_mentions"];
        assert!(mentions["parse"] == json!([]) && mentions["users"].as_array().is_none_or(Vec::is_empty));
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_thresholds_are_posted_once_each() {
    let bot = TestBot::start().await;
    private_answer(&bot, &set_log_channel(SECOND_CHANNEL_ID)).await;
    // $0.20 a month; each job costs $0.04.
    private_answer(&bot, &admin("quota", "set").number("monthly_budget", 0.2)).await;
    let mut after_each = Vec::new();
    for n in 1..=5 {
        result(&bot, &format!("job number {n}")).await;
        after_each.push(settled_titles(&bot, SECOND_CHANNEL_ID, 0).await.len() - 1);
    }
    // 20 %, 40 %, 60 % (50 % reached), 80 %, 100 %.
    assert_eq!(after_each, [0, 0, 1, 2, 3], "{:?}", titles(&bot, SECOND_CHANNEL_ID));
    // The budget refuses the sixth: it was already reported as reached.
    let sixth = bot.imagine("one too many");
    assert!(private_answer(&bot, &sixth).await.contains("budget"));
    assert_eq!(
        settled_titles(&bot, SECOND_CHANNEL_ID, 4).await,
        ["Log channel set", "Monthly budget 50 % spent", "Monthly budget 80 % spent", "Monthly budget reached"]
    );
    let reached = description(&bot, SECOND_CHANNEL_ID, "Monthly budget reached");
    assert!(reached.contains("spent $0.20 of its $0.2 budget"), "{reached}");
    assert_eq!(count(&bot, "log_notices").await, 3);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_daily_limit_is_posted_once_a_day() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("DAILY_SPEND_LIMIT".into(), "0.04".into());
    })
    .await;
    private_answer(&bot, &set_log_channel(SECOND_CHANNEL_ID)).await;
    result(&bot, "the only one today").await;
    for prompt in ["refused first", "refused second"] {
        assert!(private_answer(&bot, &bot.imagine(prompt)).await.contains("spending limit"));
    }
    assert_eq!(
        settled_titles(&bot, SECOND_CHANNEL_ID, 2).await,
        ["Log channel set", "The operator's daily spending limit is reached"]
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_processes_racing_for_a_notice_one_posts_it() {
    use imagine_bot::db::{DiscordId, log_notices::claim};
    let (_database, pool) = crate::support::fresh_pool().await;
    // Ten callers at once, as ten processes noticing the same threshold: one wins.
    let racers = (0..10).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { claim(&pool, DiscordId::new(1), "budget_50", "2026-12", None).await.unwrap() })
    });
    let won: Vec<bool> = futures::future::join_all(racers).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // The same notice of another month, or of another guild, is another notice.
    assert!(claim(&pool, DiscordId::new(1), "budget_50", "2027-01", None).await.unwrap());
    assert!(claim(&pool, DiscordId::new(2), "budget_50", "2026-12", None).await.unwrap());
    // A repeating notice comes back only once its interval has passed.
    let hourly = Some(Duration::from_secs(3600));
    assert!(claim(&pool, DiscordId::new(1), "service_refused", "", hourly).await.unwrap());
    assert!(!claim(&pool, DiscordId::new(1), "service_refused", "", hourly).await.unwrap());
    sqlx::query("UPDATE log_notices SET sent_at = now() - interval '61 minutes' WHERE notice = 'service_refused'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(claim(&pool, DiscordId::new(1), "service_refused", "", hourly).await.unwrap());
    assert!(!claim(&pool, DiscordId::new(1), "service_refused", "", hourly).await.unwrap());
}
