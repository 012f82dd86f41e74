//! `/settings` end to end: server defaults under what members give, the channels `/imagine` works
//! in, blocked words, bad input that changes nothing, and the audit shown by `/settings show`.

use serde_json::{Value, json};

use crate::support::{
    TestBot, WAIT,
    discord::{
        DEFAULT_CHANNEL_ID, DEFAULT_PERMISSIONS, DEFAULT_USER_ID, InteractionBuilder, MANAGE_GUILD,
        OTHER_GUILD_CHANNEL_ID, SECOND_CHANNEL_ID,
    },
};

const EPHEMERAL: u64 = 64;

fn settings(subcommand: &str) -> InteractionBuilder {
    InteractionBuilder::command("settings")
        .subcommand(subcommand)
        .member_permissions(DEFAULT_PERMISSIONS | MANAGE_GUILD)
}

fn content(callback: &Value) -> String {
    callback["data"]["content"].as_str().unwrap_or_default().to_owned()
}

fn is_ephemeral(callback: &Value) -> bool {
    callback["data"]["flags"].as_u64().unwrap_or(0) & EPHEMERAL == EPHEMERAL
}

/// Sends the interaction and returns its (first) answer's text, asserting that it was private.
async fn private_answer(bot: &TestBot, interaction: &InteractionBuilder) -> String {
    bot.send(interaction).await;
    let callback = bot.callback(interaction).await;
    assert!(is_ephemeral(&callback), "{callback:#}");
    content(&callback)
}

async fn count(bot: &TestBot, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&bot.pool).await.unwrap()
}

