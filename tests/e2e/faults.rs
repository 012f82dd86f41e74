//! Faults injected through the stand-ins: expired interaction tokens, Discord rate limits and
//! errors, a misbehaving provider, gateway drops. Each test asserts what the user sees and what
//! the database records.
//!
//! Longer than 400 lines on purpose: one test per fault the bot meets in the wild (Discord and
//! provider errors, expiry, limits, blips), kept side by side so their expectations can be compared.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    JobRow, TestBot, WAIT,
    discord::{DEFAULT_CHANNEL_ID, DEFAULT_USER_ID, InteractionBuilder},
    shortapi::{Behaviour, ShortApiStandIn},
};

async fn wait_channel_message(bot: &TestBot, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = bot.discord.channel_messages(DEFAULT_CHANNEL_ID).into_iter().find(|m| pred(m)) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no such channel message");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The original reply's message id, once the bot has edited it.
async fn original_id(bot: &TestBot, cmd: &InteractionBuilder) -> String {
    let message = bot.discord.wait_original(&cmd.token(), WAIT, |_| true).await.expect("original reply");
    message["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_after_the_token_expired_go_to_the_channel() {
    let bot = TestBot::start().await;
    bot.shortapi.script("late", Behaviour::succeed_after(8));
    let cmd = bot.imagine("late night tram");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Submitted") || c.contains("Generating")).await;
    let original = original_id(&bot, &cmd).await;
    // Fifteen minutes pass: Discord now refuses the token.
    bot.discord.expire_token(&cmd.token());

    let posted = wait_channel_message(&bot, |m| m["content"].as_str().unwrap_or("").contains("Done")).await;
    let content = posted["content"].as_str().unwrap();
    assert!(content.starts_with(&format!("<@{DEFAULT_USER_ID}>")), "mentions the user: {content}");
    assert_eq!(posted["message_reference"]["message_id"], original.as_str(), "refers to the original reply");
    assert_eq!(posted["attachments"].as_array().unwrap().len(), 5, "the images (and the source) are uploaded");
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("channel")));
    let post = bot.discord.requests().into_iter().find(|r| r.is("POST", "/channels/")).unwrap();
    assert_eq!(post.json.as_ref().unwrap()["allowed_mentions"]["users"], json!([DEFAULT_USER_ID.to_string()]));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_post_whose_answer_was_lost_is_not_posted_twice() {
    let bot = TestBot::start().await;
    bot.shortapi.script("lost answer", Behaviour::succeed_after(6));
    let cmd = bot.imagine("lost answer");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Submitted") || c.contains("Generating")).await;
    bot.discord.expire_token(&cmd.token());
    // The first post reaches the channel, but its answer is lost: the bot must try again, and the
    // retry must not make a second message.
    bot.discord.lose_next_answer("POST", &format!("/channels/{DEFAULT_CHANNEL_ID}/messages"), 502);
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), delivery.as_deref()), ("succeeded", Some("channel")));
    let posts = bot.discord.requests_matching("POST", &format!("/channels/{DEFAULT_CHANNEL_ID}/messages"));
    assert!(posts.len() >= 2, "the post was retried after the lost answer");
    let nonces: Vec<&Value> = posts.iter().map(|p| &p.json.as_ref().unwrap()["nonce"]).collect();
    assert!(nonces.windows(2).all(|w| w[0] == w[1]) && nonces[0].is_string(), "one nonce for every try: {nonces:?}");
    assert!(posts.iter().all(|p| p.json.as_ref().unwrap()["enforce_nonce"] == true));
    let done: Vec<Value> = bot
        .discord
        .channel_messages(DEFAULT_CHANNEL_ID)
        .into_iter()
        .filter(|m| m["content"].as_str().unwrap_or("").contains("Done"))
        .collect();
    assert_eq!(done.len(), 1, "exactly one result message in the channel");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_too_old_to_edit_is_handled_like_an_expired_token() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("PROGRESS_EDIT_INTERVAL".into(), "1h".into());
    })
    .await;
    bot.shortapi.script("old reply", Behaviour::succeed_after(4));
    let cmd = bot.imagine("old reply");
    bot.send(&cmd).await;
    // The first progress edit succeeds; the next edit of the reply hits the old-message edit cap.
    bot.wait_reply(&cmd, |c| c.contains("Submitted")).await;
    bot.discord.fail_next(
        "PATCH",
        "/messages/@original",
        400,
        json!({"code": 30046, "message": "Maximum number of edits to messages older than 1 hour reached."}),
    );
    wait_channel_message(&bot, |m| m["content"].as_str().unwrap_or("").contains("Done")).await;
    bot.wait_job_settled(&cmd).await;
    assert_eq!(bot.job(&cmd).await.unwrap().delivery.as_deref(), Some("channel"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nothing_can_be_posted_history_still_shows_the_images() {
    let bot = TestBot::start().await;
    bot.shortapi.script("hidden", Behaviour::succeed_after(6));
    let cmd = bot.imagine("hidden garden");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Submitted") || c.contains("Generating")).await;
    bot.discord.expire_token(&cmd.token());
    bot.discord.fail_next(
        "POST",
        &format!("/channels/{DEFAULT_CHANNEL_ID}/messages"),
        403,
        json!({"code": 50013, "message": "Missing Permissions"}),
    );
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("succeeded", true, Some("undelivered")));

    let history = InteractionBuilder::command("history");
    bot.send(&history).await;
    let callback = bot.callback(&history).await;
    assert!(callback["data"]["content"].as_str().unwrap().contains("could not be posted"), "{callback:#}");
    let request =
        bot.discord.requests().into_iter().find(|r| r.is("POST", &format!("/interactions/{}/", history.id()))).unwrap();
    assert_eq!(request.files.len(), 4, "the kept images are attached to /history");
    assert!(request.files.iter().all(|f| f.bytes.starts_with(b"\x89PNG")));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_rate_limits_are_waited_out_and_5xx_retried() {
    let bot = TestBot::start().await;
    bot.discord.fail_next(
        "PATCH",
        "/messages/@original",
        429,
        json!({"message": "You are being rate limited.", "retry_after": 1.0, "global": false}),
    );
    bot.discord.fail_next("PATCH", "/messages/@original", 502, json!({"message": "Bad Gateway", "code": 0}));
    let cmd = bot.imagine("patient painter");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    let edits = bot.discord.requests_matching("PATCH", "/messages/@original");
    let limited = edits.iter().position(|r| r.status == 429).expect("a 429 was served");
    let next = &edits[limited + 1];
    assert!(
        next.at.duration_since(edits[limited].at) >= Duration::from_millis(1000),
        "the next edit of that reply waited for retry_after"
    );
    assert!(edits.iter().any(|r| r.status == 502), "a 5xx was served and the edit retried");
    bot.wait_job_settled(&cmd).await;
    assert_eq!(bot.job(&cmd).await.unwrap().delivery.as_deref(), Some("edit"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_provider_faults_are_retried_until_the_job_succeeds() {
    let bot = TestBot::start().await;
    let cases = [
        ("flaky create", Behaviour::CreateHttpErrorThenSucceed { times: 2, status: 503, retry_after_secs: None }),
        (
            "rate limited create",
            Behaviour::CreateHttpErrorThenSucceed { times: 1, status: 429, retry_after_secs: Some(1) },
        ),
        ("unstable upstream", Behaviour::Code3000ThenSucceed { times: 2 }),
        ("garbled status", Behaviour::MalformedQueryThenSucceed { times: 2 }),
    ];
    let mut commands = Vec::new();
    for (prompt, behaviour) in cases {
        bot.shortapi.script(prompt, behaviour);
        let cmd = bot.imagine(prompt);
        bot.send(&cmd).await;
        commands.push((prompt, cmd));
    }
    for (prompt, cmd) in &commands {
        bot.wait_reply(cmd, |c| c.contains("Done")).await;
        bot.wait_job_settled(cmd).await;
        let JobRow { status, counted, .. } = bot.job(cmd).await.unwrap();
        assert_eq!((status.as_str(), counted), ("succeeded", true), "{prompt}");
    }
    let creates = |prompt: &str| -> Vec<_> {
        bot.shortapi.creates().into_iter().filter(|c| c.args()["prompt"] == prompt).collect()
    };
    assert_eq!(creates("flaky create").len(), 3, "two 503s, then accepted");
    let limited = creates("rate limited create");
    assert_eq!(limited.len(), 2);
    assert!(limited[1].at.duration_since(limited[0].at) >= Duration::from_secs(1), "Retry-After honoured");
    assert_eq!(creates("unstable upstream").len(), 1, "query faults never re-create the job");
    assert_eq!(creates("garbled status").len(), 1);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finished_during_a_query_blip_is_delivered_seconds_after_it() {
    // Realistic polling (1 s here, 3 s by default): after failed queries the bot backs off, but
    // never past a few poll intervals, so a short outage costs seconds, not minutes.
    let bot = TestBot::start_with(|vars| {
        vars.insert("POLL_FIRST_DELAY".into(), "200ms".into());
        vars.insert("POLL_INTERVAL".into(), "1s".into());
    })
    .await;
    bot.shortapi.script("blip", Behaviour::QueryErrorsThenSucceed { errors: vec![500, 0, 429, 502] });
    let cmd = bot.imagine("blip");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    let job_id = bot.shortapi.creates().into_iter().find_map(|c| c.job_id).expect("created");
    let queries = bot.shortapi.queries_for(&job_id);
    assert_eq!(queries.len(), 5, "four failed queries, then the one that saw the images");
    let blip_ended = queries[3].at;
    let delivered = bot
        .discord
        .requests()
        .into_iter()
        .filter(|r| r.is("PATCH", &format!("/webhooks/{}/{}", crate::support::discord::APP_ID, cmd.token())))
        .map(|r| r.at)
        .max()
        .expect("the reply was edited");
    let late = delivered.duration_since(blip_ended);
    assert!(late <= Duration::from_millis(3500), "delivered {late:?} after the blip ended (3 poll intervals at most)");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_downloads_are_bounded_in_number_size_and_host() {
    let bot = TestBot::start().await;
    let png = |seed: usize| ShortApiStandIn::tiny_png(2048 + seed);
    // Twelve images: only ten are fetched.
    let many: Vec<String> = (0..12)
        .map(|i| {
            let name = format!("many-{i}.png");
            bot.shortapi.add_image(&name, png(i), "image/png");
            bot.shortapi.image_url(&name)
        })
        .collect();
    bot.shortapi.script("too many", Behaviour::SucceedWithImages { urls: many });
    let cmd = bot.imagine("too many");
    bot.send(&cmd).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    assert_eq!(done["attachments"].as_array().map(Vec::len), Some(10), "{done:#}");
    assert_eq!(bot.shortapi.downloads(), 10, "the two extra images were never fetched");

    // A redirect to another host is not followed; an image over this interaction's upload limit
    // is not downloaded at all (linked instead).
    bot.shortapi.add_image("fine.png", png(1), "image/png");
    bot.shortapi.add_image("big.png", ShortApiStandIn::tiny_png(300_000), "image/png");
    let elsewhere = format!("{}/api/v10/gateway", bot.discord.proxy_url());
    bot.shortapi.add_redirect("moved.png", &elsewhere);
    let urls = ["fine.png", "moved.png", "big.png"].map(|n| bot.shortapi.image_url(n)).to_vec();
    bot.shortapi.script("odd results", Behaviour::SucceedWithImages { urls });
    let before = bot.shortapi.downloads();
    let cmd = bot.imagine("odd results").attachment_size_limit(100_000);
    bot.send(&cmd).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    let results = done["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["filename"].as_str().unwrap().starts_with("imagine-"));
    assert_eq!(results.count(), 1, "only the fine image is uploaded: {done:#}");
    let text = done.to_string();
    assert!(text.contains("moved.png") && text.contains("big.png"), "the others are linked: {done:#}");
    assert!(
        bot.discord.requests().iter().all(|r| !r.is("GET", "/api/v10/gateway") || r.header("authorization").is_some()),
        "the redirect to another host was never followed"
    );
    // Three results at most, plus the job's own source, fetched once to be uploaded again.
    assert!(bot.shortapi.downloads() - before <= 4);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_on_create_may_have_billed_a_job_so_it_is_never_resent() {
    let bot = TestBot::start().await;
    let mut commands = Vec::new();
    for status in [500, 502, 504] {
        let prompt = format!("gateway {status}");
        bot.shortapi.script(&prompt, Behaviour::CreatedThenHttpError { status });
        let cmd = bot.imagine(&prompt);
        bot.send(&cmd).await;
        commands.push((prompt, cmd));
    }
    // A 503 says the job was not taken: retried, delivered.
    bot.shortapi
        .script("unavailable", Behaviour::CreateHttpErrorThenSucceed { times: 1, status: 503, retry_after_secs: None });
    let retried = bot.imagine("unavailable");
    bot.send(&retried).await;
    for (prompt, cmd) in &commands {
        let reply = bot.wait_reply(cmd, |c| c.contains("Failed")).await;
        assert!(reply["content"].as_str().unwrap().contains("could not confirm"), "{prompt}: {reply:#}");
        bot.wait_job_settled(cmd).await;
        let JobRow { status, counted, .. } = bot.job(cmd).await.unwrap();
        assert_eq!((status.as_str(), counted), ("uncertain", false), "{prompt}: refunded, marked uncertain");
        let sent = bot.shortapi.creates().into_iter().filter(|c| c.args()["prompt"] == prompt.as_str()).count();
        assert_eq!(sent, 1, "{prompt}: a create that may have been billed is sent exactly once");
    }
    bot.wait_reply(&retried, |c| c.contains("Done")).await;
    let sent = bot.shortapi.creates().into_iter().filter(|c| c.args()["prompt"] == "unavailable").count();
    assert_eq!(sent, 2, "503, then accepted");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_creates_are_never_resent_and_slow_jobs_time_out() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("PROVIDER_TIMEOUT".into(), "1s".into());
        vars.insert("JOB_DEADLINE".into(), "2s".into());
    })
    .await;
    bot.shortapi.script("hung create", Behaviour::SlowCreate { delay: Duration::from_secs(3) });
    bot.shortapi.script("garbled create", Behaviour::MalformedCreate);
    bot.shortapi.script("endless", Behaviour::NeverFinish);
    let hung = bot.imagine("hung create");
    let garbled = bot.imagine("garbled create");
    let endless = bot.imagine("endless night");
    for cmd in [&hung, &garbled, &endless] {
        bot.send(cmd).await;
    }
    for cmd in [&hung, &garbled] {
        let reply = bot.wait_reply(cmd, |c| c.contains("Failed")).await;
        assert!(reply["content"].as_str().unwrap().contains("could not confirm"), "{reply:#}");
        bot.wait_job_settled(cmd).await;
        let JobRow { status, counted, .. } = bot.job(cmd).await.unwrap();
        assert_eq!((status.as_str(), counted), ("uncertain", false));
    }
    let reply = bot.wait_reply(&endless, |c| c.contains("Failed")).await;
    assert!(reply["content"].as_str().unwrap().contains("did not finish within 2 s"), "{reply:#}");
    bot.wait_job_settled(&endless).await;
    let JobRow { status, counted, .. } = bot.job(&endless).await.unwrap();
    assert_eq!((status.as_str(), counted), ("timed_out", false));
    for prompt in ["hung create", "garbled create"] {
        let sent = bot.shortapi.creates().into_iter().filter(|c| c.args()["prompt"] == prompt).count();
        assert_eq!(sent, 1, "{prompt}: an ambiguous create is never sent twice");
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_retried_with_backoff() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let bot = TestBot::start_with(|vars| {
        vars.insert("SHORTAPI_BASE_URL".into(), address);
    })
    .await;
    let cmd = bot.imagine("nobody home");
    bot.send(&cmd).await;
    bot.callback(&cmd).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let JobRow { status, create_attempts: attempts, counted, .. } = bot.job(&cmd).await.unwrap();
        if attempts >= 2 {
            assert_eq!((status.as_str(), counted), ("queued", true), "still waiting to be sent, still reserved");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "create was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_reconnects_after_a_gateway_drop() {
    let bot = TestBot::start().await;
    bot.discord.disconnect_gateway();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot.discord.connected_sessions() == 0 || bot.discord.ready_count() + bot.discord.resume_count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cmd = bot.imagine("after the storm");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_acknowledgement_drops_the_job_before_it_costs_anything() {
    let bot = TestBot::start().await;
    // Discord no longer accepts the callback (10062 unknown interaction).
    bot.discord.set_ack_deadline(Some(Duration::ZERO));
    let cmd = bot.imagine("too late");
    bot.send(&cmd).await;
    bot.discord
        .wait_for(WAIT, |r| r.is("POST", &format!("/interactions/{}/", cmd.id())) && r.status == 404)
        .await
        .expect("callback refused");
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted), ("failed", false));

    // The bot keeps working.
    bot.discord.set_ack_deadline(None);
    let next = bot.imagine("on time");
    bot.send(&next).await;
    bot.wait_reply(&next, |c| c.contains("Done")).await;
    assert!(
        bot.shortapi.creates().iter().all(|c| c.args()["prompt"] != "too late"),
        "the dropped job never reached the provider"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_results_are_linked_instead_of_uploaded() {
    let bot = TestBot::start_with(|vars| {
        vars.insert("MAX_RESULT_IMAGE_BYTES".into(), "100000".into());
    })
    .await;
    // Too big to download at all (over the byte cap), and too big for this interaction's uploads.
    bot.shortapi.script(
        "huge",
        Behaviour::Succeed {
            polls_before_done: 1,
            images: 2,
            image_bytes: 150_000,
            amount: "0.04".into(),
            progress: false,
        },
    );
    bot.shortapi.script(
        "medium",
        Behaviour::Succeed {
            polls_before_done: 1,
            images: 2,
            image_bytes: 20_000,
            amount: "0.04".into(),
            progress: false,
        },
    );
    let huge = bot.imagine("huge canvas");
    let medium = bot.imagine("medium canvas").attachment_size_limit(10_000);
    for cmd in [&huge, &medium] {
        bot.send(cmd).await;
        let done = bot.wait_reply(cmd, |c| c.contains("Done")).await;
        let embeds = done["embeds"].to_string();
        assert!(embeds.contains("Too large to upload") && embeds.contains("[image 1]("), "{embeds}");
        bot.wait_job_settled(cmd).await;
        let final_edit = bot
            .discord
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.is("PATCH", &format!("/{}/messages/@original", cmd.token())))
            .unwrap();
        assert!(
            final_edit.files.iter().all(|f| !f.filename.starts_with("imagine-")),
            "no result over a limit is uploaded"
        );
        // Only the job's own source (2 KiB, under both limits) goes with it, so the result still
        // offers Reroll and Remix, though no U or V.
        let names: Vec<&str> = final_edit.files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(names, ["source-1.png"]);
        let labels: Vec<&str> = done["components"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row["components"].as_array().unwrap())
            .map(|b| b["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels, ["Reroll", "Remix", "Delete"]);
    }
    bot.stop().await;
}
