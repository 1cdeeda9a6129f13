//! Webhook deliveries as Svix sends them: the test signing secret, a signature computed
//! here independently of the gateway, event envelopes, and `TestGateway::deliver`.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use super::client::{Reply, send};
use super::gateway::TestGateway;
use super::{NOW, NOW_MS};

pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `svix-signature` for a delivery, computed here independently of the gateway.
pub fn svix_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let key_bytes = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(aws_lc_rs::hmac::sign(&key, &content)))
}

/// An event envelope.
pub fn event(event_type: &str, data: Value) -> Value {
    json!({"data": data, "object": "event", "type": event_type, "timestamp": NOW_MS, "instance_id": "ins_test"})
}

impl TestGateway {
    /// POSTs a correctly signed delivery to `/webhooks/clerk`.
    pub async fn deliver(&self, id: &str, event: &Value) -> Reply {
        let body = event.to_string().into_bytes();
        let signature = svix_signature(WEBHOOK_SECRET, id, NOW, &body);
        let request = Request::post("/webhooks/clerk")
            .header("host", "gateway.test")
            .header("content-type", "application/json")
            .header("svix-id", id)
            .header("svix-timestamp", NOW.to_string())
            .header("svix-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(self.addr, request).await
    }
}
