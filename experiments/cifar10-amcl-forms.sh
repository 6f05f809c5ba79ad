#!/usr/bin/env bash
# Does AMCL help, in the authors' form and in this project's forms? SimCLR and MoCo, each plain
# (one head, the authors' fixed temperatures 0.5 and 0.1) against AMCL with C = 3 heads in each
# form (`--amcl-form authors`, `soft` and `centred`), on 10,000 CIFAR-10 training images and all
# 10,000 test images, seeds 0, 1, 2: 24 runs, the same budget for each. The authors' optimiser scaled to this
# machine: SGD lr 0.06, momentum 0.9, weight decay 5e-4, gradient-norm clipping at 1.0, one warm-up
# epoch and a cosine schedule; the small CNN (width 16), d = 64, batch 128, 10 epochs, augmentations
# abcde, MoCo's queue 1,024. Writes $OUT/results.md (the tables docs/RESULTS.md quotes), knn.svg,
# linear.svg, one run folder per run, and machine.txt (commit, CPU, wall time).
#
#   experiments/cifar10-amcl-forms.sh                 # the whole grid
#   experiments/cifar10-amcl-forms.sh --seeds 0       # any `amcl-train experiment` flag
#   FORMS=centred experiments/cifar10-amcl-forms.sh   # the base methods and these forms only
#
# Stopped with Ctrl-C, the same command continues where it stopped. Data: the shared CIFAR-10
# archives, unpacked once into target/data (experiments/unpack-cifar10.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/experiment-amcl-forms}"
bash experiments/unpack-cifar10.sh
# BUILD_FLAGS="--no-default-features --features x86-v4" builds the CPU backend alone (faster).
# shellcheck disable=SC2086
cargo build --release -p amcl-train ${BUILD_FLAGS:-}
source experiments/record-machine.sh
record_machine "$out" "$0" "$@"
./target/release/amcl-train experiment --data folder:target/data/cifar10 \
    --methods simclr,moco --augs abcde --seeds 0,1,2 --forms "${FORMS:-authors,soft,centred}" \
    --epochs 10 --batch-size 128 --train-size 10000 --test-size 10000 --out "$out" "$@" \
    -- --optimizer sgd --lr 0.06 --grad-clip 1
record_wall_time "$out"
