#!/usr/bin/env bash
# Benchmark (not a test): a burst of hooks over many targets (issue 5, item 4).
#
# Writes a config with TARGETS targets (half Swarm services, half containers, one image
# each) and one `generic` hook, serves it with `dockhand serve --dry-run` (the real front
# door, policy, durable queue and state file; deploys are only logged, so no containers
# are needed and the engine is never called), then scripts/bench/burst.py sends
# TARGETS x PUSHES distinct hooks (PUSHES per target, distinct tags, shuffled) from
# CONCURRENCY keep-alive connections, records every answer, polls the state file until no
# deployment is queued or running, and checks the state file against the answers.
#
# Reports: hooks sent, 202s, events recorded and lost (a 202 without its rows), deploys
# per target (max, mean, histogram; newest-wins coalescing should keep it <= 2),
# superseded, peak RSS (VmHWM; target <= 64 MB), time to accept all, time to drain, and
# whether each target's final deployment is its newest push.
#
# Usage: scripts/bench/burst.sh [--smoke] [--out FILE]
#   --smoke  100 targets x 5 pushes instead of 1,000 x 10;  --out FILE  Markdown section
# Environment: TARGETS (1000), PUSHES (10), CONCURRENCY (32), TMPDIR (where the state file
#   lives: each 202 waits for an fsync there).
# Stops only the dockhand it started, by pid; removes its temp dir on exit.
set -euo pipefail
SCRIPT=burst.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"

parse_args "$@"
TARGETS="${TARGETS:-1000}"; PUSHES="${PUSHES:-10}"; CONCURRENCY="${CONCURRENCY:-32}"
if [ "$SMOKE" = 1 ]; then TARGETS=100; PUSHES=5; fi
for v in TARGETS PUSHES CONCURRENCY; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}': give a positive integer"
done

need_tools curl:curl python3:python3
python3 -c 'import sqlite3' 2>/dev/null || die "python3 has no sqlite3 module (needed to read the state file)"
build_release
make_tmp

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
CFG="$TMP/dockhand.toml"; STATE="$TMP/state.db"; LOG="$TMP/dockhand.log"
python3 - "$CFG" "$PORT" "$STATE" "$TARGETS" <<'EOF'
import sys
cfg, port, state, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(cfg, "w") as f:
    f.write(f'[server]\nlisten = "127.0.0.1:{port}"\nstate = "{state}"\n\n')
    f.write('[[hooks]]\nname = "ci"\nsource = "generic"\ntoken = "bench-token"\n')
    for i in range(1, n + 1):
        name = f"t{i:04d}"
        kind = "service" if i % 2 else "container"
        f.write(f'\n[[targets]]\nname = "{name}"\nkind = "{kind}"\n{kind} = "dh-burst-{name}"\n'
                f'image = "127.0.0.1:5999/burst-{name}"\n')
EOF

SERVE=("$BIN" serve --config "$CFG" --dry-run)
note "starting: ${SERVE[*]} ($TARGETS targets; log: $LOG)"
T_START="$(date +%s.%N)"
"${SERVE[@]}" >"$LOG" 2>&1 &
PID=$!; track "$PID"
HEALTH="$(wait_http "$BASE/healthz" "$PID")" || { tail -n 20 "$LOG" >&2; die "dockhand did not come up"; }
T_UP="$(date +%s.%N)"
[ "$HEALTH" = 200 ] || die "GET /healthz answered $HEALTH (expected 200: with --dry-run it does not need the engine)"
sleep 1
IDLE_RSS="$(proc_kb "$PID" VmRSS)"; IDLE_THREADS="$(proc_kb "$PID" Threads)"; START_HWM="$(proc_kb "$PID" VmHWM)"
note "dockhand pid $PID up in $(awk -v a="$T_START" -v b="$T_UP" 'BEGIN { printf "%.2f", b - a }') s; idle RSS $(mib "$IDLE_RSS") MiB, $IDLE_THREADS threads"

DRIVER=(python3 "$HERE/burst.py" run --url "$BASE" --token bench-token --targets "$TARGETS" --pushes "$PUSHES"
        --concurrency "$CONCURRENCY" --state "$STATE" --pid "$PID" --json "$TMP/burst.json")
