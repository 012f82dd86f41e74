//! The container files (`Dockerfile`, `.dockerignore`, `docker-compose.yml`) are read as text and
//! checked for the invariants self-hosting relies on: a cached multi-stage release build that needs
//! no database, a small non-root runtime image without secrets, and a compose file that starts the
//! bot only once its PostgreSQL is healthy. No Docker engine is needed.
//!
//! Longer than 400 lines on purpose: a small Dockerfile reader (stages, instructions, COPY parts)
//! and every invariant live together, so a failure message and the rule it checks sit side by side.

use std::path::{Path, PathBuf};

const BINARY: &str = "/usr/local/bin/imagine-bot";
const SECRETS: [&str; 3] = ["DISCORD_TOKEN", "SHORTAPI_KEY", "DATABASE_URL"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    let path = root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One instruction, with line continuations joined and comments removed.
#[derive(Debug, Clone)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

impl Instruction {
    /// The words of the arguments, without `--flag` options.
    fn words(&self) -> Vec<&str> {
        self.args.split_whitespace().filter(|w| !w.starts_with("--")).collect()
    }

    /// `--name=value` of this instruction, if given.
    fn flag(&self, name: &str) -> Option<&str> {
        let prefix = format!("--{name}=");
        self.args.split_whitespace().find_map(|w| w.strip_prefix(prefix.as_str()))
    }

    /// COPY/ADD sources (every word but the destination) and destination.
    fn copy_parts(&self) -> (Vec<&str>, &str) {
        let words = self.words();
        let (dest, sources) =
            words.split_last().unwrap_or_else(|| panic!("line {}: COPY without arguments", self.line));
        (sources.to_vec(), dest)
    }
}

#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    line: usize,
    body: Vec<Instruction>,
}

impl Stage {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("stage `{name}` (FROM {}, line {})", self.image, self.line),
            None => format!("stage FROM {} (line {})", self.image, self.line),
        }
    }

    fn all(&self, keyword: &str) -> impl Iterator<Item = (usize, &Instruction)> {
        self.body.iter().enumerate().filter(move |(_, i)| i.keyword == keyword)
    }

    /// Index of the first RUN whose command contains `needle`.
    fn run_index(&self, needle: &str) -> Option<usize> {
        self.all("RUN").find(|(_, i)| i.args.contains(needle)).map(|(n, _)| n)
    }
}

fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        let (content, continues) = match trimmed.strip_suffix('\\') {
            Some(head) => (head, true),
            None => (trimmed, false),
        };
        acc.push(' ');
        acc.push_str(content);
        if continues {
            pending = Some((start, acc));
            continue;
        }
        let acc = acc.trim();
        if acc.is_empty() {
            continue;
        }
        let (keyword, args) = acc.split_once(char::is_whitespace).unwrap_or((acc, ""));
        out.push(Instruction { line: start, keyword: keyword.to_ascii_uppercase(), args: args.trim().to_string() });
    }
    assert!(pending.is_none(), "Dockerfile ends inside a line continuation (a trailing `\\`)");
    out
}

fn stages() -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in parse_dockerfile(&read("Dockerfile")) {
        if instruction.keyword == "FROM" {
            let words = instruction.words();
            let image = words.first().unwrap_or_else(|| panic!("line {}: FROM without an image", instruction.line));
            let name = match words.as_slice() {
                [_, kw, name] if kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage { image: image.to_string(), name, line: instruction.line, body: Vec::new() });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(instruction);
        } else if instruction.keyword != "ARG" {
            panic!("line {}: {} before the first FROM", instruction.line, instruction.keyword);
        }
    }
    stages
}

fn final_stage(stages: &[Stage]) -> &Stage {
    stages.last().expect("the Dockerfile has no FROM at all")
}

/// The stage that runs the release build of the bot.
fn builder(stages: &[Stage]) -> &Stage {
    stages.iter().find(|s| s.run_index("cargo build").is_some()).expect(
        "no stage runs `cargo build`: the image must build the bot from source with `cargo build --release --locked`",
    )
}

