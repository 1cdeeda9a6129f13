#!/usr/bin/env python3
"""Turn a bench/suite.sh run (OUT/results.tsv, extras.tsv, meta.tsv, scenarios.tsv) into
BENCHMARKS.md, and print the targets table.

    report.py OUT_DIR REPORT.md
"""
import csv
import os
import statistics
import sys
from collections import defaultdict

out_dir, report_path = sys.argv[1], sys.argv[2]


def read_tsv(name):
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t") if row]


meta = {k: v for k, v, *_ in (r + [""] for r in read_tsv("meta.tsv"))}
scen = [(r[0], r[1], r[2].split()) for r in read_tsv("scenarios.tsv")]
names = {s: n for s, n, _ in scen}
roles_of = {s: roles for s, _, roles in scen}

# results: round, scenario, metric, value -> values[scenario][metric] = [per round]
values = defaultdict(lambda: defaultdict(list))
per_round = defaultdict(dict)  # (scenario, metric) -> {round: value}
for row in read_tsv("results.tsv")[1:]:
    r, s, m, v = row
    try:
        x = float(v)
    except ValueError:
        continue
    values[s][m].append(x)
    per_round[(s, m)][r] = x
extras = defaultdict(list)
for k, v in read_tsv("extras.tsv"):
    extras[k].append(v)


def med(s, m):
    xs = values.get(s, {}).get(m)
    return statistics.median(xs) if xs else None


def fmt(x, digits=0, unit=""):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}{unit}"
    return f"{x:,.{digits}f}{unit}"


ROLE_LABEL = {
    "upstream": "nginx upstream", "nginx": "nginx", "haproxy": "HAProxy", "apache": "Apache",
    "gateway": "gateway", "fastapi": "uvicorn/FastAPI", "node": "Node",
}


def spread(s):
    xs = values.get(s, {}).get("rps")
    if not xs or len(xs) < 2:
        return "—"
    m = statistics.median(xs)
    return f"±{(max(xs) - min(xs)) / 2 / m * 100:.1f}%"


lines = []
w = lines.append
w("# Benchmarks")
w("")
subject = meta.get("commit_subject", "")
if len(subject) > 72:
    subject = subject[:72].rsplit(" ", 1)[0] + " …"
w(f"Measured by `bench/suite.sh` on {meta.get('date', '?')} at commit `{meta.get('commit', '?')}` "
  f"(“{subject}”). Raw outputs: `{meta.get('out', 'bench/out')}/` (not committed). "
  "Re-run with `bench/suite.sh` as root on Debian 12 (it installs what it needs; about 25 minutes); "
  "figures from different machines or runs are not comparable.")
w("")
w("## Machine")
w("")
w("| | |")
w("|---|---|")
w(f"| CPU | {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores"
  f"{', ' + meta['virtualization'] + ' guest' if meta.get('virtualization') else ''} |")
w(f"| memory | {meta.get('memory', '?')} |")
w(f"| OS, kernel | {meta.get('os', '?')}, Linux {meta.get('kernel', '?')} |")
w(f"| gateway | `{os.path.basename(meta.get('gateway_bin', '?'))}` ({meta.get('gateway_version', '?')}), "
  f"commit `{meta.get('commit', '?')}`"
  f"{'' if meta.get('gateway_default_bin') == '1' else ', prebuilt binary given as GATEWAY_BIN'}; rustc {meta.get('rustc', '?')} |")
