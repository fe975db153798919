#!/usr/bin/env bash
# The GPU check: run on a GPU machine (through the device tool) from the repository root, with
# gpu-bundle/ (scripts/gpu-bundle.sh) beside it; needs no Rust there, only that machine's
# python3 with torch 2.11. Writes gpu-check.json, gpu-check.md and the logs of every part to
# $OUT (default gpu-check-out/). Each part has its own time budget, so the whole check ends
# within about 8 minutes, and a part that fails or runs out of time is recorded as such while
# the others still run.
#
#   1. the trainer's unit tests on CUDA (ALLSWEEP_TEST_DEVICE=cuda);
#   2. the training step, allsweep against PyTorch eager, U-Net and FocusNet at 48x48, 128x128
#      and 192x256, fp32, bf16 (PyTorch: autocast bf16) and bf16 channels-last, each with its
#      measured peak memory beside allsweep's estimate;
#   3. N concurrent DRIVE U-Net trials on the one GPU against one alone: aggregate images per
#      second, GPU utilisation and memory;
#   4. fused groups of N U-Net trials (one network, --fuse N) against one trial alone and
#      against N separate processes: aggregate images per second and peak memory;
#   5. a real `allsweep run` of U-Net on DRIVE, Dice vs ALL, 2 seeds, the paper's patch count,
#      bf16, for as many epochs as the budget allows, and its report.
#
#     bash scripts/gpu-check.sh              # on the GPU machine
#     bash scripts/gpu-check.sh --dry-run    # here, on the CPU, at toy sizes: checks the script
set -uo pipefail
cd "$(dirname "$0")/.."
dry_run=false
[ "${1:-}" = "--dry-run" ] && dry_run=true
out=${OUT:-gpu-check-out}
mkdir -p "$out"
bundle=gpu-bundle
bin=$bundle/bin
if $dry_run; then
  python=${PYTHON:-.venv/bin/python}
  device=cpu
else
  python=${PYTHON:-python3}
  device=cuda
fi
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ALLSWEEP_DATA="$PWD/$bundle/data"
started=$(date +%s)
results="$out/parts.jsonl"
: > "$results"

# record PART STATUS SECONDS: one line of parts.jsonl.
record() {
  printf '{"part": "%s", "status": "%s", "seconds": %s}\n' "$1" "$2" "$3" >> "$results"
}

# part NAME BUDGET_SECONDS COMMAND...: runs one part under its budget, logs to $out/NAME.log.
part() {
  local name=$1 budget=$2
  shift 2
  local t0 status
  t0=$(date +%s)
  echo "== $name (budget ${budget}s)"
  timeout --kill-after=10 "$budget" "$@" > "$out/$name.log" 2>&1
  case $? in
    0) status=passed ;;
    124 | 137) status=timed_out ;;
    *) status=failed ;;
  esac
  record "$name" "$status" $(($(date +%s) - t0))
  echo "   $status; log: $out/$name.log"
  tail -n 3 "$out/$name.log"
}

machine() {
  if command -v nvidia-smi > /dev/null && ! $dry_run; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  else
    echo "no GPU (dry run on $(nproc) CPUs)"
  fi
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  cat "$bundle/commit" 2> /dev/null
}
machine > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

# 1. The trainer's tests on the device.
if $dry_run; then
  part tests 120 env ALLSWEEP_TEST_DEVICE=cpu "$bin/worker-tests" --test-threads 1 train::protocol metrics::keras
else
  part tests 90 env ALLSWEEP_TEST_DEVICE=cuda "$bin/worker-tests" --test-threads 1 train:: metrics:: losses::
fi

# 2. The training step against PyTorch eager, same machine, same run.
if $dry_run; then
  part step 120 "$python" scripts/bench/training_step.py --device cpu --archs unet --sizes 48x48 \
    --precisions fp32,bf16,bf16-cl --steps 1 --warmup 0 --bin "$bin/allsweep-worker" --out "$out/step.jsonl"
else
  part step 160 "$python" scripts/bench/training_step.py --device cuda --precisions fp32,bf16,bf16-cl \
    --steps 20 --warmup 5 --bin "$bin/allsweep-worker" --out "$out/step.jsonl"
fi

# 3. N concurrent DRIVE U-Net trials against one, with the GPU sampled meanwhile (the script
#    keeps its own budget and writes what it measured before it runs out).
t0=$(date +%s)
echo "== packing"
$python scripts/bench/gpu_packing.py --bin "$bin/allsweep-worker" --device "$device" --out "$out" \
  $($dry_run && echo "--trials 1,2 --patches 20 --epochs 1 --budget 100" || echo "--patches 1000 --budget 100") \
  > "$out/packing.log" 2>&1
status=$?
record packing "$([ $status = 0 ] && echo passed || echo failed)" $(($(date +%s) - t0))
tail -n 12 "$out/packing.log"

# 4. Fused groups against one trial alone and against N separate processes.
if $dry_run; then
  part fused 120 "$python" scripts/bench/fused_step.py --bin "$bin/allsweep-worker" --device cpu --size 32x32 \
    --width 8 --batch 4 --trials 1,2 --steps 1 --warmup 0 --budget 100 --out "$out"
else
  part fused 100 "$python" scripts/bench/fused_step.py --bin "$bin/allsweep-worker" --device cuda --size 48x48 \
    --batch 16 --precision bf16 --trials 1,4,8,16 --steps 20 --warmup 5 --budget 90 --out "$out"
fi

# 5. A real sweep at the paper's scale, as far as the rest of the 8 minutes goes.
left=$((460 - ($(date +%s) - started)))
if [ "$left" -gt 60 ]; then
  part sweep "$left" bash scripts/gpu-sweep.sh "$bin" "$device" "$out" "$($dry_run && echo toy || echo paper)" "$left"
else
  record sweep skipped 0
fi

$python scripts/bench/gpu_report.py "$out" > "$out/gpu-check.md"
cat "$out/gpu-check.md"
