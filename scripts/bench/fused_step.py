"""Fused trials against the same trials alone and as separate processes, in one run.

Why this exists: issue 11's goals are ratios measured on the same machine in the same run.
For each group size N it times, with `allsweep-worker inspect step` (U-Net by default, or
FocusNet with --arch; batch 16 per trial, random data, the trainer's step):
  - one trial alone: its images per second are also those of N trials run one after another;
  - N trials fused into one network (`--fuse N`), one process;
  - N separate processes of one trial each, started together (the sum of their rates).
It reports each as aggregate training images per second, the fused group's ratio to one
trial alone and to the separate processes, and peak memory (the fused process's against the
separate processes' sum). Part of scripts/gpu-check.sh; on the CPU (the default here, at a
small size) it checks the CPU goal: fused no slower than the trials one after another.

    python3 scripts/bench/fused_step.py --bin target/release/allsweep-worker --device cpu
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from cli import csv_list


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", type=Path, required=True, help="the allsweep-worker binary")
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", choices=("unet", "focusnet"), default="unet")
    p.add_argument("--trials", type=csv_list(int), default=[1, 3])
    p.add_argument("--size", default="48x48")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--separate", action=argparse.BooleanOptionalAction, default=True,
                   help="also time N separate processes at once")
    p.add_argument("--budget", type=int, default=300, help="seconds for everything")
    p.add_argument("--out", type=Path, help="write fused.json here")
    return p.parse_args(argv)


def step_argv(args, fuse):
    return [str(args.bin), "inspect", "step", "--arch", args.arch, "--size", args.size, "--width", str(args.width),
            "--batch", str(args.batch), "--device", args.device, "--precision", args.precision,
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--fuse", str(fuse), "--json"]


def measure(args, fuse, copies, deadline):
    """`copies` processes of `inspect step --fuse fuse` at once: their JSON lines, or None."""
    procs = [subprocess.Popen(step_argv(args, fuse), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(copies)]
    rows = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            return None
        if p.returncode != 0:
            print(f"inspect step --fuse {fuse} failed: {err.strip()[-500:]}", file=sys.stderr)
            return None
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main(argv=None):
    args = parse_args(argv)
    deadline = time.time() + args.budget
    alone = measure(args, 1, 1, deadline)
    if not alone:
        print("fused: one trial alone could not be measured", file=sys.stderr)
        return 1
    one = alone[0]["images_per_second"]
    results = []
    for n in args.trials:
        if time.time() > deadline - 5:
            print(f"fused: no time left for {n} trials", file=sys.stderr)
            break
        fused = measure(args, n, 1, deadline) if n > 1 else alone
        separate = measure(args, 1, n, deadline) if (args.separate and n > 1) else None
        row = {
            "trials": n,
            "device": args.device,
            "size": args.size,
            "batch": args.batch,
            "precision": args.precision,
            "one_alone_images_per_second": one,
            "fused_images_per_second": fused[0]["images_per_second"] if fused else None,
            "fused_peak_memory_bytes": fused[0].get("peak_memory_bytes") if fused else None,
            "separate_images_per_second": sum(r["images_per_second"] for r in separate) if separate else None,
            "separate_peak_memory_bytes": (sum(r.get("peak_memory_bytes") or 0 for r in separate)
                                           if separate else None),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fused.json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(table(results)))
    return 0 if results and all(r["fused_images_per_second"] for r in results) else 1


def table(rows):
    """The markdown table of `rows` (shared with gpu_report.py)."""
    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "not measured"

    def mib(b):
        return f"{b / 2**20:.0f}" if b else "not measured"

    def rate(v):
        return f"{v:.1f}" if v else "not measured"

    lines = ["| trials | one alone img/s (= one after another) | fused img/s | fused vs one after another "
             "| N processes img/s | fused vs N processes | peak MiB fused / N processes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        fused, sep = r["fused_images_per_second"], r["separate_images_per_second"]
        lines.append(f"| {r['trials']} | {rate(r['one_alone_images_per_second'])} "
                     f"| {rate(fused)} | {ratio(fused, r['one_alone_images_per_second'])} "
                     f"| {rate(sep)} | {ratio(fused, sep)} "
                     f"| {mib(r['fused_peak_memory_bytes'])} / {mib(r['separate_peak_memory_bytes'])} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
