//! The JavaScript interface (wasm32 only). `load` / `load_bytes` give the page a [`Model`], whose
//! methods return JSON text, or throw a string that the page shows as a message; the page keeps
//! working after any error. The only state kept here is the device a page runs on.

use std::cell::RefCell;
use std::rc::Rc;

use burn::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use amcl_core::augment::Strengths;

use crate::demo::Demo;

thread_local! {
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

/// A loaded model on its device, as the page holds it.
#[wasm_bindgen]
pub struct Model {
    demo: Rc<Demo>,
}

/// Loads the weights at `url` (WebGPU if `webgpu` and available).
#[wasm_bindgen]
pub async fn load(url: String, webgpu: bool) -> Result<Model, JsValue> {
    let bytes = fetch_bytes(&url).await?;
    load_bytes(bytes, url, webgpu).await
}

/// Loads weights the page has fetched itself (to show the download's progress); `name` (their
/// URL) names them in errors.
#[wasm_bindgen]
pub async fn load_bytes(bytes: Vec<u8>, name: String, webgpu: bool) -> Result<Model, JsValue> {
    let (device, backend) = device(webgpu).await;
    let demo = Demo::new(&bytes, device, &backend)
        .map_err(|e| error(format!("{name} is not a usable weights file: {e}")))?;
    Ok(Model { demo: Rc::new(demo) })
}

#[wasm_bindgen]
impl Model {
    /// The model's description (`ModelInfo` as JSON): method, backbone, heads, d, backend.
    pub fn info(&self) -> Result<String, JsValue> {
        json(&self.demo.info())
    }

    /// Scores a pair (or two augmented views of `a` when `b` is empty); resolves to a
    /// `PairReport` as JSON. `strengths`: the augmentations' strengths as JSON
    /// (`amcl_core::augment::Strengths`), or empty for the authors'.
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &self,
        a: Vec<u8>,
        a_name: String,
        b: Vec<u8>,
        b_name: String,
        augs: String,
        seed: u32,
        strengths: String,
    ) -> js_sys::Promise {
        let demo = self.demo.clone();
        future_to_promise(async move {
            let strengths = parse_strengths(&strengths)?;
            let second = (!b.is_empty()).then_some((b.as_slice(), b_name.as_str()));
            let report = demo
                .score((&a, &a_name), second, &augs, u64::from(seed), &strengths)
                .await
                .map_err(error)?;
            Ok(JsValue::from_str(&json(&report)?))
        })
    }

    /// Similarity matrices and principal-component projections of several images (concatenated
    /// in `bytes`, split by `lengths`), per head; resolves to a `MatrixReport` as JSON.
    /// `strengths` as in [`Model::score`].
    pub fn matrix(
        &self,
        bytes: Vec<u8>,
        lengths: Vec<u32>,
        names: Vec<String>,
        augs: String,
        seed: u32,
        strengths: String,
    ) -> js_sys::Promise {
        let demo = self.demo.clone();
        future_to_promise(async move {
            let strengths = parse_strengths(&strengths)?;
            let mut images = Vec::with_capacity(lengths.len());
            let mut start = 0usize;
            for (len, name) in lengths.iter().zip(&names) {
                let end = start + *len as usize;
                let slice =
                    bytes.get(start..end).ok_or_else(|| error("image lengths exceed the bytes"))?;
                images.push((slice, name.as_str()));
                start = end;
            }
            let report =
                demo.matrix(&images, &augs, u64::from(seed), &strengths).await.map_err(error)?;
            Ok(JsValue::from_str(&json(&report)?))
        })
    }
}

/// The augmentations' strengths from JSON (`amcl_core::augment::Strengths`), or the authors'
/// when `json` is empty.
fn parse_strengths(json: &str) -> Result<Strengths, JsValue> {
    if json.is_empty() {
        return Ok(Strengths::default());
    }
    serde_json::from_str(json).map_err(|e| error(format!("strengths: {e}")))
}
