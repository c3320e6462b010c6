#!/usr/bin/env bash
# Benchmark (not a test): hook intake of dockhand vs adnanh/webhook (Debian `webhook`).
#
# Both run on this machine at the same time, on free 127.0.0.1 ports, and get the same
# body (the Docker Hub sample /work/shared/fixtures/docker-hub-1.json, minus its
# callback_url so that no traffic leaves the machine) with the secret in `?token=`:
#   dockhand: a `dockerhub` hook (token check, parse, durable record: SQLite WAL,
#             synchronous=FULL, fsync before the 202), one container target that runs the
#             image, dedupe_window = "0s" (identical bodies are distinct events) and
#             auth_failures = 0 (no 429 during the rejected run);
#   webhook:  a hook whose trigger-rule is `match type value` on the URL parameter
#             `token`, running /bin/true; a mismatch answers 401
#             (trigger-rule-mismatch-http-response-code). webhook records nothing.
# Runs, alternating the two peers: accepted (right token), rejected (wrong token), each
# with wrk (same threads/connections/duration), at each connection count. Reports req/s,
# p50/p99, idle and peak RSS (VmRSS / VmHWM of each server process) and the ratio
# dockhand/webhook. nginx answering `return 401` to everything runs the rejected load too:
# the ceiling any server reaches on this machine with wrk on the same cores.
#
# Usage: scripts/bench/peers.sh [--smoke] [--out FILE]
#   --smoke      2 s runs;  --out FILE  also write the Markdown section to FILE
# Environment: DURATION (10s), CONNECTIONS ("16 64": one set of runs per level), THREADS (2),
# NGINX_WORKERS (2), FIXTURE.
set -euo pipefail
SCRIPT=peers.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
DURATION="${DURATION:-10s}"; [ "$SMOKE" = 1 ] && DURATION=2s
CONNECTIONS="${CONNECTIONS:-16 64}"; NGINX_WORKERS="${NGINX_WORKERS:-2}"; THREADS="${THREADS:-2}"
FIXTURE="${FIXTURE:-/work/shared/fixtures/docker-hub-1.json}"
[ -f "$FIXTURE" ] || die "fixture $FIXTURE not found"

need_tools wrk:wrk curl:curl python3:python3 jq:jq webhook:webhook nginx:nginx-light
build_release
WEBHOOK_VERSION="$(webhook -version 2>&1 | head -n1)"
WRK_VERSION="$( (wrk -v 2>&1 || true) | head -n1 | sed 's/ *Copyright.*//')"
make_tmp

BODY="$TMP/body.json"
jq -c 'del(.callback_url)' "$FIXTURE" >"$BODY"
REPO="$(jq -r .repository.repo_name "$BODY")"

# ---------------------------------------------------------------- dockhand
DH_PORT="$(free_port)"
hub_config "$DH_PORT" "$TMP/state.db" "dh-peers-absent-$$" "$REPO" >"$TMP/dockhand.toml"
"$BIN" serve --config "$TMP/dockhand.toml" >"$TMP/dockhand.log" 2>&1 &
DH_PID=$!; track "$DH_PID"
wait_http "http://127.0.0.1:$DH_PORT/healthz" "$DH_PID" >/dev/null \
    || { tail -n 20 "$TMP/dockhand.log" >&2; die "dockhand did not come up"; }

# ---------------------------------------------------------------- webhook
WH_PORT="$(free_port)"
cat >"$TMP/hooks.json" <<'EOF'
[
  {
    "id": "hub",
    "execute-command": "/bin/true",
    "trigger-rule-mismatch-http-response-code": 401,
    "trigger-rule": {
      "match": { "type": "value", "value": "bench-token",
                 "parameter": { "source": "url", "name": "token" } }
    }
  }
]
EOF
webhook -hooks "$TMP/hooks.json" -ip 127.0.0.1 -port "$WH_PORT" >"$TMP/webhook.log" 2>&1 &
WH_PID=$!; track "$WH_PID"
wait_http "http://127.0.0.1:$WH_PORT/" "$WH_PID" >/dev/null \
    || { tail -n 20 "$TMP/webhook.log" >&2; die "webhook did not come up"; }

DH_URL="http://127.0.0.1:$DH_PORT/hooks/hub"
WH_URL="http://127.0.0.1:$WH_PORT/hooks/hub"

# ---------------------------------------------------------------- nginx (the ceiling)
NX_PORT="$(free_port)"
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<EOF
daemon off;
worker_processes $NGINX_WORKERS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    server {
        listen 127.0.0.1:$NX_PORT;
        location / { return 401 '{"error":"wrong secret"}'; }
    }
}
EOF
NGINX_VERSION="$(nginx -v 2>&1 | sed 's/^nginx version: //')"
nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.log" 2>&1 &
NX_PID=$!; track "$NX_PID"
wait_http "http://127.0.0.1:$NX_PORT/" "$NX_PID" >/dev/null \
    || { cat "$TMP/nginx.log" "$TMP/nginx/error.log" >&2 2>/dev/null; die "nginx did not come up"; }
NX_URL="http://127.0.0.1:$NX_PORT/hooks/hub"


