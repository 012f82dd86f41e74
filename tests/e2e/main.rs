//! The integration tests, in one binary: the real bot against a real PostgreSQL and the Discord
//! and ShortAPI stand-ins (`support`), plus checks of the stand-ins themselves and of the
//! container files. One binary links once, and code of `support` no test uses is reported as dead.

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless,
    clippy::cast_precision_loss,
    reason = "tests cast known small numbers and Discord ids into SQL binds and figures; the cast lints are for the bot (src/)"
)]

// Shared with `benches/load.rs`, which compiles it with dead code allowed.
#[path = "../support/harness.rs"]
mod support;

mod actions;
mod breaker;
mod callbacks;
mod controls;
mod db_types;
mod deploy;
mod dockerfile;
mod doctor;
mod durability;
mod faults;
mod history;
mod imagine;
mod listeners;
mod log_channel;
mod me;
mod members;
mod notify;
mod operations;
mod operator;
mod prefs;
mod prefs_jobs;
mod press_limits;
mod press_origin;
mod private_pg;
mod processes;
mod queueing;
mod quotas;
mod readme_path;
mod remix;
mod result_links;
mod retry;
mod roles;
mod settings;
mod standins;
mod startup;
mod store;
mod stored_specs;
mod variations;
mod waiting;
