//! Objectives: the AMCL objective (the authors' top-k form, the soft log-sum-exp form and the
//! literal hard-max form),
//! SimCLR's NT-Xent, and the Omega regulariser they share; all in f32 ([`objective_precision`]).
//!
//! Everything here is a pure function of similarities and temperatures (or of embeddings, for
//! NT-Xent), so it can be checked against an independent reference (`tests/reference/`) and
//! reused by every base method in [`crate::methods`].

mod amcl;
mod nt_xent;
mod omega;
mod precision;

pub use amcl::{
    AUTHORS_TOP_K, AmclObjectiveConfig, NegativeReduction, amcl_objective, amcl_objective_terms,
    composed_terms, fused_terms, hardest_negatives, try_amcl_objective,
};
pub use nt_xent::{cosine_similarity_matrix, l2_normalize, nt_xent};
pub use omega::{omega, omega_scalar};
pub use precision::{OBJECTIVE_DTYPE, objective_precision, objective_tensor};
