#!/usr/bin/env bash
# Benchmark (not a test): accepted-hook throughput of dockhand with durable recording.
#
# Builds the release binary, serves it on a free 127.0.0.1 port with a throw-away config
# and state file, and loads `POST /hooks/ci` (generic source) with wrk:
#   1. accepted run: right token, every request a distinct event (expects 202);
#   2. rejected run: wrong token (expects 401).
# Then it reports requests/s, p50/p99 latency, idle and peak RSS of dockhand, and checks
# that the events table holds a row for every 202 answer.
#
# Usage: scripts/bench/intake.sh [--smoke] [--out FILE]
#   --smoke      2 s runs (a quick check that the bench works)
#   --out FILE   also write the final Markdown table to FILE
# Environment: DURATION (default 10s; wrk syntax: 10, 10s, 2m), CONNECTIONS (default 16),
#   THREADS (default 2), TARGETS (default 4), TMPDIR (where the temp dir, hence the state
#   file, lives: its filesystem matters, since each 202 waits for an fsync).
#
# Runs as root on Debian 12; installs wrk with apt-get if it is missing. Kills only the
# dockhand it started (by pid) and removes its temp dir on exit.
set -euo pipefail

die() { printf 'intake.sh: error: %s\n' "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*"; }

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

SMOKE=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --out)
            [ $# -ge 2 ] && [ -n "$2" ] || die "--out needs a file name"
            OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}"; [ -n "$OUT" ] || die "--out needs a file name" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

DURATION="${DURATION:-10s}"
[ "$SMOKE" = 1 ] && DURATION=2s
CONNECTIONS="${CONNECTIONS:-16}"
THREADS="${THREADS:-2}"
TARGETS="${TARGETS:-4}"
[[ "$DURATION" =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION='$DURATION': give a whole number of seconds, e.g. 10 or 10s (or 2m, 1h)"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS='$CONNECTIONS': give a positive integer"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS='$THREADS': give a positive integer"
[[ "$TARGETS" =~ ^[1-9][0-9]*$ ]] || die "TARGETS='$TARGETS': give a positive integer"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS) (wrk requires it)"

# Resolve --out before we cd, so a relative path means relative to the caller.
if [ -n "$OUT" ]; then
    case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
    [ -d "$(dirname "$OUT")" ] || die "--out $OUT: directory $(dirname "$OUT") does not exist"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[ -f Cargo.toml ] || die "cannot find the project root (no Cargo.toml in $ROOT)"

# ---------------------------------------------------------------- tools
need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}; run as root so they can be installed with apt-get"
    note "installing ${need_apt[*]} with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}"; then
        note "apt-get install failed; running apt-get update and trying again"
        apt-get update || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}" \
            || die "apt-get install ${need_apt[*]} failed"
    fi
fi
python3 -c 'import sqlite3' 2>/dev/null || die "python3 has no sqlite3 module (needed to count the events table)"
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install Rust, e.g. rustup)"

# ---------------------------------------------------------------- build
note "building: cargo build --release (may wait for another build's lock)"
cargo build --release || die "cargo build --release failed"
BIN="$ROOT/target/release/dockhand"
[ -x "$BIN" ] || die "$BIN was not built"
DOCKHAND_VERSION="$("$BIN" --version 2>&1)" || die "'$BIN --version' failed: $DOCKHAND_VERSION"
WRK_VERSION="$( (wrk -v 2>&1 || true) | head -n1 | sed 's/ *Copyright.*//')"

