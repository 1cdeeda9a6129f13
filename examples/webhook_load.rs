//! Webhook ingest load: signs N `user.created` deliveries (distinct users and svix ids) and
//! posts them to a running gateway with C concurrent keep-alive connections, then prints
//! events per second. Used by `bench/mirror.sh`; not part of the test suite.
//!
//!   cargo run --release --example webhook_load -- http://127.0.0.1:18080/webhooks/clerk whsec_… 20000 32

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

fn sign(key: &aws_lc_rs::hmac::Key, id: &str, ts: i64, body: &[u8]) -> String {
    let mut content = format!("{id}.{ts}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(aws_lc_rs::hmac::sign(key, &content)))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, secret, count, concurrency] = args.as_slice() else {
        eprintln!("usage: webhook_load URL WHSEC COUNT CONCURRENCY");
        std::process::exit(1);
    };
    let (count, concurrency): (usize, usize) =
        (count.parse().expect("COUNT"), concurrency.parse().expect("CONCURRENCY"));
    let key_bytes = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("whsec_ secret");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let deliveries: Arc<Vec<(String, String, Bytes)>> = Arc::new(
        (0..count)
            .map(|i| {
                let id = format!("msg_load_{now}_{i}");
                let body = serde_json::json!({
                    "type": "user.created", "object": "event", "timestamp": now * 1000,
                    "data": {
                        "id": format!("user_load_{i}"), "object": "user", "first_name": "Load", "last_name": format!("{i}"),
                        "primary_email_address_id": "idn_1",
                        "email_addresses": [{"id": "idn_1", "email_address": format!("load{i}@example.com")}],
                        "public_metadata": {"plan": "pro", "i": i}, "private_metadata": {}, "unsafe_metadata": {},
                        "created_at": now * 1000, "updated_at": now * 1000
                    }
                })
                .to_string();
                let signature = sign(&key, &id, now, body.as_bytes());
                (id, signature, Bytes::from(body))
            })
            .collect(),
    );
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, deliveries, next, failures, url) =
                (client.clone(), deliveries.clone(), next.clone(), failures.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, signature, body)) = deliveries.get(i) else { break };
                    let request = http::Request::post(url.as_str())
                        .header("content-type", "application/json")
                        .header("svix-id", id.as_str())
                        .header("svix-timestamp", now.to_string())
                        .header("svix-signature", signature.as_str())
                        .body(Full::new(body.clone()))
                        .expect("request");
                    match client.request(request).await {
                        Ok(response) if response.status() == 200 => {
                            let _ = response.into_body().collect().await;
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    println!("{count} deliveries, {failed} failed, {elapsed:.2} s, {:.0} events/s", count as f64 / elapsed);
}
