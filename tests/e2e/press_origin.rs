//! A press acts only on the job whose result message carries it: a result button's `custom_id`
//! copied onto another message (another result, or a message Discord never saw) is refused
//! privately, for U, V, Reroll, Remix and the Remix modal's submit alike, and nothing is posted,
//! created or sent.

use serde_json::Value;

use crate::actions::{EPHEMERAL, custom_id, refusal, result};
use crate::support::{
    TestBot, WAIT,
    discord::{InteractionBuilder, snowflake},
};

const NOT_ITS_MESSAGE: &str = "does not belong to this message";

/// `message` as a crafted interaction could carry it: the same content under an id Discord never
/// gave any message.
fn under_another_id(message: &Value) -> Value {
    let mut forged = message.clone();
    forged["id"] = Value::String(snowflake().to_string());
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_is_honoured_only_on_its_own_jobs_result() {
    let bot = TestBot::start().await;
    let (_, first) = result(&bot, "a red kite over dunes").await;
    let (_, second) = result(&bot, "a blue kite over surf").await;
    let forged = under_another_id(&first);
    let before = (bot.job_count().await, bot.shortapi.creates().len());

    let remix_id = custom_id(&first, "Remix");
    let mut presses = Vec::new();
    for label in ["U2", "V1", "Reroll", "Remix"] {
        let id = custom_id(&first, label);
        presses.push((InteractionBuilder::button_press(&second, &id), format!("{label} on another result")));
        presses.push((InteractionBuilder::button_press(&forged, &id), format!("{label} on a forged message")));
    }
    let submits = [
        (InteractionBuilder::modal_submit(&second, &remix_id, &[("prompt", "a kite")]), "submit on another result"),
        (InteractionBuilder::modal_submit(&forged, &remix_id, &[("prompt", "a kite")]), "submit on a forged message"),
    ];
    presses.extend(submits.map(|(submit, what)| (submit, what.to_owned())));
    for (press, what) in &presses {
        bot.send(press).await;
        let text = refusal(&bot.callback(press).await).to_owned();
        assert!(text.contains(NOT_ITS_MESSAGE), "{what}: {text}");
    }
    // The same buttons on their own result still work: U2 posts the image, V1 makes a job.
    let genuine_u2 = InteractionBuilder::button_press(&first, &custom_id(&first, "U2"));
    bot.send(&genuine_u2).await;
    assert_eq!(bot.callback(&genuine_u2).await["type"], 5);
    let token = genuine_u2.token();
    let posted = bot.discord.wait_original(&token, WAIT, |m| !m["attachments"].as_array().unwrap().is_empty()).await;
    assert!(posted.is_some(), "the genuine U2 posted its image");
    let genuine_v1 = InteractionBuilder::button_press(&first, &custom_id(&first, "V1"));
    bot.send(&genuine_v1).await;
    let callback = bot.callback(&genuine_v1).await;
    assert_eq!((callback["type"].as_u64(), callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL), (Some(4), 0));

    // The refusals posted nothing and made nothing: the one new job is the genuine V1's.
    for (press, what) in &presses {
        assert!(bot.discord.requests_matching("PATCH", &press.token()).is_empty(), "{what}: nothing posted");
        assert!(bot.discord.modal_for(press.id()).is_none(), "{what}: no modal");
    }
    assert_eq!(bot.job_count().await, before.0 + 1);
    bot.wait_reply(&genuine_v1, |c| c.contains("Done")).await;
    assert_eq!(bot.shortapi.creates().len(), before.1 + 1, "only the genuine V1 reached the provider");
    bot.stop().await;
}