# ---------------------------------------------------------------- temp dir, cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/dockhand-bench.XXXXXX")"
PID=""
cleanup() {
    local rc=$?
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$PID" 2>/dev/null; then
            echo "intake.sh: dockhand (pid $PID) ignored SIGTERM for 5s; sending SIGKILL" >&2
            kill -KILL "$PID" 2>/dev/null || true
        fi
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')" \
    || die "could not find a free port"
BASE="http://127.0.0.1:$PORT"
CFG="$TMP/dockhand.toml"
STATE="$TMP/state.db"
LOG="$TMP/dockhand.log"

{
    # auth_failures = 0: without it the front door answers 429 after 20 wrong secrets a
    # minute from one address, and the rejected run would measure the 429 path.
    printf '[server]\nlisten = "127.0.0.1:%s"\nstate  = "%s"\nauth_failures = 0\n\n' "$PORT" "$STATE"
    printf '[[hooks]]\nname   = "ci"\nsource = "generic"\ntoken  = "bench-token"\n'
    for n in $(seq "$TARGETS"); do
        printf '\n[[targets]]\nname      = "bench-%s"\nkind      = "container"\ncontainer = "dh-bench-absent-%s"\nimage     = "127.0.0.1:5999/bench-app-%s"\n' "$n" "$n" "$n"
    done
} >"$CFG"

# wrk script: each request is a distinct event (dockhand de-duplicates identical ones).
# Tag = v<run>-<thread>-<counter>; image cycles over the targets.
LUA="$TMP/intake.lua"
cat >"$LUA" <<'EOF'
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  token    = args[1]
  ntargets = tonumber(args[2])
  run      = args[3]
  counter  = 0
  statuses = {}
  wrk.method = "POST"
  wrk.path   = "/hooks/ci"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"]  = "application/json"
end

function request()
  counter = counter + 1
  local n = (counter % ntargets) + 1
  local body = string.format('{"image":"127.0.0.1:5999/bench-app-%d","tag":"v%s-%d-%d"}',
                             n, run, tid, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for code, c in pairs(s) do total[code] = (total[code] or 0) + c end
    end
  end
  local parts = {}
  for code, c in pairs(total) do table.insert(parts, string.format("%d=%d", code, c)) end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d statuses=%s err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    (#parts > 0) and table.concat(parts, ",") or "none",
    e.connect, e.read, e.write, e.timeout, e.status))
end
EOF

# ---------------------------------------------------------------- start dockhand
SERVE_CMD=("$BIN" serve --config "$CFG")
note "starting: ${SERVE_CMD[*]} (log: $LOG)"
"$BIN" check --config "$CFG" >"$TMP/check.out" 2>&1 || {
    rc=$?
    # 2 = config valid but engine unreachable / targets missing: expected here.
    [ "$rc" = 2 ] || { cat "$TMP/check.out" >&2; die "dockhand check --config rejected the bench config (exit $rc)"; }
}
"${SERVE_CMD[@]}" >"$LOG" 2>&1 &
PID=$!

HEALTH=000
for _ in $(seq 300); do
    kill -0 "$PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; PID=""; die "dockhand exited during startup (log above)"; }
    HEALTH="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE/healthz" || true)"
    [ -n "$HEALTH" ] && [ "$HEALTH" != 000 ] && break
    sleep 0.1
done
[ -n "$HEALTH" ] && [ "$HEALTH" != 000 ] || { tail -n 30 "$LOG" >&2; die "dockhand did not answer GET /healthz on $BASE within 30s"; }
note "dockhand pid $PID up on $BASE (GET /healthz -> $HEALTH)"

# A probe request, so a broken setup fails here with a readable reason, not as 100% errors.
PROBE="$(curl -s -m 10 -o "$TMP/probe.body" -w '%{http_code}' -X POST "$BASE/hooks/ci" \
    -H 'Authorization: Bearer bench-token' -H 'Content-Type: application/json' \
    -d '{"image":"127.0.0.1:5999/bench-app-1","tag":"vprobe"}' || true)"
[ "$PROBE" = 202 ] || die "probe POST /hooks/ci answered '$PROBE' (expected 202): $(head -c 300 "$TMP/probe.body" 2>/dev/null)"

proc_kb() { # proc_kb FIELD -> value in kB from /proc/PID/status
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status" 2>/dev/null || true
}
count_rows() {
    python3 - "$STATE" "$1" <<'EOF'
import sqlite3, sys
con = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
print(con.execute("SELECT COUNT(*) FROM " + sys.argv[2]).fetchone()[0])
con.close()
EOF
}
settled_events() { # wait until the events count stops moving (in-flight commits finished)
    local a b
    a="$(count_rows events)"
    for _ in $(seq 20); do
        sleep 0.5
        b="$(count_rows events)"
        [ "$a" = "$b" ] && break
        a="$b"
    done
    echo "$a"
}

sleep 1
IDLE_RSS_KB="$(proc_kb VmRSS)"
EVENTS_BEFORE="$(settled_events)"

