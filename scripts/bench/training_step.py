"""The training-step benchmark: allsweep (Rust/libtorch) against plain PyTorch.

Why this exists: one command that times a full training step (forward, Dice loss,
backward, Adam) of each architecture at each of the paper's input sizes in both
implementations, on the same machine, and reports the ratio. For every (arch, size) it
runs, as separate processes and taking turns (the order flips from one pair to the next),

    target/release/allsweep-worker inspect step --arch A --size HxW --batch B \
        --steps N --warmup W --json
    .venv/bin/python scripts/bench/pytorch_step.py --arch A --size HxW --batch B \
        --steps N --warmup W

then prints a markdown table and a machine line, and appends every raw JSON line to
--out. Run from anywhere; paths are relative to the repository root:

    .venv/bin/python scripts/bench/training_step.py            # the full benchmark
    .venv/bin/python scripts/bench/training_step.py --archs unet --sizes 48x48 --steps 1
    python3 scripts/bench/training_step.py --device cuda --precisions fp32,bf16   # on a GPU
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from cli import csv_list
from machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
PYTORCH_SCRIPT = REPO / "scripts" / "bench" / "pytorch_step.py"
DEFAULT_BIN = REPO / "target" / "release" / "allsweep-worker"
DEFAULT_OUT = REPO / "bench-out" / "training_step.jsonl"
ARCHS = ("unet", "focusnet")
SIZES = ("48x48", "128x128", "192x256")
REQUIRED_KEYS = ("impl", "arch", "height", "width", "batch", "steps",
                 "seconds_per_step_median", "seconds_per_step_mean", "params")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=csv_list(str, ARCHS), default=list(ARCHS))
    p.add_argument("--sizes", type=csv_list(), default=list(SIZES), help="comma list of HxW")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    p.add_argument("--precisions", type=csv_list(str, ("fp32", "bf16", "bf16-cl")), default=["fp32"],
                   help="comma list of fp32, bf16 (bf16: allsweep's precision = bf16, PyTorch autocast), "
                        "bf16-cl (bf16 in the channels-last memory format, both sides)")
    p.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="the allsweep-worker binary")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="raw JSON lines go here")
    p.add_argument("--pytorch-only", action="store_true",
                   help="skip the allsweep side (to test this script without the binary)")
    return p.parse_args(argv)


def require_binary(path):
    """Exit with a clear message when the Rust binary has not been built."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        sys.exit(f"training_step: allsweep binary not found at {path}; "
                 "build it first with `make build` (or pass --bin, or --pytorch-only)")


def steps_for(size, args):
    """Timed steps: at 48x48 a step is short and its time noisy, so take at least 10."""
    h, w = (int(v) for v in size.lower().split("x"))
    return max(args.steps, 10) if h * w <= 48 * 48 else args.steps


def step_args(arch, size, precision, args):
    """Both sides take the same flags; `bf16-cl` is bf16 with --channels-last."""
    layout = ["--channels-last"] if precision.endswith("-cl") else []
    return ["--arch", arch, "--size", size, "--batch", str(args.batch),
            "--steps", str(steps_for(size, args)), "--warmup", str(args.warmup),
            "--device", args.device, "--precision", precision.removesuffix("-cl"), *layout]


def commands(arch, size, precision, args):
    """impl name -> argv for both sides of one (arch, size, precision)."""
    argv = step_args(arch, size, precision, args)
    cmds = {"pytorch": [sys.executable, str(PYTORCH_SCRIPT), *argv]}
    if not args.pytorch_only:
        cmds["allsweep"] = [str(args.bin), "inspect", "step", *argv, "--json"]
    return cmds


def run_json(argv):
    """Run one side; return its last stdout line parsed as JSON (checked for keys)."""
    print(f"+ {' '.join(argv)}", file=sys.stderr, flush=True)
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"training_step: command failed (exit {proc.returncode}):\n"
                 f"{' '.join(argv)}\n{proc.stderr.strip()}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        record = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"training_step: no JSON line from {' '.join(argv)}:\n{proc.stdout}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        sys.exit(f"training_step: {argv[0]} left out keys {missing}: {record}")
    return record


def run_pair(index, arch, size, precision, args):
    """Both sides of one (arch, size, precision); who goes first alternates with `index`."""
    cmds = commands(arch, size, precision, args)
    order = sorted(cmds, reverse=(index % 2 == 1))
    return {impl: run_json(cmds[impl]) for impl in order}


def fmt_seconds(record):
    return "-" if record is None else f"{record['seconds_per_step_median']:.4f}"


def table_row(arch, size, precision, batch, results):
    ours, theirs = results.get("allsweep"), results.get("pytorch")
    ratio = "-"
    if ours is not None and theirs is not None:
        ratio = f"{ours['seconds_per_step_median'] / theirs['seconds_per_step_median']:.2f}"
    return (f"| {arch} | {size} | {precision} | {batch} | {fmt_seconds(ours)} | {fmt_seconds(theirs)} "
            f"| {ratio} |")


def machine_line():
    return (f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; torch threads "
            f"{torch.get_num_threads()}; torch {torch.__version__}")


def main(argv=None):
    args = parse_args(argv)
    if not args.pytorch_only:
        require_binary(args.bin)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out, "a") as out:
        pairs = [(a, s, p) for a in args.archs for s in args.sizes for p in args.precisions]
        for index, (arch, size, precision) in enumerate(pairs):
            results = run_pair(index, arch, size, precision, args)
            for record in results.values():
                out.write(json.dumps(record) + "\n")
                out.flush()
            rows.append(table_row(arch, size, precision, args.batch, results))
    print(f"Device: {args.device}")
    print("| arch | size | precision | batch | allsweep s/step | PyTorch s/step | ratio (allsweep/PyTorch) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(f"{machine_line()}; median of {args.steps} timed steps (10 at 48x48) after {args.warmup} warm-up")
    print(f"raw JSON lines appended to {args.out}")


if __name__ == "__main__":
    main()
