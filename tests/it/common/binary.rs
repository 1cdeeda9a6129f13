//! The real binary as a child process: a clean environment, its JSON log lines as they
//! come, signals, and its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::TestConfig;
use super::logs::leak;

pub const BIN: &str = env!("CARGO_BIN_EXE_clerk-gateway");

/// The binary with `args`, a clean environment (no Clerk keys, no GATEWAY_CONFIG, no
/// overrides) and info logs.
pub fn gateway(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("GATEWAY_CONFIG").env("RUST_LOG", "info");
    for var in ["CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWT_KEY", "CLERK_WEBHOOK_SIGNING_SECRET"] {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars().filter(|(name, _)| name.starts_with("CLERK_GATEWAY_")) {
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
    /// Taken by `stop`.
    child: Option<Child>,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The config file it runs on (the test may rewrite it).
    pub config: PathBuf,
    logs: std::sync::mpsc::Receiver<String>,
    /// Lines that leaked a secret (see `logs::leak`); checked on drop.
    leaks: Arc<Mutex<Vec<String>>>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
        }
        let leaks = self.leaks.lock().unwrap_or_else(|e| e.into_inner());
        if !std::thread::panicking()
            && let Some(leak) = leaks.first()
        {
            panic!("{leak}");
        }
    }
}

impl Running {
    /// Sends `SIGname`.
    pub fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("running"), name);
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().expect("running").try_wait().unwrap().is_some()
    }

    /// SIGTERM, then the exit code.
    pub async fn stop(self) -> Option<i32> {
        self.signal("TERM");
        self.exit_code().await
    }

    /// The exit code, waited for (at most 20 s) off the runtime, as upstreams may run on it.
    pub async fn exit_code(mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap()
    }

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

/// Starts `clerk-gateway run -c path` (logs as JSON, the gateway's at trace level), keeping
/// `dir` for as long as it runs, and waits for the line saying where it listens. Every line
/// it writes is checked for secrets.
pub async fn start_binary(path: PathBuf, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Running {
    let mut cmd = gateway(&["--log-format", "json", "run", "-c", path.to_str().unwrap()]);
    cmd.env("RUST_LOG", "info,clerk_gateway=trace");
    cmd.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (sender, logs) = std::sync::mpsc::channel();
    let leaks = Arc::new(Mutex::new(Vec::new()));
    let found = leaks.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let lines = read_until(&mut stderr, |l| l.contains("clerk-gateway listening"));
        found.lock().unwrap().extend(lines.iter().filter_map(|l| leak(l)));
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(leak) = leak(&line) {
                    found.lock().unwrap().push(leak);
                }
                let _ = sender.send(line);
            }
        });
        lines
    })
    .await
    .unwrap();
    let started: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let field = |name: &str| started[name].as_str().unwrap().parse().unwrap();
    Running { child: Some(child), proxy: field("proxy"), admin: field("admin"), config: path, logs, leaks, _dir: dir }
}
