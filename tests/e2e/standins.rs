//! Smoke tests proving the Discord and ShortAPI stand-ins are faithful enough for serenity 0.12.5
//! (used directly, without poise) and for a plain HTTP client.
//!
//! Longer than 400 lines on purpose: each stand-in behaviour a test relies on is proven here once,
//! against the real clients, in one place.

use std::time::Duration;

use serde_json::{Value, json};
use serenity::all::{
    ActionRowComponent, ChannelId, ClientBuilder, Command, CommandDataOptionValue, CommandInteraction,
    CommandOptionType, Context, CreateActionRow, CreateAttachment, CreateCommand, CreateCommandOption, CreateInputText,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    CreateModal, EditInteractionResponse, EventHandler, GatewayIntents, HttpBuilder, InputTextStyle, Interaction,
    Message, Ready,
};
use tokio::sync::mpsc;

use crate::support::{
    discord::{self, APP_ID, DEFAULT_CHANNEL_ID, DiscordStandIn, InteractionBuilder},
    shortapi::{self, Behaviour, ShortApiStandIn},
};

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Seen {
    Ready,
    Command(Box<CommandInteraction>),
    Edited(Result<Message, String>),
    SecondAck(String),
    Followup(Result<Message, String>),
}

struct Handler {
    tx: mpsc::UnboundedSender<Seen>,
}