/// `major.minor` from a version text such as `1.89`, `1.89.0` or `1.89-slim-bookworm`.
fn major_minor(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn crate_rust_version() -> (u32, u32) {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("rust-version"))
        .expect("Cargo.toml has no rust-version: the Docker toolchain pin is checked against it");
    let value = line.split('"').nth(1).expect("rust-version in Cargo.toml is not a quoted string");
    major_minor(value).unwrap_or_else(|| panic!("cannot read rust-version {value:?} from Cargo.toml"))
}

#[test]
fn the_image_is_a_multi_stage_build_on_pinned_bases() {
    let stages = stages();
    assert!(
        stages.len() >= 2,
        "the Dockerfile has {} FROM stage(s); it needs a Rust build stage and a separate small runtime stage",
        stages.len()
    );

    let mut names: Vec<&str> = Vec::new();
    for stage in &stages {
        if !names.contains(&stage.image.as_str()) {
            let image = stage.image.as_str();
            let tag = image.rsplit_once(':').map(|(_, tag)| tag).filter(|tag| !tag.contains('/'));
            assert!(
                image.contains("@sha256:") || tag.is_some_and(|t| !t.starts_with("latest")),
                "{}: base image `{image}` is not pinned to a tag (a missing or `latest` tag changes under you)",
                stage.label()
            );
        }
        if let Some(name) = &stage.name {
            names.push(name);
        }
    }

    let (need_major, need_minor) = crate_rust_version();
    let rust = stages
        .iter()
        .find_map(|s| {
            s.image.strip_prefix("rust:").or_else(|| s.image.split_once("cargo-chef:").and_then(|(_, t)| t.split_once("rust-")).map(|(_, v)| v))
        })
        .expect("no stage starts FROM an official `rust:<version>` (or `lukemathwalker/cargo-chef:<v>-rust-<version>`) image");
    let have = major_minor(rust).unwrap_or_else(|| panic!("the Rust base image tag `{rust}` names no Rust version"));
    assert!(
        have >= (need_major, need_minor),
        "the Rust base image `{rust}` is older than Cargo.toml's rust-version {need_major}.{need_minor}"
    );

    let last = final_stage(&stages);
    assert!(
        !last.image.starts_with("rust:") && !last.image.contains("cargo-chef"),
        "{}: the runtime stage must not ship the Rust toolchain; use a small base such as debian:bookworm-slim",
        last.label()
    );
}

#[test]
fn dependencies_are_cached_with_a_pinned_cargo_chef() {
    let stages = stages();
    assert!(
        stages.iter().any(|s| s.run_index("cargo chef prepare").is_some()),
        "no stage runs `cargo chef prepare --recipe-path recipe.json` (the planner)"
    );

    let installed_pinned = stages.iter().flat_map(|s| s.all("RUN")).any(|(_, run)| {
        run.args.contains("cargo install cargo-chef")
            && (run.args.contains("--version") || run.args.contains("cargo-chef@"))
    });
    let image_pinned = stages.iter().any(|s| {
        s.image.split_once("cargo-chef:").is_some_and(|(_, tag)| tag.starts_with(|c: char| c.is_ascii_digit()))
    });
    assert!(
        installed_pinned || image_pinned,
        "cargo-chef is not pinned: install it with `cargo install cargo-chef --locked --version X` or use a \
         `lukemathwalker/cargo-chef:<version>-rust-...` image"
    );

    let stage = builder(&stages);
    let cook = stage
        .run_index("cargo chef cook")
        .unwrap_or_else(|| panic!("{}: builds the bot without a `cargo chef cook` dependency layer", stage.label()));
    assert!(
        stage.body[cook].args.contains("--release"),
        "line {}: `cargo chef cook` lacks --release, so the cached dependencies do not serve the release build",
        stage.body[cook].line
    );
    let build = stage.run_index("cargo build").expect("builder stage runs cargo build");
    assert!(cook < build, "{}: `cargo chef cook` must run before `cargo build`", stage.label());
    for (_, copy) in stage.all("COPY").filter(|(n, _)| *n < cook) {
        let (sources, _) = copy.copy_parts();
        assert!(
            copy.flag("from").is_some() || !sources.iter().any(|s| s.trim_end_matches('/') == "src" || *s == "."),
            "line {}: the source code is copied before `cargo chef cook`, so every code change \
             rebuilds all dependencies",
            copy.line
        );
    }
}

#[test]
fn the_release_build_is_locked_and_sees_the_migrations() {
    let stages = stages();
    let stage = builder(&stages);
    let build = stage.run_index("cargo build --release --locked").unwrap_or_else(|| {
        panic!(
            "{}: the bot must be built with `cargo build --release --locked` (release, exact Cargo.lock)",
            stage.label()
        )
    });
    let copied_before: Vec<String> = stage
        .all("COPY")
        .filter(|(n, c)| *n < build && c.flag("from").is_none())
        .flat_map(|(_, c)| c.copy_parts().0.into_iter().map(|s| s.trim_end_matches('/').to_string()))
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src", "migrations", ".sqlx", "assets"] {
        assert!(
            copied_before.iter().any(|s| s == needed || s == "."),
            "{}: `{needed}` is not copied before `cargo build` (sqlx::migrate!() embeds migrations/ and the \
             query macros read .sqlx/ at compile time; build.rs and Cargo.lock are part of the build)",
            stage.label()
        );
    }
}

#[test]
fn the_release_build_needs_no_database() {
    let stages = stages();
    let stage = builder(&stages);
    let offline = stage.all("ENV").any(|(_, env)| {
        let args = env.args.replace(' ', "=");
        args.contains("SQLX_OFFLINE=true") || args.contains("SQLX_OFFLINE=\"true\"")
    });
    assert!(
        offline,
        "{}: set `ENV SQLX_OFFLINE=true` so the query macros read .sqlx/ instead of a database",
        stage.label()
    );
    // Every compile-checked query has its offline data committed: one file per distinct query.
    let queries = std::fs::read_dir(root().join(".sqlx")).expect(".sqlx/ is committed").count();
    assert!(queries >= 20, ".sqlx/ holds only {queries} queries; run scripts/prepare-sqlx");
}

#[test]
fn the_runtime_stage_runs_the_bot_as_a_non_root_user() {
    let stages = stages();
    let last = final_stage(&stages);

    let (_, user) = last
        .all("USER")
        .last()
        .unwrap_or_else(|| panic!("{}: no USER directive, so the bot would run as root", last.label()));
    let name = user.args.split(':').next().unwrap_or("").trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "line {}: `USER {}` runs the bot as root; use a fixed unprivileged UID such as 10001",
        user.line,
        user.args
    );

    let copies_binary = last.all("COPY").any(|(_, c)| {
        let (sources, dest) = c.copy_parts();
        c.flag("from").is_some()
            && sources.iter().any(|s| s.ends_with("/imagine-bot"))
            && (dest == BINARY || dest.trim_end_matches('/') == "/usr/local/bin")
    });
    assert!(
        copies_binary,
        "{}: the runtime stage does not copy the built `imagine-bot` binary to {BINARY} from the build stage",
        last.label()
    );

    let (_, entrypoint) = last.all("ENTRYPOINT").last().unwrap_or_else(|| panic!("{}: no ENTRYPOINT", last.label()));
    let argv: Vec<String> = serde_json::from_str(&entrypoint.args).unwrap_or_else(|e| {
        panic!(
            "line {}: ENTRYPOINT {} is not the exec (JSON array) form ({e}); with a shell in between, SIGTERM does \
             not reach the bot and it cannot drain",
            entrypoint.line, entrypoint.args
        )
    });
    assert_eq!(
        argv.first().map(String::as_str),
        Some(BINARY),
        "line {}: ENTRYPOINT does not run {BINARY}",
        entrypoint.line
    );
}