/// An `/imagine` that is accepted: public answer, then the provider's create. Returns the args.
async fn accepted(bot: &TestBot, cmd: &InteractionBuilder) -> (Value, Value) {
    let before = bot.shortapi.creates().len();
    bot.send(cmd).await;
    let callback = bot.callback(cmd).await;
    assert!(!is_ephemeral(&callback), "accepted publicly: {callback:#}");
    let creates = bot.shortapi.wait_creates(before + 1, WAIT).await;
    assert_eq!(creates.len(), before + 1);
    (callback, creates[before].args())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_defaults_fill_only_what_the_member_left_out() {
    let bot = TestBot::start().await;
    let source = bot.source_url("source.png");

    let set = settings("defaults")
        .string("aspect_ratio", "16:9")
        .string("performance", "quality")
        .integer("stylization", 250)
        .integer("chaos", 20)
        .string("negative_prompt", "low-poly blur");
    let answer = private_answer(&bot, &set).await;
    assert!(answer.contains("aspect ratio not set → **16:9**"), "{answer}");
    assert!(answer.contains("Adjusted your negative prompt"), "the cleaning is explained: {answer}");

    // Neither option nor flag: the server's defaults, and the reply says where they came from.
    let (callback, args) = accepted(&bot, &bot.imagine("a red fox")).await;
    assert_eq!(
        args,
        json!({"mode":"fast","prompt":"a red fox","negative_prompt":"low poly blur","aspect_ratio":"16:9",
               "performance":"quality","stylization":250,"chaos":20,"image_urls":[source]})
    );
    let embed = callback["data"]["embeds"][0].to_string();
    assert!(
        embed.contains(
            "Server defaults: aspect ratio 16:9, performance quality, stylization 250, chaos 20, negative prompt"
        ),
        "{embed}"
    );

    // Typed flags and options win over the defaults; an option wins over a flag.
    let mine =
        bot.imagine("a red fox --ar 2:3 --c 5 --s 900 --no fog").string("performance", "speed").integer("chaos", 40);
    let (_, args) = accepted(&bot, &mine).await;
    assert_eq!(
        args,
        json!({"mode":"fast","prompt":"a red fox","negative_prompt":"fog","aspect_ratio":"2:3",
               "performance":"speed","stylization":900,"chaos":40,"image_urls":[source]})
    );

    // Contradictory or empty commands are refused and change nothing.
    let changes = count(&bot, "settings_changes").await;
    let both = settings("defaults").boolean("reset", true).integer("chaos", 5);
    assert!(private_answer(&bot, &both).await.contains("cannot come with new values"));
    let nothing = settings("defaults");
    assert!(private_answer(&bot, &nothing).await.contains("Give at least one default"));
    let unset = settings("defaults").boolean("reset", false);
    assert!(private_answer(&bot, &unset).await.contains("Give at least one default"));
    assert_eq!(count(&bot, "settings_changes").await, changes, "nothing recorded");
    let (_, args) = accepted(&bot, &bot.imagine("still defaults")).await;
    assert_eq!(args["chaos"], 20, "nothing changed");

    // Reset: back to the bot's own defaults.
    let reset = settings("defaults").boolean("reset", true);
    assert!(private_answer(&bot, &reset).await.contains("Every default is cleared"));
    let (callback, args) = accepted(&bot, &bot.imagine("plain fox")).await;
    assert_eq!(args, json!({"mode":"fast","prompt":"plain fox","aspect_ratio":"1:1","image_urls":[source]}));
    assert!(!callback.to_string().contains("Server default"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_works_only_in_the_allowed_channels() {
    let bot = TestBot::start().await;

    // A channel of another server, or one Discord does not know, is refused; nothing changes.
    let foreign = settings("channels").channel_option("channel", OTHER_GUILD_CHANNEL_ID).boolean("allowed", true);
    let answer = private_answer(&bot, &foreign).await;
    assert!(answer.contains("is not a channel of this server"), "{answer}");
    let unknown = settings("channels").channel_option("channel", 1180000000000000299).boolean("allowed", true);
    assert!(private_answer(&bot, &unknown).await.contains("is not a channel of this server"));
    assert_eq!((count(&bot, "guild_allowed_channels").await, count(&bot, "settings_changes").await), (0, 0));

    let allow = settings("channels").channel_option("channel", SECOND_CHANNEL_ID).boolean("allowed", true);
    let answer = private_answer(&bot, &allow).await;
    assert!(answer.contains(&format!("`/imagine` works only in <#{SECOND_CHANNEL_ID}>")), "{answer}");

    // Elsewhere: a private refusal naming the allowed channel; nothing stored, sent or counted.
    let elsewhere = bot.imagine("a lighthouse").channel(DEFAULT_CHANNEL_ID);
    let refusal = private_answer(&bot, &elsewhere).await;
    assert!(refusal.contains(&format!("only be started in <#{SECOND_CHANNEL_ID}>")), "{refusal}");
    assert_eq!(count(&bot, "jobs").await, 0);

    // Inside it: accepted.
    accepted(&bot, &bot.imagine("a lighthouse").channel(SECOND_CHANNEL_ID)).await;
    assert_eq!(bot.shortapi.creates().len(), 1, "only the job in the allowed channel reached the provider");

    // Off the list again: every channel.
    let open = settings("channels").channel_option("channel", SECOND_CHANNEL_ID).boolean("allowed", false);
    assert!(private_answer(&bot, &open).await.contains("works in every channel"));
    accepted(&bot, &bot.imagine("a harbour").channel(DEFAULT_CHANNEL_ID)).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_words_are_refused_in_any_disguise_without_false_positives() {
    let bot = TestBot::start().await;
    let add = settings("blocked_words").string("add", "Gore, blood bath");
    let answer = private_answer(&bot, &add).await;
    assert!(answer.contains("Blocked: `gore`, `blood bath`."), "{answer}");

    // Bad input changes nothing.
    let empty = settings("blocked_words").string("add", " , ,");
    assert!(private_answer(&bot, &empty).await.contains("`add` has no words in it"));
    let nothing = settings("blocked_words");
    assert!(private_answer(&bot, &nothing).await.contains("Give words to block"));
    let both = settings("blocked_words").string("add", "gore").string("remove", "GORE");
    assert!(private_answer(&bot, &both).await.contains("pick one"));
    assert_eq!((count(&bot, "guild_blocked_words").await, count(&bot, "settings_changes").await), (2, 2));

    for (prompt, negative, place, word) in [
        ("ＧＯＲＥ in the rain", None, "prompt", "gore"),
        ("a quiet street --no Góre", None, "prompt", "gore"),
        ("a BLOOD-BATH at dawn", None, "prompt", "blood bath"),
        ("a quiet street", Some("góre"), "negative prompt", "gore"),
    ] {
        let mut cmd = bot.imagine(prompt);
        if let Some(negative) = negative {
            cmd = cmd.string("negative_prompt", negative);
        }
        let refusal = private_answer(&bot, &cmd).await;
        assert_eq!(
            refusal,
            format!("Your {place} contains `{word}`, which this server does not allow. Remove it and try again."),
            "{prompt}"
        );
    }
    assert_eq!((count(&bot, "jobs").await, bot.shortapi.creates().len()), (0, 0), "nothing stored or sent");

    // Not a whole-word match: accepted.
    let (_, args) = accepted(&bot, &bot.imagine("a gorgeous sunset, a bloodhound")).await;
    assert_eq!(args["prompt"], "a gorgeous sunset, a bloodhound");

    let remove = settings("blocked_words").string("remove", "gore, dragons");
    let answer = private_answer(&bot, &remove).await;
    assert!(answer.contains("Allowed again: `gore`.") && answer.contains("Not on the list: `dragons`."), "{answer}");
    accepted(&bot, &bot.imagine("gore")).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_and_shown_and_only_admins_may_change() {
    let bot = TestBot::start().await;

    let registered = bot.discord.registered_commands().unwrap();
    let command = registered.as_array().unwrap().iter().find(|c| c["name"] == "settings").expect("registered");
    assert_eq!(command["default_member_permissions"], "32");
    let sub = |name: &str| command["options"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap().clone();
    let names = |sub: &Value| -> Vec<String> {
        sub["options"].as_array().map_or(vec![], |o| o.iter().map(|o| o["name"].as_str().unwrap().to_owned()).collect())
    };
    assert_eq!(
        names(&sub("defaults")),
        ["aspect_ratio", "performance", "stylization", "chaos", "weirdness", "negative_prompt", "reset"]
    );
    assert_eq!(names(&sub("blocked_words")), ["add", "remove"]);
    assert!(names(&sub("show")).is_empty());
    let channels = sub("channels");
    assert_eq!(
        (channels["options"][0]["name"].as_str(), channels["options"][0]["type"].as_u64()),
        (Some("channel"), Some(7))
    );
    assert_eq!(
        (channels["options"][1]["name"].as_str(), channels["options"][1]["type"].as_u64()),
        (Some("allowed"), Some(5))
    );
    assert!(channels["options"].as_array().unwrap().iter().all(|o| o["required"] == true));
    let types = channels["options"][0]["channel_types"].as_array().unwrap();
    assert!(!types.contains(&json!(4)), "categories cannot be chosen: {types:?}");

    // A member without Manage Server is refused by the bot itself, whatever Discord showed them.
    for cmd in [
        settings("show"),
        settings("defaults").integer("chaos", 5),
        settings("channels").channel_option("channel", SECOND_CHANNEL_ID).boolean("allowed", true),
        settings("blocked_words").string("add", "gore"),
    ] {
        let cmd = cmd.member_permissions(DEFAULT_PERMISSIONS);
        assert!(private_answer(&bot, &cmd).await.contains("Manage Server"));
    }
    for table in ["guild_settings", "guild_allowed_channels", "guild_blocked_words", "settings_changes"] {
        assert_eq!(count(&bot, table).await, 0, "{table}");
    }

    let empty = private_answer(&bot, &settings("show")).await;
    assert!(empty.contains("Chaos: not set (0)") && empty.contains("No changes yet"), "{empty}");

    for cmd in [
        settings("defaults").integer("chaos", 20),
        settings("channels").channel_option("channel", SECOND_CHANNEL_ID).boolean("allowed", true),
        settings("blocked_words").string("add", "gore"),
        settings("defaults").integer("chaos", 30).string("aspect_ratio", "3:2"),
        settings("blocked_words").string("remove", "gore"),
        settings("channels").channel_option("channel", SECOND_CHANNEL_ID).boolean("allowed", false),
        // Already so: nothing to record.
        settings("defaults").integer("chaos", 30),
    ] {
        private_answer(&bot, &cmd).await;
    }
    let recorded: Vec<(i64, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT changed_by, setting::text, old_value, new_value FROM settings_changes ORDER BY id")
            .fetch_all(&bot.pool)
            .await
            .unwrap();
    let by = DEFAULT_USER_ID as i64;
    let some = |s: &str| Some(s.to_owned());
    let second = SECOND_CHANNEL_ID.to_string();
    assert_eq!(
        recorded,
        vec![
            (by, "chaos".into(), None, some("20")),
            (by, "allowed_channel".into(), None, some(&second)),
            (by, "blocked_word".into(), None, some("gore")),
            (by, "aspect_ratio".into(), None, some("3:2")),
            (by, "chaos".into(), some("20"), some("30")),
            (by, "blocked_word".into(), some("gore"), None),
            (by, "allowed_channel".into(), some(&second), None),
        ]
    );

    let shown = private_answer(&bot, &settings("show")).await;
    for expected in [
        "Aspect ratio: **3:2**".to_owned(),
        "Chaos: **30**".to_owned(),
        "**Channels:** `/imagine` works in every channel.".to_owned(),
        "**Blocked words:** none".to_owned(),
        format!("<@{DEFAULT_USER_ID}> chaos **20** → **30**"),
        format!("<@{DEFAULT_USER_ID}> allowed <#{SECOND_CHANNEL_ID}>"),
        format!("took <#{SECOND_CHANNEL_ID}> off the allowed channels"),
        "blocked `gore`".to_owned(),
        "allowed `gore` again".to_owned(),
    ] {
        assert!(shown.contains(&expected), "{expected} missing from {shown}");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_words_see_through_dots_invisible_characters_and_look_alike_letters() {
    let bot = TestBot::start().await;
    let add = settings("blocked_words").string("add", "cat");
    assert!(private_answer(&bot, &add).await.contains("Blocked: `cat`."));

    for prompt in [
        "a c.a.t on a mat",
        "a c\u{200B}a\u{200C}t on a mat",
        "a c\u{2060}a\u{FEFF}t\u{200D} on a mat",
        "a \u{0441}at on a mat",        // Cyrillic es
        "a \u{03F2}at on a mat",        // Greek lunate sigma
        "a C\u{0410}\u{0422} on a mat", // Cyrillic capital A and Te
        "a \u{0441}.\u{200B}\u{0430}.t on a mat",
    ] {
        let refusal = private_answer(&bot, &bot.imagine(prompt)).await;
        assert_eq!(
            refusal, "Your prompt contains `cat`, which this server does not allow. Remove it and try again.",
            "{prompt:?}"
        );
    }
    assert_eq!((count(&bot, "jobs").await, bot.shortapi.creates().len()), (0, 0), "nothing stored or sent");

    // Words that merely contain the letters stay allowed.
    let (_, args) = accepted(&bot, &bot.imagine("a cathedral, a scatter of c.a.ts")).await;
    assert_eq!(args["prompt"], "a cathedral, a scatter of c.a.ts");
    bot.stop().await;
}
