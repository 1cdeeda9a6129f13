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

struct Cli {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

impl Cli {
    fn new(bapi: &FakeBapi) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gateway.toml");
        let text = format!(
            "[clerk]\nsecret_key = \"{FAKE_SECRET}\"\napi_url = \"{}\"\n[mirror]\npath = \"{}\"\n\
             [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n",
            bapi.url(),
            dir.path().join("mirror.db").display()
        );
        std::fs::write(&config, text).unwrap();
        Cli { dir, config }
    }

    fn mirror_path(&self) -> String {
        self.dir.path().join("mirror.db").display().to_string()
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("-c").arg(&self.config).env("RUST_LOG", "warn");
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

    async fn sync(&self) -> (i32, String, String) {
        let cli = Cli { dir: tempfile::tempdir().unwrap(), config: self.config.clone() };
        tokio::task::spawn_blocking(move || cli.run(&["sync"])).await.unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        serde_json::from_str(&stdout).unwrap()
    }
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
    let _ = cli.mirror_path();
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
    let text = std::fs::read_to_string(&cli.config).unwrap();
    std::fs::write(&cli.config, text.replace(FAKE_SECRET, "sk_test_wrong")).unwrap();
    let (code, _, stderr) = cli.sync().await;
    assert_eq!(code, 2);
    assert!(stderr.contains("clerk_key_invalid"), "{stderr}");
    assert!(!stderr.contains("sk_test_wrong"), "the key is never printed");
    std::fs::write(
        &cli.config,
        text.replace(&format!("secret_key = \"{FAKE_SECRET}\"\n"), "jwks_url = \"http://127.0.0.1:1/j\"\n"),
    )
    .unwrap();
    let (code, _, stderr) = cli.sync().await;
    assert_eq!(code, 1);
    assert!(stderr.contains("clerk.secret_key: sync needs"), "{stderr}");
}

/// A gateway whose keys and users both come from the fake Backend API.
async fn bapi_gateway(bapi: &FakeBapi, extra_mirror: &str) -> TestGateway {
    let upstream = spawn_upstream().await;
    let jwks = FakeJwks::with_key_a().await;
    let config = webhook_config(&jwks, upstream, ":memory:")
        .replace(
            &format!("jwks_url = \"{}\"", jwks.url()),
            &format!("secret_key = \"{FAKE_SECRET}\"\napi_url = \"{}\"", bapi.url()),
        )
        .replace("[mirror]\n", &format!("[mirror]\n{extra_mirror}\n"));
    TestGateway::start(&config).await
}

#[tokio::test]
async fn a_user_missing_from_the_mirror_is_fetched_once() {
    let bapi = FakeBapi::start(vec![clerk_user("user_alice", "Alice", 5, json!({"plan": "pro"}))]).await;
    let gw = bapi_gateway(&bapi, "").await;
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
    let gw = bapi_gateway(&bapi, "fetch_timeout = \"200ms\"").await;
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
    let gw = bapi_gateway(&bapi, "reconcile_every = \"1h\"").await;
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
    let config = webhook_config(&jwks, upstream, &path);
    let gw = TestGateway::start(&config).await;
    gw.deliver("msg_1", &event("user.created", clerk_user("user_alice", "Alice", 1, json!({})))).await;
    let config_file = dir.path().join("g.toml");
    std::fs::write(&config_file, &config).unwrap();
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