fn png(seed: u64) -> Vec<u8> {
    shortapi::png_with_seed(3000, seed)
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, _ready: Ready) {
        let _ = self.tx.send(Seen::Ready);
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(cmd) = interaction else {
            return;
        };
        let _ = self.tx.send(Seen::Command(Box::new(cmd.clone())));
        let ephemeral = cmd.data.name == "secret";
        cmd.create_response(
            &ctx.http,
            CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new().content("queued").ephemeral(ephemeral),
            ),
        )
        .await
        .expect("first ack succeeds");
        if ephemeral {
            return;
        }
        let edited = cmd
            .edit_response(
                &ctx.http,
                EditInteractionResponse::new()
                    .content("done")
                    .new_attachment(CreateAttachment::bytes(png(7), "1.png"))
                    .new_attachment(CreateAttachment::bytes(png(8), "2.png")),
            )
            .await
            .map_err(|e| e.to_string());
        let _ = self.tx.send(Seen::Edited(edited));
        let second = cmd
            .create_response(
                &ctx.http,
                CreateInteractionResponse::Message(CreateInteractionResponseMessage::new().content("again")),
            )
            .await;
        let _ = self.tx.send(Seen::SecondAck(format!("{second:?}")));
        let followup = cmd
            .create_followup(&ctx.http, CreateInteractionResponseFollowup::new().content("followup <@42>"))
            .await
            .map_err(|e| e.to_string());
        let _ = self.tx.send(Seen::Followup(followup));
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("handler event in time").expect("channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serenity_client_works_against_discord_standin() {
    let discord = DiscordStandIn::start().await;

    // Plain REST through the proxy, rate limiter disabled (reference §6.1).
    let http = HttpBuilder::new("test-token")
        .proxy(discord.proxy_url())
        .ratelimiter_disabled(true)
        .application_id(APP_ID.into())
        .build();
    let app = http.get_current_application_info().await.expect("application info");
    assert_eq!(app.id.get(), APP_ID);
    // A new application is public, with an install link; a private one has none.
    assert!(app.bot_public && app.install_params.is_some());
    discord.set_bot_public(false);
    let app = http.get_current_application_info().await.expect("application info");
    assert!(!app.bot_public && app.install_params.is_none());
    let anonymous = reqwest::get(format!("{}/api/v10/applications/@me", discord.proxy_url())).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "the application needs the bot token");
    let me = http.get_current_user().await.expect("current user");
    assert_eq!(me.id.get(), APP_ID);
    assert!(me.bot);

    // Command registration: serenity must accept the echo.
    let commands = Command::set_global_commands(
        &http,
        vec![
            CreateCommand::new("imagine")
                .description("Midjourney v7 image-to-image")
                .add_option(CreateCommandOption::new(CommandOptionType::String, "prompt", "Prompt").required(true))
                .add_option(CreateCommandOption::new(CommandOptionType::Attachment, "image", "Source image")),
            CreateCommand::new("secret").description("ephemeral"),
        ],
    )
    .await
    .expect("register commands");
    assert_eq!(commands.len(), 2);
    let imagine_id = discord.command_id("imagine").expect("imagine registered");
    assert_eq!(commands[0].id.get(), imagine_id);
    assert_eq!(discord.registered_commands().unwrap()[0]["name"], json!("imagine"));

    // Gateway.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let http = HttpBuilder::new("test-token").proxy(discord.proxy_url()).ratelimiter_disabled(true).build();
    let mut client = ClientBuilder::new_with_http(http, GatewayIntents::empty())
        .event_handler(Handler { tx })
        .await
        .expect("client");
    let http = client.http.clone();
    let shard_manager = client.shard_manager.clone();
    tokio::spawn(async move {
        let _ = client.start().await;
    });
    assert!(discord.wait_ready(WAIT).await, "IDENTIFY/READY happened");
    assert!(matches!(next(&mut rx).await, Seen::Ready));
    assert!(discord.requests().iter().any(|r| r.is("GET", "/api/v10/gateway") && r.status == 200));
    let identify = &discord.identifies()[0];
    assert_eq!(identify["intents"], json!(0));
    assert_eq!(identify["shard"], json!([0, 1]));
    assert_eq!(identify["token"], json!("Bot test-token"));

    // An interaction with an attachment option reaches the handler.
    let cdn = "https://cdn.discordapp.com/ephemeral-attachments/1/2/room.png?ex=66a1b2c3&is=66a06143&hm=abc&";
    let b = InteractionBuilder::command("imagine")
        .string("prompt", "a cozy nook --ar 16:9")
        .attachment("image", "room.png", Some("image/png"), 1_843_201, cdn)
        .attachment_size_limit(25 * 1024 * 1024);
    discord.dispatch_interaction(b.build()).await;
    let Seen::Command(cmd) = next(&mut rx).await else { panic!("expected the command") };
    assert_eq!(cmd.id.get(), b.id());
    assert_eq!(cmd.token, b.token());
    assert_eq!(cmd.data.name, "imagine");
    assert_eq!(cmd.data.id.get(), imagine_id);
    assert_eq!(cmd.attachment_size_limit, 25 * 1024 * 1024);
    assert_eq!(cmd.guild_id.map(|g| g.get()), Some(discord::DEFAULT_GUILD_ID));
    assert_eq!(cmd.user.id.get(), discord::DEFAULT_USER_ID);
    let perms = cmd.member.as_ref().unwrap().permissions.unwrap();
    assert!(!perms.manage_guild() && !perms.administrator() && perms.send_messages());
    let att_id = cmd
        .data
        .options
        .iter()
        .find_map(|o| match (&o.name[..], &o.value) {
            ("image", CommandDataOptionValue::Attachment(id)) => Some(*id),
            _ => None,
        })
        .expect("attachment option");
    let att = &cmd.data.resolved.attachments[&att_id];
    assert_eq!(att.url, cdn);
    assert_eq!(att.filename, "room.png");
    assert_eq!(att.size, 1_843_201);

    // The callback was recorded.
    let token = b.token();
    let cb = discord.wait_for(WAIT, |r| r.is("POST", "/callback") && r.status == 204).await.expect("callback recorded");
    assert!(cb.path.contains(&b.id().to_string()));
    assert_eq!(cb.json.as_ref().unwrap()["type"], json!(4));

    // The edit with two uploaded files, recorded with the bytes; serenity parses the message.
    let Seen::Edited(edited) = next(&mut rx).await else { panic!("expected edit result") };
    let edited = edited.expect("edit_response parses the stand-in's message");
    assert_eq!(edited.content, "done");
    assert_eq!(edited.attachments.len(), 2);
    let patch = discord.wait_for(WAIT, |r| r.is("PATCH", "/messages/@original")).await.expect("edit recorded");
    assert_eq!(patch.status, 200);
    assert!(patch.is_multipart());
    assert_eq!(patch.files.len(), 2);
    assert_eq!(patch.files[0].field, "files[0]");
    assert_eq!(patch.files[0].filename, "1.png");
    assert_eq!(patch.files[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(patch.files[0].bytes, png(7));
    assert_eq!(patch.files[1].bytes, png(8));
    assert_eq!(patch.json.as_ref().unwrap()["content"], json!("done"));
    let original = discord.original_message(&token).expect("original message");
    assert_eq!(original["content"], json!("done"));
    let names: Vec<&str> =
        original["attachments"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
    assert_eq!(names, ["1.png", "2.png"]);
    let served =
        reqwest::get(original["attachments"][0]["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
    assert_eq!(served.to_vec(), png(7));

    // Second acknowledgement: 40060.
    let Seen::SecondAck(second) = next(&mut rx).await else { panic!("expected second ack") };
    assert!(second.contains("40060"), "{second}");
    // Followup parses, mention resolved.
    let Seen::Followup(followup) = next(&mut rx).await else { panic!("expected followup") };
    let followup = followup.expect("followup parses");
    assert_eq!(followup.mentions.len(), 1);
    assert_eq!(discord.followups(&token).len(), 1);

    // Ephemeral reply keeps flags 64.
    let b2 = InteractionBuilder::command("secret");
    discord.dispatch_interaction(b2.build()).await;
    assert!(matches!(next(&mut rx).await, Seen::Command(_)));
    let msg = discord.wait_original(&b2.token(), WAIT, |_| true).await.expect("ephemeral original");
    assert_eq!(msg["flags"].as_u64().unwrap() & 64, 64);

    // Channel message fallback (multipart) parses in serenity.
    let sent = ChannelId::new(DEFAULT_CHANNEL_ID)
        .send_message(
            &http,
            CreateMessage::new()
                .content("<@1180000000000000300> your images")
                .add_file(CreateAttachment::bytes(png(9), "a.png")),
        )
        .await
        .expect("channel message");
    assert_eq!(sent.attachments.len(), 1);
    assert_eq!(sent.mentions.len(), 1);
    assert_eq!(discord.channel_messages(DEFAULT_CHANNEL_ID).len(), 1);

    // Scripted failures surface as serenity errors.
    discord.fail_next(
        "POST",
        "/channels/",
        429,
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}),
    );
    let err = ChannelId::new(DEFAULT_CHANNEL_ID).say(&http, "hi").await.expect_err("429");
    assert!(format!("{err:?}").contains("429"), "{err:?}");
    let expired = InteractionBuilder::command("secret");
    discord.dispatch_interaction(expired.build()).await;
    assert!(matches!(next(&mut rx).await, Seen::Command(_)));
    discord.expire_token(&expired.token());
    let err = http.get_original_interaction_response(&expired.token()).await.expect_err("expired token");
    assert!(format!("{err:?}").contains("50027"), "{err:?}");

    // Disconnect: serenity resumes and still receives interactions.
    discord.disconnect_gateway();
    assert!(discord.wait_resumed(1, Duration::from_secs(10)).await, "RESUME");
    let b3 = InteractionBuilder::command("secret");
    discord.dispatch_interaction(b3.build()).await;
    let Seen::Command(cmd3) = next(&mut rx).await else { panic!("expected command after resume") };
    assert_eq!(cmd3.id.get(), b3.id());

    shard_manager.shutdown_all().await;
}

#[tokio::test]
async fn shortapi_standin_scripted_jobs() {
    let api = ShortApiStandIn::start().await;
    api.script("broken", Behaviour::MalformedQueryThenSucceed { times: 1 });
    api.script("refused", Behaviour::CreateError { code: 1001, message: "insufficient balance".into() });
    api.add_image("a.png", png(1), "image/png");
    let source = api.image_url("a.png");
    let http = reqwest::Client::new();
    let create = |prompt: &str, key: &str| {
        http.post(format!("{}/api/v1/job/create", api.base_url()))
            .bearer_auth(key)
            .json(&json!({
                "model": "midjourney/midjourney-v7/image-to-image",
                "args": {
                    "mode": "fast",
                    "prompt": prompt,
                    "aspect_ratio": "16:9",
                    "image_urls": [source],
                    "chaos": 20
                }
            }))
            .send()
    };
    let query = |id: &str| {
        http.get(format!("{}/api/v1/job/query", api.base_url()))
            .query(&[("id", id)])
            .bearer_auth(shortapi::DEFAULT_API_KEY)
            .send()
    };

    let resp: Value = create("a cozy nook", shortapi::DEFAULT_API_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(resp["code"], json!(0));
    assert_eq!(resp["data"]["amount"], json!("0.04"));
    let job = resp["data"]["job_id"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..3 {
        last = query(&job).await.unwrap().json().await.unwrap();
        statuses.push(last["data"]["status"].clone());
    }
    assert_eq!(statuses, [json!(0), json!(1), json!(2)]);
    let images = last["data"]["result"]["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 4);
    let mut seen = Vec::new();
    for img in &images {
        let bytes = reqwest::get(img["url"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(bytes.len(), 2048);
        assert!(!seen.contains(&bytes), "images differ");
        seen.push(bytes);
    }
    assert_eq!(api.downloads(), 5, "the provider's download of the input, then the four results");
    assert_eq!(api.fetched_inputs(), [(source.clone(), 200)]);
    let c = &api.creates()[0];
    assert_eq!(c.header("authorization"), Some("Bearer test-shortapi-key"));
    assert_eq!(c.job_id.as_deref(), Some(job.as_str()));
    assert_eq!(c.args()["chaos"], json!(20));
    assert_eq!(api.queries().len(), 3);

    // Validation, auth, scripted errors, unknown job.
    let bad: Value = create("sci-fi city", shortapi::DEFAULT_API_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(bad["code"], json!(400), "{bad}");
    let unauthorized = create("ok", "wrong").await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let refused: Value = create("refused please", shortapi::DEFAULT_API_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(refused, json!({"code": 1001, "info": "insufficient balance"}));
    let unknown: Value = query("nope").await.unwrap().json().await.unwrap();
    assert_eq!(unknown["code"], json!(404));

    // Malformed query once, then 0, 1, 2.
    let resp: Value = create("broken", shortapi::DEFAULT_API_KEY).await.unwrap().json().await.unwrap();
    let job = resp["data"]["job_id"].as_str().unwrap().to_string();
    let text = query(&job).await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let v: Value = query(&job).await.unwrap().json().await.unwrap();
        statuses.push(v["data"]["status"].clone());
    }
    assert_eq!(statuses, [json!(0), json!(1), json!(2)]);

    // tiny_png sizes.
    for size in [50, 90, 91, 2048, 100_000] {
        let p = ShortApiStandIn::tiny_png(size);
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n"));
        if size >= 91 {
            assert_eq!(p.len(), size);
        }
    }
}

struct AckHandler {
    label: usize,
    tx: mpsc::UnboundedSender<(usize, u64, Result<(), String>)>,
}

#[serenity::async_trait]
impl EventHandler for AckHandler {
    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(cmd) = interaction else {
            return;
        };
        let res = cmd
            .create_response(&ctx.http, CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()))
            .await
            .map_err(|e| format!("{e:?}"));
        let _ = self.tx.send((self.label, cmd.id.get(), res));
    }
}

async fn start_client(
    discord: &DiscordStandIn,
    label: usize,
    shard: Option<(u32, u32)>,
    tx: mpsc::UnboundedSender<(usize, u64, Result<(), String>)>,
) -> std::sync::Arc<serenity::gateway::ShardManager> {
    let http = HttpBuilder::new("test-token").proxy(discord.proxy_url()).ratelimiter_disabled(true).build();
    let mut client = ClientBuilder::new_with_http(http, GatewayIntents::empty())
        .event_handler(AckHandler { label, tx })
        .await
        .expect("client");
    let manager = client.shard_manager.clone();
    tokio::spawn(async move {
        let _ = match shard {
            Some((id, total)) => client.start_shard(id, total).await,
            None => client.start().await,
        };
    });
    manager
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_one_shard_all_receive_and_shards_split_guilds() {
    // Two processes on shard [0, 1]: both get the interaction, the second ack is refused.
    let discord = DiscordStandIn::start().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let m1 = start_client(&discord, 1, None, tx.clone()).await;
    let m2 = start_client(&discord, 2, None, tx.clone()).await;
    assert!(discord.wait_ready_count(2, WAIT).await);
    let b = InteractionBuilder::command("imagine");
    discord.dispatch_interaction(b.build()).await;
    let mut results = Vec::new();
    for _ in 0..2 {
        let (label, id, res) = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(id, b.id());
        results.push((label, res));
    }
    assert_eq!(results.iter().filter(|(_, r)| r.is_ok()).count(), 1, "{results:?}");
    let refused = results.iter().find_map(|(_, r)| r.clone().err()).unwrap();
    assert!(refused.contains("40060"), "{refused}");
    let deferred = discord.original_message(&b.token()).unwrap();
    assert_eq!(deferred["flags"].as_u64().unwrap() & 128, 128, "loading");
    assert_eq!(discord.acknowledged_with(b.id()), Some(5));
    m1.shutdown_all().await;
    m2.shutdown_all().await;

    // Two processes splitting two shards: each guild's interaction reaches one process only.
    let discord = DiscordStandIn::start().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let m0 = start_client(&discord, 0, Some((0, 2)), tx.clone()).await;
    let m1 = start_client(&discord, 1, Some((1, 2)), tx.clone()).await;
    assert!(discord.wait_ready_count(2, WAIT).await);
    let guilds = [discord::DEFAULT_GUILD_ID, discord::DEFAULT_GUILD_ID + (1 << 22)];
    for guild in guilds {
        let b = InteractionBuilder::command("imagine").guild(guild);
        discord.dispatch_interaction(b.build()).await;
        let (label, id, res) = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(id, b.id());
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(label as u64, discord::shard_for_guild(Some(guild), 2));
    }
    // One more interaction per guild: a connection delivers in order, so once each process has
    // answered its own, it has read everything dispatched to it before, and the handler of an
    // interaction of the other shard would have started before this one's.
    let last: Vec<InteractionBuilder> =
        guilds.iter().map(|g| InteractionBuilder::command("imagine").guild(*g)).collect();
    for b in &last {
        discord.dispatch_interaction(b.build()).await;
    }
    for _ in &last {
        let (label, id, res) = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert!(last.iter().any(|b| b.id() == id), "process {label} saw another shard's interaction");
        assert!(res.is_ok(), "{res:?}");
    }
    assert!(rx.try_recv().is_err(), "no process saw another shard's interaction");
    m0.shutdown_all().await;
    m1.shutdown_all().await;
}

/// Posts a message with one PNG (`fox.png`, `png(5)`) to the default channel, as the bot would;
/// returns the message.
async fn post_with_image(discord: &DiscordStandIn) -> Value {
    let form = reqwest::multipart::Form::new()
        .text("payload_json", json!({"content": "a red fox"}).to_string())
        .part("files[0]", reqwest::multipart::Part::bytes(png(5)).file_name("fox.png").mime_str("image/png").unwrap());
    let response = reqwest::Client::new()
        .post(format!("{}/api/v10/channels/{DEFAULT_CHANNEL_ID}/messages", discord.proxy_url()))
        .header("Authorization", "Bot test-token")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Answers an interaction's callback over HTTP; returns the status and the JSON body, if any.
async fn answer(discord: &DiscordStandIn, interaction: &InteractionBuilder, body: Value) -> (u16, Value) {
    let url =
        format!("{}/api/v10/interactions/{}/{}/callback", discord.proxy_url(), interaction.id(), interaction.token());
    let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A text input of a modal, in its action row.
fn text_input(custom_id: &str, label: &str) -> Value {
    json!({"type": 1, "components": [{"type": 4, "custom_id": custom_id, "label": label, "style": 2}]})
}

#[tokio::test]
async fn modals_are_checked_like_discord() {
    let discord = DiscordStandIn::start().await;
    let message = post_with_image(&discord).await;
    let modal = |title: &str, rows: Vec<Value>| json!({"type": 9, "data": {"custom_id": "remix:1", "title": title, "components": rows}});
    let prompt = || text_input("prompt", "Prompt");
    let with = |field: &str, value: Value| {
        let mut row = prompt();
        row["components"][0][field] = value;
        row
    };
    // Each refused with 50035 and the field Discord names.
    let refused = [
        (modal("", vec![prompt()]), "title"),
        (modal(&"t".repeat(46), vec![prompt()]), "title"),
        (json!({"type": 9, "data": {"title": "Remix", "components": [prompt()]}}), "custom_id"),
        (modal("Remix", vec![]), "components"),
        (modal("Remix", (0..6).map(|i| text_input(&format!("p{i}"), "Prompt")).collect()), "components"),
        (modal("Remix", vec![text_input("prompt", &"l".repeat(46))]), "components.0.components.0.label"),
        (modal("Remix", vec![with("label", Value::Null)]), "components.0.components.0.label"),
        (modal("Remix", vec![with("style", json!(3))]), "components.0.components.0.style"),
        (modal("Remix", vec![with("custom_id", json!("x".repeat(101)))]), "components.0.components.0.custom_id"),
        (modal("Remix", vec![prompt(), prompt()]), "components.1.components.0.custom_id"),
        (modal("Remix", vec![with("max_length", json!(4001))]), "components.0.components.0.max_length"),
        (modal("Remix", vec![with("min_length", json!(-1))]), "components.0.components.0.min_length"),
        (modal("Remix", vec![with("value", json!("v".repeat(4001)))]), "components.0.components.0.value"),
        (
            modal(
                "Remix",
                vec![{
                    let mut row = with("max_length", json!(5));
                    row["components"][0]["value"] = json!("too long");
                    row
                }],
            ),
            "components.0.components.0.value",
        ),
        (modal("Remix", vec![with("placeholder", json!("p".repeat(101)))]), "components.0.components.0.placeholder"),
        (modal("Remix", vec![with("required", json!("yes"))]), "components.0.components.0.required"),
        (modal("Remix", vec![json!({"type": 1, "components": []})]), "components.0.components"),
        (
            modal(
                "Remix",
                vec![
                    json!({"type": 1, "components": [prompt()["components"][0], {"type": 4, "custom_id": "b", "label": "B", "style": 1}]}),
                ],
            ),
            "components.0.components",
        ),
        (modal("Remix", vec![json!({"type": 2, "style": 1, "label": "x", "custom_id": "b"})]), "components.0.type"),
    ];
    let press = InteractionBuilder::button_press(&message, "remix:1");
    discord.dispatch_interaction(press.build()).await;
    for (body, field) in &refused {
        let (status, error) = answer(&discord, &press, body.clone()).await;
        assert_eq!((status, &error["code"]), (400, &json!(50035)), "{body}: {error}");
        let at = format!("/errors/data/{}/_errors/0/code", field.replace('.', "/"));
        assert!(error.pointer(&at).is_some(), "{body}: {field} not named in {error}");
    }
    assert_eq!(discord.acknowledged_with(press.id()), None, "a refused modal acknowledges nothing");

    // A good one, every optional field at its limit: shown, recorded, no message made.
    let mut full = with("max_length", json!(4000));
    full["components"][0]["min_length"] = json!(0);
    full["components"][0]["value"] = json!("v".repeat(4000));
    full["components"][0]["required"] = json!(false);
    full["components"][0]["placeholder"] = json!("p".repeat(100));
    let rows = vec![
        full,
        text_input("negative", &"l".repeat(45)),
        text_input("c", "C"),
        text_input("d", "D"),
        text_input("e", "E"),
    ];
    let good = modal(&"t".repeat(45), rows);
    assert_eq!(answer(&discord, &press, good.clone()).await.0, 204);
    assert_eq!(discord.acknowledged_with(press.id()), Some(9));
    assert_eq!(discord.modal_for(press.id()), Some(good["data"].clone()));
    assert_eq!(discord.original_message(&press.token()), None, "a modal is no message");
    let (status, again) = answer(&discord, &press, json!({"type": 4, "data": {"content": "hi"}})).await;
    assert_eq!((status, &again["code"]), (400, &json!(40060)), "{again}");

    // Which answers Discord takes for which interaction.
    let command = InteractionBuilder::command("imagine");
    let submit = InteractionBuilder::modal_submit(&message, "remix:1", &[("prompt", "a blue fox")]);
    let from_command = InteractionBuilder::modal_submit(&Value::Null, "settings:1", &[("words", "gore")]);
    for interaction in [&command, &submit, &from_command] {
        discord.dispatch_interaction(interaction.build()).await;
    }
    let cases = [
        (&command, json!({"type": 6}), 400),
        (&command, json!({"type": 7, "data": {"content": "x"}}), 400),
        (&command, json!({"type": 1}), 400),
        (&submit, modal("Again", vec![prompt()]), 400),
        (&from_command, json!({"type": 7, "data": {"content": "x"}}), 400),
        (&from_command, json!({"type": 6}), 400),
        (&from_command, modal("Again", vec![prompt()]), 400),
        (&command, modal("Settings", vec![prompt()]), 204),
        (&submit, json!({"type": 7, "data": {"content": "remixing"}}), 204),
        (&from_command, json!({"type": 4, "data": {"content": "saved", "flags": 64}}), 204),
    ];
    for (interaction, body, expected) in cases {
        let (status, error) = answer(&discord, interaction, body.clone()).await;
        assert_eq!(status, expected, "{body}: {error}");
        if expected == 400 {
            assert_eq!(error["code"], 50035, "{error}");
            assert!(error.pointer("/errors/type/_errors/0/message").is_some(), "{error}");
        }
    }
    let no_modal = answer(&discord, &submit, json!({"type": 4})).await.1;
    assert_eq!(no_modal["code"], 40060, "{no_modal}");
    let (_, refused) = answer(&discord, &InteractionBuilder::command("x"), json!({"type": 9})).await;
    assert_eq!(refused["code"], 10062, "an interaction never dispatched is unknown: {refused}");
    assert_eq!(discord.original_message(&submit.token()).unwrap()["id"], message["id"], "7 updated the message");
    assert_eq!(discord.original_message(&submit.token()).unwrap()["content"], "remixing");
    assert_eq!(discord.acknowledged_with(command.id()), Some(9));
    assert_eq!(discord.modal_for(submit.id()), None);
}

#[tokio::test]
async fn a_modal_submit_is_shaped_like_discords() {
    let message = json!({"id": "1180000000000000777", "channel_id": discord::SECOND_CHANNEL_ID.to_string(),
                         "guild_id": discord::DEFAULT_GUILD_ID.to_string(), "content": "x"});
    let submit = InteractionBuilder::modal_submit(&message, "remix:1", &[("prompt", "a blue fox"), ("negative", "")]);
    let d = submit.build();
    assert_eq!(d["type"], 5);
    assert_eq!(
        d["data"],
        json!({"custom_id": "remix:1", "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a blue fox"}]},
            {"type": 1, "components": [{"type": 4, "custom_id": "negative", "value": ""}]}]})
    );
    assert_eq!(d["message"], message);
    assert_eq!(d["channel_id"], discord::SECOND_CHANNEL_ID.to_string());
    assert_eq!(d["guild_id"], discord::DEFAULT_GUILD_ID.to_string());
    assert_eq!(d["authorizing_integration_owners"], json!({"0": discord::DEFAULT_GUILD_ID.to_string()}));
    assert_eq!(d["member"]["user"]["id"], discord::DEFAULT_USER_ID.to_string());
    assert_eq!(d["token"], submit.token());
    let from_command = InteractionBuilder::modal_submit(&Value::Null, "settings:1", &[]).build();
    assert!(from_command.get("message").is_none(), "a modal a command opened has no message");
}

#[derive(Debug)]
enum ModalSeen {
    /// The press's answer with a modal.
    Opened(Result<(), String>),
    /// The submit: its custom id, its inputs, its message's attachment URL, the refusal of a
    /// modal as its answer and the update of the message.
    Submitted {
        custom_id: String,
        inputs: Vec<(String, String)>,
        attachment: String,
        modal: String,
        update: Result<(), String>,
    },
}

struct ModalHandler {
    tx: mpsc::UnboundedSender<ModalSeen>,
}

fn remix_modal() -> CreateModal {
    CreateModal::new("remix-modal:1", "Remix").components(vec![CreateActionRow::InputText(
        CreateInputText::new(InputTextStyle::Paragraph, "Prompt", "prompt").value("a red fox").max_length(1500),
    )])
}

#[serenity::async_trait]
impl EventHandler for ModalHandler {
    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Component(press) => {
                let opened = press.create_response(&ctx.http, CreateInteractionResponse::Modal(remix_modal())).await;
                let _ = self.tx.send(ModalSeen::Opened(opened.map_err(|e| e.to_string())));
            }
            Interaction::Modal(submit) => {
                let modal = submit.create_response(&ctx.http, CreateInteractionResponse::Modal(remix_modal())).await;
                let update = submit
                    .create_response(
                        &ctx.http,
                        CreateInteractionResponse::UpdateMessage(
                            CreateInteractionResponseMessage::new().content("remixing"),
                        ),
                    )
                    .await;
                let inputs = submit
                    .data
                    .components
                    .iter()
                    .flat_map(|row| &row.components)
                    .filter_map(|c| match c {
                        ActionRowComponent::InputText(input) => {
                            Some((input.custom_id.clone(), input.value.clone().unwrap_or_default()))
                        }
                        _ => None,
                    })
                    .collect();
                let attachment = submit.message.as_ref().map(|m| m.attachments[0].url.clone()).unwrap_or_default();
                let _ = self.tx.send(ModalSeen::Submitted {
                    custom_id: submit.data.custom_id.clone(),
                    inputs,
                    attachment,
                    modal: format!("{:?}", modal.expect_err("a modal cannot answer a modal submit")),
                    update: update.map_err(|e| e.to_string()),
                });
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modal_opened_by_a_press_comes_back_to_serenity_as_a_submit() {
    let discord = DiscordStandIn::start().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let http = HttpBuilder::new("test-token").proxy(discord.proxy_url()).ratelimiter_disabled(true).build();
    let mut client =
        ClientBuilder::new_with_http(http, GatewayIntents::empty()).event_handler(ModalHandler { tx }).await.unwrap();
    let shard_manager = client.shard_manager.clone();
    tokio::spawn(async move {
        let _ = client.start().await;
    });
    assert!(discord.wait_ready(WAIT).await);
    let message = post_with_image(&discord).await;
    let stale = message["attachments"][0]["url"].as_str().unwrap().to_owned();
    discord.advance_cdn_clock(Duration::from_secs(2 * 24 * 3600));

    // serenity's modal passes Discord's rules and is recorded; nothing is posted.
    let press = InteractionBuilder::button_press(&message, "remix:1");
    discord.dispatch_interaction(press.build()).await;
    let ModalSeen::Opened(opened) = tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap() else {
        panic!("expected the modal to open")
    };
    opened.expect("the modal is accepted");
    let modal = discord.modal_for(press.id()).expect("the modal is recorded");
    assert_eq!(modal["custom_id"], "remix-modal:1");
    assert_eq!(modal["components"][0]["components"][0]["value"], "a red fox");
    assert_eq!(discord.original_message(&press.token()), None);

    // The submit reaches serenity with its inputs and the message, URLs signed afresh; a modal
    // cannot answer it, an update of the message can.
    let submit = InteractionBuilder::modal_submit(&message, "remix-modal:1", &[("prompt", "a blue fox")]);
    discord.dispatch_interaction(submit.build()).await;
    let ModalSeen::Submitted { custom_id, inputs, attachment, modal, update } =
        tokio::time::timeout(WAIT, rx.recv()).await.unwrap().unwrap()
    else {
        panic!("expected the submit")
    };
    assert_eq!(custom_id, "remix-modal:1");
    assert_eq!(inputs, [("prompt".to_owned(), "a blue fox".to_owned())]);
    assert!(modal.contains("50035"), "{modal}");
    update.expect("the submit may update the message");
    assert_eq!(reqwest::get(&stale).await.unwrap().status(), 404);
    assert_ne!(attachment, stale);
    assert_eq!(reqwest::get(&attachment).await.unwrap().bytes().await.unwrap().to_vec(), png(5));
    assert_eq!(discord.acknowledged_with(submit.id()), Some(7));
    assert_eq!(discord.original_message(&submit.token()).unwrap()["content"], "remixing");
    shard_manager.shutdown_all().await;
}

#[tokio::test]
async fn refresh_urls_renews_message_attachments_only() {
    let discord = DiscordStandIn::start().await;
    let message = post_with_image(&discord).await;
    let url = message["attachments"][0]["url"].as_str().unwrap().to_owned();
    let ephemeral = discord.ephemeral_attachment("room.png", png(6), "image/png");
    assert!(
        ephemeral.contains(&format!("/ephemeral-attachments/{APP_ID}/")) && ephemeral.contains("?ex="),
        "{ephemeral}"
    );
    let served = reqwest::get(&ephemeral).await.unwrap();
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().to_vec(), png(6));
    let gone = |url: String| async move {
        let response = reqwest::get(&url).await.unwrap();
        response.status() == 404 && response.text().await.unwrap() == "This content is no longer available."
    };
    assert!(gone(ephemeral.replace("hm=", "hm=0")).await, "a tampered signature");
    assert!(gone(ephemeral.replace("room.png", "other.png")).await, "another file name");
    assert!(gone(url.replace("/attachments/", "/ephemeral-attachments/")).await, "another place");

    // A day later both are dead; refresh-urls renews the message's, not the command's.
    discord.advance_cdn_clock(Duration::from_secs(25 * 3600));
    assert!(gone(url.clone()).await && gone(ephemeral.clone()).await);
    let unknown = "https://cdn.discordapp.com/attachments/1/2/x.png?ex=1&is=1&hm=1&";
    let misnamed = url.replace("fox.png", "cat.png");
    let unsigned = url.split('?').next().unwrap().to_owned();
    let refresh = |auth: Option<&str>, body: Value| {
        let request = reqwest::Client::new()
            .post(format!("{}/api/v10/attachments/refresh-urls", discord.proxy_url()))
            .json(&body);
        let request = match auth {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let given = json!({"attachment_urls": [url, ephemeral, unknown, misnamed, unsigned]});
    let (status, body) = refresh(Some("Bot test-token"), given).await;
    assert_eq!(status, 200, "{body}");
    let refreshed = body["refreshed_urls"].as_array().unwrap();
    assert_eq!(refreshed.len(), 2, "only the message attachment, given twice: {body}");
    assert_eq!(refreshed[0]["original"], url);
    assert_eq!(refreshed[1]["original"], unsigned);
    for entry in refreshed {
        let fresh = entry["refreshed"].as_str().unwrap();
        assert_ne!(fresh, url);
        assert_eq!(reqwest::get(fresh).await.unwrap().bytes().await.unwrap().to_vec(), png(5));
    }

    // Discord's rules: a bot token, 1 to 50 strings.
    let one = json!({"attachment_urls": [url]});
    assert_eq!(refresh(None, one.clone()).await.0, 401);
    assert_eq!(refresh(Some("Bearer test-token"), one).await.0, 401);
    let many: Vec<String> = (0..51).map(|_| url.clone()).collect();
    for body in
        [json!({"attachment_urls": many}), json!({"attachment_urls": []}), json!({}), json!({"attachment_urls": [1]})]
    {
        let (status, error) = refresh(Some("Bot test-token"), body.clone()).await;
        assert_eq!((status, &error["code"]), (400, &json!(50035)), "{body}: {error}");
        assert!(error["errors"]["attachment_urls"].is_object(), "{error}");
    }
    let fifty: Vec<String> = (0..50).map(|_| url.clone()).collect();
    let (status, body) = refresh(Some("Bot test-token"), json!({"attachment_urls": fifty})).await;
    assert_eq!((status, body["refreshed_urls"].as_array().unwrap().len()), (200, 50));
    assert_eq!(discord.requests_matching("POST", "/attachments/refresh-urls").len(), 8, "every call is recorded");
}

#[tokio::test]
async fn the_provider_fails_a_job_whose_input_it_cannot_download_and_bills_it() {
    let api = ShortApiStandIn::start().await;
    let discord = DiscordStandIn::start().await;
    api.script("endless", Behaviour::NeverFinish);
    api.add_image("a.png", png(1), "image/png");
    let source = api.image_url("a.png");
    let gone = api.image_url("gone.png");
    let attached = discord.ephemeral_attachment("style.png", png(2), "image/png");
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody = format!("http://{}/o.png", closed.local_addr().unwrap());
    drop(closed);
    let http = reqwest::Client::new();
    let create = |prompt: &str, inputs: Value| {
        let mut args = json!({"mode": "fast", "prompt": prompt, "aspect_ratio": "1:1"});
        args.as_object_mut().unwrap().extend(inputs.as_object().unwrap().clone());
        let request = http
            .post(format!("{}/api/v1/job/create", api.base_url()))
            .bearer_auth(shortapi::DEFAULT_API_KEY)
            .json(&json!({"model": shortapi::MODEL, "args": args}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let query = |job: Value| {
        let request = http
            .get(format!("{}/api/v1/job/query", api.base_url()))
            .query(&[("id", job.as_str().unwrap())])
            .bearer_auth(shortapi::DEFAULT_API_KEY);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap()["data"].clone() }
    };

    // Every input is downloaded; a dead link fails the job, which is accepted and billed.
    let created = create("a fox", json!({"image_urls": [source, gone], "style_image_urls": [attached]})).await;
    assert_eq!((&created["code"], &created["data"]["amount"]), (&json!(0), &json!("0.04")), "{created}");
    assert_eq!(api.fetched_inputs(), [(source.clone(), 200), (gone.clone(), 404), (attached.clone(), 200)]);
    for _ in 0..2 {
        let data = query(created["data"]["job_id"].clone()).await;
        assert_eq!((&data["status"], &data["error"]), (&json!(3), &json!("could not download image_urls[1]: 404")));
    }
    let unreachable = create("a fox", json!({"image_urls": [source], "omni_image_url": nobody})).await;
    let data = query(unreachable["data"]["job_id"].clone()).await;
    assert_eq!(data["error"], "could not download omni_image_url: no answer", "{data}");
    assert_eq!(api.fetched_inputs().last(), Some(&(nobody, 0)));

    // With good inputs the script applies; a day later the command's attachment is gone.
    let endless = create("endless fox", json!({"image_urls": [source], "style_image_urls": [attached]})).await;
    assert_eq!(query(endless["data"]["job_id"].clone()).await["status"], 1);
    discord.advance_cdn_clock(Duration::from_secs(25 * 3600));
    let late = create("endless fox", json!({"image_urls": [source], "style_image_urls": [attached]})).await;
    assert_eq!(late["code"], 0);
    let data = query(late["data"]["job_id"].clone()).await;
    assert_eq!((&data["status"], &data["error"]), (&json!(3), &json!("could not download style_image_urls[0]: 404")));

    // A create that is refused downloads nothing.
    let before = api.fetched_inputs().len();
    let refused = create("a-fox", json!({"image_urls": [source]})).await;
    assert_eq!(refused["code"], 400);
    assert_eq!(api.fetched_inputs().len(), before);
}
