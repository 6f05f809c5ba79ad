#!/usr/bin/env bash
# Training-step throughput on a GPU: ResNet-18, simclr and amcl-simclr (C = 3, d = 128) at batch
# 512, amcl-train against the PyTorch reference on the same GPU. Its timeouts bound it to 10
# minutes on the GPU machine (the build happens beforehand, here: `prepare`).
#
# burn autotunes its GPU kernels during the first step of each process (each method is its own
# process): 82-106 s for ResNet-18 at batch 512 on an H200, which the warm-up steps absorb
# (reported apart as warmup_seconds) and OURS_TIMEOUT (default 420 s for both methods of one
# device) leaves room for. The whole run took 4.5 minutes there. cubecl keeps the decisions in
# target/environment/, so the second method's process reuses the first's.
#
#   benches/gpu.sh prepare    # here, on the build machine: a stripped binary in target/gpu/
#   benches/gpu.sh            # on the GPU machine (with target/gpu carried over, or a toolchain)
#   benches/gpu.sh unpack     # there: only unpack the prepared binary (gpu-profile.sh uses it)
#
# amcl-train uses CUDA when built with `--features cuda` (FEATURES=cuda, built offline by
# scripts/build-cuda-offline.sh), otherwise wgpu on the GPU's Vulkan driver (`--device auto` picks a discrete
# GPU). PyTorch runs when `python3 -c "import torch"` works there (PYTHON overrides). Results:
# a table on stdout, raw JSON in target/bench/gpu-*.json. BATCH and STEPS override the sizes;
# DEVICES="cuda wgpu" benches both backends of a CUDA build (wgpu needs the Vulkan loader).
set -euo pipefail
cd "$(dirname "$0")/.."
batch="${BATCH:-512}"
steps="${STEPS:-10}"
bin=target/gpu/amcl-train

if [ "${1:-}" = prepare ]; then
    if [ "${FEATURES:-}" = cuda ]; then
        # cudarc's bindings follow the CUDA version named here (with no nvcc on the build
        # machine it would take its newest, 13.4): 13.0 matches the lent H200's driver (580).
        export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
        bash scripts/build-cuda-offline.sh   # no download: Debian's LLVM 22 (README)
    else
        cargo build --release -p amcl-train ${FEATURES:+--features "$FEATURES"}
    fi
    mkdir -p target/gpu
    rm -f "$bin" "$bin.xz"
    strip -o "$bin" target/release/amcl-train
    # A lent machine receives at most 64 MiB: the CUDA build (LLVM inside, ~140 MB stripped)
    # travels compressed and is unpacked there.
    if [ "$(stat -c %s "$bin")" -gt 50000000 ]; then xz -T0 -6 "$bin"; fi
    ls -la target/gpu
    exit 0
fi
if [ ! -x "$bin" ] && [ -e "$bin.xz" ]; then
    xz -dk "$bin.xz" 2>/dev/null \
        || python3 -c "import lzma, sys; open(sys.argv[2], 'wb').write(lzma.open(sys.argv[1]).read())" "$bin.xz" "$bin"
    chmod +x "$bin"
fi
[ "${1:-}" = unpack ] && exit 0   # benches/gpu-profile.sh: only the binary, if prepared
if [ ! -x "$bin" ]; then
    echo "no $bin: building (run 'benches/gpu.sh prepare' beforehand to save the build time)" >&2
    timeout 420 cargo build --release -p amcl-train ${FEATURES:+--features "$FEATURES"}
    mkdir -p target/gpu && cp target/release/amcl-train "$bin"
fi
mkdir -p target/bench
rm -f target/bench/gpu-*.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

flags=(--backbone resnet18 --heads 3 --dim 128 --batch-size "$batch" --steps "$steps" --warmup 3)
# PyTorch first: it takes seconds, so its row is there even if autotuning outlasts OURS_TIMEOUT.
python="${PYTHON:-python3}"
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    for method in simclr amcl-simclr; do
        echo "[$(date +%T)] PyTorch $method" >&2
        timeout 60 "$python" benches/pytorch/bench.py --device cuda --method "$method" "${flags[@]}" --json \
            > "target/bench/gpu-torch-$method.json" || rm -f "target/bench/gpu-torch-$method.json"
    done
else
    echo "PyTorch with CUDA is not importable with $python: reporting amcl-train alone" >&2
fi

# cubecl reads cubecl.toml from the working directory up: the bench runs in target/bench, where
# this one logs every autotuning decision (kernel chosen, candidates' times) to autotune.log.
printf '[autotune.logger]\nfile = "autotune.log"\nappend = true\nlevel = "minimal"\n' \
    > target/bench/cubecl.toml
rm -f target/bench/autotune.log
# DEVICES: one or more of auto, cuda, wgpu (space-separated); each gets its own run and row.
for device in ${DEVICES:-auto}; do
    echo "[$(date +%T)] amcl-train on $device" >&2
    (cd target/bench && timeout "${OURS_TIMEOUT:-420}" "../../$bin" bench --device "$device" \
        --method simclr,amcl-simclr "${flags[@]}" --json > "gpu-ours-$device.json") \
        || { echo "amcl-train on $device failed or ran out of time (exit $?)" >&2; rm -f "target/bench/gpu-ours-$device.json"; }
done

python3 - <<'PY'
import glob, json
ours = [r for p in sorted(glob.glob("target/bench/gpu-ours-*.json")) for r in json.load(open(p))]
torch = {json.load(open(p))["method"]: json.load(open(p)) for p in glob.glob("target/bench/gpu-torch-*.json")}
print("| method | device | ours images/s | ours peak MiB | ours warm-up s | PyTorch images/s | PyTorch peak MiB | PyTorch warm-up s | ours / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|")
for r in ours:
    t = torch.get(r["method"])
    cells = [f'{t["images_per_s"]:.0f}', f'{t["peak_memory_bytes"] / 2**20:.0f}', f'{t["warmup_seconds"]:.1f}', f'{r["images_per_s"] / t["images_per_s"]:.3f}'] if t else ["-"] * 4
    print(f'| {r["method"]} | {r["device"]} | {r["images_per_s"]:.0f} | {r["peak_memory_bytes"] / 2**20:.0f} | {r["warmup_seconds"]:.1f} | ' + " | ".join(cells) + " |")
for m, t in sorted(torch.items()):
    if not any(r["method"] == m for r in ours):
        print(f'| {m} | (no amcl-train result) | - | - | - | {t["images_per_s"]:.0f} | {t["peak_memory_bytes"] / 2**20:.0f} | {t["warmup_seconds"]:.1f} | - |')
for r in ours:
    if r["method"] == "amcl-simclr" and "overhead_vs_base" in r:
        print(f'AMCL overhead per step vs simclr (ours, {r["device"]}): {r["overhead_vs_base"] * 100:+.1f}%')
t = torch.get("amcl-simclr"), torch.get("simclr")
if all(t):
    print(f'AMCL overhead per step vs simclr (PyTorch): {t[1]["images_per_s"] / t[0]["images_per_s"] * 100 - 100:+.1f}%')
PY