probe() { # probe URL TOKEN WANT
    local code
    code="$(curl -s -m 10 -o "$TMP/probe.out" -w '%{http_code}' -X POST "$1?token=$2" \
        -H 'Content-Type: application/json' --data-binary @"$BODY" || true)"
    [ "$code" = "$3" ] || die "probe $1 (token $2) answered '$code', expected $3: $(head -c 300 "$TMP/probe.out")"
}
probe "$DH_URL" bench-token 202; probe "$DH_URL" wrong 401
probe "$WH_URL" bench-token 200; probe "$WH_URL" wrong 401
sleep 1.5
DH_IDLE="$(proc_kb "$DH_PID" VmRSS)"; WH_IDLE="$(proc_kb "$WH_PID" VmRSS)"

cat >"$TMP/post.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  local f = assert(io.open(args[1], "rb")); local body = f:read("*a"); f:close()
  statuses = {}
  wrk.method = "POST"; wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then for code, c in pairs(s) do total[code] = (total[code] or 0) + c end end
  end
  local parts = {}
  for code, c in pairs(total) do table.insert(parts, string.format("%d=%d", code, c)) end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d statuses=%s sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    (#parts > 0) and table.concat(parts, ",") or "none", e.connect + e.read + e.write + e.timeout))
end
EOF

declare -A LINE
run() { # run KEY URL TOKEN CONNECTIONS
    local out="$TMP/wrk-$1.out"
    local cmd=(wrk --latency -t "$THREADS" -c "$4" -d "$DURATION" -s "$TMP/post.lua" "$2?token=$3" -- "$BODY")
    note "$1: ${cmd[*]}"
    "${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($1)"; }
    LINE[$1]="$(grep '^BENCH ' "$out" | tail -n1)"
    [ -n "${LINE[$1]}" ] || die "no BENCH line from wrk ($1)"
    echo "    ${LINE[$1]}"
}
# dockhand keeps working after its accepted run (deploys, superseded or failing against
# the absent container): let it settle so that it does not steal CPU from the next run.
settle_dockhand() {
    python3 - "$TMP/state.db" <<'EOF'
import sqlite3, sys, time
for _ in range(120):
    con = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=30)
    n = con.execute("SELECT COUNT(*) FROM deployments WHERE state IN ('queued','running')").fetchone()[0]
    con.close()
    if n == 0: break
    time.sleep(0.5)
EOF
}
# webhook runs its command asynchronously: after its accepted run, thousands of /bin/true
# may still be starting. Wait until it has no children left, so that they do not steal
# CPU from dockhand's run.
settle_webhook() {
    for _ in $(seq 300); do
        [ -z "$(cat /proc/"$WH_PID"/task/*/children 2>/dev/null | tr -d ' \n')" ] && return 0
        sleep 0.1
    done
    note "webhook still has children after 30 s; going on"
}
count_events() {
    python3 -c 'import sqlite3,sys; c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True,timeout=30); print(c.execute("SELECT COUNT(*) FROM events").fetchone()[0])' "$TMP/state.db"
}

run_level() { # run_level C: the four runs at C connections, plus nginx's 401 ceiling
    local c="$1" e0 e1
    e0="$(count_events)"
    run "wh_acc_$c" "$WH_URL" bench-token "$c"
    settle_webhook; sleep 1
    run "dh_acc_$c" "$DH_URL" bench-token "$c"
    settle_dockhand
    e1="$(count_events)"
    RECORDED[$c]=$((e1 - e0))
    run "wh_rej_$c" "$WH_URL" wrong-token "$c"
    sleep 1
    run "dh_rej_$c" "$DH_URL" wrong-token "$c"
    sleep 0.5
    run "nx_rej_$c" "$NX_URL" wrong-token "$c"
    sleep 0.5
}
declare -A RECORDED
for c in $CONNECTIONS; do run_level "$c"; done
DH_PEAK="$(proc_kb "$DH_PID" VmHWM)"; WH_PEAK="$(proc_kb "$WH_PID" VmHWM)"
DH_END="$(proc_kb "$DH_PID" VmRSS)"; WH_END="$(proc_kb "$WH_PID" VmRSS)"
DH_THREADS="$(proc_kb "$DH_PID" Threads)"; WH_THREADS="$(proc_kb "$WH_PID" Threads)"
kill -0 "$DH_PID" && kill -0 "$WH_PID" || die "a server died during the runs"

# ---------------------------------------------------------------- figures
declare -A RPS P50 P99 OK BAD
for k in "${!LINE[@]}"; do
    l="${LINE[$k]}"; st="$(field statuses "$l")"
    case "$k" in
        dh_acc_*) want=202 ;; wh_acc_*) want=200 ;; *) want=401 ;;
    esac
    OK[$k]="$(status_count "$want" "$st")"
    BAD[$k]=$(( $(field requests "$l") - ${OK[$k]} + $(field sockerr "$l") ))
    RPS[$k]="$(rps "${OK[$k]}" "$(field duration_us "$l")")"
    P50[$k]="$(ms "$(field p50_us "$l")")"; P99[$k]="$(ms "$(field p99_us "$l")")"
