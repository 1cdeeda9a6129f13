#!/usr/bin/env bash
# The benchmark suite: the gateway against a direct request, nginx, HAProxy (plain and with
# jwt_verify), Apache with mod_oauth2, and apps that verify Clerk sessions themselves
# (FastAPI with clerk-backend-api, Node with @clerk/backend), all on loopback against one
# nginx `return 200` upstream. Writes BENCHMARKS.md (figures, and the issue's targets with
# PASS/MISS) and keeps every raw output under bench/out/suite-<time>/ (bench/out/suite-latest).
#
#   bench/suite.sh                         as root on Debian 12; installs what is missing
#   DURATION=2s ROUNDS=1 SCENARIOS=a,b,g EXTRAS=none REPORT=/tmp/B.md bench/suite.sh
#
# Settings (environment):
#   DURATION=10s ROUNDS=3 CONNS=32 WARMUP=1s  each measurement; rounds alternate (every
#                                   selected scenario once, in order, then again); the median
#                                   of the rounds is reported
#   SCENARIOS=all                   comma list: a b c d d2 e f g h1 h2 i j k l1 l2 m1 m2, or a
#                                   letter for its group (d = d,d2; h = h1,h2; l; m), or none
#   EXTRAS=all                      comma list of fixed,idle,ready,size, or none
#   FIXED_RATE=1000 FIXED_DURATION=$DURATION   the fixed-rate latency runs (oha -q)
#   IDLE_CONNS=10000 READY_RUNS=20 MIRROR_USERS=10000 H1_TOKENS=10000
#   GATEWAY_BIN=...                 the gateway binary (default: cargo build --release -q, and
#                                   target/release/clerk-gateway)
#   WRK_CPU=0 SERVER_CPU=1          the load generator's CPU; every server's (proxies, the
#   UPSTREAM_CPU=$SERVER_CPU        apps); the nginx upstream's
#   BENCH_VENV=target/bench-venv BENCH_TOOLS=target/bench-tools PYTHON=/usr/bin/python3
#   REPORT=BENCHMARKS.md            where the report goes (relative to the repo root)
#   KEEP_WORK=1                     keep the scratch directory (configs, server logs, tokens)
#   GATEWAY_ACCESS_LOG=on           the gateway's default access log (to /dev/null); off: RUST_LOG=warn
#
# Not part of CI: figures depend on the machine; compare only numbers from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source bench/suite/lib.sh

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
WARMUP=${WARMUP:-1s}
SCENARIOS=${SCENARIOS:-all}
EXTRAS=${EXTRAS:-all}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_DURATION=${FIXED_DURATION:-$DURATION}
IDLE_CONNS=${IDLE_CONNS:-10000}
READY_RUNS=${READY_RUNS:-20}
MIRROR_USERS=${MIRROR_USERS:-10000}
H1_TOKENS=${H1_TOKENS:-10000}
WRK_CPU=${WRK_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
UPSTREAM_CPU=${UPSTREAM_CPU:-$SERVER_CPU}
BENCH_VENV=${BENCH_VENV:-target/bench-venv}
BENCH_TOOLS=${BENCH_TOOLS:-target/bench-tools}
PYTHON=${PYTHON:-/usr/bin/python3}
REPORT=${REPORT:-BENCHMARKS.md}
OHA_VERSIONS=${OHA_VERSIONS:-1.16.0 1.10.0}
[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages with apt-get and reads /proc of servers running as other users)"
case $BENCH_VENV in /*) ;; *) BENCH_VENV=$root/$BENCH_VENV ;; esac
case $BENCH_TOOLS in /*) ;; *) BENCH_TOOLS=$root/$BENCH_TOOLS ;; esac
dur_s=$(secs "$DURATION")
pubkey=$root/tests/fixtures/rsa_a.pub.pem
privkey=$root/tests/fixtures/rsa_a.pem
otherkey=$root/tests/fixtures/rsa_b.pem
lua=$root/bench/suite/wrk.lua
BODY='hello from the upstream: 64 bytes of body, padding padding pad.'   # + "\n": 64 bytes

# Ports (181xx; other bench scripts use 18001 18080 18090 18101 18180 18480 19090 19190 19490)
P_UP=18110 P_NGINX=18111 P_HAP=18112 P_HAPJWT=18113 P_APACHE=18114
P_GW=18120 P_GW_ADMIN=18121 P_PY=18130 P_NODE=18140 P_BAPI=18150
P_IDLE=18160 P_IDLE_ADMIN=18161 P_READY=18170 P_READY_ADMIN=18171

ALL_SCENARIOS="a b c d d2 e f g h1 h2 i j k l1 l2 m1 m2"
selected=()
if [ "$SCENARIOS" = all ]; then
    read -ra selected <<<"$ALL_SCENARIOS"
elif [ "$SCENARIOS" != none ]; then
    IFS=, read -ra want <<<"$SCENARIOS"
    for s in $ALL_SCENARIOS; do
        for w in "${want[@]}"; do
            w=${w// /}
            if [ "$w" = "$s" ] || { [ ${#w} = 1 ] && [ "${s:0:1}" = "$w" ]; }; then selected+=("$s"); break; fi
        done
    done
    for w in "${want[@]}"; do
        w=${w// /}
        [[ " $ALL_SCENARIOS " == *" $w "* ]] || [[ " a b c d e f g h i j k l m " == *" $w "* ]] || die "unknown scenario '$w' (known: $ALL_SCENARIOS)"
    done
fi
[ ${#selected[@]} -gt 0 ] || [ "$EXTRAS" != none ] || die "nothing selected"
has() { [[ " ${selected[*]} " == *" $1 "* ]]; }
has_any() { local s; for s in "$@"; do has "$s" && return 0; done; return 1; }
extra() { [ "$EXTRAS" = all ] || [[ ",$EXTRAS," == *",$1,"* ]]; }

stamp=$(date +%Y%m%d-%H%M%S)
OUT=$root/bench/out/suite-$stamp
mkdir -p "$OUT"
ln -sfn "suite-$stamp" bench/out/suite-latest
work=$(mktemp -d /tmp/clerk-gateway-suite.XXXXXX)
exec > >(tee "$OUT/console.log") 2>&1

# Every process the suite starts is recorded here and stopped on exit (its whole tree).
started=()
cleanup() {
    local rc=$? pid p
    trap - EXIT INT TERM
    for pid in "${started[@]}"; do
        for p in $(tree_pids "$pid"); do kill -TERM "$p" 2>/dev/null || true; done
    done
    for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${started[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${started[@]}"; do
        for p in $(tree_pids "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
    done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
    # the servers' configs and logs go with the raw outputs (not the token files)
    mkdir -p "$OUT/servers"
    cp "$work"/*.conf "$work"/*.cfg "$work"/*.toml "$work"/*.log "$OUT/servers/" 2>/dev/null || true
    cp "$work"/apache/error.log "$OUT/servers/apache-error.log" 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then log "scratch directory kept: $work"; else rm -rf "$work"; fi
    [ $rc = 0 ] || log "failed (exit $rc); raw outputs in $OUT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Raise the open-files limit as far as allowed: 10,000 idle connections, the proxies' maxconn.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
log "open files limit: $(ulimit -n)"

# ---------------------------------------------------------------------------------------
# Tools
ensure_debian_tools
ensure_venv
PY=$BENCH_VENV/bin/python
NODE_FLAGS=()
if has_any m1 m2; then
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$node_major" -lt 20 ]; then
        # @clerk/backend 3 declares Node >= 20.9 and uses the global WebCrypto, which Node 18
        # (Debian 12's nodejs) has behind a flag; the checks before timing say if it works.
        log "WARNING: node $(node --version) is older than @clerk/backend wants (20.9); trying --experimental-global-webcrypto"
        NODE_FLAGS=(--experimental-global-webcrypto)
    fi
    ensure_node_modules
fi
if extra fixed; then ensure_oha; fi
if [ -z "${GATEWAY_BIN:-}" ]; then
    log "cargo build --release -q"
    cargo build --release -q
    GATEWAY_BIN=$root/target/release/clerk-gateway
fi
case $GATEWAY_BIN in /*) ;; *) GATEWAY_BIN=$root/$GATEWAY_BIN ;; esac
[ -x "$GATEWAY_BIN" ] || die "GATEWAY_BIN=$GATEWAY_BIN is not an executable"
SYSCALLS=1
if ! perf stat -e raw_syscalls:sys_enter -x, -o "$work/perf-check" -- true >/dev/null 2>&1; then
    log "WARNING: perf cannot count raw_syscalls:sys_enter here; syscalls per request are not measured"
    SYSCALLS=0
fi
log "gateway: $GATEWAY_BIN; scenarios: ${selected[*]:-none}; extras: $EXTRAS; $ROUNDS round(s) of $DURATION, $CONNS connections"

# ---------------------------------------------------------------------------------------
# Tokens (RS256 with tests/fixtures/rsa_a.pem, kid ins_a; the gateway, HAProxy, Apache and
# the apps all verify with rsa_a.pub.pem)
mint() { "$PY" bench/suite/mint.py "$@"; }
mint "$privkey" "$work/token.txt" 1 --sid-prefix sess_bench
mint "$privkey" "$work/token-mirror.txt" 1 --sid-prefix sess_mirror --sub user_0000042
mint "$privkey" "$work/token-expired.txt" 1 --sid-prefix sess_expired --exp-in -3600
mint "$otherkey" "$work/token-badsig.txt" 1 --sid-prefix sess_badsig   # signed by another key, kid ins_a
token=$(cat "$work/token.txt")
token_mirror=$(cat "$work/token-mirror.txt")
token_expired=$(cat "$work/token-expired.txt")
token_badsig=$(cat "$work/token-badsig.txt")
if has_any h1 h2 d2; then
    log "minting $H1_TOKENS tokens for h1"
    mint "$privkey" "$work/tokens-h1.txt" "$H1_TOKENS" --sid-prefix sess_h1
fi

# ---------------------------------------------------------------------------------------
# Servers. Each is pinned to SERVER_CPU with one worker process/thread; wrk to WRK_CPU.
PIN=(taskset -c "$SERVER_CPU")   # taskset execs the server: $! is the server's own pid
declare -A role_pid   # role -> pid of its top process

cat >"$work/nginx-up.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx-up.pid;
error_log $work/nginx-up-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$P_UP backlog=4096;
        location / { default_type text/plain; return 200 "$BODY\n"; }
        # the mirror route's upstream says which email it was given (scenario j's check)
        location /mirror/ { add_header X-Seen-Email \$http_x_user_email; default_type text/plain; return 200 "$BODY\n"; }
    }
}
NGINX
taskset -c "$UPSTREAM_CPU" nginx -c "$work/nginx-up.conf" -p "$work" &
role_pid[upstream]=$!
started+=($!)

if has b || extra fixed; then
    cat >"$work/nginx-proxy.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx-proxy.pid;
error_log $work/nginx-proxy-error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream backend { server 127.0.0.1:$P_UP; keepalive 64; keepalive_requests 100000000; keepalive_timeout 300s; }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
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
    "${PIN[@]}" nginx -c "$work/nginx-proxy.conf" -p "$work" &
    role_pid[nginx]=$!
    started+=($!)
fi

if has_any c d d2; then
    # One process, one thread. Frontend :P_HAP is a plain proxy; :P_HAPJWT verifies the
    # Bearer token as the gateway does with a PEM key: RS256 only, the signature
    # (jwt_verify), exp against the clock, iss and azp; then it passes sub and sid on as
    # X-User-Id / X-Session-Id (client copies removed first). Anything else: 401.
    cat >"$work/haproxy.cfg" <<HAP
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
frontend plain
    bind 127.0.0.1:$P_HAP
    default_backend upstream
frontend jwt
    bind 127.0.0.1:$P_HAPJWT
    http-request del-header x-user-id
    http-request del-header x-session-id
    http-request deny deny_status 401 unless { req.hdr(authorization) -m beg -i "bearer " }
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
    http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$pubkey") -m int 1 }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str "https://clerk.example.com" }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.azp') -m str "https://app.example.com" }
    http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('\$.sub')]
    http-request set-header X-Session-Id %[var(txn.bearer),jwt_payload_query('\$.sid')]
    default_backend upstream
backend upstream
    server up 127.0.0.1:$P_UP
HAP
    haproxy -c -q -f "$work/haproxy.cfg" || die "haproxy refused $work/haproxy.cfg"
    "${PIN[@]}" haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
    role_pid[haproxy]=$!
    started+=($!)
fi

if has e; then
    # mpm_event, one child process (ServerLimit 1) with 64 threads; mod_oauth2 verifies the
    # Bearer token with the same RSA key, given as a JWK (its `pubkey` type reads the PEM with
    # PEM_read_bio_PUBKEY, which an Apache directive cannot carry: no newlines), exp required.
    # mod_oauth2 keeps its default token cache (shm), as the gateway keeps its own.
    jwk=$("$PY" -c '
import base64, json, sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_public_key(open(sys.argv[1], "rb").read()).public_numbers()
b = lambda i: base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
print(json.dumps({"kty": "RSA", "kid": "ins_a", "use": "sig", "alg": "RS256", "n": b(k.n), "e": b(k.e)}, separators=(",", ":")))' "$pubkey")
    mkdir -p "$work/apache"
    chown www-data:www-data "$work/apache" 2>/dev/null || true
    M=/usr/lib/apache2/modules
    cat >"$work/apache.conf" <<APACHE
ServerRoot $work/apache
DefaultRuntimeDir $work/apache
PidFile $work/apache/httpd.pid
Mutex file:$work/apache default
ServerName 127.0.0.1
Listen 127.0.0.1:$P_APACHE
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_http_module $M/mod_proxy_http.so
LoadModule oauth2_module $M/mod_oauth2.so
User www-data
Group www-data
ErrorLog $work/apache/error.log
LogLevel warn
StartServers 1
ServerLimit 1
ThreadLimit 64
ThreadsPerChild 64
MinSpareThreads 1
MaxSpareThreads 64
MaxRequestWorkers 64
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
<Location "/api/">
    AuthType oauth2
    OAuth2TokenVerify jwk '$jwk' verify.exp=required
    Require valid-user
</Location>
ProxyPass "/api/" "http://127.0.0.1:$P_UP/api/"
APACHE
    apache2 -t -f "$work/apache.conf" 2>"$work/apache-check.log" || die "apache2 refused $work/apache.conf: $(cat "$work/apache-check.log")"
    "${PIN[@]}" apache2 -f "$work/apache.conf" -DFOREGROUND 2>"$work/apache-stderr.log" &
    role_pid[apache]=$!
    started+=($!)
fi

if has_any l1 l2; then
    (cd bench/suite && JWT_KEY_FILE=$pubkey exec taskset -c "$SERVER_CPU" "$BENCH_VENV/bin/uvicorn" fastapi_app:app \
        --host 127.0.0.1 --port "$P_PY" --no-access-log --log-level warning --timeout-keep-alive 300) \
        2>"$work/fastapi.log" &
    role_pid[fastapi]=$!
    started+=($!)
fi
if has_any m1 m2; then
    JWT_KEY_FILE=$pubkey "${PIN[@]}" node "${NODE_FLAGS[@]}" bench/suite/node_app.js "$P_NODE" 2>"$work/node.log" &
    role_pid[node]=$!
    started+=($!)
fi

gateway_toml() { # LISTEN ADMIN MIRROR [extra [server] lines]
    cat <<TOML
[server]
listen = "127.0.0.1:$1"
drain_delay = "0s"
workers = 1
${4:-}
[admin]
listen = "127.0.0.1:$2"
[clerk]
jwt_key_file = "$pubkey"
issuer = "https://clerk.example.com"
authorized_parties = ["https://app.example.com"]
[mirror]
path = "$3"
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:$P_UP"
[[route]]
path = "/public/"
upstream = "http://127.0.0.1:$P_UP"
auth = "public"
[[route]]
path = "/mirror/"
upstream = "http://127.0.0.1:$P_UP"
[[route]]
path = "/py/"
upstream = "http://127.0.0.1:$P_PY"
[[route]]
path = "/node/"
upstream = "http://127.0.0.1:$P_NODE"
TOML
}

need_gateway=0
if has_any f g h1 h2 i j k l2 m2 || extra fixed; then need_gateway=1; fi
if [ $need_gateway = 1 ]; then
    gateway_toml $P_GW $P_GW_ADMIN "$work/mirror.db" >"$work/gateway.toml"
    if has j; then
        # The mirror holds MIRROR_USERS users, synced from bench/fake_bapi.py as bench/mirror.sh
        # does; the running gateway has no secret key, so it never calls a Backend API.
        log "loading $MIRROR_USERS users into the mirror (clerk-gateway sync from bench/fake_bapi.py)"
        "$PY" bench/fake_bapi.py $P_BAPI "$MIRROR_USERS" &
        bapi=$!
        started+=($bapi)
        wait_http "http://127.0.0.1:$P_BAPI/v1/users/count" || die "the fake Backend API did not start"
        { gateway_toml $P_GW $P_GW_ADMIN "$work/mirror.db"; } | sed "s|^\[clerk\]|[clerk]\nsecret_key = \"sk_test_bench\"\napi_url = \"http://127.0.0.1:$P_BAPI\"|" >"$work/sync.toml"
        RUST_LOG=warn "$GATEWAY_BIN" sync -c "$work/sync.toml" >"$work/sync.log" 2>&1 || die "clerk-gateway sync failed: $(tail -3 "$work/sync.log")"
        kill "$bapi"
        wait "$bapi" 2>/dev/null || true
        n=$(RUST_LOG=warn "$GATEWAY_BIN" users count -c "$work/gateway.toml" 2>/dev/null | tr -dc 0-9)
        [ "${n:-0}" -ge "$MIRROR_USERS" ] || die "the mirror holds ${n:-0} users after sync, expected $MIRROR_USERS"
        log "  mirror: $n users"
    fi
    # The gateway's default access log stays on (one line per request, as deployed), written to
    # /dev/null so the disk stays out of it; GATEWAY_ACCESS_LOG=off runs it at RUST_LOG=warn.
    if [ "${GATEWAY_ACCESS_LOG:-on}" = off ]; then
        RUST_LOG=warn "${PIN[@]}" "$GATEWAY_BIN" run -c "$work/gateway.toml" 2>"$work/gateway.log" &
    else
        env -u RUST_LOG "${PIN[@]}" "$GATEWAY_BIN" run -c "$work/gateway.toml" 2>/dev/null &
    fi
    role_pid[gateway]=$!
    started+=($!)
fi

log "waiting for the servers"
wait_http "http://127.0.0.1:$P_UP/" || die "the upstream nginx did not start: $(cat "$work/nginx-up-error.log")"
[ -z "${role_pid[nginx]:-}" ] || wait_http "http://127.0.0.1:$P_NGINX/" || die "nginx (proxy) did not start"
[ -z "${role_pid[haproxy]:-}" ] || wait_http "http://127.0.0.1:$P_HAP/" || die "haproxy did not start: $(cat "$work/haproxy.log")"
[ -z "${role_pid[apache]:-}" ] || wait_http "http://127.0.0.1:$P_APACHE/" || die "apache did not start: $(cat "$work/apache-stderr.log" "$work/apache/error.log" 2>/dev/null)"
[ -z "${role_pid[fastapi]:-}" ] || wait_http "http://127.0.0.1:$P_PY/" 100 || die "uvicorn did not start: $(cat "$work/fastapi.log")"
[ -z "${role_pid[node]:-}" ] || wait_http "http://127.0.0.1:$P_NODE/" || die "the node app did not start: $(cat "$work/node.log")"
if [ -n "${role_pid[gateway]:-}" ]; then
    for _ in $(seq 100); do [ "$(status "http://127.0.0.1:$P_GW_ADMIN/readyz")" = 200 ] && break; sleep 0.1; done
    [ "$(status "http://127.0.0.1:$P_GW_ADMIN/readyz")" = 200 ] || die "the gateway is not ready: $(tail -5 "$work/gateway.log")"
fi

# ---------------------------------------------------------------------------------------
# Scenarios: URL, wrk arguments, the roles (processes) it costs, the expected status.
bearer=(-H "Authorization: Bearer $token")
uat=$(($(date +%s) - 300))   # before every token's iat
scenario() {
    S_TOKENS= S_WARM_TOKENS= S_EXPECT=200 S_ARGS=()
    case $1 in
        a) S_NAME="direct upstream" S_URL=http://127.0.0.1:$P_UP/api/x S_ROLES="upstream" ;;
        b) S_NAME="nginx reverse proxy" S_URL=http://127.0.0.1:$P_NGINX/api/x S_ROLES="nginx upstream" ;;
        c) S_NAME="HAProxy plain" S_URL=http://127.0.0.1:$P_HAP/api/x S_ROLES="haproxy upstream" ;;
        d) S_NAME="HAProxy + jwt_verify (one token)" S_URL=http://127.0.0.1:$P_HAPJWT/api/x S_ARGS=("${bearer[@]}") S_ROLES="haproxy upstream" ;;
        d2) S_NAME="HAProxy + jwt_verify (never-seen tokens)" S_URL=http://127.0.0.1:$P_HAPJWT/api/x S_TOKENS=unique S_WARM_TOKENS=$work/tokens-h1.txt S_ROLES="haproxy upstream" ;;
        e) S_NAME="Apache + mod_oauth2" S_URL=http://127.0.0.1:$P_APACHE/api/x S_ARGS=("${bearer[@]}") S_ROLES="apache upstream" ;;
        f) S_NAME="gateway, public route" S_URL=http://127.0.0.1:$P_GW/public/x S_ROLES="gateway upstream" ;;
        g) S_NAME="gateway, Bearer (one token, cached)" S_URL=http://127.0.0.1:$P_GW/api/x S_ARGS=("${bearer[@]}") S_ROLES="gateway upstream" ;;
        h1) S_NAME="gateway, Bearer (10,000 tokens rotated)" S_URL=http://127.0.0.1:$P_GW/api/x S_TOKENS=$work/tokens-h1.txt S_ROLES="gateway upstream" ;;
        h2) S_NAME="gateway, Bearer (never-seen tokens: RSA)" S_URL=http://127.0.0.1:$P_GW/api/x S_TOKENS=unique S_WARM_TOKENS=$work/tokens-h1.txt S_ROLES="gateway upstream" ;;
        i) S_NAME="gateway, __session + __client_uat cookies" S_URL=http://127.0.0.1:$P_GW/api/x S_ARGS=(-H "Cookie: __session=$token; __client_uat=$uat") S_ROLES="gateway upstream" ;;
        j) S_NAME="gateway, Bearer + mirror headers" S_URL=http://127.0.0.1:$P_GW/mirror/x S_ARGS=(-H "Authorization: Bearer $token_mirror") S_ROLES="gateway upstream" ;;
        k) S_NAME="gateway, 401 (no credentials)" S_URL=http://127.0.0.1:$P_GW/api/x S_EXPECT=401 S_ROLES="gateway" ;;
        l1) S_NAME="FastAPI, verifying in-app (clerk-backend-api)" S_URL=http://127.0.0.1:$P_PY/py/verify S_ARGS=("${bearer[@]}") S_ROLES="fastapi" ;;
        l2) S_NAME="FastAPI bare, behind the gateway" S_URL=http://127.0.0.1:$P_GW/py/bare S_ARGS=("${bearer[@]}") S_ROLES="gateway fastapi" ;;
        m1) S_NAME="Node, verifying in-app (@clerk/backend)" S_URL=http://127.0.0.1:$P_NODE/node/verify S_ARGS=("${bearer[@]}") S_ROLES="node" ;;
        m2) S_NAME="Node bare, behind the gateway" S_URL=http://127.0.0.1:$P_GW/node/bare S_ARGS=("${bearer[@]}") S_ROLES="gateway node" ;;
        *) die "no scenario $1" ;;
    esac
}
role_pids() { tree_pids "${role_pid[$1]}"; }

# Preconditions, before any timing: every scenario answers what it should.
log "checking every selected scenario before timing"
: >"$OUT/scenarios.tsv"
for s in "${selected[@]}"; do
    scenario "$s"
    printf '%s\t%s\t%s\n' "$s" "$S_NAME" "$S_ROLES" >>"$OUT/scenarios.tsv"
    case $s in
        d|d2)
            expect_status "$s HAProxy+jwt_verify, good token" 200 "${bearer[@]}" "$S_URL"
            expect_status "$s HAProxy+jwt_verify, bad signature" 401 -H "Authorization: Bearer $token_badsig" "$S_URL"
            expect_status "$s HAProxy+jwt_verify, expired token" 401 -H "Authorization: Bearer $token_expired" "$S_URL"
            expect_status "$s HAProxy+jwt_verify, no token" 401 "$S_URL"
            ;;
        e)
            expect_status "e Apache+mod_oauth2, good token" 200 "${bearer[@]}" "$S_URL"
            expect_status "e Apache+mod_oauth2, bad signature" 401 -H "Authorization: Bearer $token_badsig" "$S_URL"
            expect_status "e Apache+mod_oauth2, expired token" 401 -H "Authorization: Bearer $token_expired" "$S_URL"
            expect_status "e Apache+mod_oauth2, no token" 401 "$S_URL"
            ;;
        g|i|l2|m2)
            expect_status "$s $S_NAME" 200 "${S_ARGS[@]}" "$S_URL"
            expect_status "$s gateway, bad signature" 401 -H "Authorization: Bearer $token_badsig" "$S_URL"
            expect_status "$s gateway, expired token" 401 -H "Authorization: Bearer $token_expired" "$S_URL"
            ;;
        h1)
            expect_status "h1 $S_NAME, first token of the file" 200 -H "Authorization: Bearer $(head -1 "$S_TOKENS")" "$S_URL"
            expect_status "h1 $S_NAME, last token of the file" 200 -H "Authorization: Bearer $(tail -1 "$S_TOKENS")" "$S_URL"
            ;;
        h2) ;;   # checked once its tokens are minted, below
        j)
            expect_status "j $S_NAME" 200 "${S_ARGS[@]}" "$S_URL"
            seen=$(curl -s -D - -o /dev/null "${S_ARGS[@]}" "$S_URL" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-seen-email" {print $2}')
            [ "$seen" = "user_0000042@example.com" ] || die "precondition failed: the upstream saw X-User-Email '$seen', expected user_0000042@example.com (mirror enrichment)"
            log "  ok: j upstream saw X-User-Email: $seen"
            ;;
        l1|m1)
            expect_status "$s $S_NAME, good token" 200 "${S_ARGS[@]}" "$S_URL"
            expect_status "$s $S_NAME, bad signature" 401 -H "Authorization: Bearer $token_badsig" "$S_URL"
            expect_status "$s $S_NAME, expired token" 401 -H "Authorization: Bearer $token_expired" "$S_URL"
            ;;
        *) expect_status "$s $S_NAME" "$S_EXPECT" "${S_ARGS[@]}" "$S_URL" ;;
    esac
done
# the bare apps do check that the gateway named a user
if has l2; then expect_status "l2 FastAPI bare, no X-User-Id" 401 "http://127.0.0.1:$P_PY/py/bare"; fi
if has m2; then expect_status "m2 Node bare, no X-User-Id" 401 "http://127.0.0.1:$P_NODE/node/bare"; fi

# wrk_run OUTFILE TOKENS DURATION ARGS... : one wrk run on WRK_CPU; the SUITE line in OUTFILE
wrk_run() {
    local out=$1 tokens=$2 d=$3
    shift 3
    SUITE_TOKENS=$tokens taskset -c "$WRK_CPU" wrk -t1 -c"$CONNS" -d"$d" --latency -s "$lua" "$@" >"$out" 2>&1 ||
        die "wrk failed: $(cat "$out")"
    grep -q '^SUITE ' "$out" || die "wrk printed no SUITE line: $(cat "$out")"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $(grep '^SUITE ' "$1")"; }

# Never-seen tokens (h2, d2): a distinct set per round, each sized to 1.5x what a short
# calibration run says the gateway gets through in DURATION (none is sent twice: the gateway
# keeps its token cache for its whole life, so a token of an earlier round would be a hit).
if has_any h2 d2; then
    cal=${CAL_TOKENS:-40000}
    mint "$privkey" "$work/tokens-cal.txt" "$cal" --sid-prefix sess_cal
    cal_url=http://127.0.0.1:$P_GW/api/x
    [ -n "${role_pid[gateway]:-}" ] || cal_url=http://127.0.0.1:$P_HAPJWT/api/x
    # warm first (connections, pools) on the h1 set, then 1 s on tokens never seen; a
    # calibration that ran out of tokens (cache hits) only overestimates, which is safe
    wrk_run "$OUT/calibration-warmup.txt" "$work/tokens-h1.txt" "$WARMUP" "$cal_url"
    wrk_run "$OUT/calibration.txt" "$work/tokens-cal.txt" 1s "$cal_url"
    est=$(awk -v r="$(field "$OUT/calibration.txt" requests)" -v d="$(field "$OUT/calibration.txt" duration_us)" 'BEGIN { printf "%d", r / (d / 1e6) }')
    per_round=$(awk -v e="$est" -v d="$dur_s" 'BEGIN { n = int(e * d * 1.5) + 1; if (n < 2000) n = 2000; print n }')
    log "never-seen tokens: about $est requests/s on first sight, so $per_round tokens a round ($ROUNDS round(s)); minting"
    t0=$(date +%s)
    for r in $(seq "$ROUNDS"); do
        mint "$privkey" "$work/tokens-unique-$r.txt" "$per_round" --sid-prefix "sess_u$r"
    done
    log "  minted $((per_round * ROUNDS)) tokens in $(($(date +%s) - t0)) s"
    # the last token of each file: valid, and (with the 1.5x margin) never reached by wrk
    for r in $(seq "$ROUNDS"); do
        last=$(tail -1 "$work/tokens-unique-$r.txt")
        if has h2; then expect_status "h2 round $r: last never-seen token, gateway" 200 -H "Authorization: Bearer $last" "http://127.0.0.1:$P_GW/api/x"; fi
        if has d2; then expect_status "d2 round $r: last never-seen token, HAProxy+jwt_verify" 200 -H "Authorization: Bearer $last" "http://127.0.0.1:$P_HAPJWT/api/x"; fi
    done
fi

# ---------------------------------------------------------------------------------------
# Measuring. results.tsv: round, scenario, metric, value.
results=$OUT/results.tsv
printf 'round\tscenario\tmetric\tvalue\n' >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }

measure() {
    local s=$1 r=$2 role pids tokens out perf_out
    scenario "$s"
    tokens=$S_TOKENS
    [ "$tokens" = unique ] && tokens=$work/tokens-unique-$r.txt
    # warm-up: connections, pools, caches (never-seen scenarios warm up on the h1 set)
    wrk_run "$OUT/warmup-$s-$r.txt" "${S_WARM_TOKENS:-$tokens}" "$WARMUP" "${S_ARGS[@]}" "$S_URL"
    declare -A t0 perfpid
    for role in $S_ROLES; do
        pids=$(role_pids "$role" | tr '\n' ' ')
        [ -n "$pids" ] || die "scenario $s: the $role process is gone"
        reset_hwm $pids
        if [ $SYSCALLS = 1 ]; then
            perf stat -e raw_syscalls:sys_enter -x, -o "$OUT/perf-$s-$r-$role.txt" -p "$(echo $pids | tr ' ' ,)" >/dev/null 2>&1 &
            perfpid[$role]=$!
        fi
    done
    sleep 0.3   # perf attaches
    for role in $S_ROLES; do t0[$role]=$(cpu_ticks $(role_pids "$role")); done
    out=$OUT/wrk-$s-$r.txt
    wrk_run "$out" "$tokens" "$DURATION" "${S_ARGS[@]}" "$S_URL"
    local requests; requests=$(field "$out" requests)
    for role in $S_ROLES; do
        local t1; t1=$(cpu_ticks $(role_pids "$role"))
        record "$r" "$s" "cpu_us.$role" "$(awk -v t=$((t1 - ${t0[$role]})) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
        record "$r" "$s" "rss_kib.$role" "$(hwm_kib $(role_pids "$role"))"
    done
    if [ $SYSCALLS = 1 ]; then
        for role in $S_ROLES; do kill -INT "${perfpid[$role]}" 2>/dev/null || true; done
        for role in $S_ROLES; do
            wait "${perfpid[$role]}" 2>/dev/null || true
            perf_out=$OUT/perf-$s-$r-$role.txt
            local n; n=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$perf_out")
            case $n in ''|*[!0-9]*) log "WARNING: $s: perf counted nothing for $role ($(tr '\n' ' ' <"$perf_out"))" ;;
                *) record "$r" "$s" "syscalls.$role" "$(awk -v c="$n" -v q="$requests" 'BEGIN { printf "%.2f", c / q }')" ;;
            esac
        done
    fi
    # what the run itself says must hold
    local se sock wrapped
    se=$(field "$out" status_errors)
    sock=$(( $(field "$out" connect) + $(field "$out" read) + $(field "$out" write) + $(field "$out" timeout) ))
    [ "$requests" -gt 0 ] || die "scenario $s round $r: no request completed ($out)"
    [ $sock = 0 ] || die "scenario $s round $r: $sock socket errors (connect/read/write/timeout) in $out"
    if [ "$S_EXPECT" = 200 ]; then
        [ "$se" = 0 ] || die "scenario $s round $r: $se answers with a status >= 400 out of $requests ($out)"
    else
        [ "$se" -ge "$requests" ] || die "scenario $s round $r: $((requests - se)) answers were not $S_EXPECT ($out)"
    fi
    wrapped=$(field "$out" wrapped)
    if [ "$S_TOKENS" = unique ] && [ "$wrapped" != 0 ]; then
        if [ "$s" = h2 ]; then
            die "scenario h2 round $r: the never-seen token file ran out and tokens were sent twice (raise the margin: the calibration said $est/s)"
        fi
        log "  note: $s sent some tokens twice (HAProxy keeps no token cache, so it costs the same)"
    fi
    local rps; rps=$(awk -v n="$requests" -v d="$(field "$out" duration_us)" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
    record "$r" "$s" rps "$rps"
    record "$r" "$s" requests "$requests"
    record "$r" "$s" p50_us "$(field "$out" p50)"
    record "$r" "$s" p99_us "$(field "$out" p99)"
    record "$r" "$s" p999_us "$(field "$out" p999)"
    record "$r" "$s" wrapped "$wrapped"
    printf '  round %s %-3s %-46s %9s req/s  p50 %6s us  p99 %6s us  p99.9 %6s us\n' "$r" "$s" "$S_NAME" "$rps" \
        "$(field "$out" p50)" "$(field "$out" p99)" "$(field "$out" p999)"
}

if [ ${#selected[@]} -gt 0 ]; then
    for r in $(seq "$ROUNDS"); do
        log "round $r of $ROUNDS"
        for s in "${selected[@]}"; do measure "$s" "$r"; done
    done
fi

# ---------------------------------------------------------------------------------------
# Extras. extras.tsv: name, value.
extras_tsv=$OUT/extras.tsv
: >"$extras_tsv"
xrecord() { printf '%s\t%s\n' "$1" "$2" >>"$extras_tsv"; }

if extra fixed; then
    # Added latency at a fixed rate: direct, nginx, gateway Bearer; ROUNDS alternating.
    fixed_conns=${FIXED_CONNS:-$CONNS}
    xrecord fixed.tool "$FIXED_TOOL${OHA:+ $("$OHA" --version | awk '{print $2}')}"
    for r in $(seq "$ROUNDS"); do
        for t in direct nginx gateway; do
            case $t in
                direct) url=http://127.0.0.1:$P_UP/api/x args=() ;;
                nginx) url=http://127.0.0.1:$P_NGINX/api/x args=() ;;
                gateway) url=http://127.0.0.1:$P_GW/api/x args=(-H "Authorization: Bearer $token") ;;
            esac
            out=$OUT/fixed-$t-$r
            if [ "$FIXED_TOOL" = oha ]; then
                taskset -c "$WRK_CPU" "$OHA" -z "$FIXED_DURATION" -q "$FIXED_RATE" -c "$fixed_conns" --latency-correction \
                    --no-tui --output-format json "${args[@]}" "$url" >"$out.json" 2>"$out.err" || die "oha failed: $(cat "$out.err")"
                read -r p50 p99 p999 ok rate < <("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution") or {}
errors = {k: v for k, v in (d.get("errorDistribution") or {}).items() if k != "aborted due to deadline"}
ok = all(k == "200" for k in codes) and not errors
print(round(p["p50"] * 1e6), round(p["p99"] * 1e6), round(p["p99.9"] * 1e6), int(ok), round(d["summary"]["requestsPerSec"]))' "$out.json")
                [ "$ok" = 1 ] || die "fixed-rate $t: not every answer was a 200 ($out.json)"
            else
                SUITE_DELAY_MS=$((1000 * fixed_conns / FIXED_RATE)) taskset -c "$WRK_CPU" wrk -t1 -c"$fixed_conns" -d"$FIXED_DURATION" \
                    -s bench/suite/paced.lua "${args[@]}" "$url" >"$out.txt" 2>&1 || die "wrk (paced) failed: $(cat "$out.txt")"
                [ "$(field "$out.txt" status_errors)" = 0 ] || die "fixed-rate $t: errors ($out.txt)"
                p50=$(field "$out.txt" p50) p99=$(field "$out.txt" p99) p999=$(field "$out.txt" p999)
                rate=$(awk -v n="$(field "$out.txt" requests)" -v d="$(field "$out.txt" duration_us)" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
            fi
            record "$r" "fixed-$t" p50_us "$p50"
            record "$r" "fixed-$t" p99_us "$p99"
            record "$r" "fixed-$t" p999_us "$p999"
            record "$r" "fixed-$t" rps "$rate"
            printf '  fixed rate, round %s: %-8s %5s req/s  p50 %6s us  p99 %6s us  p99.9 %6s us\n' "$r" "$t" "$rate" "$p50" "$p99" "$p999"
        done
    done
fi

if extra idle; then
    log "idle: $IDLE_CONNS keep-alive connections, each after one request, to a fresh gateway"
    [ "$(ulimit -n)" -gt $((IDLE_CONNS + 200)) ] || die "the open files limit ($(ulimit -n)) is too low for IDLE_CONNS=$IDLE_CONNS"
    gateway_toml $P_IDLE $P_IDLE_ADMIN "$work/mirror-idle.db" "max_connections = $((IDLE_CONNS + 100))
idle_timeout = \"600s\"" >"$work/gateway-idle.toml"
    RUST_LOG=warn "${PIN[@]}" "$GATEWAY_BIN" run -c "$work/gateway-idle.toml" 2>"$work/gateway-idle.log" &
    idle_gw=$!
    started+=($idle_gw)
    for _ in $(seq 100); do [ "$(status "http://127.0.0.1:$P_IDLE_ADMIN/readyz")" = 200 ] && break; sleep 0.1; done
    taskset -c "$WRK_CPU" "$PY" bench/suite/idle.py "$idle_gw" $P_IDLE $P_IDLE_ADMIN "$IDLE_CONNS" >"$OUT/idle.txt" ||
        die "the idle test failed: $(cat "$OUT/idle.txt")"
    while IFS='=' read -r k v; do xrecord "idle.$k" "$v"; done <"$OUT/idle.txt"
    xrecord idle.conns "$IDLE_CONNS"
    sed 's/^/  /' "$OUT/idle.txt"
    kill -TERM "$idle_gw"
    wait "$idle_gw" 2>/dev/null || true
fi

if extra ready; then
    log "ready: exec to /readyz 200 with a PEM key, $READY_RUNS runs"
    # The minted tokens (hundreds of MB) must not be in the mirror's first fsync.
    sync
    gateway_toml $P_READY $P_READY_ADMIN "@DIR@/mirror.db" >"$work/gateway-ready.toml.in"
    taskset -c "$WRK_CPU" "$PY" bench/suite/ready.py "$READY_RUNS" "$work/gateway-ready.toml.in" $P_READY_ADMIN "$work" "$SERVER_CPU" \
        -- env RUST_LOG=warn "$GATEWAY_BIN" run -c @CONFIG@ >"$OUT/ready.txt" || die "the readiness test failed: $(cat "$OUT/ready.txt")"
    i=0
    while read -r rd hz; do
        i=$((i + 1))
        xrecord "ready.ms.$i" "${rd#ready_ms=}"
        xrecord "healthz.ms.$i" "${hz#healthz_ms=}"
    done <"$OUT/ready.txt"
    log "  ms to /readyz: $(awk '{sub("ready_ms=", "", $1); printf "%s ", $1}' "$OUT/ready.txt")"
fi

if extra size; then
    xrecord binary.bytes "$(stat -c %s "$GATEWAY_BIN")"
fi

# ---------------------------------------------------------------------------------------
# The machine and the versions, then the report.
meta=$OUT/meta.tsv
{
    printf 'cpu\t%s\n' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'gateway_access_log\t%s\n' "${GATEWAY_ACCESS_LOG:-on}"
    printf 'memory\t%s\n' "$(free -h | awk '/^Mem:/ {print $2}')"
    printf 'kernel\t%s\n' "$(uname -r)"
    printf 'os\t%s\n' "$(. /etc/os-release && echo "$PRETTY_NAME")"
    printf 'virtualization\t%s\n' "$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)"
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/.*nginx\///')"
    printf 'haproxy\t%s\n' "$(haproxy -v | head -1 | awk '{print $3}')"
    printf 'apache\t%s\n' "$(apache2 -v | sed -n 's/^Server version: Apache\/\([^ ]*\).*/\1/p')"
    printf 'mod_oauth2\t%s\n' "$(dpkg-query -W -f '${Version}' libapache2-mod-oauth2 2>/dev/null) (liboauth2 $(dpkg-query -W -f '${Version}' 'liboauth2-1.4.5.4' 2>/dev/null || dpkg-query -W -f '${Version}\n' 'liboauth2*' 2>/dev/null | head -1))"
    printf 'python\t%s\n' "$("$PY" -c 'import platform; print(platform.python_version())')"
    printf 'python_packages\t%s\n' "$("$PY" -m pip list --disable-pip-version-check 2>/dev/null | awk 'tolower($1) ~ /^(fastapi|uvicorn|clerk-backend-api|cryptography|pyjwt|uvloop|httptools|starlette)$/ {printf "%s %s, ", $1, $2}' | sed 's/, $//')"
    printf 'node\t%s\n' "$(node --version 2>/dev/null)"
    printf 'clerk_backend\t%s\n' "$(node -p 'require("./bench/suite/node_modules/@clerk/backend/package.json").version' 2>/dev/null || echo n/a)"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    printf 'oha\t%s\n' "${OHA:+$("$OHA" --version | awk '{print $2}')}"
    printf 'perf\t%s\n' "$(perf version 2>/dev/null | awk '{print $3}')"
    printf 'rustc\t%s\n' "$(rustc --version 2>/dev/null | awk '{print $2}')"
    printf 'gateway_bin\t%s\n' "$GATEWAY_BIN"
    printf 'gateway_version\t%s\n' "$("$GATEWAY_BIN" --version 2>/dev/null)"
    printf 'commit\t%s\n' "$(git rev-parse --short=12 HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src/ modified)')"
    printf 'commit_subject\t%s\n' "$(git log -1 --format=%s 2>/dev/null)"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'duration\t%s\n' "$DURATION"
    printf 'rounds\t%s\n' "$ROUNDS"
    printf 'conns\t%s\n' "$CONNS"
    printf 'warmup\t%s\n' "$WARMUP"
    printf 'wrk_cpu\t%s\n' "$WRK_CPU"
    printf 'server_cpu\t%s\n' "$SERVER_CPU"
    printf 'upstream_cpu\t%s\n' "$UPSTREAM_CPU"
    printf 'fixed_rate\t%s\n' "$FIXED_RATE"
    printf 'fixed_duration\t%s\n' "$FIXED_DURATION"
    printf 'fixed_conns\t%s\n' "${fixed_conns:-$CONNS}"
    printf 'mirror_users\t%s\n' "$MIRROR_USERS"
    printf 'h1_tokens\t%s\n' "$H1_TOKENS"
    printf 'unique_per_round\t%s\n' "${per_round:-}"
    printf 'unique_estimate\t%s\n' "${est:-}"
    printf 'gateway_default_bin\t%s\n' "$([ "$GATEWAY_BIN" = "$root/target/release/clerk-gateway" ] && echo 1 || echo 0)"
    printf 'out\t%s\n' "${OUT#"$root"/}"
    printf 'syscalls\t%s\n' "$SYSCALLS"
} >"$meta"

case $REPORT in /*) report=$REPORT ;; *) report=$root/$REPORT ;; esac
"$PY" bench/suite/report.py "$OUT" "$report"
log "report: $report; raw outputs: ${OUT#"$root"/}"
