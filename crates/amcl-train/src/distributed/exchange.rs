//! What crosses between ranks in a step: the backbone's features of each share (forward) and
//! the backbone's gradients (after the backward pass).

use std::sync::Arc;

use amcl_core::AmclError;
use amcl_core::model::AmclModel;
use amcl_core::ranks::{Ranks, assemble};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::{Collective, RankError};

/// The features of every rank's share, for `amcl_core`'s methods ([`Ranks`]).
#[derive(Debug, Clone)]
pub struct FeatureExchange {
    collective: Arc<dyn Collective>,
}

impl FeatureExchange {
    pub fn new(collective: Arc<dyn Collective>) -> Self {
        Self { collective }
    }
}

fn rank_error(err: RankError) -> AmclError {
    AmclError::Rank(err.to_string())
}

impl Ranks for FeatureExchange {
    fn world(&self) -> usize {
        self.collective.world()
    }

    fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// The other ranks' rows travel through host memory as f32 and come back as constants on
    /// this rank's device; this rank's rows stay the tracked tensor.
    fn gather(&self, local: Tensor<2>) -> amcl_core::Result<Tensor<2>> {
        let [rows, width] = local.dims();
        let device = local.device();
        let dtype = local.dtype();
        let values = local.clone().detach().into_data().convert::<f32>().iter::<f32>().collect();
        let all = self.collective.all_gather(values).map_err(rank_error)?;
        let me = self.rank();
        let mut shares = Vec::with_capacity(all.len());
        for (rank, share) in all.iter().enumerate() {
            if share.len() != rows * width {
                return Err(rank_error(RankError::Mismatch {
                    me,
                    rank,
                    expected: rows * width,
                    got: share.len(),
                }));
            }
            if rank == me {
                shares.push(local.clone()); // `assemble` keeps the tracked rows themselves
                continue;
            }
            let data = TensorData::new(share.to_vec(), [rows, width]);
            shares.push(Tensor::<2>::from_data(data, &device).cast(dtype));
        }
        Ok(assemble(local, me, shares))
    }
}

/// Sums the backbone's gradients over the ranks, in place in `grads`: each rank's is its share's
/// part of the one-device gradient (`amcl_core::ranks`). The heads' and temperature networks'
/// gradients are left alone: every rank computed them on the whole batch.
pub fn sum_backbone_gradients(
    grads: &mut GradientsParams,
    model: &AmclModel,
    collective: &dyn Collective,
) -> Result<(), RankError> {
    let mut flat = Flatten { grads, parts: Vec::new(), values: Vec::new() };
    model.backbone.visit(&mut flat);
    let Flatten { parts, values, .. } = flat;
    let summed = collective.all_reduce_sum(values)?;
    let mut offset = 0;
    for part in parts {
        let len = part.shape.iter().product::<usize>();
        let data = TensorData::new(summed[offset..offset + len].to_vec(), part.shape.clone());
        offset += len;
        part.register(grads, data);
    }
    Ok(())
}

/// One parameter's gradient in the flat buffer: its id, shape, rank and device.
struct Part {
    id: ParamId,
    shape: Vec<usize>,
    device: Device,
    dtype: burn::tensor::DType,
}

impl Part {
    /// Puts the summed gradient back in `grads`, with the parameter's rank (1 to 4 here).
    fn register(self, grads: &mut GradientsParams, data: TensorData) {
        fn put<const D: usize>(grads: &mut GradientsParams, part: &Part, data: TensorData) {
            let grad = Tensor::<D>::from_data(data, &part.device).cast(part.dtype);
            grads.register(part.id, grad);
        }
        match self.shape.len() {
            1 => put::<1>(grads, &self, data),
            2 => put::<2>(grads, &self, data),
            3 => put::<3>(grads, &self, data),
            4 => put::<4>(grads, &self, data),
            n => unreachable!("a backbone parameter of rank {n}"),
        }
    }
}

/// Collects the gradients of a module's parameters into one f32 buffer, in visiting order (the
/// same on every rank).
struct Flatten<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Part>,
    values: Vec<f32>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else { return };
        self.parts.push(Part {
            id: param.id,
            shape: grad.dims().to_vec(),
            device: grad.device(),
            dtype: grad.dtype(),
        });
        let data = grad.into_data().convert::<f32>();
        self.values.extend(data.iter::<f32>());
    }
}
