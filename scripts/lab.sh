#!/usr/bin/env bash
# The dockhand test lab: a real Docker Engine, a swarm, and the tools the tests use.
#
#   scripts/lab.sh up      install what is missing, start dockerd, init a swarm,
#                          configure the Docker Hub mirror, build the test images
#   scripts/lab.sh status  say what is up
#
# Idempotent: safe on a machine that already has dockerd, a swarm or leftovers from an
# earlier run. Needs root on Debian 12 (see ../shared/docs/docker-lab.md for the recipes).
# The registries themselves are started per test by the test harness (tests/lab/), each
# with its own port and storage, so nothing here is shared between tests except images.
set -euo pipefail

# The fixed address of the lab's "Docker Hub" mirror. dockerd is told to use it as a
# registry mirror for docker.io, so a Docker Hub webhook can drive a real pull with no
# internet. Tests push `127.0.0.1:$HUB_MIRROR_PORT/<namespace>/<name>:<tag>` and the
# engine then finds `docker.io/<namespace>/<name>:<tag>` there.
HUB_MIRROR_PORT="${DOCKHAND_LAB_HUB_PORT:-5599}"
LAB_DIR="${DOCKHAND_LAB_DIR:-/var/lib/dockhand-lab}"
HERE="$(cd "$(dirname "$0")" && pwd)"

log() { printf 'lab: %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (it installs packages and starts dockerd)"
    exit 1
  fi
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx httpd || missing+=(busybox-static)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  # The tests run `ip` (their own bridge for a second dockerd) and `kill` (by pid).
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  [ -x /bin/kill ] || [ -x /usr/bin/kill ] || missing+=(procps)

  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# dockerd reads registry-mirrors from daemon.json; merge our key in, keep the rest.
configure_daemon() {
  local want="http://127.0.0.1:${HUB_MIRROR_PORT}" f=/etc/docker/daemon.json
  mkdir -p /etc/docker
  [ -s "$f" ] || echo '{}' >"$f"
  if ! jq -e --arg m "$want" '(.["registry-mirrors"] // []) | index($m)' "$f" >/dev/null; then
    log "adding registry mirror $want to $f"
    jq --arg m "$want" '.["registry-mirrors"] = (((.["registry-mirrors"] // []) - [$m]) + [$m])' \
      "$f" >"$f.tmp" && mv "$f.tmp" "$f"
    echo reload
  fi
}

start_dockerd() {
  local reload="$1"
  if docker info >/dev/null 2>&1; then
    if [ "$reload" = reload ]; then
      local pid
      pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
      if [ -n "$pid" ]; then
        log "reloading dockerd ($pid) for the new daemon.json"
        kill -HUP "$pid"
      fi
    fi
  else
    # A daemon that is still shutting down holds the pid file: let it finish.
    local old
    old="$(cat /var/run/docker.pid 2>/dev/null || true)"
    for _ in $(seq 30); do
      [ -n "$old" ] && [ -d "/proc/$old" ] || break
      sleep 1
    done
    log "starting dockerd"

    (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log >&2; exit 1; }
  # A reload is asynchronous: wait until the mirror shows.
  for _ in $(seq 20); do
    docker info --format '{{json .RegistryConfig.Mirrors}}' | grep -q "127.0.0.1:${HUB_MIRROR_PORT}" && break
    sleep 0.5
  done
}

init_swarm() {
  if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    log "initialising a single-node swarm"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  fi
}

# The "Docker Hub" mirror: a plain Distribution registry on a fixed port.
start_hub_mirror() {
  if curl -fsS "http://127.0.0.1:${HUB_MIRROR_PORT}/v2/" >/dev/null 2>&1; then return; fi
  mkdir -p "$LAB_DIR/hub"
  cat >"$LAB_DIR/hub.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $LAB_DIR/hub
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${HUB_MIRROR_PORT}
YML
  log "starting the Docker Hub mirror registry on 127.0.0.1:${HUB_MIRROR_PORT}"
  (setsid docker-registry serve "$LAB_DIR/hub.yml" >/var/log/dockhand-lab-hub.log 2>&1 & echo $! >"$LAB_DIR/hub.pid")
  for _ in $(seq 30); do curl -fsS "http://127.0.0.1:${HUB_MIRROR_PORT}/v2/" >/dev/null 2>&1 && return; sleep 0.3; done
  log "hub mirror did not start; see /var/log/dockhand-lab-hub.log"; exit 1
}

# Test images, FROM scratch with busybox: no pull from anywhere.
#   dockhand-lab/app:v1 v2 v3   httpd on :8080 serving the version, with a HEALTHCHECK
#   dockhand-lab/app:crash      exits at once
build_images() {
  local ctx="$LAB_DIR/app"
  mkdir -p "$ctx"
  cp -f /bin/busybox "$ctx/busybox"
  cp -f "$HERE/lab/app.Dockerfile" "$ctx/Dockerfile"
  cp -f "$HERE/lab/crash.Dockerfile" "$ctx/crash.Dockerfile"
  for v in v1 v2 v3; do
    docker build -q --build-arg "VERSION=$v" -t "dockhand-lab/app:$v" "$ctx" >/dev/null
  done
  docker build -q -f "$ctx/crash.Dockerfile" -t dockhand-lab/app:crash "$ctx" >/dev/null
  log "images: $(docker images --format '{{.Repository}}:{{.Tag}}' dockhand-lab/app | sort | tr '\n' ' ')"
}

case "${1:-up}" in
  up)
    need_root
    install_packages
    reload="$(configure_daemon)"
    start_dockerd "${reload:-}"
    init_swarm
    start_hub_mirror
    build_images
    log "ready: engine $(docker version --format '{{.Server.Version}}') (API $(docker version --format '{{.Server.APIVersion}}')), swarm $(docker info --format '{{.Swarm.LocalNodeState}}'), hub mirror 127.0.0.1:${HUB_MIRROR_PORT}"
    ;;
  status)
    docker info --format 'engine {{.ServerVersion}} swarm {{.Swarm.LocalNodeState}} mirrors {{json .RegistryConfig.Mirrors}}' || true
    curl -fsS "http://127.0.0.1:${HUB_MIRROR_PORT}/v2/" >/dev/null 2>&1 && echo "hub mirror up" || echo "hub mirror down"
    ;;
  *) echo "usage: $0 [up|status]" >&2; exit 2 ;;
esac
