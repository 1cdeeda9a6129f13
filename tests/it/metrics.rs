//! `/metrics` beyond the counters each feature's tests read: requests in flight until their
//! response is sent, the whole-request duration histogram by route name, the build, and the
//! process's own resources.

use crate::common::*;

#[tokio::test]
async fn in_flight_requests_durations_by_route_name_build_and_process() {
    let (held, upstream) = Held::start().await;
    let pem = format!("{}/tests/fixtures/rsa_a.pub.pem", env!("CARGO_MANIFEST_DIR"));
    let route = TestRoute::new("/", &format!("http://{upstream}")).auth("public").set("name", "app");
    let gw = TestGateway::start(&TestConfig::new().clerk("jwt_key_file", pem).route(route)).await;
    assert_eq!(gw.metric("clerk_gateway_requests_in_flight").await, 0.0);
    let addr = gw.addr;
    let slow = tokio::spawn(async move { send(addr, get_request("/slow", &[])).await });
    held.arrived().await;
    assert_eq!(gw.metric("clerk_gateway_requests_in_flight").await, 1.0, "counted while in flight");
    held.release();
    assert_eq!(slow.await.unwrap().status, 200);
    eventually("the request to leave the in-flight gauge", async || {
        gw.metric("clerk_gateway_requests_in_flight").await == 0.0
    })
    .await;
    assert_eq!(gw.metric("clerk_gateway_request_duration_seconds_count{route=\"app\"}").await, 1.0);
    assert_eq!(gw.metric("clerk_gateway_upstream_duration_seconds_count{route=\"app\"}").await, 1.0);
    assert_eq!(gw.metric("clerk_gateway_requests_total{route=\"app\",status=\"200\"}").await, 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(gw.metric(&format!("clerk_gateway_build_info{{version=\"{version}\"}}")).await, 1.0);
    assert!(gw.metric("process_resident_memory_bytes").await > 1e6);
    assert!(gw.metric("process_open_fds").await >= 3.0);
    assert!(gw.metric("process_cpu_seconds_total").await >= 0.0);
    assert!(gw.metric("clerk_gateway_connections_open").await >= 0.0);
}
