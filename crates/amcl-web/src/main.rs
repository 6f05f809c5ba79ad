//! The browser demo: loads weights exported by `amcl-train`, runs them with `amcl-core` on
//! WebGPU (or the CPU when there is no adapter), and shows how each head and its adaptive
//! temperature score an image pair. Build and serve it with `trunk serve` (see README.md); the
//! page itself is `index.html` + `web/app.js`, which call the functions in [`bindings`].

mod demo;
mod projection;

#[cfg(target_arch = "wasm32")]
mod bindings;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("amcl-web is the browser demo: run `trunk serve` in the repository root (README.md)");
}

// Natively: the demo's computations on the CPU. In the browser (wasm-bindgen-test): what
// differs there, WebGPU included.
#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
