#!/usr/bin/env bash
# Benchmark (not a test): downtime of a container on a published host port while a new
# version is deployed, under steady load.
#
# A throw-away Distribution registry (docker-registry, free port, temp storage) gets the
# lab image as REPO:v1 and REPO:v2. For each way of deploying, a container runs REPO:v1
# with `-p 127.0.0.1:PORT:8080`; scripts/bench/loadgen.py sends RATE GET/s (a new
# connection each) for SECONDS and records every outcome; in the middle, v2 is deployed:
#   classic:  docker pull REPO:v2; docker kill C; docker rm C; docker run -d --name C -p ... REPO:v2
#   dockhand: dockhand serve with a `generic` hook and a container target for C; POST
#             {"image":REPO,"tag":"v2"} to the hook, then poll `dockhand history --json`
#             (admin token) until the deployment has ended.
# Reports failed requests and the longest gap without a successful answer, and for
# dockhand the time between its log lines 'stopping the old container' and 'started the
# new container' (one container on one host port cannot be swapped without a gap).
#
# Usage: scripts/bench/downtime.sh [--smoke] [--out FILE]
#   --smoke  6 s of load instead of 20;  --out FILE  also write the Markdown section
# Environment: SECONDS_LOAD (20), RATE (250), LOAD_THREADS (64), LOAD_TIMEOUT (0.25 s:
#   a request that hangs blocks its thread that long; short, so that hung requests during
#   the swap do not stall the load generator and lengthen the measured gap).
# Needs the lab images (scripts/lab.sh up). Removes the containers, images tags and
# registry it created; stops only its own processes, by pid.
set -euo pipefail
SCRIPT=downtime.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
LOAD_S="${SECONDS_LOAD:-20}"; [ "$SMOKE" = 1 ] && LOAD_S=6
RATE="${RATE:-250}"; LOAD_THREADS="${LOAD_THREADS:-64}"; LOAD_TIMEOUT="${LOAD_TIMEOUT:-0.25}"
LOADGEN="$(dirname "${BASH_SOURCE[0]}")/loadgen.py"
LOADGEN="$(cd "$(dirname "$LOADGEN")" && pwd)/loadgen.py"

need_tools curl:curl python3:python3 jq:jq docker:docker.io docker-registry:docker-registry
docker info >/dev/null 2>&1 || die "dockerd is not answering (run scripts/lab.sh up)"
docker image inspect dockhand-lab/app:v1 >/dev/null 2>&1 && docker image inspect dockhand-lab/app:v2 >/dev/null 2>&1 \
    || die "lab images dockhand-lab/app:v1/v2 missing (run scripts/lab.sh up)"
build_release
make_tmp

