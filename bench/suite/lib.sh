# Helpers sourced by bench/suite.sh: installing what is missing, and reading a process's
# CPU time, peak RSS and system calls from /proc and perf.

log() { printf '%s [suite] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n%s [suite] ERROR: %s\n\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# Installing

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -q >/dev/null
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# Debian packages the suite uses, installed when their command (or file) is missing.
ensure_debian_tools() {
    local pkgs=()
    command -v wrk >/dev/null || pkgs+=(wrk)
    command -v nginx >/dev/null || pkgs+=(nginx-light)
    command -v haproxy >/dev/null || pkgs+=(haproxy)
    command -v apache2 >/dev/null || pkgs+=(apache2)
    [ -e /usr/lib/apache2/modules/mod_oauth2.so ] || pkgs+=(libapache2-mod-oauth2)
    command -v ab >/dev/null || pkgs+=(apache2-utils)
    { [ -x "$PYTHON" ] && dpkg -s python3-venv >/dev/null 2>&1; } || pkgs+=(python3-venv)
    command -v node >/dev/null || pkgs+=(nodejs)
    command -v npm >/dev/null || pkgs+=(npm)
    command -v openssl >/dev/null || pkgs+=(openssl)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v perf >/dev/null || pkgs+=(linux-perf)
    command -v taskset >/dev/null || pkgs+=(util-linux)
    command -v git >/dev/null || pkgs+=(git)
    if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
    # Debian's postinst may have started the packaged services: they use their own ports
    # (80), not the suite's, and are left alone.
}

# The venv: fastapi, uvicorn, clerk-backend-api, cryptography, pinned in requirements.txt.
# Rebuilt when requirements.txt changes.
ensure_venv() {
    local req=bench/suite/requirements.txt stamp="$BENCH_VENV/.suite-requirements"
    if [ -x "$BENCH_VENV/bin/python" ] && cmp -s "$req" "$stamp"; then return; fi
    log "creating the Python venv $BENCH_VENV ($req)"
    rm -rf "$BENCH_VENV"
    "$PYTHON" -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
}

# @clerk/backend in bench/suite/node_modules, from package-lock.json (npm ci).
ensure_node_modules() {
    local stamp=bench/suite/node_modules/.suite-lock
    if [ -d bench/suite/node_modules/@clerk/backend ] && cmp -s bench/suite/package-lock.json "$stamp"; then return; fi
    log "npm ci in bench/suite"
    (cd bench/suite && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp bench/suite/package-lock.json "$stamp"
}

# oha, the fixed-rate load generator: $BENCH_TOOLS/bin/oha, else one on PATH, else built
# with `cargo install --locked` (the first of OHA_VERSIONS that builds with this rustc; 1.16.0
# declares rust-version 1.88). If none builds, FIXED_TOOL falls back to wrk paced by its
# delay() hook (bench/suite/paced.lua), which needs nothing more.
ensure_oha() {
    if [ "${FIXED_TOOL:-}" = wrk-paced ]; then OHA=; return; fi   # forced (to try the fallback)
    FIXED_TOOL=oha
    if [ -x "$BENCH_TOOLS/bin/oha" ]; then OHA="$BENCH_TOOLS/bin/oha"; return; fi
    if command -v oha >/dev/null; then OHA=$(command -v oha); return; fi
    if command -v cargo >/dev/null; then
        local v
        for v in $OHA_VERSIONS; do
            log "building oha $v (cargo install --locked, CARGO_TARGET_DIR=/tmp/oha-build; a few minutes)"
            if CARGO_TARGET_DIR=/tmp/oha-build nice -n 10 cargo install oha --version "$v" --locked \
                --root "$BENCH_TOOLS" >"$OUT/oha-install-$v.log" 2>&1; then
                OHA="$BENCH_TOOLS/bin/oha"
                return
            fi
            log "oha $v did not build (see $OUT/oha-install-$v.log)"
        done
    fi
    log "no oha: fixed-rate latency falls back to wrk paced by delay() (bench/suite/paced.lua)"
    FIXED_TOOL=wrk-paced
    OHA=
}

# ---------------------------------------------------------------------------------------
# Processes

CLK_TCK=$(getconf CLK_TCK)

# every pid of a process tree (the process, its children, theirs)
tree_pids() {
    local pid=$1 child
    [ -d "/proc/$pid" ] || return 0
    echo "$pid"
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree_pids "$child"; done
}

# utime + stime in clock ticks, summed over the given pids (all threads of each: the
# thread-group leader's /proc/PID/stat counts every thread, exited ones too)
cpu_ticks() {
    local total=0 pid f
    for pid in "$@"; do
        f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $f
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
# resident-set high-water marks: reset to the current RSS, and read (KiB, summed)
reset_hwm() { local pid; for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done; }
hwm_kib() {
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# wait_http URL [TRIES]: poll until URL answers anything (0.1 s apart)
wait_http() {
    local url=$1 tries=${2:-100}
    for _ in $(seq "$tries"); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    return 1
}

# status CURL-ARGS...: the HTTP status curl gets
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }

# expect_status WHAT WANT CURL-ARGS...: abort unless the answer has status WANT
expect_status() {
    local what=$1 want=$2 got
    shift 2
    got=$(status "$@")
    [ "$got" = "$want" ] || die "precondition failed: $what answered $got, expected $want"
    log "  ok: $what -> $got"
}

# seconds of a duration like 10s, 2m, 500ms, 30
secs() {
    case $1 in
        *ms) awk -v v="${1%ms}" 'BEGIN { printf "%g", v / 1000 }' ;;
        *s) echo "${1%s}" ;;
        *m) echo $((${1%m} * 60)) ;;
        *) echo "$1" ;;
    esac
}
