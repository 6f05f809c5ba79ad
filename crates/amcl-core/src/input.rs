//! Images into the model: PNG or JPEG bytes -> RGB at the model's side (bilinear resize) ->
//! channel-major bytes -> a `[B, 3, S, S]` tensor in [0, 1]. The trainer, `score` and the browser
//! all use these functions, so they feed the model identical pixels.

use burn::prelude::*;

use crate::error::{AmclError, Result};

/// Largest image accepted, in pixels (about 64 megapixels); larger files are refused before
/// decoding allocates their memory.
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Decodes PNG or JPEG `bytes` (named `name` in errors) to channel-major RGB bytes at
/// `size x size`.
pub fn decode_chw(bytes: &[u8], size: usize, name: &str) -> Result<Vec<u8>> {
    let not_image = |e: image::ImageError| {
        AmclError::Image(format!("{name} is not a readable PNG or JPEG image ({e})"))
    };
    // A reader that refuses allocations beyond the pixel limit.
    let reader = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| AmclError::Image(format!("{name}: {e}")))?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_PIXELS * 4);
        reader.limits(limits);
        Ok(reader)
    };
    let (w, h) = reader()?.into_dimensions().map_err(not_image)?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(AmclError::Image(format!(
            "{name} is {w}x{h} pixels, more than the {} megapixels accepted",
            MAX_PIXELS / (1024 * 1024)
        )));
    }
    let reader = reader()?;
    let image = reader.decode().map_err(not_image)?;
    Ok(rgb_to_chw(&image.to_rgb8(), size))
}

/// Resizes an RGB image to `size x size` (bilinear, "triangle") and lays it out channel-major.
pub fn rgb_to_chw(image: &image::RgbImage, size: usize) -> Vec<u8> {
    let side = size as u32;
    let resized;
    let image = if image.width() == side && image.height() == side {
        image
    } else {
        resized = image::imageops::resize(image, side, side, image::imageops::FilterType::Triangle);
        &resized
    };
    let mut out = vec![0u8; 3 * size * size];
    for (x, y, pixel) in image.enumerate_pixels() {
        for c in 0..3 {
            out[(c * size + y as usize) * size + x as usize] = pixel[c];
        }
    }
    out
}

/// Channel-major images (`3 * size * size` bytes each) as a `[B, 3, size, size]` tensor in [0, 1].
pub fn to_tensor(images: &[&[u8]], size: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> =
        images.iter().flat_map(|img| img.iter().map(|&p| p as f32 / 255.0)).collect();
    Tensor::from_data(TensorData::new(values, [images.len(), 3, size, size]), device)
}
