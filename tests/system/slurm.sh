#!/usr/bin/env bash
# The Slurm deployment, for real: a private Slurm cluster on this machine (munged, slurmctld and
# two slurmd as nodes n1 and n2), a coordinator on a fresh Postgres database, and workers started
# only by deploy/slurm/allsweep-worker.sbatch as shipped. It submits a sweep and the job array,
# scancels one array task mid-trial (its attempt ends `released` and the trial resumes elsewhere
# from its checkpoint), scales up with one more array task, `scontrol requeue`s another mid-trial
# (it comes back as a new worker and trains), runs the sweep to completion, checks every trial
# completed exactly once and no lease expired, then drains a worker (its array task completes).
#
# Root only (Slurm's daemons and munged). Installs Debian's slurm-wlm and munge if missing.
# Everything it starts is stopped by PID on exit, pass or fail; SLURM_TEST_KEEP=1 keeps its
# folder (logs, Slurm state) for a look afterwards.
set -euo pipefail
TEST_NAME=slurm
# shellcheck source=tests/system/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRIPT=$ROOT/deploy/slurm/allsweep-worker.sbatch
# Trials: 2 gammas x 3 seeds, each 12 epochs of 256 synthetic images (32x32): about 1 s an
# epoch on one thread here, so a trial is long enough to interrupt mid-way (12 s) and the sweep
# short enough for the test.
TRIALS=6
EPOCHS=12
IMAGES=256

(($(id -u) == 0)) || die "run as root: slurmd, slurmctld and munged run as root here"
for bin in allsweep allsweep-worker; do
  [[ -x $BIN/$bin ]] || die "no $BIN/$bin: build first (make build)"
done

# --- 1. Slurm and munge from Debian ---------------------------------------------------------
packages=(slurm-wlm munge)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; } ||
    die "cannot install ${packages[*]}"
fi

# --- Everything this test starts, and how it is stopped --------------------------------------
WORK=$(mktemp -d /tmp/allsweep-slurm.XXXXXX)
# munged refuses a socket directory that not everyone may traverse ("Socket is inaccessible:
# execute permissions for all required"), and a key file others may read.
chmod 755 "$WORK"
# Every Slurm command here, the cleanup's included, talks to this cluster only.
export SLURM_CONF=$WORK/slurm/slurm.conf
DB=allsweep_slurm_$$
PSQL_ARGS="-h 127.0.0.1 -U postgres -d $DB"
declare -A DAEMONS=()   # name -> pid (munged, slurmctld, slurmd-n1, slurmd-n2, coordinator)
DB_MADE=0

q() {
  # shellcheck disable=SC2086
  psql $PSQL_ARGS -v ON_ERROR_STOP=1 -AtX -c "$1"
}