w(f"| nginx | {meta.get('nginx', '?')} (nginx-light) |")
w(f"| HAProxy | {meta.get('haproxy', '?')} |")
w(f"| Apache | {meta.get('apache', '?')}, mpm_event; libapache2-mod-oauth2 {meta.get('mod_oauth2', '?')} |")
w(f"| Python | {meta.get('python', '?')}: {meta.get('python_packages', '?')} |")
w(f"| Node | {meta.get('node', '?')}, @clerk/backend {meta.get('clerk_backend', '?')} |")
w(f"| load | wrk {meta.get('wrk', '?')}; oha {meta.get('oha') or 'n/a'}; perf {meta.get('perf', '?')} |")
w("")
w("## Method")
w("")
w(f"- Everything on loopback. One upstream for all: nginx `return 200` with a 64-byte body "
  "(one worker). Every proxy runs one worker (nginx `worker_processes 1`, HAProxy `nbthread 1`, "
  "Apache mpm_event with `ServerLimit 1` and 64 threads, the gateway `workers = 1`, uvicorn one "
  "process, Node one process).")
if meta.get("upstream_cpu", meta.get("server_cpu")) == meta.get("server_cpu"):
    w(f"- **Pinning:** wrk (one thread) on CPU {meta.get('wrk_cpu', '0')}; every server (the proxy under test, "
      f"the nginx upstream, the FastAPI and Node apps) on CPU {meta.get('server_cpu', '1')} with `taskset`. "
      "A proxy therefore shares its core with its upstream, as a sidecar shares a pod with its app: "
      "requests/s include the upstream's work, while the CPU columns split it by process.")
else:
    w(f"- **Pinning:** wrk (one thread) on CPU {meta.get('wrk_cpu', '0')}; the proxy under test and the FastAPI "
      f"and Node apps on CPU {meta.get('server_cpu', '1')}, the nginx upstream on CPU {meta.get('upstream_cpu')}, "
      "with `taskset`.")
w(f"- Rounds: {meta.get('rounds', '?')}, alternating: every scenario once per round in the order below, "
  f"then again; each measurement is {meta.get('duration', '?')} of wrk with {meta.get('conns', '?')} "
  f"keep-alive connections after a {meta.get('warmup', '?')} warm-up; the table gives the median "
  "of the rounds (± is half the range across rounds). Latency percentiles are wrk's (`--latency`, "
  "closed loop; p99.9 from a Lua `done()`).")
w("- **CPU µs/request:** utime+stime of each process of the scenario (every thread; nginx's and Apache's "
  "master and workers together), from `/proc/PID/stat`, over the timed run, divided by the requests "
  "wrk completed. The load generator is not counted.")
w("- **Syscalls/request:** `perf stat -e raw_syscalls:sys_enter -p PIDS` over the timed run "
  "(software tracepoint; hardware counters are not available on this machine), divided by the "
  "requests. perf counts in all rounds, so its (small) cost is in every figure alike.")
w("- **Peak RSS:** VmHWM of the server process(es), reset (`clear_refs` 5) before each run.")
if meta.get("gateway_access_log", "on") == "off":
    w("- Access logs are off everywhere (nginx `access_log off`, no HAProxy or Apache log, uvicorn "
      "`--no-access-log`, the gateway at `RUST_LOG=warn`); keep-alive requests are unlimited on every hop.")
else:
    w("- Access logs: the gateway's default access log is on (a line per request, to /dev/null), as "
      "the targets ask; the others run without one (nginx `access_log off`, no HAProxy or Apache "
      "log, uvicorn `--no-access-log`). Keep-alive requests are unlimited on every hop.")
w("- **Tokens:** RS256, signed with `tests/fixtures/rsa_a.pem` (kid `ins_a`), claims as in "
  "`bench/proxy.sh` (iss, azp, sub, sid, v2 org claims) plus a distinct `sid`/`jti` per token; every "
  "verifier uses `rsa_a.pub.pem` (mod_oauth2 as the equivalent JWK). Before timing, the suite "
  "checks with curl that each verifier accepts the good token and refuses a token signed by another "
  "key and an expired one, and every timed run must have no socket errors and only 200s (401s for k).")
