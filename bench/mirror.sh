#!/usr/bin/env bash
# Mirror throughput: `clerk-gateway sync` of USERS users from a fake Backend API, and webhook
# ingest (signed user.created deliveries, 32 concurrent keep-alive connections) into a
# running gateway with a file mirror.
#
#   bench/mirror.sh           (needs python3; USERS=100000 EVENTS=20000 by default)
#
# Not part of CI: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-100000}
EVENTS=${EVENTS:-20000}
source bench/common.sh
cargo build --release -q --example webhook_load

python3 bench/fake_bapi.py 18090 "$USERS" &
secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
cat > "$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
drain_delay = "0s"
[admin]
listen = "127.0.0.1:19090"
[clerk]
secret_key = "sk_test_bench"
api_url = "http://127.0.0.1:18090"
jwt_key_file = "tests/fixtures/rsa_a.pub.pem"
[webhook]
signing_secret = "$secret"
[mirror]
path = "$work/mirror.db"
[[route]]
path = "/"
upstream = "http://127.0.0.1:1"
auth = "public"
TOML
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18090/v1/users/count && break; sleep 0.1; done

echo "== sync of $USERS users"
start=$(date +%s.%N)
RUST_LOG=warn target/release/clerk-gateway sync -c "$work/gateway.toml"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$USERS" 'BEGIN { printf "sync: %.1f s, %.0f users/s\n", e - s, n / (e - s) }'
RUST_LOG=warn target/release/clerk-gateway users count -c "$work/gateway.toml"

echo "== webhook ingest of $EVENTS deliveries"
start_gateway 19090
target/release/examples/webhook_load http://127.0.0.1:18080/webhooks/clerk "$secret" "$EVENTS" 32
curl -s http://127.0.0.1:19090/metrics | grep -E '^clerk_gateway_(mirror_users|webhook_events_total)'