# ---------------------------------------------------------------- runs
field() { # field NAME LINE
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}
run_wrk() { # run_wrk LABEL TOKEN RUNID -> sets BENCH_LINE, WRK_CMD_STR; prints wrk output
    local label="$1" token="$2" runid="$3" out="$TMP/wrk-$1.out"
    local cmd=(wrk --latency -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -s "$LUA" "$BASE/hooks/ci" -- "$token" "$TARGETS" "$runid")
    WRK_CMD_STR="${cmd[*]}"
    note "$label run: $WRK_CMD_STR"
    "${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($label run)"; }
    sed 's/^/    /' "$out"
    BENCH_LINE="$(grep '^BENCH ' "$out" | tail -n1)"
    [ -n "$BENCH_LINE" ] || die "wrk printed no BENCH line ($label run); is the Lua done() callback running?"
}
status_count() { # status_count CODE STATUSES -> count of CODE in "202=5,401=3"
    tr ',' '\n' <<<"$2" | awk -F= -v c="$1" '$1 == c { n += $2 } END { print n + 0 }'
}
rps() { awk -v r="$1" -v us="$2" 'BEGIN { if (us > 0) printf "%.1f", r / (us / 1e6); else print "0" }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

RUNID="$(date +%s)"
run_wrk accepted bench-token "${RUNID}a"
ACC_LINE="$BENCH_LINE"; ACC_CMD="$WRK_CMD_STR"
ACC_HWM_KB="$(proc_kb VmHWM)"
EVENTS_AFTER="$(settled_events)"

run_wrk rejected wrong-token "${RUNID}r"
REJ_LINE="$BENCH_LINE"; REJ_CMD="$WRK_CMD_STR"
sleep 0.5
PEAK_HWM_KB="$(proc_kb VmHWM)"
END_RSS_KB="$(proc_kb VmRSS)"
EVENTS_FINAL="$(settled_events)"
DEPLOYMENTS_FINAL="$(count_rows deployments)"
kill -0 "$PID" 2>/dev/null || die "dockhand (pid $PID) died during the runs; log: $(tail -n 20 "$LOG")"

# ---------------------------------------------------------------- figures
ACC_REQ="$(field requests "$ACC_LINE")";   ACC_US="$(field duration_us "$ACC_LINE")"
ACC_ST="$(field statuses "$ACC_LINE")"
ACC_202="$(status_count 202 "$ACC_ST")"
ACC_NON202=$((ACC_REQ - ACC_202))
ACC_SOCKERR=$(( $(field err_connect "$ACC_LINE") + $(field err_read "$ACC_LINE") + $(field err_write "$ACC_LINE") + $(field err_timeout "$ACC_LINE") ))
REJ_REQ="$(field requests "$REJ_LINE")";   REJ_US="$(field duration_us "$REJ_LINE")"
REJ_ST="$(field statuses "$REJ_LINE")"
REJ_401="$(status_count 401 "$REJ_ST")"
REJ_NON401=$((REJ_REQ - REJ_401))
REJ_SOCKERR=$(( $(field err_connect "$REJ_LINE") + $(field err_read "$REJ_LINE") + $(field err_write "$REJ_LINE") + $(field err_timeout "$REJ_LINE") ))

ACC_RPS="$(rps "$ACC_REQ" "$ACC_US")";     ACC_202_RPS="$(rps "$ACC_202" "$ACC_US")"
REJ_RPS="$(rps "$REJ_REQ" "$REJ_US")"
RECORDED=$((EVENTS_AFTER - EVENTS_BEFORE))
REJ_RECORDED=$((EVENTS_FINAL - EVENTS_AFTER))
# wrk stops with up to CONNECTIONS requests in flight: dockhand may record (and answer)
# those, but wrk never reads the answers, so RECORDED may exceed the 202 count by that much.
EXTRA=$((RECORDED - ACC_202))
FS_TYPE="$(findmnt -n -o FSTYPE -T "$TMP" 2>/dev/null || stat -f -c %T "$TMP" 2>/dev/null || echo '?')"
PROBLEMS=()
[ "$ACC_NON202" -eq 0 ] || PROBLEMS+=("accepted run: $ACC_NON202 non-202 answers (statuses: $ACC_ST)")
[ "$ACC_SOCKERR" -eq 0 ] || PROBLEMS+=("accepted run: $ACC_SOCKERR socket errors")
[ "$REJ_NON401" -eq 0 ] || PROBLEMS+=("rejected run: $REJ_NON401 non-401 answers (statuses: $REJ_ST)")
[ "$REJ_SOCKERR" -eq 0 ] || PROBLEMS+=("rejected run: $REJ_SOCKERR socket errors")
[ "$REJ_RECORDED" -eq 0 ] || PROBLEMS+=("rejected run recorded $REJ_RECORDED events (expected 0)")
if [ "$RECORDED" -lt "$ACC_202" ]; then
    DURABLE="NO: $((ACC_202 - RECORDED)) accepted events missing"
    PROBLEMS+=("durability: $ACC_202 answers 202 but only $RECORDED new events rows")
elif [ "$EXTRA" -gt "$CONNECTIONS" ]; then
    DURABLE="rows exceed 202s by $EXTRA (> $CONNECTIONS in flight)"
    PROBLEMS+=("events rows exceed 202 answers by $EXTRA, more than the $CONNECTIONS requests that can be in flight")
else
    DURABLE="yes (every 202 has its row; +$EXTRA in flight at stop)"
fi

echo
note "settings"
cat <<EOF
    machine:       nproc=$(nproc), $(uname -sr), state dir on $FS_TYPE ($TMP)
    dockhand:      $DOCKHAND_VERSION ($BIN), pid $PID, GET /healthz -> $HEALTH at start
    wrk:           $WRK_VERSION
    serve:         ${SERVE_CMD[*]}
    accepted run:  $ACC_CMD
    rejected run:  $REJ_CMD
    load:          duration=$DURATION connections=$CONNECTIONS threads=$THREADS targets=$TARGETS$([ "$SMOKE" = 1 ] && echo ' (--smoke)')
    config:
$(sed 's/^/        /' "$CFG")
EOF
echo
note "raw"
printf '    accepted: %s\n    rejected: %s\n' "$ACC_LINE" "$REJ_LINE"
printf '    events rows: %s before, %s after accepted run, %s at end (incl. 1 probe); deployments rows: %s\n' \
    "$EVENTS_BEFORE" "$EVENTS_AFTER" "$EVENTS_FINAL" "$DEPLOYMENTS_FINAL"

TABLE="$(cat <<EOF
| metric | value |
| --- | --- |
| dockhand | $DOCKHAND_VERSION |
| wrk | $WRK_VERSION |
| machine | nproc $(nproc), state file on $FS_TYPE |
| load | $DURATION, $CONNECTIONS connections, $THREADS threads, $TARGETS targets |
| accepted: requests/s | $ACC_RPS ($ACC_202_RPS/s answered 202) |
| accepted: requests, 202s, non-202 | $ACC_REQ, $ACC_202, $ACC_NON202 (statuses $ACC_ST; socket errors $ACC_SOCKERR) |
| accepted: latency p50 / p99 | $(ms "$(field p50_us "$ACC_LINE")") ms / $(ms "$(field p99_us "$ACC_LINE")") ms |
| rejected (401): requests/s | $REJ_RPS (statuses $REJ_ST; socket errors $REJ_SOCKERR) |
| rejected: latency p99 | $(ms "$(field p99_us "$REJ_LINE")") ms |
| dockhand RSS idle / peak (VmRSS / VmHWM) | $((IDLE_RSS_KB / 1024)) MiB / $((PEAK_HWM_KB / 1024)) MiB (VmHWM after accepted run $((ACC_HWM_KB / 1024)) MiB; VmRSS at end $((END_RSS_KB / 1024)) MiB) |
| events rows vs 202 answers | $RECORDED vs $ACC_202 |
| every 202 durably recorded | $DURABLE |
EOF
)"
echo
note "results"
echo "$TABLE"
if [ -n "$OUT" ]; then
    printf '%s\n' "$TABLE" >"$OUT" || die "cannot write $OUT"
    note "table written to $OUT"
fi

if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo >&2
    for p in "${PROBLEMS[@]}"; do echo "intake.sh: ERROR: $p" >&2; done
    echo "intake.sh: dockhand log tail:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi
