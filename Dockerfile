# syntax=docker/dockerfile:1
#
# imagine-bot container image.
#
#   docker build -t imagine-bot .
#   docker run --env-file .env -e DATABASE_URL=postgres://user:pass@host:5432/db imagine-bot
#
# or `docker compose up -d` with the docker-compose.yml beside this file (bot + PostgreSQL).
#
# Base images (pinned tags that exist on Docker Hub):
#   rust:1.89-slim-bookworm  official Rust image at the crate's rust-version (1.89, edition 2024;
#                            Cargo.lock's newest dependency MSRV is also 1.89). Debian 12 "bookworm",
#                            so the binary's glibc matches the runtime image below. The tag follows
#                            1.89.x patch releases; bump it together with `rust-version` in Cargo.toml.
#   debian:bookworm-slim     runtime: same Debian release as the builder, plus ca-certificates only.
# cargo-chef is installed from crates.io at a pinned version (0.1.78, built with its own Cargo.lock;
# its dependencies need Rust 1.88 or newer) instead of using a lukemathwalker/cargo-chef image, so the
# Rust toolchain is the official image's and both pins are explicit here.

# --- chef: Rust toolchain + cargo-chef -------------------------------------------------------------
FROM rust:1.89-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

# --- planner: a recipe of the dependency graph (changes only when Cargo.toml/Cargo.lock do) --------
FROM chef AS planner
# Only what the build reads; never `COPY . .`, so no .env or local data can reach a layer.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (cached layer), then the crate itself ----------------------------
FROM chef AS builder
# The queries in src/db/ are checked at compile time (sqlx::query!) against the offline data
# committed in .sqlx/, and migrations/ is embedded with sqlx::migrate!(), so no database is needed
# at build time; SQLX_OFFLINE makes sure none is tried.
ENV SQLX_OFFLINE=true
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY Cargo.toml Cargo.lock build.rs ./
# migrations/ must be in place before the build: sqlx::migrate!() embeds it at compile time and
# build.rs reruns the build when it changes.
COPY migrations ./migrations
COPY .sqlx ./.sqlx
# The /usage chart's font is embedded in the binary (include_bytes!): the image has no fonts.
COPY assets ./assets
COPY src ./src
RUN cargo build --release --locked --bin imagine-bot

# --- runtime: small Debian with CA roots (rustls talks TLS to Discord and ShortAPI) ----------------
FROM debian:bookworm-slim AS runtime
# ca-certificates is deliberately unpinned: it should follow bookworm's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged UID/GID so volume permissions and runAsNonRoot policies are predictable.
RUN groupadd --system --gid 10001 imagine \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin imagine
COPY --from=builder /app/target/release/imagine-bot /usr/local/bin/imagine-bot

# Configuration comes from the environment at run time (`docker run --env-file .env`, compose's
# env_file); no secret and no .env file is baked into the image. DISCORD_TOKEN and SHORTAPI_KEY are
# required. DATABASE_URL is required too in a container: the image has no PostgreSQL server
# binaries, so the local-cluster fallback (LOCAL_PG_DIR/LOCAL_PG_PORT) is not available here and
# is deliberately left unset.
# HEALTH_ADDR: where the bot serves /healthz, /readyz and /metrics. Outside a container the bot
# binds nothing unless told; in here every interface is the container's own, and a port is only
# reachable from outside where it is published (compose publishes it on the host's 127.0.0.1).
ENV HEALTH_ADDR=0.0.0.0:8080
EXPOSE 8080
# CALLBACK_ADDR: where provider callbacks arrive, used only when PUBLIC_BASE_URL is set (behind a
# reverse proxy that PUBLIC_BASE_URL reaches). The bot's own default is 127.0.0.1:8081, which
# nothing outside the container could reach.
ENV CALLBACK_ADDR=0.0.0.0:8081
EXPOSE 8081

WORKDIR /app
USER 10001:10001

# `imagine-bot healthcheck` asks the running process's /readyz at HEALTH_ADDR and exits 0 when the
# bot serves commands (database reachable, every shard connected, commands registered), 1 with
# the reason otherwise (shown by `docker inspect`); no shell or curl needed in the image. A bot
# that is up but cannot serve (connected but dead) is reported unhealthy; `healthcheck --live`
# would only ask /healthz. The start period covers migrations, connecting to the gateway and
# registering the commands, which is retried with backoff (up to a minute apart) while Discord
# refuses: after it, three failed checks in a row (90 s) mark the container unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/imagine-bot", "healthcheck"]

# The bot drains in-flight work on SIGTERM (docker stop); give it time (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/imagine-bot"]