w("- **HAProxy + jwt_verify:** RS256 only, `jwt_verify` with the PEM, `exp` against `date()`, `iss` and "
  "`azp` compared, then `sub`/`sid` set as X-User-Id/X-Session-Id (client copies removed); 401 otherwise. "
  "It keeps no cache of verified tokens, so d (one token) and d2 (never-seen tokens) cost the same.")
w("- **Apache + mod_oauth2:** `AuthType oauth2`, `OAuth2TokenVerify jwk <the key> verify.exp=required`, "
  "`Require valid-user`, `ProxyPass` to the upstream; mod_oauth2's default token cache (shm) is on.")
w(f"- **Gateway:** the PEM key, issuer and authorized parties set, a SQLite mirror of "
  f"{meta.get('mirror_users', '?')} users (synced from `bench/fake_bapi.py`) that scenario j's user is "
  f"in; h1 rotates {meta.get('h1_tokens', '?')} distinct valid tokens; h2 sends only tokens the gateway "
  f"has never seen (a fresh set each round: {meta.get('unique_per_round', '?')} tokens, 1.5× what a "
  f"calibration run said it verifies in one measurement, ≈{meta.get('unique_estimate', '?')}/s), so each "
  "request is an RSA verification; d2 sends HAProxy the same sets.")
w("- **Apps (l, m):** FastAPI on uvicorn (uvloop, httptools) calling clerk-backend-api's "
  "`authenticate_request` with `jwt_key` = the PEM and `authorized_parties` (networkless) on every "
  "request, versus the same app's route that only reads X-User-Id, behind the gateway. Node: a plain "
  "`http` server calling @clerk/backend's `verifyToken` with `jwtKey` = the PEM, versus its bare route "
  "behind the gateway. The app is the upstream, on the same core as the gateway.")
w("")
w("## Throughput, latency, cost per request")
w("")
w("| | scenario | req/s | ± | p50 µs | p99 µs | p99.9 µs | CPU µs/req (server) | CPU µs/req (upstream/app) | syscalls/req (server) | syscalls/req (upstream/app) | peak RSS MiB (server) |")
w("|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|")
for s, name, roles in scen:
    server = roles[0]
    other = roles[1] if len(roles) > 1 else None
    rss = med(s, f"rss_kib.{server}")

    def cell(metric, role, digits):
        if role is None:
            return "—"
        v = med(s, f"{metric}.{role}")
        return f"{fmt(v, digits)} ({ROLE_LABEL.get(role, role)})" if metric == "cpu_us" else fmt(v, digits)

    w(f"| {s} | {name} | {fmt(med(s, 'rps'))} | {spread(s)} | {fmt(med(s, 'p50_us'))} | {fmt(med(s, 'p99_us'))} | "
      f"{fmt(med(s, 'p999_us'))} | {cell('cpu_us', server, 1)} | {cell('cpu_us', other, 1)} | "
      f"{cell('syscalls', server, 2)} | {cell('syscalls', other, 2)} | {fmt(rss / 1024 if rss else None, 1)} |")
if not scen:
    w("| | (no scenario run) | | | | | | | | | | |")
w("")

# Fixed rate
fixed = {t: (med(f"fixed-{t}", "p50_us"), med(f"fixed-{t}", "p99_us"), med(f"fixed-{t}", "p999_us"), med(f"fixed-{t}", "rps"))
         for t in ("direct", "nginx", "gateway")}


def added(t, metric):
    a = per_round.get((f"fixed-{t}", metric), {})
    d = per_round.get(("fixed-direct", metric), {})
    diffs = [a[r] - d[r] for r in a if r in d]
    return statistics.median(diffs) if diffs else None


