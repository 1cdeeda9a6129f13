//! The binary itself: `check` on good and bad configs, the shipped example, `run` failures,
//! `demo`, SIGTERM while a slow request is in flight, and platform roots and ALPN for HTTPS
//! upstreams (reloads are `reload.rs`'s).

use std::io::BufReader;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use crate::common::*;

fn check_text(toml: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    gateway(&["check", "-c", path.to_str().unwrap()]).output().unwrap()
}

const GOOD: &str = r#"
[clerk]
publishable_key = "pk_test_Y2xlcmsuY2xlcmsuZGV2JA"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:8000"
require = { org_role = "org:admin" }
"#;

#[test]
fn check_prints_the_resolved_routes() {
    let out = check_text(GOOD);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("keys       JWKS https://clerk.clerk.dev/.well-known/jwks.json"), "{stdout}");
    assert!(stdout.contains("issuer     https://clerk.clerk.dev"));
    let row = stdout.lines().find(|l| l.starts_with("0 ")).unwrap();
    for cell in ["/api/", "required", "org_role=org:admin", "http://127.0.0.1:8000"] {
        assert!(row.contains(cell), "{row}");
    }
}

#[test]
fn check_names_the_key_of_every_mistake() {
    let route = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\n";
    let keyed = "[clerk]\njwks_url = \"http://127.0.0.1:1/jwks\"\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("{keyed}[server]\nlistn = \"0.0.0.0:80\"\n{route}"), "server.listn: unknown field `listn`"),
        (format!("{keyed}[[route]]\npath = \"/\"\nupstream = \"127.0.0.1:8000\"\n"), "route[0].upstream: relative URL"),
        (
            format!("{keyed}[[route]]\npath = \"/\"\nupstream = \"http://x\"\nauth = \"maybe\"\n"),
            "route[0].auth: expected required, optional or public",
        ),
        (format!("{keyed}[[route]]\npath = \"/\"\n"), "route[0].upstream: required"),
        (
            format!("[clerk]\njwt_key_file = \"{}\"\n{route}", fixture_path("rsa_a.pem")),
            "clerk.jwt_key: this is a private key",
        ),
        (
            format!("{keyed}[mirror]\npath = \"/nonexistent/dir/m.db\"\n{route}"),
            "mirror.path: /nonexistent/dir/m.db: the directory",
        ),
        (
            format!("{keyed}[mirror]\npath = \"/proc/m.db\"\n{route}"),
            "mirror.path: /proc/m.db: the directory /proc is not writable",
        ),
        (
            format!(
                "{keyed}[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{route}",
                fixture_path("tls.crt"),
                fixture_path("tls_next.key")
            ),
            "server.tls_key: does not go with server.tls_cert",
        ),
        (format!("{keyed}[[route]]\npath = \"api\"\nupstream = \"http://x\"\n"), "route[0].path:"),
        (format!("{keyed}[[route]]\npath = \"/a/../b\"\nupstream = \"http://x\"\n"), "route[0].path:"),
        (format!("{keyed}[server]\ndrain_delay = \"5 seconds\"\n{route}"), "server.drain_delay: expected a duration"),
        (format!("{keyed}[server]\nlisten = \"8080\"\n{route}"), "server.listen: expected ip:port"),
        (format!("{keyed}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{route}"), "server.trusted_proxies[0]:"),
        (
            format!("[clerk]\nsecret_key = \"${{MISSING_SECRET}}\"\n{route}"),
            "clerk.secret_key: environment variable MISSING_SECRET is not set",
        ),
        (format!("[clerk]\nsecret_key = \"not-a-key\"\n{route}"), "clerk.secret_key: expected a Clerk secret key"),
        (format!("[clerk]\npublishable_key = \"pk_test_bm9wZQ\"\n{route}"), "clerk.publishable_key:"),
        (format!("[clerk]\njwt_key = \"not a pem\"\n{route}"), "clerk.jwt_key: expected a PEM RSA public key"),
        (
            format!("[clerk]\nsecret_key = \"sk_test_a\"\nsecret_key_file = \"/x\"\n{route}"),
            "clerk.secret_key: set secret_key or secret_key_file, not both",
        ),
        (
            format!("[clerk]\nsecret_key_file = \"/nonexistent/secret\"\n{route}"),
            "clerk.secret_key_file: cannot read /nonexistent/secret",
        ),
        (route.to_owned(), "clerk: no way to verify tokens"),
        (
            format!("{keyed}authorized_parties = [\"https://app.example.com/\"]\n{route}"),
            "clerk.authorized_parties[0]: an origin has no path or trailing slash",
        ),
        (
            format!("{keyed}[webhook]\nsigning_secret = \"nope!\"\n{route}"),
            "webhook.signing_secret: expected a Svix signing secret",
        ),
        (format!("{keyed}[headers]\nuser_id = \"Cookie\"\n{route}"), "headers.user_id: cookie is reserved"),
        (
            format!(
                "{keyed}[[route]]\npath = \"/\"\nupstream = \"http://x\"\nauth = \"public\"\nrequire = {{ org_role = [\"org:admin\"] }}\n"
            ),
            "route[0].require: rules need auth = \"required\"",
        ),
        (
            format!(
                "{keyed}[[route]]\npath = \"/\"\nupstream = \"http://x\"\nrequire = {{ permission = [\"billing\"] }}\n"
            ),
            "route[0].require.permission[0]:",
        ),
        (
            format!("{keyed}[[route]]\npath = \"/\"\nupstream = \"http://x\"\nrequire = {{ metadata = {{}} }}\n"),
            "route[0].require.metadata: an empty table requires nothing",
        ),
        (format!("{keyed}{route}{route}"), "route[1]: matches the same requests as route[0]"),
        (format!("{keyed}[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n"), "route[0].upstream: unsupported scheme"),
        ("[clerk\n".to_owned(), "TOML syntax error at line 1"),
        (
            format!("{keyed}[[route]]\npath = \"/\"\nupstream = \"http://x\"\ntimeout = \"0s\"\n"),
            "route[0].timeout: a timeout of zero",
        ),
        (format!("{keyed}clock_skew = \"10m\"\n{route}"), "clerk.clock_skew: at most 2m"),
        (
            format!("{keyed}{route}claim_headers = {{ Authorization = \"sub\" }}\n"),
            "route[0].claim_headers.Authorization: authorization is managed by the gateway",
        ),
        (
            format!("{keyed}{route}claim_headers = {{ X-User-Id = \"sub\" }}\n"),
            "route[0].claim_headers.x-user-id: is an identity header",
        ),
        (
            format!("{keyed}{route}claim_headers = {{ X-T = \"a..b\" }}\n"),
            "route[0].claim_headers.X-T: \"a..b\" is not",
        ),
        (
            format!("{keyed}{route}add_request_headers = {{ Host = \"x\" }}\n"),
            "route[0].add_request_headers.Host: host is",
        ),
        (format!("{keyed}{route}remove_request_headers = [\"bad header\"]\n"), "route[0].remove_request_headers[0]:"),
        (format!("{keyed}{route}name = \"a\\\"b\"\n"), "route[0].name: printable ASCII only"),
        (
            format!(
                "{keyed}[[route]]\npath = \"/api\"\nupstream = \"http://x\"\n[[route]]\npath = \"/API/\"\nupstream = \"http://y\"\n"
            ),
            "route[1]: matches the same requests as route[0]",
        ),
    ];
    for (toml, expected) in cases {
        let out = check_text(&toml);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(!stderr.contains("sk_test_a\""), "secrets are never echoed");
    }
}

