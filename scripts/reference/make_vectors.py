"""Generate the loss/metric test vectors in worker/tests/vectors/.

Why this exists: the Rust worker's losses and metrics are checked against values and
gradients produced by the independent PyTorch reference (losses.py, metrics.py). This
script builds a handful of deterministic cases (fixed numpy seeds, float64), evaluates
every loss configuration on each with torch autograd in float64, and writes:

    <case>/pred.npy, <case>/target.npy         inputs, float64, shape [N, 1, H, W]
    <case>/<loss_id>.grad.npy                  d loss / d pred, float64
    manifest.json                              configs, values, metrics, file names

Run from the repository root:  .venv/bin/python scripts/reference/make_vectors.py
"""

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import losses  # noqa: E402
import metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "worker" / "tests" / "vectors"
GENERATOR = "scripts/reference/make_vectors.py"
MAX_TOTAL_BYTES = 3 * 1024 * 1024
PRED_LO, PRED_HI = 0.001, 0.999  # predictions are squeezed strictly inside this range
MIN_DIST_FROM_THRESHOLD = 1e-6  # so a float32 cast cannot flip a thresholded pixel

# loss_id -> config as written; the manifest stores losses.full_config(config).
LOSS_CONFIGS = {
    "dice": {"kind": "dice"},
    "dice_image": {"kind": "dice", "reduction": "image"},
    "jaccard": {"kind": "jaccard"},
    "tversky": {"kind": "tversky"},
    "tversky_a03": {"kind": "tversky", "alpha": 0.3},
    "focal": {"kind": "focal"},
    "combo": {"kind": "combo"},
    "focal_tversky": {"kind": "focal_tversky"},
    "all": {"kind": "all"},
    "all_image": {"kind": "all", "reduction": "image"},
    "all_g03": {"kind": "all", "gamma": 0.3, "omega": 6.0, "epsilon": 1.0},
    "all_tversky": {"kind": "all", "base": {"kind": "tversky", "alpha": 0.7, "smooth": 1.0}},
    "all_focal": {"kind": "all", "base": {"kind": "focal"}},
    "all_combo": {"kind": "all", "base": {"kind": "combo"}},
    "all_jaccard": {"kind": "all", "base": {"kind": "jaccard"}},
}

# Each case: shape, foreground fraction per image, prediction sharpness k (one number, or
# one per image) and noise sd (pred = squeeze(sigmoid(k*(2T-1) + noise))), blob
# smoothness, seed, and the images whose target is forced empty. `expect_dice` bounds the
# batch Dice loss the case is for; `expect_image_dice` bounds each image's Dice loss.
CASES = [
    dict(name="random_fg50", shape=(2, 1, 16, 16), fg=0.5, k=0.3, noise=1.0, blur=1.5, seed=101),
    dict(name="moderate_fg10", shape=(4, 1, 16, 16), fg=0.1, k=1.5, noise=1.0, blur=1.5, seed=102),
    dict(name="sparse_fg2", shape=(1, 1, 48, 48), fg=0.02, k=1.5, noise=1.0, blur=2.0, seed=103),
    dict(name="empty_image0_fg10", shape=(3, 1, 32, 32), fg=0.1, k=1.5, noise=1.0, blur=2.0,
         seed=104, empty=(0,)),
    dict(name="all_negative", shape=(2, 1, 16, 16), fg=0.0, k=1.5, noise=1.0, blur=1.5, seed=105),
    # Batch Dice loss < 0.1: ALL's log branch.
    dict(name="very_good_fg30", shape=(2, 1, 24, 24), fg=0.3, k=3.5, noise=1.0, blur=2.0,
         seed=106, expect_dice=(0.0, 0.1)),
    # Batch Dice loss in [0.1, 0.3); per image, one below 0.1 and one above: "image" ALL
    # takes both branches in one batch.
    dict(name="good_mixed_fg30", shape=(2, 1, 20, 20), fg=0.3, k=(4.0, 1.0), noise=0.8,
         blur=2.0, seed=107, expect_dice=(0.1, 0.3),
         expect_image_dice=((0.0, 0.1), (0.1, 1.0))),
]


