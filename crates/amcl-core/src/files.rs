//! Writing files whole or not at all: weights, checkpoints' parts, a run's JSON and plots.

use crate::error::{AmclError, Result};

/// Writes `bytes` to a sibling temporary file and renames it over `path`, so a crash never
/// leaves a half-written file where a good one was.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let io = |error| AmclError::Io { path: path.display().to_string(), error };
    let tmp = path
        .with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
