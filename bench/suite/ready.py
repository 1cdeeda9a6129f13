#!/usr/bin/env python3
"""Time from exec to a 200 on /readyz, for bench/suite.sh.

    ready.py RUNS CONFIG_TEMPLATE ADMIN_PORT WORKDIR CPU -- CMD...

For each run: a fresh directory under WORKDIR (so the mirror file is new, as on a new pod),
the template's `@DIR@` replaced by it, then CMD with `@CONFIG@` replaced by that config is
started pinned to CPU (the poller itself stays where it was started), and /readyz on 127.0.0.1:ADMIN_PORT is polled every 0.5 ms over fresh connections.
The clock runs from just before the fork to the first 200. Each gateway is then stopped
(SIGTERM, drain_delay 0s). Prints one line per run: `ready_ms=… healthz_ms=…` (the first
200 on /healthz, i.e. the admin listener up, comes on the way).
"""
import os
import signal
import socket
import subprocess
import sys
import time

runs, template, admin, workdir = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
cpu = int(sys.argv[5])
cmd = sys.argv[sys.argv.index("--") + 1:]
text = open(template).read()


def answers(path):
    try:
        s = socket.create_connection(("127.0.0.1", admin), timeout=0.5)
    except OSError:
        return False
    try:
        s.sendall(b"GET " + path + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        data = s.recv(64)
        return data.startswith(b"HTTP/1.1 200") or data.startswith(b"HTTP/1.0 200")
    except OSError:
        return False
    finally:
        s.close()


for i in range(runs):
    d = os.path.join(workdir, f"ready-{i}")
    os.makedirs(d)
    conf = os.path.join(d, "gateway.toml")
    with open(conf, "w") as f:
        f.write(text.replace("@DIR@", d))
    argv = [a.replace("@CONFIG@", conf) for a in cmd]
    err = open(os.path.join(d, "gateway.log"), "w")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                         preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    live_ms = None
    while True:
        if live_ms is None and answers(b"/healthz"):
            live_ms = (time.perf_counter() - t0) * 1000
        if live_ms is not None and answers(b"/readyz"):
            ms = (time.perf_counter() - t0) * 1000
            break
        if p.poll() is not None:
            raise SystemExit(f"the gateway exited ({p.returncode}) before /readyz: see {d}/gateway.log")
        if time.perf_counter() - t0 > 10:
            p.kill()
            raise SystemExit(f"no 200 on /readyz within 10 s: see {d}/gateway.log")
        time.sleep(0.0005)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    print(f"ready_ms={ms:.2f} healthz_ms={live_ms:.2f}", flush=True)
