//! The browser demo (work in progress): it will load weights exported by `amcl-train`, run them
//! with `amcl-core` on WebGPU (falling back to the CPU), and show how each head and its adaptive
//! temperature score an image pair. For now this crate only checks that the demo's dependency
//! graph builds; `amcl-core` itself is built for wasm32 in CI (`scripts/test.sh`).

fn main() {
    println!(
        "amcl-web: the browser demo is not built yet; see README.md (amcl-core {} heads by default)",
        amcl_core::model::AmclModelConfig::new().heads
    );
}
