//! The follow-up ping (`NOTIFY_AFTER`, `/settings notify`): a job delivered longer than
//! `NOTIFY_AFTER` after it was accepted gets one message in its channel that pings its owner
//! (and no one else) with a link to the result; a quick job gets none, nor does any job of a
//! server that turned the ping off.

use std::time::Duration;

use serde_json::{Value, json};

use crate::actions::result;
use crate::roles::private_answer;
use crate::support::{
    TestBot,
    discord::{
        DEFAULT_CHANNEL_ID, DEFAULT_GUILD_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD,
    },
    shortapi::Behaviour,
};

const NOTIFY_AFTER: &str = "3s";
/// Longer than [`NOTIFY_AFTER`].
const SLOW: Duration = Duration::from_secs(4);
/// Time given to a ping that should not come, after the job was delivered and saved.
const GRACE: Duration = Duration::from_secs(1);

/// The messages posted in the job's channel that mention the default user.
fn pings(bot: &TestBot) -> Vec<Value> {
    let mention = format!("<@{DEFAULT_USER_ID}>");
    bot.discord
        .channel_messages(DEFAULT_CHANNEL_ID)
        .into_iter()
        .filter(|m| m["content"].as_str().is_some_and(|c| c.contains(&mention)))
        .collect()
}

fn notify(enabled: bool) -> InteractionBuilder {
    InteractionBuilder::command("settings")
        .subcommand("notify")
        .boolean("enabled", enabled)
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_pings_its_owner_once_unless_the_server_turned_it_off() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("NOTIFY_AFTER".into(), NOTIFY_AFTER.into());
    })
    .await;
    bot.shortapi.script("slow", Behaviour::SucceedAt { after: SLOW, images: 4, image_bytes: 2048 });

    // A quick job: its edited reply is enough.
    result(&bot, "a quick sketch").await;
    tokio::time::sleep(GRACE).await;
    assert!(pings(&bot).is_empty(), "{:#?}", pings(&bot));

    let (slow, done) = result(&bot, "a slow cathedral").await;
    let pinged = crate::support::eventually(crate::support::WAIT, || async { !pings(&bot).is_empty() }).await;
    assert!(pinged, "the owner of a slow job is pinged");
    tokio::time::sleep(GRACE).await;
    let pings_now = pings(&bot);
    assert_eq!(pings_now.len(), 1, "once: {pings_now:#?}");
    let link = format!(
        "https://discord.com/channels/{DEFAULT_GUILD_ID}/{DEFAULT_CHANNEL_ID}/{}",
        done["id"].as_str().unwrap()
    );
    assert_eq!(pings_now[0]["content"], format!("<@{DEFAULT_USER_ID}> your image job is done: {link}"));
    let posted = bot.discord.requests_matching("POST", &format!("/channels/{DEFAULT_CHANNEL_ID}/messages"));
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].json.as_ref().unwrap()["allowed_mentions"],
        json!({"parse": [], "users": [DEFAULT_USER_ID.to_string()]}),
        "only the owner is pinged"
    );
    // Recorded, so another delivery of the job (another process, after a lost lease) pings no one.
    let notices: i64 = sqlx::query_scalar("SELECT count(*) FROM log_notices WHERE notice = 'ping'")
        .fetch_one(&bot.pool)
        .await
        .unwrap();
    assert_eq!(notices, 1, "the ping is recorded");
    bot.wait_job_settled(&slow).await;

    // Turned off for the server: a slow job pings no one.
    assert!(private_answer(&bot, &notify(false)).await.contains("no longer ping"));
    let shown = private_answer(
        &bot,
        &InteractionBuilder::command("settings")
            .subcommand("show")
            .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD),
    )
    .await;
    assert!(shown.contains("**Ping when a long job is done:** off"), "{shown}");
    result(&bot, "another slow cathedral").await;
    tokio::time::sleep(GRACE).await;
    assert_eq!(pings(&bot).len(), 1, "no second ping");
    assert!(private_answer(&bot, &notify(false)).await.contains("nothing changed"));
    bot.stop().await;
}

/// Discord lets a channel take five messages in five seconds, says on every answer how many are
/// left and when the count resets, and refuses more with a 429. Eight pings at once: the bot
/// waits for the channel's room as the answers say, so none is refused; and a 429 all the same
/// (another process took the room) means the ping was not posted: it waits as Discord asks and
/// is posted then. None is dropped, none is posted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_beyond_the_channels_rate_limit_wait_their_turn_and_none_is_lost() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("NOTIFY_AFTER".into(), NOTIFY_AFTER.into());
    })
    .await;
    bot.discord.set_route_limit(5, Duration::from_secs(5));
    let channel_posts = format!("/channels/{DEFAULT_CHANNEL_ID}/messages");
    bot.discord.fail_next(
        "POST",
        &channel_posts,
        429,
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
    );
    bot.shortapi.script("slow", Behaviour::SucceedAt { after: SLOW, images: 1, image_bytes: 2048 });

    let commands: Vec<InteractionBuilder> = (1..=8).map(|i| bot.imagine(&format!("a slow cathedral {i}"))).collect();
    for cmd in &commands {
        bot.send(cmd).await;
    }
    for cmd in &commands {
        bot.wait_job_settled(cmd).await;
    }
    let all = crate::support::eventually(crate::support::WAIT, || async { pings(&bot).len() >= 8 }).await;
    let posted = bot.discord.requests_matching("POST", &channel_posts);
    let refused: Vec<_> = posted.iter().filter(|r| r.status == 429).collect();
    assert!(all, "every owner is pinged: {} of 8, {} refused with a 429", pings(&bot).len(), refused.len());
    assert_eq!(refused.len(), 1, "only the scripted 429: the bot waited for the channel's room");
    tokio::time::sleep(GRACE).await;
    assert_eq!(pings(&bot).len(), 8, "once each");
    bot.stop().await;
}