if fixed["direct"][0] is not None:
    w(f"## Latency at a fixed {meta.get('fixed_rate', '?')} requests/s")
    w("")
    tool = extras.get("fixed.tool", ["oha"])[0]
    if tool.startswith("oha"):
        how = (f"{tool} at `-q {meta.get('fixed_rate', '?')}` with `--latency-correction` (open loop: a slow "
               "answer does not delay the next request's start)")
    else:
        how = ("wrk paced by its `delay()` hook (`bench/suite/paced.lua`: each connection waits between a "
               "response and its next request; oha could not be built), so closed loop")
    w(f"{how}, {meta.get('fixed_conns', '?')} connections, {meta.get('fixed_duration', '?')} per run, pinned as above, "
      f"rounds: {meta.get('rounds', '?')}, alternating; medians, and the median over rounds of each round's "
      "difference to the direct run.")
    w("")
    w("| target | req/s | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    labels = {"direct": "direct upstream", "nginx": "nginx reverse proxy", "gateway": "gateway, Bearer (cached)"}
    for t in ("direct", "nginx", "gateway"):
        p50, p99, p999, rps = fixed[t]
        a50 = "—" if t == "direct" else fmt(added(t, "p50_us"))
        a99 = "—" if t == "direct" else fmt(added(t, "p99_us"))
        w(f"| {labels[t]} | {fmt(rps)} | {fmt(p50)} | {fmt(p99)} | {fmt(p999)} | {a50} | {a99} |")
    w("")

# Idle, ready, size
idle = {k[5:]: v[0] for k, v in extras.items() if k.startswith("idle.")}
ready = [float(v[0]) for k, v in extras.items() if k.startswith("ready.ms.")]
healthz = [float(v[0]) for k, v in extras.items() if k.startswith("healthz.ms.")]
size = extras.get("binary.bytes", [None])[0]
per_conn = returned = None
if idle:
    n = int(idle["conns"])
    b, o, c = int(idle["rss_before_kib"]), int(idle["rss_open_kib"]), int(idle["rss_closed_kib"])
    per_conn = (o - b) / n
    returned = (o - c) / (o - b) if o > b else 1.0
if idle or ready or size:
    w("## Memory, start-up, size")
    w("")
    w("| | |")
    w("|---|---|")
    if idle:
        w(f"| RSS of a fresh gateway before / with {n:,} idle keep-alive connections / after they closed | "
          f"{b / 1024:.1f} / {o / 1024:.1f} / {c / 1024:.1f} MiB (peak {int(idle['hwm_kib']) / 1024:.1f} MiB; "
          f"the gateway reported {idle.get('open_reported', '?')} open) |")
        w(f"| per idle connection | {per_conn:.2f} KiB; {round(returned * 100) + 0}% of it returned after closing |")
    if ready:
        w(f"| exec to `/readyz` 200, PEM key, fresh mirror file ({len(ready)} runs) | median {statistics.median(ready):.1f} ms "
          f"(min {min(ready):.1f}, max {max(ready):.1f}); the first 200 on `/healthz` came at a median "
          f"{statistics.median(healthz):.1f} ms |" if healthz else
          f"(min {min(ready):.1f}, max {max(ready):.1f}) |")
    if size:
        w(f"| binary size | {int(size):,} bytes ({int(size) / 1048576:.1f} MiB) |")
    w("")
    if idle:
        w("Each idle connection made one request (`GET /public/idle`, 200) and then stayed open and silent; "
          "the gateway ran with `max_connections` raised above the count and `idle_timeout = \"600s\"`. "
          "RSS is sampled 5 s after the last connection opened (past the gateway's 1 s park and its next memory release), and 5 s after the gateway reported 0 open.")
        w("")

# Targets
targets = []


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def target(what, value, goal, ok, shown):
    targets.append((what, shown, goal, "n/a" if ok is None else ("PASS" if ok else "MISS")))


r = ratio(med("g", "rps"), med("b", "rps"))
target("gateway Bearer cached req/s ÷ nginx", r, "≥ 1.0× (stretch 1.2×)",
       None if r is None else r >= 1.0, "n/a" if r is None else f"{r:.2f}×" + (" (stretch met)" if r >= 1.2 else ""))
r = ratio(med("f", "rps"), med("b", "rps"))
target("gateway public route req/s ÷ nginx", r, "≥ 1.1×", None if r is None else r >= 1.1, "n/a" if r is None else f"{r:.2f}×")
r = ratio(med("g", "cpu_us.gateway"), med("b", "cpu_us.nginx"))
target("gateway CPU µs/request (Bearer cached) ÷ nginx's", r, "≤ 1.1×", None if r is None else r <= 1.1,
       "n/a" if r is None else f"{r:.2f}× ({med('g', 'cpu_us.gateway'):.1f} vs {med('b', 'cpu_us.nginx'):.1f} µs)")
r = ratio(med("f", "cpu_us.gateway"), med("b", "cpu_us.nginx"))
target("gateway CPU µs/request (public route) ÷ nginx's", r, "≤ 1.1×", None if r is None else r <= 1.1,
       "n/a" if r is None else f"{r:.2f}× ({med('f', 'cpu_us.gateway'):.1f} vs {med('b', 'cpu_us.nginx'):.1f} µs)")
r = ratio(med("g", "rps"), med("d", "rps"))
target("gateway cached ÷ HAProxy + jwt_verify", r, "≥ 4×", None if r is None else r >= 4, "n/a" if r is None else f"{r:.2f}×")
r = ratio(med("g", "rps"), med("e", "rps"))
target("gateway cached ÷ Apache + mod_oauth2", r, "≥ 5×", None if r is None else r >= 5, "n/a" if r is None else f"{r:.2f}×")
r = ratio(med("h2", "rps"), med("d2", "rps"))
target("gateway never-seen tokens ÷ HAProxy + jwt_verify on never-seen tokens", r, "≥ 2×",
       None if r is None else r >= 2, "n/a" if r is None else f"{r:.2f}×")
r = ratio(med("l2", "rps"), med("l1", "rps"))
target("FastAPI bare behind the gateway ÷ FastAPI verifying in-app", r, "≥ 2×", None if r is None else r >= 2,
       "n/a" if r is None else f"{r:.2f}×")
r = ratio(med("m2", "rps"), med("m1", "rps"))
target("Node bare behind the gateway ÷ Node verifying in-app", r, "≥ 3×", None if r is None else r >= 3,
       "n/a" if r is None else f"{r:.2f}×")
a99 = added("gateway", "p99_us") if fixed["direct"][0] is not None else None
target(f"gateway added p99 over direct at {meta.get('fixed_rate', '?')} req/s", a99, "≤ 50 µs",
       None if a99 is None else a99 <= 50, "n/a" if a99 is None else f"{a99:.0f} µs")
target(f"RSS per idle keep-alive connection ({int(idle['conns']):,} open)" if idle else "RSS per idle keep-alive connection",
       per_conn, "≤ 4 KiB", None if per_conn is None else per_conn <= 4,
       "n/a" if per_conn is None else f"{per_conn:.2f} KiB")
target("idle connections' memory returned when closed", returned, "≥ 90% returned",
       None if returned is None else returned >= 0.9, "n/a" if returned is None else f"{round(returned * 100) + 0}%")
rm = statistics.median(ready) if ready else None
target("exec to /readyz with a PEM key (median)", rm, "< 50 ms", None if rm is None else rm < 50,
       "n/a" if rm is None else f"{rm:.1f} ms")

w("## Against the targets")
w("")
w("| target | measured | goal | |")
w("|---|---|---|---|")
for what, shown, goal, verdict in targets:
    w(f"| {what} | {shown} | {goal} | {verdict} |")
w("")
w("Ratios are of the medians above. n/a: the scenario was not part of this run.")
w("")

with open(report_path, "w") as f:
    f.write("\n".join(lines))

print()
print(f"{'target':<78} {'measured':<30} {'goal':<22} verdict")
for what, shown, goal, verdict in targets:
    print(f"{what:<78} {shown:<30} {goal:<22} {verdict}")
