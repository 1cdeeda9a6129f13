#!/usr/bin/env bash
# Silent connections: N clients connect and send nothing. Prints the gateway's open file
# descriptors and RSS while they are open and once `first_byte_timeout` has closed them.
#
#   bench/idle.sh            (needs python3; N=5000 TIMEOUT=10s by default)
#
# Not part of CI: figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
TIMEOUT=${TIMEOUT:-10s}
source bench/common.sh
cat > "$work/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:18480"
drain_delay = "0s"
workers = 1
first_byte_timeout = "$TIMEOUT"
[admin]
listen = "127.0.0.1:19490"
[clerk]
jwt_key_file = "tests/fixtures/rsa_a.pub.pem"
[mirror]
path = ":memory:"
[[route]]
path = "/"
upstream = "http://127.0.0.1:1"
auth = "public"
TOML
start_gateway 19490

python3 - "$gateway_pid" "$N" <<'PY'
import os, socket, sys, time
pid, n = int(sys.argv[1]), int(sys.argv[2])
def sample(what):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1]
    print(f"{what}: {fds} file descriptors, {int(rss) // 1024} MB RSS", flush=True)
sample("before")
socks = [socket.create_connection(("127.0.0.1", 18480)) for _ in range(n)]
sample(f"{n} silent connections open")
deadline = time.time() + 120
while time.time() < deadline and len(os.listdir(f"/proc/{pid}/fd")) > 50:
    time.sleep(0.5)
sample("after the deadline")
PY
curl -s http://127.0.0.1:19490/metrics | grep -E '^clerk_gateway_connections'
