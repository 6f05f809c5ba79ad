//! The objective of two ranks, each with half the batch, against one device with all of it;
//! and the same with negatives taken from each rank's own half only, which these tests catch.

use std::sync::Arc;

use amcl_core::prelude::*;
use amcl_core::ranks::{Ranks, share_rows};
use burn::prelude::*;

use super::Collective;
use super::exchange::FeatureExchange;
use super::threads::ThreadGroup;

/// Ranks that do not exchange anything: each rank's objective sees only its own share (the
/// mistake solo-learn and lightly users watch for).
#[derive(Debug)]
struct LocalOnly(usize);

impl Ranks for LocalOnly {
    fn world(&self) -> usize {
        2
    }
    fn rank(&self) -> usize {
        self.0
    }
    fn gather(&self, local: Tensor<2>) -> amcl_core::Result<Tensor<2>> {
        Ok(local)
    }
}

const BATCH: usize = 16;

/// How far two ranks' loss may be from one device's.
const TOLERANCE: f32 = 1e-4;

/// A model and two views of a batch, made once and shared by the one-device step and the ranks
/// (drawn in full now: burn would draw each parameter at its first use, from a generator other
/// tests share).
fn setup(method: &str) -> (AmclModel, Tensor<4>, Tensor<4>) {
    let device = Device::flex().autodiff();
    let kind: MethodKind = method.parse().unwrap();
    let config = AmclModelConfig::new()
        .with_backbone(BackboneKind::SmallCnnNoBn)
        .with_width(4)
        .with_hidden(32)
        .with_dim(16);
    let model = kind.model_config(config, BATCH).init(&device).unwrap();
    crate::train::draw_initial_weights(&model);
    let mut rng = amcl_core::rng::Rng::new(7);
    let pixels: Vec<f32> = (0..BATCH * 3 * 32 * 32).map(|_| rng.uniform()).collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [BATCH, 3, 32, 32]), &device);
    let mut augmenter = Augmenter::new("abcde".parse().unwrap(), AugmentConfig::new(), 3);
    let (a, b) = augmenter.two_views(images).unwrap();
    (model, a, b)
}

fn method(name: &str) -> Method {
    Method::from_name(name, MethodConfig::new().with_moco_queue(64)).unwrap()
}

fn rows(t: &Tensor<4>, rank: usize) -> Tensor<4> {
    let r = share_rows(rank, BATCH / 2);
    t.clone().narrow(0, r.start, r.len())
}

/// What a step leaves: its loss, and MoCo's queue after it (empty for other methods).
fn outcome(mut m: Method, model: &AmclModel, a: Tensor<4>, b: Tensor<4>) -> (f32, Vec<f32>) {
    let loss = m.loss(model, a, b).unwrap().loss.into_scalar::<f32>();
    let queue = m.moco_state().map_or(Vec::new(), |state| {
        state.queue.clone().into_data().convert::<f32>().iter::<f32>().collect()
    });
    (loss, queue)
}

/// The loss and queue on each of two ranks, with `ranks(rank)` as their exchange.
fn two_ranks(
    name: &str,
    (model, a, b): &(AmclModel, Tensor<4>, Tensor<4>),
    ranks: impl Fn(usize) -> Arc<dyn Ranks> + Sync,
) -> Vec<(f32, Vec<f32>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                let (model, a, b) = (model.clone(), rows(a, rank), rows(b, rank));
                let ranks = ranks(rank);
                scope.spawn(move || outcome(method(name).with_ranks(ranks), &model, a, b))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

#[test]
fn negatives_from_the_global_batch_match_one_device_and_local_ones_do_not() {
    for name in ["amcl-simclr", "simclr", "amcl-moco", "amcl-barlow"] {
        let batch = setup(name);
        let (model, a, b) = batch.clone();
        let (one, one_queue) = outcome(method(name), &model, a, b);

        let group: Vec<Arc<dyn Collective>> =
            ThreadGroup::new(2).into_iter().map(|r| Arc::new(r) as Arc<dyn Collective>).collect();
        let gathered =
            two_ranks(name, &batch, |rank| Arc::new(FeatureExchange::new(group[rank].clone())));
        for (loss, queue) in &gathered {
            // The objective is a sum of terms of order 1-10 (AMCL's Omega) that can cancel to a
            // small total: the tolerance is on the terms' scale, not the total's. Each rank's
            // backbone multiplies matrices of half the rows, so its features differ in the last
            // bits from one device's.
            assert!((loss - one).abs() <= TOLERANCE, "{name}: {loss} vs {one}");
            assert!(close(queue, &one_queue), "{name}: the ranks' queues are not one device's");
        }

        if name == "amcl-barlow" {
            continue; // its channel network takes the whole batch: a share is a shape error
        }
        let local = two_ranks(name, &batch, |rank| Arc::new(LocalOnly(rank)));
        for (loss, queue) in &local {
            if name.ends_with("moco") {
                // MoCo's negatives are its queue: without the exchange it misses the other
                // rank's keys (the loss of a first step, from the initial queue, cannot tell).
                assert!(!close(queue, &one_queue), "{name}: local keys filled the global queue");
            } else {
                assert!(
                    (loss - one).abs() > 10.0 * TOLERANCE,
                    "{name}: the local-only loss {loss} is the global one {one}"
                );
            }
        }
    }
}
