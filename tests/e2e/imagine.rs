//! End to end: the real bot (serenity + poise) against the Discord and ShortAPI stand-ins and a
//! real PostgreSQL, asserting what users would see and what the provider receives.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, JobRow, TestBot, WAIT, discord::InteractionBuilder, shortapi::Behaviour};

const EPHEMERAL: u64 = 64;

fn flags(callback: &Value) -> u64 {
    callback["data"]["flags"].as_u64().unwrap_or(0)
}

fn callback_text(callback: &Value) -> String {
    callback["data"]["content"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_from_command_to_gallery() {
    let bot = TestBot::start().await;
    let cmd = bot.imagine("a cozy reading nook, golden hour --ar 16:9 --chaos 20 --no people");
    bot.send(&cmd).await;

    // A public answer, well within Discord's three seconds, showing the prompt and "queued".
    let callback = bot.callback(&cmd).await;
    assert_eq!(callback["type"], 4, "{callback:#}");
    assert_eq!(flags(&callback) & EPHEMERAL, 0, "an accepted job is answered publicly");
    assert!(callback_text(&callback).contains("Queued"), "{callback:#}");
    let embed = callback["data"]["embeds"][0].to_string();
    assert!(embed.contains("a cozy reading nook, golden hour"), "{embed}");
    assert!(embed.contains("Aspect 16:9") && embed.contains("chaos 20"), "{embed}");
    let dispatched = bot.discord.dispatched_at(cmd.id()).expect("dispatched");
    let acked = bot.discord.requests().into_iter().find(|r| r.is("POST", "/callback")).unwrap().at;
    assert!(acked.duration_since(dispatched) < Duration::from_secs(3));

    // The provider gets exactly the right arguments, with the key, once.
    let creates = bot.shortapi.wait_creates(1, WAIT).await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].header("authorization"), Some("Bearer test-shortapi-key"));
    let body = creates[0].json.clone().unwrap();
    assert_eq!(body["model"], "midjourney/midjourney-v7/image-to-image");
    assert_eq!(
        body["args"],
        json!({"mode":"fast","prompt":"a cozy reading nook, golden hour","negative_prompt":"people",
               "aspect_ratio":"16:9","chaos":20,"image_urls":[bot.source_url("source.png")]})
    );

    // The reply ends as a gallery of uploaded images with duration and cost.
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    // The stand-in records a create as it arrives and fetches its inputs before answering it:
    // once the job is done, the fetch has surely happened.
    assert_eq!(bot.shortapi.fetched_inputs(), [(bot.source_url("source.png"), 200)], "the provider got the image");
    let content = done["content"].as_str().unwrap();
    assert!(content.contains("4 images") && content.contains("$0.04"), "{content}");
    let final_edit = bot
        .discord
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.is("PATCH", "/messages/@original") && !r.files.is_empty())
        .expect("a final edit with files");
    // The four results, then the job's own source uploaded again (for Reroll and Remix days later).
    let names: Vec<&str> = final_edit.files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["imagine-1.png", "imagine-2.png", "imagine-3.png", "imagine-4.png", "source-1.png"]);
    for file in &final_edit.files {
        assert!(file.bytes.starts_with(b"\x89PNG"), "uploaded bytes are the images");
    }
    let embeds = final_edit.json.as_ref().unwrap()["embeds"].as_array().unwrap().clone();
    assert_eq!(embeds.len(), 4);
    assert!(embeds.iter().all(|e| e["url"] == embeds[0]["url"]), "embeds share one URL to form a gallery");
    assert!(embeds[0]["image"]["url"].as_str().unwrap().starts_with("attachment://"));
    assert_eq!(embeds[0]["thumbnail"]["url"], "attachment://source-1.png", "the source shows as a thumbnail");

    // The database keeps the whole story and forgets the token.
    bot.wait_job_settled(&cmd).await;
    let job = bot.job(&cmd).await.unwrap();
    assert_eq!(job.status, "succeeded");
    assert!(job.counted, "a successful job counts against the quota");
    assert_eq!(job.amount.as_deref(), Some("0.04"));
    assert_eq!(job.delivery.as_deref(), Some("edit"));
    assert_eq!(job.provider_job_id, creates[0].job_id);
    assert_eq!(job.results, 4);
    assert!(job.token_erased, "the interaction token is erased once the job is delivered");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_option_reaches_its_argument() {
    let bot = TestBot::start().await;
    let url = |name: &str| bot.source_url(name);
    let cmd = InteractionBuilder::command("imagine")
        .string("prompt", "a lighthouse at dusk --ar 2:3 --s 5")
        .attachment("image", "a.png", Some("image/png"), 1000, &url("a.png"))
        .attachment("image2", "b.jpg", Some("image/jpeg"), 1000, &url("b.jpg"))
        .string("aspect_ratio", "4:5")
        .string("performance", "quality")
        .integer("stylization", 250)
        .integer("chaos", 30)
        .integer("weirdness", 1000)
        .string("negative_prompt", "fog")
        .attachment("style_image", "s.webp", Some("image/webp"), 1000, &url("s.webp"))
        .integer("style_weight", 300)
        .attachment("omni_image", "o.png", Some("image/png"), 1000, &url("o.png"))
        .integer("omni_weight", 1500);
    bot.send(&cmd).await;
    let callback = bot.callback(&cmd).await;
    assert_eq!(flags(&callback) & EPHEMERAL, 0, "{callback:#}");
    let notes = callback["data"]["embeds"][0].to_string();
    assert!(notes.contains("overrides `--ar 2:3`") && notes.contains("overrides `--stylize 5`"), "{notes}");

    let creates = bot.shortapi.wait_creates(1, WAIT).await;
    assert_eq!(
        creates[0].args(),
        json!({"mode":"fast","prompt":"a lighthouse at dusk","negative_prompt":"fog","aspect_ratio":"4:5",
               "performance":"quality","stylization":250,"chaos":30,"weirdness":1000,
               "image_urls":[url("a.png"), url("b.jpg")],"style_image_urls":[url("s.webp")],
               "omni_image_url":url("o.png"),"style_weight":300,"omni_weight":1500})
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_flags_are_parsed_and_the_prompt_cleaned() {
    let bot = TestBot::start().await;
    let cmd = bot.imagine("sci-fi city —ar 7:3 --w 300 --seed 9 --no low-poly");
    bot.send(&cmd).await;
    let callback = bot.callback(&cmd).await;
    let embed = callback["data"]["embeds"][0].to_string();
    assert!(embed.contains("**Prompt:** sci fi city"), "prompt as sent is shown: {embed}");
    assert!(embed.contains("7:3") && embed.contains("16:9"), "snapped ratio noted: {embed}");
    assert!(embed.contains("--seed 9"), "dropped flag noted: {embed}");
    assert!(embed.contains("replaced `-` with spaces"), "cleaning noted: {embed}");
    let creates = bot.shortapi.wait_creates(1, WAIT).await;
    let args = creates[0].args();
    assert_eq!(args["prompt"], "sci fi city");
    assert_eq!(args["aspect_ratio"], "16:9");
    assert_eq!(args["weirdness"], 300);
    assert_eq!(args["negative_prompt"], "low poly");
    assert!(args.get("seed").is_none());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_privately_and_nothing_is_sent() {
    let bot = TestBot::start().await;
    let not_image = InteractionBuilder::command("imagine").string("prompt", "a cat").attachment(
        "image",
        "notes.txt",
        Some("text/plain; charset=utf-8"),
        120,
        &bot.source_url("notes.txt"),
    );
    let too_big = InteractionBuilder::command("imagine").string("prompt", "a cat").attachment(
        "image",
        "huge.png",
        Some("image/png"),
        11 * 1024 * 1024,
        &bot.source_url("huge.png"),
    );
    let out_of_range = bot.imagine("a cat --chaos 150");
    let empty = bot.imagine("--ar 16:9 ---");
    let cases =
        [(&not_image, "notes.txt"), (&too_big, "limit is 10.0 MB"), (&out_of_range, "0 to 100"), (&empty, "empty")];
    for (cmd, expected) in cases {
        bot.send(cmd).await;
        let callback = bot.callback(cmd).await;
        assert_eq!(callback["type"], 4);
        assert_eq!(flags(&callback) & EPHEMERAL, EPHEMERAL, "refusals are ephemeral: {callback:#}");
        let text = callback_text(&callback);
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
        assert!(bot.job(cmd).await.is_none(), "a refused command stores no job");
    }
    // Each refusal was its command's last step (a job is stored before any reply) and stored no
    // job, so the worker has nothing to send: there is nothing left to wait for.
    assert!(bot.shortapi.creates().is_empty(), "nothing reaches the provider");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_refusal_is_shown_and_refunded() {
    let bot = TestBot::start().await;
    bot.shortapi.script("forbidden", Behaviour::CreateError { code: 400, message: "prompt is too long".into() });
    let cmd = bot.imagine("forbidden topic");
    bot.send(&cmd).await;
    let reply = bot.wait_reply(&cmd, |c| c.contains("Failed")).await;
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains("refused") && content.contains("prompt is too long"), "{content}");
    assert!(content.contains("does not count against your quota"), "{content}");
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, delivery, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted, delivery.as_deref()), ("failed", false, Some("edit")));
    assert_eq!(bot.shortapi.creates().len(), 1, "a refused create is not retried");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bots_account_trouble_stays_out_of_public_replies() {
    let bot = TestBot::start().await;
    bot.shortapi.script(
        "broke",
        Behaviour::CreateError { code: 1001, message: "Insufficient balance: 0.01 USD left on account 7".into() },
    );
    let cmd = bot.imagine("broke painter");
    bot.send(&cmd).await;
    let reply = bot.wait_reply(&cmd, |c| c.contains("Failed")).await;
    let content = reply.to_string();
    assert!(content.contains("not accepting this bot's jobs right now; nothing was counted"), "{content}");
    assert!(!content.contains("Insufficient") && !content.contains("account 7"), "{content}");
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted), ("failed", false));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_that_fails_at_the_provider_is_reported_with_its_reason() {
    let bot = TestBot::start().await;
    bot.shortapi.script(
        "moderate me",
        Behaviour::FailAtProvider {
            polls_before_fail: 2,
            status: json!(3),
            message: "image could not be decoded".into(),
        },
    );
    let cmd = bot.imagine("moderate me please");
    bot.send(&cmd).await;
    let reply = bot.wait_reply(&cmd, |c| c.contains("Failed")).await;
    let content = reply["content"].as_str().unwrap();
    assert!(
        content.contains("could not make this image") && content.contains("image could not be decoded"),
        "{content}"
    );
    bot.wait_job_settled(&cmd).await;
    let JobRow { status, counted, .. } = bot.job(&cmd).await.unwrap();
    assert_eq!((status.as_str(), counted), ("failed", false));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_shown_while_the_job_runs() {
    let bot = TestBot::start().await;
    bot.shortapi.script(
        "slow",
        Behaviour::Succeed {
            polls_before_done: 6,
            images: 2,
            image_bytes: 4096,
            amount: "0.05".into(),
            progress: true,
        },
    );
    let cmd = bot.imagine("slow painting");
    bot.send(&cmd).await;
    bot.wait_reply(&cmd, |c| c.contains("Generating")).await;
    let done = bot.wait_reply(&cmd, |c| c.contains("Done")).await;
    assert!(done["content"].as_str().unwrap().contains("2 images · cost $0.05"));
    let edits = bot.discord.requests_matching("PATCH", "/messages/@original");
    assert!(
        edits.iter().any(|e| e.json.as_ref().unwrap()["content"].as_str().unwrap().contains('%')),
        "progress percent shown when the provider gives one"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_schema_matches_the_spec() {
    let bot = TestBot::start().await;
    let commands = bot.discord.registered_commands().unwrap();
    let registered = bot.discord.requests().into_iter().find(|r| r.is("PUT", "/commands")).unwrap();
    assert!(
        registered.path.contains(&format!("/guilds/{}/commands", support::discord::DEFAULT_GUILD_ID)),
        "DEV_GUILD_ID registers in the guild"
    );
    let imagine = commands.as_array().unwrap().iter().find(|c| c["name"] == "imagine").expect("imagine registered");
    let options = imagine["options"].as_array().unwrap();
    let find = |name: &str| options.iter().find(|o| o["name"] == name).unwrap_or_else(|| panic!("option {name}"));
    type Expected<'a> = (&'a str, u64, bool, Option<(i64, i64)>);
    let expected: [Expected<'_>; 13] = [
        ("prompt", 3, true, None),
        ("image", 11, true, None),
        ("image2", 11, false, None),
        ("aspect_ratio", 3, false, None),
        ("performance", 3, false, None),
        ("stylization", 4, false, Some((0, 1000))),
        ("chaos", 4, false, Some((0, 100))),
        ("weirdness", 4, false, Some((0, 3000))),
        ("negative_prompt", 3, false, None),
        ("style_image", 11, false, None),
        ("style_weight", 4, false, Some((0, 1000))),
        ("omni_image", 11, false, None),
        ("omni_weight", 4, false, Some((0, 2000))),
    ];
    assert_eq!(options.len(), 13);
    for (name, kind, required, range) in expected {
        let option = find(name);
        assert_eq!(option["type"], kind, "{name}");
        assert_eq!(option["required"].as_bool().unwrap_or(false), required, "{name}");
        if let Some((min, max)) = range {
            assert_eq!((option["min_value"].as_i64(), option["max_value"].as_i64()), (Some(min), Some(max)), "{name}");
        }
    }
    let ratios: Vec<&str> =
        find("aspect_ratio")["choices"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert_eq!(ratios, ["9:16", "2:3", "3:4", "4:5", "5:6", "1:1", "6:5", "5:4", "4:3", "3:2", "16:9"]);
    let performance: Vec<&str> =
        find("performance")["choices"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert_eq!(performance, ["speed", "balance", "quality"]);
    assert_eq!(find("prompt")["max_length"], 1500);
    assert!(commands.as_array().unwrap().iter().any(|c| c["name"] == "history"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_your_jobs_privately() {
    let bot = TestBot::start().await;
    bot.shortapi.script("broken", Behaviour::CreateError { code: 500, message: "image format not supported".into() });
    let ok = bot.imagine("a quiet harbour");
    let broken = bot.imagine("broken dream");
    bot.send(&ok).await;
    bot.wait_reply(&ok, |c| c.contains("Done")).await;
    bot.send(&broken).await;
    bot.wait_reply(&broken, |c| c.contains("Failed")).await;
    // The worker saves a job just after its final edit: wait for the saves, which /history reads.
    bot.wait_job_settled(&ok).await;
    bot.wait_job_settled(&broken).await;
    let other_user = bot.imagine("someone else's").user(1180000000000000999, "bob");
    bot.send(&other_user).await;
    bot.callback(&other_user).await;

    let history = InteractionBuilder::command("history");
    bot.send(&history).await;
    let callback = bot.callback(&history).await;
    assert_eq!(flags(&callback) & EPHEMERAL, EPHEMERAL);
    let text = callback_text(&callback);
    assert!(text.contains("a quiet harbour") && text.contains("done"), "{text}");
    assert!(
        text.contains("broken dream") && text.contains("failed") && text.contains("image format not supported"),
        "{text}"
    );
    assert!(text.contains("/channels/"), "links to the result message: {text}");
    assert!(!text.contains("someone else"), "only your own jobs: {text}");
    bot.stop().await;
}
