"""The early-stopping benchmark (issue 12): ASHA and racing against the full grid, and ASHA
against Optuna's SuccessiveHalvingPruner, on the same space, machine and run.

    .venv/bin/python scripts/bench/early_stopping.py            # about 15 minutes on 2 cores
    .venv/bin/python scripts/bench/early_stopping.py --runs 2 --race-runs 1 --parts asha,race

Why: early stopping is worth its complexity only if it finds what the full grid finds for
a fraction of the work. Everything below is real training (`allsweep run`, SQLite, local
workers, the CPU), on the synthetic nuclei set, where the ranking of learning rates is
clear; the DRIVE demo space is too slow for this machine and is left to a GPU.

1. **ASHA.** The full grid once: 9 learning rates x --runs seeds, 27 epochs, Dice loss, no
   early stopping. Its answer is the config with the best mean validation Dice at the last
   epoch, with a 95% interval of that mean. Then, for each sweep seed r, the same 9 configs
   with the grid's seed r, in the order r shuffles them (the order trials arrive in), under
   ASHA (eta 3, 27 epochs, rungs at epochs 3 and 9). A run *finds* the answer when its best
   completed config is the grid's best, or has a grid mean inside the best's interval.
   Reported: the fraction of runs that found it, and the epochs each trained against the
   243 that the grid trains per seed (goal: at most a third).
2. **Racing.** For each sweep seed r, 8 seeds of its own: the full grid over them (9 rates
   x 8 seeds, 9 epochs), and a race over the same seeds (alpha 0.05, min_seeds 3). Found as
   above; reported: seeds x configs run against the grid's 72 (goal: at most half).
3. **Optuna.** For each run r, Optuna (GridSampler over the same 9 rates, its
   SuccessiveHalvingPruner with min_resource 1 and reduction factor 3, 2 jobs) trains the
   same trials with the same trainer: each trial is `allsweep-worker train` to its next
   rung, resumed from its checkpoint (epochs may be raised), reporting the validation
   loss there. allsweep's ASHA run of the same seed ran on 2 local workers. Reported: the
   best validation loss each found, the epochs each trained, and wall time.

Prints a markdown table per part and one JSON line per run into --out
(bench-out/early_stopping.jsonl). Installs optuna into .venv when missing.
"""

import argparse
import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
ALLSWEEP = REPO / "target" / "release" / "allsweep"
WORKER = REPO / "target" / "release" / "allsweep-worker"
DEFAULT_OUT = REPO / "bench-out" / "early_stopping.jsonl"
RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
# Validation Dice (higher is better) at the last epoch: with the Dice loss on 64 images the
# learning rates rank clearly after 9 epochs, and noisily after 1 to 3 (where ASHA judges).
METRIC = "dice"
# ASHA's space: 27 epochs, rungs at 3 and 9 (eta 3). Its first rung comes after the
# epochs where every rate still predicts all foreground (Dice about 0.34 for all).
ASHA_EPOCHS, ASHA_MIN_EPOCHS, ETA = 27, 3, 3
# Student's t 0.975 quantiles for 1..9 degrees of freedom.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262]


def shuffled(rates, r):
    """`rates` in the order sweep seed `r` gives them: the order trials arrive in."""
    import random

    order = list(rates)
    random.Random(r).shuffle(order)
    return order


def base_spec(name, seeds, epochs, images, rates=RATES):
    return f"""name = "{name}"
seeds = {list(seeds)}

[dataset]
kind = "synthetic"
shape = "nuclei"
images = {images}
foreground = 0.2
size = [32, 32]

[model]
arch = "unet"
width = 8

[train]
epochs = {epochs}
batch_size = 4
lr = 1e-3

[loss]
kind = "dice"

[grid]
"train.lr" = {json.dumps(rates)}
"""


