#!/usr/bin/env bash
# CPU speed of amcl-train on this machine: the training step of every method on both backbones
# (in alternating rounds, medians), AMCL's per-step overhead over its base method, and the data
# pipeline on the shared CIFAR-10 JPEGs. Tables on stdout, raw JSON in target/bench/.
#
#   benches/cpu.sh              # about 10 minutes on 2 cores (ROUNDS=5: about 12)
#   ROUNDS=5 benches/cpu.sh
#   BUILD_FLAGS="--no-default-features --features x86-v4" benches/cpu.sh   # a CPU-only build (no GPU stack)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
zip="${CIFAR10_ZIP:-../shared/data/cifar10-jpg.zip}"
# shellcheck disable=SC2086
cargo build --release -p amcl-train ${BUILD_FLAGS:-}
bin=target/release/amcl-train
out=target/bench
mkdir -p "$out"

echo "small CNN (width 16, C = 3, d = 64), batch 128, every method, $rounds rounds of 20 steps" >&2
$bin bench --device cpu --method all --backbone small-cnn --rounds "$rounds" --steps 20 --json > "$out/cpu-small-cnn.json"
echo "ResNet-18 (C = 3, d = 128), batch 32, every method" >&2
$bin bench --device cpu --method all --backbone resnet18 --dim 128 --batch-size 32 --steps 3 --warmup 1 --json \
    > "$out/cpu-resnet18.json"
if [ ! -d target/data/cifar10/train ] && [ -f "$zip" ]; then
    mkdir -p target/data && python3 -m zipfile -e "$zip" target/data
fi
data=synthetic
[ -d target/data/cifar10/train ] && data=folder:target/data/cifar10
echo "data pipeline on $data" >&2
$bin bench --device cpu --pipeline --data "$data" --steps 20 --json > "$out/cpu-pipeline.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for name in ("cpu-small-cnn", "cpu-resnet18"):
    rows = json.load(open(f"{out}/{name}.json"))
    r0 = rows[0]
    print(f"\n{r0['backbone']}, batch {r0['batch_size']} (two views), {r0['device']}\n")
    print("| method | images/s | s/step | peak memory (MiB) | params | AMCL overhead per step (median of the rounds' own) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        o = r.get("overhead_vs_base")
        each = ", ".join(f"{x * 100:+.1f}" for x in r.get("overhead_rounds", []))
        shown = "" if o is None else f"{o * 100:+.1f}%" + (f" (rounds: {each})" if len(r.get("overhead_rounds", [])) > 1 else "")
        print(f"| {r['method']} | {r['images_per_s']:.1f} | {r['seconds_per_step']:.3f} | "
              f"{r['peak_memory_bytes'] / 2**20:.0f} | {r['params']:,} | {shown} |")
p = json.load(open(f"{out}/cpu-pipeline.json"))
dec = p["decode_images_per_s"]
print(f"\ndata pipeline ({p['data']}, {p['images']} images, augs {p['augs']}, batch {p['batch_size']}): "
      f"decode {'-' if dec is None else f'{dec:.0f}'} images/s, gather {p['gather_images_per_s']:.0f} images/s, "
      f"augment {p['augment_images_per_s']:.0f} images/s (two views)")
PY
