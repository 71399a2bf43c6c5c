#!/usr/bin/env python3
"""Diff two `hogsvm compare` report.json files with every timing, date and memory figure masked.

What is left must be identical: configurations, accuracies, confusion matrices, per-class scores,
parameter counts, dimensions, model sizes, fingerprints, misclassified images, epoch losses and
accuracies. Used to show that a change of code shape changed nothing a user sees (docs/ARCHITECTURE.md).

usage: scripts/report_diff.py OLD/report.json NEW/report.json     (exit 0: same, 1: differ)
Standard library only.
"""
import json
import sys

# Keys whose values are measurements of time, memory or the machine, masked wherever they stand.
MASKED = {
    "seconds", "load_seconds", "total_seconds", "batch_seconds", "images_per_s", "images_per_sec",
    "latency_ms_median", "latency_ms_p90", "peak_rss_bytes", "start_rss_bytes", "date_utc",
    "platform", "cpus",
}


def mask(v, path=""):
    if isinstance(v, dict):
        return {k: ("<masked>" if k in MASKED else mask(x, f"{path}.{k}")) for k, x in v.items()}
    if isinstance(v, list):
        return [mask(x, f"{path}[{i}]") for i, x in enumerate(v)]
    return v


def diff(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only in {'new' if k in b else 'old'}")
            else:
                diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} entries vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-2])
    with open(sys.argv[1]) as f:
        old = mask(json.load(f))
    with open(sys.argv[2]) as f:
        new = mask(json.load(f))
    out = []
    diff(old, new, "", out)
    for line in out:
        print(line)
    print(f"{len(out)} differences (timings, dates and memory masked)")
    sys.exit(1 if out else 0)


if __name__ == "__main__":
    main()
