#!/usr/bin/env bash
# Training throughput of one rank against two (docs/RESULTS.md, section 5): the same run of
# amcl-simclr (small CNN, batch 256, synthetic 32x32 images) on one device, on two ranks as
# threads of one process (`--devices cpu,cpu`) and on two processes over loopback
# (`--rank --world --address`). Each takes ROUNDS turns (default 3); the medians of the
# epoch's images/s (from metrics.jsonl, the training steps alone) are printed as a table.
#
#   benches/distributed.sh                 # markdown table on stdout, runs in target/bench/ddp
#   WIDTH=16 STEPS=20 ROUNDS=5 benches/distributed.sh
#   BIN=/path/to/amcl-train benches/distributed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
width="${WIDTH:-32}"
steps="${STEPS:-12}"
batch=256
bin="${BIN:-./target/release/amcl-train}"
if [ -z "${BIN:-}" ]; then
    # shellcheck disable=SC2086
    cargo build --release -p amcl-train ${BUILD_FLAGS:-} >&2
fi
out=target/bench/ddp
rm -rf "$out"
mkdir -p "$out"
flags=(pretrain --method amcl-simclr --backbone small-cnn --width "$width" --batch-size "$batch"
    --train-size $((steps * batch)) --test-size 200 --data synthetic --epochs 1 --seed 0)

rate() { # images/s of the run in $1
    python3 -c 'import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
print([r for r in records if r["kind"] == "epoch"][-1]["images_per_s"])' "$1/metrics.jsonl"
}

for round in $(seq "$rounds"); do
    echo "round $round/$rounds" >&2
    "$bin" "${flags[@]}" --device cpu --out "$out/one-$round" > /dev/null 2>&1
    "$bin" "${flags[@]}" --devices cpu,cpu --out "$out/threads-$round" > /dev/null 2>&1
    port=$((29500 + round))
    "$bin" "${flags[@]}" --device cpu --rank 1 --world 2 --address "127.0.0.1:$port" \
        --out "$out/processes-$round" > /dev/null 2>&1 &
    "$bin" "${flags[@]}" --device cpu --rank 0 --world 2 --address "127.0.0.1:$port" \
        --out "$out/processes-$round" > /dev/null 2>&1
    wait
done

echo "| ranks | images/s (median of $rounds) | relative to one device |"
echo "|---|---|---|"
one=""
for kind in one threads processes; do
    median=$(for r in $(seq "$rounds"); do rate "$out/$kind-$r"; done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    [ -z "$one" ] && one="$median"
    label=$([ "$kind" = one ] && echo "1 (--device cpu)" || ([ "$kind" = threads ] && echo "2 threads (--devices cpu,cpu)" || echo "2 processes over loopback"))
    python3 -c "print(f'| $label | {float($median):.0f} | {float($median)/float($one):.2f} |')"
done
echo
echo "amcl-simclr, small CNN width $width, batch $batch, $steps steps; $(nproc) CPU cores."
