#!/usr/bin/env bash
# Benchmark (not a test): dockhand's footprint.
#   - release binary size, and the size of a stripped copy;
#   - start-to-listening time: `dockhand serve` started until GET /healthz answers
#     (hyperfine; each run on a fresh state file; includes curl's polling, 5 ms steps);
#   - idle RSS 2 s after start (VmRSS; the median of 5 starts, as file-backed pages vary
#     by a few hundred KiB from run to run), and where it goes: threads, anonymous vs
#     file-backed, by mapping (the binary, shared libraries, the rest), the same with
#     MALLOC_ARENA_MAX=2, with the engine unreachable, and `dockhand check` (max RSS of a
#     short-lived run, /usr/bin/time).
#
# Usage: scripts/bench/footprint.sh [--smoke] [--out FILE]
#   --smoke  3 hyperfine runs instead of 20, 1 idle start instead of 5;
#   --out FILE  also write the Markdown section
set -euo pipefail
SCRIPT=footprint.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
RUNS=20; IDLE_RUNS=5; [ "$SMOKE" = 1 ] && { RUNS=3; IDLE_RUNS=1; }

need_tools curl:curl python3:python3 hyperfine:hyperfine jq:jq
[ -x /usr/bin/time ] || need_tools /usr/bin/time:time
build_release
make_tmp

SIZE="$(stat -c %s "$BIN")"
cp "$BIN" "$TMP/dockhand.stripped"; strip "$TMP/dockhand.stripped"
SSIZE="$(stat -c %s "$TMP/dockhand.stripped")"

PORT="$(free_port)"
CFG="$TMP/dockhand.toml"
cat >"$CFG" <<EOF
[server]
listen = "127.0.0.1:$PORT"
state = "$TMP/state.db"

[[hooks]]
name = "ci"
source = "generic"
token = "bench-token"

[[targets]]
name = "web"
kind = "container"
container = "dh-footprint-absent-$$"
image = "127.0.0.1:5999/app"
EOF

# ---------------------------------------------------------------- start-to-listening
cat >"$TMP/start.sh" <<EOF
#!/bin/bash
"$BIN" serve --config "$CFG" >/dev/null 2>&1 &
p=\$!
until curl -s -o /dev/null -m 1 http://127.0.0.1:$PORT/healthz; do
    kill -0 \$p 2>/dev/null || exit 1
    sleep 0.005
done
kill -KILL \$p; wait \$p 2>/dev/null || true
EOF
chmod +x "$TMP/start.sh"
HF_CMD=(hyperfine --warmup 1 --runs "$RUNS" --prepare "rm -f $TMP/state.db $TMP/state.db-wal $TMP/state.db-shm" --export-json "$TMP/hf.json" "$TMP/start.sh")
note "${HF_CMD[*]}"
"${HF_CMD[@]}" | sed 's/^/    /'
START_MEAN="$(jq '.results[0].mean * 1000' "$TMP/hf.json")"
START_MIN="$(jq '.results[0].min * 1000' "$TMP/hf.json")"
START_MED="$(jq '.results[0].median * 1000' "$TMP/hf.json")"

