#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script) and as a developer runs it:
#   bash scripts/test.sh
# Installs what it needs (rustfmt, clippy, the wasm32 target), then: format check, clippy with
# warnings denied, every native test (release profile: burn's CPU kernels are slow unoptimised),
# and a wasm32 build of amcl-core (the browser demo's dependency).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo test (native, release profile)"
cargo test --workspace --release

step "cargo build -p amcl-core --target wasm32-unknown-unknown"
cargo build -p amcl-core --target wasm32-unknown-unknown

step "all checks passed"
