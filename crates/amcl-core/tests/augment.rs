//! Augmentations: shapes, value ranges, determinism, and that each of a-e does what it says.

mod common;

use amcl_core::augment::{self, AugmentConfig, AugmentationSet, Augmenter, ViewParams, colour};
use burn::prelude::*;
use common::*;

/// A batch of B random images [B, 3, S, S] in [0, 1].
fn images(b: usize, s: usize, seed: u64) -> Tensor<4> {
    from_vec(uniform(b * 3 * s * s, 0.0, 1.0, seed), [b, 3, s, s], &device())
}

fn augment(set: &str, x: Tensor<4>, seed: u64) -> Tensor<4> {
    Augmenter::new(set.parse().unwrap(), AugmentConfig::new(), seed).view(x).unwrap()
}

#[test]
fn parses_letters_and_rejects_others() {
    let set: AugmentationSet = "abcde".parse().unwrap();
    assert_eq!(set, AugmentationSet::ALL);
    assert_eq!("ea".parse::<AugmentationSet>().unwrap().letters(), "ae");
    let err = "abz".parse::<AugmentationSet>().unwrap_err().to_string();
    assert!(err.contains("'z'"), "{err}");
}

#[test]
fn shapes_and_value_range_are_kept() {
    let y = augment("abcde", images(8, 16, 1), 3);
    assert_eq!(y.dims(), [8, 3, 16, 16]);
    let v = values(y);
    assert!(v.iter().all(|x| (-1e-6..=1.0 + 1e-6).contains(x)), "values leave [0, 1]");
}

/// `view_size` resamples every view to its side: a constant image stays constant at the new
/// side, and a rank's share of a batch gets the same smaller views as the whole batch.
#[test]
fn view_size_sets_the_views_side() {
    let config = AugmentConfig::new().with_view_size(Some(12));
    let x = images(4, 16, 5);
    let mut augmenter = Augmenter::new("abcde".parse().unwrap(), config.clone(), 7);
    let (a, b) = augmenter.two_views(x.clone()).unwrap();
    assert_eq!((a.dims(), b.dims()), ([4, 3, 12, 12], [4, 3, 12, 12]));
    let grey = Tensor::<4>::full([2, 3, 16, 16], 0.5, &device());
    let view = Augmenter::new("ae".parse().unwrap(), config.clone(), 1).view(grey).unwrap();
    assert_eq!(view.dims(), [2, 3, 12, 12]);
    assert!(values(view).iter().all(|v| (v - 0.5).abs() < 1e-5));
    let mut whole = Augmenter::new("abcde".parse().unwrap(), config.clone(), 9);
    let (whole_a, _) = whole.two_views(x.clone()).unwrap();
    let mut share = Augmenter::new("abcde".parse().unwrap(), config, 9);
    let (share_a, _) = share.two_views_of_share(x.narrow(0, 2, 2), 4, 2..4).unwrap();
    assert_eq!(share_a.dims(), [2, 3, 12, 12]);
    let expected = values(whole_a.narrow(0, 2, 2));
    for (s, w) in values(share_a).iter().zip(expected) {
        assert!((s - w).abs() < 1e-5);
    }
}

#[test]
fn same_seed_same_views_other_seed_other_views() {
    let x = images(4, 16, 2);
    let a = values(augment("abcde", x.clone(), 11));
    let b = values(augment("abcde", x.clone(), 11));
    let c = values(augment("abcde", x, 12));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn empty_set_is_identity() {
    let x = images(2, 8, 3);
    let y = augment("", x.clone(), 1);
    for (a, b) in values(x).iter().zip(values(y)) {
        assert!((a - b).abs() < 1e-5);
    }
}

/// a: a crop of a horizontal ramp only shows values from inside the crop box.
#[test]
fn a_crop_shows_only_the_box() {
    let s = 16;
    let ramp: Vec<f32> = (0..3 * s * s).map(|i| (i % s) as f32 / (s - 1) as f32).collect();
    let x = from_vec(ramp, [1, 3, s, s], &device());
    let mut view = ViewParams::identity(s, s);
    view.crop = (2.0, 4.0, 8.0, 6.0); // columns 4..10: pixel edges 3.5..9.5 in centre coordinates
    let y = values(augment::apply(x, &[view], s, s));
    let (lo, hi) = (3.5 / 15.0 - 1e-4, 9.5 / 15.0 + 1e-4);
    assert!(y.iter().all(|v| (lo..=hi).contains(v)), "crop leaked outside its box");
    let spread =
        y.iter().cloned().fold(f32::MIN, f32::max) - y.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 0.2, "crop should still show the ramp");
}

