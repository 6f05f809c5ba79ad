//! A run's files, each written whole or not at all (a sibling temporary file renamed over it).

use std::path::Path;

use anyhow::{Context, Result};

pub use amcl_core::files::write_atomic;

/// `value` as pretty JSON at `path`.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