def run_sweep(workdir, name, text):
    """`allsweep run` on a fresh directory; returns (wall seconds, database path)."""
    d = workdir / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    spec = d / "spec.toml"
    spec.write_text(text)
    start = time.monotonic()
    done = subprocess.run(
        [str(ALLSWEEP), "run", str(spec), "--dir", str(d / "run"), "--local-workers", "2"],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{name}: allsweep run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, d / "run" / "allsweep.db"


def curves(db):
    """Per trial: (lr, seed, state, {epoch: value of METRIC})."""
    c = sqlite3.connect(db)
    out = {}
    for tid, params, seed, state in c.execute("SELECT id, params_json, seed, state FROM trials"):
        out[tid] = (json.loads(params)["train.lr"], seed, state, {})
    for tid, epoch, value in c.execute("SELECT trial_id, epoch, value FROM metrics WHERE name = ?", (METRIC,)):
        out[tid][3][epoch] = value
    c.close()
    return out


def grid_answer(trials, epochs):
    """The full grid's best lr by mean METRIC at `epochs`, its mean, its 95% half-width,
    and every config's mean."""
    by_lr = {}
    for lr, _, _, values in trials.values():
        by_lr.setdefault(lr, []).append(values[epochs])
    means = {lr: statistics.mean(v) for lr, v in by_lr.items()}
    best = max(means, key=means.get)
    v = by_lr[best]
    half = T975[len(v) - 2] * statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("inf")
    return best, means[best], half, means


def found(lr, answer):
    best, mean, half, means = answer
    return lr == best or abs(means[lr] - mean) <= half


def epochs_trained(trials):
    return sum(len(values) for _, _, _, values in trials.values())


def asha_part(workdir, args, out):
    grid_wall, grid_db = run_sweep(workdir, "asha-grid", base_spec("asha grid", range(args.runs), ASHA_EPOCHS, args.images))
    grid = curves(grid_db)
    answer = grid_answer(grid, ASHA_EPOCHS)
    per_seed = len(RATES) * ASHA_EPOCHS
    rows = []
    for r in range(args.runs):
        # Seed r of the grid's seeds, the configs in the order sweep seed r draws them.
        text = base_spec(f"asha {r}", [r], ASHA_EPOCHS, args.images, shuffled(RATES, r))
        text += (f'\n[search.early_stopping]\nkind = "asha"\nmetric = "{METRIC}"\n'
                 f'min_epochs = {args.asha_min_epochs}\nreduction_factor = {ETA}\n')
        wall, db = run_sweep(workdir, f"asha-{r}", text)
        trials = curves(db)
        completed = [(values[ASHA_EPOCHS], lr) for lr, _, state, values in trials.values() if state == "completed"]
        value, lr = max(completed)
        row = {"part": "asha", "run": r, "seed": r, "best_lr": lr, "best_value": value,
               "found": found(lr, answer), "epochs": epochs_trained(trials), "grid_epochs": per_seed, "wall_s": wall}
        rows.append(row)
        out.write(json.dumps(row) + "\n")
    rungs = ", ".join(str(args.asha_min_epochs * ETA**k) for k in range(3) if args.asha_min_epochs * ETA**k < ASHA_EPOCHS)
    print(f"\n### ASHA (eta {ETA}, rungs at epochs {rungs} of {ASHA_EPOCHS}) vs the full grid\n")
    print(f"Full grid: 9 rates x {args.runs} seeds x {ASHA_EPOCHS} epochs in {grid_wall:.0f} s; best lr {answer[0]:g}, "
          f"mean {METRIC} {answer[1]:.4f} ± {answer[2]:.4f} (95%)\n")
    print(f"| run | seed | best lr found (its grid mean) | in the grid's best CI | epochs (of {per_seed}) | wall s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['seed']} | {row['best_lr']:g} ({answer[3][row['best_lr']]:.4f}) | "
              f"{'yes' if row['found'] else 'no'} | {row['epochs']} ({row['epochs'] / per_seed:.2f}) | {row['wall_s']:.0f} |")
    share = sum(r["found"] for r in rows) / len(rows)
    mean_share = statistics.mean(r["epochs"] for r in rows) / per_seed
    print(f"\nFound in {share:.0%} of runs; mean epochs {mean_share:.2f} of the grid's.")
    return answer, rows


def race_part(workdir, args, out):
    seeds, epochs = 8, 9
    rows = []
    for r in range(args.race_runs):
        # Sweep seed r: 8 seeds of its own; the full grid over them gives the answer.
        chosen = range(1000 + r * seeds, 1000 + (r + 1) * seeds)
        grid_wall, grid_db = run_sweep(workdir, f"race-grid-{r}", base_spec(f"race grid {r}", chosen, epochs, args.images))
        answer = grid_answer(curves(grid_db), epochs)
        text = base_spec(f"race {r}", chosen, epochs, args.images)
        text += f'\n[search.early_stopping]\nkind = "race"\nmetric = "{METRIC}"\nmin_seeds = 3\n'
        wall, db = run_sweep(workdir, f"race-{r}", text)
        trials = curves(db)
        by_lr = {}
        for lr, _, state, values in trials.values():
            if state == "completed":
                by_lr.setdefault(lr, []).append(values[epochs])
        run = sum(len(v) for v in by_lr.values())
        # The race's winner: the config that got every seed with the best mean.
        full = {lr: statistics.mean(v) for lr, v in by_lr.items() if len(v) == seeds}
        lr = max(full, key=full.get)
        row = {"part": "race", "run": r, "best_lr": lr, "found": found(lr, answer), "trials_run": run,
               "grid_trials": len(RATES) * seeds, "wall_s": wall, "grid_wall_s": grid_wall,
               "grid_best_lr": answer[0], "grid_best_mean": answer[1], "grid_best_ci95": answer[2]}
        rows.append(row)
        out.write(json.dumps(row) + "\n")
    total = len(RATES) * seeds
    print(f"\n### Racing (alpha 0.05, min_seeds 3) vs the full grid, 9 rates x {seeds} seeds x {epochs} epochs\n")
    print(f"| run | grid's best lr (mean ± 95%) | race winner | in the best's CI | seeds x configs run (of {total}) | wall s (grid) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['grid_best_lr']:g} ({row['grid_best_mean']:.4f} ± {row['grid_best_ci95']:.4f}) | "
              f"{row['best_lr']:g} | {'yes' if row['found'] else 'no'} | "
              f"{row['trials_run']} ({row['trials_run'] / total:.2f}) | {row['wall_s']:.0f} ({row['grid_wall_s']:.0f}) |")
    share = sum(r["found"] for r in rows) / len(rows)
    print(f"\nFound in {share:.0%} of runs; mean {statistics.mean(r['trials_run'] for r in rows) / total:.2f} of the grid's seeds x configs.")


def optuna_part(workdir, args, out, asha_rows):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rungs = [args.asha_min_epochs * ETA**k for k in range(3) if args.asha_min_epochs * ETA**k < ASHA_EPOCHS]
    rungs.append(ASHA_EPOCHS)
    rows = []
    for r in range(args.runs):
        seed = r
        d = workdir / f"optuna-{r}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        epochs = {"n": 0}

        def objective(trial):
            lr = trial.suggest_categorical("lr", RATES)
            t = d / f"t{trial.number}"
            t.mkdir()
            value = None
            for epoch in rungs:
                text = base_spec("optuna", [seed], epoch, args.images).split("\n[grid]")[0]
                text = text.replace(f"seeds = [{seed}]", f"seed = {seed}").replace("lr = 1e-3", f"lr = {lr}")
                (t / "run.toml").write_text(text)
                command = [str(WORKER), "train", str(t / "run.toml"), "--device", "cpu", "--threads", "1", "--quiet",
                           "--checkpoint", str(t / "run.ckpt"), "--metrics-out", str(t / f"m{epoch}.jsonl")]
                if (t / "run.ckpt").exists():
                    command += ["--resume", str(t / "run.ckpt")]
                subprocess.run(command, check=True, capture_output=True)
                for line in (t / f"m{epoch}.jsonl").read_text().splitlines():
                    event = json.loads(line)
                    if event.get("event") == "epoch":
                        epochs["n"] += 1
                        record = event["record"]
                        if record["epoch"] == epoch:
                            value = record["validation"][METRIC]
                trial.report(value, epoch)
                if epoch < rungs[-1] and trial.should_prune():
                    raise optuna.TrialPruned()
            return value

        sampler = optuna.samplers.GridSampler({"lr": RATES}, seed=r)
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=args.asha_min_epochs, reduction_factor=ETA, min_early_stopping_rate=0
        )
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
        start = time.monotonic()
        study.optimize(objective, n_trials=len(RATES), n_jobs=2)
        wall = time.monotonic() - start
        ours = asha_rows[r]
        row = {"part": "optuna", "run": r, "seed": seed, "optuna_best": study.best_value,
               "optuna_best_lr": study.best_params["lr"], "optuna_epochs": epochs["n"], "optuna_wall_s": wall,
               "allsweep_best": ours["best_value"], "allsweep_best_lr": ours["best_lr"],
               "allsweep_epochs": ours["epochs"], "allsweep_wall_s": ours["wall_s"]}
        rows.append(row)
        out.write(json.dumps(row) + "\n")
    print("\n### allsweep ASHA vs Optuna SuccessiveHalvingPruner (same 9 rates, seed, trainer, 2 workers)\n")
    print("| run | allsweep best (lr) | epochs | wall s | Optuna best (lr) | epochs | wall s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['allsweep_best']:.4f} ({row['allsweep_best_lr']:g}) | {row['allsweep_epochs']} | "
              f"{row['allsweep_wall_s']:.0f} | {row['optuna_best']:.4f} ({row['optuna_best_lr']:g}) | "
              f"{row['optuna_epochs']} | {row['optuna_wall_s']:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="sweep seeds of ASHA and Optuna (default 5)")
    parser.add_argument("--race-runs", type=int, default=3, help="sweep seeds of the race (default 3)")
    parser.add_argument("--asha-min-epochs", type=int, default=ASHA_MIN_EPOCHS, help="ASHA's (and Optuna's) first rung (default 3)")
    parser.add_argument("--images", type=int, default=64, help="synthetic images per trial (default 64)")
    parser.add_argument("--parts", default="asha,race,optuna", help="comma-separated: asha, race, optuna")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not (ALLSWEEP.exists() and WORKER.exists()):
        sys.exit("build first: make build")
    if "optuna" in parts:
        try:
            import optuna  # noqa: F401
        except ImportError:
            subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "optuna"], check=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="allsweep-es-bench-"))
    try:
        with open(args.out, "a") as out:
            asha_rows = None
            if "asha" in parts or "optuna" in parts:
                _, asha_rows = asha_part(workdir, args, out)
            if "race" in parts:
                race_part(workdir, args, out)
            if "optuna" in parts:
                optuna_part(workdir, args, out, asha_rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} cores; synthetic nuclei 32x32, {args.images} images, U-Net width 8.")


if __name__ == "__main__":
    main()
