//! A 2-D principal-component projection (PCA) of one head's embeddings, for the page's scatter
//! plot: centre the points, take the singular value decomposition X = U S V^T (burn's `linalg`,
//! on the CPU whatever device scored them), and place point i at (U_i1 S_1, U_i2 S_2), its
//! coordinates along the two directions in which the points vary most.

use amcl_core::error::AmclError;
use burn::prelude::*;
use serde::Serialize;

/// QR sweeps per singular value that burn's SVD may take (it converges in a handful for the
/// page's few dozen points; the bound only stops a runaway).
const SVD_SWEEPS: usize = 64;

/// The points in the plane of their two principal components.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    /// One `[x, y]` per input point, in the input's order.
    pub points: Vec<[f32; 2]>,
    /// The share of the points' variance along each of the two components (0 when all
    /// points coincide).
    pub explained: [f32; 2],
}

/// Projects `m` points of dimension `d` (row-major `values`, `m * d`) onto their first two
/// principal components. Each component's sign is chosen so that its largest coordinate (in
/// absolute value) is positive, so that the same points always give the same picture.
pub fn principal_components(values: &[f32], d: usize) -> Result<Projection, AmclError> {
    if d == 0 || !values.len().is_multiple_of(d) || values.len() / d < 2 {
        return Err(AmclError::InvalidConfig(format!(
            "a projection needs at least two points of one dimension (got {} values, d = {d})",
            values.len()
        )));
    }
    let m = values.len() / d;
    let device = Device::flex();
    let x = Tensor::<2>::from_data(TensorData::new(values.to_vec(), [m, d]), &device);
    let centred = x.clone() - x.mean_dim(0);
    let (u, s, _) = burn::linalg::svd::<2, 1>(centred, SVD_SWEEPS);
    let k = u.dims()[1];
    let u = to_vec(u)?;
    let s = to_vec(s)?;
    let total: f32 = s.iter().map(|v| v * v).sum();
    let mut points = vec![[0.0f32; 2]; m];
    let mut explained = [0.0f32; 2];
    for c in 0..2.min(k) {
        let column: Vec<f32> = (0..m).map(|i| u[i * k + c] * s[c]).collect();
        let largest =
            column.iter().copied().fold(0.0f32, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if largest < 0.0 { -1.0 } else { 1.0 };
        for (point, v) in points.iter_mut().zip(&column) {
            point[c] = sign * v;
        }
        explained[c] = if total > 0.0 { s[c] * s[c] / total } else { 0.0 };
    }
    Ok(Projection { points, explained })
}

fn to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, AmclError> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AmclError::NonFinite(format!("reading the projection: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: [f32; 2], b: [f32; 2]) -> f32 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    #[test]
    fn points_on_a_line_project_onto_the_first_component() {
        // Five points along one direction of R^6, plus an offset.
        let direction = [0.5f32, -0.5, 0.5, -0.5, 0.0, 0.0];
        let values: Vec<f32> = [-2.0f32, -1.0, 0.0, 1.0, 2.0]
            .iter()
            .flat_map(|t| direction.iter().map(move |v| 3.0 + t * v))
            .collect();
        let p = principal_components(&values, 6).unwrap();
        for (i, point) in p.points.iter().enumerate() {
            let t = i as f32 - 2.0;
            assert!((point[0].abs() - t.abs()).abs() < 1e-4, "{i}: {point:?}");
            assert!(point[1].abs() < 1e-4, "{i}: {point:?}");
        }
        assert!((p.explained[0] - 1.0).abs() < 1e-4 && p.explained[1] < 1e-4, "{:?}", p.explained);
        // The sign rule: the largest coordinate is positive.
        assert!(p.points[0][0] > 0.0 || p.points[4][0] > 0.0);
    }

    #[test]
    fn planar_points_keep_their_distances() {
        // Points in a plane of R^4: PCA only rotates (or reflects) them, so every distance stays.
        let plane: [[f32; 2]; 6] =
            [[0.0, 0.0], [3.0, 1.0], [-1.0, 2.0], [2.0, -2.5], [0.5, 0.7], [-2.0, -1.0]];
        let (e1, e2) = ([0.6f32, 0.8, 0.0, 0.0], [0.0f32, 0.0, 1.0, 0.0]);
        let values: Vec<f32> =
            plane.iter().flat_map(|[a, b]| (0..4).map(move |j| a * e1[j] + b * e2[j])).collect();
        let p = principal_components(&values, 4).unwrap();
        for i in 0..6 {
            for j in 0..6 {
                let want = distance(plane[i], plane[j]);
                let got = distance(p.points[i], p.points[j]);
                assert!((want - got).abs() < 1e-3, "{i}-{j}: {want} vs {got}");
            }
        }
        assert!(p.explained[0] >= p.explained[1]);
        assert!((p.explained[0] + p.explained[1] - 1.0).abs() < 1e-4);
    }

    #[test]
    fn too_few_points_are_an_error() {
        assert!(principal_components(&[1.0, 2.0, 3.0], 3).is_err());
        assert!(principal_components(&[1.0, 2.0, 3.0, 4.0], 3).is_err());
    }
}
