//! Browser tests (wasm-bindgen-test, headless Chromium) of what differs on wasm: choosing WebGPU
//! or the CPU fallback, reading results back asynchronously from WebGPU, fetching weights, and
//! decoding large images in a 32-bit address space. Run them with `bash scripts/test-wasm.sh`
//! (it starts Chromium with WebGPU enabled; see `crates/amcl-web/webdriver.json`).

use amcl_core::augment::Strengths;
use amcl_core::prelude::*;
use burn::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use crate::bindings::{CPU, fetch_bytes, load, pick_device};
use crate::demo::Demo;

wasm_bindgen_test_configure!(run_in_browser);

fn config() -> AmclModelConfig {
    AmclModelConfig::new().with_width(4).with_hidden(32).with_dim(16)
}

/// Weights of a freshly initialised tiny model (3 heads, d = 16), as `amcl-train export` writes.
fn weights() -> Vec<u8> {
    let model = config().init(&Device::flex()).unwrap();
    amcl_core::weights::to_bytes(&model, &Manifest::new(config(), "amcl-simclr", 0.1)).unwrap()
}

fn png(w: u32, h: u32, tint: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, tint])
    });
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// Whether this browser gives a WebGPU adapter (`navigator.gpu.requestAdapter()` not null).
async fn has_webgpu_adapter() -> bool {
    let navigator = web_sys::window().unwrap().navigator();
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap();
    if gpu.is_undefined() {
        return false;
    }
    let request: js_sys::Function =
        js_sys::Reflect::get(&gpu, &"requestAdapter".into()).unwrap().dyn_into().unwrap();
    let promise: js_sys::Promise = request.call0(&gpu).unwrap().dyn_into().unwrap();
    !JsFuture::from(promise).await.unwrap().is_null()
}

#[wasm_bindgen_test]
async fn webgpu_is_used_exactly_when_the_browser_has_an_adapter() {
    let adapter = has_webgpu_adapter().await;
    let (_, backend) = pick_device(true).await;
    assert_eq!(backend, if adapter { "WebGPU" } else { CPU });
    // The runner starts Chromium with --enable-unsafe-webgpu, so the GPU path is exercised.
    assert!(adapter, "no WebGPU adapter: run through scripts/test-wasm.sh (webdriver.json)");
    let (_, backend) = pick_device(false).await;
    assert_eq!(backend, CPU);
}

#[wasm_bindgen_test]
async fn webgpu_scores_equal_cpu_scores() {
    let bytes = weights();
    let (gpu, backend) = pick_device(true).await;
    assert_eq!(backend, "WebGPU");
    let on_gpu = Demo::new(&bytes, gpu, &backend).unwrap();
    let on_cpu = Demo::new(&bytes, Device::flex(), CPU).unwrap();
    let (a, b) = (png(60, 45, 20), png(33, 70, 200));
    for (second, augs) in [(Some((b.as_slice(), "b.png")), ""), (None, "abcde")] {
        let g = on_gpu.score((&a, "a.png"), second, augs, 7, &Strengths::default()).await.unwrap();
        let c = on_cpu.score((&a, "a.png"), second, augs, 7, &Strengths::default()).await.unwrap();
        assert_eq!(g.heads.len(), 3);
        for (hg, hc) in g.heads.iter().zip(&c.heads) {
            for (x, y) in [
                (hg.similarity, hc.similarity),
                (hg.tau_pos, hc.tau_pos),
                (hg.scaled, hc.scaled),
                (hg.omega, hc.omega),
            ] {
                assert!((x - y).abs() < 1e-3, "augs {augs:?}: WebGPU {x} vs CPU {y}");
            }
        }
        assert!((g.amcl_score - c.amcl_score).abs() < 1e-3);
        // The same augmented pixels on both devices (up to one grey level of rounding).
        for (vg, vc) in g.views.iter().zip(&c.views) {
            let worst = vg.rgba.iter().zip(&vc.rgba).map(|(x, y)| x.abs_diff(*y)).max();
            assert!(worst <= Some(1), "views differ by {worst:?} grey levels");
        }
    }
    let images = [png(40, 40, 0), png(40, 40, 90), png(40, 40, 180)];
    let named: Vec<(&[u8], &str)> = images.iter().map(|b| (b.as_slice(), "m.png")).collect();
    let g = on_gpu.matrix(&named, "abcde", 1, &Strengths::default()).await.unwrap();
    let c = on_cpu.matrix(&named, "abcde", 1, &Strengths::default()).await.unwrap();
    for (hg, hc) in g.heads.iter().zip(&c.heads) {
        for (x, y) in hg.similarity.iter().zip(&hc.similarity).chain(hg.tau.iter().zip(&hc.tau)) {
            assert!((x - y).abs() < 1e-3, "matrix: WebGPU {x} vs CPU {y}");
        }
    }
}

