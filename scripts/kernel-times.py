#!/usr/bin/env python3
"""Per-kernel GPU time of one step, from an Nsight Compute CSV.

    ncu --csv --page raw --metrics gpu__time_duration.sum ... flint bench ... > F.csv
    scripts/kernel-times.py [--prefill] F.csv [F2.csv ...]

A step is a run of kernels that ends with a sampling kernel and starts after
the previous one: one step's forward pass and its sampling. By default the
last step (a decode step); with --prefill the last of the longest ones (the
timed run's prefill: flint bench runs a warm-up and a timed generation). Prints each kernel (by name and grid) with its count and total
microseconds, and the step's sum, to set beside flint bench's TPOT: the
difference is what the GPU spends between kernels (launch gaps, host work).
"""
import csv
import sys


def rows(path):
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines are unquoted
    reader = csv.DictReader(lines)
    for r in reader:
        t = r.get("gpu__time_duration.sum", "")
        try:
            ns = float(t.replace(",", ""))
        except ValueError:
            continue  # the units row
        yield r["Kernel Name"], r.get("Grid Size", ""), ns


def short(name):
    name = name.replace("(anonymous namespace)::", "").removeprefix("void ")
    name = name.split("(")[0]                      # the argument list
    head, _, args = name.partition("<")
    return (head.split("::")[-1] + ("<" + args if args else ""))[:70]


def main():
    args = sys.argv[1:]
    prefill = "--prefill" in args
    for path in [a for a in args if a != "--prefill"]:
        ks = list(rows(path))
        ends = [i for i, (n, _, _) in enumerate(ks) if "sample_rows_kernel" in n]
        if len(ends) < 2:
            print(f"{path}: fewer than two sampling kernels, no whole step")
            continue
        steps = [ks[a + 1: b + 1] for a, b in zip(ends, ends[1:])]
        step = steps[-1]
        if prefill:
            longest = max(sum(ns for _, _, ns in s) for s in steps)
            step = [s for s in steps if sum(ns for _, _, ns in s) >= 0.5 * longest][-1]
        groups = {}
        for n, grid, ns in step:
            key = (short(n), grid)
            c, t = groups.get(key, (0, 0.0))
            groups[key] = (c + 1, t + ns)
        total = sum(ns for _, _, ns in step)
        print(f"== {path}: one {'prefill' if prefill else 'decode'} step, {len(step)} kernels, {total / 1e3:.1f} us of kernel time")
        print(f"{'kernel':72} {'grid':>16} {'n':>4} {'total us':>9} {'each us':>8}")
        for (n, grid), (c, t) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
            print(f"{n:72} {grid:>16} {c:4d} {t / 1e3:9.1f} {t / c / 1e3:8.2f}")


if __name__ == "__main__":
    main()
