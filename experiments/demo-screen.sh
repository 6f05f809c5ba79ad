#!/usr/bin/env bash
# Screens settings for the demo's weights (docs/RESULTS.md, section 4, "Toward 65 %"): each
# candidate is experiments/demo-weights.sh's run with one change, trained on the same schedule and
# stopped (Ctrl-C) once its epoch-10 kNN is recorded, so the number compares with the shipped run's
# epoch-10 kNN. About 10 minutes a candidate at width 16 on 2 cores. The screenings in RESULTS ran
# before 24-pixel views and 150 epochs became the settings: VIEW_SIZE=32 EPOCHS=100 repeats them.
#
#   VIEW_SIZE=32 EPOCHS=100 experiments/demo-screen.sh "noclip:--grad-clip 0" "lr0.3:--lr 0.3" "width20:--width 20"
#
# Each argument is NAME:FLAGS; the run goes to runs/screen/NAME, and a line "NAME kNN loss" is
# appended to runs/screen/results.txt. AT=N reads the kNN at epoch N instead of 10; with
# `--epochs N --eval-every N` among the flags, each candidate is a whole short schedule (its
# learning rate decayed to 0), a closer likeness of the full run than its early epochs:
#
#   VIEW_SIZE=32 AT=15 experiments/demo-screen.sh "base15:--epochs 15 --eval-every 15" \
#     "crop0.2-15:--epochs 15 --eval-every 15 --crop-scale 0.2"
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 NAME:FLAGS ..." >&2; exit 2; }
bash experiments/unpack-cifar10.sh
# shellcheck disable=SC2086
cargo build --release -p amcl-train ${BUILD_FLAGS:-} >&2
bin=./target/release/amcl-train
source experiments/demo-flags.sh
mkdir -p runs/screen
at="${AT:-10}"
for candidate in "$@"; do
  name="${candidate%%:*}"
  out="runs/screen/$name"
  # The shipped run's settings (demo-flags.sh), each flag the candidate names replaced.
  read -r -a changes <<< "${candidate#*:}"
  demo_args_with "${changes[@]}"
  rm -rf "$out"
  "$bin" pretrain "${demo_args[@]}" --out "$out" > "$out.log" 2>&1 &
  pid=$!
  # Stop after the epoch-AT record with its kNN (the run's checkpoint stays, resumable).
  while kill -0 "$pid" 2> /dev/null; do
    if grep -q "\"kind\":\"epoch\",\"epoch\":$at,.*\"knn_top1\":0" "$out/metrics.jsonl" 2> /dev/null; then
      kill -INT "$pid"
    fi
    sleep 5
  done
  wait "$pid" || true
  python3 - "$name" "$out/metrics.jsonl" "$at" >> runs/screen/results.txt << 'PY'
import json, sys
name, path, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
for line in open(path):
    v = json.loads(line)
    if v["kind"] == "epoch" and v["epoch"] == at:
        print(f"{name} kNN {100 * v['knn_top1']:.2f} % loss {v['loss']:.2f} (epoch {at})")
PY
  tail -1 runs/screen/results.txt
done
