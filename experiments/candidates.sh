#!/usr/bin/env bash
# Which AMCL form should be the default? Single-seed screening runs of the candidate forms of
# docs/RESULTS.md ("Choosing the default form") against the authors' form and the base methods:
# the small CNN (width 16), 6,000 CIFAR-10 training images, all 10,000 test images, batch 128,
# d = 64, 10 epochs, SGD lr 0.06 with weight decay 5e-4 and gradient clipping at 1.0 (the authors'
# optimiser), augmentations abcde, seed 0. Each run is a `pretrain` run folder under $OUT;
# finished ones are skipped, so the script continues where it stopped.
#
#   experiments/candidates.sh            # every candidate
#   experiments/candidates.sh NAME...    # only these (names below)
#
# The two concat candidates (the earlier per-head temperature networks, `--temperature-net
# concat`) ran at commit d33d99b; that form was removed after them, so they run only there.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/candidates}"
data=target/data/cifar10
bash experiments/unpack-cifar10.sh
# BUILD_FLAGS="--no-default-features --features x86-v4" builds the CPU backend alone (faster).
# shellcheck disable=SC2086
cargo build --release -p amcl-train ${BUILD_FLAGS:-} >&2
common=(--data "folder:$data" --train-size 6000 --test-size 10000 --epochs 10 --eval-every 5
        --batch-size 128 --seed 0)
# The authors' optimiser, for every candidate but the one that names its own.
sgd="--optimizer sgd --lr 0.06 --grad-clip 1"
declare -A runs=(
  [simclr]="$sgd --method simclr"
  [amcl-simclr-authors]="$sgd --method amcl-simclr --amcl-form authors"
  [amcl-simclr-authors-adam]="--optimizer adam --lr 1e-3 --method amcl-simclr --amcl-form authors"
  [amcl-simclr-authors-lo0.05]="$sgd --method amcl-simclr --amcl-form authors --tau-min 0.05"
  [amcl-simclr-authors-beta1]="$sgd --method amcl-simclr --amcl-form authors --beta 1"
  [amcl-simclr-authors-init]="$sgd --method amcl-simclr --amcl-form authors --tau-init 0.5"
  [amcl-simclr-soft-noinit]="$sgd --method amcl-simclr --amcl-form soft --tau-init 1.0 --tau-max 2.5"
  [amcl-simclr-soft]="$sgd --method amcl-simclr --amcl-form soft"
  [amcl-simclr-soft-posomega]="$sgd --method amcl-simclr --amcl-form soft --beta-positive 1"
  [amcl-simclr-authors-posomega]="$sgd --method amcl-simclr --amcl-form authors --beta-positive 1"
  [amcl-simclr-centred]="$sgd --method amcl-simclr --amcl-form centred"
  [amcl-simclr-centred-topk]="$sgd --method amcl-simclr --amcl-form centred --reduction topk"
  [amcl-simclr-centred-0.1]="$sgd --method amcl-simclr --amcl-form centred --tau-max 0.2"
  [simclr-0.1]="$sgd --method simclr --temperature 0.1"
  [amcl-simclr-centred-0.2]="$sgd --method amcl-simclr --amcl-form centred --tau-max 0.4"
  [simclr-0.2]="$sgd --method simclr --temperature 0.2"
  [amcl-simclr-centred-0.3]="$sgd --method amcl-simclr --amcl-form centred --tau-max 0.6"
  [moco]="$sgd --method moco"
  [amcl-moco-centred]="$sgd --method amcl-moco --amcl-form centred"
  [amcl-moco-authors]="$sgd --method amcl-moco --amcl-form authors"
  [amcl-moco-soft]="$sgd --method amcl-moco --amcl-form soft"
)
order=(simclr amcl-simclr-authors amcl-simclr-soft amcl-simclr-authors-init
       amcl-simclr-authors-lo0.05 amcl-simclr-authors-beta1 amcl-simclr-soft-noinit
       moco amcl-moco-authors amcl-moco-soft amcl-simclr-authors-adam
       amcl-simclr-soft-posomega amcl-simclr-authors-posomega
       amcl-simclr-centred amcl-moco-centred amcl-simclr-centred-topk simclr-0.1
       amcl-simclr-centred-0.1 amcl-simclr-centred-0.2 simclr-0.2 amcl-simclr-centred-0.3)
[ $# -gt 0 ] && order=("$@")
mkdir -p "$out"
for name in "${order[@]}"; do
  [ -n "${runs[$name]+x}" ] || { echo "unknown candidate $name (known: ${!runs[*]})" >&2; exit 2; }
  if [ -f "$out/$name/summary.json" ]; then echo "$name: done before" >&2; continue; fi
  echo "== $name: ${runs[$name]}" >&2
  start=$(date +%s)
  # shellcheck disable=SC2086
  ./target/release/amcl-train pretrain "${common[@]}" ${runs[$name]} --out "$out/$name" 2>&1 \
    | grep -v '^epoch .*ETA' | tail -n 20
  echo "$name: $(( $(date +%s) - start )) s" >&2
done