#[test]
fn check_reports_every_problem_in_file_order() {
    let text = format!(
        r#"
[server]
listen = "8080"
tls_cert = "{cert}"
tls_key = "{key}"
workers = 0

[clerk]
jwt_key_file = "{private}"
clock_skew = "1h"

[mirror]
path = "/nonexistent/dir/mirror.db"

[[route]]
path = "api"
upstream = "http://127.0.0.1:1"

[[route]]
path = "/b"
upstream = "127.0.0.1:1"
lisen = 1
timeout = 5
"#,
        cert = fixture_path("tls.crt"),
        key = fixture_path("tls_next.key"),
        private = fixture_path("rsa_a.pem"),
    );
    let out = check_text(&text);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let keys: Vec<&str> =
        stderr.lines().map(|line| line.trim_start_matches("clerk-gateway: ").split(": ").next().unwrap()).collect();
    let expected = [
        "server.listen",
        "server.tls_key",
        "server.workers",
        "clerk.jwt_key",
        "clerk.clock_skew",
        "mirror.path",
        "route[0].path",
        "route[1].upstream",
        "route[1].lisen",
        "route[1].timeout",
    ];
    assert_eq!(keys, expected, "{stderr}");
    // A server that would fail in the same ways refuses to start, naming every problem.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    let run = gateway(&["run", "-c", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    let run_stderr = String::from_utf8_lossy(&run.stderr);
    for key in ["server.listen", "server.workers", "clerk.jwt_key", "route[1].lisen"] {
        assert!(run_stderr.contains(&format!("clerk-gateway: {key}: ")), "{key} in {run_stderr}");
    }
}

