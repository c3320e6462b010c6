#!/usr/bin/env bash
# Benchmark (not a test): failed requests and the longest gap while a new version is
# deployed under steady load (issue 5, item 2).
#
# scripts/bench/loadgen.py sends RATE GET/s (open loop, asyncio, a new connection per
# request, LOAD_TIMEOUT s timeout) for LOAD_S seconds and records every outcome; at LOAD_S/2
# v1 -> v2 is deployed:
#   (a) classic:  one container on 127.0.0.1:PORT; docker pull; kill; rm; run
#   (b) dockhand: the same container, deployed by dockhand from a `generic` hook (POST)
#   (c) Swarm service (2 replicas, --update-order start-first, a health check, on a
#       swarm-scoped attachable bridge network), deployed by dockhand from a real registry
#       notification (`docker push` to a Distribution registry that notifies dockhand).
#       The load goes through a task-aware path (the routing mesh does not work here):
#       loadgen.py asks the Engine API for the tasks that should and do run, every REFRESH
#       s, and sends round-robin to their IPs; each transport failure is retried once on
#       another task (nginx's proxy_next_upstream), and both outcomes are reported.
#       Variants:  c1 lab app, refresh REFRESH (0.1 s);
#                  c2 lab app, refresh REFRESH_SLOW (5 s; Traefik's swarm provider polls
#                     every 15 s by default);
#                  c3 a draining app (keeps serving DRAIN_S s after SIGTERM), refresh
#                     REFRESH_SLOW.
#       For each, the tasks' timeline: when a task left the client's pool, when the engine
#       sent it SIGTERM and when it died (`docker events`), and the failures sent to it.
#   (d) One container reached by name on a user-defined bridge network (no host port),
#       target `update_order = "start-first"`, deployed by dockhand from a `generic` hook.
#       The client is what a proxy in that network sees: loadgen.py --dns asks, every
#       DNS_REFRESH s (nginx `resolver 127.0.0.11 valid=1s`), which containers Docker's DNS
#       answers for the name, round-robin, one retry on a transport failure.
#       Variants:  d1 lab app;  d2 the draining app.
#
# Usage: scripts/bench/downtime.sh [--smoke] [--out FILE]
#   --smoke  6 s of load instead of 20;  --out FILE  also write the Markdown section
# Environment: SECONDS_LOAD (20), RATE (500), LOAD_TIMEOUT (3 s: the lab app's httpd
#   listens with a backlog of 9, so under load some SYNs are dropped and retransmitted after
#   1 s; those requests are slow, not failed), LOAD_PROCS (1), REFRESH (0.1),
#   REFRESH_SLOW (5), DRAIN_S (4), DNS_REFRESH (1), ONLY (e.g. "c1 d1": run only those of
#   a b c1 c2 c3 d1 d2).
# Needs the lab images (scripts/lab.sh up). Removes the containers, services, network,
# image tags and registry it created; stops only its own processes, by pid.
set -euo pipefail
SCRIPT=downtime.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
LOAD_S="${SECONDS_LOAD:-20}"; [ "$SMOKE" = 1 ] && LOAD_S=6
RATE="${RATE:-500}"; LOAD_TIMEOUT="${LOAD_TIMEOUT:-3}"; LOAD_PROCS="${LOAD_PROCS:-1}"
REFRESH="${REFRESH:-0.1}"; REFRESH_SLOW="${REFRESH_SLOW:-5}"; DRAIN_S="${DRAIN_S:-4}"
ONLY="${ONLY:-a b c1 c2 c3 d1 d2}"; DNS_REFRESH="${DNS_REFRESH:-1}"
LOADGEN="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/loadgen.py"
wanted() { [[ " $ONLY " == *" $1 "* ]]; }

need_tools curl:curl python3:python3 jq:jq docker:docker.io docker-registry:docker-registry
docker info >/dev/null 2>&1 || die "dockerd is not answering (run scripts/lab.sh up)"
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] || die "no active swarm (run scripts/lab.sh up)"
docker image inspect dockhand-lab/app:v1 >/dev/null 2>&1 && docker image inspect dockhand-lab/app:v2 >/dev/null 2>&1 \
    || die "lab images dockhand-lab/app:v1/v2 missing (run scripts/lab.sh up)"
build_release
make_tmp

