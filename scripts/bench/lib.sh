# Shared helpers for scripts/bench/*.sh (sourced, not run). Same approach as intake.sh:
# die/note, apt-get for missing tools, cargo build --release, a temp dir, processes
# started by us tracked by pid and stopped by pid on exit.
# The sourcing script sets SCRIPT (its name, for messages) before sourcing.

die() { printf '%s: error: %s\n' "${SCRIPT:-bench}" "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*"; }

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# need_tools CMD:PKG ... -> installs the missing packages with apt-get
need_tools() {
    local want=() spec cmd pkg
    for spec in "$@"; do
        cmd="${spec%%:*}"; pkg="${spec#*:}"
        command -v "$cmd" >/dev/null 2>&1 || want+=("$pkg")
    done
    [ ${#want[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing ${want[*]}; run as root so they can be installed with apt-get"
    note "installing ${want[*]} with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${want[@]}" >/dev/null; then
        apt-get update >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${want[@]}" >/dev/null \
            || die "apt-get install ${want[*]} failed"
    fi
}

# build_release -> sets BIN, DOCKHAND_VERSION
build_release() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH"
    note "building: cargo build --release (may wait for another build's lock)"
    (cd "$BENCH_ROOT" && cargo build --release) || die "cargo build --release failed"
    BIN="$BENCH_ROOT/target/release/dockhand"
    [ -x "$BIN" ] || die "$BIN was not built"
    DOCKHAND_VERSION="$("$BIN" --version 2>&1)" || die "'$BIN --version' failed"
}

# make_tmp -> sets TMP and installs the EXIT trap (cleanup_pids + BENCH_CLEANUP hooks)
BENCH_PIDS=()
BENCH_CLEANUP=()
make_tmp() {
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/dockhand-bench.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
bench_cleanup() {
    local rc=$? f p
    for f in "${BENCH_CLEANUP[@]}"; do "$f" || true; done
    for p in "${BENCH_PIDS[@]}"; do stop_pid "$p"; done
    [ -n "${TMP:-}" ] && [ -z "${KEEP_TMP:-}" ] && rm -rf "$TMP"
    exit "$rc"
}
# track PID: stopped (TERM, then KILL after 5 s) on exit
track() { BENCH_PIDS+=("$1"); }
stop_pid() {
    local p="$1"
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null || true
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' \
        || die "could not find a free port"
}

# wait_http URL PID [TRIES] -> waits until URL answers anything (not 000), PID alive
wait_http() {
    local url="$1" pid="$2" tries="${3:-300}" code=000
    for _ in $(seq "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 1
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)"
        [ -n "$code" ] && [ "$code" != 000 ] && { echo "$code"; return 0; }
        sleep 0.1
    done
    return 1
}

# proc_kb PID FIELD -> kB from /proc/PID/status (VmRSS, VmHWM, Threads...)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
rps() { awk -v r="$1" -v us="$2" 'BEGIN { if (us > 0) printf "%.1f", r / (us / 1e6); else print "0" }'; }
# field NAME LINE -> value of NAME=... in a "BENCH k=v k=v" line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
status_count() { tr ',' '\n' <<<"$2" | awk -F= -v c="$1" '$1 == c { n += $2 } END { print n + 0 }'; }

# resolve_out FILE -> absolute path (relative to the caller's cwd)
resolve_out() {
    local o="$1"
    case "$o" in /*) ;; *) o="$PWD/$o" ;; esac
    [ -d "$(dirname "$o")" ] || die "--out $o: directory $(dirname "$o") does not exist"
    echo "$o"
}

# parse_args "$@": sets SMOKE (--smoke) and OUT (--out FILE) for a bench script; -h/--help
# prints the script's header comment.
parse_args() {
    SMOKE=0; OUT=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --smoke) SMOKE=1 ;;
            --out) [ $# -ge 2 ] || die "--out needs a file"; OUT="$(resolve_out "$2")"; shift ;;
            -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
            *) die "unknown argument '$1'" ;;
        esac
        shift
    done
}
