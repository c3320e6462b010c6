#!/usr/bin/env bash
# Benchmark (not a test): deploy overhead, push-to-converged, dockhand vs by hand (issue 5,
# item 3).
#
# The clock starts when `docker push` returns and stops when scripts/bench/converged.py,
# started before the push, sees the new version served:
#   (i)  Swarm service (2 replicas, start-first, health check every 1 s, swarm-scoped
#        bridge network): converged = exactly 2 tasks should and do run and both answer the
#        new body over HTTP (the same task-aware view as loadgen.py).
#          dockhand: the registry notifies dockhand (distribution hook), which updates
#                    the service;
#          by hand:  `docker service update -d --image REPO:TAG@DIGEST` issued the moment
#                    the push returns (digest from the push's output).
#   (ii) Container on 127.0.0.1:PORT: converged = the port answers the new body.
#          dockhand: the registry notifies dockhand, which replaces the container;
#          classic:  docker pull; docker kill; docker rm; docker run (the seed recipe).
# Every repetition deploys a new image (the lab app with its own body, built here) under a
# new tag: `dh-N` tags are dockhand's (its targets take only `dh-*`), `man-N` the manual
# ones (the registry notifies dockhand of those too; the tag rule ignores them). The two
# ways alternate (D M, M D, D M...). Between repetitions everything settles: the
# service's update `completed`, dockhand's deployment ended. Reports median, min and max
# per way, the ratio dockhand/manual of the medians (target <= 1.05), and where dockhand's
# time goes (its deployment's timestamps: hook received, deploy started, update call /
# swap, relative to the push's return).
#
# The images are built on this host, so both ways pull only the manifest (no layer
# download), as in a build-and-deploy-on-one-host setup.
#
# Usage: scripts/bench/overhead.sh [--smoke] [--out FILE]
#   --smoke  1 repetition per way instead of REPS;  --out FILE  also write the Markdown section
# Environment: REPS (10), ONLY ("service container": run only one of them).
# Needs the lab images (scripts/lab.sh up). Removes the containers, service, network, image
# tags and registry it created; stops only its own processes, by pid.
set -euo pipefail
SCRIPT=overhead.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args "$@"
REPS="${REPS:-10}"; [ "$SMOKE" = 1 ] && REPS=1
ONLY="${ONLY:-service container}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wanted() { [[ " $ONLY " == *" $1 "* ]]; }

need_tools curl:curl python3:python3 jq:jq docker:docker.io docker-registry:docker-registry
docker info >/dev/null 2>&1 || die "dockerd is not answering (run scripts/lab.sh up)"
[ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] || die "no active swarm (run scripts/lab.sh up)"
docker image inspect dockhand-lab/app:v1 >/dev/null 2>&1 || die "lab image dockhand-lab/app:v1 missing (run scripts/lab.sh up)"
build_release
make_tmp