done
verdict() { awk -v v="$1" -v t="$2" -v d="$3" 'BEGIN { if (v == "n/a") print "n/a"; else if ((d == ">=" && v >= t) || (d == "<=" && v <= t)) print "met"; else print "MISSED" }'; }

ROWS=""
for c in $CONNECTIONS; do
    a="acc_$c"; r="rej_$c"
    ACC_RATIO="$(ratio "${RPS[dh_$a]}" "${RPS[wh_$a]}")"
    REJ_RATIO="$(ratio "${RPS[dh_$r]}" "${RPS[wh_$r]}")"
    ROWS+="| **$c connections** | | | | |
| accepted req/s | ${RPS[dh_$a]} | ${RPS[wh_$a]} | | $ACC_RATIO (target >= 5: $(verdict "$ACC_RATIO" 5 ">=")) |
| accepted p50 / p99 ms | ${P50[dh_$a]} / ${P99[dh_$a]} | ${P50[wh_$a]} / ${P99[wh_$a]} | | $(ratio "${P50[dh_$a]}" "${P50[wh_$a]}") / $(ratio "${P99[dh_$a]}" "${P99[wh_$a]}") |
| rejected (401) req/s | ${RPS[dh_$r]} | ${RPS[wh_$r]} | ${RPS[nx_$r]} | $REJ_RATIO (target >= 5: $(verdict "$REJ_RATIO" 5 ">=")); nginx/webhook $(ratio "${RPS[nx_$r]}" "${RPS[wh_$r]}") |
| rejected p50 / p99 ms | ${P50[dh_$r]} / ${P99[dh_$r]} | ${P50[wh_$r]} / ${P99[wh_$r]} | ${P50[nx_$r]} / ${P99[nx_$r]} | $(ratio "${P50[dh_$r]}" "${P50[wh_$r]}") / $(ratio "${P99[dh_$r]}" "${P99[wh_$r]}") |
| unexpected answers or socket errors (acc / rej) | ${BAD[dh_$a]} / ${BAD[dh_$r]} | ${BAD[wh_$a]} / ${BAD[wh_$r]} | ${BAD[nx_$r]} | |
| events recorded durably | ${RECORDED[$c]} rows for ${OK[dh_$a]} answers 202 (+ up to $c in flight at stop) | none | | |
"
done

SECTION="$(cat <<EOF
### Hook intake: dockhand vs webhook

Same machine, both servers up at once, runs alternated (webhook, dockhand) so they see the
same noise; between runs, each peer's leftover work (webhook's /bin/true children,
dockhand's queued deploys) is waited for. wrk \`-t $THREADS -c C -d $DURATION\` for each C in
\`$CONNECTIONS\`, POST of the Docker Hub sample (callback_url removed) with \`?token=\`.
Throughput counts only the expected answers (202/200 accepted, 401 rejected).

**Not like for like:** dockhand parses the payload, matches it to a target and commits the
event and its deployment to SQLite with fsync (synchronous=FULL) before answering 202, then
deploys; webhook compares the token, answers, and spawns \`/bin/true\`; it records nothing.

**Ceiling:** nginx ($NGINX_VERSION, $NGINX_WORKERS workers, \`return 401\` for every
request, no parsing, no secret check, no log) gets the same rejected load: no HTTP server
answers much faster than that on this machine while wrk shares its two cores, so a
rejected ratio above nginx/webhook is out of reach here for any server.

| | dockhand | webhook | nginx (ceiling) | dockhand/webhook |
| --- | --- | --- | --- | --- |
${ROWS}| idle RSS MiB (VmRSS) | $(mib "$DH_IDLE") | $(mib "$WH_IDLE") | | $(ratio "$DH_IDLE" "$WH_IDLE") (dockhand target <= 8 MB: $(verdict "$(mib "$DH_IDLE")" 8 "<=")) |
| peak RSS MiB (VmHWM) | $(mib "$DH_PEAK") | $(mib "$WH_PEAK") | | $(ratio "$DH_PEAK" "$WH_PEAK") (dockhand target <= 30 MB: $(verdict "$(mib "$DH_PEAK")" 30 "<=")) |
| RSS at end MiB / threads | $(mib "$DH_END") / $DH_THREADS | $(mib "$WH_END") / $WH_THREADS | | |

Versions: $DOCKHAND_VERSION; $WEBHOOK_VERSION; $WRK_VERSION; $NGINX_VERSION. webhook's RSS
excludes the /bin/true children. MB here = MiB.
EOF
)"
echo
note "config (dockhand)"; sed 's/^/    /' "$TMP/dockhand.toml"
note "config (webhook)"; sed 's/^/    /' "$TMP/hooks.json"
note "raw"; for k in $(printf '%s\n' "${!LINE[@]}" | sort); do echo "    $k: ${LINE[$k]}"; done
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
for c in $CONNECTIONS; do
    [ "${RECORDED[$c]}" -ge "${OK[dh_acc_$c]}" ] \
        || die "durability at $c connections: ${OK[dh_acc_$c]} answers 202 but only ${RECORDED[$c]} events rows"
done
exit 0