#[test]
fn the_example_config_passes_check() {
    let example = format!("{}/gateway.toml.example", env!("CARGO_MANIFEST_DIR"));
    let out = gateway(&["check", "-c", &example])
        .env("CLERK_SECRET_KEY", "sk_test_example")
        .env("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
        .env("CLERK_WEBHOOK_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let without_env = gateway(&["check", "-c", &example]).output().unwrap();
    assert_eq!(without_env.status.code(), Some(1));
}

/// The ConfigMap's `gateway.toml`, with its Secret's files and the Deployment's `APP_ORIGIN`
/// as the pod has them (only the mirror's volume is a temporary directory here).
#[test]
fn the_kubernetes_gateway_toml_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        path.display().to_string()
    };
    let secret = file("secret_key", "sk_test_kubernetes");
    let publishable = file("publishable_key", "pk_test_Y2xlcmsuY2xlcmsuZGV2JA");
    let signing = file("webhook_signing_secret", WEBHOOK_SECRET);
    let mirror = dir.path().join("mirror.db").display().to_string();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/base/gateway.toml");
    let out = gateway(&["check", "-c", config])
        .env("APP_ORIGIN", "https://notes.example.com")
        .env("CLERK_GATEWAY_CLERK_SECRET_KEY_FILE", &secret)
        .env("CLERK_GATEWAY_CLERK_PUBLISHABLE_KEY_FILE", &publishable)
        .env("CLERK_GATEWAY_WEBHOOK_SIGNING_SECRET_FILE", &signing)
        .env("CLERK_GATEWAY_MIRROR_PATH", &mirror)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("/api/admin/") && stdout.contains("org_role=org:admin"), "{stdout}");
    assert!(stdout.contains("0.0.0.0:8080") && stdout.contains("0.0.0.0:9090"), "{stdout}");
}

