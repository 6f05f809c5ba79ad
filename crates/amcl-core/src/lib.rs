//! # amcl-core
//!
//! Adaptive Multi-head Contrastive Learning (Wang, Koniusz, Gedeon, Zheng, ECCV 2024) in burn:
//! C projection heads, each scoring every pair with its own adaptive temperature, trained with
//! the negative log-likelihood of a head-wise Gaussian model (see docs/METHOD.md).
//!
//! The modules follow the data flow:
//! [`augment`] (two views of a batch) -> [`model`] (backbone, heads, temperature networks) ->
//! [`loss`] (the AMCL objective, NT-Xent, Omega) -> [`methods`] (SimCLR, MoCo, SimSiam,
//! Barlow Twins, plain and with AMCL) -> [`score`] (one pair, for the CLI and the browser) ->
//! [`weights`] (burnpack file with a JSON manifest). [`ranks`]: a batch shared by data-parallel
//! ranks, as the methods see it.
//!
//! The code is device-agnostic: tensors are `Tensor<D>` and the backend lives in the
//! [`Device`](burn::tensor::Device) (`Device::flex()` on CPU, CUDA or WebGPU elsewhere).
//!
//! ```no_run
//! use amcl_core::prelude::*;
//! use burn::prelude::*;
//!
//! let device = Device::flex().autodiff();
//! let method: MethodKind = "amcl-simclr".parse().unwrap();
//! let model = method.model_config(AmclModelConfig::new(), 8).init(&device).unwrap();
//! let mut augmenter = Augmenter::new("abcde".parse().unwrap(), AugmentConfig::new(), 0);
//! let images = Tensor::<4>::random([8, 3, 32, 32], burn::tensor::Distribution::Default, &device);
//! let (a, b) = augmenter.two_views(images).unwrap();
//! let mut step = Method::new(method, MethodConfig::new());
//! let out = step.loss(&model, a, b).unwrap();
//! println!("loss {} heads {:?}", out.loss.into_scalar::<f32>(), out.diagnostics.read());
//! ```

pub mod augment;
pub mod error;
pub mod files;
#[cfg(feature = "decode")]
pub mod input;
pub mod loss;
pub mod methods;
pub mod model;
pub mod ranks;
pub mod rng;
pub mod score;
pub mod weights;

pub use error::{AmclError, Result};

/// The types most programs use.
pub mod prelude {
    pub use crate::augment::{AugmentConfig, AugmentationSet, Augmenter};
    pub use crate::error::{AmclError, Result};
    pub use crate::loss::{AmclObjectiveConfig, NegativeReduction, amcl_objective, nt_xent};
    pub use crate::methods::{HeadDiagnostics, Method, MethodConfig, MethodKind, StepOutput};
    pub use crate::model::{
        AmclModel, AmclModelConfig, BackboneKind, Normalization, TemperatureRange,
    };
    pub use crate::score::{PairScore, score_pair};
    pub use crate::weights::{Manifest, load, save};
}
