"""Independent PyTorch reference for allsweep's segmentation losses.

Why this exists: the Rust worker implements the same losses on libtorch; this file is a
second, separately written implementation (straight from the definitions in
docs/paper-notes.md, sections 1-2) that generates the test vectors the Rust
side is checked against. It favours plainness over speed.

Conventions: T is the {0,1} target and P the probability, both [N, C, H, W]. "batch"
reduction sums over the whole flattened batch; "image" reduction sums over dims 1.. per
image, computes one loss per image and averages over images. Soft counts:
TP = sum(T*P), FN = sum(T*(1-P)), FP = sum((1-T)*P).

A loss is described by a JSON-like dict, e.g. {"kind": "dice", "smooth": 1.0,
"reduction": "batch"}; `full_config` fills in every default and `compute_loss`
evaluates it.
"""

import copy
import math

import torch

CLAMP_EPS = 1e-7

# Every loss kind with all of its keys and their defaults. Focal and combo have no
# "reduction" key of their own: they only reduce per image when wrapped by an "image" ALL.
DEFAULTS = {
    "dice": {"kind": "dice", "smooth": 1.0, "reduction": "batch"},
    "jaccard": {"kind": "jaccard", "smooth": 1.0, "reduction": "batch"},
    "tversky": {"kind": "tversky", "alpha": 0.7, "smooth": 1.0, "reduction": "batch"},
    "focal_tversky": {
        "kind": "focal_tversky",
        "alpha": 0.7,
        "gamma": 4.0 / 3.0,
        "smooth": 1.0,
        "reduction": "batch",
    },
    "focal": {"kind": "focal", "gamma": 2.0, "alpha": 0.25},
    "combo": {"kind": "combo", "alpha": 0.5, "beta": 0.5, "smooth": 1.0},
    "all": {
        "kind": "all",
        "gamma": 0.1,
        "omega": 10.0,
        "epsilon": 0.5,
        "reduction": "batch",
        "base": {"kind": "dice"},
    },
}

REDUCTIONS = ("batch", "image")


def full_config(config):
    """Return a copy of `config` with every default filled in.

    For "all", the base is filled with its own defaults minus "reduction": the base's
    reduction is always forced to the ALL's, so writing one there would only mislead.
    """
    kind = config["kind"]
    if kind not in DEFAULTS:
        raise ValueError(f"unknown loss kind {kind!r}")
    unknown = set(config) - set(DEFAULTS[kind])
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} for loss {kind!r}")
    full = copy.deepcopy(DEFAULTS[kind])
    full.update(copy.deepcopy(config))
    if kind == "all":
        base = full_config(full["base"])
        if base["kind"] == "all":
            raise ValueError("ALL cannot wrap ALL")
        base.pop("reduction", None)
        full["base"] = base
    if full.get("reduction", "batch") not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}")
    return full


def _sum(x, reduction):
    """Sum over the whole batch (0-d) or per image (shape [N])."""
    if reduction == "batch":
        return x.sum()
    return x.flatten(1).sum(dim=1)


def _mean(x, reduction):
    """Mean over the whole batch (0-d) or per image (shape [N])."""
    if reduction == "batch":
        return x.mean()
    return x.flatten(1).mean(dim=1)


def soft_counts(pred, target, reduction):
    """Soft TP, FN, FP (0-d tensors, or [N] per image)."""
    tp = _sum(target * pred, reduction)
    fn = _sum(target * (1.0 - pred), reduction)
    fp = _sum((1.0 - target) * pred, reduction)
    return tp, fn, fp


def dice_loss(pred, target, smooth, reduction):
    tp = _sum(target * pred, reduction)
    denom = _sum(target, reduction) + _sum(pred, reduction)
    return 1.0 - (2.0 * tp + smooth) / (denom + smooth)


def jaccard_loss(pred, target, smooth, reduction):
    inter = _sum(target * pred, reduction)
    union = _sum(target, reduction) + _sum(pred, reduction) - inter
    return 1.0 - (inter + smooth) / (union + smooth)


