//! Every log line the gateway writes during the suite, held to one rule: no token, cookie,
//! key or query string. In-process gateways log at trace level, as JSON, through a check of
//! every line, whose findings each `TestGateway` reports when it is dropped; the binary's
//! stderr lines are checked as they are read. `RUST_LOG` set turns the check off and shows
//! the logs instead.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// What must never be in a log line, and why.
const NEVER: &[(&str, &str)] = &[
    ("eyJ", "a JWT (or base64 JSON: a handshake payload)"),
    ("sk_test_", "a secret key"),
    ("sk_live_", "a secret key"),
    ("whsec_", "a webhook signing secret"),
    ("-----BEGIN", "a PEM key"),
    ("__session", "a session cookie"),
    ("__client_uat", "a Clerk cookie"),
    ("__clerk_db_jwt", "a dev-browser cookie"),
    ("Bearer ", "an Authorization header"),
];

/// Why `line` leaks something, if it does.
pub fn leak(line: &str) -> Option<String> {
    if let Some((_, what)) = NEVER.iter().find(|(needle, _)| line.contains(needle)) {
        return Some(format!("{what} in a log line: {line}"));
    }
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let path = json.get("path").or_else(|| json.get("fields").and_then(|f| f.get("path")))?.as_str()?;
    path.contains('?').then(|| format!("a query string in a log line: {line}"))
}

/// Leaks found so far, by the line that leaked.
static LEAKS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

fn leaks() -> std::sync::MutexGuard<'static, Vec<String>> {
    LEAKS.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks each line as it is written (the formatter writes one event per call).
struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let found: Vec<String> = String::from_utf8_lossy(bytes).lines().filter_map(leak).collect();
        if !found.is_empty() {
            leaks().extend(found);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        Capture
    }
}

/// Installs the capture once per test binary (or, with `RUST_LOG`, logs to the test output).
pub fn init() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new("clerk_gateway=trace"))
        .with_writer(Capture)
        .try_init();
}

/// Fails the test if any line logged so far leaked.
pub fn assert_clean() {
    if let Some(leak) = leaks().first() {
        panic!("{leak}");
    }
}
