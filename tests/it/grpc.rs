//! gRPC and HTTP/2 upstreams: a real grpcio server behind an `h2c://` route, called by a
//! real grpcio client through the gateway (unary and server-streaming, with and without a
//! token, refused by a rule, upstream down), and trailers passing both ways over h2c.
//!
//! Needs Python with grpcio (`.ci/run` makes a venv, sets `CLERK_GATEWAY_TEST_PYTHON` to it
//! and `CI_REQUIRE_GRPC=1`); elsewhere the grpcio test says it was skipped.

use std::process::Command;

use bytes::Bytes;
use clerk_gateway::body::Body;
use clerk_gateway::server::Handler;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::common::*;

const ECHO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py");

/// The Python that has grpcio, or `None` (the test is then skipped, unless CI requires it).
fn python() -> Option<String> {
    let (python, ok) = test_python("grpc");
    if !ok {
        assert!(std::env::var_os("CI_REQUIRE_GRPC").is_none(), "CI_REQUIRE_GRPC is set but {python} has no grpcio");
        eprintln!("SKIPPED: {python} cannot import grpc (pip install grpcio); .ci/run runs this test");
    }
    ok.then_some(python)
}

/// One grpcio call through the gateway: the status, details, messages and trailers.
async fn call(python: &str, gateway: std::net::SocketAddr, service: &str, method: &str, token: Option<&str>) -> Value {
    let mut args = vec![ECHO.to_owned(), "call".into(), gateway.to_string(), service.into(), method.into()];
    args.extend(token.map(str::to_owned));
    let python = python.to_owned();
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("client output {stdout:?}, stderr {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn grpcio_calls_pass_through_h2c_and_refusals_are_grpc_statuses() {
    let Some(python) = python() else { return };
    let mut serve = Command::new(&python);
    serve.args([ECHO, "serve"]);
    let server = ChildServer::start(serve);
    let jwks = FakeJwks::with_key_a().await;
    let backend = format!("h2c://{}", server.addr);
    let dead = format!("h2c://{}", closed_port().await);
    let config = TestConfig::new()
        .clerk("jwks_url", jwks.url())
        .clerk("issuer", ISSUER)
        .route(TestRoute::new("/echo.Echo/", &backend))
        .route(TestRoute::new("/admin.Echo/", &backend).require("org_role", strings(&["org:admin"])))
        .route(TestRoute::new("/dead.Echo/", &dead).auth("public"));
    let gw = TestGateway::start(&config).await;
    let token = key_a().token(&claims());
    let seen = json!({"authorization": true, "session_id": "sess_1", "user_id": "user_alice"}).to_string();

    let unary = call(&python, gw.addr, "echo.Echo", "unary", Some(&token)).await;
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["messages"], json!([seen]), "the backend saw the verified user, not the spoofed one");
    assert_eq!(unary["trailers"]["x-echo-trailer"], "unary:hello", "the upstream's trailers reach the client");

    let stream = call(&python, gw.addr, "echo.Echo", "stream", Some(&token)).await;
    assert_eq!(stream["code"], "OK", "{stream}");
    assert_eq!(stream["messages"], json!(["hello:0", "hello:1", "hello:2", seen]));
    assert_eq!(stream["trailers"]["x-echo-trailer"], "stream:hello");

    for method in ["unary", "stream"] {
        let anonymous = call(&python, gw.addr, "echo.Echo", method, None).await;
        assert_eq!(anonymous["code"], "UNAUTHENTICATED", "{anonymous}");
        assert_eq!(anonymous["details"], "unauthenticated: session-token-and-uat-missing");
        assert_eq!(anonymous["messages"], json!([]));
    }
    let expired = key_a().token(&claims_with("exp", json!(NOW - 30)));
    let refused = call(&python, gw.addr, "echo.Echo", "unary", Some(&expired)).await;
    assert_eq!(
        (refused["code"].as_str(), refused["details"].as_str()),
        (Some("UNAUTHENTICATED"), Some("unauthenticated: token-expired"))
    );
    let forbidden = call(&python, gw.addr, "admin.Echo", "unary", Some(&token)).await;
    assert_eq!(
        (forbidden["code"].as_str(), forbidden["details"].as_str()),
        (Some("PERMISSION_DENIED"), Some("forbidden: org_role"))
    );
    let down = call(&python, gw.addr, "dead.Echo", "stream", None).await;
    assert_eq!((down["code"].as_str(), down["details"].as_str()), (Some("UNAVAILABLE"), Some("bad_gateway")));
}

/// An h2c upstream that answers with a trailer naming the trailer it was sent.
#[derive(Clone)]
struct TrailerEcho;

impl Handler for TrailerEcho {
    async fn call(&self, _remote: &clerk_gateway::server::Remote, request: Request<Incoming>) -> Response<Body> {
        let version = format!("{:?}", request.version());
        let collected = request.into_body().collect().await.unwrap();
        let sent = collected.trailers().and_then(|t| t.get("x-client-trailer")).cloned();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-upstream-trailer", sent.unwrap_or(HeaderValue::from_static("none")));
        trailers.insert("x-upstream-version", HeaderValue::try_from(version).unwrap());
        let body = Full::new(collected.to_bytes())
            .with_trailers(async move { Some(Ok(trailers)) })
            .map_err(|never: std::convert::Infallible| match never {});
        Response::new(body.boxed())
    }
}

#[tokio::test]
async fn trailers_pass_both_ways_through_an_h2c_upstream() {
    let upstream = spawn_forever(TrailerEcho).await;
    let config = TestConfig::new()
        .clerk("jwt_key_file", fixture_path("rsa_a.pub.pem"))
        .route(TestRoute::new("/", &format!("h2c://{upstream}")).auth("public"));
    let gw = TestGateway::start(&config).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut trailers = HeaderMap::new();
    trailers.insert("x-client-trailer", HeaderValue::from_static("from-the-client"));
    let body = Full::new(Bytes::from_static(b"payload"))
        .with_trailers(async move { Some(Ok::<_, std::convert::Infallible>(trailers)) })
        .boxed_unsync();
    let request = Request::post(format!("http://{}/rpc", gw.addr)).header("te", "trailers").body(body).unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the response has trailers");
    assert_eq!(trailers["x-upstream-trailer"], "from-the-client");
    assert_eq!(trailers["x-upstream-version"], "HTTP/2.0", "h2c:// speaks HTTP/2 to the upstream");
    assert_eq!(collected.to_bytes(), "payload");
}
