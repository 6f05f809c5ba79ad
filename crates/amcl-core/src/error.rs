//! Typed errors of the library. Binaries add context with `anyhow`.

use thiserror::Error;

/// Everything that can go wrong inside `amcl-core`.
#[derive(Debug, Error)]
pub enum AmclError {
    /// Two tensors that must agree in shape do not.
    #[error("shape mismatch in {context}: expected {expected}, got {actual}")]
    Shape {
        /// Which function or argument saw the mismatch.
        context: String,
        /// What was expected, in words or as dims.
        expected: String,
        /// What was received.
        actual: String,
    },
    /// A name (method, backbone, augmentation letter...) that is not known.
    #[error("unknown {kind} '{name}'; expected one of: {expected}")]
    UnknownName {
        /// What kind of name ("method", "backbone", "augmentation").
        kind: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        expected: String,
    },
    /// A configuration value outside its valid range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A weights file that cannot be read or does not match its manifest.
    #[error("weights: {0}")]
    Weights(String),
    /// A loss or statistic that became NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// An input image could not be used (not an image, corrupt, too large).
    #[error("{0}")]
    Image(String),
    /// A data-parallel rank could not take part in a step (another rank stopped, or the link
    /// between them failed): the message names the rank.
    #[error("{0}")]
    Rank(String),
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file at fault.
        path: String,
        /// The underlying error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, AmclError>;

/// Checks that `actual` equals `expected`, naming `context` otherwise.
pub(crate) fn ensure_dims(context: &str, expected: &[usize], actual: &[usize]) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(AmclError::Shape {
            context: context.to_string(),
            expected: format!("{expected:?}"),
            actual: format!("{actual:?}"),
        })
    }
}
