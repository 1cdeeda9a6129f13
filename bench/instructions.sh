#!/usr/bin/env bash
# Instructions per request, by scenario, counted by callgrind in the gateway process: a
# figure the machine's other load does not move, for comparing two builds of the hot path.
#
#   bench/instructions.sh          (needs valgrind, ab, nginx, openssl; N=2000 by default)
#
# Builds `--profile profiling` (the release build with symbols) unless GATEWAY_BIN names a
# binary, and leaves one callgrind file per scenario in bench/out/ (callgrind_annotate them).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
out=bench/out
mkdir -p "$out"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build --profile profiling -q
  GATEWAY_BIN=target/profiling/clerk-gateway
fi

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:18101;
        location / { default_type text/plain; return 200 "hello from the upstream, 64 bytes of body padding padding pad\n"; }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &

cat > "$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:18180"
drain_delay = "0s"
workers = 1
[admin]
listen = "127.0.0.1:19190"
[clerk]
jwt_key_file = "tests/fixtures/rsa_a.pub.pem"
issuer = "https://clerk.example.com"
authorized_parties = ["https://app.example.com"]
[mirror]
path = "$work/mirror.db"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:18101"
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:18101"
auth = "public"
TOML
# The access log stays on (its default level), written to a file as a deployment would.
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.%p" \
  "$GATEWAY_BIN" run -c "$work/gateway.toml" 2>"$work/gateway.log" &
gateway_pid=$!
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:19190/readyz && break; sleep 0.2; done
pid=$(pgrep -f "callgrind.*$work/gateway.toml" | head -1)

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"ins_a"}' | b64url)
payload=$(printf '{"sub":"user_bench","sid":"sess_bench","iss":"https://clerk.example.com","azp":"https://app.example.com","iat":%d,"nbf":%d,"exp":%d,"v":2,"fea":"o:billing","o":{"id":"org_1","rol":"admin","slg":"acme","per":"read,manage","fpm":"3"}}' "$now" $((now - 5)) $((now + 3600)) | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign tests/fixtures/rsa_a.pem | b64url)
token="$header.$payload.$signature"

# run COUNT AB-ARGS...: COUNT requests on 4 keep-alive connections.
run() { local count=$1; shift; ab -q -k -c4 -n "$count" "$@" >/dev/null; }

printf '%-16s %12s\n' scenario "Ir/request"
count() {
  local name=$1; shift
  run 200 "$@"   # warm: connections, caches
  callgrind_control -z "$pid" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  run "$N" "$@"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$name" "$pid" >/dev/null
  sleep 0.5
  local file; file=$(ls -t "$out"/callgrind.$pid.* | head -1)
  local ir; ir=$(awk '/^totals:/ {print $2; exit}' "$file")
  mv "$file" "$out/callgrind.$name"
  printf '%-16s %12d\n' "$name" $((ir / N))
}
count public http://127.0.0.1:18180/public/x
count bearer -H "Authorization: Bearer $token" http://127.0.0.1:18180/api/x
count cookie -H "Cookie: __session=$token; __client_uat=$((now - 10))" http://127.0.0.1:18180/api/x
count unauthenticated http://127.0.0.1:18180/api/x
