//! The Backend API side of the mirror: `clerk-gateway sync` and `users` through the binary,
//! rate limits and 5xx in the middle of a sweep, tombstones for users Clerk no longer has,
//! lazy fills on the request path (single-flight, 404s remembered, a deadline), reconcile.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_clerk-gateway");

fn users(n: usize) -> Vec<Value> {
    // Newest first, as Clerk lists them.
    (0..n)
        .rev()
        .map(|i| clerk_user(&format!("user_{i:05}"), &format!("U{i}"), 1_000 + i as i64, json!({"i": i})))
        .collect()
}

/// The binary's mirror commands against one config file and mirror in a directory.
struct Cli {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    /// What the file holds: the fake Backend API's key and URL, the mirror in `dir`.
    base: TestConfig,
}

impl Cli {
    fn new(bapi: &FakeBapi) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gateway.toml");
        let base = TestConfig::new()
            .clerk("secret_key", FAKE_SECRET)
            .clerk("api_url", bapi.url())
            .mirror("path", dir.path().join("mirror.db").display().to_string())
            .route(TestRoute::new("/", "http://127.0.0.1:1"));
        let cli = Cli { dir, config, base };
        cli.write(&cli.base);
        cli
    }

    /// Replaces the config file with `config`.
    fn write(&self, config: &TestConfig) {
        std::fs::write(&self.config, config.to_toml()).unwrap();
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run_cli(&self.config, args)
    }

    async fn sync(&self) -> (i32, String, String) {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || run_cli(&config, &["sync"])).await.unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        serde_json::from_str(&stdout).unwrap()
    }
}

/// Runs the binary with `args` and `-c config`: exit code, stdout, stderr.
fn run_cli(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("-c").arg(config).env("RUST_LOG", "warn");
    for var in ["GATEWAY_CONFIG", "CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWT_KEY"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn sync_fills_an_empty_mirror_and_users_reads_it() {
    let bapi = FakeBapi::start(users(1_203)).await;
    let cli = Cli::new(&bapi);
    let (code, stdout, stderr) = cli.sync().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("synced 1203 users") && stdout.contains("1203 new"), "{stdout}");
    assert!(stderr.contains("sync: 1203 users to fetch"), "plain progress when not on a terminal: {stderr}");
    assert_eq!(bapi.count("/v1/users") - bapi.count("/v1/users/count"), 3, "three pages of 500");
    assert_eq!(cli.json(&["users", "count"]), json!({"count": 1203}));
    let one = cli.json(&["users", "get", "user_00042"]);
    assert_eq!(one["primary_email"], "00042@example.com");
    assert_eq!(one["public_metadata"], json!({"i": 42}));
    assert_eq!(one["memberships"], json!([]));
    let listed = cli.json(&["users", "list", "--limit", "2", "--offset", "1"]);
    assert_eq!(
        listed.as_array().unwrap().iter().map(|u| u["id"].clone()).collect::<Vec<_>>(),
        [json!("user_00001"), json!("user_00002")]
    );
    let (code, _, stderr) = cli.run(&["users", "get", "user_nobody"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("user user_nobody is not in the mirror"), "{stderr}");

    let (code, stdout, _) = cli.sync().await;
    assert_eq!(code, 0);
    assert!(stdout.contains("0 new, 0 updated, 1203 unchanged"), "idempotent: {stdout}");
    assert!(cli.dir.path().join("mirror.db").exists(), "the mirror is the configured file");
}

#[tokio::test]
async fn sync_rides_out_a_rate_limit_and_a_server_error() {
    let bapi = FakeBapi::start(users(1_100)).await;
    bapi.script(Scripted { path_prefix: "/v1/users", after: 2, status: 429, retry_after: Some(1) });
    bapi.script(Scripted { path_prefix: "/v1/users", after: 3, status: 503, retry_after: None });
    let cli = Cli::new(&bapi);
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = cli.sync().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("synced 1100 users"), "{stdout}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(cli.json(&["users", "count"]), json!({"count": 1100}));
}

#[tokio::test]
async fn sync_tombstones_users_clerk_no_longer_has() {
    let bapi = FakeBapi::start(users(30)).await;
    let cli = Cli::new(&bapi);
    assert_eq!(cli.sync().await.0, 0);
    let mut fewer = users(30);
    fewer.retain(|u| u["id"] != "user_00007");
    bapi.set_users(fewer);
    let (code, stdout, _) = cli.sync().await;
    assert_eq!(code, 0);
    assert!(stdout.contains("1 deleted"), "{stdout}");
    assert_eq!(cli.run(&["users", "get", "user_00007"]).0, 1);
    assert_eq!(cli.json(&["users", "count"]), json!({"count": 29}));
}

#[tokio::test]
async fn sync_needs_a_secret_key_and_reports_api_failures() {
    let bapi = FakeBapi::start(users(3)).await;
    let cli = Cli::new(&bapi);
    cli.write(&cli.base.clone().clerk("secret_key", "sk_test_wrong"));
    let (code, _, stderr) = cli.sync().await;
    assert_eq!(code, 2);
    assert!(stderr.contains("clerk_key_invalid"), "{stderr}");
    assert!(!stderr.contains("sk_test_wrong"), "the key is never printed");
    cli.write(&cli.base.clone().without("clerk", "secret_key").clerk("jwks_url", "http://127.0.0.1:1/j"));
    let (code, _, stderr) = cli.sync().await;
    assert_eq!(code, 1);
    assert!(stderr.contains("clerk.secret_key: sync needs"), "{stderr}");
}

/// A gateway whose keys and users both come from the fake Backend API.
async fn bapi_gateway(bapi: &FakeBapi, mirror: &[(&str, &str)]) -> TestGateway {
    let upstream = spawn_upstream().await;
    let jwks = FakeJwks::with_key_a().await;
    let mut config = TestConfig::standard(&jwks, upstream).webhook(":memory:").backend_api(bapi);
    for (key, value) in mirror {
        config = config.mirror(key, *value);
    }
    TestGateway::start(&config).await
}

#[tokio::test]
async fn a_user_missing_from_the_mirror_is_fetched_once() {
    let bapi = FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({"plan": "pro"}))]).await;
    let gw = bapi_gateway(&bapi, &[]).await;
    let token = key_a().token(&claims());
    let replies = futures_util::future::join_all((0..50).map(|_| gw.get_with_token("/api/x", &token))).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(
        replies.iter().all(|r| r.seen("x-user-email").as_deref() == Some("alice@example.com")),
        "every request enriched"
    );
    assert_eq!(bapi.count("/v1/users/user_alice"), 1, "one Backend API call for 50 concurrent requests");
    gw.get_with_token("/api/x", &token).await;
    assert_eq!(bapi.count("/v1/users/user_alice"), 1, "then served from memory");
    assert_eq!(gw.metric("clerk_gateway_mirror_users").await, 1.0, "and stored");

    let stranger = key_a().token(&claims_with("sub", json!("user_ghost")));
    for _ in 0..3 {
        assert_eq!(gw.get_with_token("/api/x", &stranger).await.seen("x-user"), None);
    }
    assert_eq!(bapi.count("/v1/users/user_ghost"), 1, "a 404 is remembered");
}

