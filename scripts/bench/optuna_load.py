"""Optuna's RDB storage under the coordinator load test's workload, for comparison.

The same workload as `coordinator/examples/load/`: T trials, each reporting P metric
points, worked through by N concurrent workers, timed from the first trial to the last
completion. Here a worker is a thread sharing one study and one RDBStorage (what
`study.optimize(n_jobs=N)` does), looping:

    trial = study.ask()
    trial.suggest_int("seed", i, i)          # a fixed parameter: no sampling cost
    for step in range(P): trial.report(value, step)
    study.tell(trial, value)

until T trials are done. The sampler is `RandomSampler(seed=0)`, which the single-value
distribution above never calls, so sampling costs nothing on either side (allsweep hands
out trials resolved at submit time). Each intermediate value is one storage write, as
Optuna stores them; allsweep sends its points in batches of 10.

Storage: `--db sqlite` makes a fresh file in a temp dir (`sqlite:///PATH`, Optuna's
defaults: rollback journal, unless --sqlite-wal); `--db postgres` creates a fresh
database on --pg-admin's server (default: ALLSWEEP_TEST_POSTGRES, as the load example
and the tests, else postgresql://postgres@127.0.0.1:5432/test) and drops it afterwards.
The SQLAlchemy pool holds --pool connections (default 16, as allsweep's Postgres pool;
never more than the threads), with a long checkout timeout so that 1000 threads queue
for them instead of failing. With more workers than --max-threads, only --max-threads
threads run and the output says so ("threads" and "note").

Verifies through a fresh RDBStorage that exactly T trials are COMPLETE with T*P
intermediate values, and prints one JSON line (exit 1 on failure):

    {"system":"optuna","db":"sqlite","workers":N,"threads":N,"trials":T,"points":T*P,
     "seconds":s,"trials_per_second":..,"points_per_second":..,"calls":{..},..}

Installs nothing: needs optuna, sqlalchemy and (for Postgres) psycopg2 in this Python.

    .venv/bin/python scripts/bench/optuna_load.py --db sqlite --workers 10 --trials 200 --points 20
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time

import optuna
import sqlalchemy

DEFAULT_PG_ADMIN = os.environ.get("ALLSWEEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--workers", type=int, default=10)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--max-threads", type=int, default=1000,
                   help="at most this many worker threads (default 1000)")
    p.add_argument("--pool", type=int, default=16,
                   help="SQLAlchemy pool size (capped at the thread count)")
    p.add_argument("--sqlite-wal", action="store_true",
                   help="put the SQLite file in WAL mode with synchronous=NORMAL (allsweep's settings)")
    p.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN,
                   help="Postgres URL (psycopg2 form) on whose server the fresh database is created")
    args = p.parse_args(argv)
    if args.workers < 1 or args.trials < 1 or args.points < 0 or args.max_threads < 1 or args.pool < 1:
        p.error("--workers, --trials, --max-threads and --pool must be at least 1, --points at least 0")
    return args


class Database:
    """A fresh database: a SQLite file in a temp dir, or a Postgres database dropped on close."""

    def __init__(self, args):
        self.kind = args.db
        self.tmp = None
        self.pg_name = None
        self.pg_admin = args.pg_admin
        if args.db == "sqlite":
            self.tmp = tempfile.TemporaryDirectory(prefix="optuna-load")
            self.url = f"sqlite:///{os.path.join(self.tmp.name, 'optuna.db')}"
        else:
            self.pg_name = f"optuna_load_{os.getpid()}_{time.time_ns() % 1_000_000_000}"
            self._admin(f"CREATE DATABASE {self.pg_name}")
            base = args.pg_admin.rsplit("/", 1)[0].split("://", 1)[1]
            self.url = f"postgresql+psycopg2://{base}/{self.pg_name}"

    def _admin(self, statement):
        import psycopg2

        conn = psycopg2.connect(self.pg_admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def close(self):
        if self.pg_name:
            try:
                self._admin(f"DROP DATABASE IF EXISTS {self.pg_name} WITH (FORCE)")
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the result
                print(f"optuna_load: could not drop database {self.pg_name}: {e}", file=sys.stderr)
        if self.tmp:
            self.tmp.cleanup()


def engine_kwargs(args, threads):
    # RDBStorage opens two connections at once while it starts (its version check).
    pool = max(2, min(args.pool, threads))
    kwargs = {"pool_size": pool, "max_overflow": 0, "pool_timeout": 3600}
    if args.db == "sqlite":
        # The default 5 s busy timeout fails writers under contention; wait instead.
        kwargs["connect_args"] = {"timeout": 600, "check_same_thread": False}
    return kwargs, pool


def enable_wal(engine):
    @sqlalchemy.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def summary(durations):
    """Count and latency (ms) of one kind of call, as the worker thread sees it."""
    durations = sorted(durations)
    n = len(durations)

    def at(q):
        return durations[round((n - 1) * q)] * 1e3 if n else 0.0

    total = sum(durations)
    return {"n": n, "mean_ms": round(total / n * 1e3, 3) if n else 0.0,
            "p50_ms": round(at(0.5), 3), "p99_ms": round(at(0.99), 3), "max_ms": round(at(1.0), 3),
            "total_s": round(total, 3)}


def run(args, db):
    threads = min(args.workers, args.max_threads)
    kwargs, pool = engine_kwargs(args, threads)
    storage = optuna.storages.RDBStorage(db.url, engine_kwargs=kwargs)
    if args.db == "sqlite" and args.sqlite_wal:
        storage.engine.dispose()
        enable_wal(storage.engine)
    study = optuna.create_study(storage=storage, study_name="load", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    lock = threading.Lock()
    todo = list(range(args.trials - 1, -1, -1))  # popped from the end: 0, 1, 2, ...
    start = threading.Barrier(threads + 1)
    stats = {"ask": [], "report": [], "tell": []}
    errors = []
    state = {"completed": 0, "first": None, "last": None, "retries": 0}

    def worker(index):
        times = {"ask": [], "report": [], "tell": []}
        completed, first, last = 0, None, None
        start.wait()
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            trial = None
            try:
                t = time.perf_counter()
                if first is None:
                    first = t
                trial = study.ask()
                trial.suggest_int("seed", i, i)
                times["ask"].append(time.perf_counter() - t)
                value = (index + 1) / 1000.0
                for step in range(args.points):
                    t = time.perf_counter()
                    trial.report(value + step * 1e-3, step)
                    times["report"].append(time.perf_counter() - t)
                t = time.perf_counter()
                study.tell(trial, value)
                times["tell"].append(time.perf_counter() - t)
                completed += 1
                last = time.perf_counter()
            except Exception as e:  # noqa: BLE001 - counted, reported, and the trial redone
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:300])
                    state["retries"] += 1
                    if state["retries"] > 10 * args.trials:
                        break
                    todo.append(i)
                if trial is not None:
                    try:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    except Exception:  # noqa: BLE001
                        pass
        with lock:
            for k, v in times.items():
                stats[k].extend(v)
            state["completed"] += completed
            if first is not None and (state["first"] is None or first < state["first"]):
                state["first"] = first
            if last is not None and (state["last"] is None or last > state["last"]):
                state["last"] = last

    pool_threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for th in pool_threads:
        th.start()
    start.wait()
    for th in pool_threads:
        th.join()
    # From the first trial asked for to the last one told.
    seconds = (state["last"] or 0.0) - (state["first"] or 0.0)
    storage.engine.dispose()

    # Verify from the database, not from the cache.
    check = optuna.storages.RDBStorage(db.url, skip_compatibility_check=True)
    study_id = check.get_study_id_from_name("load")
    trials = check.get_all_trials(study_id, deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    points = sum(len(t.intermediate_values) for t in complete)
    check.engine.dispose()
    expected = args.trials * args.points
    if len(complete) != args.trials or points != expected or state["completed"] != args.trials:
        raise SystemExit(
            f"optuna_load: verification failed: {len(complete)} COMPLETE trials of {len(trials)} "
            f"(expected {args.trials}), {points} intermediate values (expected {expected}); "
            f"{len(errors)} errors, first: {errors[:3]}")

    note = None
    if threads < args.workers:
        note = f"{args.workers} workers asked, {threads} threads run (--max-threads)"
    line = {
        "system": "optuna", "db": args.db, "workers": args.workers, "threads": threads,
        "trials": args.trials, "points": expected,
        "seconds": round(seconds, 3),
        "trials_per_second": round(args.trials / seconds, 3),
        "points_per_second": round(expected / seconds, 3),
        "points_per_trial": args.points,
        "pool": pool,
        "sqlite_journal": ("wal" if args.sqlite_wal else "default") if args.db == "sqlite" else None,
        "errors": len(errors),
        "retried_trials": state["retries"],
        "first_error": errors[0] if errors else None,
        "optuna": optuna.__version__, "sqlalchemy": sqlalchemy.__version__,
        "calls": {k: summary(v) for k, v in stats.items()},
    }
    if note:
        line["note"] = note
    return line


def main(argv=None):
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A timeout's SIGTERM still drops the Postgres database (through the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("optuna_load: terminated"))
    db = Database(args)
    try:
        line = run(args, db)
    finally:
        db.close()
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
