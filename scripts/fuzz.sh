#!/usr/bin/env bash
# Runs dockhand's cargo-fuzz targets (fuzz/) for a set time each and prints, per target,
# the executions, exec/s, corpus size and crashes found.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#   scripts/fuzz.sh 300 reference github_hmac
#
# Installs cargo-fuzz if missing. cargo-fuzz needs nightly-only `-Z` flags; on a stable
# toolchain RUSTC_BOOTSTRAP=1 (set here) makes rustc accept them. The sanitizer is
# FUZZ_SANITIZER (default `address`; `none` is faster and finds panics just as well).
# Corpora are seeded from the webhook fixtures in ../shared/fixtures (or $DOCKHAND_FIXTURES,
# or /work/shared/fixtures) into fuzz/corpus/<target>/, which is not committed; crashes land
# in fuzz/artifacts/<target>/, logs in fuzz/target/fuzz-logs/<target>.log.
# Exits 1 if any target crashed (or its run failed), 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
FUZZ="$ROOT/fuzz"

ALL_TARGETS=(distribution dockerhub generic github gitea harbor quay acr gar
  github_hmac gitea_hmac reference)

log() { printf 'fuzz: %s\n' "$*" >&2; }

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
  log "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]  (targets: ${ALL_TARGETS[*]})"
  exit 2
fi
shift || true
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
  for t in "${TARGETS[@]}"; do
    if [[ " ${ALL_TARGETS[*]} " != *" $t "* ]]; then
      log "unknown target '$t' (targets: ${ALL_TARGETS[*]})"
      exit 2
    fi
  done
else
  TARGETS=("${ALL_TARGETS[@]}")
fi
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found; install Rust with rustup, then re-run"
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
command -v jq >/dev/null 2>&1 || { log "jq is needed to seed the corpora (apt-get install jq)"; exit 1; }

# ---- seed corpora -----------------------------------------------------------------------
FIXTURES=""
for d in "${DOCKHAND_FIXTURES:-}" "$ROOT/../shared/fixtures" /work/shared/fixtures; do
  if [ -n "$d" ] && [ -d "$d" ]; then FIXTURES="$d"; break; fi
done
[ -n "$FIXTURES" ] || log "no fixtures found; targets start from an empty corpus"

SECRET="It's a Secret to Everybody" # must match fuzz/src/lib.rs SECRET
hmac_hex() { openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1; }

# seed TARGET NAME: stdin becomes fuzz/corpus/TARGET/seed-NAME (overwritten each run).
seed() {
  mkdir -p "$FUZZ/corpus/$1"
  cat >"$FUZZ/corpus/$1/seed-$2"
}
# fixture_seeds TARGET GLOB...: fixture files as they are.
fixture_seeds() {
  local t="$1" f
  shift
  [ -n "$FIXTURES" ] || return 0
  for f in "$@"; do
    [ -f "$FIXTURES/$f" ] && seed "$t" "$f" <"$FIXTURES/$f"
  done
  return 0
}
# hmac_seeds TARGET EVENT_HEADER SIG_HEADER SIG_PREFIX FORM_SIGNS_PAYLOAD FIXTURE...
# For each fixture: the JSON and the form-encoded body, with flag SIGN (the harness signs),
# and the JSON with a real signature written out (flags 0).
hmac_seeds() {
  local t="$1" event="$2" sig="$3" prefix="$4" form_signs_payload="$5" f body form
  shift 5
  [ -n "$FIXTURES" ] || return 0
  for f in "$@"; do
    [ -f "$FIXTURES/$f" ] || continue
    body="$FIXTURES/$f"
    { printf '\001content-type: application/json\n%s: package\n\n' "$event"; cat "$body"; } |
      seed "$t" "$f"
    form="payload=$(jq -sRr @uri <"$body")"
    { printf '\001content-type: application/x-www-form-urlencoded\n%s: package\n\n%s' \
      "$event" "$form"; } | seed "$t" "form-$f"
    if command -v openssl >/dev/null 2>&1; then
      { printf '\000content-type: application/json\n%s: package\n%s: %s%s\n\n' \
        "$event" "$sig" "$prefix" "$(hmac_hex <"$body")"; cat "$body"; } | seed "$t" "signed-$f"
      local signed
      if [ "$form_signs_payload" = yes ]; then signed="$(hmac_hex <"$body")"; else
        signed="$(printf '%s' "$form" | hmac_hex)"; fi
      { printf '\000content-type: application/x-www-form-urlencoded\n%s: package\n%s: %s%s\n\n%s' \
        "$event" "$sig" "$prefix" "$signed" "$form"; } | seed "$t" "signed-form-$f"
    fi
  done
  printf '\001%s: ping\n\n{"zen":"x"}' "$event" | seed "$t" ping
}

