//! The README's operator path, followed as written: `.env` made from `.env.example` with the
//! values the README says to set, the portal's Public Bot turned off, `doctor`, then the bot,
//! against the stand-ins, until `/imagine` is answered. What the test adds is only what a test
//! needs: the stand-ins' addresses and a place of its own for the private PostgreSQL. The README
//! also names the test command CI runs and the service's install commands: they must be the same.

use std::{collections::HashMap, path::Path, time::Duration};

use crate::support::{
    self, WAIT,
    discord::{APP_ID, DiscordStandIn},
    pg::ScratchCluster,
    process::{self, BotProcess},
    shortapi::{self, ShortApiStandIn},
};

const README: &str = include_str!("../../README.md");
const ENV_EXAMPLE: &str = include_str!("../../.env.example");
const CI: &str = include_str!("../../.ci/run");
const UNIT: &str = include_str!("../../deploy/imagine-bot.service");

/// The README's operator part: from its first `## ` heading to the next.
fn operator_path() -> &'static str {
    let start = README.find("\n## ").expect("a first section");
    let end = README[start + 1..].find("\n## ").map_or(README.len(), |end| start + 1 + end);
    &README[start..end]
}

/// The fenced code blocks of `text`, in order.
fn code_blocks(text: &str) -> Vec<&str> {
    text.split("```").skip(1).step_by(2).map(|block| block.split_once('\n').map_or("", |(_, body)| body)).collect()
}

/// The commands of `blocks` (comments after `#` dropped), in order.
fn commands<'a>(blocks: &[&'a str]) -> Vec<&'a str> {
    blocks.iter().flat_map(|b| b.lines()).map(|l| l.split(" #").next().unwrap_or("").trim()).collect()
}

/// The arguments `cargo run --release [-- ARGS]` passes to the binary.
fn binary_args(command: &str) -> Vec<&str> {
    let rest = command.strip_prefix("cargo run --release").expect("a cargo run command");
    rest.trim().strip_prefix("--").map_or_else(Vec::new, |args| args.split_whitespace().collect())
}

/// `.env` as an operator makes it: `.env.example` with each setting written over the line that
/// names it, commented out or not.
fn edited_env(settings: &[(String, String)]) -> String {
    let mut lines: Vec<String> = ENV_EXAMPLE.lines().map(str::to_owned).collect();
    for (key, value) in settings {
        let line = lines
            .iter_mut()
            .find(|l| l.trim_start_matches('#').starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!("the README sets {key}, which .env.example does not name"));
        *line = format!("{key}={value}");
    }
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_path_as_written_ends_with_an_answered_imagine() {
    let blocks = code_blocks(operator_path());
    let commands = commands(&blocks);
    assert!(commands.contains(&"cp .env.example .env"), "the README copies .env.example: {commands:?}");
    let doctor = commands.iter().find(|c| c.ends_with(" doctor")).expect("the README runs doctor");
    let run_bot = commands.iter().find(|c| c.starts_with("cargo run") && binary_args(c).is_empty());
    let run_bot = run_bot.expect("the README runs the bot with one command");
    // Step 2's block: only KEY=value lines. The secrets come from the portal and ShortAPI.
    let settings_block = blocks
        .iter()
        .find(|b| {
            !b.trim().is_empty()
                && b.lines().all(|l| {
                    l.split_once('=').is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                })
        })
        .expect("a block of .env settings");
    let settings: Vec<(String, String)> = settings_block
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(key, value)| {
            let value = match key {
                "DISCORD_TOKEN" => support::DISCORD_TOKEN,
                "SHORTAPI_KEY" => shortapi::DEFAULT_API_KEY,
                _ => value,
            };
            (key.to_owned(), value.to_owned())
        })
        .collect();
    let keys: Vec<&str> = settings.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["DISCORD_TOKEN", "SHORTAPI_KEY", "DAILY_SPEND_LIMIT"]);

    let discord = DiscordStandIn::start().await;
    let shortapi = ShortApiStandIn::start().await;
    let cluster = ScratchCluster::new("readme-path");
    let clone = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-path-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&clone).unwrap();
    std::fs::write(clone.join(".env"), edited_env(&settings)).unwrap();
    let stand_ins: HashMap<String, String> = [
        ("DISCORD_PROXY_URL", discord.proxy_url()),
        ("SHORTAPI_BASE_URL", shortapi.base_url()),
        ("LOCAL_PG_DIR", cluster.dir.display().to_string()),
        ("LOCAL_PG_PORT", cluster.port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // Step 1 turned Public Bot off.
    discord.set_bot_public(false);

    let (ok, out) = process::run_to_end(&clone, &stand_ins, &binary_args(doctor)).await;
    assert!(ok, "{doctor}:\n{out}");
    assert!(out.contains("Everything looks right."), "{out}");
    let invite = operator_path()
        .lines()
        .find(|l| l.starts_with("https://discord.com/oauth2/authorize?"))
        .expect("the README shows the invite URL");
    assert!(out.contains(&invite.replace("YOUR_APP_ID", &APP_ID.to_string())), "{invite} in:\n{out}");

    let mut bot = BotProcess::spawn_in(&clone, &stand_ins, "readme-path");
    assert!(discord.wait_ready(WAIT).await, "{run_bot}:\n{}", bot.output());
    discord.wait_registered(WAIT).await.expect("the commands are registered");
    let imagine = support::imagine_command(&shortapi, "a lighthouse at dusk");
    discord.dispatch_interaction(imagine.build()).await;
    // The README's defaults: the first status query comes 5 s after the create.
    let answered = discord
        .wait_original(&imagine.token(), Duration::from_secs(60), |m| {
            m["content"].as_str().is_some_and(|c| c.contains("Done"))
        })
        .await;
    assert!(
        answered.is_some(),
        "/imagine was not answered: {:?}\n{}",
        discord.original_message(&imagine.token()),
        bot.output()
    );
    bot.terminate();
    assert!(bot.wait(WAIT).await.is_some_and(|status| status.success()), "{}", bot.output());
    let _ = std::fs::remove_dir_all(&clone);
}

#[test]
fn the_readme_gives_the_test_command_ci_runs_and_the_units_install_commands() {
    let readme_commands = commands(&code_blocks(README));
    let ci_test = CI.lines().find(|l| l.starts_with("cargo test")).expect(".ci/run runs the tests");
    assert!(readme_commands.contains(&ci_test), "the README gives {ci_test:?}");

    let unit_install: Vec<&str> = UNIT
        .lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .map(|l| l.split("   #").next().unwrap_or("").trim())
        .collect();
    let service = operator_path().split("### As a service").nth(1).expect("a service section");
    let readme_install = commands(&code_blocks(service)[..1]);
    assert_eq!(readme_install, unit_install, "the README and the unit's comments install it alike");
}
