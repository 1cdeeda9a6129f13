#!/usr/bin/env python3
"""Idle keep-alive connections, for bench/suite.sh.

    idle.py PID PORT ADMIN_PORT N

Opens N connections to 127.0.0.1:PORT; each sends one keep-alive request (GET /public/idle)
and reads its whole answer, then stays open and silent. Samples the gateway's (PID) VmRSS
before, with the N connections open, and after they are closed (once /metrics says the
gateway's open connections are back to 0, and a few seconds more for memory to be given
back). Prints key=value lines: rss_before_kib, rss_open_kib, rss_closed_kib, hwm_kib,
open_reported (clerk_gateway_connections_open with all N open).
"""
import resource
import socket
import sys
import time

pid, port, admin, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 100:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))

REQ = b"GET /public/idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} for pid {pid}")


def metric(name):
    s = socket.create_connection(("127.0.0.1", admin))
    s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    for line in data.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def one_request(s):
    s.sendall(REQ)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before the answer")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"idle request answered {head.splitlines()[0]!r}, expected 200")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += s.recv(4096)


# warm: a few connections through the same path, closed again
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", port))
    one_request(s)
    s.close()
time.sleep(1)
before = status("VmRSS")
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    one_request(s)
    socks.append(s)
# Idle means idle: past the gateway's 1 s park and its next memory release (every 2 s).
time.sleep(5)
open_reported = metric("clerk_gateway_connections_open")
rss_open = status("VmRSS")
hwm = status("VmHWM")
for s in socks:
    s.close()
deadline = time.time() + 30
while time.time() < deadline and (metric("clerk_gateway_connections_open") or 0) > 0:
    time.sleep(0.2)
time.sleep(5)
after = status("VmRSS")
print(f"rss_before_kib={before}")
print(f"rss_open_kib={rss_open}")
print(f"rss_closed_kib={after}")
print(f"hwm_kib={hwm}")
print(f"open_reported={int(open_reported) if open_reported is not None else 'n/a'}")