note "${DRIVER[*]}"
R="$("${DRIVER[@]}")" || die "burst.py failed"
echo "$R" | sed 's/^/    /'
kill -0 "$PID" 2>/dev/null || { tail -n 20 "$LOG" >&2; die "dockhand died during the burst"; }
kv() { sed -n "s/^$1=//p" <<<"$R"; }
note "t0001's deployments and the log of its last (from the state file):"
python3 - "$STATE" <<'EOF' | sed 's/^/    /'
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = con.execute("SELECT id, tag, state, message FROM deployments WHERE target = 't0001' ORDER BY id").fetchall()
for r in rows:
    print(f"#{r[0]} {r[1]} {r[2]}: {r[3]}")
for ts, line in con.execute("SELECT ts, line FROM deployment_logs WHERE deployment_id = ? ORDER BY rowid", (rows[-1][0],)):
    print(f"  {ts} {line}")
EOF
ENGINE_LINES="$(grep -c 'Docker Engine' "$LOG" || true)"

HOOKS="$(kv hooks_sent)"; A202="$(kv accepted_202)"; LOST="$(kv events_lost)"
MAXD="$(kv deploys_per_target_max)"; HWM="$(kv vmhwm_kb)"; WRONG="$(kv final_state_wrong)"
DRAIN="$(kv drain_after_accept_s)"
verdict() { if [ "$1" = 1 ]; then echo met; else echo MISSED; fi; }
V_LOST="$(verdict "$([ "$LOST" = 0 ] && [ "$A202" = "$HOOKS" ] && echo 1)")"
V_MAXD="$(verdict "$([ "$MAXD" -le 2 ] && echo 1)")"
V_RSS="$(verdict "$(awk -v k="$HWM" 'BEGIN { if (k / 1024 <= 64) print 1 }')")"
V_FINAL="$(verdict "$([ "$WRONG" = 0 ] && echo 1)")"

SECTION="$(cat <<EOF
### Burst: $HOOKS hooks over $TARGETS targets (burst.sh)

\`dockhand serve --dry-run\` with $TARGETS targets (half services, half containers, one
image each) and one \`generic\` hook; \`burst.py\` sends $PUSHES pushes per target (distinct
tags, all shuffled) from $CONCURRENCY keep-alive connections, records every answer, then polls
the state file every 50 ms until no deployment is queued or running. State file on
$(findmnt -n -o FSTYPE -T "$TMP" 2>/dev/null || echo '?'), \`synchronous = FULL\`.

| metric | value |
| --- | --- |
| hooks sent / answered 202 | $HOOKS / $A202 (statuses $(kv statuses); socket errors $(kv socket_errors)) |
| events rows / events lost (202 without its rows) | $(kv events_rows) / $LOST (target 0: $V_LOST) |
| deploys per target: max / mean | $MAXD / $(kv deploys_per_target_mean) (target <= 2: $V_MAXD); targets by deploys $(kv deploys_per_target_hist) |
| deployments: ran / superseded | $(kv deploys_ran) / $(kv superseded) (states $(kv states)) |
| final deployment of each target = its newest push | $([ "$WRONG" = 0 ] && echo "yes, all $TARGETS" || echo "NO for $WRONG: $(kv final_state_examples)") ($V_FINAL) |
| time to accept all | $(kv accept_s) s ($(kv accept_rps) hooks/s) |
| time to drain (after the last answer / from the first hook) | $DRAIN s / $(kv drain_total_s) s |
| peak RSS (VmHWM) | $(mib "$HWM") MiB (target <= 64 MB: $V_RSS); sampled VmRSS peak $(mib "$(kv peak_rss_sampled_kb)") MiB |
| RSS idle before / at end | $(mib "$IDLE_RSS") MiB / $(mib "$(kv vmrss_end_kb)") MiB (VmHWM at start $(mib "$START_HWM") MiB) |
| threads idle / peak / end | $IDLE_THREADS / $(kv peak_threads) / $(kv threads_end) |
| state file rows | $(kv deployment_rows) deployments, $(kv log_rows) log lines |
| engine | not called (--dry-run; "Docker Engine" in the log: $ENGINE_LINES lines) |
EOF
)"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
PROBLEMS=()
[ "$V_LOST" = met ] || PROBLEMS+=("events lost or hooks not accepted")
[ "$V_FINAL" = met ] || PROBLEMS+=("final state wrong for $WRONG targets")
[ "$DRAIN" != timeout ] || PROBLEMS+=("the queue did not drain")
if [ ${#PROBLEMS[@]} -gt 0 ]; then
    echo "burst.sh: ERROR: ${PROBLEMS[*]}" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi
exit 0