#[test]
fn the_runtime_stage_declares_a_healthcheck() {
    let stages = stages();
    let last = final_stage(&stages);
    let (_, check) = last
        .all("HEALTHCHECK")
        .last()
        .unwrap_or_else(|| panic!("{}: no HEALTHCHECK, so an orchestrator cannot tell a hung bot", last.label()));
    let (_, command) = check
        .args
        .split_once("CMD ")
        .unwrap_or_else(|| panic!("line {}: HEALTHCHECK {} has no CMD (NONE disables it)", check.line, check.args));
    let argv: Vec<String> = serde_json::from_str(command.trim()).unwrap_or_else(|e| {
        panic!("line {}: the HEALTHCHECK command is not the exec (JSON array) form ({e}); the image has no shell tools to rely on", check.line)
    });
    assert_eq!(
        argv.first().map(String::as_str),
        Some(BINARY),
        "line {}: the HEALTHCHECK does not ask the bot's own binary",
        check.line
    );
    // `healthcheck` asks /readyz: a bot that is up but cannot serve (no database, a shard down,
    // commands not registered) is unhealthy. `--live` would only ask whether the process is up.
    assert_eq!(
        argv.iter().skip(1).map(String::as_str).collect::<Vec<_>>(),
        ["healthcheck"],
        "line {}: the HEALTHCHECK must ask whether the bot serves (`healthcheck`, i.e. /readyz)",
        check.line
    );
    // Starting takes migrations, the gateway and the commands' registration (retried while
    // Discord refuses): failures before then must not count.
    let start_period = check.flag("start-period").and_then(seconds);
    assert!(
        start_period.is_some_and(|s| s >= 60),
        "line {}: HEALTHCHECK --start-period={:?} leaves start-up less than 60 s",
        check.line,
        check.flag("start-period")
    );

    // The ports the bot listens on are the ones the image exposes, and the health check finds
    // the health listener.
    let env_port = |name: &str| {
        let prefix = format!("{name}=");
        last.all("ENV").find_map(|(_, env)| {
            env.args
                .split_whitespace()
                .find_map(|w| w.strip_prefix(prefix.as_str()))
                .and_then(|a| a.rsplit(':').next().map(str::to_owned))
        })
    };
    let health_port = env_port("HEALTH_ADDR");
    assert!(health_port.is_some(), "{}: HEALTH_ADDR is not set, so the health check has nothing to ask", last.label());
    for (name, port) in [("HEALTH_ADDR", health_port), ("CALLBACK_ADDR", env_port("CALLBACK_ADDR"))] {
        if let Some(port) = port {
            let exposed =
                last.all("EXPOSE").flat_map(|(_, e)| e.words()).any(|p| p.split('/').next() == Some(port.as_str()));
            assert!(exposed, "{}: {name} listens on port {port} but the image does not EXPOSE it", last.label());
        }
    }
}

/// `90s`, `2m` or `1h` (Docker's duration forms used here) in seconds.
fn seconds(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => Some(n * 60),
        "h" => Some(n * 3600),
        _ => None,
    }
}

