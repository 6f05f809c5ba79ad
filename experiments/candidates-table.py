#!/usr/bin/env python3
"""The table of experiments/candidates.sh: one row per finished candidate run folder under
runs/candidates (or the folder given), with kNN and linear top-1, and what its temperatures did
in the last epoch (mean tau+ and tau- over the heads, the range of tau+, the share at the floor),
and, with the trained model (`temperature_spread` of summary.json, means over the heads), tau of
two views of one image against images of different classes, and of an anchor's 10 hardest
negatives against its 10 easiest.

    python3 experiments/candidates-table.py [RUNS_DIR]
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "runs/candidates"
rows = []
for name in sorted(os.listdir(root)):
    run = os.path.join(root, name)
    try:
        summary = json.load(open(os.path.join(run, "summary.json")))
        config = json.load(open(os.path.join(run, "config.json")))
    except (OSError, ValueError):
        continue
    epochs = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    last = [r for r in epochs if r.get("kind") == "epoch"][-1]
    heads = last.get("heads") or []
    adaptive = config["method"].startswith("amcl-")

    def mean(key):
        values = [h.get(key, 0.0) for h in heads]
        return sum(values) / max(len(values), 1)

    def fmt(v):
        return f"{v:.1e}" if v < 1e-3 else f"{v:.4f}"

    spread = summary.get("temperature_spread") or []

    def kind(k):
        values = [h[k]["tau"]["mean"] for h in spread if k in h]
        return fmt(sum(values) / len(values)) if values else "-"

    if adaptive:
        temps = (f"{fmt(mean('tau_pos_mean'))} | {fmt(mean('tau_neg_mean'))} | "
                 f"{fmt(min(h['tau_pos_min'] for h in heads))}-{fmt(max(h['tau_pos_max'] for h in heads))} | "
                 f"{mean('tau_pos_at_lo') * 100:.0f} % / {mean('tau_neg_at_lo') * 100:.0f} % | "
                 f"{kind('views')} / {kind('other_class')} | {kind('hardest')} / {kind('easiest')}")
    else:
        temps = f"{config.get('temperature', 0.2)} (fixed) | | | | | "
    rows.append(f"| {name} | {summary['knn_top1'] * 100:.2f} | {summary['linear_top1'] * 100:.2f} | "
                f"{temps} |")
print("| candidate | kNN | linear | tau+ | tau- | tau+ range | at lo (tau+ / tau-) "
      "| tau: views / other class | tau: hardest / easiest |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
