//! Image folders: `DIR/<class>/*.{jpg,jpeg,png}`, or `DIR/train/<class>/...` and
//! `DIR/test/<class>/...`. Without a train/test split, every fifth image of each class (in file
//! name order) is held out for testing. Images of any size are resized to the model's input.
//! Decoding runs on all cores.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Dataset, Split};

/// Loads an image folder at side `size`.
pub fn load(dir: &Path, size: usize) -> Result<Split> {
    if !dir.is_dir() {
        bail!("--data folder:{}: no such folder", dir.display());
    }
    let (train_files, test_files, names) = if dir.join("train").is_dir() {
        let names = class_folders(&dir.join("train"))?;
        if !dir.join("test").is_dir() {
            bail!("{} has train/ but no test/ folder", dir.display());
        }
        let train = list_images(&dir.join("train"), &names)?;
        let test = list_images(&dir.join("test"), &names)?;
        (train, test, names)
    } else {
        let names = class_folders(dir)?;
        let all = list_images(dir, &names)?;
        let (mut train, mut test) = (Vec::new(), Vec::new());
        let mut seen = vec![0usize; names.len()];
        for (path, label) in all {
            seen[label] += 1;
            if seen[label] % 5 == 0 { &mut test } else { &mut train }.push((path, label));
        }
        (train, test, names)
    };
    let train = decode_all(&train_files, size, names.clone(), "train")?;
    let test = decode_all(&test_files, size, names, "test")?;
    Ok(Split { train, test, description: format!("folder:{}", dir.display()) })
}

/// Sorted names of the sub-folders of `dir` (the classes).
fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!(
            "{} has no class folders: expected DIR/<class>/*.jpg (or DIR/train and DIR/test)",
            dir.display()
        );
    }
    Ok(names)
}

/// `(path, label)` of every image file in the class folders, sorted by class then name.
fn list_images(dir: &Path, names: &[String]) -> Result<Vec<(PathBuf, usize)>> {
    let mut files = Vec::new();
    for (label, name) in names.iter().enumerate() {
        let class_dir = dir.join(name);
        if !class_dir.is_dir() {
            bail!("{} lacks the class folder {name}/", dir.display());
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&class_dir)
            .with_context(|| format!("reading {}", class_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        paths.sort();
        files.extend(paths.into_iter().map(|p| (p, label)));
    }
    if files.is_empty() {
        bail!("{} has class folders but no .jpg/.jpeg/.png images in them", dir.display());
    }
    Ok(files)
}

fn is_image(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// Decodes and resizes `files` on all cores, in order.
fn decode_all(
    files: &[(PathBuf, usize)],
    size: usize,
    names: Vec<String>,
    split: &str,
) -> Result<Dataset> {
    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template(&format!(
            "decoding {split} {{pos}}/{{len}} {{wide_bar}} {{per_sec}}"
        ))
        .expect("valid template"),
    );
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = files.len().div_ceil(workers).max(1);
    let decoded: Vec<Result<Vec<Vec<u8>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let bar = bar.clone();
                scope.spawn(move || {
                    part.iter()
                        .map(|(path, _)| {
                            let image = decode(path, size);
                            bar.inc(1);
                            image
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("decoder thread")).collect()
    });
    bar.finish_and_clear();
    let mut data = Dataset::empty(size, names);
    let mut labels = files.iter().map(|(_, l)| *l);
    for part in decoded {
        for image in part? {
            data.push(&image, labels.next().expect("one label per file"));
        }
    }
    Ok(data)
}

/// One image file as channel-major bytes at side `size`.
pub fn decode(path: &Path, size: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(amcl_core::input::decode_chw(&bytes, size, &path.display().to_string())?)
}
