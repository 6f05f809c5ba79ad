#!/usr/bin/env bash
# Training-step throughput of amcl-train (burn, flex CPU backend) against the PyTorch reference
# (benches/pytorch/bench.py: the same model, loss and step) on this machine. For each setting the
# two take turns ROUNDS times (default 3) and the medians are compared.
#
#   benches/compare-pytorch.sh            # markdown table on stdout, raw JSON in target/bench/
#   ROUNDS=5 PYTHON=python3 benches/compare-pytorch.sh
#   BUILD_FLAGS="--no-default-features --features x86-v4" benches/compare-pytorch.sh   # a CPU-only build (no GPU stack)
#
#   BIN=/tmp/old/amcl-train benches/compare-pytorch.sh   # another build of ours (e.g. an older commit's)
#
# PYTHON defaults to target/venv-torch/bin/python, made by scripts/setup-pytorch.sh when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
python="${PYTHON:-target/venv-torch/bin/python}"
if ! "$python" -c "import torch" 2>/dev/null; then
    scripts/setup-pytorch.sh
    python=target/venv-torch/bin/python
fi
bin="${BIN:-./target/release/amcl-train}"
if [ -z "${BIN:-}" ]; then
    # shellcheck disable=SC2086
    cargo build --release -p amcl-train ${BUILD_FLAGS:-}
fi
out=target/bench
mkdir -p "$out"
rm -f "$out"/compare-*.json

# name | flags shared by both (method, backbone, sizes)
settings=(
    "issue-cnn32-c4|--method amcl-simclr --backbone small-cnn --width 32 --heads 4 --dim 64 --batch-size 128 --steps 10"
    "quick-amcl|--method amcl-simclr --backbone small-cnn --width 16 --heads 3 --dim 64 --batch-size 128 --steps 10"
    "quick-simclr|--method simclr --backbone small-cnn --width 16 --heads 3 --dim 64 --batch-size 128 --steps 10"
    "resnet18-amcl|--method amcl-simclr --backbone resnet18 --heads 3 --dim 128 --batch-size 32 --steps 3 --warmup 1"
)
for round in $(seq "$rounds"); do
    for setting in "${settings[@]}"; do
        name="${setting%%|*}"
        flags="${setting#*|}"
        echo "round $round/$rounds: $name" >&2
        # shellcheck disable=SC2086
        "$bin" bench --device cpu --json $flags > "$out/compare-$name-ours-$round.json"
        # shellcheck disable=SC2086
        "$python" benches/pytorch/bench.py --json $flags > "$out/compare-$name-torch-$round.json"
    done
done
"$python" - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
names = sorted({p.split("compare-")[1].rsplit("-", 2)[0] for p in glob.glob(f"{out}/compare-*.json")})
print("| setting | params (ours / PyTorch) | ours images/s | PyTorch images/s | ours / PyTorch |")
print("|---|---|---|---|---|")
for name in names:
    runs = {k: [json.load(open(p)) for p in sorted(glob.glob(f"{out}/compare-{name}-{k}-*.json"))]
            for k in ("ours", "torch")}
    rate = {k: statistics.median(r["images_per_s"] for r in v) for k, v in runs.items()}
    params = f'{runs["ours"][0]["params"]} / {runs["torch"][0]["params"]}'
    print(f'| {name} ({runs["ours"][0]["method"]}, {runs["ours"][0]["backbone"]}, batch {runs["ours"][0]["batch_size"]}) '
          f'| {params} | {rate["ours"]:.1f} | {rate["torch"]:.1f} | {rate["ours"] / rate["torch"]:.2f} |')
print(f'\n{runs["torch"][0]["device"]}; medians of {len(runs["ours"])} alternating rounds.')
PY
