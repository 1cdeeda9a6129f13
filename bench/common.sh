# Sourced by the bench scripts: a scratch directory `$work` removed (with every background
# job) on exit, a release build, and `start_gateway`.
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q

# start_gateway ADMIN_PORT: run the gateway on $work/gateway.toml in the background (its pid
# in $gateway_pid, its log in $work/gateway.log) and wait up to 5 s for /readyz.
start_gateway() {
    RUST_LOG=warn target/release/clerk-gateway run -c "$work/gateway.toml" 2>"$work/gateway.log" &
    gateway_pid=$!
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" && return; sleep 0.1; done
}
