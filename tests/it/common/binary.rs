//! The real binary as a child process: a clean environment, its JSON log lines as they
//! come, signals, and its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::config::TestConfig;

pub const BIN: &str = env!("CARGO_BIN_EXE_clerk-gateway");

/// The binary with `args`, a clean environment (no Clerk keys, no GATEWAY_CONFIG) and info logs.
pub fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("GATEWAY_CONFIG").env("RUST_LOG", "info");
    for var in ["CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWT_KEY", "CLERK_WEBHOOK_SIGNING_SECRET"] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn read_until(reader: &mut impl BufRead, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let finished = done(&line);
        lines.push(line);
        if finished {
            return lines;
        }
    }
    panic!("output ended without the expected line:\n{}", lines.concat());
}

pub fn sigterm(child: &Child) {
    signal(child, "TERM");
}

pub fn signal(child: &Child, name: &str) {
    // The shell's builtin kill: present wherever sh is, unlike /usr/bin/kill.
    let status = Command::new("sh").args(["-c", &format!("kill -{name} {}", child.id())]).status().unwrap();
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the process did not exit after SIGTERM");
}

/// A running `clerk-gateway run`, with the addresses it logged and its later log lines.
pub struct Running {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The config file it runs on (the test may rewrite it).
    pub config: PathBuf,
    logs: std::sync::mpsc::Receiver<String>,
    pub _dir: tempfile::TempDir,
}

impl Running {
    /// Waits (at most 10 s) for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line with {text:?}: stderr ended or 10 s passed");
    }
}

/// Starts `clerk-gateway run` on `config` (which listens on 127.0.0.1:0), its mirror in a
/// fresh directory, and waits for the line saying where it listens.
pub async fn run_binary(config: &TestConfig, env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    let config = config.clone().mirror("path", dir.path().join("m.db").display().to_string());
    std::fs::write(&path, config.to_toml()).unwrap();
    start_binary(path, dir, env).await
}

/// Starts `clerk-gateway run -c path` (logs as JSON), keeping `dir` for as long as it runs,
/// and waits for the line saying where it listens.
pub async fn start_binary(path: PathBuf, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Running {
    let mut cmd = gateway(&["--log-format", "json", "run", "-c", path.to_str().unwrap()]);
    cmd.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (sender, logs) = std::sync::mpsc::channel();
    let lines = tokio::task::spawn_blocking(move || {
        let lines = read_until(&mut stderr, |l| l.contains("clerk-gateway listening"));
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        lines
    })
    .await
    .unwrap();
    let started: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let field = |name: &str| started["fields"][name].as_str().unwrap().parse().unwrap();
    Running { child, proxy: field("proxy"), admin: field("admin"), config: path, logs, _dir: dir }
}
