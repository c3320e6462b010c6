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

# now -> the time as epoch seconds with microseconds (for marks and durations)
now() { date +%s.%6N; }
# secs_between A B -> B - A in seconds, 3 decimals
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# start_registry NAME PORT [NOTIFY_URL TOKEN] -> sets REG_PORT, REG_PID: a Distribution
# registry (docker-registry) on 127.0.0.1:PORT with storage under $TMP/NAME; with
# NOTIFY_URL, it notifies that URL of every push (Authorization: Bearer TOKEN), as
# tests/common does.
start_registry() {
    local name="$1" url="${3:-}" token="${4:-}" dir="$TMP/$1"
    REG_PORT="$2"
    mkdir -p "$dir/data"
    {
        printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n' "$dir/data"
        printf '  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$REG_PORT"
        if [ -n "$url" ]; then
            printf 'notifications:\n  endpoints:\n    - name: dockhand\n      url: %s\n' "$url"
            printf '      headers:\n        Authorization: [Bearer %s]\n' "$token"
            printf '      timeout: 2s\n      threshold: 5\n      backoff: 1s\n'
        fi
    } >"$dir/registry.yml"
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    REG_PID=$!; track "$REG_PID"
    wait_http "http://127.0.0.1:$REG_PORT/v2/" "$REG_PID" >/dev/null \
        || { tail "$dir/registry.log" >&2; die "registry $name did not start"; }
}

# start_dockhand CONFIG PORT -> sets DH_PID, DH_URL: `dockhand serve` (log in CONFIG.log),
# once /healthz answers
start_dockhand() {
    "$BIN" serve --config "$1" >"$1.log" 2>&1 &
    DH_PID=$!; track "$DH_PID"
    DH_URL="http://127.0.0.1:$2"
    wait_http "$DH_URL/healthz" "$DH_PID" >/dev/null || { tail "$1.log" >&2; die "dockhand did not come up"; }
}

# dh_wait_tag TARGET TAG TOKEN [SECONDS] -> waits until dockhand (DH_URL) has a deployment
# of TAG to TARGET that has ended; sets DEP_ID, DEP_STATE
dh_wait_tag() {
    local target="$1" tag="$2" token="$3" tries=$(( ${4:-120} * 20 )) row
    DEP_ID=""; DEP_STATE=""
    for _ in $(seq "$tries"); do
        row="$(curl -s -m 5 -H "Authorization: Bearer $token" "$DH_URL/api/deployments?target=$target&limit=20" \
            | jq -r --arg t "$tag" '[.[] | select(.tag == $t)][0] // empty | "\(.id) \(.state)"' 2>/dev/null || true)"
        if [ -n "$row" ]; then
            DEP_ID="${row%% *}"; DEP_STATE="${row#* }"
            case "$DEP_STATE" in queued|running) ;; *) return 0 ;; esac
        fi
        sleep 0.05
    done
    die "no ended deployment of $tag to $target within ${4:-120} s (last: ${DEP_ID:-none} ${DEP_STATE:-})"
}

# swarm_network NAME -> a swarm-scoped, attachable bridge network: the host reaches the
# tasks' IPs on it (the ingress routing mesh does not work on this kernel; lab doc sec. 4)
swarm_network() {
    docker network create -d bridge --scope swarm --attachable "$1" >/dev/null || die "cannot create network $1"
}

# task_ips SERVICE NETWORK -> the IPs on NETWORK of SERVICE's running containers, one a line
task_ips() {
    local id
    for id in $(docker ps -q --filter "label=com.docker.swarm.service.name=$1"); do
        docker inspect -f "{{with index .NetworkSettings.Networks \"$2\"}}{{.IPAddress}}{{end}}" "$id" 2>/dev/null || true
    done | sed '/^$/d'
}

# wait_service_serves SERVICE NETWORK BODY REPLICAS [SECONDS] -> until exactly REPLICAS
# containers of SERVICE run and each answers BODY on :8080
wait_service_serves() {
    local ips ip n ok
    for _ in $(seq $(( ${5:-60} * 10 ))); do
        ips="$(task_ips "$1" "$2")"; n=0; ok=1
        for ip in $ips; do
            n=$((n + 1))
            [ "$(curl -s -m 1 "http://$ip:8080/" || true)" = "$3" ] || ok=0
        done
        [ "$n" = "$4" ] && [ "$ok" = 1 ] && return 0
        sleep 0.1
    done
    die "service $1 does not serve '$3' on $4 tasks (IPs: $(echo $ips))"
}

# hub_config PORT STATE CONTAINER IMAGE -> prints the dockhand config peers.sh and
# profile.sh load: a `dockerhub` hook with token "bench-token", one container target,
# dedupe off (identical bodies are distinct events) and auth_failures off (no 429s)
hub_config() {
    cat <<EOF
[server]
listen = "127.0.0.1:$1"
state = "$2"
dedupe_window = "0s"
auth_failures = 0

[[hooks]]
name = "hub"
source = "dockerhub"
token = "bench-token"

[[targets]]
name = "hubapp"
kind = "container"
container = "$3"
image = "$4"
EOF
}
