//! `imagine-bot doctor`: checks the configuration, the database, the Discord token and
//! application, and the provider key, and prints a checklist with a fix for each failure.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use sqlx::Connection;

use crate::config::Config;

/// The permissions the invite URL asks for, and the integer the README names: see channels and
/// the command's message (View Channel, Read Message History: a late result is posted as a reply
/// to it), post results that outlived the interaction token, in channels and in their threads
/// (Send Messages, Send Messages in Threads), with embeds and uploaded images (Embed Links, Attach
/// Files). Interaction replies need no permission; nothing else is asked for.
const INVITE_PERMISSIONS: u64 = 274_878_024_704;

/// The URL that adds the bot to a server with the scopes and permissions it needs.
fn invite_url(application_id: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )
}

/// One line of the checklist.
struct Check {
    name: &'static str,
    outcome: Outcome,
}

enum Outcome {
    Passed(String),
    /// Works, but the operator should change something.
    Warning {
        problem: String,
        fix: String,
    },
    Failed {
        problem: String,
        fix: String,
    },
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, outcome: Outcome::Passed(detail.into()) }
    }

    fn warn(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, outcome: Outcome::Warning { problem: problem.into(), fix: fix.into() } }
    }

    fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, outcome: Outcome::Failed { problem: problem.into(), fix: fix.into() } }
    }

    fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// Runs every check, prints the checklist, and returns whether everything passed.
pub async fn run() -> bool {
    println!("imagine-bot doctor");
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            print(&Check::fail(
                "configuration",
                e.to_string(),
                "set it in .env or the environment; .env.example documents every variable",
            ));
            println!("\nFix the configuration first; the other checks need it.");
            return false;
        }
    };
    let mut checks = vec![
        Check::ok("configuration", "every setting is present and well-formed"),
        database(&config).await,
        discord(&config).await,
    ];
    // A rejected token would only fail the same way twice.
    if !checks.last().is_some_and(Check::failed) {
        checks.extend(application(&config).await);
    }
    checks.push(provider(&config).await);
    for check in &checks {
        print(check);
    }
    let failures = checks.iter().filter(|c| c.failed()).count();
    let warnings = checks.iter().filter(|c| matches!(c.outcome, Outcome::Warning { .. })).count();
    match (failures, warnings) {
        (0, 0) => println!("\nEverything looks right."),
        (0, _) => println!("\nEverything works; {warnings} warning(s) above."),
        _ => println!("\n{failures} problem(s) found."),
    }
    failures == 0
}

fn print(check: &Check) {
    match &check.outcome {
        Outcome::Passed(detail) => println!("  ✓ {}: {detail}", check.name),
        Outcome::Warning { problem, fix } => {
            println!("  ! {}: {problem}", check.name);
            println!("      fix: {fix}");
        }
        Outcome::Failed { problem, fix } => {
            println!("  ✗ {}: {problem}", check.name);
            println!("      fix: {fix}");
        }
    }
}

async fn database(config: &Config) -> Check {
    const NAME: &str = "database";
    let opened = match tokio::time::timeout(Duration::from_secs(90), crate::open_database(config)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            let fix = if crate::localpg::server_binaries().is_err() {
                "install PostgreSQL (apt-get install postgresql) or set DATABASE_URL"
            } else {
                "do what the line above says, or set DATABASE_URL to use another PostgreSQL"
            };
            return Check::fail(NAME, format!("could not start the local PostgreSQL: {e:#}"), fix);
        }
        Err(_) => {
            return Check::fail(
                NAME,
                "starting the local PostgreSQL took too long",
                "check LOCAL_PG_DIR and its server.log",
            );
        }
    };
    let check = check_database(&opened.url).await;
    // A local cluster doctor had to start is stopped again: doctor leaves things as it found them.
    let Some(dir) = opened.started_cluster else { return check };
    let stop = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || crate::localpg::stop_cluster(&dir)).await
    };
    match (check, stop) {
        (Check { outcome: Outcome::Passed(detail), .. }, Ok(Ok(()))) => {
            Check::ok(NAME, format!("{detail} (the local cluster was started for this check, and stopped)"))
        }
        (check, Ok(Ok(()))) => check,
        (_, Ok(Err(e))) => Check::fail(
            NAME,
            format!("could not stop the local PostgreSQL it started: {e:#}"),
            format!("stop it with: pg_ctl stop -D {}", dir.display()),
        ),
        (_, Err(_)) => Check::fail(
            NAME,
            "could not stop the local PostgreSQL it started",
            format!("stop it with: pg_ctl stop -D {}", dir.display()),
        ),
    }
}

/// Connects to `url` and reports the server's version and the migrations it lacks.
async fn check_database(url: &str) -> Check {
    const NAME: &str = "database";
    let connect = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(url)).await;
    let mut conn = match connect {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return Check::fail(
                NAME,
                format!("could not connect: {}", database_error(&e)),
                "check DATABASE_URL (host, port, user, password, database name) and that PostgreSQL is running",
            );
        }
        Err(_) => {
            return Check::fail(NAME, "no answer within 5 s", "check DATABASE_URL's host and port, and any firewall");
        }
    };
    let version = crate::db::server_version(&mut conn).await.unwrap_or_default();
    // A database the bot never started on has no migrations table yet: none applied.
    let applied = crate::db::applied_migrations(&mut conn).await.unwrap_or(0);
    let _ = conn.close().await;
    let known = i64::try_from(crate::db::MIGRATOR.migrations.len()).unwrap_or(i64::MAX);
    let migrations = if applied >= known {
        "migrations up to date".to_owned()
    } else {
        format!("{} migration(s) will be applied when the bot starts", known - applied)
    };
    Check::ok(NAME, format!("connected to PostgreSQL {version}; {migrations}"))
}

