"""The GPU check's summary: gpu-check.json and the Markdown that goes to the README.

Why this exists: scripts/gpu-check.sh runs five parts that each leave their own files in OUT;
this reads them (parts.jsonl, machine.txt, step.jsonl, packing.json, fused.json, sweep/report.md) and writes
one JSON record and one Markdown page, marking what a part did not measure as "not measured".

    python3 scripts/bench/gpu_report.py OUT > OUT/gpu-check.md
"""

import json
import sys
import time
from pathlib import Path

import fused_step


def read_lines(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def step_table(records):
    """One row per (arch, size, precision): both sides, their ratio, and bf16 against fp32 PyTorch."""
    by_key, memory = {}, {}
    for r in records:
        key = (r["arch"], f"{r['height']}x{r['width']}", r.get("precision", "fp32"))
        by_key.setdefault(key, {})[r["impl"]] = r["seconds_per_step_median"]
        if r["impl"] == "allsweep":
            memory[key] = (r.get("peak_memory_bytes"), r.get("estimated_memory_bytes"))
    lines = ["| arch | size | precision | allsweep s/step | PyTorch s/step | allsweep/PyTorch | PyTorch fp32 / allsweep "
             "| peak MiB measured | MiB estimated |",
             "|---|---|---|---|---|---|---|---|---|"]
    mib = lambda v: f"{v / 2**20:.0f}" if v else "not measured"
    for (arch, size, precision), sides in sorted(by_key.items()):
        ours, theirs = sides.get("allsweep"), sides.get("pytorch")
        fp32 = by_key.get((arch, size, "fp32"), {}).get("pytorch")
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "not measured"
        speedup = f"{fp32 / ours:.2f}x" if ours and fp32 else "not measured"
        fmt = lambda v: f"{v:.4f}" if v else "not measured"
        measured, estimated = memory.get((arch, size, precision), (None, None))
        lines.append(f"| {arch} | {size} | {precision} | {fmt(ours)} | {fmt(theirs)} | {ratio} | {speedup} "
                     f"| {mib(measured)} | {mib(estimated)} |")
    return lines


def main(out):
    out = Path(out)
    parts = read_lines(out / "parts.jsonl")
    steps = read_lines(out / "step.jsonl")
    packing = json.loads((out / "packing.json").read_text()) if (out / "packing.json").exists() else []
    fused = json.loads((out / "fused.json").read_text()) if (out / "fused.json").exists() else []
    machine = (out / "machine.txt").read_text().strip() if (out / "machine.txt").exists() else "unknown"
    report = (out / "sweep" / "report.md").read_text().strip() if (out / "sweep" / "report.md").exists() else ""
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "parts": parts, "step": steps,
               "packing": packing, "fused": fused, "sweep_report": report}
    (out / "gpu-check.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"GPU check of {summary['date']} on: {machine.splitlines()[0] if machine else 'unknown'}\n")
    print("| part | status | seconds |\n|---|---|---|")
    for p in parts:
        print(f"| {p['part']} | {p['status']} | {p['seconds']} |")
    print("\nTraining step (forward, Dice loss, backward, Adam; batch 16; median):\n")
    print("\n".join(step_table(steps)) if steps else "not measured")
    print("\nTrials packed on one GPU (DRIVE U-Net, bf16):\n")
    if packing:
        one = packing[0]["aggregate_images_per_second"] or 0
        print("| trials at once | finished | aggregate img/s | vs one | GPU util mean % | GPU memory max MiB |")
        print("|---|---|---|---|---|---|")
        for r in packing:
            ratio = f"{r['aggregate_images_per_second'] / one:.2f}" if one else "not measured"
            print(f"| {r['trials']} | {r['finished']} | {r['aggregate_images_per_second']:.0f} | {ratio} "
                  f"| {r['gpu_utilisation_mean'] if r['gpu_utilisation_mean'] is not None else 'not measured'} "
                  f"| {r['gpu_memory_used_max_mib'] if r['gpu_memory_used_max_mib'] is not None else 'not measured'} |")
    else:
        print("not measured")
    print("\nFused trials (U-Net 48x48, batch 16 per trial, bf16; one network against one trial alone "
          "and against N separate processes):\n")
    print("\n".join(fused_step.table(fused)) if fused else "not measured")
    print("\nSweep (allsweep run, U-Net on DRIVE, Dice vs ALL, bf16):\n")
    print(report or "not measured")


if __name__ == "__main__":
    main(sys.argv[1])
