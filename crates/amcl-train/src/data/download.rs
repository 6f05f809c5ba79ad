//! Downloading a dataset archive: fetch over HTTP(S), verify its MD5, extract a `.tar.gz`.
//!
//! The URL and checksum can be overridden with `<PREFIX>_URL` and `<PREFIX>_MD5` environment
//! variables (a mirror, or a local server in tests). Nothing is extracted unless the checksum
//! matches, and extraction happens in a staging folder that is moved into place at the end.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// A downloadable archive.
pub struct Archive {
    /// Human name, e.g. `CIFAR-10`.
    pub name: &'static str,
    /// Official URL.
    pub url: &'static str,
    /// MD5 of the official archive, lower-case hex.
    pub md5: &'static str,
    /// Prefix of the overriding environment variables.
    pub env_prefix: &'static str,
}

impl Archive {
    fn url(&self) -> String {
        std::env::var(format!("{}_URL", self.env_prefix)).unwrap_or_else(|_| self.url.into())
    }

    fn md5(&self) -> String {
        std::env::var(format!("{}_MD5", self.env_prefix)).unwrap_or_else(|_| self.md5.into())
    }
}

/// Downloads `archive` into `dir`, checks its checksum and extracts it there.
pub fn fetch_and_extract(archive: &Archive, dir: &Path) -> Result<()> {
    let url = archive.url();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("{} not found in {}; downloading {url}", archive.name, dir.display());
    let bytes = fetch(&url).with_context(|| {
        format!(
            "could not download {} from {url}. Offline? Put the official binary release in {} \
             (or point --data cifar10:DIR / cifar100:DIR at it), or use --data folder:DIR for \
             local images",
            archive.name,
            dir.display()
        )
    })?;
    let digest = format!("{:x}", md5::compute(&bytes));
    let expected = archive.md5();
    if digest != expected {
        bail!(
            "{} archive from {url} has MD5 {digest}, expected {expected}: the download is corrupt or \
             not the official archive; nothing was extracted",
            archive.name
        );
    }
    let staging = dir.join(".extracting");
    let _ = std::fs::remove_dir_all(&staging);
    let decoder = flate2::read::GzDecoder::new(&bytes[..]);
    tar::Archive::new(decoder).unpack(&staging).with_context(|| {
        format!("extracting the {} archive (not a valid .tar.gz)", archive.name)
    })?;
    for entry in std::fs::read_dir(&staging)? {
        let entry = entry?;
        let target = dir.join(entry.file_name());
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(entry.path(), &target)
            .with_context(|| format!("moving {} into place", target.display()))?;
    }
    std::fs::remove_dir_all(&staging).ok();
    eprintln!("extracted {} into {}", archive.name, dir.display());
    Ok(())
}

/// The body of `url`, with a progress bar.
fn fetch(url: &str) -> Result<Vec<u8>> {
    let response = ureq::get(url).timeout(std::time::Duration::from_secs(60)).call()?;
    let total: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner(),
    };
    let mut reader = response.into_reader();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        bytes.write_all(&buffer[..n])?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let Some(n) = total
        && n != bytes.len() as u64
    {
        bail!("the connection closed after {} of {n} bytes", bytes.len());
    }
    Ok(bytes)
}
