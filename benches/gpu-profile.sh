#!/usr/bin/env bash
# Where a training step's GPU time goes: cubecl's per-kernel profiler, summed by kernel. Run on a
# GPU machine after `benches/gpu.sh prepare`:
#
#   benches/gpu-profile.sh [bench flags...]     # default: ResNet-18 simclr, batch 512, cuda
#
# The warm-up step autotunes: it times every candidate kernel of every new shape, which swamps a
# few timed steps. So the bench runs twice, with 1 and with 1 + STEPS (default 10) timed steps, and
# the first run's sums are subtracted from the second's: what remains is STEPS steady steps,
# grouped by kernel family (benches/cubecl_profile.py --minus). Raw logs: target/bench/cubecl-*.log.
# PROFILE_TIMEOUT (default 240 s) bounds each run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benches/gpu.sh unpack
bin=target/gpu/amcl-train
[ -x "$bin" ] || bin=target/release/amcl-train
mkdir -p target/bench
steps="${STEPS:-10}"
flags=(--device cuda --method simclr --backbone resnet18 --heads 3 --dim 128 --batch-size 512)
[ $# -gt 0 ] && flags=("$@")
for timed in 1 $((1 + steps)); do
    log="$PWD/target/bench/cubecl-$timed.log"
    rm -f "$log"
    echo "[$(date +%T)] profiled, $timed timed steps: ${flags[*]}" >&2
    CUBECL_DEBUG_LOG="$log" CUBECL_DEBUG_OPTION=profile \
        timeout "${PROFILE_TIMEOUT:-240}" "$bin" bench "${flags[@]}" --steps "$timed" --warmup 1 >&2
done
python3 benches/cubecl_profile.py "target/bench/cubecl-$((1 + steps)).log" \
    --minus target/bench/cubecl-1.log --steps "$steps"
