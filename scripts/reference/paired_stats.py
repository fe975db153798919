"""Reference values for allsweep's paired comparison (`coordinator/src/report/stats.rs`).

Why this exists: the report's paired t-test and 95% confidence interval must match an
independent implementation. This computes them with SciPy on fixed cases and writes
`coordinator/tests/vectors/paired_stats.json`; the Rust test compares to 1e-9.

    .venv/bin/python scripts/reference/paired_stats.py
"""

import json
from pathlib import Path

import numpy as np
from scipy import stats

CASES = [
    ([82.4, 81.9, 82.7], [71.4, 70.9, 72.0]),
    ([79.71, 80.12], [64.57, 66.01]),
    ([0.5, 0.7, 0.2, 0.9, 0.4], [0.4, 0.75, 0.1, 0.6, 0.45]),
    ([69.23, 68.8, 70.1, 69.9], [67.79, 68.9, 67.5, 68.2]),
    ([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], [1.5, 1.0, 5.0, 6.0, 18.0, 30.0]),
]


def case(candidate, baseline):
    c, b = np.array(candidate), np.array(baseline)
    d = c - b
    n = len(d)
    t, p = stats.ttest_rel(c, b)
    se = d.std(ddof=1) / np.sqrt(n)
    q = stats.t.ppf(0.975, n - 1)
    return {
        "candidate": candidate,
        "baseline": baseline,
        "mean_difference": float(d.mean()),
        "t": float(t),
        "p": float(p),
        "ci_low": float(d.mean() - q * se),
        "ci_high": float(d.mean() + q * se),
    }


def main():
    out = Path(__file__).resolve().parents[2] / "coordinator" / "tests" / "vectors" / "paired_stats.json"
    out.write_text(json.dumps([case(c, b) for c, b in CASES], indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
