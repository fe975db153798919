#!/usr/bin/env bash
# Several hosts (issue 14): Postgres, the coordinator and three workers, each in a network
# namespace of its own with its own address, joined by veth pairs to a bridge, so every call
# crosses a real network that iptables can cut. Two cases:
#
#  1. A worker cut off (iptables DROP both ways) for longer than its lease: its attempt
#     expires, the trial is leased to another worker, and when the link heals the cut-off
#     worker's late writes are refused; it goes on to train other trials. Exactly once.
#  2. The coordinator cut from Postgres for longer than a lease: the coordinator stays up,
#     /healthz answers 200, /readyz and the gRPC health service say not ready while cut and
#     ready after; the workers train on, and the sweep completes exactly once, no lease lost
#     to the outage counted against its trial.
#
# The network: namespace asw-lan holds the bridge; asw-pg, asw-coord, asw-w1..3 each hold an
# eth0 whose peer is a port of the bridge; the root namespace joins the bridge too (asw-root,
# 10.231.0.1), as the machine the user types on: psql, curl and `allsweep submit` run there.
# Every name starts with asw-; iptables rules live inside the namespaces and go with them.
#
# Needs root, iproute2, iptables (installed from Debian if missing), PostgreSQL 15's server
# binaries and the release binaries (make build). 60-75 s on 2 cores, half of it the
# database cut of case 2 (see there). HOSTS_EPOCHS and HOSTS_IMAGES size the trials.
# shellcheck shell=bash
set -euo pipefail
TEST_NAME=hosts
# shellcheck source=tests/system/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
NET=10.231.0
ROOT_ADDR=$NET.1 PG_ADDR=$NET.2 COORD_ADDR=$NET.3
declare -A ADDR=([pg]=$PG_ADDR [coord]=$COORD_ADDR [w1]=$NET.11 [w2]=$NET.12 [w3]=$NET.13)
HOSTS=(pg coord w1 w2 w3)
LEASE=4
TOKEN=asw-hosts-$$-$RANDOM$RANDOM
PSQL="-h $PG_ADDR -U postgres -d postgres"
# Sized so that one trial takes several seconds with three workers on two cores.
EPOCHS=${HOSTS_EPOCHS:-8} IMAGES=${HOSTS_IMAGES:-64}

export ALLSWEEP_COORDINATOR=http://$COORD_ADDR:50051 ALLSWEEP_TOKEN=$TOKEN

# --- cleanup -------------------------------------------------------------------------------

DIR=
declare -A PID=()

