"""Command-line pieces the benchmark scripts share (they import it from beside them)."""

import argparse


def csv_list(kind=str, allowed=None):
    """argparse type: a comma-separated list of `kind`, optionally restricted to `allowed`."""
    def parse(text):
        try:
            items = [kind(t.strip()) for t in text.split(",") if t.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
        bad = [t for t in items if allowed is not None and t not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"expected a comma list of {allowed or kind.__name__}, got {text!r}")
        return items
    return parse
