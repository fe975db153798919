# Shared by the system tests in tests/system/: logging, waiting, the synthetic sweep spec they
# submit, and the exactly-once check they end with. Source it; it sets nothing else.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${ALLSWEEP_BIN:-$ROOT/target/release}

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${TEST_NAME:-system}" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every half second until it succeeds; dies
# naming WHAT after SECONDS.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}

# synthetic_spec NAME SEEDS EPOCHS IMAGES [GRID_LINE...]: a small synthetic sweep spec (the one
# testkit's SyntheticSpec writes), SEEDS a TOML array such as "[0, 1, 2]"; each GRID_LINE goes
# under [grid] as written, e.g. '"loss.gamma" = [0.1, 0.3]'.
synthetic_spec() {
  local name=$1 seeds=$2 epochs=$3 images=$4
  shift 4
  cat <<SPEC
name = "$name"
seeds = $seeds

[dataset]
kind = "synthetic"
shape = "nuclei"
images = $images
foreground = 0.2
size = [32, 32]

[model]
arch = "unet"
width = 8

[train]
epochs = $epochs
batch_size = 4
lr = 3e-3

[loss]
kind = "all"
SPEC
  if (($# > 0)); then
    printf '\n[grid]\n'
    printf '%s\n' "$@"
  fi
}

# check_exactly_once PSQL SWEEP TRIALS: every one of the sweep's TRIALS trials is completed by
# exactly one attempt, its last, and holds one result row. PSQL reaches the database: psql's
# connection arguments ("-h 127.0.0.1 -U postgres -d test") or a whole command that runs psql
# ("docker-compose -p x exec -T postgres psql -U allsweep -d allsweep"); word-split on purpose.
check_exactly_once() {
  local psql=$1 sweep=$2 trials=$3
  [[ $psql == -* ]] && psql="psql $psql"
  local count bad
  count=$(sql "$psql" "SELECT count(*) FROM trials WHERE sweep_id = '$sweep'") || die "cannot query the trials"
  [[ $count == "$trials" ]] || die "sweep $sweep has $count trials, $trials expected"
  bad=$(sql "$psql" "SELECT t.id || ' ' || t.state || ' attempt ' || t.attempt || ', completed attempts ' ||
             COALESCE((SELECT string_agg(a.attempt::text, ',') FROM attempts a
                       WHERE a.trial_id = t.id AND a.outcome = 'completed'), 'none')
           FROM trials t WHERE t.sweep_id = '$sweep' AND (t.state <> 'completed'
             OR (SELECT count(*) FROM attempts a WHERE a.trial_id = t.id AND a.outcome = 'completed') <> 1
             OR NOT EXISTS (SELECT 1 FROM attempts a WHERE a.trial_id = t.id
                            AND a.outcome = 'completed' AND a.attempt = t.attempt)
             OR (SELECT count(*) FROM results r WHERE r.trial_id = t.id) <> 1)") || die "cannot query the attempts"
  [[ -z $bad ]] || die "not completed exactly once: $bad"
  log "exactly once: all $trials trials of $sweep completed by one attempt each, one result each"
}

# sql PSQL QUERY: the query's rows, unaligned, tuples only (PSQL as in check_exactly_once).
sql() {
  local psql=$1
  [[ $psql == -* ]] && psql="psql $psql"
  # shellcheck disable=SC2086
  $psql -v ON_ERROR_STOP=1 -AtX -c "$2"
}
