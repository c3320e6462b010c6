#!/usr/bin/env bash
# Profile (not a test): where dockhand's time goes while it takes hooks, as flamegraphs and
# a table of where the CPU samples fall.
#
# Runs the release build with the same config as peers.sh (a `dockerhub` hook, one
# container target, dedupe off, auth_failures off), loads it with wrk for DURATION, once
# with the right token (accepted: parse, match, durable record) and once with a wrong one
# (rejected: 401), and samples it with `perf record -e cpu-clock --call-graph dwarf`
# (hardware counters are not available on every machine; cpu-clock is). Writes one SVG
# flamegraph per run (inferno) and prints, per run, the share of samples by what they were
# doing: kernel TCP/loopback, fsync, SQLite, logging, HTTP (hyper/axum), JSON, secret
# check, the runtime, the rest.
#
# Usage: scripts/bench/profile.sh [--smoke] [--out FILE]
#   --smoke      2 s runs;  --out FILE  also write the Markdown section to FILE
# Environment: DURATION (10s), CONNECTIONS (16), FREQ (499 samples/s),
# SVG_DIR (where the SVGs go; default target/bench-profile).
# Needs: perf (linux-perf), wrk, inferno (`cargo install inferno`; installed if missing).
set -euo pipefail
SCRIPT=profile.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
DURATION="${DURATION:-10s}"; [ "$SMOKE" = 1 ] && DURATION=2s
CONNECTIONS="${CONNECTIONS:-16}"; FREQ="${FREQ:-499}"
SVG_DIR="${SVG_DIR:-$BENCH_ROOT/target/bench-profile}"
FIXTURE="${FIXTURE:-/work/shared/fixtures/docker-hub-1.json}"
[ -f "$FIXTURE" ] || die "fixture $FIXTURE not found"

need_tools perf:linux-perf wrk:wrk jq:jq curl:curl python3:python3
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
    note "installing inferno (flamegraphs) with cargo install"
    cargo install inferno --locked >/dev/null 2>&1 || die "cargo install inferno failed"
fi
perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1 \
    || die "perf cannot sample here (perf record -e cpu-clock failed; see /proc/sys/kernel/perf_event_paranoid)"
build_release
make_tmp
mkdir -p "$SVG_DIR"

BODY="$TMP/body.json"
jq -c 'del(.callback_url)' "$FIXTURE" >"$BODY"
PORT="$(free_port)"
hub_config "$PORT" "$TMP/state.db" "dh-profile-absent-$$" "$(jq -r .repository.repo_name "$BODY")" >"$TMP/dockhand.toml"
"$BIN" serve --config "$TMP/dockhand.toml" >"$TMP/dockhand.log" 2>&1 &
PID=$!; track "$PID"
wait_http "http://127.0.0.1:$PORT/healthz" "$PID" >/dev/null \
    || { tail -n 20 "$TMP/dockhand.log" >&2; die "dockhand did not come up"; }

cat >"$TMP/post.lua" <<'EOF'
function init(args)
  local f = assert(io.open(args[1], "rb")); wrk.body = f:read("*a"); f:close()
  wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"
end
EOF

# categorise FOLDED -> "category percent" lines: each stack goes to the first category
# (in this order) that one of its frames matches.
categorise() {
    python3 - "$1" <<'EOF'
import re, sys
cats = [
    ("fsync (durable commit)", r"fsync|fdatasync|jbd2|ext4_sync"),
    ("logging (tracing to stderr)", r"tracing_subscriber|Stderr|format_event"),
    ("SQLite", r"sqlite3|rusqlite"),
    ("secret check (sha256, subtle)", r"sha2::|subtle::|hmac::"),
    ("JSON (serde_json)", r"serde_json"),
    ("kernel TCP / loopback", r"tcp_|sock_|__sys_recv|__sys_send|writev|__libc_recv|__libc_send|net_rx|ip_finish_output|__dev_queue_xmit"),
    ("HTTP (hyper, axum)", r"hyper::|axum::|http::"),
    ("runtime (tokio, epoll, futex, scheduling)", r"tokio::|epoll|futex|schedule|park"),
]
total, counts = 0, {}
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n); total += n
    name = "other"
    for c, rx in cats:
        if re.search(rx, stack):
            name = c; break
    counts[name] = counts.get(name, 0) + n
for c, _ in cats + [("other", "")]:
    if counts.get(c):
        print(f"{c}\t{100 * counts[c] / total:.1f}")
print(f"samples\t{total / 1e9:.2f}")
EOF
}

declare -A RPS TABLE
profile() { # profile KEY TOKEN
    local key="$1" token="$2"
    note "$key: perf record (${FREQ} Hz, dwarf) + wrk -t 2 -c $CONNECTIONS -d $DURATION"
    perf record -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -p "$PID" -o "$TMP/$key.data" \
        >/dev/null 2>"$TMP/$key.perf.log" &
    local perf_pid=$!
    sleep 0.5
    wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" -s "$TMP/post.lua" \
        "http://127.0.0.1:$PORT/hooks/hub?token=$token" -- "$BODY" >"$TMP/$key.wrk" 2>&1 \
        || { cat "$TMP/$key.wrk" >&2; die "wrk failed ($key)"; }
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    RPS[$key]="$(awk '/Requests\/sec/ { print $2 }' "$TMP/$key.wrk")"
    perf script -i "$TMP/$key.data" 2>/dev/null | inferno-collapse-perf >"$TMP/$key.folded"
    inferno-flamegraph --title "dockhand, $key hooks ($CONNECTIONS connections)" \
        <"$TMP/$key.folded" >"$SVG_DIR/$key.svg"
    TABLE[$key]="$(categorise "$TMP/$key.folded")"
    echo "${TABLE[$key]}" | sed 's/^/    /'
    note "flamegraph: $SVG_DIR/$key.svg"
}
profile accepted bench-token
profile rejected wrong-token

row() { # row CATEGORY -> "| cat | acc% | rej% |"
    local a r
    a="$(awk -F'\t' -v c="$1" '$1 == c { print $2 }' <<<"${TABLE[accepted]}")"
    r="$(awk -F'\t' -v c="$1" '$1 == c { print $2 }' <<<"${TABLE[rejected]}")"
    echo "| $1 | ${a:-0.0} | ${r:-0.0} |"
}
ROWS="$(cut -f1 <<<"${TABLE[accepted]}
${TABLE[rejected]}" | grep -v '^samples$' | awk '!seen[$0]++' | while read -r c; do row "$c"; done)"
SECTION="$(cat <<EOF
### Where the time goes (profile.sh)

\`perf record -e cpu-clock -F $FREQ --call-graph dwarf\` on the dockhand process while wrk
(\`-t 2 -c $CONNECTIONS -d $DURATION\`) posts the Docker Hub sample, same config as peers.sh.
Each sampled stack is put in the first category one of its frames matches, in the order
of the table. Flamegraphs: \`$(realpath --relative-to="$BENCH_ROOT" "$SVG_DIR")/accepted.svg\` and
\`rejected.svg\` (not committed; run the script to make them).

| % of dockhand's CPU samples | accepted (${RPS[accepted]} req/s) | rejected (${RPS[rejected]} req/s) |
| --- | --- | --- |
$ROWS
| CPU time sampled (s) | $(awk -F'\t' '$1 == "samples" { print $2 }' <<<"${TABLE[accepted]}") | $(awk -F'\t' '$1 == "samples" { print $2 }' <<<"${TABLE[rejected]}") |
EOF
)"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
exit 0
