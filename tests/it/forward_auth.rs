//! Forward-auth mode: the verify endpoint answers for the request an ingress names, with
//! proxy mode's routes and rules. In process: nginx-, Traefik- and Envoy-style questions,
//! only trusted proxies naming the original request, no route as 403, the endpoint off by
//! default. Through a real nginx (`auth_request`) in front of the echo upstream: signed in,
//! signed out, a browser sent to sign in, spoofed headers, a 403 rule, a public route.
//!
//! The nginx test needs Debian's `nginx-light` (`.ci/run` installs it and sets
//! `CI_REQUIRE_NGINX=1`); elsewhere it says it was skipped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

const VERIFY: &str = "/_clerk_gateway/verify";

async fn forward_auth_gateway(trusted: bool) -> (TestGateway, SocketAddr) {
    let jwks = FakeJwks::with_key_a().await;
    let upstream = spawn_upstream().await;
    let mut config = TestConfig::standard(&jwks, upstream).section("forward_auth", "enabled", true);
    if trusted {
        config = config.server("trusted_proxies", strings(&["127.0.0.1/32"]));
    }
    (TestGateway::start(&config).await, upstream)
}

fn bearer() -> String {
    format!("Bearer {}", key_a().token(&claims()))
}

#[tokio::test]
async fn the_verify_endpoint_answers_for_the_request_a_trusted_proxy_names() {
    let (gw, _) = forward_auth_gateway(true).await;
    let token = bearer();
    // nginx auth_request: X-Original-URI and -Method.
    let nginx = [("x-original-uri", "/api/orders?x=1"), ("x-original-method", "GET"), ("authorization", &token)];
    let ok = gw.get(VERIFY, &nginx).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-user-id"), Some("user_alice"));
    assert_eq!(ok.header("x-session-id"), Some("sess_1"));
    assert_eq!(ok.header("x-auth-status"), Some("signed-in"));
    assert!(ok.body.is_empty());
    let refused = gw.get(VERIFY, &[("x-original-uri", "/api/orders"), ("x-original-method", "POST")]).await;
    assert_eq!((refused.status, refused.reason()), (401, "session-token-and-uat-missing".to_owned()));
    let forbidden = gw.get(VERIFY, &[("x-original-uri", "/admin/"), ("authorization", &token)]).await;
    assert_eq!((forbidden.status, forbidden.json()), (403, json!({"error": "forbidden", "rule": "org_role"})));
    let public = gw.get(VERIFY, &[("x-original-uri", "/public/x")]).await;
    assert_eq!((public.status, public.header("x-user-id")), (200, None));
    let optional = gw.get(VERIFY, &[("x-original-uri", "/optional/x")]).await;
    assert_eq!((optional.status, optional.header("x-auth-status")), (200, Some("signed-out")));
    let nowhere = gw.get(VERIFY, &[("x-original-uri", "/nowhere")]).await;
    assert_eq!((nowhere.status, nowhere.json()), (403, json!({"error": "forbidden", "reason": "no-route"})));
    for ambiguous in ["/api/../public/x", "/public//x", "/%70ublic/x", "/public/%2F", "/public/x;a"] {
        let reply = gw.get(VERIFY, &[("x-original-uri", ambiguous)]).await;
        assert_eq!(reply.status, 400, "{ambiguous}: the upstream could read it otherwise");
    }

    // A browser page load: nginx gets a 401 with the sign-in Location; Traefik a redirect.
    let page = [("accept", "text/html"), ("x-forwarded-host", "app.example.com"), ("x-forwarded-proto", "https")];
    let for_nginx = gw.get(VERIFY, &[&page[..], &[("x-original-uri", "/api/page")]].concat()).await;
    assert_eq!(for_nginx.status, 401);
    let location = for_nginx.header("location").unwrap();
    assert!(location.starts_with("https://accounts.example.com/sign-in?redirect_url="), "{location}");
    assert!(location.contains("gateway.test%2Fapi%2Fpage"), "nginx names the host in Host alone: {location}");
    let traefik = [("x-forwarded-uri", "/api/page"), ("x-forwarded-method", "GET")];
    let for_traefik = gw.get(VERIFY, &[&page[..], &traefik[..]].concat()).await;
    assert_eq!(for_traefik.status, 307);
    let location = for_traefik.header("location").unwrap();
    assert!(location.contains("app.example.com%2Fapi%2Fpage"), "Traefik's X-Forwarded-Host: {location}");

    // A request named twice, or in two ways, is refused: a client may have added one.
    let twice: Vec<[(&str, &str); 2]> = vec![
        [("x-original-uri", "/api/x"), ("x-original-url", "http://gateway.test/public/x")],
        [("x-original-uri", "/api/x"), ("x-forwarded-uri", "/public/x")],
        [("x-original-uri", "/api/x"), ("x-original-uri", "/public/x")],
        [("x-original-uri", "/api/x"), ("x-original-method", "GET")],
    ];
    for headers in &twice[..3] {
        let reply = gw.get(VERIFY, headers).await;
        assert_eq!((reply.status, reply.reason()), (400, "ambiguous-original".to_owned()), "{headers:?}");
    }
    let both_methods = [twice[3][0], twice[3][1], ("x-original-method", "POST")];
    assert_eq!(gw.get(VERIFY, &both_methods).await.reason(), "ambiguous-original");
    let envoy_dotted = gw.get(&format!("{VERIFY}/api/../public/x"), &[]).await;
    assert_eq!((envoy_dotted.status, envoy_dotted.reason()), (400, "ambiguous-path".to_owned()));

    // Envoy ext_authz with path_prefix: the original path follows the verify path.
    let envoy = gw.get(&format!("{VERIFY}/api/orders?x=1"), &[("authorization", &token)]).await;
    assert_eq!((envoy.status, envoy.header("x-user-id")), (200, Some("user_alice")));
    let envoy_admin = gw.get(&format!("{VERIFY}/admin/x"), &[("authorization", &token)]).await;
    assert_eq!(envoy_admin.status, 403);
    let machine = gw.get(VERIFY, &[("x-original-uri", "/api/x"), ("authorization", "Bearer ak_x")]).await;
    assert_eq!((machine.status, machine.reason()), (401, "token-type-mismatch".to_owned()));
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_original_request() {
    let (gw, _) = forward_auth_gateway(false).await;
    // Untrusted: X-Original-URI is ignored, so no request is named at all.
    let spoofed = gw.get(VERIFY, &[("x-original-uri", "/public/x")]).await;
    assert_eq!((spoofed.status, spoofed.reason()), (400, "no-original-request".to_owned()));
    let envoy = gw.get(&format!("{VERIFY}/public/x"), &[]).await;
    assert_eq!(envoy.status, 200, "the request itself may still be asked about");
    let api = gw.get(&format!("{VERIFY}/api/x"), &[("x-original-uri", "/public/x")]).await;
    assert_eq!(api.status, 401);
}

#[tokio::test]
async fn the_verify_endpoint_is_off_by_default() {
    let (gw, _jwks) = standard().await;
    assert_eq!(gw.get(VERIFY, &[("x-original-uri", "/public/x")]).await.status, 404);
}

fn nginx_binary() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(std::env::var_os("CI_REQUIRE_NGINX").is_none(), "CI_REQUIRE_NGINX is set but nginx is missing");
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light); .ci/run runs this test");
    }
    found
}

