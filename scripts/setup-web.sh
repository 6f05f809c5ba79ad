#!/usr/bin/env bash
# Installs what the browser demo and its tests need, at pinned versions (idempotent, offline-safe
# once installed): the wasm32 target, trunk, wasm-bindgen-cli, wasm-opt (npm binaryen) and
# playwright-core (tests/web), and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
# Must equal the wasm-bindgen in Cargo.lock (crates/amcl-web pins it).
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)

rustup target add wasm32-unknown-unknown >/dev/null

# Build tools, not products: skip trunk's fat LTO and single codegen unit and optimise lightly
# (on 2 cores trunk then installs in ~4 minutes instead of ~10).
export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1

if ! trunk --version 2>/dev/null | grep -q "$TRUNK_VERSION"; then
  echo "installing trunk $TRUNK_VERSION"
  cargo install trunk --locked --version "$TRUNK_VERSION"
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  echo "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # No --locked: the locked set has a yanked dependency.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# wasm-opt 132 and playwright-core, from package-lock.json in tests/web.
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)

if ! command -v chromium >/dev/null; then
  echo "installing chromium"
  bash scripts/apt-install.sh chromium chromium-driver
fi