/// A database error without the connection string.
fn database_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// `GET {base}/api/v10/{path}` with the bot token; a failure is the problem and its fix.
async fn discord_get(config: &Config, path: &str) -> Result<reqwest::Response, (String, String)> {
    let base = config.discord_proxy_url.as_deref().unwrap_or("https://discord.com");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client builds");
    let response = client
        .get(format!("{base}/api/v10/{path}"))
        .header("Authorization", format!("Bot {}", config.discord_token.expose_secret()))
        .send()
        .await;
    match response {
        Err(e) => Err((
            format!("could not reach {base}: {}", if e.is_timeout() { "timed out" } else { "connection failed" }),
            "check the network, or DISCORD_PROXY_URL if you use a proxy".into(),
        )),
        Ok(r) if r.status().as_u16() == 401 => Err((
            "DISCORD_TOKEN was rejected (HTTP 401)".into(),
            "reset the token in the developer portal (Bot tab) and put the new one in DISCORD_TOKEN".into(),
        )),
        Ok(r) if !r.status().is_success() => Err((
            format!("Discord answered HTTP {}", r.status().as_u16()),
            "try again in a minute; if it persists, check Discord's status page".into(),
        )),
        Ok(r) => Ok(r),
    }
}

async fn discord(config: &Config) -> Check {
    const NAME: &str = "Discord";
    match discord_get(config, "users/@me").await {
        Err((problem, fix)) => Check::fail(NAME, problem, fix),
        Ok(r) => {
            let user: Value = r.json().await.unwrap_or(Value::Null);
            let name = user["username"].as_str().unwrap_or("the bot");
            Check::ok(NAME, format!("the token belongs to {name}"))
        }
    }
}

/// What doctor reads of the application object.
#[derive(Deserialize)]
struct Application {
    #[serde(deserialize_with = "snowflake")]
    id: u64,
    bot_public: bool,
}

/// Discord sends ids as strings (they exceed what JSON numbers hold exactly).
fn snowflake<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
}

/// The application behind the token: its id and invite URL, and a warning when anyone may add it.
async fn application(config: &Config) -> Vec<Check> {
    const NAME: &str = "Discord application";
    let response = match discord_get(config, "applications/@me").await {
        Ok(response) => response,
        Err((problem, fix)) => return vec![Check::fail(NAME, problem, fix)],
    };
    let Ok(app) = response.json::<Application>().await else {
        return vec![Check::fail(
            NAME,
            "Discord's answer did not describe an application",
            "check DISCORD_PROXY_URL: it must forward to https://discord.com unchanged",
        )];
    };
    let mut checks = vec![Check::ok(NAME, format!("id {}\n      invite it with: {}", app.id, invite_url(app.id)))];
    if app.bot_public {
        checks.push(Check::warn(
            NAME,
            "Public Bot is on: anyone who gets the invite link can add the bot to their server, and its jobs are paid \
             with your ShortAPI key",
            "in the developer portal, Installation tab: set Install Link to None and save; then Bot tab: turn Public \
             Bot off and save (Discord refuses the second while an install link exists)",
        ));
    }
    checks
}

async fn provider(config: &Config) -> Check {
    const NAME: &str = "ShortAPI";
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client builds");
    // Querying a job that does not exist costs nothing and tells a good key from a bad one.
    let response = client
        .get(format!("{}/api/v1/job/query", config.shortapi_base_url))
        .query(&[("id", "imagine-bot-doctor")])
        .bearer_auth(config.shortapi_key.expose_secret())
        .send()
        .await;
    let rejected = || {
        Check::fail(
            NAME,
            "SHORTAPI_KEY was rejected",
            "copy a valid key from your ShortAPI dashboard into SHORTAPI_KEY",
        )
    };
    match response {
        Err(e) => Check::fail(
            NAME,
            format!(
                "could not reach {}: {}",
                config.shortapi_base_url,
                if e.is_timeout() { "timed out" } else { "connection failed" }
            ),
            "check the network, or SHORTAPI_BASE_URL",
        ),
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => rejected(),
        Ok(r) if r.status().is_server_error() => Check::fail(
            NAME,
            format!("the provider answered HTTP {}", r.status().as_u16()),
            "the provider may be down; try again later",
        ),
        Ok(r) => {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if matches!(body["code"].as_i64(), Some(401 | 403)) {
                rejected()
            } else {
                Check::ok(NAME, "reachable, and the key is accepted")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serenity::all::Permissions;

    use super::*;

    #[test]
    fn the_invite_asks_for_what_the_bot_does_in_channels() {
        let used = Permissions::VIEW_CHANNEL
            | Permissions::READ_MESSAGE_HISTORY
            | Permissions::SEND_MESSAGES
            | Permissions::SEND_MESSAGES_IN_THREADS
            | Permissions::EMBED_LINKS
            | Permissions::ATTACH_FILES;
        assert_eq!(INVITE_PERMISSIONS, used.bits());
    }

    #[test]
    fn the_readme_names_the_same_permissions() {
        let readme = include_str!("../README.md");
        assert!(readme.contains(&format!("permissions={INVITE_PERMISSIONS}")), "the README's invite URL");
        for name in Permissions::from_bits_truncate(INVITE_PERMISSIONS).get_permission_names() {
            assert!(readme.contains(&format!("| {name} (")), "the README's table lists {name}");
        }
    }
}
