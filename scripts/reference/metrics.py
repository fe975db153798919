"""Independent reference for allsweep's evaluation metrics (fractions, not %).

Why this exists: the Rust worker computes these metrics itself; this separately written
version (from docs/paper-notes.md, section 3) produces the expected values
stored in the test vectors.

Thresholded metrics pool TP/FP/TN/FN over every pixel of every image, with a pixel
predicted positive iff P >= 0.5. Any 0/0 ratio is 1.0 (nothing to get wrong). AUC-ROC
is exact, from the unthresholded probabilities, computed two independent ways (sklearn
and a rank-sum formula here) that must agree to 1e-12; it is None when the targets hold
no positives or no negatives.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

THRESHOLD = 0.5
AUC_AGREEMENT = 1e-12


def _as_flat_numpy(x):
    """Flatten a numpy array or torch tensor into a float64 numpy vector."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).ravel()


def _ratio(num, den):
    """num/den, with 0/0 defined as 1.0."""
    if den == 0:
        if num != 0:
            raise ValueError("nonzero numerator over zero denominator")
        return 1.0
    return num / den


def confusion_counts(pred, target):
    """Pooled (tp, fp, tn, fn) as Python ints."""
    p = _as_flat_numpy(pred) >= THRESHOLD
    t = _as_flat_numpy(target) > 0.5
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    tn = int(np.count_nonzero(~p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return tp, fp, tn, fn


def average_ranks(values):
    """1-based ranks of `values`, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    n = len(values)
    breaks = np.flatnonzero(np.diff(sorted_vals) != 0) + 1
    starts = np.concatenate(([0], breaks))  # first 0-based position of each tie group
    ends = np.concatenate((breaks, [n]))  # one past its last position
    group_rank = (starts + 1 + ends) / 2.0  # mean of the 1-based ranks starts+1 ..= ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def auc_rank(pred, target):
    """Exact AUC-ROC by the Mann-Whitney rank sum; None without both classes."""
    scores = _as_flat_numpy(pred)
    labels = _as_flat_numpy(target) > 0.5
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = average_ranks(scores)[labels].sum()
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auc_sklearn(pred, target):
    """Exact AUC-ROC by scikit-learn; None without both classes."""
    labels = _as_flat_numpy(target) > 0.5
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, _as_flat_numpy(pred)))


def auc(pred, target):
    """Exact AUC-ROC, cross-checked between the two implementations."""
    mine = auc_rank(pred, target)
    theirs = auc_sklearn(pred, target)
    if (mine is None) != (theirs is None):
        raise AssertionError(f"AUC availability disagrees: {mine} vs {theirs}")
    if mine is not None and abs(mine - theirs) > AUC_AGREEMENT:
        raise AssertionError(f"AUC disagrees: rank {mine!r} vs sklearn {theirs!r}")
    return mine


def compute_metrics(pred, target):
    """All metrics as a dict of floats (auc may be None)."""
    tp, fp, tn, fn = confusion_counts(pred, target)
    total = tp + fp + tn + fn
    return {
        "jaccard": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "tnr": _ratio(tn, tn + fp),
        "accuracy": _ratio(tp + tn, total),
        "auc": auc(pred, target),
    }


# The authors' Keras metrics (chaitanya-kaul/TheFocusNetSeries, losses.py), per batch, then
# averaged over the batches weighted by their sizes as Keras's evaluate() averages a metric.
# Written here from those definitions, in NumPy, apart from the Rust code it checks.
KERAS_SMOOTH = 1.0


def keras_batch(pred, target):
    """One batch's dsc, jacard_coef, tp (recall) and tn (TNR), as the Keras code defines them."""
    y = _as_flat_numpy(target)
    p = _as_flat_numpy(pred)
    intersection = np.sum(y * p)
    dsc = (2.0 * intersection + KERAS_SMOOTH) / (np.sum(y) + np.sum(p) + KERAS_SMOOTH)
    jaccard = (intersection + 1.0) / (np.sum(y) + np.sum(p) - intersection + 1.0)
    p_pos = np.round(np.clip(p, 0.0, 1.0))  # half to even, as K.round (tf.round)
    y_pos = np.round(np.clip(y, 0.0, 1.0))
    recall = (np.sum(y_pos * p_pos) + KERAS_SMOOTH) / (np.sum(y_pos) + KERAS_SMOOTH)
    tnr = (np.sum((1 - y_pos) * (1 - p_pos)) + KERAS_SMOOTH) / (np.sum(1 - y_pos) + KERAS_SMOOTH)
    return {"jaccard": float(jaccard), "dice": float(dsc), "recall": float(recall), "tnr": float(tnr)}


def keras_metrics(pred, target, batch_sizes):
    """The batch-size-weighted mean of keras_batch over consecutive batches of `batch_sizes`."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    assert sum(batch_sizes) == pred.shape[0], "the batches cover the samples"
    totals = {"jaccard": 0.0, "dice": 0.0, "recall": 0.0, "tnr": 0.0}
    start = 0
    for size in batch_sizes:
        batch = keras_batch(pred[start:start + size], target[start:start + size])
        for name, value in batch.items():
            totals[name] += value * size
        start += size
    return {name: total / pred.shape[0] for name, total in totals.items()}