#[test]
fn the_config_path_comes_from_the_flag_the_environment_or_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), GOOD).unwrap();
    let out = gateway(&["check"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out =
        gateway(&["check"]).current_dir("/").env("GATEWAY_CONFIG", dir.path().join("gateway.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = gateway(&["run", "-c", "/nonexistent/gateway.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gateway.toml: cannot read"));
}

#[test]
fn a_corrupt_mirror_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[mirror]\npath = \"{}\"\n{GOOD}",
        db.display()
    );
    let path = dir.path().join("g.toml");
    std::fs::write(&path, toml).unwrap();
    let out = gateway(&["run", "-c", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("mirror database {}: file is not a database", db.display())), "{stderr}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![b'x'; 8192], "the file is left as it was");
}

#[test]
fn a_busy_port_is_a_runtime_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let toml = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{GOOD}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, toml).unwrap();
    let out = gateway(&["run", "-c", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on 127.0.0.1:{port}")));
}

/// Reads the child's output lines until one satisfies `done`, with a deadline.
#[tokio::test]
async fn demo_serves_and_its_printed_token_is_accepted() {
    let mut child = gateway(&["demo", "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let lines = tokio::task::spawn_blocking(move || read_until(&mut stdout, |l| l.starts_with("Serving until Ctrl-C")))
        .await
        .unwrap();
    let text = lines.concat();
    let addr: SocketAddr = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("gateway   http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no gateway address in:\n{text}"));
    let token = text.lines().find_map(|l| l.trim_start().strip_prefix("TOKEN=")).unwrap().trim().to_owned();
    assert!(text.contains("x-user-email: demo@example.com"), "the webhook reached the mirror: {text}");
    assert_eq!(tour(&text), tour(&readme()), "the README's sample output is what the demo prints");

    let reply = send(addr, get_request("/api/hello", &[("authorization", &format!("Bearer {token}"))])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["headers"]["x-user-id"], "user_demo");
    paste_the_curl_lines(&text).await;
    sigterm(&child);
    assert_eq!(wait_exit(&mut child), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains(" INFO "), "no log lines between the report's by default: {stderr}");
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The numbered lines of the demo's tour ("Tried for you").
fn tour(text: &str) -> Vec<String> {
    let start = text.find("Tried for you").unwrap_or_else(|| panic!("no tour in {text}"));
    text[start..].lines().skip(1).take_while(|l| l.starts_with("  ")).map(|l| l.trim_end().to_owned()).collect()
}

/// Runs the demo's `curl` lines as a user would paste them into bash, in order, and checks
/// what each one prints.
async fn paste_the_curl_lines(text: &str) {
    let start = text.find("Paste these").unwrap();
    let pasted: Vec<String> = text[start..]
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with("TOKEN=") || l.starts_with("EXPIRED=") || l.starts_with("curl "))
        .map(str::to_owned)
        .collect();
    let (vars, curls): (Vec<String>, Vec<String>) = pasted.into_iter().partition(|l| !l.starts_with("curl "));
    let mut lines = curls.clone();
    lines.push(curls[0].clone()); // "then the first curl again"
    let expected: [&[&str]; 7] = [
        &["\"x-user-id\":\"user_demo\""],
        &["\"x-user-id\":\"user_demo\"", "\"x-auth-status\":\"signed-in\""],
        &["401", "token-expired"],
        &["\"x-auth-status\":\"signed-out\""],
        &["403", "org_role"],
        &["{\"ok\":true}"],
        &["enterprise"],
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    for (line, wanted) in lines.iter().zip(expected) {
        let script = format!("{}\n{line}\n", vars.join("\n"));
        let out = tokio::task::spawn_blocking(move || Command::new("bash").arg("-c").arg(script).output().unwrap())
            .await
            .unwrap();
        // Compared without whitespace: the echo upstream pretty-prints its JSON.
        let printed: String = String::from_utf8_lossy(&out.stdout).split_whitespace().collect();
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        for w in wanted {
            assert!(printed.contains(w), "{line}\nprinted {printed}\nexpected {w}");
        }
        assert!(!printed.contains("user_admin"), "{line}: a spoofed header never gets through: {printed}");
    }
}

fn public_config(upstream: &str) -> TestConfig {
    let pem = fixture_path("rsa_a.pub.pem");
    TestConfig::new()
        .server("grace_timeout", "10s")
        .clerk("jwt_key_file", pem)
        .route(TestRoute::new("/", upstream).auth("public"))
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish() {
    let (held, upstream) = Held::start().await;
    let running = run_binary(&public_config(&format!("http://{upstream}")), &[]).await;
    let (proxy, admin) = (running.proxy, running.admin);
    let slow = tokio::spawn(async move { send(proxy, get_request("/slow", &[])).await });
    held.arrived().await;
    running.signal("TERM");
    eventually("SIGTERM to turn readiness to 503", async || {
        let readyz = send(admin, get_request("/readyz", &[])).await;
        readyz.status == 503 && String::from_utf8_lossy(&readyz.body).contains("shutdown: draining")
    })
    .await;
    assert!(!slow.is_finished(), "the request is still in flight after SIGTERM");
    held.release();
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request completed");
    assert_eq!(running.exit_code().await, Some(0));
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_platform_roots() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let files =
        clerk_gateway::config::TlsFiles { cert: format!("{dir}/tls.crt").into(), key: format!("{dir}/tls.key").into() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let options = clerk_gateway::server::ServeOptions {
        tls: Some(clerk_gateway::tls::Certificate::load(&files).unwrap().acceptor()),
        ..Default::default()
    };
    tokio::spawn(clerk_gateway::server::serve(listener, options, Echo, std::future::pending::<()>()));
    let config = public_config(&format!("https://{upstream}"));

    let ca = format!("{dir}/tls_ca.crt");
    let trusting = run_binary(&config, &[("SSL_CERT_FILE", &ca)]).await;
    let addr = trusting.proxy;
    let reply = send(addr, get_request("/over-tls", &[])).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.seen_path(), "/over-tls");
    assert_eq!(reply.echo()["version"], "HTTP/2.0", "an upstream offering h2 by ALPN is spoken to in HTTP/2");
    // HTTP/2 has no Upgrade: a WebSocket to the same upstream goes over HTTP/1.1.
    let upgrade =
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n";
    let switched = raw_head(addr, upgrade.as_bytes()).await;
    assert_eq!(raw_status(&switched), 101, "{switched}");
    trusting.stop().await;

    let strict = run_binary(&config, &[("SSL_CERT_FILE", "/nonexistent")]).await;
    let addr = strict.proxy;
    assert_eq!(send(addr, get_request("/over-tls", &[])).await.status, 502, "an untrusted certificate is refused");
    strict.stop().await;
}

#[test]
fn environment_overrides_win_over_the_file_and_check_says_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, GOOD).unwrap();
    let check = |env: &[(&str, &str)]| {
        gateway(&["check", "-c", path.to_str().unwrap()]).envs(env.iter().copied()).output().unwrap()
    };
    let out = check(&[("CLERK_GATEWAY_SERVER_LISTEN", "127.0.0.1:7777"), ("CLERK_GATEWAY_CLERK_CLOCK_SKEW", "9s")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("listen     127.0.0.1:7777 (http)"), "{stdout}");
    assert!(stdout.contains("skew       9s"), "{stdout}");
    let from_env =
        stdout.lines().find(|l| l.trim_start().starts_with("from env")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        from_env
            .contains("server.listen (CLERK_GATEWAY_SERVER_LISTEN), clerk.clock_skew (CLERK_GATEWAY_CLERK_CLOCK_SKEW)"),
        "{from_env}"
    );
    let from_file = stdout.lines().find(|l| l.trim_start().starts_with("from file")).unwrap();
    assert!(from_file.contains("clerk.publishable_key") && !from_file.contains("server.listen"), "{from_file}");

    let out = check(&[("CLERK_GATEWAY_SERVER_WORKERS", "lots")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("server.workers: CLERK_GATEWAY_SERVER_WORKERS: expected a whole number"), "{stderr}");
}

#[tokio::test]
async fn run_takes_environment_overrides_too() {
    let upstream = spawn_upstream().await;
    let config = public_config(&format!("http://{upstream}"));
    let running = run_binary(&config, &[("CLERK_GATEWAY_AUTH_ENDPOINTS_PREFIX", "/who")]).await;
    let moved = send(running.proxy, get_request("/who/me", &[])).await;
    assert_eq!(
        (moved.status, moved.json()["error"].as_str()),
        (401, Some("unauthenticated")),
        "served at the new prefix"
    );
    assert_eq!(
        send(running.proxy, get_request("/auth/me", &[])).await.seen_path(),
        "/auth/me",
        "the old one is a route"
    );
    assert_eq!(running.stop().await, Some(0));
}
