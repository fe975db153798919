"""Generate worker/tests/vectors/models/init_stats.json: how the reference networks start.

Why this exists: the network cross-check (model_vectors.py, reference_models.rs) overwrites
every variable with a shared formula before comparing, so it cannot see how either side
*initialises* its variables (libtorch's default batch-norm gamma, uniform in [0, 1), instead
of Keras's 1; a he_normal with the wrong scale or without its truncation; a non-zero bias).
Random draws from two generators cannot match value for value, but their statistics can:
for each case this builds the independent PyTorch reference (models.py) from
`torch.manual_seed(seed)` and writes, for every parameter and batch-norm buffer under the
name the Rust VarStore uses, its shape, count, mean, population standard deviation, min, max,
the initialiser that drew it and whether it is a buffer (not trained). worker/tests/reference_init.rs builds the Rust network from
the same seed and compares (and checks both against the initialiser's theoretical
distribution, computed from the shape).

The names: the reference's state-dict keys are the Rust variable names (as model_vectors.py
relies on), less PyTorch's `num_batches_tracked` counters, which libtorch's batch norm does
not keep. The initialiser of each kernel is recorded while the network is built (the
reference's `he_normal_` and `glorot_uniform_` are wrapped), not guessed from the values.

Run from the repository root:  .venv/bin/python scripts/reference/init_stats.py
"""

import contextlib
import json
import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "worker" / "tests" / "vectors" / "models" / "init_stats.json"
CASES = {
    # name: (arch, width, in_channels, seed). The first two are reference_models.rs's
    # networks, the last two the paper's widths.
    "unet_w4": ("unet", 4, 3, 11),
    "focusnet_w8": ("focusnet", 8, 3, 12),
    "unet_w32": ("unet", 32, 3, 13),
    "focusnet_w32": ("focusnet", 32, 3, 14),
}
HE_NORMAL = "he_normal_truncated"
GLOROT = "glorot_uniform"
# A standard normal truncated at +-2 has this standard deviation (models.he_normal_).
TRUNCATED_STD = 0.87962566103423978
# The share of each distribution beyond 0.9 of its bound: a tensor of n values with none out
# there has probability (1 - share)^n, under 1e-9 from n = 740 (he_normal) and 197 (glorot).
TAIL = 0.9
TAIL_SHARE = {HE_NORMAL: 0.027616952978005933, GLOROT: 0.1}


@contextlib.contextmanager
def recorded_initialisers(drawn):
    """Wraps the reference's kernel initialisers so that `drawn[id(kernel)]` names the one
    that drew each kernel (KConv binds `he_normal_` as a default argument: swapped too)."""
    originals = {HE_NORMAL: models.he_normal_, GLOROT: models.glorot_uniform_}

    def recording(family, init):
        def wrapped(w):
            drawn[id(w)] = family
            init(w)

        return wrapped

    wrapped = {family: recording(family, init) for family, init in originals.items()}
    defaults = models.KConv.__init__.__defaults__
    models.he_normal_, models.glorot_uniform_ = wrapped[HE_NORMAL], wrapped[GLOROT]
    models.KConv.__init__.__defaults__ = tuple(
        wrapped[HE_NORMAL] if d is originals[HE_NORMAL] else d for d in defaults
    )
    try:
        yield
    finally:
        models.he_normal_, models.glorot_uniform_ = originals[HE_NORMAL], originals[GLOROT]
        models.KConv.__init__.__defaults__ = defaults


def constant_family(module, attr):
    """What a batch norm or a bias starts at, by the reference's construction."""
    if isinstance(module, nn.BatchNorm2d):
        return {"weight": "ones", "bias": "zeros", "running_mean": "zeros", "running_var": "ones"}[attr]
    if isinstance(module, models.KConv) and attr == "bias":
        return "zeros"
    raise ValueError(f"no known initialiser for {type(module).__name__}.{attr}")


def theoretical(family, shape):
    """(standard deviation, bound on |x|) of the distribution `family` draws a `shape` from."""
    receptive = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    if family == HE_NORMAL:
        sd = math.sqrt(2.0 / fan_in)
        return sd, 2.0 * sd / TRUNCATED_STD
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return limit / math.sqrt(3.0), limit


def check(case, name, family, shape, s):
    """The reference must follow its own initialiser (the tolerances of reference_init.rs)."""
    where = f"{case}: {name} ({family})"
    if family in ("zeros", "ones"):
        value = 0.0 if family == "zeros" else 1.0
        assert s["min"] == s["max"] == value, where
        return
    sd, bound = theoretical(family, shape)
    n = s["count"]
    assert max(-s["min"], s["max"]) <= bound * (1 + 1e-6), (where, s, bound)
    assert abs(s["mean"]) <= 6 * sd / math.sqrt(n) + 1e-7, (where, s, sd)
    assert abs(s["std"] / sd - 1) <= 6 / math.sqrt(2 * n) + 1e-3, (where, s, sd)
    if (1 - TAIL_SHARE[family]) ** n < 1e-9:
        assert max(-s["min"], s["max"]) >= TAIL * bound, (where, s, bound)


def sig(x):
    return float(f"{x:.9g}")


def case_stats(case, arch, width, in_ch, seed):
    torch.manual_seed(seed)
    drawn = {}
    with recorded_initialisers(drawn):
        model = models.build(arch, in_ch, width)
    tensors = {}
    for module_name, module in model.named_modules():
        parameters = [(attr, t, False) for attr, t in module.named_parameters(recurse=False)]
        buffers = [(attr, t, True) for attr, t in module.named_buffers(recurse=False)]
        for attr, tensor, buffer in parameters + buffers:
            if attr == "num_batches_tracked":
                continue
            name = f"{module_name}.{attr}" if module_name else attr
            family = drawn.get(id(tensor)) or constant_family(module, attr)
            t = tensor.detach().double()
            stats = {
                "shape": list(tensor.shape),
                "count": t.numel(),
                "mean": sig(t.mean().item()),
                "std": sig(t.std(unbiased=False).item()),
                "min": sig(t.min().item()),
                "max": sig(t.max().item()),
                "init": family,
                "buffer": buffer,
            }
            check(case, name, family, stats["shape"], stats)
            tensors[name] = stats
    assert set(tensors) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    return {"arch": arch, "width": width, "in_channels": in_ch, "seed": seed, "tensors": tensors}


def dump(cases):
    """JSON with one tensor per line, so that a regenerated file diffs by tensor."""
    lines = ["{"]
    for i, (name, case) in enumerate(cases.items()):
        head = {k: v for k, v in case.items() if k != "tensors"}
        lines.append(f"{json.dumps(name)}: {json.dumps(head)[:-1]}, \"tensors\": {{")
        items = list(case["tensors"].items())
        for j, (tensor, stats) in enumerate(items):
            comma = "," if j + 1 < len(items) else ""
            lines.append(f"  {json.dumps(tensor)}: {json.dumps(stats, separators=(',', ':'))}{comma}")
        lines.append("}}" + ("," if i + 1 < len(cases) else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    cases = {name: case_stats(name, *spec) for name, spec in CASES.items()}
    OUT.write_text(dump(cases))
    json.loads(OUT.read_text())
    for name, case in cases.items():
        families = {}
        for stats in case["tensors"].values():
            families[stats["init"]] = families.get(stats["init"], 0) + 1
        print(f"{OUT.relative_to(REPO)}: {name}: {len(case['tensors'])} tensors {families}")


if __name__ == "__main__":
    main()
