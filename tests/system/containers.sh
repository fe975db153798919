#!/usr/bin/env bash
# The container test: builds both images (on a debootstrap base: no registry here), brings
# deploy/docker/compose.yaml up (Postgres, the coordinator, workers) on a private dockerd,
# runs a synthetic sweep through it while scaling workers 1 -> 3 -> 1, and checks that every
# trial completed exactly once in Postgres, that the stopped workers handed their trials back,
# and what the images promise (non-root, read-only, healthy, OCI labels).
#
# Installs Debian's docker.io, docker-compose and debootstrap when missing. The engine's data
# (base image, libtorch layer) is cached under $ALLSWEEP_CACHE (~/.cache/allsweep): the first
# run takes a few minutes more. Root only.
set -euo pipefail
TEST_NAME=containers
source "$(dirname "$0")/lib.sh"

cache=${ALLSWEEP_CACHE:-$HOME/.cache/allsweep}
run=/run/allsweep-docker
export DOCKER_HOST=unix://$run/docker.sock
docker=/usr/bin/docker
project=allsweep-citest
compose_files=(-f "$ROOT/deploy/docker/compose.yaml")
scratch=$(mktemp -d)
dockerd_pid=

install_missing() {
  local missing=()
  [[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >"$scratch/apt.log" 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >"$scratch/apt.log" 2>&1; } \
    || die "could not install ${missing[*]}: $(tail -5 "$scratch/apt.log")"
}

start_dockerd() {
  mkdir -p "$run" "$cache/docker"
  if [[ -s $run/dockerd.pid ]] && kill -0 "$(cat "$run/dockerd.pid")" 2>/dev/null; then
    kill "$(cat "$run/dockerd.pid")" && sleep 2   # a crashed earlier run's daemon
  fi
  # Its own socket, data root and networks; no iptables rules (the containers talk over
  # their compose network and the host reaches published ports through docker-proxy).
  /usr/sbin/dockerd --host "$DOCKER_HOST" --data-root "$cache/docker" --exec-root "$run/exec" \
    --pidfile "$run/dockerd.pid" --iptables=false --ip6tables=false --bip 172.31.250.1/24 \
    --default-address-pool base=172.31.0.0/16,size=24 >"$scratch/dockerd.log" 2>&1 &
  dockerd_pid=$!
  wait_until 60 "dockerd to answer" "$docker" version
}

compose() { docker-compose -p "$project" "${compose_files[@]}" "$@"; }

cleanup() {
  local status=$?
  if ((status != 0)) && [[ -n $dockerd_pid ]]; then
    log "compose logs (last lines):"
    compose logs --no-color --tail 30 >&2 2>/dev/null || true
  fi
  if [[ -n $dockerd_pid ]]; then
    compose down -v --timeout 20 >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

install_missing
start_dockerd
log "base images (debootstrap bookworm, cached in $cache)"
DOCKER=$docker "$ROOT/deploy/docker/base-image.sh" allsweep-base:bookworm
DOCKER=$docker "$ROOT/deploy/docker/base-image.sh" allsweep-test-rootfs:postgres --include postgresql-15
"$docker" build -q --build-arg ROOTFS=allsweep-test-rootfs:postgres -t allsweep-test-postgres:15 \
  -f "$ROOT/tests/system/containers/postgres.Dockerfile" "$ROOT/tests/system/containers" >/dev/null
log "building the images"
DOCKER=$docker "$ROOT/deploy/docker/build-images.sh" --base allsweep-base:bookworm
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")

log "what the images promise"
for image in allsweep-coordinator allsweep-worker; do
  user=$("$docker" image inspect -f '{{.Config.User}}' "$image:$version")
  [[ $user == 10001:10001 ]] || die "$image runs as '$user', not the non-root 10001"
  for label in title description version revision licenses; do
    value=$("$docker" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$label\"}}" "$image:$version")
    [[ -n $value ]] || die "$image has no org.opencontainers.image.$label label"
  done
  labelled=$("$docker" image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$image:$version")
  [[ $labelled == "$version" ]] || die "$image is labelled version $labelled, not $version"
done
"$docker" run --rm --entrypoint /usr/local/bin/allsweep-worker "allsweep-worker:$version" --version >/dev/null \
  || die "allsweep-worker does not start in its image (libtorch not found?)"

export ALLSWEEP_TOKEN=citest-$RANDOM$RANDOM
export ALLSWEEP_GRPC_PORT ALLSWEEP_HTTP_PORT ALLSWEEP_DATA_DIR=$scratch/data
ALLSWEEP_GRPC_PORT=$(free_port)
ALLSWEEP_HTTP_PORT=$(free_port)
export POSTGRES_IMAGE=allsweep-test-postgres:15 ALLSWEEP_LEASE_SECONDS=10 ALLSWEEP_THREADS=1 ALLSWEEP_DEVICE=cpu
mkdir -p "$ALLSWEEP_DATA_DIR"
export ALLSWEEP_COORDINATOR=http://127.0.0.1:$ALLSWEEP_GRPC_PORT
psql_in="docker-compose -p $project ${compose_files[*]} exec -T postgres psql -U allsweep -d allsweep"

log "compose up: Postgres, the coordinator, one worker"
compose down -v >/dev/null 2>&1 || true
compose up -d --scale worker=1 >"$scratch/up.log" 2>&1 || die "compose up failed: $(tail -5 "$scratch/up.log")"
coordinator=$(compose ps -q coordinator)
coordinator_healthy() { [[ $("$docker" inspect -f '{{.State.Health.Status}}' "$coordinator") == healthy ]]; }
wait_until 90 "the coordinator to be healthy" coordinator_healthy
[[ $("$docker" exec "$coordinator" id -u) == 10001 ]] || die "the coordinator runs as root"
"$docker" exec "$coordinator" touch /usr/local/bin/x 2>/dev/null && die "the coordinator's root filesystem is writable"
curl -fsS "http://127.0.0.1:$ALLSWEEP_HTTP_PORT/metrics" | grep -q '^allsweep_queue_depth' \
  || die "/metrics does not answer on the published HTTP port"

spec=$scratch/spec.toml
synthetic_spec "compose sweep" "[0, 1, 2, 3, 4, 5, 6, 7]" 6 64 > "$spec"
sweep=$("$BIN/allsweep" submit "$spec") || die "submit through the published port failed"
log "sweep $sweep submitted: 8 trials of 6 epochs"

# workers_training N: at least N workers hold a running trial of the sweep.
workers_training() {
  (($(sql "$psql_in" "SELECT count(DISTINCT worker_id) FROM trials WHERE sweep_id = '$sweep' AND state = 'running'") >= $1))
}
sweep_finished() { [[ $(sql "$psql_in" "SELECT state FROM sweeps WHERE id = '$sweep'") == finished ]]; }
wait_until 120 "a worker to train" workers_training 1

log "scale to 3 workers"
compose up -d --scale worker=3 --no-recreate >"$scratch/up3.log" 2>&1 || die "scaling up failed: $(tail -5 "$scratch/up3.log")"
wait_until 120 "three workers training" workers_training 3
log "scale back to 1 (the two stopped get SIGTERM mid-trial)"
ids_before=$(sql "$psql_in" "SELECT string_agg(id, ' ') FROM workers")
compose up -d --scale worker=1 --no-recreate >"$scratch/up1.log" 2>&1 || die "scaling down failed: $(tail -5 "$scratch/up1.log")"
released=$(sql "$psql_in" "SELECT count(*) FROM attempts a JOIN trials t ON t.id = a.trial_id WHERE t.sweep_id = '$sweep' AND a.outcome = 'released'")
((released >= 2)) || die "scaling down released $released trials; the two stopped workers held at least two"
log "the stopped workers released $released trials (known workers: $ids_before)"

wait_until 600 "the sweep to finish" sweep_finished
check_exactly_once "$psql_in" "$sweep" 8
expired=$(sql "$psql_in" "SELECT count(*) FROM attempts a JOIN trials t ON t.id = a.trial_id WHERE t.sweep_id = '$sweep' AND a.outcome = 'expired'")
((expired == 0)) || die "$expired attempts expired: a scaled-down worker did not hand its trial back"
resumed=$(sql "$psql_in" "SELECT count(*) FROM attempts a JOIN trials t ON t.id = a.trial_id WHERE t.sweep_id = '$sweep' AND a.resumed_from_epoch > 0")
log "passed: 8 trials exactly once through compose, 1 -> 3 -> 1 workers, $released released and $resumed resumed from a checkpoint"