def blob_mask(rng, height, width, fg, blur):
    """A {0,1} mask of smooth blobs covering about `fg` of the image."""
    if fg <= 0.0:
        return np.zeros((height, width))
    field = gaussian_filter(rng.standard_normal((height, width)), blur, mode="wrap")
    cut = np.quantile(field, 1.0 - fg)
    mask = (field > cut).astype(np.float64)
    if mask.sum() == 0:  # tiny fractions on small images: keep at least one pixel
        mask.flat[np.argmax(field)] = 1.0
    return mask


def make_case_arrays(case):
    """(pred, target) float64 arrays of the case's shape."""
    rng = np.random.default_rng(case["seed"])
    n, c, h, w = case["shape"]
    target = np.zeros(case["shape"])
    for i in range(n):
        if i in case.get("empty", ()):
            continue
        for j in range(c):
            target[i, j] = blob_mask(rng, h, w, case["fg"], case["blur"])
    k = np.broadcast_to(np.asarray(case["k"], dtype=np.float64), (n,)).reshape(n, 1, 1, 1)
    logits = k * (2.0 * target - 1.0) + case["noise"] * rng.standard_normal(target.shape)
    pred = PRED_LO + (PRED_HI - PRED_LO) / (1.0 + np.exp(-logits))
    return pred, target


def check_inputs(name, pred, target):
    """Inputs must be strictly inside (0.001, 0.999) and clear of the 0.5 threshold."""
    assert pred.dtype == np.float64 and target.dtype == np.float64
    assert np.all((pred > 0.001) & (pred < 0.999)), name
    assert set(np.unique(target)) <= {0.0, 1.0}, name
    gap = np.abs(pred - 0.5).min()
    assert gap > MIN_DIST_FROM_THRESHOLD, f"{name}: a prediction is within {gap} of 0.5"


def check_reference():
    """Quick self-checks of the reference against hand-derived facts."""
    gamma, omega, eps = 0.1, 10.0, 0.5
    c = gamma - omega * math.log(1.0 + gamma / eps)
    assert abs(c - (-1.72322)) < 1e-5
    at = losses.adaptive_log(torch.tensor([gamma - 1e-12, gamma], dtype=torch.float64), gamma,
                             omega, eps)
    assert torch.allclose(at, torch.tensor([1.8232155, 1.8232155], dtype=torch.float64),
                          atol=1e-6), at
    rng = np.random.default_rng(7)
    target = torch.from_numpy((rng.random((2, 1, 4, 4)) < 0.4).astype(np.float64))
    pred = torch.from_numpy(0.05 + 0.9 * rng.random((2, 1, 4, 4)))
    t, p = target.numpy(), pred.numpy()
    dice_np = 1 - (2 * (t * p).sum() + 1) / (t.sum() + p.sum() + 1)
    assert abs(losses.compute_loss(pred, target, {"kind": "dice"}).item() - dice_np) < 1e-14
    for config in LOSS_CONFIGS.values():
        p = pred.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: losses.compute_loss(x, target, config), (p,))


def case_record(case, pred, target, out_dir):
    """Write the case's arrays and gradients; return its manifest entry."""
    name = case["name"]
    case_dir = out_dir / name
    case_dir.mkdir(parents=True)
    np.save(case_dir / "pred.npy", pred)
    np.save(case_dir / "target.npy", target)
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    entries = []
    for loss_id, config in LOSS_CONFIGS.items():
        value, grad = losses.loss_and_grad(pred_t, target_t, config)
        assert grad.dtype == torch.float64 and math.isfinite(value)
        grad_rel = f"{name}/{loss_id}.grad.npy"
        np.save(out_dir / grad_rel, grad.numpy())
        entries.append({"id": loss_id, "config": losses.full_config(config), "value": value,
                        "grad": grad_rel})
    return {
        "name": name,
        "shape": list(case["shape"]),
        "pred": f"{name}/pred.npy",
        "target": f"{name}/target.npy",
        "losses": entries,
        "metrics": metrics.compute_metrics(pred, target),
        "keras": keras_record(pred, target),
    }