#[wasm_bindgen_test]
async fn weights_load_from_a_data_url_and_bad_urls_are_named() {
    // Any URL the page is given works, a data: URL included.
    let url = format!("data:application/octet-stream;base64,{}", base64(&weights()));
    let model = load(url, false).await.unwrap_or_else(|e| panic!("{e:?}"));
    let info: serde_json::Value = serde_json::from_str(&model.info().unwrap()).unwrap();
    assert_eq!((info["heads"].as_u64(), info["backend"].as_str()), (Some(3), Some(CPU)));

    let err = fetch_bytes("/no/such/model.bpk").await.unwrap_err().as_string().unwrap();
    assert!(err.contains("/no/such/model.bpk") && err.contains("404"), "{err}");

    let Err(err) = load("data:text/plain;base64,bm90IHdlaWdodHM=".into(), false).await else {
        panic!("text loaded as weights");
    };
    let err = err.as_string().unwrap();
    assert!(err.contains("is not a usable weights file"), "{err}");
}

#[wasm_bindgen_test]
fn weights_of_another_architecture_are_refused() {
    // Tensors of a d = 16 model under a manifest that claims d = 32.
    let model = config().init(&Device::flex()).unwrap();
    let manifest = Manifest::new(config().with_dim(32), "amcl-simclr", 0.1);
    let bytes = amcl_core::weights::to_bytes(&model, &manifest).unwrap();
    let err = Demo::new(&bytes, Device::flex(), CPU).err().expect("must be refused").to_string();
    assert!(err.contains("does not match the manifest's architecture"), "{err}");
}

#[wasm_bindgen_test]
async fn large_images_are_downscaled_and_huge_ones_refused_before_decoding() {
    let demo = Demo::new(&weights(), Device::flex(), CPU).unwrap();
    // 12 megapixels: 36 MB of RGB in wasm's 32-bit address space, then resized to 32 x 32.
    let large = png(4000, 3000, 60);
    let report =
        demo.score((&large, "large.png"), None, "abcde", 0, &Strengths::default()).await.unwrap();
    assert_eq!(report.views[0].rgba.len(), 4 * 32 * 32);
    // A header claiming 20000 x 20000 pixels (400 MP): refused from the header alone.
    let huge = png_header(20_000, 20_000);
    let err = demo
        .score((&huge, "huge.png"), None, "abcde", 0, &Strengths::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("huge.png is 20000x20000 pixels"), "{err}");
}

/// A PNG file that declares an 8-bit RGB image of `w x h` but holds no pixels (an empty IDAT).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut header = w.to_be_bytes().to_vec();
    header.extend(h.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in
        [(&b"IHDR"[..], header), (b"IDAT", vec![0x78, 0x9c, 3, 0, 0, 0, 0, 1]), (b"IEND", vec![])]
    {
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        bytes.extend((data.len() as u32).to_be_bytes());
        bytes.extend(&chunk);
        bytes.extend(crc32(&chunk).to_be_bytes());
    }
    bytes
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' };
            out.push(c as char);
        }
    }
    out
}