seed_all() {
  local digest="sha256:4696728ffacd8025c9479fe48c47dd9d55604ed0f0f7d5062cf5aed9fc89c814"
  fixture_seeds distribution distribution-1.json distribution-2.json distribution-3.json \
    distribution-4.json
  if [ -n "$FIXTURES" ] && [ -f "$FIXTURES/distribution-v2.8-push-capture.jsonl" ]; then
    local i=0 line
    while IFS= read -r line; do
      i=$((i + 1))
      printf '%s' "$line" | jq -j . | seed distribution "capture-$i"
    done < <(jq -c '.body' "$FIXTURES/distribution-v2.8-push-capture.jsonl")
  fi
  fixture_seeds dockerhub docker-hub-1.json docker-hub-2.json
  fixture_seeds github github-1.json github-2.json github-4.json
  fixture_seeds gitea gitea-1.json
  fixture_seeds harbor harbor-1.json harbor-2.json
  fixture_seeds quay quay-1.json
  fixture_seeds acr azure-1.json
  fixture_seeds gar gcp-1.json gcp-2.json gcp-3.json
  # The generic source has no fixture: its documented shapes.
  printf '{"image":"127.0.0.1:5000/app","tag":"v2","digest":"%s"}' "$digest" | seed generic 1
  printf '{"image":"ghcr.io/o/app:v3","callback_url":"http://ci.example/cb"}' | seed generic 2
  printf '{"image":"nginx@%s","tag":"1.25"}' "$digest" | seed generic 3
  hmac_seeds github_hmac x-github-event x-hub-signature-256 sha256= no \
    github-1.json github-2.json github-4.json
  hmac_seeds gitea_hmac x-gitea-event x-gitea-signature "" yes gitea-1.json
  local r=0 s
  for s in nginx library/nginx docker.io/library/nginx index.docker.io/library/nginx \
    127.0.0.1:5000/team/sub/app localhost:5000/app "ghcr.io/o/app:v2@$digest" \
    "nginx:1.25.3-alpine" "$digest" A_b.c-d "[::1]:5000/app" \
    us-west1-docker.pkg.dev/my-project/my-repo/hello-world:1.1 \
    $'registry-1.docker.io\nnginx' $'127.0.0.1:5000\nteam/sub/app' $'registry\napp' \
    $'localhost\napp\nv2\n'"$digest"; do
    r=$((r + 1))
    printf '%s' "$s" | seed reference "$r"
  done
}

# ---- build, then run each target -------------------------------------------------------
seed_all
log "building ${#TARGETS[@]} target(s) (sanitizer: $SANITIZER)"
(cd "$FUZZ" && cargo fuzz build --sanitizer "$SANITIZER")

LOGS="$FUZZ/target/fuzz-logs"
mkdir -p "$LOGS"
RUNNING="" # process group of the run in progress, so an interrupt stops it and only it
on_signal() {
  if [ -n "$RUNNING" ]; then kill -TERM -- "-$RUNNING" 2>/dev/null || true; fi
  log "interrupted"
  exit 130
}
trap on_signal INT TERM

# One libFuzzer run stops at its first crash. So that one easy bug does not use up a
# target's time, a run that crashed is started again (on the grown corpus) for the time
# left; executions add up, each crash is one file in fuzz/artifacts/<target>/, and the
# distinct panic sites are listed.
ROWS=()
FAILED=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$FUZZ/artifacts/$t" "$FUZZ/corpus/$t"
  stamp="$LOGS/$t.start"
  : >"$stamp"
  : >"$LOGS/$t.log"
  log "running $t for ${SECONDS_PER_TARGET}s"
  start=$(date +%s)
  execs=0
  runs=0
  status=ok
  while :; do
    left=$((SECONDS_PER_TARGET - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || break
    runs=$((runs + 1))
    before=$(find "$FUZZ/artifacts/$t" -type f | wc -l)
    set +e
    (cd "$FUZZ" && exec setsid cargo fuzz run --sanitizer "$SANITIZER" "$t" -- \
      -max_total_time="$left" -timeout=10 -print_final_stats=1 \
      >"$LOGS/$t.run.log" 2>&1) &
    RUNNING=$!
    wait "$RUNNING"
    rc=$?
    RUNNING=""
    set -e
    cat "$LOGS/$t.run.log" >>"$LOGS/$t.log"
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.run.log" | tail -1 | grep -o '[0-9]*$' || true)
    [ -n "$n" ] || n=$(grep -oE '^#[0-9]+[[:space:]]+DONE' "$LOGS/$t.run.log" | tail -1 | grep -oE '[0-9]+' || true)
    [ -n "$n" ] || n=$(grep -oE '^#[0-9]+' "$LOGS/$t.run.log" | tail -1 | tr -d '#' || true)
    execs=$((execs + ${n:-0}))
    after=$(find "$FUZZ/artifacts/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
      break
    elif [ "$after" -gt "$before" ]; then
      status=CRASH # and go on for the time left
    else
      status="failed(rc=$rc)" # not a crash the fuzzer caught: the build or the run is broken
      break
    fi
    [ "$runs" -lt 10000 ] || break
  done
  took=$(($(date +%s) - start))
  rate=$((execs / (took > 0 ? took : 1)))
  corpus=$(find "$FUZZ/corpus/$t" -type f | wc -l)
  crashes=$(find "$FUZZ/artifacts/$t" -type f -newer "$stamp" | wc -l)
  [ "$status" = ok ] || FAILED=1
  ROWS+=("$(printf '%-14s %7s %12s %8s %7s %8s  %s' "$t" "$took" "$execs" "$rate" \
    "$corpus" "$crashes" "$status")")
  if [ "$status" != ok ]; then
    log "$t: $status ($crashes crash file(s) in fuzz/artifacts/$t/); log: $LOGS/$t.log"
    # Distinct panic sites, with one message each.
    grep -A1 "panicked at" "$LOGS/$t.log" | grep -v '^--$' |
      sed 's/^thread .* panicked at/panicked at/' | paste - - |
      sort -t$'\t' -k1,1 -u | cut -c1-400 | sed 's/^/  /' >&2 || true
  fi
done

echo
printf '%-14s %7s %12s %8s %7s %8s  %s\n' target seconds executions exec/s corpus crashes status
for row in "${ROWS[@]}"; do echo "$row"; done
echo "sanitizer: $SANITIZER; logs: fuzz/target/fuzz-logs/; crashes: fuzz/artifacts/<target>/"
exit "$FAILED"