UNIQ="$(date +%s)-$$"
SVC="dh-ovh-svc-$UNIQ"; NET="dh-ovh-net-$UNIQ"; CTR="dh-ovh-ctr-$UNIQ"
IMAGES=(); MADE_SVC=0; MADE_NET=0
docker_cleanup() {
    [ "$MADE_SVC" = 1 ] && docker service rm "$SVC" >/dev/null 2>&1 || true
    docker ps -aq --filter "name=^/${CTR}(-dockhand-old-[0-9]+)?\$" | xargs -r docker rm -f >/dev/null 2>&1 || true
    if [ "$MADE_NET" = 1 ]; then
        for _ in $(seq 100); do
            [ -z "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$SVC")" ] && break
            sleep 0.1
        done
        docker network rm "$NET" >/dev/null 2>&1 || true
    fi
    [ ${#IMAGES[@]} -gt 0 ] && docker rmi "${IMAGES[@]}" >/dev/null 2>&1 || true
}
BENCH_CLEANUP+=(docker_cleanup)

# ---------------------------------------------------------------- dockhand and registry
DP="$(free_port)"; RP="$(free_port)"; ADMIN="bench-admin-$UNIQ"; TOKEN="bench-token-$UNIQ"
REPO_S="127.0.0.1:$RP/dh-ovh-svc-$UNIQ"; REPO_C="127.0.0.1:$RP/dh-ovh-ctr-$UNIQ"
cat >"$TMP/dockhand.toml" <<EOF
[server]
listen = "127.0.0.1:$DP"
state = "$TMP/state.db"
admin_token = "$ADMIN"

[[hooks]]
name = "registry"
source = "distribution"
token = "$TOKEN"

[[targets]]
name = "svc"
kind = "service"
service = "$SVC"
image = "$REPO_S"
tags = "dh-*"
timeout = "120s"

[[targets]]
name = "app"
kind = "container"
container = "$CTR"
image = "$REPO_C"
tags = "dh-*"
timeout = "120s"
EOF
start_dockhand "$TMP/dockhand.toml" "$DP"
start_registry registry "$RP" "$DH_URL/hooks/registry" "$TOKEN"
note "dockhand pid $DH_PID on $DH_URL; registry pid $REG_PID on 127.0.0.1:$RP"

# image KIND WAY N -> builds (once) the lab app answering KIND-WAY-N, tagged REPO:WAY-N
image() {
    local repo="$REPO_S" body="$1-$2-$3"
    [ "$1" = ctr ] && repo="$REPO_C"
    mkdir -p "$TMP/ctx-$body"
    echo "$body" >"$TMP/ctx-$body/index.html"
    printf 'FROM dockhand-lab/app:v1\nCOPY index.html /www/index.html\n' >"$TMP/ctx-$body/Dockerfile"
    docker build -q -t "$repo:$2-$3" "$TMP/ctx-$body" >/dev/null 2>"$TMP/build.log" \
        || { cat "$TMP/build.log" >&2; die "cannot build $repo:$2-$3"; }
    IMAGES+=("$repo:$2-$3")
}
# push REF -> pushes; sets PUSH_DIGEST from its output
push() {
    local out
    out="$(docker push "$1" 2>&1)" || { echo "$out" >&2; die "docker push $1 failed"; }
    PUSH_DIGEST="$(grep -o 'sha256:[0-9a-f]\{64\}' <<<"$out" | tail -n1)"
    [ -n "$PUSH_DIGEST" ] || die "no digest in the output of docker push $1"
}

# ts_of JSON PREFIX -> epoch seconds of the first log line starting with PREFIX ("" if none)
ts_of() {
    python3 - "$1" "$2" <<'EOF'
import json, re, sys
from datetime import datetime, timezone
d = json.load(open(sys.argv[1]))
def epoch(ts):
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", ts)
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return base.timestamp() + float(m.group(2) or 0)
p = sys.argv[2]
if p in ("created_at", "started_at", "ended_at"):
    print(f"{epoch(d[p]):.6f}" if d.get(p) else "")
else:
    print(next((f"{epoch(l['ts']):.6f}" for l in d["log"] if l["line"].startswith(p)), ""))
EOF
}
ms_between() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }' || echo "n/a"; }

# stats FILE -> "median min max" of the numbers in FILE (one a line)
stats() { sort -n "$1" | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR] }'; }

# one_rep KIND WAY N -> pushes the image, deploys it the WAY way, appends the seconds from
# the push's return to convergence to $TMP/KIND-WAY.txt and the breakdown to KIND-WAY.log
one_rep() {
    local kind="$1" way="$2" n="$3" repo="$REPO_S" body="$1-$2-$3" tag="$2-$3" conv cp t0 t1 tcli=""
    [ "$kind" = ctr ] && repo="$REPO_C"
    if [ "$kind" = svc ]; then
        python3 "$HERE/converged.py" --body "$body" --swarm "$SVC" --network "$NET" --replicas 2 >"$TMP/conv" &
    else
        python3 "$HERE/converged.py" --body "$body" --url "http://127.0.0.1:$HP/" >"$TMP/conv" &
    fi
    cp=$!; track "$cp"
    sleep 0.3   # the poller is up and polling before the push
    push "$repo:$tag"
    t0="$(now)"
    if [ "$way" = man ]; then
        if [ "$kind" = svc ]; then
            docker service update -d -q --image "$repo:$tag@$PUSH_DIGEST" "$SVC" >/dev/null
        else
            docker pull -q "$repo:$tag" >/dev/null
            docker kill "$CTR" >/dev/null
            docker rm "$CTR" >/dev/null
            docker run -d --name "$CTR" -p "127.0.0.1:$HP:8080" "$repo:$tag" >/dev/null
        fi
        tcli="$(now)"
    fi
    wait "$cp" || die "$kind/$way rep $n did not converge"
    t1="$(cat "$TMP/conv")"
    secs_between "$t0" "$t1" >>"$TMP/$kind-$way.txt"
    echo "$way $tag $t0 $t1" >>"$TMP/$kind-reps.txt"
    if [ "$way" = dh ]; then
        dh_wait_tag "$([ "$kind" = svc ] && echo svc || echo app)" "$tag" "$ADMIN" 120
        [ "$DEP_STATE" = succeeded ] || die "dockhand deployment $DEP_ID of $tag ended $DEP_STATE"
        curl -s -H "Authorization: Bearer $ADMIN" "$DH_URL/api/deployments/$DEP_ID" >"$TMP/dep.json"
        cp "$TMP/dep.json" "$TMP/dep-$kind-$n.json"
        echo "$t0 $t1" >"$TMP/dep-$kind-$n.times"

        local hook start act
        hook="$(ts_of "$TMP/dep.json" created_at)"; start="$(ts_of "$TMP/dep.json" started_at)"
        if [ "$kind" = svc ]; then act="$(ts_of "$TMP/dep.json" "updating service")"
        else act="$(ts_of "$TMP/dep.json" "started the new container")"; fi
        printf '%s %s %s %s %s\n' "$(ms_between "$t0" "$t1")" "$(ms_between "$t0" "$hook")" \
            "$(ms_between "$t0" "$start")" "$(ms_between "$t0" "$act")" \
            "$(ms_between "$(ts_of "$TMP/dep.json" "pulling")" "$(ts_of "$TMP/dep.json" "renamed the old container")")" \
            >>"$TMP/$kind-$way.log"
    else
        printf '%s %s\n' "$(ms_between "$t0" "$t1")" "$(ms_between "$t0" "$tcli")" >>"$TMP/$kind-$way.log"
    fi
    note "$kind $way #$n: $(tail -n1 "$TMP/$kind-$way.txt") s (push returned -> converged)"
    # settle: the service's update completed (its monitor period), nothing left running
    if [ "$kind" = svc ]; then
        for _ in $(seq 600); do
            [ "$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{else}}none{{end}}' "$SVC")" = completed ] && break
            sleep 0.1
        done
    fi
}

