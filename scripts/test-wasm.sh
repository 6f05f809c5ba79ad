#!/usr/bin/env bash
# The demo's unit tests in the browser (crates/amcl-web/src/browser_tests.rs): wasm-bindgen-test
# in headless Chromium, with WebGPU (SwiftShader, --enable-unsafe-webgpu) as set in
# crates/amcl-web/webdriver.json. Needs scripts/setup-web.sh's tools (wasm-bindgen-test-runner
# comes with wasm-bindgen-cli; chromium and chromedriver from Debian).
#   bash scripts/test-wasm.sh [test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/crates/amcl-web/webdriver.json"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-600}
# The release profile, so that burn's build is shared with `trunk build --release`.
cargo test --release --target wasm32-unknown-unknown -p amcl-web -- "$@"