# Kills whatever still runs in our namespaces (a crashed run's processes included), then
# removes the namespaces (their veths, the bridge and their iptables rules go with them) and
# the root namespace's veth.
remove_network() {
  local ns pid
  for ns in $(ip netns list | awk '$1 ~ /^asw-/ {print $1}'); do
    ip netns exec "$ns" iptables -w -F 2>/dev/null || true
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  ip link del asw-root 2>/dev/null || true
  for ns in $(ip netns list | awk '$1 ~ /^asw-/ {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

stop_postgres() {
  [[ -n $DIR && -f $DIR/pg/data/postmaster.pid ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
}

finish() {
  local rc=$?
  set +e
  local name began=$SECONDS
  # Workers first (SIGTERM: they hand their trials back), then the coordinator, by PID.
  for name in w1 w2 w3 coord; do
    [[ -n ${PID[$name]:-} ]] && kill -TERM "${PID[$name]}" 2>/dev/null
  done
  for _ in {1..20}; do
    local alive=0
    for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
  for name in "${!PID[@]}"; do
    kill -0 "${PID[$name]}" 2>/dev/null || continue
    log "$name (pid ${PID[$name]}) did not stop within 10 s of SIGTERM: SIGKILL"
    kill -KILL "${PID[$name]}" 2>/dev/null
  done
  wait 2>/dev/null
  stop_postgres
  remove_network
  log "cleaned up in $((SECONDS - began))s"
  if ((rc == 0)); then
    rm -rf "$DIR"
  elif [[ -n $DIR ]]; then
    for name in coord w1 w2 w3; do
      [[ -f $DIR/$name.log ]] || continue
      log "--- last lines of $name's log ($DIR/$name.log) ---"
      tail -n 25 "$DIR/$name.log" >&2
    done
    log "logs kept in $DIR"
  fi
  exit "$rc"
}

# --- preconditions and the network ----------------------------------------------------------

(($(id -u) == 0)) || die "needs root (network namespaces, iptables)"
for b in allsweep allsweep-worker; do
  [[ -x $BIN/$b ]] || die "$BIN/$b is missing: run make build first"
done
[[ -x $PG_BIN/initdb ]] || die "no PostgreSQL 15 server binaries in $PG_BIN (apt-get install postgresql-15)"
if ! command -v iptables >/dev/null; then
  log "installing iptables from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq iptables >/dev/null ||
    die "cannot install iptables"
fi

# One run at a time: the names are fixed, and a second run would take the first's network
# down as leftovers. The lock goes with this shell, even SIGKILLed; what it starts to outlive
# a command closes fd 9 (9>&-), so that a crashed run's leftovers hold no lock.
LOCK=/run/lock/asw-hosts.lock
exec 9>"$LOCK"
flock -w 10 9 || die "another run of this test holds $LOCK (fuser -v $LOCK)"
trap finish EXIT
trap 'exit 143' INT TERM HUP
remove_leftover_dirs() {
  local d
  for d in /tmp/asw-hosts.*; do
    if [[ -f $d/pg/data/postmaster.pid ]]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$d/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$d" 2>/dev/null || { sleep 1; rm -rf "$d"; }
  done
  return 0
}
if ip netns list | grep -q '^asw-' || ip link show asw-root >/dev/null 2>&1 || compgen -G '/tmp/asw-hosts.*' >/dev/null; then
  log "removing what an earlier run left behind"
  remove_network
  remove_leftover_dirs
fi
DIR=$(mktemp -d /tmp/asw-hosts.XXXXXX)
chmod 755 "$DIR"
started=$SECONDS

log "network: bridge in asw-lan, hosts ${HOSTS[*]} on $NET.0/24, this machine at $ROOT_ADDR"
ip netns add asw-lan
ip -n asw-lan link add br0 type bridge
ip -n asw-lan link set br0 up
ip -n asw-lan link set lo up
for h in "${HOSTS[@]}"; do
  ip netns add "asw-$h"
  ip -n "asw-$h" link add eth0 type veth peer name "$h" netns asw-lan
  ip -n "asw-$h" addr add "${ADDR[$h]}/24" dev eth0
  ip -n "asw-$h" link set eth0 up
  ip -n "asw-$h" link set lo up
  ip -n asw-lan link set "$h" master br0 up
done
ip link add asw-root type veth peer name root netns asw-lan
ip -n asw-lan link set root master br0 up
ip addr add "$ROOT_ADDR/24" dev asw-root
ip link set asw-root up
# answers [NS] ADDR: ADDR's host answers a TCP connection to a closed port (with a refusal),
# from the namespace NS or from this machine; no ping here.
answers() {
  local ns=() out
  if (($# == 2)); then ns=(ip netns exec "$1"); shift; fi
  out=$("${ns[@]}" timeout 2 bash -c "exec 3<>/dev/tcp/$1/9" 2>&1) || true
  [[ $out == *refused* ]]
}
for h in "${HOSTS[@]}"; do
  wait_until 10 "$h (${ADDR[$h]}) answering from this machine" answers "${ADDR[$h]}"
done
answers asw-w1 "$COORD_ADDR" || die "w1 cannot reach the coordinator's host"
answers asw-coord "$PG_ADDR" || die "the coordinator's host cannot reach pg"

# on HOST COMMAND...: runs COMMAND on HOST (in its namespace).
on() { local h=$1; shift; ip netns exec "asw-$h" "$@"; }
q() {
  # shellcheck disable=SC2086
  psql $PSQL -v ON_ERROR_STOP=1 -AtX -c "$1"
}
alive() { kill -0 "${PID[$1]}" 2>/dev/null || die "$1 (pid ${PID[$1]}) exited; see $DIR/$1.log"; }
# cut HOST RULES...: iptables DROP rules inside HOST's namespace; heal HOST removes them.
cut() {
  local h=$1; shift
  local rule
  for rule in "$@"; do
    # shellcheck disable=SC2086
    on "$h" iptables -w -A $rule -j DROP
  done
}
heal() { on "$1" iptables -w -F; }

# --- Postgres on pg --------------------------------------------------------------------------

log "pg: initdb and start PostgreSQL 15 on $PG_ADDR:5432"
mkdir -p "$DIR/pg"
chown postgres:postgres "$DIR/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 ||
  die "initdb failed: $(tail -n 5 "$DIR/initdb.log")"
echo "host all all $NET.0/24 trust" >>"$DIR/pg/data/pg_hba.conf"
on pg runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 60 \
  -o "-c listen_addresses=$PG_ADDR -p 5432 -k $DIR/pg -c fsync=off" start >/dev/null 9>&- ||
  die "Postgres did not start: $(tail -n 5 "$DIR/pg/postgres.log")"
wait_until 20 "Postgres answering on $PG_ADDR from this machine" q "SELECT 1"
PG_PID=$(head -n 1 "$DIR/pg/data/postmaster.pid")

# --- the coordinator on coord, workers on w1..w3 ---------------------------------------------

log "coord: allsweep serve on $COORD_ADDR:50051 (HTTP :8080), lease ${LEASE}s"
mkdir -p "$DIR/artifacts"
# Started as simple commands (not through on, a function, which would run in a subshell of
# its own): $! is then the process itself, as ip netns exec, unshare and sh all exec.
ip netns exec asw-coord "$BIN/allsweep" serve --db "postgres://postgres@$PG_ADDR:5432/postgres" \
  --listen "$COORD_ADDR:50051" --http "$COORD_ADDR:8080" --artifacts "$DIR/artifacts" \
  --token "$TOKEN" --lease-seconds "$LEASE" >"$DIR/coord.out" 2>"$DIR/coord.log" 9>&- &
PID[coord]=$!
coord_printed() { [[ $(wc -l <"$DIR/coord.out") -ge 2 ]]; }
wait_until 30 "the coordinator printing its addresses" coord_printed
alive coord
grep -q "$COORD_ADDR:50051" "$DIR/coord.out" || die "the coordinator says: $(cat "$DIR/coord.out")"

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-3}" "http://$COORD_ADDR:8080$1" || true; }
# grpc_health: SERVING, NOT_SERVING, or what else came back, from grpc.health.v1.Health/Check
# for the server as a whole, asked with curl over HTTP/2 (an empty request is five zero bytes).
grpc_health() {
  local reply
  reply=$(printf '\0\0\0\0\0' | curl -s --max-time "${1:-3}" --http2-prior-knowledge -H 'content-type: application/grpc' \
    -H 'te: trailers' --data-binary @- "http://$COORD_ADDR:50051/grpc.health.v1.Health/Check" | od -An -tx1 | tr -d ' \n') || true
  case $reply in
    00000000020801) echo SERVING ;;
    00000000020802) echo NOT_SERVING ;;
    '') echo no-answer ;;
    *) echo "reply:$reply" ;;
  esac
}
ready() { [[ $(http_code /readyz) == 200 ]]; }
wait_until 30 "/readyz answering 200" ready
[[ $(grpc_health) == SERVING ]] || die "gRPC health says $(grpc_health) before any fault"

for w in w1 w2 w3; do
  mkdir -p "$DIR/$w"
  # Its own UTS namespace too, so that it registers with its host's name (workers.host).
  # shellcheck disable=SC2016
  ip netns exec "asw-$w" unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "asw-$w" \
    "$BIN/allsweep-worker" --coordinator "http://$COORD_ADDR:50051" --device cpu --threads 1 \
    --work-dir "$DIR/$w" >"$DIR/$w.log" 2>&1 9>&- &
  PID[$w]=$!
done
registered() { [[ $(q "SELECT count(DISTINCT host) FROM workers WHERE host LIKE 'asw-w%'") == 3 ]]; }
wait_until 30 "three workers registered" registered
log "up in $((SECONDS - started))s: pg, coord and three workers on their own hosts"

all_alive() {
  local n
  kill -0 "$PG_PID" 2>/dev/null || die "Postgres (postmaster pid $PG_PID) exited; see $DIR/pg/postgres.log"
  for n in coord w1 w2 w3; do alive "$n"; done
}

# --- case 1: a worker cut off ----------------------------------------------------------------

SPEC_A=$DIR/cut-worker.toml
synthetic_spec "hosts: a worker cut off" "[0, 1, 2, 3, 4, 5]" "$EPOCHS" "$IMAGES" >"$SPEC_A"
SWEEP_A=$("$BIN/allsweep" submit "$SPEC_A" 2>>"$DIR/client.log") || die "submit failed: $(tail -n 3 "$DIR/client.log")"
log "case 1: sweep $SWEEP_A (6 trials of $EPOCHS epochs) submitted"

# The trial w1 runs once it has finished an epoch (a metric and a checkpoint stored).
T='' A=''
w1_past_epoch_1() {
  local row
  row=$(q "SELECT t.id || ' ' || t.attempt FROM trials t JOIN workers w ON w.id = t.worker_id
           WHERE t.sweep_id = '$SWEEP_A' AND t.state = 'running' AND w.host = 'asw-w1'
             AND EXISTS (SELECT 1 FROM metrics m WHERE m.trial_id = t.id AND m.attempt = t.attempt AND m.epoch >= 1)
             AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.trial_id = t.id AND c.attempt = t.attempt)
           LIMIT 1")
  [[ -n $row ]] && read -r T A <<<"$row"
}
wait_until 90 "w1 running a trial past epoch 1" w1_past_epoch_1
all_alive

cut w1 "INPUT ! -i lo" "OUTPUT ! -o lo"
cut_at=$SECONDS
# What the attempt had stored when the link went: nothing of it may arrive later.
E_CUT=$(q "SELECT COALESCE(max(epoch), 0) FROM metrics WHERE trial_id = '$T' AND attempt = $A")
log "case 1: w1 cut off (iptables DROP both ways) while training trial $T attempt $A at epoch $E_CUT"

expired() { [[ $(q "SELECT outcome FROM attempts WHERE trial_id = '$T' AND attempt = $A") == expired ]]; }
wait_until $((LEASE * 5)) "attempt $A of $T marked expired" expired
CAUSE_A=$(q "SELECT COALESCE(cause, 'NULL') FROM attempts WHERE trial_id = '$T' AND attempt = $A")
log "case 1: attempt $A expired after $((SECONDS - cut_at))s (cause $CAUSE_A)"
NEXT_HOST=
moved() {
  NEXT_HOST=$(q "SELECT w.host FROM attempts a JOIN workers w ON w.id = a.worker_id
                 WHERE a.trial_id = '$T' AND a.attempt = $((A + 1))")
  [[ -n $NEXT_HOST ]]
}
wait_until 90 "trial $T leased again (attempt $((A + 1)))" moved
[[ $NEXT_HOST != asw-w1 ]] || die "trial $T went back to w1, which is cut off"
RESUMED=$(q "SELECT COALESCE(resumed_from_epoch::text, 'scratch') FROM attempts WHERE trial_id = '$T' AND attempt = $((A + 1))")
log "case 1: trial $T leased to ${NEXT_HOST#asw-} as attempt $((A + 1)), resuming from epoch $RESUMED"
# Hold the cut for three lease times at least (and until the trial has moved, above, so that
# w1 cannot take it back).
while ((SECONDS - cut_at < 3 * LEASE)); do sleep 0.5; done
all_alive
heal w1
healed_at=$SECONDS
HEALED_MS=$(date +%s%3N)
log "case 1: link healed after $((healed_at - cut_at))s"

# When the link heals, w1's first call for the superseded attempt is refused: the heartbeat
# that would renew it is answered "stop", and each report it still holds for it (metrics,
# checkpoint, completion; those the trial produced while the agent's call hung are dropped
# unsent once it is told to stop) is refused as superseded. Either says so in w1's log.
STOP_LINE="coordinator says stop (cancelled or superseded) trial=$T"
REFUSED_LINE="refused: trial $T attempt $A is superseded"
refused() { grep -qF -e "$STOP_LINE" -e "$REFUSED_LINE" "$DIR/w1.log"; }
wait_until 45 "w1 logging that the coordinator refused attempt $A of $T" refused
log "case 1: w1's log: $(grep -m 1 -F -e "$STOP_LINE" -e "$REFUSED_LINE" "$DIR/w1.log" | sed 's/^[^ ]* *//')"
sleep 1
log "case 1: w1 was told to stop $(grep -cF "$STOP_LINE" "$DIR/w1.log" || true) times and refused $(grep -cF "$REFUSED_LINE" "$DIR/w1.log" || true) reports of attempt $A"

REFUSED=$(curl -s --max-time 5 -H "Authorization: Bearer $TOKEN" "http://$COORD_ADDR:8080/metrics" |
  grep '^allsweep_grpc_requests_total.*FailedPrecondition' | sed 's/^allsweep_grpc_requests_total//' | tr '\n' ' ' || true)
log "case 1: the coordinator counts these calls refused: ${REFUSED:-none}"
a_done() { [[ $(q "SELECT state FROM sweeps WHERE id = '$SWEEP_A'") == finished ]]; }
wait_until 150 "sweep $SWEEP_A finished" a_done
all_alive
check_exactly_once "$PSQL" "$SWEEP_A" 6
LATE=$(q "SELECT count(*) FROM metrics WHERE trial_id = '$T' AND attempt = $A AND epoch > $E_CUT")
[[ $LATE == 0 ]] || die "$LATE metric rows of the superseded attempt $A of $T, past epoch $E_CUT, were stored after the cut"
# Every metric of the trial is the old attempt's from before the cut or a later attempt's
# from after its resume point, so no late row hides under a later attempt's overwrite.
FROM_EPOCH=${RESUMED/scratch/0}
MIXED=$(q "SELECT count(*) FROM metrics WHERE trial_id = '$T'
           AND NOT (attempt = $A AND epoch <= $E_CUT) AND NOT (attempt > $A AND epoch > $FROM_EPOCH)")
[[ $MIXED == 0 ]] || die "$MIXED metric rows of $T are neither attempt $A's before the cut nor a later attempt's"
log "case 1: metrics of $T by attempt: $(q "SELECT string_agg(attempt || ': epochs ' || lo || '-' || hi, ', ' ORDER BY attempt)
  FROM (SELECT attempt, min(epoch) lo, max(epoch) hi FROM metrics WHERE trial_id = '$T' GROUP BY attempt) m")"
STATE_A=$(q "SELECT outcome FROM attempts WHERE trial_id = '$T' AND attempt = $A")
[[ $STATE_A == expired ]] || die "the superseded attempt $A of $T is now $STATE_A"
DONE_BY=$(q "SELECT a.attempt || ' on ' || w.host FROM attempts a JOIN workers w ON w.id = a.worker_id
             WHERE a.trial_id = '$T' AND a.outcome = 'completed'")
[[ $DONE_BY != "$A on "* ]] || die "trial $T was completed by the superseded attempt"
log "case 1: passed: $T completed by attempt $DONE_BY; no metric of attempt $A after epoch $E_CUT"

# --- case 2: the coordinator cut from Postgres ------------------------------------------------

SPEC_B=$DIR/cut-database.toml
synthetic_spec "hosts: the coordinator cut from its database" "[0, 1, 2, 3, 4, 5]" "$EPOCHS" "$IMAGES" >"$SPEC_B"
SWEEP_B=$("$BIN/allsweep" submit "$SPEC_B" 2>>"$DIR/client.log") || die "submit failed: $(tail -n 3 "$DIR/client.log")"
log "case 2: sweep $SWEEP_B (6 trials) submitted"
three_past_epoch_1() {
  [[ $(q "SELECT count(DISTINCT t.worker_id) FROM trials t WHERE t.sweep_id = '$SWEEP_B' AND t.state = 'running'
          AND EXISTS (SELECT 1 FROM metrics m WHERE m.trial_id = t.id AND m.attempt = t.attempt AND m.epoch >= 1)") == 3 ]]
}
wait_until 90 "three workers training sweep $SWEEP_B past epoch 1" three_past_epoch_1
RUNNING_B=$(q "SELECT string_agg(id || ':' || attempt, ' ' ORDER BY id) FROM trials WHERE sweep_id = '$SWEEP_B' AND state = 'running'")

# The cut lasts until both probes have said "not ready": at least 10 s (more than two
# leases), at most HOSTS_DB_CUT_MAX. A silent partition (packets dropped, no reset, as a real
# one) would hold a query for the pool's 30 s acquire timeout; /readyz and the gRPC health
# service give the database 2 s (PROBE_DEADLINE), so /readyz answers 503 within a probe's
# timeout (4 s here, as a load balancer's), never 200, and the health service turns
# NOT_SERVING at its next check (every 5 s); /healthz answers at once throughout.
CUT2_MIN=10 CUT2_MAX=${HOSTS_DB_CUT_MAX:-60}
cut coord "OUTPUT -d $PG_ADDR" "INPUT -s $PG_ADDR"
cut2_at=$SECONDS cut2_epoch=$(date +%s)
log "case 2: coord cut from pg (iptables DROP both ways); running: $RUNNING_B"
curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 90 "http://$COORD_ADDR:8080/readyz" >"$DIR/readyz-long" 9>&- &
PID[probe]=$!
healthz_bad=() readyz_200=0 readyz_codes=() grpc_seen=() g_last="" trained=()
long_answered() { [[ -s $DIR/readyz-long ]]; }
while :; do
  all_alive
  code=$(http_code /healthz 2)
  [[ $code == 200 ]] || healthz_bad+=("$code")
  code=$(http_code /readyz 4)
  [[ $code == 200 ]] && readyz_200=$((readyz_200 + 1))
  readyz_codes+=("$code")
  g=$(grpc_health 2)
  [[ $g == "${g_last:-}" ]] || grpc_seen+=("$g@+$((SECONDS - cut2_at))s")
  g_last=$g
  # Training goes on: each worker writes its trial's checkpoint file after every epoch.
  for w in w1 w2 w3; do
    [[ " ${trained[*]} " == *" $w "* ]] && continue
    [[ -n $(find "$DIR/$w" -name '*.ckpt' -newermt "@$((cut2_epoch + 1))" -print -quit) ]] && trained+=("$w")
  done
  elapsed=$((SECONDS - cut2_at))
  if ((elapsed >= CUT2_MIN)) && long_answered && [[ $g == NOT_SERVING ]]; then break; fi
  ((elapsed < CUT2_MAX)) || break
  sleep 1
done
heal coord
healed2_at=$SECONDS
log "case 2: healed after $((healed2_at - cut2_at))s"
log "case 2: while cut: /healthz ${#healthz_bad[@]} failures; /readyz (4 s probes) $(printf '%s\n' "${readyz_codes[@]}" | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}')(000: no answer in 4 s)"
log "case 2: gRPC health: ${grpc_seen[*]}"
log "case 2: workers that finished an epoch while cut: ${trained[*]:-none}"
((${#healthz_bad[@]} == 0)) || die "/healthz failed while the database was cut off: ${healthz_bad[*]}"
((readyz_200 == 0)) || die "/readyz answered 200 $readyz_200 times while the database was cut off"
[[ " ${readyz_codes[*]} " == *" 503 "* ]] ||
  die "/readyz never answered 503 within a 4 s probe while the database was cut off: ${readyz_codes[*]}"
long_answered || die "/readyz asked at the cut gave no answer in $((healed2_at - cut2_at))s of outage"
read -r long_code long_after <"$DIR/readyz-long"
log "case 2: /readyz asked at the cut answered $long_code after ${long_after}s"
[[ $long_code == 503 ]] || die "/readyz asked at the cut answered $long_code, 503 expected"
[[ " ${grpc_seen[*]} " == *" NOT_SERVING@"* ]] ||
  die "the gRPC health service never said NOT_SERVING in $((healed2_at - cut2_at))s of outage: ${grpc_seen[*]}"
((${#trained[@]} == 3)) || die "only ${trained[*]:-no worker} wrote a checkpoint while the database was cut off"
wait "${PID[probe]}" 2>/dev/null || true
unset 'PID[probe]'
wait_until 60 "/readyz answering 200 after the database came back" ready
serving() { [[ $(grpc_health) == SERVING ]]; }
wait_until 30 "gRPC health SERVING after the database came back" serving
[[ $(http_code /healthz) == 200 ]] || die "/healthz is not 200 after the outage"
log "case 2: ready and SERVING again $((SECONDS - healed2_at))s after healing"

b_done() { [[ $(q "SELECT state FROM sweeps WHERE id = '$SWEEP_B'") == finished ]]; }
wait_until 150 "sweep $SWEEP_B finished" b_done
all_alive
check_exactly_once "$PSQL" "$SWEEP_B" 6
for w in w1 w2 w3; do
  n=$(grep -c "heartbeat failed\|lease failed\|unreachable" "$DIR/$w.log" || true)
  log "case 2: $w logged $n failed calls it retried"
done
EXPIRED_B=$(q "SELECT string_agg(a.trial_id || ':' || a.attempt || ' cause ' || COALESCE(a.cause, 'NULL'), ', ')
               FROM attempts a JOIN trials t ON t.id = a.trial_id
               WHERE t.sweep_id = '$SWEEP_B' AND a.outcome = 'expired'")
log "case 2: expired attempts of $SWEEP_B: ${EXPIRED_B:-none}"
COUNTED=$(q "SELECT string_agg(a.trial_id || ':' || a.attempt || ' ' || a.outcome || ' cause ' || COALESCE(a.cause, 'NULL'), ', ')
             FROM attempts a JOIN trials t ON t.id = a.trial_id
             WHERE t.sweep_id = '$SWEEP_B' AND a.outcome IN ('expired', 'failed') AND a.cause IS DISTINCT FROM 'outage'")
[[ -z $COUNTED ]] || die "the database outage cost trials an attempt (counted against max_attempts): $COUNTED"
for ta in $RUNNING_B; do
  done_by=$(q "SELECT attempt FROM attempts WHERE trial_id = '${ta%:*}' AND outcome = 'completed'")
  [[ $done_by == "${ta#*:}" ]] ||
    log "case 2: note: trial ${ta%:*}, running as attempt ${ta#*:} during the outage, was completed by attempt $done_by"
done

# w1 went on working after its link healed.
W1_AFTER=$(q "SELECT count(*) FROM attempts a JOIN workers w ON w.id = a.worker_id
              WHERE w.host = 'asw-w1' AND a.outcome = 'completed' AND a.started_at > $HEALED_MS")
((W1_AFTER > 0)) || die "w1 completed no trial after its link healed"
log "w1 completed $W1_AFTER trials after its link healed"
log "passed in $((SECONDS - started))s"