def tversky_index(pred, target, alpha, smooth, reduction):
    tp, fn, fp = soft_counts(pred, target, reduction)
    return (tp + smooth) / (tp + alpha * fn + (1.0 - alpha) * fp + smooth)


def tversky_loss(pred, target, alpha, smooth, reduction):
    return 1.0 - tversky_index(pred, target, alpha, smooth, reduction)


def focal_tversky_loss(pred, target, alpha, gamma, smooth, reduction):
    ti = tversky_index(pred, target, alpha, smooth, reduction)
    return (1.0 - ti) ** (1.0 / gamma)


def focal_loss(pred, target, gamma, alpha, reduction):
    pc = pred.clamp(CLAMP_EPS, 1.0 - CLAMP_EPS)
    p_t = torch.where(target > 0.5, pc, 1.0 - pc)
    alpha_t = torch.where(
        target > 0.5, torch.full_like(pred, alpha), torch.full_like(pred, 1.0 - alpha)
    )
    per_pixel = -alpha_t * (1.0 - p_t) ** gamma * torch.log(p_t)
    return _mean(per_pixel, reduction)


def combo_loss(pred, target, alpha, beta, smooth, reduction):
    pc = pred.clamp(CLAMP_EPS, 1.0 - CLAMP_EPS)
    bce_terms = beta * target * torch.log(pc) + (1.0 - beta) * (1.0 - target) * torch.log(1.0 - pc)
    wbce = -_mean(bce_terms, reduction)
    dsc = (2.0 * _sum(target * pred, reduction) + smooth) / (
        _sum(target, reduction) + _sum(pred, reduction) + smooth
    )
    return alpha * wbce - (1.0 - alpha) * dsc


def adaptive_log(value, gamma, omega, epsilon):
    """ALL(L): omega*ln(1+|L|/epsilon) below gamma, |L| - C above, elementwise."""
    mag = value.abs()
    c = gamma - omega * math.log(1.0 + gamma / epsilon)
    return torch.where(mag < gamma, omega * torch.log1p(mag / epsilon), mag - c)


def _base_loss(pred, target, cfg, reduction):
    """A non-ALL loss from a full config, reduced as `reduction` says."""
    kind = cfg["kind"]
    if kind == "dice":
        return dice_loss(pred, target, cfg["smooth"], reduction)
    if kind == "jaccard":
        return jaccard_loss(pred, target, cfg["smooth"], reduction)
    if kind == "tversky":
        return tversky_loss(pred, target, cfg["alpha"], cfg["smooth"], reduction)
    if kind == "focal_tversky":
        return focal_tversky_loss(
            pred, target, cfg["alpha"], cfg["gamma"], cfg["smooth"], reduction
        )
    if kind == "focal":
        return focal_loss(pred, target, cfg["gamma"], cfg["alpha"], reduction)
    if kind == "combo":
        return combo_loss(pred, target, cfg["alpha"], cfg["beta"], cfg["smooth"], reduction)
    raise ValueError(f"not a base loss: {kind!r}")


def compute_loss(pred, target, config):
    """Scalar loss for `config` (a possibly partial dict; defaults are filled in)."""
    cfg = full_config(config)
    if cfg["kind"] == "all":
        reduction = cfg["reduction"]
        base = _base_loss(pred, target, cfg["base"], reduction)
        wrapped = adaptive_log(base, cfg["gamma"], cfg["omega"], cfg["epsilon"])
        return wrapped.mean()
    reduction = cfg.get("reduction", "batch")
    return _base_loss(pred, target, cfg, reduction).mean()


def loss_and_grad(pred, target, config):
    """(loss value, d loss / d pred) by autograd, in pred's dtype."""
    p = pred.detach().clone().requires_grad_(True)
    loss = compute_loss(p, target, config)
    (grad,) = torch.autograd.grad(loss, p)
    return loss.item(), grad
