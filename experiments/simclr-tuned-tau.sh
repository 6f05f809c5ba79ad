#!/usr/bin/env bash
# Context for experiments/cifar10-amcl-forms.sh: plain SimCLR with its temperature tuned to the
# small scale (tau = 0.1 instead of the authors' 0.5), the same 10,000 images, budget and seeds,
# to tell a learned global temperature from per-pair adaptation. Writes $OUT/<tau>-seed<s>/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/simclr-tuned-tau}"
bash experiments/unpack-cifar10.sh
# shellcheck disable=SC2086
cargo build --release -p amcl-train ${BUILD_FLAGS:-} >&2
for tau in ${TAUS:-0.1}; do
  for seed in 0 1 2; do
    dir="$out/tau$tau-seed$seed"
    [ -f "$dir/summary.json" ] && continue
    ./target/release/amcl-train pretrain --data folder:target/data/cifar10 --method simclr \
      --temperature "$tau" --heads 1 --augs abcde --seed "$seed" --epochs 10 --eval-every 10 \
      --batch-size 128 --train-size 10000 --test-size 10000 --optimizer sgd --lr 0.06 \
      --grad-clip 1 --out "$dir" 2>&1 | grep -v '^epoch .*ETA' | tail -n 3
  done
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name in sorted(os.listdir(out)):
    s = json.load(open(os.path.join(out, name, "summary.json")))
    print(f"{name}: kNN {s['knn_top1'] * 100:.2f}, linear {s['linear_top1'] * 100:.2f}")
PY