# run_kind KIND -> REPS repetitions of each way, alternating
run_kind() {
    local i
    for i in $(seq "$REPS"); do image "$1" dh "$i"; image "$1" man "$i"; done
    for i in $(seq "$REPS"); do
        if [ $((i % 2)) = 1 ]; then one_rep "$1" dh "$i"; one_rep "$1" man "$i"
        else one_rep "$1" man "$i"; one_rep "$1" dh "$i"; fi
    done
}

# ---------------------------------------------------------------- (i) service
if wanted service; then
    swarm_network "$NET"; MADE_NET=1
    image svc base 0; push "$REPO_S:base-0"
    MADE_SVC=1
    docker service create -d --quiet --name "$SVC" --network "$NET" --replicas 2 \
        --update-order start-first --update-parallelism 1 --update-delay 0s --update-monitor 2s \
        --health-cmd 'wget -qO- http://127.0.0.1:8080/ >/dev/null' --health-interval 1s \
        --health-timeout 1s --health-retries 3 "$REPO_S:base-0@$PUSH_DIGEST" >/dev/null || die "cannot create service $SVC"
    wait_service_serves "$SVC" "$NET" svc-base-0 2 90
    note "service $SVC runs; $REPS repetitions per way"
    # the engine's side of each rollout: when each new task was created and became healthy
    docker events --filter type=container --filter "label=com.docker.swarm.service.name=$SVC" \
        --filter event=create --filter event=health_status \
        --format '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "image"}}' >"$TMP/svc.events" 2>/dev/null &
    EVP=$!; track "$EVP"
    run_kind svc
    stop_pid "$EVP"
fi

