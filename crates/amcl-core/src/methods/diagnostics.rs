//! Per-head diagnostics returned with every loss: the statistics a researcher watches to see
//! whether the adaptive temperatures behave (docs/METHOD.md, "Known hazards").

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::loss::{objective_precision, objective_tensor};
use crate::model::TemperatureRange;

/// Statistics of one head for one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadDiagnostics {
    /// Mean positive-pair temperature tau+.
    pub tau_pos_mean: f32,
    /// Smallest tau+.
    pub tau_pos_min: f32,
    /// Largest tau+.
    pub tau_pos_max: f32,
    /// Mean negative-pair temperature tau- (0 for methods without negatives).
    pub tau_neg_mean: f32,
    /// Smallest tau-.
    pub tau_neg_min: f32,
    /// Largest tau-.
    pub tau_neg_max: f32,
    /// Mean positive cosine similarity s+.
    pub pos_sim_mean: f32,
    /// Mean similarity of each anchor's hardest negative (0 without negatives).
    pub hard_neg_sim_mean: f32,
    /// Share of tau+ within 1 % of the floor lo (0 for fixed temperatures).
    #[serde(default)]
    pub tau_pos_at_lo: f32,
    /// Share of tau+ within 1 % of the ceiling hi.
    #[serde(default)]
    pub tau_pos_at_hi: f32,
    /// Share of tau- (the negatives the objective uses) within 1 % of lo.
    #[serde(default)]
    pub tau_neg_at_lo: f32,
    /// Share of tau- within 1 % of hi.
    #[serde(default)]
    pub tau_neg_at_hi: f32,
}

/// Number of statistics per head in a [`DiagnosticsTensor`].
pub const STATS: usize = 12;

/// Diagnostics of all heads kept on the device, [C, 8], so that a training step does not force
/// a device-to-host copy; read them with [`DiagnosticsTensor::read`] when logging.
#[derive(Debug, Clone)]
pub struct DiagnosticsTensor(pub Tensor<2>);

impl DiagnosticsTensor {
    /// Builds the [C, 12] table from positive and negative statistics.
    /// `pos_tau`, `pos_sim`: [C, N]; `neg_tau`: [C, N, K] or `None`; `hard_neg_sim`: [C, N] or
    /// `None`; `range`: the bounds of adaptive temperatures (`None` for fixed ones), for the
    /// shares at each bound.
    pub fn from_parts(
        pos_tau: Tensor<2>,
        pos_sim: Tensor<2>,
        neg_tau: Option<Tensor<3>>,
        hard_neg_sim: Option<Tensor<2>>,
        range: Option<TemperatureRange>,
    ) -> Self {
        let [c, _] = pos_tau.dims();
        let device = pos_tau.device();
        let zeros = || Tensor::<2>::zeros([c, 1], objective_tensor(&device));
        let stats3 = |t: Tensor<2>| vec![t.clone().mean_dim(1), t.clone().min_dim(1), t.max_dim(1)];
        let pos_tau = pos_tau.detach();
        let neg_tau = neg_tau.map(|t| {
            let [c, n, k] = t.dims();
            t.detach().reshape([c, n * k])
        });
        let mut columns = stats3(pos_tau.clone());
        match &neg_tau {
            Some(t) => columns.extend(stats3(t.clone())),
            None => columns.extend([zeros(), zeros(), zeros()]),
        }
        columns.push(pos_sim.detach().mean_dim(1));
        columns.push(hard_neg_sim.map(|s| s.detach().mean_dim(1)).unwrap_or_else(zeros));
        let share = |hit: Tensor<2, Bool>| objective_precision(hit.float()).mean_dim(1);
        let saturation = |t: &Option<Tensor<2>>| match (t, range) {
            (Some(t), Some(r)) => {
                let (floor, ceiling) = r.saturation_thresholds();
                [
                    share(t.clone().lower_equal_elem(floor)),
                    share(t.clone().greater_equal_elem(ceiling)),
                ]
            }
            _ => [zeros(), zeros()],
        };
        columns.extend(saturation(&Some(pos_tau)));
        columns.extend(saturation(&neg_tau));
        Self(Tensor::cat(columns, 1))
    }

    /// Averages two tables (the two directions of a symmetric loss).
    pub fn average(self, other: Self) -> Self {
        Self((self.0 + other.0).mul_scalar(0.5))
    }

    /// Copies the table to the host (a device sync; call it when logging, not every step).
    pub fn read(&self) -> Vec<HeadDiagnostics> {
        let values: Vec<f32> =
            self.0.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        values.chunks(STATS).map(from_row).collect()
    }

    /// Reads the table on backends that only support asynchronous reads (WebGPU).
    pub async fn read_async(&self) -> Vec<HeadDiagnostics> {
        let data = self.0.clone().into_data_async().await;
        let values: Vec<f32> = data
            .map(|d| d.convert::<f32>().try_to_vec::<f32>().unwrap_or_default())
            .unwrap_or_default();
        values.chunks(STATS).map(from_row).collect()
    }
}

fn from_row(r: &[f32]) -> HeadDiagnostics {
    HeadDiagnostics {
        tau_pos_mean: r[0],
        tau_pos_min: r[1],
        tau_pos_max: r[2],
        tau_neg_mean: r[3],
        tau_neg_min: r[4],
        tau_neg_max: r[5],
        pos_sim_mean: r[6],
        hard_neg_sim_mean: r[7],
        tau_pos_at_lo: r[8],
        tau_pos_at_hi: r[9],
        tau_neg_at_lo: r[10],
        tau_neg_at_hi: r[11],
    }
}
