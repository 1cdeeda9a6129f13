#!/usr/bin/env bash
# Proxy throughput and latency: the gateway against a direct request and against nginx as a
# plain reverse proxy, all to the same nginx upstream on loopback, in one run.
#
#   bench/proxy.sh            (needs wrk, nginx and openssl; apt-get install wrk nginx-light)
#
# Prints requests/s and p50/p99 for each scenario and the ratios that matter. Not part of CI:
# figures depend on the machine; compare only numbers from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
WORKERS=${WORKERS:-1}   # gateway worker threads; nginx below runs one worker process
CONNS=${CONNS:-32}
source bench/common.sh

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream backend { server 127.0.0.1:18001; keepalive 64; }
    server {
        listen 127.0.0.1:18001 backlog=4096;
        location / { default_type text/plain; return 200 "hello from the upstream, 64 bytes of body padding padding pad\n"; }
    }
    server {
        listen 127.0.0.1:18002 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &

cat > "$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:18080"
drain_delay = "0s"
workers = $WORKERS
[admin]
listen = "127.0.0.1:19090"
[clerk]
jwt_key_file = "tests/fixtures/rsa_a.pub.pem"
issuer = "https://clerk.example.com"
authorized_parties = ["https://app.example.com"]
[mirror]
path = "$work/mirror.db"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:18001"
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:18001"
auth = "public"
TOML
start_gateway 19090

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"ins_a"}' | b64url)
payload=$(printf '{"sub":"user_bench","sid":"sess_bench","iss":"https://clerk.example.com","azp":"https://app.example.com","iat":%d,"nbf":%d,"exp":%d,"v":2,"fea":"o:billing","o":{"id":"org_1","rol":"admin","slg":"acme","per":"read,manage","fpm":"3"}}' "$now" $((now - 5)) $((now + 3600)) | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign tests/fixtures/rsa_a.pem | b64url)
token="$header.$payload.$signature"

status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" http://127.0.0.1:18080/api/x)
[ "$status" = 200 ] || { echo "the bench token was refused ($status)"; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: __session=$token; __client_uat=$((now - 10))" http://127.0.0.1:18080/api/x)
[ "$status" = 200 ] || { echo "the bench cookie was refused ($status)"; exit 1; }

declare -A rps
measure() {
  local name=$1; shift
  local out; out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$@")
  rps[$name]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  printf '%-22s %10s req/s   p50 %-9s p99 %s\n' "$name" "${rps[$name]}" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
measure direct http://127.0.0.1:18001/api/x
measure nginx-proxy http://127.0.0.1:18002/api/x
measure gateway-public http://127.0.0.1:18080/public/x
measure gateway-bearer -H "Authorization: Bearer $token" http://127.0.0.1:18080/api/x
measure gateway-cookie -H "Cookie: __session=$token; __client_uat=$((now - 10))" http://127.0.0.1:18080/api/x
measure gateway-401 http://127.0.0.1:18080/api/x
ratio() { awk -v a="${rps[$1]}" -v b="${rps[$2]}" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "gateway-bearer / nginx-proxy    = $(ratio gateway-bearer nginx-proxy)"
echo "gateway-public / nginx-proxy    = $(ratio gateway-public nginx-proxy)"
echo "gateway-bearer / gateway-public = $(ratio gateway-bearer gateway-public)   (cost of auth on a cached token)"
echo "gateway-bearer / direct         = $(ratio gateway-bearer direct)"
