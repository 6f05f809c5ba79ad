//! The built-in dataset: procedurally generated shapes, needing no files.
//!
//! Ten classes, each a shape (disc, square, triangle, plus, ring, horizontal bars, vertical bars,
//! checkerboard, diagonal stripes, cross), repeated three to six times per image at random
//! positions and sizes, in muted random foreground and background colours, with pixel noise. Colour,
//! position and scale are nuisances that the augmentations (crop, colour jitter, grayscale,
//! flip) vary too, while the shape survives them: kNN accuracy on it says whether training
//! learned shape rather than colour.

use amcl_core::rng::Rng;

use super::Dataset;

/// Class names of the built-in dataset.
pub const CLASSES: [&str; 10] = [
    "disc",
    "square",
    "triangle",
    "plus",
    "ring",
    "horizontal-bars",
    "vertical-bars",
    "checkerboard",
    "diagonal-stripes",
    "cross",
];

/// Generates `len` images of side `size` from `seed`, classes in turn.
pub fn generate(len: usize, size: usize, seed: u64) -> Dataset {
    let mut data = Dataset::empty(size, CLASSES.iter().map(|s| s.to_string()).collect());
    let mut rng = Rng::new(seed);
    for i in 0..len {
        let class = i % CLASSES.len();
        let image = draw(class, size, &mut rng);
        data.push(&image, class);
    }
    data
}

/// Whether the point (u, v), relative to the shape's centre in units of its radius, is inside
/// the shape of `class`.
fn inside(class: usize, u: f32, v: f32) -> bool {
    let (au, av) = (u.abs(), v.abs());
    match class {
        0 => u * u + v * v < 1.0,
        1 => au < 0.8 && av < 0.8,
        2 => v < 0.8 && v > -0.9 && au < (v + 0.9) * 0.6,
        3 => (au < 0.3 && av < 1.0) || (av < 0.3 && au < 1.0),
        4 => {
            let r = (u * u + v * v).sqrt();
            (0.6..1.0).contains(&r)
        }
        5 => au < 1.0 && av < 1.0 && ((v + 1.0) * 2.5).floor() as i32 % 2 == 0,
        6 => au < 1.0 && av < 1.0 && ((u + 1.0) * 2.5).floor() as i32 % 2 == 0,
        7 => {
            au < 1.0
                && av < 1.0
                && (((u + 1.0) * 2.0).floor() + ((v + 1.0) * 2.0).floor()) as i32 % 2 == 0
        }
        8 => au < 1.0 && av < 1.0 && ((u + v + 2.0) * 2.0).floor() as i32 % 2 == 0,
        _ => (au - av).abs() < 0.25 && au < 1.0,
    }
}

/// One image of `class`: channel-major bytes. Three to six copies of the class's shape at random
/// positions and sizes, so that any crop of the image still shows the class.
fn draw(class: usize, size: usize, rng: &mut Rng) -> Vec<u8> {
    // Muted colours: a grey level with a slight tint. Colour then says little about an image,
    // and what tells two images apart (as instance discrimination must) is the shapes' layout.
    let level = rng.uniform();
    let fg: [f32; 3] = std::array::from_fn(|_| (level + rng.range(-0.1, 0.1)).clamp(0.0, 1.0));
    // The background differs from the foreground in brightness, so a grayscale view keeps the shape.
    let shift = if level > 0.5 { -rng.range(0.35, 0.6) } else { rng.range(0.35, 0.6) };
    let bg: [f32; 3] =
        std::array::from_fn(|c| (fg[c] + shift + rng.range(-0.1, 0.1)).clamp(0.0, 1.0));
    let s = size as f32;
    let copies: Vec<(f32, f32, f32)> = (0..3 + rng.below(4))
        .map(|_| {
            let radius = rng.range(0.12, 0.22) * s;
            (rng.range(0.0, s), rng.range(0.0, s), radius)
        })
        .collect();
    let noise = rng.range(0.02, 0.08);
    let mut out = vec![0u8; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let on = copies.iter().any(|&(cx, cy, r)| inside(class, (px - cx) / r, (py - cy) / r));
            let colour = if on { fg } else { bg };
            for c in 0..3 {
                let value = (colour[c] + noise * rng.normal()).clamp(0.0, 1.0);
                out[(c * size + y) * size + x] = (value * 255.0).round() as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_balanced() {
        let a = generate(40, 16, 3);
        let b = generate(40, 16, 3);
        assert_eq!(a.pixels, b.pixels);
        assert_eq!(a.pixels.len(), 40 * 3 * 16 * 16);
        assert!((0..10).all(|c| a.labels.iter().filter(|&&l| l == c).count() == 4));
        assert_ne!(generate(40, 16, 4).pixels, a.pixels);
    }
}