# ---------------------------------------------------------------- idle RSS
idle() { # idle LABEL ENV... -> prints "rss threads anon file binary libs other label"
    local label="$1"; shift
    rm -f "$TMP"/state.db*
    env "$@" "$BIN" serve --config "$CFG" >"$TMP/serve-$label.log" 2>&1 &
    local p=$!; track "$p"
    wait_http "http://127.0.0.1:$PORT/healthz" "$p" >/dev/null || { tail "$TMP/serve-$label.log" >&2; die "serve ($label) did not come up"; }
    sleep 2
    local rss thr anon file
    rss="$(proc_kb "$p" VmRSS)"; thr="$(proc_kb "$p" Threads)"
    anon="$(awk '$1 == "RssAnon:" { print $2 }' "/proc/$p/status")"
    file="$(awk '$1 == "RssFile:" { print $2 }' "/proc/$p/status")"
    cp "/proc/$p/smaps_rollup" "$TMP/smaps-$label.txt" 2>/dev/null || true
    # the biggest mappings by Rss, for the record
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 ? $6 : "[anon]" } /^Rss:/ { r[name] += $2 } END { for (n in r) printf "%8d kB %s\n", r[n], n }' "/proc/$p/smaps" | sort -rn | head -n 8 >"$TMP/maps-$label.txt"
    # by kind of mapping: the dockhand binary, shared libraries, everything else (heap,
    # stacks, anonymous mappings, the SQLite -shm file)
    local groups
    groups="$(awk -v bin="$BIN" '/^[0-9a-f]+-[0-9a-f]+ / { g = ($6 == bin) ? "b" : ($6 ~ /\.so/) ? "l" : "o" } /^Rss:/ { r[g] += $2 } END { printf "%d %d %d", r["b"], r["l"], r["o"] }' "/proc/$p/smaps")"
    stop_pid "$p"
    echo "$rss $thr $anon $file $groups $label"
}
# the median of IDLE_RUNS starts, by VmRSS
for i in $(seq "$IDLE_RUNS"); do idle "default$i"; done | sort -n >"$TMP/idle-runs.txt"
read -r RSS THR ANON FILE BIN_KB LIBS_KB OTHER_KB MEDIAN < <(sed -n "$(( (IDLE_RUNS + 1) / 2 ))p" "$TMP/idle-runs.txt")
IDLE_ALL="$(cut -d' ' -f1 "$TMP/idle-runs.txt" | while read -r k; do mib "$k"; echo; done | paste -sd' ')"
cp "$TMP/maps-$MEDIAN.txt" "$TMP/maps-default.txt"
cp "$TMP/smaps-$MEDIAN.txt" "$TMP/smaps-default.txt" 2>/dev/null || true
read -r RSS_A THR_A ANON_A FILE_A _ < <(idle arena2 MALLOC_ARENA_MAX=2)
read -r RSS_E THR_E ANON_E FILE_E _ < <(idle noengine DOCKER_HOST=unix:///nonexistent.sock)
note "biggest mappings of an idle serve (Rss):"; sed 's/^/    /' "$TMP/maps-default.txt"
/usr/bin/time -f '%M' -o "$TMP/check.time" "$BIN" check --config "$CFG" >/dev/null 2>&1 || true
CHECK_KB="$(tail -n1 "$TMP/check.time")"
/usr/bin/time -f '%M' -o "$TMP/version.time" "$BIN" --version >/dev/null 2>&1 || true
VERSION_KB="$(tail -n1 "$TMP/version.time")"

SECTION="$(cat <<EOF
### Footprint

| metric | value |
| --- | --- |
| release binary | $(mib "$((SIZE / 1024))") MiB ($SIZE bytes) |
| stripped copy | $(mib "$((SSIZE / 1024))") MiB ($SSIZE bytes) |
| start to /healthz answering (hyperfine, $RUNS runs, fresh state file) | mean $(printf '%.1f' "$START_MEAN") ms, median $(printf '%.1f' "$START_MED") ms, min $(printf '%.1f' "$START_MIN") ms |
| idle RSS 2 s after start (VmRSS, median of $IDLE_RUNS starts: $IDLE_ALL) | $(mib "$RSS") MiB (anon $(mib "$ANON"), file $(mib "$FILE")), $THR threads (target <= 8 MB: $(awk -v r="$RSS" 'BEGIN { print (r / 1024 <= 8) ? "met" : "MISSED" }')) |
| the same run by mapping (Rss) | dockhand binary $(mib "$BIN_KB") MiB, shared libraries $(mib "$LIBS_KB") MiB (libc, libm, ld.so, libgcc_s), the rest $(mib "$OTHER_KB") MiB (heap, stacks, anonymous, SQLite -shm) |
| idle RSS with MALLOC_ARENA_MAX=2 | $(mib "$RSS_A") MiB (anon $(mib "$ANON_A"), file $(mib "$FILE_A")), $THR_A threads |
| idle RSS with the engine unreachable | $(mib "$RSS_E") MiB (anon $(mib "$ANON_E"), file $(mib "$FILE_E")), $THR_E threads |
| \`dockhand check\` max RSS (/usr/bin/time) | $(mib "$CHECK_KB") MiB |
| \`dockhand --version\` max RSS | $(mib "$VERSION_KB") MiB |

Start time includes fork/exec of the server and curl's polling (5 ms sleeps); the timed
script: \`$TMP/start.sh\` = start \`dockhand serve --config CFG\` in the background, poll
\`curl -s http://127.0.0.1:PORT/healthz\` until it answers, SIGKILL, wait (SIGKILL, so
that the graceful shutdown is not timed).
EOF
)"
echo
note "smaps_rollup of an idle serve"; sed 's/^/    /' "$TMP/smaps-default.txt"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
exit 0
