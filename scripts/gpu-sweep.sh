#!/usr/bin/env bash
# Part 4 of scripts/gpu-check.sh: a real `allsweep run` of U-Net on DRIVE, Dice vs ALL, 2 seeds,
# bf16, 4 trials at once on the one GPU, stopped 40 s before the part's budget ends so that its
# report (of the trials that completed) still gets written.
#     scripts/gpu-sweep.sh BIN_DIR DEVICE OUT paper|toy BUDGET_SECONDS
set -uo pipefail
bin=$1 device=$2 out=$3 scale=$4
budget=${5:-240}
if [ "$scale" = paper ]; then
  patches=10000 epochs=1 width=32   # the paper's 200,000 patches; its 50 epochs are hours
else
  patches=20 epochs=1 width=8
fi
dir="$out/sweep"
rm -rf "$dir"
mkdir -p "$dir"
cat > "$dir/drive-dice-vs-all.toml" <<TOML
name = "GPU check: U-Net on DRIVE, Dice vs ALL, bf16"
seeds = [0, 1]

[dataset]
kind = "drive"
root = "DRIVE"
patches_per_image = $patches

[model]
arch = "unet"
width = $width

[train]
epochs = $epochs
batch_size = 16
lr = 1e-4
precision = "bf16"

[loss]
kind = "all"

[grid]
loss = [{kind = "dice"}, {kind = "all", gamma = 0.1, omega = 10, epsilon = 0.5}]
TOML
timeout --kill-after=10 $((budget - 40)) "$bin/allsweep" run "$dir/drive-dice-vs-all.toml" \
  --local-workers 1 --slots 4 --device "$device" --dir "$dir"
echo "allsweep run exited with $?"
"$bin/allsweep" report "$dir/drive-dice-vs-all.toml" --db "sqlite://$dir/allsweep.db" \
  --metric jaccard,dice,recall,auc --metrics both --format markdown | tee "$dir/report.md"