# ---------------------------------------------------------------- (ii) container
if wanted container; then
    image ctr base 0; push "$REPO_C:base-0"
    HP="$(free_port)"
    docker run -d --name "$CTR" -p "127.0.0.1:$HP:8080" "$REPO_C:base-0" >/dev/null
    for _ in $(seq 100); do [ "$(curl -s -m 1 "http://127.0.0.1:$HP/" || true)" = ctr-base-0 ] && break; sleep 0.1; done
    note "container $CTR on 127.0.0.1:$HP; $REPS repetitions per way"
    run_kind ctr
fi

# ---------------------------------------------------------------- report
# engine_timeline WAY -> medians (ms after the push returned) of: first new task created,
# healthy; second created, healthy; converged, over WAY's service repetitions
engine_timeline() {
    [ -s "$TMP/svc-reps.txt" ] && [ -s "$TMP/svc.events" ] || { echo "n/a"; return 0; }
    python3 - "$TMP/svc-reps.txt" "$TMP/svc.events" "$1" <<'PY'
import statistics, sys
reps = [l.split() for l in open(sys.argv[1])]
events = []
for l in open(sys.argv[2]):
    p = l.split()
    if len(p) >= 3:
        # "TIMENANO create IMAGE" or "TIMENANO health_status: healthy IMAGE"
        events.append((int(p[0]) / 1e9, p[1].rstrip(":"), p[-1]))
cols = [[], [], [], [], []]
for way, tag, t0, t1 in reps:
    if way != sys.argv[3]:
        continue
    t0, t1 = float(t0), float(t1)
    mine = [e for e in events if f":{tag}@" in e[2]]
    created = sorted(t for t, a, _ in mine if a == "create")
    healthy = sorted(t for t, a, _ in mine if a == "health_status")
    if len(created) < 2 or len(healthy) < 2:
        continue
    for i, t in enumerate([created[0], healthy[0], created[1], healthy[1], t1]):
        cols[i].append((t - t0) * 1000)
if not cols[0]:
    print("n/a")
else:
    m = [f"{statistics.median(c):.0f}" for c in cols]
    print(f"1st task created {m[0]}, healthy {m[1]}; 2nd created {m[2]}, healthy {m[3]}; converged {m[4]}")
PY
}
# med_col FILE COL -> median of column COL (numbers only)
med_col() { awk -v c="$2" '$c ~ /^-?[0-9]+$/ { print $c }' "$1" | sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
row() { # row KIND LABEL_DH LABEL_MAN
    local d m
    [ -s "$TMP/$1-dh.txt" ] || return 0
    read -r dmed dmin dmax < <(stats "$TMP/$1-dh.txt")
    read -r mmed mmin mmax < <(stats "$TMP/$1-man.txt")
    # the pairs ran back to back (same noise): the median of their ratios
    paste -d' ' "$TMP/$1-dh.txt" "$TMP/$1-man.txt" | awk '{ printf "%.4f\n", $1 / $2 }' >"$TMP/$1-pairs.txt"
    read -r pmed pmin pmax < <(stats "$TMP/$1-pairs.txt")
    printf '| %s | %s s | %s-%s s | %s s | %s-%s s | **%s** | %s | %s |\n' "$2" "$dmed" "$dmin" "$dmax" \
        "$mmed" "$mmin" "$mmax" "$(awk -v a="$dmed" -v b="$mmed" 'BEGIN { printf "%.3f", a / b }')" \
        "$pmed ($pmin-$pmax)" \
        "$(awk -v a="$dmed" -v b="$mmed" 'BEGIN { print (a / b <= 1.05) ? "met" : "MISSED" }')"
}
runs() { [ -s "$TMP/$1.txt" ] && tr '\n' ' ' <"$TMP/$1.txt" | sed 's/ $//' || true; }
SECTION="$(cat <<EOF
### Deploy overhead: push-to-converged, dockhand vs by hand

$REPS repetitions per way, alternated; each deploys a new image under a new tag. The clock
starts when \`docker push\` returns and stops when the new version is served: for the
service, exactly 2 tasks should and do run (Swarm says \`running\` only once the health
check passes) and both answer the new body; for the container, the published port answers
it. Polled every 20 ms by \`converged.py\`, the same way for both.

| deploy | dockhand median | min-max | by hand median | min-max | ratio of the medians | median of the pairs' ratios (min-max) | target <= 1.05 |
| --- | --- | --- | --- | --- | --- | --- | --- |
$(row svc "(i) Swarm service, start-first: dockhand (registry notification) vs \`docker service update -d --image REPO:TAG@DIGEST\`")
$(row ctr "(ii) container: dockhand (registry notification) vs classic \`pull; kill; rm; run\`")

Every run, in order (s): service dockhand: $(runs svc-dh); by hand: $(runs svc-man).
Container dockhand: $(runs ctr-dh); classic: $(runs ctr-man).

Where dockhand's time goes (medians, ms after the push returned): service: hook received
and deployment recorded $(med_col "$TMP/svc-dh.log" 2), deploy started $(med_col "$TMP/svc-dh.log" 3),
update sent to the engine $(med_col "$TMP/svc-dh.log" 4), converged $(med_col "$TMP/svc-dh.log" 1)
(by hand: \`docker service update\` returned $(med_col "$TMP/svc-man.log" 2), converged $(med_col "$TMP/svc-man.log" 1)).
The engine's side (\`docker events\`, medians, ms after the push returned): dockhand:
$(engine_timeline dh); by hand: $(engine_timeline man).
Container: hook received $(med_col "$TMP/ctr-dh.log" 2), deploy started $(med_col "$TMP/ctr-dh.log" 3),
new container started $(med_col "$TMP/ctr-dh.log" 4) (its pull took $(med_col "$TMP/ctr-dh.log" 5)), converged $(med_col "$TMP/ctr-dh.log" 1)
(classic: \`run\` returned $(med_col "$TMP/ctr-man.log" 2), converged $(med_col "$TMP/ctr-man.log" 1)).
EOF
)"
echo; echo "$SECTION"
[ -n "$OUT" ] && printf '%s\n' "$SECTION" >"$OUT"
exit 0
