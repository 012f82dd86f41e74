//! The bot as a real operating-system process, for restarts, signals and several processes.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

pub struct BotProcess {
    child: Child,
    log: PathBuf,
}

impl BotProcess {
    /// Starts the `imagine-bot` binary with exactly `vars` (plus PATH), logging to a file.
    pub fn spawn(vars: &HashMap<String, String>, name: &str) -> BotProcess {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bot-processes");
        std::fs::create_dir_all(&dir).unwrap();
        // No .env file is picked up from an empty working directory.
        Self::spawn_in(&dir, vars, name)
    }

    /// Starts the binary as [`BotProcess::spawn`] does, working in `dir` (where it reads `.env`).
    pub fn spawn_in(dir: &Path, vars: &HashMap<String, String>, name: &str) -> BotProcess {
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bot-processes");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imagine-bot"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "debug")
            .envs(vars)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("starting the bot binary");
        BotProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: a graceful shutdown.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// Runs the binary with `args` to its end, with exactly `vars` (plus PATH), working in `dir`:
/// whether it succeeded, and what it printed on stdout.
pub async fn run_to_end(dir: &Path, vars: &HashMap<String, String>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imagine-bot"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(vars).current_dir(dir);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}
