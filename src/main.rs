use std::process::ExitCode;

use imagine_bot::{config::Config, health::Probe};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: imagine-bot [run | doctor | healthcheck [--live]]
  run          run the bot (the default)
  doctor       check the configuration, database, Discord token and provider key
  healthcheck  ask a running bot's /readyz at HEALTH_ADDR: exit 0 when it serves commands,
               1 otherwise, saying why (for container health checks); with --live, ask
               /healthz instead (the process is up)";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    match runtime() {
        Ok(runtime) => runtime.block_on(command()),
        Err(e) => {
            eprintln!("imagine-bot: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime every task runs on: two worker threads unless `TOKIO_WORKER_THREADS` says
/// otherwise. The bot waits on Discord, the provider and PostgreSQL far more than it computes
/// (under 10 ms of CPU per job, BENCHMARKS.md), and the little CPU work that could hold a thread
/// (the usage chart) runs on the blocking pool. Yet when the first results of a burst arrive,
/// deliveries, presses and commands come due together, and on one thread the commands and presses
/// answered then had a 17-47 ms p99 in the benchmark, against 4-7 ms with two. With mimalloc the
/// second thread costs no more CPU per job (BENCHMARKS.md, "Session 9").
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(2);
    }
    builder.enable_all().build()
}

async fn command() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => run().await,
        Some("doctor") => {
            if imagine_bot::doctor::run().await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("healthcheck") => match std::env::args().nth(2).as_deref() {
            None => healthcheck(Probe::Ready).await,
            Some("--live") => healthcheck(Probe::Live).await,
            Some(other) => {
                eprintln!("imagine-bot: unknown healthcheck option {other:?}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("imagine-bot: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("imagine-bot: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    imagine_bot::init_tracing(config.log_format);

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match imagine_bot::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "imagine-bot stopped");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(probe: Probe) -> ExitCode {
    let Some(addr) = std::env::var("HEALTH_ADDR").ok().and_then(|a| a.trim().parse().ok()) else {
        eprintln!("imagine-bot: HEALTH_ADDR is not set to an address such as 127.0.0.1:8080");
        return ExitCode::from(2);
    };
    match imagine_bot::health::check(addr, probe).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let what = if probe == Probe::Ready { "not ready" } else { "not live" };
            eprintln!("imagine-bot: {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT starts a graceful shutdown.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
}