UNIQ="$(date +%s)-$$"
CONTAINERS=(); IMAGES=()
docker_cleanup() {
    local c
    for c in "${CONTAINERS[@]}"; do
        docker ps -aq --filter "name=^/${c}(-dockhand-old-[0-9]+)?\$" | xargs -r docker rm -f >/dev/null 2>&1 || true
    done
    [ ${#IMAGES[@]} -gt 0 ] && docker rmi "${IMAGES[@]}" >/dev/null 2>&1 || true
}
BENCH_CLEANUP+=(docker_cleanup)

# ---------------------------------------------------------------- registry
RP="$(free_port)"
mkdir -p "$TMP/registry"
cat >"$TMP/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $TMP/registry
http:
  addr: 127.0.0.1:$RP
EOF
docker-registry serve "$TMP/registry.yml" >"$TMP/registry.log" 2>&1 &
REG_PID=$!; track "$REG_PID"
wait_http "http://127.0.0.1:$RP/v2/" "$REG_PID" >/dev/null || { cat "$TMP/registry.log" >&2; die "registry did not start"; }
REPO="127.0.0.1:$RP/dh-downtime-$UNIQ"
for v in v1 v2; do
    docker tag "dockhand-lab/app:$v" "$REPO:$v"; IMAGES+=("$REPO:$v")
    docker push -q "$REPO:$v" >/dev/null || die "docker push $REPO:$v failed"
done
note "registry pid $REG_PID on 127.0.0.1:$RP; pushed $REPO:v1 and :v2"

now() { python3 -c 'import time; print(f"{time.time():.6f}")'; }

# start_v1 NAME -> sets C, HP; runs REPO:v1 as C on 127.0.0.1:HP
start_v1() {
    C="dh-downtime-$1-$UNIQ"; HP="$(free_port)"; CONTAINERS+=("$C")
    docker run -d --name "$C" -p "127.0.0.1:$HP:8080" "$REPO:v1" >/dev/null
    for _ in $(seq 100); do
        [ "$(curl -s -m 1 "http://127.0.0.1:$HP/" || true)" = v1 ] && return 0
        sleep 0.1
    done
    die "container $C does not answer v1 on 127.0.0.1:$HP"
}
# under_load NAME DEPLOY_FN -> runs the load, calls DEPLOY_FN in the middle, sets REPORT
under_load() {
    local name="$1" fn="$2" csv="$TMP/load-$1.csv"
    note "$name: load $RATE req/s for ${LOAD_S}s on 127.0.0.1:$HP, deploy at $((LOAD_S / 2))s"
    python3 "$LOADGEN" run "http://127.0.0.1:$HP/" "$RATE" "$LOAD_S" "$csv" --threads "$LOAD_THREADS" --timeout "$LOAD_TIMEOUT" &
    local lp=$!; track "$lp"
    sleep "$(awk -v s="$LOAD_S" 'BEGIN { print s / 2 }')"
    T_DEPLOY="$(now)"
    "$fn"
    T_DONE="$(now)"
    wait "$lp" || die "load generator failed ($name)"
    REPORT="$(python3 "$LOADGEN" report "$csv" --mark "deploy=$T_DEPLOY")"
    echo "$REPORT" | sed 's/^/    /'
    DEPLOY_S="$(awk -v a="$T_DEPLOY" -v b="$T_DONE" 'BEGIN { printf "%.1f", b - a }')"
}
kv() { sed -n "s/^$1=//p" <<<"$2"; }

# ---------------------------------------------------------------- (a) classic
classic_deploy() {
    docker pull -q "$REPO:v2" >/dev/null
    docker kill "$C" >/dev/null
    docker rm "$C" >/dev/null
    docker run -d --name "$C" -p "127.0.0.1:$HP:8080" "$REPO:v2" >/dev/null
}
docker rmi "$REPO:v2" >/dev/null   # so that the pull fetches the manifest again
start_v1 classic
under_load classic classic_deploy
R_CLASSIC="$REPORT"; D_CLASSIC="$DEPLOY_S"
[ "$(curl -s -m 1 "http://127.0.0.1:$HP/")" = v2 ] || die "classic: container does not serve v2 afterwards"

# ---------------------------------------------------------------- (b) dockhand
start_v1 dockhand
docker rmi "$REPO:v2" >/dev/null 2>&1 || true
DP="$(free_port)"
ADMIN="bench-admin-$UNIQ"
cat >"$TMP/dockhand.toml" <<EOF
[server]
listen = "127.0.0.1:$DP"
state = "$TMP/state.db"
admin_token = "$ADMIN"

[[hooks]]
name = "ci"
source = "generic"
token = "bench-token"

[[targets]]
name = "app"
kind = "container"
container = "$C"
image = "$REPO"
EOF
"$BIN" serve --config "$TMP/dockhand.toml" >"$TMP/dockhand.log" 2>&1 &
DH_PID=$!; track "$DH_PID"
wait_http "http://127.0.0.1:$DP/healthz" "$DH_PID" >/dev/null || { tail "$TMP/dockhand.log" >&2; die "dockhand did not come up"; }
DEP_ID=""; DEP_STATE=""
dockhand_deploy() {
    local ans
    ans="$(curl -s -m 10 -X POST "http://127.0.0.1:$DP/hooks/ci" -H 'Authorization: Bearer bench-token' \
        -H 'Content-Type: application/json' -d "{\"image\":\"$REPO\",\"tag\":\"v2\"}")"
    DEP_ID="$(jq -r '.queued[0].id // empty' <<<"$ans")"
    [ -n "$DEP_ID" ] || die "hook answer: $ans"
    for _ in $(seq 600); do
        DEP_STATE="$("$BIN" history app --json --url "http://127.0.0.1:$DP" --token "$ADMIN" \
            | jq -r --argjson id "$DEP_ID" '.[] | select(.id == $id) | .state')"
        case "$DEP_STATE" in queued|running|"") sleep 0.1 ;; *) return 0 ;; esac
    done
    die "deployment $DEP_ID did not end within 60 s"
}
under_load dockhand dockhand_deploy
R_DH="$REPORT"; D_DH="$DEPLOY_S"
[ "$DEP_STATE" = succeeded ] || die "dockhand deployment $DEP_ID ended $DEP_STATE"
[ "$(curl -s -m 1 "http://127.0.0.1:$HP/")" = v2 ] || die "dockhand: container does not serve v2 afterwards"
"$BIN" logs "$DEP_ID" --json --url "http://127.0.0.1:$DP" --token "$ADMIN" >"$TMP/deploy-log.json"
note "dockhand deployment $DEP_ID log:"
jq -r '.. | objects | select(has("ts") and has("line")) | "    \(.ts) \(.line)"' "$TMP/deploy-log.json" 2>/dev/null \
    || sed 's/^/    /' "$TMP/deploy-log.json"
read -r SWAP_MS STOP_VS_DEPLOY_MS < <(python3 - "$TMP/deploy-log.json" "$T_DEPLOY" <<'EOF'
import json, sys
from datetime import datetime
text = open(sys.argv[1]).read()
lines = []
def walk(x):
    if isinstance(x, dict):
        if "ts" in x and "line" in x: lines.append(x)
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
dec, i = json.JSONDecoder(), 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    v, i = dec.raw_decode(text, i)
    walk(v)
def t(prefix):
    for l in lines:
        if l["line"].startswith(prefix):
            return datetime.fromisoformat(l["ts"].replace("Z", "+00:00")).timestamp()
a, b = t("stopping the old container"), t("started the new container")
if a is None or b is None: print("n/a n/a")
else: print(f"{(b - a) * 1000:.0f} {(a - float(sys.argv[2])) * 1000:.0f}")
EOF
)

row() { # row LABEL REPORT DEPLOY_S
    printf '| %s | %s | %s | %s | %s ms | %s ms after the deploy began | %s | %s s |\n' "$1" \
        "$(kv requests "$2")" "$(kv rate "$2")" "$(kv failed "$2")" "$(kv longest_gap_ms "$2")" \
        "$(kv gap_start_vs_deploy_ms "$2")" "$(kv errors "$2")" "$3"
}
SECTION="$(cat <<EOF
### Downtime of a container deploy under load

One container (busybox httpd from the lab image) published on \`127.0.0.1:PORT:8080\`;
\`loadgen.py\` sends $RATE GET/s ($LOAD_THREADS threads, a new connection per request,
${LOAD_TIMEOUT} s timeout) for ${LOAD_S} s; v1 -> v2 is deployed at ${LOAD_S}/2 s. Gap = the longest time
between two successive successful answers.

| deploy | requests | req/s sent | failed | longest gap | gap starts | errors | deploy took |
| --- | --- | --- | --- | --- | --- | --- | --- |
$(row "classic: pull; kill; rm; run" "$R_CLASSIC" "$D_CLASSIC")
$(row "dockhand (generic hook, container target)" "$R_DH" "$D_DH")

dockhand/classic: longest gap $(ratio "$(kv longest_gap_ms "$R_DH")" "$(kv longest_gap_ms "$R_CLASSIC")"), failed requests $(ratio "$(kv failed "$R_DH")" "$(kv failed "$R_CLASSIC")").
dockhand's deploy log: 'stopping the old container' to 'started the new container' =
$SWAP_MS ms (stop began $STOP_VS_DEPLOY_MS ms after the hook was sent). "deploy took"
includes, for dockhand, waiting for the new container to be healthy (HEALTHCHECK) after
the swap, and the 0.1 s polling of \`dockhand history\`.
EOF
)"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
exit 0
