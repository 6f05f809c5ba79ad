#!/usr/bin/env bash
# Does AMCL help? Each base method (simclr, moco, barlow) against its AMCL version on a
# CIFAR-10 subset with the small CNN, augmentation sets "a" and "abcde", seeds 0, 1, 2: 36 runs,
# about an hour on a 2-core CPU. Writes runs/experiment-cifar10/results.md (the table),
# knn.svg / linear.svg, one run folder per run, and machine.txt (commit, CPU, wall time).
#
#   experiments/cifar10-subset.sh                  # the whole grid
#   experiments/cifar10-subset.sh --seeds 0        # any `amcl-train experiment` flag
#
# Stopped with Ctrl-C, the same command continues where it stopped. Data: the shared
# cifar10-jpg.zip (CIFAR10_ZIP overrides its path), unpacked once into target/data.
set -euo pipefail
cd "$(dirname "$0")/.."
zip="${CIFAR10_ZIP:-../shared/data/cifar10-jpg.zip}"
data=target/data/cifar10
out="${OUT:-runs/experiment-cifar10}"

if [ ! -d "$data/train" ]; then
    [ -f "$zip" ] || { echo "error: $zip not found (set CIFAR10_ZIP to the cifar10-jpg.zip)" >&2; exit 1; }
    echo "unpacking $zip into target/data" >&2
    mkdir -p target/data
    python3 -m zipfile -e "$zip" target/data
fi
cargo build --release -p amcl-train
source experiments/record-machine.sh
record_machine "$out" "$0" "$@"
./target/release/amcl-train experiment --data "folder:$data" --out "$out" "$@"
record_wall_time "$out"
