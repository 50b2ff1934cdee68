#!/usr/bin/env python3
"""Where a decode step's time goes between kernels: reads the per-CTA records
of a FLINT_CUDA_TRACE build (src/backends/cuda/cuda_trace.h) and prints, per
kernel of a layer (averaged over the middle layers of every recorded step):

  resident  how long its first CTA sat on an SM before the grid's wait ended
            (what programmatic launch lets it do early: the GEMV's prefetch)
  work      from the wait's end (all earlier kernels done) to its last CTA's exit
  handoff   from that exit to the next kernel's wait ending
  span      work + handoff: this kernel's share of the step's critical path

  scripts/kernel-timeline.py trace.csv [--steps-detail N]

A launch's CTAs are grouped by kernel name and grid size, in the order their
waits ended: the next kernel's waits all end after this one's CTAs exit.
"""
import argparse
import collections
import csv
import statistics
import sys


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    recs = []
    for r in rows:
        recs.append((r["kernel"], int(r["block"]), int(r["grid"]), int(r["sm"]), int(r["entry"]),
                     int(r["wait_begin"]), int(r["wait_end"]), int(r["exit"])))
    return recs


class Launch:
    def __init__(self, kernel, grid):
        self.kernel, self.grid, self.recs = kernel, grid, []

    def add(self, r):
        self.recs.append(r)

    @property
    def full(self):
        return len(self.recs) >= self.grid

    def first_entry(self):
        return min(r[4] for r in self.recs)

    def release(self):
        # A CTA that never waited (its wait stamps are its entry: e.g. an
        # attention split past the context, which exits before the wait)
        # says nothing about when the previous kernel finished.
        waited = [r[6] for r in self.recs if r[6] != r[4]]
        return min(waited) if waited else min(r[6] for r in self.recs)

    def last_exit(self):
        return max(r[7] for r in self.recs)


def group(recs):
    recs = sorted(recs, key=lambda r: (r[6], r[4]))
    launches, open_by_key = [], collections.defaultdict(collections.deque)
    for r in recs:
        key = (r[0], r[2])
        q = open_by_key[key]
        while q and q[0].full:
            q.popleft()
        if not q:
            q.append(Launch(r[0], r[2]))
            launches.append(q[-1])
        q[0].add(r)
    launches.sort(key=lambda l: l.release())
    incomplete = [l for l in launches if not l.full]
    if incomplete:
        print(f"note: {len(incomplete)} launches with fewer CTA records than their grid (recording began or ended mid-step)")
    return launches


def split_steps(launches):
    steps, cur = [], None
    for l in launches:
        if l.kernel == "embedding":
            cur = []
            steps.append(cur)
        if cur is not None:
            cur.append(l)
    return steps


def layer_start(step, qkv_index):
    """A layer starts at the norm ahead of its q/k/v GEMV (none when RoPE is not fused)."""
    return qkv_index - 1 if qkv_index > 0 and step[qkv_index - 1].kernel == "rms_norm" else qkv_index


def timer_resolution(recs):
    stamps = [r[6] for r in recs[:5000]] + [r[7] for r in recs[:5000]]
    for res in (1000, 500, 256, 128, 64, 32):
        if all(t % res == 0 for t in stamps):
            return f"{res} ns"
    return "< 32 ns"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--steps-detail", type=int, default=0, help="print every launch of the first N steps")
    args = ap.parse_args()
    recs = load(args.trace)
    if not recs:
        sys.exit(f"{args.trace}: no records")
    print(f"{len(recs)} CTA records; %globaltimer stamps are multiples of {timer_resolution(recs)}")
    launches = group(recs)
    steps = split_steps(launches)
    # The last step's successor is missing: only steps followed by another are measured.
    measured = [(steps[i], steps[i + 1][0].release()) for i in range(len(steps) - 1)]
    if not measured:
        sys.exit("fewer than two steps recorded")
    print(f"{len(steps)} steps recorded, {len(measured)} measured; launches per step: "
          f"{sorted(set(len(s) for s, _ in measured))}")

    per_pos = collections.defaultdict(lambda: collections.defaultdict(list))
    step_times, layer_times, other = [], [], collections.defaultdict(list)
    for si, (step, next_release) in enumerate(measured):
        t0 = step[0].release()
        releases = [l.release() for l in step] + [next_release]
        step_times.append((next_release - t0) / 1e3)
        qkv = [i for i, l in enumerate(step) if l.kernel.endswith("/rope_cache") or l.kernel == "rope_and_cache"]
        period = qkv[1] - qkv[0] if len(qkv) > 1 else 0
        if si < args.steps_detail:
            print(f"\nstep {si}: {step_times[-1]:.1f} us, {len(step)} launches (times in us from the embedding's release)")
            print(f"{'#':>4} {'kernel':28} {'ctas':>5} {'entry':>8} {'release':>8} {'exit':>8} {'span':>7}")
            for i, l in enumerate(step):
                print(f"{i:4d} {l.kernel:28} {len(l.recs):5d} {(l.first_entry() - t0) / 1e3:8.2f} "
                      f"{(l.release() - t0) / 1e3:8.2f} {(l.last_exit() - t0) / 1e3:8.2f} "
                      f"{(releases[i + 1] - releases[i]) / 1e3:7.2f}")
        # Middle layers: skip the first and last (their neighbours differ).
        for li in range(1, len(qkv) - 1):
            begin = layer_start(step, qkv[li])
            end = begin + period
            layer_times.append((releases[end] - releases[begin]) / 1e3)
            for pos in range(begin, end):
                l = step[pos]
                d = per_pos[pos - begin]
                d["kernel"].append(l.kernel)
                d["ctas"].append(len(l.recs))
                d["resident"].append((l.release() - l.first_entry()) / 1e3)
                d["work"].append((l.last_exit() - l.release()) / 1e3)
                d["handoff"].append((releases[pos + 1] - l.last_exit()) / 1e3)
                d["span"].append((releases[pos + 1] - releases[pos]) / 1e3)
        first_layer = layer_start(step, qkv[0]) if qkv else 0
        after_layers = min(layer_start(step, qkv[-1]) + period, len(step)) if qkv else len(step)
        other["before the layers"].append((releases[first_layer] - releases[0]) / 1e3)
        other["after the layers (final norm, lm_head, sampling, up to the next step)"].append(
            (releases[-1] - releases[after_layers]) / 1e3)
        for pos in range(after_layers, len(step)):
            other[f"  {step[pos].kernel}"].append((releases[pos + 1] - releases[pos]) / 1e3)

    med = statistics.median
    print(f"\nstep: median {med(step_times):.1f} us (min {min(step_times):.1f}, max {max(step_times):.1f}); "
          f"middle layer: median {med(layer_times):.2f} us over {len(layer_times)}")
    print(f"\nper kernel of a middle layer, medians in us:")
    print(f"{'kernel':30} {'ctas':>5} {'resident':>9} {'work':>7} {'handoff':>8} {'span':>7}")
    total = 0.0
    for pos in sorted(per_pos):
        d = per_pos[pos]
        name = collections.Counter(d["kernel"]).most_common(1)[0][0]
        total += med(d["span"])
        print(f"{name:30} {med(d['ctas']):5.0f} {med(d['resident']):9.2f} {med(d['work']):7.2f} "
              f"{med(d['handoff']):8.2f} {med(d['span']):7.2f}")
    print(f"{'sum of spans':30} {'':5} {'':9} {'':7} {'':8} {total:7.2f}")
    print()
    for k, v in other.items():
        print(f"{k:70} {med(v):8.2f} us")


if __name__ == "__main__":
    main()