#[tokio::test]
async fn a_slow_lookup_does_not_hold_the_request() {
    let bapi = FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({}))]).await;
    bapi.state.hold_lookups.store(true, std::sync::atomic::Ordering::SeqCst);
    let gw = bapi_gateway(&bapi, &[("fetch_timeout", "200ms")]).await;
    let token = key_a().token(&claims());
    let first = gw.get_with_token("/api/x", &token).await;
    assert_eq!(first.status, 200, "forwarded without enrichment after the deadline");
    assert_eq!(first.seen("x-user-email"), None);
    bapi.state.hold_lookups.store(false, std::sync::atomic::Ordering::SeqCst);
    bapi.state.release.notify_waiters();
    for _ in 0..200 {
        if gw.get_with_token("/api/x", &token).await.seen("x-user-email").is_some() {
            assert_eq!(bapi.count("/v1/users/user_alice"), 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the background fill never landed");
}

#[tokio::test]
async fn reconcile_sweeps_inside_run() {
    let bapi = FakeBapi::start(users(700)).await;
    let gw = bapi_gateway(&bapi, &[("reconcile_every", "1h")]).await;
    for _ in 0..400 {
        if gw.metric("clerk_gateway_mirror_users").await == 700.0 {
            let token = key_a().token(&claims_with("sub", json!("user_00123")));
            assert_eq!(
                gw.get_with_token("/api/x", &token).await.seen("x-user-email").as_deref(),
                Some("00123@example.com")
            );
            assert_eq!(bapi.count("/v1/users/user_"), 0, "no lazy fill needed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("reconcile did not fill the mirror");
}

#[tokio::test]
async fn users_reads_the_mirror_while_the_gateway_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.db").display().to_string();
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let config = TestConfig::standard(&jwks, upstream).webhook(&path);
    let gw = TestGateway::start(&config).await;
    gw.deliver("msg_1", &event("user.created", clerk_user("user_alice", "Alice", 1, json!({})))).await;
    let config_file = dir.path().join("g.toml");
    std::fs::write(&config_file, config.to_toml()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["users", "get", "user_alice", "-c"])
            .arg(&config_file)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["first_name"], "Alice");
    gw.deliver("msg_2", &event("user.created", clerk_user("user_bob", "Bob", 1, json!({})))).await;
    assert_eq!(gw.metric("clerk_gateway_mirror_users").await, 2.0, "still writing while read");
}
