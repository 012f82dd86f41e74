//! The test support as `benches/load.rs` compiles it (`#[path = "../tests/support/mod.rs"]`). The
//! bench uses a small part of it, so dead code is allowed here, and only here: the tests compile
//! `harness.rs` directly (see `tests/e2e/main.rs`), where a helper no test uses is reported.
#![allow(dead_code, reason = "benches/load.rs uses a small part of the test support")]

#[path = "harness.rs"]
mod harness;

pub use harness::*;
