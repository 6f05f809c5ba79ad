"""Sums cubecl's profiler lines (`| <duration> | <kernel>`) by kernel.

Usage:
  python3 benches/cubecl_profile.py LOG [--top N]
  python3 benches/cubecl_profile.py LONG.log --minus SHORT.log [--steps K] [--top N]

With `--minus`, the sums of SHORT (a run with fewer timed steps) are taken from those of LONG, so
that what the two runs share (the warm-up step, where autotuning times every candidate kernel)
cancels and what remains is the extra timed steps alone; kernels are then grouped by family (the
name without its hash), since the two processes may pick different variants of one kernel.
`--steps K` (the difference in timed steps) adds a per-step column.
"""
import argparse
import re
import sys
from collections import defaultdict

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def kernel_name(raw, family):
    """A readable name: the whole (shortened) kernel name, or its family with no hash."""
    name = re.sub(r"\s+", " ", raw)
    if family:
        return re.sub(r"_[0-9a-f]{8}$", "", name.split("|")[-1].strip())
    return name if len(name) <= 150 else name[:100] + " ... " + name[-45:]


def load(path, family):
    """Seconds and runs per kernel, and how many runs the profiler could not measure."""
    total, count, unmeasured = defaultdict(float), defaultdict(int), 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        sys.exit(f"{path}: no cubecl log (the profiler sees only the GPU backends: --device cuda or wgpu)")
    with f:
        for line in f:
            m = LINE.match(line)
            if m:
                value, unit, raw = m.groups()
                name = kernel_name(raw, family)
                total[name] += float(value) * UNITS[unit]
                count[name] += 1
            elif line.startswith("| not measured"):
                unmeasured += 1
    return total, count, unmeasured


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("log")
    p.add_argument("--minus", help="a shorter run's log to subtract (same flags, fewer --steps)")
    p.add_argument("--steps", type=int, default=0, help="timed steps LOG has over --minus")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    family = args.minus is not None
    total, count, unmeasured = load(args.log, family)
    if args.minus:
        less, less_count, _ = load(args.minus, family)
        for name in set(total) | set(less):
            total[name] -= less.get(name, 0.0)
            count[name] -= less_count.get(name, 0)
    whole = sum(total.values())
    runs = sum(count.values())
    what = "the extra steps" if args.minus else "in all"
    print(f"{runs} kernel runs, {whole:.3f} s {what} ({unmeasured} not measured)")
    if args.steps:
        print(f"per step: {runs / args.steps:.0f} kernel runs, {whole / args.steps * 1e3:.1f} ms of kernel time")
    per_step = f" {'ms/step':>8}" if args.steps else ""
    print(f"{'seconds':>9} {'share':>6} {'runs':>6}{per_step}  kernel")
    for name, seconds in sorted(total.items(), key=lambda kv: -kv[1])[: args.top]:
        share = seconds / whole * 100 if whole else 0
        step = f" {seconds / args.steps * 1e3:8.2f}" if args.steps else ""
        print(f"{seconds:9.4f} {share:5.1f}% {count[name]:6d}{step}  {name}")


if __name__ == "__main__":
    main()
