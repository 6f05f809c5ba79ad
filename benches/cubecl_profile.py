"""Sums cubecl's profiler lines (`| <duration> | <kernel>`) by kernel name.

Usage: python3 benches/cubecl_profile.py target/bench/cubecl.log [top-N]
"""
import re
import sys
from collections import defaultdict

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    total, count = defaultdict(float), defaultdict(int)
    unmeasured = 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        sys.exit(f"{path}: no cubecl log (the profiler sees only the GPU backends: --device cuda or wgpu)")
    with f:
        for line in f:
            m = LINE.match(line)
            if m:
                value, unit, name = m.groups()
                name = re.sub(r"\s+", " ", name)
                if len(name) > 150:
                    name = name[:100] + " ... " + name[-45:]
                total[name] += float(value) * UNITS[unit]
                count[name] += 1
            elif line.startswith("| not measured"):
                unmeasured += 1
    whole = sum(total.values())
    print(f"{sum(count.values())} kernel runs, {whole:.3f} s in all ({unmeasured} not measured)")
    print(f"{'seconds':>9} {'share':>6} {'runs':>6}  kernel")
    for name, seconds in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{seconds:9.4f} {seconds / whole * 100 if whole else 0:5.1f}% {count[name]:6d}  {name}")


if __name__ == "__main__":
    main()