#[test]
fn no_secret_or_env_file_is_baked_into_the_image() {
    for stage in stages() {
        for instruction in &stage.body {
            if instruction.keyword == "ENV" || instruction.keyword == "ARG" {
                for secret in SECRETS {
                    let sets = instruction.args.split(|c: char| c.is_whitespace() || c == '=').any(|w| w == secret);
                    assert!(
                        !sets,
                        "line {}: `{} {}` sets {secret} in the image; it must come from the environment at run time",
                        instruction.line, instruction.keyword, instruction.args
                    );
                }
            }
            if instruction.keyword == "COPY" || instruction.keyword == "ADD" {
                let (sources, _) = instruction.copy_parts();
                for source in sources {
                    let file = source.rsplit('/').next().unwrap_or(source);
                    assert!(
                        !(file == ".env" || (file.starts_with(".env.") && file != ".env.example")),
                        "line {}: `{} {}` copies an env file with secrets into the image",
                        instruction.line,
                        instruction.keyword,
                        instruction.args
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// .dockerignore

/// Glob match of one path segment: `*` any run of characters, `?` one character.
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            segment_matches(&pattern[1..], text) || (!text.is_empty() && segment_matches(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => segment_matches(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => segment_matches(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// Glob match of a whole path, `**` matching any number of segments.
fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            path_matches(&pattern[1..], path) || (!path.is_empty() && path_matches(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => segment_matches(p.as_bytes(), s.as_bytes()) && path_matches(&pattern[1..], &path[1..]),
        _ => false,
    }
}

/// Whether Docker leaves `path` (relative to the context) out of the build context: the last
/// pattern matching the path or one of its parent folders decides, `!` re-including.
fn ignored(dockerignore: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let mut ignored = false;
    for line in dockerignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern.trim_matches('/').split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        if (1..=segments.len()).any(|n| path_matches(&pattern, &segments[..n])) {
            ignored = !negated;
        }
    }
    ignored
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn dockerignore_keeps_the_context_small_and_secret_free() {
    let dockerignore = read(".dockerignore");
    for path in ["target", "target/release/imagine-bot", ".git", ".git/HEAD", ".env", ".data/postgres/PG_VERSION"] {
        assert!(ignored(&dockerignore, path), ".dockerignore does not exclude `{path}` from the build context");
    }

    // Everything the Dockerfile copies from the context exists and is sent.
    let root = root();
    for stage in stages() {
        for (_, copy) in stage.all("COPY").filter(|(_, c)| c.flag("from").is_none()) {
            for source in copy.copy_parts().0 {
                let source = source.trim_end_matches('/');
                let path = root.join(source);
                assert!(path.exists(), "line {}: the Dockerfile copies `{source}`, which does not exist", copy.line);
                let mut files = Vec::new();
                if path.is_dir() {
                    files_under(&path, &mut files);
                } else {
                    files.push(path);
                }
                for file in files {
                    let relative =
                        file.strip_prefix(&root).expect("inside the repository").to_string_lossy().into_owned();
                    assert!(
                        !ignored(&dockerignore, &relative),
                        "line {}: the Dockerfile copies `{relative}` but .dockerignore leaves it out of the context",
                        copy.line
                    );
                }
            }
        }
    }
}

#[test]
fn dockerignore_matching_follows_docker_rules() {
    let rules = "*\n!src/\n**/.env\ntarget/\n";
    assert!(ignored(rules, "README.md"));
    assert!(ignored(rules, "target/debug/x"));
    assert!(!ignored(rules, "src/main.rs"));
    assert!(ignored(rules, "src/.env"));
    assert!(ignored(rules, ".env"));
    assert!(!ignored("target\n", "src/target.rs"));
    assert!(ignored("**/*.log\n", "a/b/c.log"));
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// The lines nested under `path` (a chain of mapping keys) in a YAML document, found by indentation.
fn yaml_block<'a>(text: &'a str, path: &[&str]) -> Option<Vec<&'a str>> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    for key in path {
        let level = lines.iter().map(|l| indent(l)).min()?;
        let start = lines
            .iter()
            .position(|l| indent(l) == level && l.trim().strip_prefix(key).is_some_and(|rest| rest.starts_with(':')))?;
        let children = lines[start + 1..].iter().take_while(|l| indent(l) > level).copied().collect();
        lines = children;
    }
    Some(lines)
}

fn compose_block<'a>(compose: &'a str, path: &[&str]) -> Vec<&'a str> {
    yaml_block(compose, path).unwrap_or_else(|| panic!("docker-compose.yml has no `{}`", path.join(".")))
}

#[test]
fn compose_runs_postgres_with_a_healthcheck_and_a_named_volume() {
    let compose = read("docker-compose.yml");
    let db = compose_block(&compose, &["services", "db"]);
    let image = db
        .iter()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .expect("docker-compose.yml: service `db` has no image");
    assert!(
        image.starts_with("postgres:") && !image.ends_with(":latest"),
        "docker-compose.yml: service `db` image `{image}` is not a postgres image pinned to a major version"
    );

    let check = compose_block(&compose, &["services", "db", "healthcheck"]).join("\n");
    assert!(check.contains("pg_isready"), "docker-compose.yml: the db healthcheck does not run pg_isready");

    let declared = compose_block(&compose, &["volumes"]);
    let volumes = compose_block(&compose, &["services", "db", "volumes"]);
    let data = volumes
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .find(|v| v.contains(":/var/lib/postgresql/data"))
        .expect("docker-compose.yml: service `db` mounts nothing on /var/lib/postgresql/data; jobs and quotas would be lost");
    let name = data.split(':').next().unwrap_or("").trim_matches(|c| c == '"' || c == '\'');
    assert!(
        !name.starts_with(['.', '/', '~']),
        "docker-compose.yml: the database lives in the bind mount `{name}`, not a named volume"
    );
    assert!(
        declared.iter().any(|l| l.trim().strip_prefix(name).is_some_and(|rest| rest.starts_with(':'))),
        "docker-compose.yml: the volume `{name}` is not declared under the top-level `volumes:`"
    );
}

#[test]
fn compose_starts_the_bot_after_a_healthy_database() {
    let compose = read("docker-compose.yml");
    let bot = compose_block(&compose, &["services", "bot"]);
    let text = bot.join("\n");

    assert!(
        bot.iter().any(|l| l.trim_start().starts_with("build:")),
        "docker-compose.yml: service `bot` is not built from the Dockerfile (`build:`)"
    );
    assert!(
        bot.iter().any(|l| l.trim_start().starts_with("env_file:")),
        "docker-compose.yml: service `bot` does not read its secrets from an env_file (.env)"
    );
    let depends = compose_block(&compose, &["services", "bot", "depends_on", "db"]).join("\n");
    assert!(
        depends.contains("condition: service_healthy"),
        "docker-compose.yml: service `bot` does not wait for `db` with `condition: service_healthy`"
    );
    let url = bot
        .iter()
        .find_map(|l| l.trim().strip_prefix("DATABASE_URL:").or_else(|| l.trim().strip_prefix("- DATABASE_URL=")))
        .map(str::trim)
        .expect("docker-compose.yml: service `bot` gets no DATABASE_URL (the image has no local PostgreSQL)");
    assert!(url.contains("@db:"), "docker-compose.yml: DATABASE_URL `{url}` does not point at the `db` service");
    assert!(text.contains("restart:"), "docker-compose.yml: service `bot` has no restart policy");
    assert!(
        text.contains("stop_grace_period:"),
        "docker-compose.yml: service `bot` has no stop_grace_period to drain jobs on SIGTERM"
    );
    if let Some(ports) = yaml_block(&compose, &["services", "bot", "ports"]) {
        for port in ports.iter().filter_map(|l| l.trim().strip_prefix("- ")) {
            assert!(
                port.trim_matches(|c| c == '"' || c == '\'').starts_with("127.0.0.1:"),
                "docker-compose.yml: bot port `{port}` is published on every interface, not only 127.0.0.1"
            );
        }
    }
    for secret in ["DISCORD_TOKEN", "SHORTAPI_KEY"] {
        assert!(
            !compose.lines().any(|l| {
                let l = l.trim().trim_start_matches("- ");
                l.starts_with(&format!("{secret}:")) || l.starts_with(&format!("{secret}="))
            }),
            "docker-compose.yml sets {secret}; it belongs in .env (env_file), not in a committed file"
        );
    }
}