/// nginx in front of `upstream`, asking `gateway` with `auth_request` and passing on the
/// identity headers it answers with (and nothing a client sent under those names).
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &str, gateway: SocketAddr, upstream: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let d = dir.path().display();
        let identity = [
            "x_user_id",
            "x_session_id",
            "x_org_id",
            "x_org_role",
            "x_org_slug",
            "x_org_permissions",
            "x_user_email",
            "x_user_metadata",
            "x_user",
            "x_auth_status",
            "x_auth_token_type",
            "x_auth_token_id",
            "x_machine_id",
            "x_auth_scopes",
            "x_clerk_gateway_assertion",
        ];
        let set: String = identity
            .iter()
            .map(|h| {
                format!("auth_request_set ${h} $upstream_http_{h}; proxy_set_header {} ${h};\n", h.replace('_', "-"))
            })
            .collect();
        let conf = format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log info;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen {addr};
    location / {{
      auth_request /_auth;
      {set}
      auth_request_set $auth_location $upstream_http_location;
      error_page 401 = @signin;
      proxy_set_header Host $host;
      proxy_pass http://{upstream};
    }}
    location = /_auth {{
      internal;
      proxy_pass http://{gateway}{VERIFY};
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header Host $host;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URL \"\";
      proxy_set_header X-Forwarded-Uri \"\";
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location @signin {{
      if ($auth_location = \"\") {{ return 401; }}
      return 302 $auth_location;
    }}
  }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut command = Command::new(binary);
        command.args(["-p", &d.to_string(), "-e", &format!("{d}/error.log"), "-c", conf_path.to_str().unwrap()]);
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("nginx starts");
        let nginx = Nginx { child, addr, _dir: dir };
        eventually("nginx listens", async || tokio::net::TcpStream::connect(addr).await.is_ok()).await;
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
    let Some(binary) = nginx_binary() else { return };
    let (gw, upstream) = forward_auth_gateway(true).await;
    let nginx = Nginx::start(binary, gw.addr, upstream).await;
    let token = bearer();
    let get = async |path: &str, headers: &[(&str, &str)]| {
        tokio::time::timeout(Duration::from_secs(10), send(nginx.addr, get_request(path, headers))).await.unwrap()
    };

    let spoofs =
        [("x-user-id", "user_evil"), ("x-org-permissions", "org:all:all"), ("x-clerk-gateway-assertion", "e30")];
    let signed_in = get("/api/orders", &[&[("authorization", token.as_str())][..], &spoofs[..]].concat()).await;
    assert_eq!(signed_in.seen("x-user-id").as_deref(), Some("user_alice"));
    assert_eq!((signed_in.seen("x-org-permissions"), signed_in.seen("x-clerk-gateway-assertion")), (None, None));
    assert_eq!(signed_in.seen("x-session-id").as_deref(), Some("sess_1"));
    assert_eq!(signed_in.seen("x-auth-token-type").as_deref(), Some("session_token"));
    assert_eq!(signed_in.seen_path(), "/api/orders");

    let signed_out = get("/api/orders", &[("x-user-id", "user_evil"), ("x-original-uri", "/public/x")]).await;
    assert_eq!(signed_out.status, 401, "a spoofed X-Original-URI is replaced by nginx's own");
    for (name, value) in [("x-original-url", "http://gateway.test/public/x"), ("x-forwarded-uri", "/public/x")] {
        let other_form = get("/api/orders", &[(name, value)]).await;
        assert_eq!(other_form.status, 401, "a client's {name} is cleared by nginx");
    }
    let other_host = get("/admin/x", &[("authorization", &token), ("x-forwarded-host", "elsewhere.test")]).await;
    assert_eq!(other_host.status, 403, "the host is nginx's own");

    let browser = get("/api/page", &[("accept", "text/html")]).await;
    assert_eq!(browser.status, 302);
    let location = browser.header("location").unwrap();
    assert!(location.starts_with("https://accounts.example.com/sign-in?redirect_url="), "{location}");

    let spoofed = get("/optional/x", &[("x-user-id", "user_evil"), ("x-org-role", "org:admin")]).await;
    assert_eq!(spoofed.seen("x-auth-status").as_deref(), Some("signed-out"));
    assert_eq!((spoofed.seen("x-user-id"), spoofed.seen("x-org-role")), (None, None));

    let forbidden = get("/admin/x", &[("authorization", &token)]).await;
    assert_eq!(forbidden.status, 403);

    let public = get("/public/x", &[("x-auth-status", "signed-in")]).await;
    assert_eq!((public.seen("x-user-id"), public.seen("x-auth-status")), (None, None));
}

#[test]
fn the_verify_path_is_checked_key_by_key() {
    let problems = |extra: &str| {
        let text = format!("[clerk]\njwt_key = '''{}'''\n{extra}", fixture("rsa_a.pub.pem"));
        clerk_gateway::Config::from_toml(&text, &|_| None).map(|_| ()).unwrap_err().to_string()
    };
    let on = |path: &str| format!("[forward_auth]\nenabled = true\npath = \"{path}\"\n");
    assert!(problems(&on("/")).contains("forward_auth.path: needs a path of its own"));
    assert!(problems(&on("/a/../b")).contains("forward_auth.path: \"/a/../b\" is not a normalized path"));
    assert!(problems(&on("/auth/verify")).contains("forward_auth.path: overlaps auth_endpoints.prefix"));
    let webhook = format!("{}[webhook]\nsigning_secret = \"{WEBHOOK_SECRET}\"\n", on("/webhooks"));
    assert!(problems(&webhook).contains("forward_auth.path: overlaps webhook.path"));
}
