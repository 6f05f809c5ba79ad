#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script) and as a developer runs it:
#   bash scripts/test.sh
# Installs what it needs (rustfmt, clippy, the wasm32 target; for the demo trunk, wasm-bindgen,
# wasm-opt, playwright-core and chromium via scripts/setup-web.sh), then: format check, clippy
# with warnings denied, every native test (release profile: burn's CPU kernels are slow
# unoptimised; again with the CPU kernels capped at AVX2 and at x86-64's baseline), the
# demo's release build (wasm32), its download size, its unit tests in the
# browser (wasm-bindgen-test), and its end-to-end test in headless Chromium (WebGPU and the CPU
# fallback).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's header says how long the suite has run so far (a cold run should stay well under
# an hour on 2 cores).
step() { printf '\n==> %s   [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings
# The demo's wasm-only code (bindings, browser tests) is compiled for wasm32 alone.
cargo clippy -p amcl-web --target wasm32-unknown-unknown --all-targets --release -- -D warnings

# Native tests run on the CPU backend, so they are built without amcl-train's default `wgpu`
# feature: burn's GPU stack (cubecl, wgpu, naga; a third of a cold build) is left out here. The
# default features are still linted above, and compiled, linked and run below in the CUDA build,
# which has them too.
step "cargo test (native, release profile, CPU backend)"
cargo test --workspace --release --no-default-features --features amcl-train/x86-v4

# The CPU kernels (flex-kernels) pick the widest vector instructions the CPU has; AMCL_CPU_SIMD
# caps them, so that the copies an AVX2-only or older x86-64 CPU runs are tested here too. The
# test programs of flex-kernels (each kernel against burn's op) and of amcl-core (the model and
# objective, which run on the kernels) run again from the build above, nothing recompiled; the
# trainer's end-to-end tests add no kernel of their own.
core_tests=$(cargo test --workspace --release --no-default-features --features amcl-train/x86-v4 \
  --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["profile"]["test"] \
            and any(f"/crates/{c}/" in m["manifest_path"] for c in ("flex-kernels", "amcl-core")):
        print(m["manifest_path"].rsplit("/", 1)[0], m["executable"])')
[ -n "$core_tests" ] || { echo "no flex-kernels or amcl-core test programs found" >&2; exit 1; }
for level in avx2 baseline; do
  step "flex-kernels' and amcl-core's tests with the kernels capped at $level (AMCL_CPU_SIMD=$level)"
  while read -r crate_dir program; do
    (cd "$crate_dir" && AMCL_CPU_SIMD=$level "$program" -q </dev/null)
  done <<<"$core_tests"
done

step "CUDA build, offline with Debian's LLVM 22 (scripts/build-cuda-offline.sh; compile and link)"
bash scripts/build-cuda-offline.sh --profile cuda-link-check
# It runs here (the default features, wgpu included, plus cuda): on the CPU; `--device auto`
# probes CUDA and wgpu's hardware adapters and takes the CPU when it finds none (as here); and
# `--device cuda` without a GPU is a clean error, not a panic.
cuda_bin=target/cuda-link-check/amcl-train
"$cuda_bin" score web/examples/disc.png web/examples/ring.png --weights web/model.bpk --device cpu --json >/dev/null
"$cuda_bin" score web/examples/disc.png web/examples/ring.png --weights web/model.bpk --device auto --json >target/auto.json
grep '"backend"' target/auto.json || { cat target/auto.json; echo "amcl-train --device auto: no backend" >&2; exit 1; }
if "$cuda_bin" score web/examples/disc.png --augs a --weights web/model.bpk --device cuda 2>target/cuda-err.txt \
   || ! grep -q "no CUDA GPU could be initialised" target/cuda-err.txt || grep -q panicked target/cuda-err.txt; then
  cat target/cuda-err.txt; echo "amcl-train --features cuda: expected a clean 'no CUDA GPU' error" >&2; exit 1
fi

step "browser demo tools (scripts/setup-web.sh)"
bash scripts/setup-web.sh

step "trunk build --release (the demo, wasm32 + wasm-opt)"
PATH="$PWD/tests/web/node_modules/.bin:$PATH" trunk build --release

step "demo download size"
bash scripts/web-size.sh

step "demo unit tests in the browser (wasm-bindgen-test, scripts/test-wasm.sh)"
bash scripts/test-wasm.sh

step "demo end to end in headless Chromium (tests/web/e2e.mjs)"
node tests/web/e2e.mjs

step "all checks passed"
