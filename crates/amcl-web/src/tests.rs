//! Native tests of the demo's computations (the browser runs the same code on WebGPU or wasm).

use amcl_core::augment::Strengths;
use amcl_core::prelude::*;
use burn::prelude::*;

use crate::demo::Demo;

fn png(tint: u8) -> Vec<u8> {
    let image =
        image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, tint]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

fn demo() -> Demo {
    let device = Device::flex();
    let config = AmclModelConfig::new().with_width(4).with_hidden(32).with_dim(16);
    let model = config.init(&device).unwrap();
    let bytes =
        amcl_core::weights::to_bytes(&model, &Manifest::new(config, "amcl-simclr", 0.1)).unwrap();
    Demo::new(&bytes, device, "CPU").unwrap()
}

#[test]
fn pair_scores_equal_the_library_scores_of_the_same_pixels() {
    let demo = demo();
    let info = demo.info();
    assert_eq!((info.heads, info.dim, info.method.as_str()), (3, 16, "amcl-simclr"));
    let (a, b) = (png(10), png(200));
    let report = pollster::block_on(demo.score(
        (&a, "a.png"),
        Some((&b, "b.png")),
        "",
        0,
        &Strengths::default(),
    ))
    .unwrap();
    assert_eq!(report.heads.len(), 3);
    let total: f32 = report.heads.iter().map(|h| h.scaled - h.omega).sum();
    assert!((report.amcl_score - total).abs() < 1e-4);
    assert!((report.simclr.score - report.heads[0].similarity / 0.5).abs() < 1e-5);
    assert_eq!(report.views[0].rgba.len(), 4 * 32 * 32);
    // The same pixels through the library directly give the same numbers.
    let device = Device::flex();
    let to = |bytes: &[u8]| {
        let chw = amcl_core::input::decode_chw(bytes, 32, "x").unwrap();
        amcl_core::input::to_tensor(&[&chw], 32, &device)
    };
    let direct = amcl_core::score::score_pair(demo.model(), to(&a), to(&b), 0.1).unwrap();
    assert!((direct.amcl_score - report.amcl_score).abs() < 1e-5);
}

#[test]
fn augmented_views_are_seeded() {
    let demo = demo();
    let a = png(90);
    let one =
        pollster::block_on(demo.score((&a, "a.png"), None, "abcde", 3, &Strengths::default()))
            .unwrap();
    let two =
        pollster::block_on(demo.score((&a, "a.png"), None, "abcde", 3, &Strengths::default()))
            .unwrap();
    let other =
        pollster::block_on(demo.score((&a, "a.png"), None, "abcde", 4, &Strengths::default()))
            .unwrap();
    assert_eq!(one.amcl_score, two.amcl_score);
    assert_ne!(one.views[0].rgba, other.views[0].rgba);
}

/// The explorer's strengths change the views (a smaller crop, no colour jitter), and a strength
/// out of range is an error that names it.
#[test]
fn strengths_change_the_views_and_are_checked() {
    let demo = demo();
    let a = png(90);
    let score = |s: Strengths| pollster::block_on(demo.score((&a, "a.png"), None, "ad", 3, &s));
    let authors = score(Strengths::default()).unwrap();
    let tight = score(Strengths { crop_scale_min: 0.9, ..Strengths::default() }).unwrap();
    assert_ne!(authors.views[0].rgba, tight.views[0].rgba);
    let still = Strengths { crop_scale_min: 1.0, jitter_strength: 0.0, ..Strengths::default() };
    let same = score(still).unwrap();
    // Whole image, no jitter: both views are the image itself.
    assert_eq!(same.views[0].rgba, same.views[1].rgba);
    let err = score(Strengths { jitter_strength: 1.5, ..Strengths::default() }).unwrap_err();
    assert!(err.to_string().contains("jitter strength must lie in [0, 1], got 1.5"), "{err}");
}

#[test]
fn matrix_diagonal_holds_the_positive_pairs() {
    let demo = demo();
    let images = [png(0), png(80), png(160), png(240)];
    let named: Vec<(&[u8], &str)> = images.iter().map(|b| (b.as_slice(), "x.png")).collect();
    let report = pollster::block_on(demo.matrix(&named, "", 0, &Strengths::default())).unwrap();
    assert_eq!(report.n, 4);
    for head in &report.heads {
        assert_eq!(head.projection.points.len(), 8);
        for i in 0..4 {
            // Without augmentation both views are the same image: s_ii = 1, and the two views
            // of an image fall on one point of the projection.
            assert!((head.similarity[i * 4 + i] - 1.0).abs() < 1e-4);
            assert_ne!(head.hardest[i], i);
            assert!(head.tau[i * 4 + head.hardest[i]] > 0.0);
            let (a, b) = (head.projection.points[i], head.projection.points[4 + i]);
            assert!((a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4, "{a:?} {b:?}");
        }
    }
}

#[test]
fn matrix_projection_preserves_what_it_can_of_the_distances() {
    // With views that differ, the projection's distances never exceed the embeddings' own
    // (a projection onto a plane only shortens), and the strengths reach the views.
    let demo = demo();
    let images = [png(0), png(80), png(160)];
    let named: Vec<(&[u8], &str)> = images.iter().map(|b| (b.as_slice(), "x.png")).collect();
    let gentle = Strengths { crop_scale_min: 0.9, ..Strengths::default() };
    let report = pollster::block_on(demo.matrix(&named, "ab", 3, &gentle)).unwrap();
    let harsh = pollster::block_on(demo.matrix(&named, "ab", 3, &Strengths::default())).unwrap();
    let (g, h) = (&report.heads[0], &harsh.heads[0]);
    assert_ne!(g.similarity, h.similarity, "the strengths changed nothing");
    for head in &report.heads {
        let p = &head.projection;
        assert!(p.explained[0] >= p.explained[1] && p.explained[0] <= 1.0 + 1e-5);
        for i in 0..3 {
            // |z_a - z_b|^2 = 2 - 2 s for unit vectors: the positive pair's true distance.
            let true_distance = (2.0 - 2.0 * head.similarity[i * 3 + i]).max(0.0).sqrt();
            let (a, b) = (p.points[i], p.points[3 + i]);
            let projected = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            assert!(projected <= true_distance + 1e-3, "{projected} > {true_distance}");
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let demo = demo();
    let a = png(1);
    let err = pollster::block_on(demo.score(
        (b"GIF89a nope", "x.gif"),
        Some((&a, "a.png")),
        "",
        0,
        &Strengths::default(),
    ));
    assert!(err.unwrap_err().to_string().contains("x.gif is not a readable PNG or JPEG image"));
    let err = pollster::block_on(demo.score((&a, "a.png"), None, "", 0, &Strengths::default()));
    assert!(err.unwrap_err().to_string().contains("second image"));
    assert!(Demo::new(b"not weights", Device::flex(), "CPU").is_err());
}
