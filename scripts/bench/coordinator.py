"""The coordinator benchmark: allsweep's coordinator against Optuna's RDB storage.

Why this exists: one command that measures how many trials (and metric points) per second
the coordinator sustains with N simulated workers, on SQLite and on Postgres, next to
Optuna's RDBStorage doing the same work in the same run; the goal is 10x Optuna or more.

    .venv/bin/python scripts/bench/coordinator.py                 # the full benchmark
    .venv/bin/python scripts/bench/coordinator.py --trials 100 --workers 10 --dbs sqlite

For every N in --workers and every database in --dbs it runs, as separate processes and
taking turns (the order flips from one pair to the next):

    target/release/examples/load --db DB --workers N --trials T --points P
    .venv/bin/python scripts/bench/optuna_load.py --db DB --workers N --trials T --points P

The first is the real coordinator in-process on 127.0.0.1:0 with N async gRPC workers, one
HTTP/2 connection each (see coordinator/examples/load/main.rs); the second is N threads
sharing one Optuna study on an RDBStorage (see scripts/bench/optuna_load.py). Both start
from a fresh database (a temp SQLite file; a new Postgres database on the server that
ALLSWEEP_TEST_POSTGRES names, default postgres://postgres@127.0.0.1:5432/test, dropped
afterwards), both check at the end that exactly T trials completed with T*P
points stored, and both time from the first trial handed out to the last completion.
Then it prints a markdown table, the per-call latencies that dominate, and a machine
line, and appends every raw JSON line to --out (bench-out/coordinator.jsonl).

Before that it installs optuna and psycopg2-binary into the project's .venv if they are
missing, and builds the load example with cargo (release).

Defaults, and why: T = 1000 trials of P = 20 points (two epochs of 10 metrics), for
N = 10, 100 and 1000; T is raised to N where N is larger (--trials is a floor), so that
each of 1000 workers gets a trial. Optuna's RDB storage runs this workload at 12-18
trials/s on the 2-core development machine, so its six runs take about 7 minutes; the
whole command took 7.5 minutes there (allsweep's runs take 2-5 s each; warm cargo build).
T = 2000 would double Optuna's share and pass 10 minutes. Optuna gets all
1000 threads (--optuna-max-threads caps them; the output says so when it does) and a
SQLAlchemy pool of 16 connections, as allsweep's Postgres pool (SQLite: Optuna's default
journal, with a long busy timeout so contention waits instead of failing).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import urllib.parse
from pathlib import Path

from cli import csv_list
from machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
PYTHON = VENV / "bin" / "python"
OPTUNA_SCRIPT = REPO / "scripts" / "bench" / "optuna_load.py"
LOAD_BIN = REPO / "target" / "release" / "examples" / "load"
DEFAULT_OUT = REPO / "bench-out" / "coordinator.jsonl"
DBS = ("sqlite", "postgres")
# The Postgres server both sides use: the one the tests use (see testkit/src/postgres.rs).
PG_ADMIN = os.environ.get("ALLSWEEP_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
SYSTEMS = ("allsweep", "optuna")
REQUIRED_KEYS = ("system", "db", "workers", "trials", "points", "seconds",
                 "trials_per_second", "points_per_second")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=1000,
                   help="trials per run; raised to N for N workers (default 1000)")
    p.add_argument("--points", type=int, default=20, help="metric points per trial (default 20)")
    p.add_argument("--workers", type=csv_list(int), default=[10, 100, 1000],
                   help="comma list of worker counts (default 10,100,1000)")
    p.add_argument("--dbs", type=csv_list(str, DBS), default=list(DBS))
    p.add_argument("--systems", type=csv_list(str, SYSTEMS), default=list(SYSTEMS))
    p.add_argument("--optuna-max-threads", type=int, default=1000)
    p.add_argument("--optuna-pool", type=int, default=16)
    p.add_argument("--nodelay", action="store_true",
                   help="allsweep: TCP_NODELAY on the coordinator's listening socket (not what `allsweep serve` does)")
    p.add_argument("--timeout", type=int, default=900, help="seconds allowed per run")
    p.add_argument("--no-install", action="store_true", help="do not pip-install optuna / psycopg2-binary")
    p.add_argument("--no-build", action="store_true", help="use the load example already built")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="raw JSON lines are appended here")
    return p.parse_args(argv)


def log(message):
    print(message, file=sys.stderr, flush=True)


def build_env():
    env = dict(os.environ)
    env["LIBTORCH_USE_PYTORCH"] = "1"
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def ensure_python_packages(args):
    """optuna and psycopg2 in the project's venv, installed if missing."""
    if not PYTHON.exists():
        sys.exit(f"coordinator: no virtual environment at {VENV}; create it first (scripts/setup-torch.sh)")
    probe = subprocess.run([str(PYTHON), "-c", "import optuna, sqlalchemy, psycopg2"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return
    if args.no_install:
        sys.exit(f"coordinator: optuna/psycopg2 missing from {VENV} and --no-install given:\n{probe.stderr}")
    log(f"+ {VENV}/bin/pip install optuna psycopg2-binary")
    subprocess.run([str(VENV / "bin" / "pip"), "install", "optuna", "psycopg2-binary"], check=True)


def build(args):
    if args.no_build:
        if not LOAD_BIN.exists():
            sys.exit(f"coordinator: {LOAD_BIN} is not built (drop --no-build)")
        return
    argv = ["cargo", "build", "--release", "-p", "allsweep-coordinator", "--example", "load"]
    log(f"+ {' '.join(argv)}")
    proc = subprocess.run(argv, cwd=REPO, env=build_env())
    if proc.returncode != 0:
        sys.exit(f"coordinator: cargo build failed (exit {proc.returncode})")


def raise_open_files(needed):
    """1000 workers hold 2000 sockets in the load process: raise the soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft != resource.RLIM_INFINITY and soft < needed:
        log(f"coordinator: warning: open-file limit {soft} < {needed}; raise it (ulimit -n) for the largest N")


def commands(db, workers, trials, args):
    common = ["--db", db, "--workers", str(workers), "--trials", str(trials), "--points", str(args.points)]
    cmds = {}
    if "allsweep" in args.systems:
        cmds["allsweep"] = [str(LOAD_BIN), *common, *(["--nodelay"] if args.nodelay else [])]
    if "optuna" in args.systems:
        cmds["optuna"] = [str(PYTHON), str(OPTUNA_SCRIPT), *common,
                          "--max-threads", str(args.optuna_max_threads), "--pool", str(args.optuna_pool)]
    return cmds


def run_json(argv, timeout):
    """Runs one side; its last stdout line parsed as JSON, or None (the error is logged)."""
    log(f"+ {' '.join(argv)}")
    try:
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"coordinator: timed out after {timeout} s: {' '.join(argv)}")
        return None
    if proc.stderr.strip():
        log(proc.stderr.strip()[-3000:])
    if proc.returncode != 0:
        log(f"coordinator: FAILED (exit {proc.returncode}): {' '.join(argv)}")
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        record = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        log(f"coordinator: no JSON line from {' '.join(argv)}:\n{proc.stdout}")
        return None
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        log(f"coordinator: {argv[0]} left out keys {missing}: {record}")
        return None
    return record


def rate(record, key):
    return "FAILED" if record is None else f"{record[key]:,.1f}"


def ratio(ours, theirs, key):
    if ours is None or theirs is None or not theirs[key]:
        return "-"
    return f"{ours[key] / theirs[key]:.1f}x"


def table_row(db, workers, results):
    ours, theirs = results.get("allsweep"), results.get("optuna")
    return (f"| {db} | {workers} | {rate(ours, 'trials_per_second')} | {rate(theirs, 'trials_per_second')} "
            f"| {ratio(ours, theirs, 'trials_per_second')} | {rate(ours, 'points_per_second')} "
            f"| {rate(theirs, 'points_per_second')} | {ratio(ours, theirs, 'points_per_second')} |")


def calls_note(db, workers, results):
    """Which call dominates each side: the one with the most total client-side time."""
    parts = []
    for system in SYSTEMS:
        record = results.get(system)
        if record is None or not record.get("calls"):
            continue
        calls = record["calls"]
        top = max(calls, key=lambda k: calls[k]["total_s"])
        spent = ", ".join(f"{k} {v['mean_ms']:.1f} ms mean / {v['p99_ms']:.0f} ms p99"
                          for k, v in calls.items())
        extra = ""
        if system == "optuna":
            extra = f"; {record.get('threads')} threads, pool {record.get('pool')}"
            if record.get("errors"):
                extra += f"; {record['errors']} errors (first: {record.get('first_error')})"
        elif record.get("calls", {}).get(top, {}).get("retries"):
            extra = "; retries " + ", ".join(f"{k} {v.get('retries', 0)}" for k, v in calls.items())
        parts.append(f"{system} {record['trials']} trials in {record['seconds']:.1f} s, "
                     f"dominant call {top} ({spent}{extra})")
    return f"- {db}, N={workers}: " + "; ".join(parts)


def versions(records):
    optuna = next((r for r in records if r.get("system") == "optuna"), None)
    parts = []
    if optuna:
        parts.append(f"optuna {optuna.get('optuna')}, SQLAlchemy {optuna.get('sqlalchemy')}")
    try:
        pg = subprocess.run(["psql", "-d", PG_ADMIN, "-Atc", "show server_version"],
                            capture_output=True, text=True, timeout=10)
        if pg.returncode == 0:
            parts.append(f"PostgreSQL {pg.stdout.strip()} on {urllib.parse.urlparse(PG_ADMIN).hostname}")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "; ".join(parts)


def machine_line(records):
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs (shared by clients, coordinator "
            f"and database), {platform.system()} {platform.release()}, Python {platform.python_version()}; "
            f"{versions(records)}; load average at the end {load}")


def main(argv=None):
    args = parse_args(argv)
    if "optuna" in args.systems:
        ensure_python_packages(args)
    if "allsweep" in args.systems:
        build(args)
    raise_open_files(2 * max(args.workers) + 256)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows, notes, records = [], [], []
    with open(args.out, "a") as out:
        index = 0
        for workers in args.workers:
            trials = max(args.trials, workers)
            for db in args.dbs:
                cmds = commands(db, workers, trials, args)
                order = sorted(cmds, reverse=(index % 2 == 1))
                index += 1
                results = {}
                for system in order:
                    record = run_json(cmds[system], args.timeout)
                    results[system] = record
                    if record is not None:
                        record["run"] = run_id
                        records.append(record)
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                rows.append(table_row(db, workers, results))
                notes.append(calls_note(db, workers, results))
    print(f"Coordinator throughput, {args.points} metric points per trial, T = max({args.trials}, N) trials "
          "per run (trials/s and points/s: higher is better; ratio = allsweep / Optuna)")
    print()
    print("| db | workers | allsweep trials/s | Optuna trials/s | ratio "
          "| allsweep points/s | Optuna points/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("Client-side latency per call:")
    print("\n".join(notes))
    capped = [r for r in records if r.get("note")]
    for r in capped:
        print(f"- Optuna {r['db']} N={r['workers']}: {r['note']}")
    print()
    print(machine_line(records))
    print(f"allsweep: the coordinator in-process over gRPC/TCP, one HTTP/2 connection per worker"
          f"{', TCP_NODELAY on the listener (--nodelay)' if args.nodelay else ''}; Optuna: one thread per "
          "worker, one shared study and RDBStorage")
    print(f"raw JSON lines appended to {args.out} (run {run_id})")
    expected = len(rows) * len(args.systems)
    if len(records) != expected:
        sys.exit(f"coordinator: {expected - len(records)} of {expected} runs failed (see above)")


if __name__ == "__main__":
    main()
