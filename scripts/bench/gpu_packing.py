"""Packing trials on one GPU: N concurrent DRIVE U-Net trials against one alone.

Why this exists: a U-Net on 48x48 patches at batch 16 leaves a large GPU mostly idle, and the
coordinator may give one GPU several trials (--slots). This measures what that buys: for each N
it starts N `allsweep-worker train` processes at once (different seeds, same config), samples
the GPU with nvidia-smi while they run, and reports the aggregate training images per second
(the sum of each trial's last-epoch rate), the GPU's utilisation and its memory in use. Part 3
of scripts/gpu-check.sh; runs on a CPU too (--device cpu), where it only checks itself.

    python3 scripts/bench/gpu_packing.py --bin gpu-bundle/bin/allsweep-worker --out OUT
"""

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from cli import csv_list

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", type=Path, required=True, help="the allsweep-worker binary")
    p.add_argument("--device", default="cuda")
    p.add_argument("--trials", type=csv_list(int), default=[1, 2, 4, 8])
    p.add_argument("--patches", type=int, default=2000, help="DRIVE patches per image")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--budget", type=int, default=120, help="seconds for all the runs together")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def run_toml(seed, args):
    return f"""name = "packing {seed}"
seed = {seed}
[dataset]
kind = "drive"
root = "DRIVE"
patches_per_image = {args.patches}
[model]
arch = "unet"
[train]
epochs = {args.epochs}
batch_size = 16
precision = "{args.precision}"
[loss]
kind = "dice"
"""


class GpuSampler(threading.Thread):
    """nvidia-smi every half second: utilisation (%) and memory in use (MiB)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples, self.stop = [], threading.Event()

    def run(self):
        if shutil.which("nvidia-smi") is None:
            return
        while not self.stop.is_set():
            query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
            line = subprocess.run(query, capture_output=True, text=True).stdout.strip().splitlines()
            if line:
                util, mem = (float(v) for v in line[0].split(","))
                self.samples.append((util, mem))
            self.stop.wait(0.5)


def last_epoch_rate(metrics_file):
    rate = None
    for line in metrics_file.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "epoch":
            rate = event["record"]["train_images_per_second"]
    return rate


def run_n(n, args, deadline):
    work = args.out / "packing" / f"n{n}"
    work.mkdir(parents=True, exist_ok=True)
    procs = []
    sampler = GpuSampler()
    sampler.start()
    start = time.time()
    for i in range(n):
        config = work / f"trial{i}.toml"
        config.write_text(run_toml(i, args))
        argv = [str(args.bin), "train", str(config), "--device", args.device, "--quiet",
                "--checkpoint", str(work / f"trial{i}.ckpt"), "--metrics-out", str(work / f"trial{i}.jsonl")]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(work / f"trial{i}.log", "w")))
    finished = True
    for p in procs:
        try:
            p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            finished = False
    for p in procs:
        if p.poll() is None:
            p.kill()
    sampler.stop.set()
    sampler.join()
    rates = [last_epoch_rate(work / f"trial{i}.jsonl") if (work / f"trial{i}.jsonl").exists() else None
             for i in range(n)]
    util = [u for u, _ in sampler.samples]
    return {
        "trials": n,
        "finished": finished and all(p.returncode == 0 for p in procs),
        "seconds": round(time.time() - start, 1),
        "images_per_second_per_trial": rates,
        "aggregate_images_per_second": sum(r for r in rates if r is not None),
        "gpu_utilisation_mean": round(sum(util) / len(util), 1) if util else None,
        "gpu_utilisation_max": max(util) if util else None,
        "gpu_memory_used_max_mib": max((m for _, m in sampler.samples), default=None),
    }


def main(argv=None):
    args = parse_args(argv)
    deadline = time.time() + args.budget
    rows = []
    for n in args.trials:
        if time.time() > deadline - 10:
            print(f"packing: no time left for {n} trials", file=sys.stderr)
            break
        # Each N gets an equal share of what is left.
        share = (deadline - time.time()) / (len(args.trials) - len(rows))
        rows.append(run_n(n, args, time.time() + share))
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "packing.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("| trials at once | finished | aggregate img/s | vs one | GPU util mean/max % | GPU memory max MiB |")
    print("|---|---|---|---|---|---|")
    one = rows[0]["aggregate_images_per_second"] if rows else 0
    for r in rows:
        ratio = f"{r['aggregate_images_per_second'] / one:.2f}" if one else "-"
        print(f"| {r['trials']} | {r['finished']} | {r['aggregate_images_per_second']:.0f} | {ratio} "
              f"| {r['gpu_utilisation_mean']}/{r['gpu_utilisation_max']} | {r['gpu_memory_used_max_mib']} |")
    return 0 if rows and all(r["finished"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