def keras_batches(n):
    """Batch sizes for the Keras-style metrics: two unequal batches where there are samples
    enough, so the average is weighted (n = 3: [2, 1]; n = 4: [3, 1])."""
    return [b for b in (n - n // 3, n // 3) if b > 0]


def keras_record(pred, target, batches=None):
    batches = batches or keras_batches(pred.shape[0])
    return {"batches": batches, "metrics": metrics.keras_metrics(pred, target, batches)}


# Predictions on the rounding edge: 0.5 rounds to 0 (half to even), 0.5 + 1e-6 to 1, and
# labels of exactly 0 and 1. Stored inline; three batches of 2, 1 and 1 samples.
KERAS_ROUNDING_CASE = {
    "name": "keras_rounding_edges",
    "shape": [4, 1, 2, 2],
    "pred": [0.5, 0.5 + 1e-6, 0.5 - 1e-6, 1.0,
             0.5, 0.0, 0.25, 0.75,
             0.5, 0.5, 0.5, 0.5,
             0.0, 0.0, 0.0, 0.0],
    "target": [1.0, 1.0, 0.0, 1.0,
               0.0, 0.0, 1.0, 1.0,
               1.0, 1.0, 0.0, 0.0,
               0.0, 0.0, 0.0, 0.0],
    "batches": [2, 1, 1],
}


def keras_rounding_record():
    case = dict(KERAS_ROUNDING_CASE)
    shape = case["shape"]
    pred = np.asarray(case["pred"], dtype=np.float64).reshape(shape)
    target = np.asarray(case["target"], dtype=np.float64).reshape(shape)
    case["metrics"] = metrics.keras_metrics(pred, target, case["batches"])
    return case


def check_expectations(case, record, pred, target):
    """The case must land where it is meant to (e.g. in ALL's log branch)."""
    name = case["name"]
    lo_hi = case.get("expect_dice")
    if lo_hi is not None:
        dice = next(e["value"] for e in record["losses"] if e["id"] == "dice")
        assert lo_hi[0] <= dice < lo_hi[1], f"{name}: dice loss {dice} not in {lo_hi}"
    per_image = case.get("expect_image_dice")
    if per_image is not None:
        values = losses.dice_loss(torch.from_numpy(pred), torch.from_numpy(target), 1.0, "image")
        for i, (value, (lo, hi)) in enumerate(zip(values.tolist(), per_image)):
            assert lo <= value < hi, f"{name}: image {i} dice loss {value} not in {(lo, hi)}"


def total_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_vectors(out_dir):
    """Regenerate every case directory and the manifest under `out_dir`."""
    for case in CASES:
        stale = out_dir / case["name"]
        if stale.exists():
            shutil.rmtree(stale)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for case in CASES:
        pred, target = make_case_arrays(case)
        check_inputs(case["name"], pred, target)
        record = case_record(case, pred, target, out_dir)
        check_expectations(case, record, pred, target)
        records.append(record)
    manifest = {"generator": GENERATOR, "torch": torch.__version__, "cases": records,
                "keras_cases": [keras_rounding_record()]}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = total_bytes(out_dir)
    assert size < MAX_TOTAL_BYTES, f"vectors take {size} bytes"
    return records, size


def summary_lines(records, size):
    lines = []
    for r in records:
        dice = next(e["value"] for e in r["losses"] if e["id"] == "dice")
        auc = r["metrics"]["auc"]
        auc_txt = "null" if auc is None else f"{auc:.4f}"
        lines.append(f"{r['name']:20s} {str(r['shape']):16s} dice_loss={dice:.6f} auc={auc_txt}")
    lines.append(f"total {size} bytes")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    check_reference()
    records, size = write_vectors(args.out)
    print("\n".join(summary_lines(records, size)))


if __name__ == "__main__":
    main()
