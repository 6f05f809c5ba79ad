//! The JavaScript interface (wasm32 only). Every function returns JSON text, or throws a string
//! that the page shows as a message; the page keeps working after any error.

use std::cell::RefCell;

use burn::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use amcl_core::augment::Strengths;

use crate::demo::Demo;

thread_local! {
    static DEMO: RefCell<Option<std::rc::Rc<Demo>>> = const { RefCell::new(None) };
    static DEVICE: RefCell<Option<(Device, String)>> = const { RefCell::new(None) };
    /// The WebGPU device once initialisation was tried (`Some(None)`: no adapter).
    static WEBGPU: RefCell<Option<Option<Device>>> = const { RefCell::new(None) };
}

fn error(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn json(value: &impl serde::Serialize) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(error)
}

/// The device: WebGPU when `webgpu` is true and an adapter is available, else the CPU. The
/// first choice is kept for the session (see [`use_cpu`]).
async fn device(webgpu: bool) -> (Device, String) {
    if let Some(found) = DEVICE.with(|d| d.borrow().clone()) {
        return found;
    }
    let found = pick_device(webgpu).await;
    DEVICE.with(|d| *d.borrow_mut() = Some(found.clone()));
    found
}

/// Name of the CPU fallback's backend, as the badge shows it.
pub(crate) const CPU: &str = "CPU (wasm)";

/// WebGPU when asked for and `requestAdapter()` gives an adapter, otherwise the flex CPU backend.
/// A page initialises WebGPU once (burn registers one runtime per device); later calls reuse it.
pub(crate) async fn pick_device(webgpu: bool) -> (Device, String) {
    if !webgpu {
        return (Device::flex(), CPU.to_string());
    }
    let known = WEBGPU.with(|w| w.borrow().clone());
    let gpu = match known {
        Some(tried) => tried,
        None => {
            let tried = match Device::wgpu_options().init_async().await {
                Ok(device) => Some(device),
                Err(err) => {
                    web_sys::console::warn_1(
                        &format!("WebGPU unavailable ({err}); using the CPU").into(),
                    );
                    None
                }
            };
            WEBGPU.with(|w| *w.borrow_mut() = Some(tried.clone()));
            tried
        }
    };
    match gpu {
        Some(device) => (device, "WebGPU".to_string()),
        None => (Device::flex(), CPU.to_string()),
    }
}

/// Drops the GPU device (after it was lost) so that the next load uses the CPU.
#[wasm_bindgen]
pub fn use_cpu() {
    DEVICE.with(|d| *d.borrow_mut() = Some((Device::flex(), CPU.to_string())));
    DEMO.with(|d| *d.borrow_mut() = None);
}

/// The bytes at `url`, or an error naming it (and the HTTP status when the server answered).
pub(crate) async fn fetch_bytes(url: &str) -> Result<Vec<u8>, JsValue> {
    let window = web_sys::window().ok_or_else(|| error("no window"))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|_| error(format!("could not fetch the weights at {url}")))?
        .dyn_into()?;
    if !response.ok() {
        return Err(error(format!(
            "could not load the weights at {url}: HTTP {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Loads the weights at `url` (WebGPU if `webgpu` and available); returns the model's info.
#[wasm_bindgen]
pub async fn load(url: String, webgpu: bool) -> Result<String, JsValue> {
    let bytes = fetch_bytes(&url).await?;
    load_bytes(bytes, url, webgpu).await
}

/// Loads weights the page has fetched itself (to show the download's progress); `name` (their
/// URL) names them in errors. Returns the model's info, as [`load`].
#[wasm_bindgen]
pub async fn load_bytes(bytes: Vec<u8>, name: String, webgpu: bool) -> Result<String, JsValue> {
    let (device, backend) = device(webgpu).await;
    let demo = Demo::new(&bytes, device, &backend)
        .map_err(|e| error(format!("{name} is not a usable weights file: {e}")))?;
    let info = json(&demo.info())?;
    DEMO.with(|d| *d.borrow_mut() = Some(std::rc::Rc::new(demo)));
    Ok(info)
}

fn demo() -> Result<std::rc::Rc<Demo>, JsValue> {
    DEMO.with(|d| d.borrow().clone()).ok_or_else(|| error("no weights are loaded"))
}

/// Scores a pair (or two augmented views of `a` when `b` is empty); returns a `PairReport`.
/// `strengths`: the augmentations' strengths as JSON (`amcl_core::augment::Strengths`), or empty
/// for the authors'.
#[wasm_bindgen]
pub async fn score(
    a: Vec<u8>,
    a_name: String,
    b: Vec<u8>,
    b_name: String,
    augs: String,
    seed: u32,
    strengths: String,
) -> Result<String, JsValue> {
    let demo = demo()?;
    let strengths = parse_strengths(&strengths)?;
    let second = (!b.is_empty()).then_some((b.as_slice(), b_name.as_str()));
    let report = demo
        .score((&a, &a_name), second, &augs, u64::from(seed), &strengths)
        .await
        .map_err(error)?;
    json(&report)
}

/// The augmentations' strengths from JSON (`amcl_core::augment::Strengths`), or the authors'
/// when `json` is empty.
fn parse_strengths(json: &str) -> Result<Strengths, JsValue> {
    if json.is_empty() {
        return Ok(Strengths::default());
    }
    serde_json::from_str(json).map_err(|e| error(format!("strengths: {e}")))
}

/// Similarity matrices and principal-component projections of several images (concatenated in
/// `bytes`, split by `lengths`), per head; returns a `MatrixReport`. `strengths` as in [`score`].
#[wasm_bindgen]
pub async fn matrix(
    bytes: Vec<u8>,
    lengths: Vec<u32>,
    names: Vec<String>,
    augs: String,
    seed: u32,
    strengths: String,
) -> Result<String, JsValue> {
    let demo = demo()?;
    let strengths = parse_strengths(&strengths)?;
    let mut images = Vec::with_capacity(lengths.len());
    let mut start = 0usize;
    for (len, name) in lengths.iter().zip(&names) {
        let end = start + *len as usize;
        let slice = bytes.get(start..end).ok_or_else(|| error("image lengths exceed the bytes"))?;
        images.push((slice, name.as_str()));
        start = end;
    }
    let report = demo.matrix(&images, &augs, u64::from(seed), &strengths).await.map_err(error)?;
    json(&report)
}