/// a: sampled boxes lie inside the image with area fraction in [0.08, 1].
#[test]
fn a_crop_boxes_respect_scale() {
    let mut aug = Augmenter::new("a".parse().unwrap(), AugmentConfig::new(), 5);
    for p in aug.sample(500, 32, 32) {
        let (top, left, h, w) = p.crop;
        assert!(top >= 0.0 && left >= 0.0 && top + h <= 32.001 && left + w <= 32.001);
        let area = h * w / (32.0 * 32.0);
        assert!((0.079..=1.001).contains(&area), "area {area}");
    }
}

/// b: blur lowers pixel variance and keeps the mean; about half the images are blurred.
#[test]
fn b_blur_smooths_half_the_images() {
    let x = images(1, 16, 7);
    let mut view = ViewParams::identity(16, 16);
    view.blur_sigma = Some(1.0);
    let y = values(augment::apply(x.clone(), &[view], 16, 16));
    let xv = values(x);
    let var = |v: &[f32]| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|a| (a - m).powi(2)).sum::<f32>() / v.len() as f32, m)
    };
    let ((vx, mx), (vy, my)) = (var(&xv), var(&y));
    assert!(vy < 0.5 * vx, "variance {vx} -> {vy}");
    assert!((mx - my).abs() < 0.02);
    let mut aug = Augmenter::new("b".parse().unwrap(), AugmentConfig::new(), 9);
    let blurred = aug.sample(1000, 32, 32).iter().filter(|p| p.blur_sigma.is_some()).count();
    assert!((400..600).contains(&blurred), "{blurred} of 1000 blurred");
}

/// c: grayscale makes the three channels equal, for about 20% of images.
#[test]
fn c_grayscale_equalises_channels() {
    let b = 200;
    let y = values(augment("c", images(b, 4, 8), 13));
    let plane = 16;
    let gray = (0..b)
        .filter(|i| {
            let img = &y[i * 3 * plane..(i + 1) * 3 * plane];
            (0..plane).all(|p| {
                (img[p] - img[plane + p]).abs() < 1e-5 && (img[p] - img[2 * plane + p]).abs() < 1e-5
            })
        })
        .count();
    assert!((20..60).contains(&gray), "{gray} of {b} gray");
}

/// d: jitter changes colours of about 80% of images and stays in range.
#[test]
fn d_jitter_changes_colours() {
    let b = 100;
    let x = images(b, 4, 9);
    let y = values(augment("d", x.clone(), 14));
    let xv = values(x);
    let per = 3 * 16;
    let changed =
        (0..b).filter(|i| (i * per..(i + 1) * per).any(|j| (xv[j] - y[j]).abs() > 1e-3)).count();
    assert!((65..95).contains(&changed), "{changed} of {b} jittered");
    let hue = colour::hue_matrix(0.0);
    for (i, v) in hue.iter().enumerate() {
        let id = if i % 4 == 0 { 1.0 } else { 0.0 };
        assert!((v - id).abs() < 1e-2, "zero hue shift must be ~identity: {hue:?}");
    }
}

/// e: each output is the input or its mirror image, about half mirrored.
#[test]
fn e_flip_mirrors_half_the_images() {
    let (b, s) = (100, 4);
    let x = images(b, s, 10);
    let y = values(augment("e", x.clone(), 15));
    let xv = values(x);
    let idx = |i: usize, c: usize, r: usize, col: usize| ((i * 3 + c) * s + r) * s + col;
    let mut flipped = 0;
    for i in 0..b {
        let same = (0..3).all(|c| {
            (0..s).all(|r| (0..s).all(|k| (y[idx(i, c, r, k)] - xv[idx(i, c, r, k)]).abs() < 1e-5))
        });
        let mirror = (0..3).all(|c| {
            (0..s).all(|r| {
                (0..s).all(|k| (y[idx(i, c, r, k)] - xv[idx(i, c, r, s - 1 - k)]).abs() < 1e-5)
            })
        });
        assert!(same || mirror, "image {i} is neither itself nor its mirror");
        flipped += usize::from(mirror && !same);
    }
    assert!((35..65).contains(&flipped), "{flipped} of {b} flipped");
}

#[test]
fn wrong_channel_count_is_an_error() {
    let x = Tensor::<4>::zeros([2, 1, 8, 8], &device());
    let err = Augmenter::new(AugmentationSet::ALL, AugmentConfig::new(), 0).view(x).unwrap_err();
    assert!(err.to_string().contains("3 channels"), "{err}");
}