# Processes that carry this run's marker: the daemons, every slurmstepd they forked and every
# job they ran (sbatch passes its environment to the job).
marked_pids() {
  local p
  for p in /proc/[0-9]*; do
    [[ ${p#/proc/} == "$$" ]] && continue
    grep -qzx "ALLSWEEP_SLURM_TEST=$WORK" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

stop_pid() { # stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS
  local pid=$1 seconds=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < seconds * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

dump_logs() {
  local f pids
  printf '\n----- jobs -----\n' >&2
  squeue -a -o '%i %T %r %N' >&2 2>/dev/null
  pids=$(marked_pids | paste -sd, -)
  if [[ -n $pids ]]; then
    printf '\n----- processes -----\n' >&2
    ps -o pid,ppid,stat,etime,wchan:24,args -p "$pids" >&2
  fi
  for f in "$WORK"/jobs/*.out "$WORK"/coordinator.log "$WORK"/slurm/slurmctld.log "$WORK"/slurm/slurmd-*.out; do
    [[ -f $f ]] || continue
    printf '\n----- %s (last 40 lines) -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

cleanup() {
  local rc=$?
  set +e
  ((rc == 0)) || dump_logs
  # Jobs first, while slurmctld and slurmd still run: each worker gets SIGTERM and gives its
  # trials back; Slurm SIGKILLs what is left after KillWait.
  if [[ -n ${DAEMONS[slurmctld]:-} ]] && kill -0 "${DAEMONS[slurmctld]}" 2>/dev/null; then
    scancel --quiet --user=root 2>/dev/null
    local deadline=$((SECONDS + 40))
    while ((SECONDS < deadline)) && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; do sleep 0.5; done
  fi
  local name pid
  for name in slurmd-n1 slurmd-n2 slurmctld coordinator munged; do
    pid=${DAEMONS[$name]:-}
    [[ -n $pid ]] && stop_pid "$pid" 10
  done
  for pid in $(marked_pids); do stop_pid "$pid" 5; done
  wait 2>/dev/null
  [[ -z $(marked_pids) ]] || log "WARNING: still running after cleanup: $(marked_pids | tr '\n' ' ')"
  ((DB_MADE)) && dropdb -h 127.0.0.1 -U postgres --if-exists "$DB"
  if [[ ${SLURM_TEST_KEEP:-0} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM

# --- 2. A private cluster: munged, slurmctld, slurmd n1 and n2 -------------------------------
# Ports: a free block of four below the ephemeral range (slurmctld, slurmd's default, n1, n2).
for ((try = 0; ; try++)); do
  PORT=$((20000 + RANDOM % 12000))
  taken=$(ss -Htan "( sport >= :$PORT and sport <= :$((PORT + 3)) )" | wc -l)
  ((taken == 0)) && break
  ((try < 20)) || die "no free block of ports found"
done
mkdir -p "$WORK"/munge "$WORK"/slurm/state "$WORK"/slurm/spool/n1 "$WORK"/slurm/spool/n2 "$WORK"/jobs "$WORK"/artifacts
chmod 711 "$WORK"/munge
if command -v mungekey >/dev/null; then
  mungekey --create --keyfile="$WORK"/munge/munge.key
else
  dd if=/dev/urandom of="$WORK"/munge/munge.key bs=1024 count=1 status=none
fi
chmod 400 "$WORK"/munge/munge.key
MUNGE_SOCKET=$WORK/munge/munge.socket
env ALLSWEEP_SLURM_TEST="$WORK" munged --foreground --socket="$MUNGE_SOCKET" --key-file="$WORK"/munge/munge.key \
  --pid-file="$WORK"/munge/munged.pid --log-file="$WORK"/munge/munged.log --seed-file="$WORK"/munge/munged.seed \
  >"$WORK"/munge/munged.out 2>&1 &
DAEMONS[munged]=$!
wait_until 10 "munged's socket" test -S "$MUNGE_SOCKET"
munge --socket="$MUNGE_SOCKET" --no-input | unmunge --socket="$MUNGE_SOCKET" >/dev/null ||
  die "munge cannot decode its own credential: $(cat "$WORK"/munge/munged.out)"

# Each node has one CPU and one (fake: /dev/null) GPU, so the two CPU-only array tasks run at
# once, one per node, and a task as shipped (--gres=gpu:1) finds a GPU to be scheduled on.
# cred_expire=10: a requeued job waits cred_expire + 1 s before it may start again (120 s by
# default). No cgroups: processes are tracked by /proc, tasks are not bound.
S=$WORK/slurm
cat >"$SLURM_CONF" <<CONF
ClusterName=allsweeptest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd-%n.pid
SlurmctldLogFile=$S/slurmctld.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
KillWait=30
GresTypes=gpu
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=1 Gres=gpu:1 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 3)) CPUs=1 Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=n1,n2 Name=gpu File=/dev/null" >"$S"/gres.conf

env ALLSWEEP_SLURM_TEST="$WORK" slurmctld -D >"$S"/slurmctld.out 2>&1 &
DAEMONS[slurmctld]=$!
# Two slurmd on one host: Debian builds Slurm with multiple-slurmd support (slurmd -N NAME),
# each with its own port, spool folder and pid file (the %n above); in the foreground (-D) it
# logs to stderr.
for node in n1 n2; do
  env ALLSWEEP_SLURM_TEST="$WORK" slurmd -D -N "$node" >"$S/slurmd-$node.out" 2>&1 &
  DAEMONS[slurmd-$node]=$!
done
nodes_idle() { [[ $(sinfo -h -N -o '%N %t' | sort | tr '\n' ' ') == "n1 idle n2 idle " ]]; }
wait_until 30 "nodes n1 and n2 idle" nodes_idle
log "Slurm $(sinfo -V | cut -d' ' -f2) up: slurmctld on port $PORT, slurmd n1 and n2 on $((PORT + 2)) and $((PORT + 3))"

# --- 3. The coordinator, on a fresh database --------------------------------------------------
dropdb -h 127.0.0.1 -U postgres --if-exists "$DB" 2>/dev/null || true
createdb -h 127.0.0.1 -U postgres "$DB"
DB_MADE=1
TOKEN=slurm-test-$RANDOM$RANDOM$RANDOM
"$BIN"/allsweep serve --db "postgres://postgres@127.0.0.1:5432/$DB" --listen 127.0.0.1:0 \
  --artifacts "$WORK"/artifacts --token "$TOKEN" --lease-seconds 6 \
  >"$WORK"/coordinator.out 2>"$WORK"/coordinator.log &
DAEMONS[coordinator]=$!
wait_until 30 "the coordinator's address" grep -q 'listening on' "$WORK"/coordinator.out
ADDRESS=$(sed -n 's/.*listening on //p' "$WORK"/coordinator.out | head -n1)
export ALLSWEEP_COORDINATOR=http://$ADDRESS ALLSWEEP_TOKEN=$TOKEN
log "coordinator at $ALLSWEEP_COORDINATOR on database $DB"

# --- 4. The sweep and the job array -------------------------------------------------------------
synthetic_spec "slurm system test" "[0, 1, 2]" "$EPOCHS" "$IMAGES" '"loss.gamma" = [0.1, 0.3]' >"$WORK"/spec.toml
SWEEP=$("$BIN"/allsweep submit "$WORK"/spec.toml 2>>"$WORK"/coordinator.log)
log "sweep $SWEEP submitted ($TRIALS trials)"

# The workers' side, as a user would set it: the token from a file, the binary by path; the
# marker lets the cleanup find every process of the jobs. The stop timeout is below KillWait.
printf '%s\n' "$TOKEN" >"$WORK"/worker-token
chmod 600 "$WORK"/worker-token
submit() { # submit SBATCH_OPTIONS...: prints the job id
  env -u ALLSWEEP_TOKEN ALLSWEEP_TOKEN_FILE="$WORK"/worker-token ALLSWEEP_WORKER="$BIN"/allsweep-worker \
    ALLSWEEP_STOP_TIMEOUT=20 ALLSWEEP_SLURM_TEST="$WORK" \
    sbatch --parsable --chdir="$WORK"/jobs --cpus-per-task=1 "$@" "$SCRIPT"
}
job_log() { echo "$WORK/jobs/allsweep-worker-$1.out"; } # job_log ARRAYJOB_TASK
# worker_id ARRAYJOB_TASK [N]: the id of the Nth worker (default 1) that task's log registered.
worker_id() { sed -n 's/.*registered.* worker=\([A-Za-z0-9-]*\).*/\1/p' "$(job_log "$1")" 2>/dev/null | sed -n "${2:-1}p"; }
has_worker() { [[ -n $(worker_id "$@") ]]; }
task_gone() { [[ -z $(squeue -h -j "$1" -o %T 2>/dev/null) ]]; }
# wait_trial_past_epoch_1 WORKER: waits for a trial this worker runs past its first epoch and
# prints its id and attempt.
wait_trial_past_epoch_1() {
  local found deadline=$((SECONDS + 90))
  until found=$(q "SELECT t.id || ' ' || a.attempt FROM trials t JOIN attempts a ON a.trial_id = t.id
                   AND a.attempt = t.attempt WHERE t.worker_id = '$1' AND t.state = 'running'
                   AND a.outcome = 'running' AND t.epoch >= 1 LIMIT 1") && [[ -n $found ]]; do
    ((SECONDS < deadline)) || die "timed out after 90s waiting for a trial of $1 past epoch 1"
    sleep 0.5
  done
  echo "$found"
}
attempt_closed() { [[ $(q "SELECT outcome FROM attempts WHERE trial_id = '$1' AND attempt = $2") != running ]]; }

# CPU-only: --gres=none drops the script's GPU request; the script then picks --device cpu and
# --threads from --cpus-per-task by itself.
JOB=$(submit --array=0-1 --gres=none)
log "job array $JOB submitted: tasks 0 and 1, CPU-only"
wait_until 60 "array task ${JOB}_0's worker" has_worker "${JOB}_0"
wait_until 60 "array task ${JOB}_1's worker" has_worker "${JOB}_1"
for task in 0 1; do
  grep -q -- "GPUs none: .*--device cpu .*--threads 1" "$(job_log "${JOB}_$task")" ||
    die "task $task: the script did not start the worker with --device cpu and --threads 1"
done
W0=$(worker_id "${JOB}_0")
W1=$(worker_id "${JOB}_1")
log "tasks 0 and 1 run workers $W0 and $W1"

# --- 5a. scancel task 0 mid-trial: released, then resumed elsewhere from its checkpoint -------
found=$(wait_trial_past_epoch_1 "$W0")
read -r T0 A0 <<<"$found"
log "scancel ${JOB}_0 while $W0 trains $T0 (attempt $A0, epoch $(q "SELECT epoch FROM trials WHERE id = '$T0'"))"
scancel "${JOB}_0"
wait_until 40 "attempt $A0 of $T0 to end" attempt_closed "$T0" "$A0"
outcome=$(q "SELECT outcome FROM attempts WHERE trial_id = '$T0' AND attempt = $A0")
[[ $outcome == released ]] || die "scancelled worker's attempt $A0 of $T0 ended '$outcome', not released"
wait_until 40 "task ${JOB}_0 to leave the queue" task_gone "${JOB}_0"
grep -q 'stopping: checkpointing' "$(job_log "${JOB}_0")" || die "task 0's worker did not log its stop"
! grep -q '^error:' "$(job_log "${JOB}_0")" || die "task 0's worker failed: $(grep '^error:' "$(job_log "${JOB}_0")")"
log "attempt $A0 of $T0 released"

# Scale up: one more array task, the script as shipped (GPU request included), on the freed node.
JOB2=$(submit --array=2)
log "scale up: array task ${JOB2}_2 submitted as shipped (--gres=gpu:1)"
wait_until 60 "array task ${JOB2}_2's worker" has_worker "${JOB2}_2"
grep -q -- "GPUs 0: .*--device auto" "$(job_log "${JOB2}_2")" ||
  die "task ${JOB2}_2: the script did not start the worker with its GPU and --device auto"
W2=$(worker_id "${JOB2}_2")
host=$(q "SELECT host FROM workers WHERE id = '$W2'")
[[ $host == *-job${JOB2}-2 ]] || die "worker $W2 of task ${JOB2}_2 registered as host '$host', not NODE-job${JOB2}-2"
resumed() {
  [[ $(q "SELECT count(*) FROM attempts WHERE trial_id = '$T0' AND attempt > $A0
          AND worker_id <> '$W0' AND resumed_from_epoch > 0") -ge 1 ]]
}
wait_until 60 "$T0 to resume from its checkpoint on another worker" resumed
log "$T0 resumed: $(q "SELECT 'attempt ' || attempt || ' on ' || worker_id || ' from epoch ' || resumed_from_epoch
  FROM attempts WHERE trial_id = '$T0' AND attempt > $A0 ORDER BY attempt LIMIT 1")"

# --- 5b. scontrol requeue task 1 mid-trial: it comes back as a new worker and trains ------------
found=$(wait_trial_past_epoch_1 "$W1")
read -r T1 A1 <<<"$found"
log "scontrol requeue ${JOB}_1 while $W1 trains $T1 (attempt $A1)"
scontrol requeue "${JOB}_1"
wait_until 40 "attempt $A1 of $T1 to end" attempt_closed "$T1" "$A1"
outcome=$(q "SELECT outcome FROM attempts WHERE trial_id = '$T1' AND attempt = $A1")
[[ $outcome == released ]] || die "requeued worker's attempt $A1 of $T1 ended '$outcome', not released"
wait_until 90 "requeued task ${JOB}_1 to register a second worker" has_worker "${JOB}_1" 2
W1B=$(worker_id "${JOB}_1" 2)
[[ $W1B != "$W1" ]] || die "requeued task registered as the same worker $W1"
restarts=$(scontrol show job "${JOB}_1" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
[[ $restarts == 1 ]] || die "requeued task ${JOB}_1 shows Restarts=$restarts"
worked() { [[ $(q "SELECT count(*) FROM attempts WHERE worker_id = '$W1B'") -ge 1 ]]; }
wait_until 60 "the requeued task's worker $W1B to lease a trial" worked
log "task ${JOB}_1 back (Restarts=1) as worker $W1B, training"

# --- The sweep to completion, exactly once, no lease expired ------------------------------------
done_() { [[ $(q "SELECT count(*) FROM trials WHERE sweep_id = '$SWEEP' AND state IN ('completed', 'failed', 'cancelled')") == "$TRIALS" ]]; }
wait_until 180 "sweep $SWEEP to finish" done_
check_exactly_once "$PSQL_ARGS" "$SWEEP" "$TRIALS"
bad=$(q "SELECT string_agg(a.trial_id || '/' || a.attempt || ' ' || a.outcome, ', ') FROM attempts a
         JOIN trials t ON t.id = a.trial_id WHERE t.sweep_id = '$SWEEP' AND a.outcome NOT IN ('completed', 'released')")
[[ -z $bad ]] || die "attempts neither completed nor released (a SIGTERM not handled in time?): $bad"
released=$(q "SELECT count(*) FROM attempts a JOIN trials t ON t.id = a.trial_id
              WHERE t.sweep_id = '$SWEEP' AND a.outcome = 'released'")
((released >= 2)) || die "$released attempts released, at least 2 expected"
log "sweep finished: $(q "SELECT count(*) FROM attempts a JOIN trials t ON t.id = a.trial_id WHERE t.sweep_id = '$SWEEP'") attempts, $released released, none expired"

# --- Scale down by drain: the worker exits 0 and its array task completes -----------------------
"$BIN"/allsweep workers drain "$W2" 2>>"$WORK"/coordinator.log >/dev/null
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
completed() { [[ $(job_state "$1") == COMPLETED ]]; }
wait_until 40 "drained task ${JOB2}_2 to complete" completed "${JOB2}_2"
exit_code=$(scontrol show job "${JOB2}_2" | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p')
[[ $exit_code == 0:0 ]] || die "drained task ${JOB2}_2 ended with ExitCode=$exit_code"
log "drained $W2: array task ${JOB2}_2 COMPLETED, exit 0"

# The last task ends by scancel in the cleanup: its worker gets SIGTERM with nothing to hand back.
log "passed in ${SECONDS}s"
