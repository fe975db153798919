"""The data-path benchmark: how much the whole training loop costs beyond the bare step.

Why this exists: `allsweep-worker train` adds batch assembly from the cached data set, the
loss read-back that catches divergence, progress events and checkpoints around the step the
training-step benchmark times. This runs, in one go on the same machine,

  1. the bare step:  allsweep-worker inspect step --arch A --size HxW --batch 16 --json
  2. the whole loop: allsweep-worker train RUN.toml (2 epochs; the second, warm, is read)

and reports images per second of each and the loop's overhead (goal: at most 10%).

    .venv/bin/python scripts/bench/data_path.py [--steps 20]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "target" / "release" / "allsweep-worker"

# (label, arch, size, dataset table, samples per epoch for --steps steps of batch 16)
CASES = [
    ("DRIVE patches", "unet", (48, 48), 'kind = "drive"\nroot = "DRIVE"\nlimit = 5\n'),
    ("synthetic nuclei (DSB-like)", "unet", (128, 128), 'kind = "synthetic"\nshape = "nuclei"\nsize = [128, 128]\n'),
]


def run(cmd):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout


def bare_step(arch, size, steps):
    out = run([BIN, "inspect", "step", "--arch", arch, "--size", f"{size[0]}x{size[1]}", "--batch", "16",
               "--steps", str(steps), "--warmup", "1", "--device", "cpu", "--json"])
    return 16 / json.loads(out)["seconds_per_step_median"]


def whole_loop(arch, dataset, steps, workdir):
    samples = 16 * steps
    if "drive" in dataset:
        # 4 of 5 images train: patches per image so that an epoch has `steps` steps.
        dataset += f"patches_per_image = {samples // 4}\n"
    else:
        dataset += f"images = {round(samples / 0.8)}\n"
    config = Path(workdir) / f"{arch}.toml"
    config.write_text(f'name = "data path"\nseed = 0\n[dataset]\n{dataset}[model]\narch = "{arch}"\n'
                      '[train]\nepochs = 2\nbatch_size = 16\n[loss]\nkind = "all"\n')
    metrics = Path(workdir) / f"{arch}.jsonl"
    run([BIN, "train", config, "--quiet", "--device", "cpu", "--metrics-out", metrics,
         "--checkpoint", Path(workdir) / f"{arch}.ckpt"])
    epochs = [json.loads(l)["record"] for l in metrics.read_text().splitlines() if '"epoch"' in l and '"record"' in l]
    return epochs[-1]["train_images_per_second"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="steps per measurement")
    args = p.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run `make build` first")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for label, arch, size, dataset in CASES:
            steps = args.steps if size[0] <= 48 else max(3, args.steps // 4)
            bare = bare_step(arch, size, steps)
            loop = whole_loop(arch, dataset, steps, workdir)
            rows.append((label, arch, size, bare, loop))
    print("| data | arch | size | bare step img/s | whole loop img/s | overhead |")
    print("|---|---|---|---|---|---|")
    for label, arch, size, bare, loop in rows:
        print(f"| {label} | {arch} | {size[0]}x{size[1]} | {bare:.1f} | {loop:.1f} | {100 * (1 - loop / bare):+.1f}% |")


if __name__ == "__main__":
    main()
