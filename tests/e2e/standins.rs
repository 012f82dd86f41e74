//! Smoke tests proving the Discord and ShortAPI stand-ins are faithful enough for serenity 0.12.5
//! (used directly, without poise) and for a plain HTTP client.
//!
//! Longer than 400 lines on purpose: each stand-in behaviour a test relies on is proven here once,
//! against the real clients, in one place.

use std::time::Duration;

use serde_json::{Value, json};
use serenity::all::{
    ChannelId, ClientBuilder, Command, CommandDataOptionValue, CommandInteraction, CommandOptionType, Context,
    CreateAttachment, CreateCommand, CreateCommandOption, CreateInteractionResponse, CreateInteractionResponseFollowup,
    CreateInteractionResponseMessage, CreateMessage, EditInteractionResponse, EventHandler, GatewayIntents,
    HttpBuilder, Interaction, Message, Ready,
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
                    "image_urls": ["https://cdn.discordapp.com/a.png?ex=1&"],
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
    assert_eq!(api.downloads(), 4);
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