UNIQ="$(date +%s)-$$"
CONTAINERS=(); IMAGES=(); SERVICES=(); NET="dh-downtime-net-$UNIQ"; CNET="dh-downtime-cnet-$UNIQ"
docker_cleanup() {
    local c s
    for s in "${SERVICES[@]}"; do docker service rm "$s" >/dev/null 2>&1 || true; done
    for c in "${CONTAINERS[@]}"; do
        docker ps -aq --filter "name=^/${c}(-dockhand-(old|new)-[0-9]+)?\$" | xargs -r docker rm -f >/dev/null 2>&1 || true
    done
    for s in "${SERVICES[@]}"; do
        for _ in $(seq 100); do
            [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$s")" ] && break
            sleep 0.1
        done
    done
    docker network rm "$NET" "$CNET" >/dev/null 2>&1 || true
    [ ${#IMAGES[@]} -gt 0 ] && docker rmi "${IMAGES[@]}" >/dev/null 2>&1 || true
}
BENCH_CLEANUP+=(docker_cleanup)

# ---------------------------------------------------------------- dockhand and registry
# dockhand first, so that the registry's notifications find it. Each target has its own
# repository; the service targets take only the tag v2 (the v1 pushes made while setting
# up are refused, 200 "ignored", by the tag rule), the container target only the CI hook.
DP="$(free_port)"; ADMIN="bench-admin-$UNIQ"; TOKEN="bench-token-$UNIQ"
RP="$(free_port)"   # the registry's port, known before it starts so the config can name it
C_DH="dh-downtime-dockhand-$UNIQ"; C_SF="dh-dt-sf-$UNIQ"; C_SFD="dh-dt-sfdrain-$UNIQ"
S1="dh-dt-fast-$UNIQ"; S2="dh-dt-slow-$UNIQ"; S3="dh-dt-drain-$UNIQ"
repo() { echo "127.0.0.1:$REG_PORT/dh-downtime-$1-$UNIQ"; }
svc_target() { printf '\n[[targets]]\nname = "%s"\nkind = "service"\nservice = "%s"\nimage = "127.0.0.1:%s/dh-downtime-%s-%s"\nhooks = ["registry"]\ntags = "v2"\ntimeout = "120s"\n' "$1" "$2" "$RP" "$1" "$UNIQ"; }
{
    cat <<EOF
[server]
listen = "127.0.0.1:$DP"
state = "$TMP/state.db"
admin_token = "$ADMIN"

[[hooks]]
name = "ci"
source = "generic"
token = "$TOKEN"

[[hooks]]
name = "registry"
source = "distribution"
token = "$TOKEN"

[[targets]]
name = "app"
kind = "container"
container = "$C_DH"
image = "127.0.0.1:$RP/dh-downtime-app-$UNIQ"
hooks = ["ci"]
EOF
    svc_target fast "$S1"; svc_target slow "$S2"; svc_target drain "$S3"
    for t in sf:"$C_SF" sfdrain:"$C_SFD"; do
        printf '\n[[targets]]\nname = "%s"\nkind = "container"\ncontainer = "%s"\nimage = "127.0.0.1:%s/dh-downtime-%s-%s"\nhooks = ["ci"]\nupdate_order = "start-first"\ntimeout = "120s"\n' \
            "${t%%:*}" "${t#*:}" "$RP" "${t%%:*}" "$UNIQ"
    done
} >"$TMP/dockhand.toml"
start_dockhand "$TMP/dockhand.toml" "$DP"
start_registry registry "$RP" "$DH_URL/hooks/registry" "$TOKEN"
note "dockhand pid $DH_PID on $DH_URL; registry pid $REG_PID on 127.0.0.1:$REG_PORT"

# push SOURCE_IMAGE REF: tags and pushes, remembering the tag for cleanup
push() {
    docker tag "$1" "$2"; IMAGES+=("$2")
    docker push -q "$2" >/dev/null || die "docker push $2 failed"
}
# The draining app: the lab app, but on SIGTERM it keeps serving DRAIN_S s before it exits
# (what a pre-stop sleep / graceful shutdown does).
for v in v1 v2; do
    printf 'FROM dockhand-lab/app:%s\nCMD ["/bin/sh","-c","trap '"'"'sleep %s; kill $!; exit 0'"'"' TERM; httpd -f -p 8080 -h /www & wait"]\n' "$v" "$DRAIN_S" \
        | docker build -q -t "dh-downtime-drain-$v-$UNIQ" - >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; die "cannot build the draining image"; }
    IMAGES+=("dh-downtime-drain-$v-$UNIQ")
done
APP_REPO="$(repo app)"
push dockhand-lab/app:v1 "$APP_REPO:v1"; push dockhand-lab/app:v2 "$APP_REPO:v2"
for s in fast slow; do push dockhand-lab/app:v1 "$(repo "$s"):v1"; done
push "dh-downtime-drain-v1-$UNIQ" "$(repo drain):v1"
push dockhand-lab/app:v1 "$(repo sf):v1"; push dockhand-lab/app:v2 "$(repo sf):v2"
push "dh-downtime-drain-v1-$UNIQ" "$(repo sfdrain):v1"; push "dh-downtime-drain-v2-$UNIQ" "$(repo sfdrain):v2"
note "pushed the v1 images (and $APP_REPO:v2); the services' v2 are pushed under load"

# ---------------------------------------------------------------- load
# under_load NAME DEPLOY_FN LOADGEN_TARGET_ARGS... -> runs the load, calls DEPLOY_FN in
# the middle; sets REPORT, DEPLOY_S, T_DEPLOY, T_START, T_END
under_load() {
    local name="$1" fn="$2" csv="$TMP/load-$1.csv"; shift 2
    note "$name: load $RATE req/s for ${LOAD_S}s ($*), deploy at $((LOAD_S / 2))s"
    T_START="$(now)"; LOAD_AVG="$(cut -d' ' -f1 /proc/loadavg)"
    local evp=""
    if [ -n "${SERVICE:-}" ]; then
        # streamed, not asked afterwards: the engine keeps only the last events, and the
        # health checks' exec events would push these out
        docker events --filter type=container --filter "label=com.docker.swarm.service.name=$SERVICE" \
            --filter event=kill --filter event=die --filter event=create --filter event=start \
            --format '{{.TimeNano}} {{.Action}} {{.Actor.ID}}' >"$csv.events" 2>/dev/null &
        evp=$!; track "$evp"
    fi
    python3 "$LOADGEN" run --rate "$RATE" --seconds "$LOAD_S" --out "$csv" --timeout "$LOAD_TIMEOUT" \
        --procs "$LOAD_PROCS" "$@" &
    local lp=$!; track "$lp"
    sleep "$(awk -v s="$LOAD_S" 'BEGIN { print s / 2 + 0.3 }')"
    T_DEPLOY="$(now)"
    "$fn"
    local t_done; t_done="$(now)"
    wait "$lp" || die "load generator failed ($name)"
    T_END="$(now)"; LOAD_AVG="$LOAD_AVG/$(cut -d' ' -f1 /proc/loadavg)"
    DEPLOY_S="$(secs_between "$T_DEPLOY" "$t_done")"
    local ev=()
    if [ -n "${SERVICE:-}" ]; then
        # the old tasks' SIGTERM and exit may come after the load: wait for them
        for _ in $(seq 150); do
            [ "$(docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" | wc -l)" -le 2 ] && break
            sleep 0.1
        done
        for _ in $(seq 30); do   # both old tasks' 'die' have arrived
            [ "$(grep -c ' die ' "$csv.events" || true)" -ge 2 ] && break
            sleep 0.1
        done
        stop_pid "$evp"
        ev=(--events "$csv.events")
    fi
    REPORT="$(python3 "$LOADGEN" report "$csv" --mark "deploy=$T_DEPLOY" "${ev[@]}")"
    REPORT+=$'\n'"load_avg=$LOAD_AVG"
    echo "$REPORT" | sed 's/^/    /'
    awk -v s="$LOAD_S" -v d="$DEPLOY_S" 'BEGIN { exit !(d > s / 2 - 0.5) }' \
        && echo "    WARNING: the deploy ended after the load (deploy took $DEPLOY_S s)" || true
}
kv() { sed -n "s/^$1=//p" <<<"$2"; }

# start_container NAME -> runs APP_REPO:v1 as NAME on 127.0.0.1:HP
start_container() {
    C="$1"; HP="$(free_port)"; CONTAINERS+=("$C")
    docker run -d --name "$C" -p "127.0.0.1:$HP:8080" "$APP_REPO:v1" >/dev/null
    for _ in $(seq 100); do
        [ "$(curl -s -m 1 "http://127.0.0.1:$HP/" || true)" = v1 ] && return 0
        sleep 0.1
    done
    die "container $C does not answer v1 on 127.0.0.1:$HP"
}

# ---------------------------------------------------------------- (a) classic
R_CLASSIC=""; R_DH=""
if wanted a; then
    classic_deploy() {
        docker pull -q "$APP_REPO:v2" >/dev/null
        docker kill "$C" >/dev/null
        docker rm "$C" >/dev/null
        docker run -d --name "$C" -p "127.0.0.1:$HP:8080" "$APP_REPO:v2" >/dev/null
    }
    docker rmi "$APP_REPO:v2" >/dev/null   # so that the pull fetches the manifest again
    start_container "dh-downtime-classic-$UNIQ"
    SERVICE="" under_load classic classic_deploy --url "http://127.0.0.1:$HP/"
    R_CLASSIC="$REPORT"; D_CLASSIC="$DEPLOY_S"
    [ "$(curl -s -m 1 "http://127.0.0.1:$HP/")" = v2 ] || die "classic: container does not serve v2 afterwards"
fi

# ---------------------------------------------------------------- (b) dockhand, container
SWAP_MS="n/a"; STOP_VS_DEPLOY_MS="n/a"
if wanted b; then
    start_container "$C_DH"
    docker rmi "$APP_REPO:v2" >/dev/null 2>&1 || true
    dockhand_container_deploy() {
        local ans
        ans="$(curl -s -m 10 -X POST "$DH_URL/hooks/ci" -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d "{\"image\":\"$APP_REPO\",\"tag\":\"v2\"}")"
        [ -n "$(jq -r '.queued[0].id // empty' <<<"$ans")" ] || die "hook answer: $ans"
        dh_wait_tag app v2 "$ADMIN" 60
    }
    SERVICE="" under_load dockhand dockhand_container_deploy --url "http://127.0.0.1:$HP/"
    R_DH="$REPORT"; D_DH="$DEPLOY_S"
    [ "$DEP_STATE" = succeeded ] || die "dockhand deployment $DEP_ID ended $DEP_STATE"
    [ "$(curl -s -m 1 "http://127.0.0.1:$HP/")" = v2 ] || die "dockhand: container does not serve v2 afterwards"
    curl -s -H "Authorization: Bearer $ADMIN" "$DH_URL/api/deployments/$DEP_ID" >"$TMP/deploy-log.json"
    note "dockhand deployment $DEP_ID log:"
    jq -r '.log[] | "    \(.ts) \(.line)"' "$TMP/deploy-log.json"
    read -r SWAP_MS STOP_VS_DEPLOY_MS < <(python3 - "$TMP/deploy-log.json" "$T_DEPLOY" <<'EOF'
import json, sys
from datetime import datetime
lines = json.load(open(sys.argv[1]))["log"]
def t(prefix):
    for l in lines:
        if l["line"].startswith(prefix):
            return datetime.fromisoformat(l["ts"].replace("Z", "+00:00")).timestamp()
a, b = t("stopping the old container"), t("started the new container")
if a is None or b is None: print("n/a n/a")
else: print(f"{(b - a) * 1000:.0f} {(a - float(sys.argv[2])) * 1000:.0f}")
EOF
)
fi

# ---------------------------------------------------------------- (c) Swarm, start-first
# create_service NAME IMAGE -> 2 replicas on NET, start-first, health check every 1 s;
# waits until both tasks serve v1
create_service() {
    SERVICES+=("$1")
    docker service create -d --quiet --name "$1" --network "$NET" --replicas 2 \
        --update-order start-first --update-parallelism 1 --update-delay 0s --update-monitor 2s \
        --health-cmd 'wget -qO- http://127.0.0.1:8080/ >/dev/null' --health-interval 1s \
        --health-timeout 1s --health-retries 3 "$2" >/dev/null || die "cannot create service $1"
    wait_service_serves "$1" "$NET" v1 2 90
}
# swarm_run NAME SERVICE TARGET REFRESH -> push REPO(TARGET):v2 under load; dockhand deploys it
declare -A R_SWARM D_SWARM
swarm_run() {
    local name="$1" svc="$2" target="$3" refresh="$4" src=dockhand-lab/app:v2
    [ "$target" = drain ] && src="dh-downtime-drain-v2-$UNIQ"
    create_service "$svc" "$(repo "$target"):v1"
    swarm_deploy() {
        push "$src" "$(repo "$target"):v2"
        dh_wait_tag "$target" v2 "$ADMIN" 120
    }
    SERVICE="$svc" under_load "$name" swarm_deploy --swarm "$svc" --network "$NET" --refresh "$refresh"
    [ "$DEP_STATE" = succeeded ] || die "$name: dockhand deployment $DEP_ID ended $DEP_STATE"
    wait_service_serves "$svc" "$NET" v2 2 30
    R_SWARM[$name]="$REPORT"; D_SWARM[$name]="$DEPLOY_S"
    docker service rm "$svc" >/dev/null || true
}
if wanted c1 || wanted c2 || wanted c3; then
    swarm_network "$NET"
    wanted c1 && swarm_run c1 "$S1" fast "$REFRESH"
    wanted c2 && swarm_run c2 "$S2" slow "$REFRESH_SLOW"
    wanted c3 && swarm_run c3 "$S3" drain "$REFRESH_SLOW"
fi

# ---------------------------------------------------------------- (d) container, start-first
# dns_run NAME CONTAINER TARGET -> the container on CNET (no host port) serves v1; under
# load, a generic hook deploys v2 start-first
dns_run() {
    local name="$1" c="$2" target="$3"
    CONTAINERS+=("$c")
    docker run -d --name "$c" --network "$CNET" "$(repo "$target"):v1" >/dev/null
    for _ in $(seq 300); do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)" = healthy ] && break
        sleep 0.1
    done
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || die "$name: $c is not healthy"
    dns_deploy() {
        local ans
        ans="$(curl -s -m 10 -X POST "$DH_URL/hooks/ci" -H "Authorization: Bearer $TOKEN" \
            -H 'Content-Type: application/json' -d "{\"image\":\"$(repo "$target")\",\"tag\":\"v2\"}")"
        [ -n "$(jq -r '.queued[0].id // empty' <<<"$ans")" ] || die "hook answer: $ans"
        dh_wait_tag "$target" v2 "$ADMIN" 120
    }
    SERVICE="" under_load "$name" dns_deploy --dns "$c" --network "$CNET" --refresh "$DNS_REFRESH"
    [ "$DEP_STATE" = succeeded ] || die "$name: dockhand deployment $DEP_ID ended $DEP_STATE"
    [ "$(docker inspect -f '{{.Config.Image}}' "$c")" = "$(repo "$target"):v2" ] || die "$name: $c does not run v2"
    R_SWARM[$name]="$REPORT"; D_SWARM[$name]="$DEPLOY_S"
}
if wanted d1 || wanted d2; then
    docker network create "$CNET" >/dev/null || die "cannot create network $CNET"
    wanted d1 && dns_run d1 "$C_SF" sf
    wanted d2 && dns_run d2 "$C_SFD" sfdrain
fi

# ---------------------------------------------------------------- report
row() { # row LABEL REPORT DEPLOY_S
    [ -n "$2" ] || return 0
    printf '| %s | %s | %s (%s ms) | %s (%s before) | %s ms | %s ms | %s | %s | %s s | %s |\n' "$1" \
        "$(kv requests "$2")" "$(kv rate "$2")" "$(kv pacing_late_max_ms "$2")" "$(kv failed "$2")" "$(kv failed_before_deploy "$2")" \
        "$(kv longest_gap_ms "$2")" "$(kv gap_start_vs_deploy_ms "$2")" "$(kv slow_over_1s "$2")" \
        "$(kv errors "$2")" "$3" "$(kv load_avg "$2")"
}
srow() { # srow KEY LABEL
    local r="${R_SWARM[$1]:-}"
    [ -n "$r" ] || return 0
    printf '| %s | %s | %s (%s ms) | %s (%s before) | %s ms | %s (%s before) | %s ms | %s | %s | %s | %s s | %s | %s ms |\n' "$2" \
        "$(kv requests "$r")" "$(kv rate "$r")" "$(kv pacing_late_max_ms "$r")" "$(kv failed "$r")" "$(kv failed_before_deploy "$r")" \
        "$(kv longest_gap_ms "$r")" "$(kv retry_failed "$r")" "$(kv retry_failed_before_deploy "$r")" \
        "$(kv retry_longest_gap_ms "$r")" "$(kv retry_slow_over_1s "$r")" \
        "$(kv errors "$r")" "$(kv retry_errors "$r")" "${D_SWARM[$1]}" "$(kv load_avg "$r")" \
        "$(kv slowest_refresh_ms "$r")"
}
timeline() { # timeline KEY LABEL
    local r="${R_SWARM[$1]:-}"
    [ -n "$r" ] || return 0
    echo "$2:"
    echo "  pool (ms after the push began: IPs): $(kv pool_changes "$r")"
    grep '^task_' <<<"$r" | sed 's/^/  /' || true
}
SECTION="$(cat <<EOF
### Downtime of a deploy under load

\`loadgen.py\` sends $RATE GET/s (open loop, asyncio, $LOAD_PROCS process(es); a new connection per
request, ${LOAD_TIMEOUT} s timeout) for ${LOAD_S} s; v1 -> v2 is deployed at ${LOAD_S}/2 s. Gap = the longest
time between two successive successful answers; "gap starts" and times below are relative
to the moment the deploy began (the hook POST, the \`docker pull\`, the \`docker push\`);
"slow" = answered, but after more than 1 s. "pacing late" = the most the generator fell
behind its schedule (it then sends the late requests at once); "load avg" = the machine's
1-minute load average when the run began and ended (other jobs share its 2 cores).

**One container on a published port** (\`127.0.0.1:PORT:8080\`):

| deploy | requests | req/s sent (pacing late, max) | failed (of which before the deploy) | longest gap | gap starts | slow | errors | deploy took | load avg start/end |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(row "(a) classic: pull; kill; rm; run" "$R_CLASSIC" "${D_CLASSIC:-}")
$(row "(b) dockhand (generic hook, container target)" "$R_DH" "${D_DH:-}")

dockhand's deploy log: 'stopping the old container' to 'started the new container' =
$SWAP_MS ms (stop began $STOP_VS_DEPLOY_MS ms after the hook was sent). "deploy took" includes,
for dockhand, waiting for the new container to be healthy after the swap.

**(c) Swarm service, start-first, deployed by dockhand from a registry push**: 2 replicas,
\`--update-order start-first --update-parallelism 1 --update-monitor 2s\`, health check every
1 s, on a swarm-scoped attachable bridge network. The client is task-aware: it polls the
Engine API for tasks whose desired state and state are \`running\` (Swarm says \`starting\`
until the health check passes) and sends round-robin to their IPs; a transport failure
(refused, reset, closed, timed out) is retried once on another task, as nginx's
\`proxy_next_upstream error timeout\` would. The draining app keeps serving ${DRAIN_S} s after
SIGTERM, then exits.

| variant | requests | req/s sent (pacing late, max) | failed, no retry (before the deploy) | longest gap | failed, one retry (before) | gap, one retry | slow (retry) | errors | errors after retry | deploy took | load avg start/end | slowest pool refresh |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(srow c1 "c1: lab app (exits at once on SIGTERM), pool refreshed every ${REFRESH} s")
$(srow c2 "c2: lab app, pool refreshed every ${REFRESH_SLOW} s")
$(srow c3 "c3: draining app (${DRAIN_S} s), pool refreshed every ${REFRESH_SLOW} s")

"deploy took" = from \`docker push\` of v2 to dockhand's deployment ending (the engine's
update \`completed\`, i.e. after the 2 s monitor period). "slowest pool refresh" = the
longest the Engine API took to answer the client's task poll. Each old task's timeline (ms
after the push began; from the client's pool log and \`docker events\`), and its failed
requests split by whether they were sent before the engine sent it SIGTERM (the task still
ran) or after (the client still routed to a task that was stopping or gone), and how many
of the latter still failed after the retry:

\`\`\`
$(timeline c1 c1; timeline c2 c2; timeline c3 c3)
\`\`\`

**(d) One container reached by name on a Docker network, \`update_order = "start-first"\`**,
deployed by dockhand from a \`generic\` hook. No host port: the client is what a reverse
proxy in the same network sees. Every ${DNS_REFRESH} s it asks which containers Docker's embedded
DNS answers for the container's name (those named so or with that alias: the new one is
answered as soon as it starts, before it is healthy), sends round-robin to them, and retries
a transport failure once on another, as nginx with \`resolver 127.0.0.11 valid=${DNS_REFRESH}s\`, a
variable in \`proxy_pass\` and \`proxy_next_upstream error timeout\` would.

| variant | requests | req/s sent (pacing late, max) | failed, no retry (before the deploy) | longest gap | failed, one retry (before) | gap, one retry | slow (retry) | errors | errors after retry | deploy took | load avg start/end | slowest pool refresh |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(srow d1 "d1: lab app (exits at once on SIGTERM)")
$(srow d2 "d2: draining app (${DRAIN_S} s)")

\`\`\`
$(timeline d1 d1; timeline d2 d2)
\`\`\`
EOF
)"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
exit 0
