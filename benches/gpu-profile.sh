#!/usr/bin/env bash
# Where a training step's GPU time goes: cubecl's per-kernel profiler on one `amcl-train bench`
# run, summed by kernel name. Run on a GPU machine after `benches/gpu.sh prepare`:
#
#   benches/gpu-profile.sh [bench flags...]     # default: ResNet-18 simclr, batch 512, cuda
#
# Prints the step time (with the profiler on) and the kernels by total time and count.
# The raw log is target/bench/cubecl.log. The sums include the warm-up step, where burn's
# autotuning times its candidate kernels (as runs of those kernels): raise STEPS (default 2) to
# weigh the timed steps more.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benches/gpu.sh unpack
bin=target/gpu/amcl-train
[ -x "$bin" ] || bin=target/release/amcl-train
mkdir -p target/bench
log="$PWD/target/bench/cubecl.log"
rm -f "$log"
flags=(--device cuda --method simclr --backbone resnet18 --heads 3 --dim 128 --batch-size 512)
[ $# -gt 0 ] && flags=("$@")
echo "[$(date +%T)] profiled: ${flags[*]}" >&2
CUBECL_DEBUG_LOG="$log" CUBECL_DEBUG_OPTION=profile \
    timeout "${PROFILE_TIMEOUT:-240}" "$bin" bench "${flags[@]}" --steps "${STEPS:-2}" --warmup 1 >&2
python3 benches/cubecl_profile.py "$log"
