//! A run's `metrics.jsonl`: one JSON record per line, a [`StepRecord`] after every training
//! step and an [`EpochRecord`] after every epoch, written by the trainer and read back by the
//! plots, `experiment` and the summary.

use std::io::Write;
use std::path::{Path, PathBuf};

use amcl_core::methods::HeadDiagnostics;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::files::write_atomic;

/// The file's name in a run folder.
pub const FILE: &str = "metrics.jsonl";

/// One line of metrics.jsonl, tagged by `"kind"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Step(StepRecord),
    Epoch(EpochRecord),
}

impl Record {
    /// The run's step count when it was written.
    pub fn step(&self) -> usize {
        match self {
            Record::Step(r) => r.step,
            Record::Epoch(r) => r.step,
        }
    }
}

/// After each training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps taken so far, this one included.
    pub step: usize,
    pub loss: f32,
    /// The learning rate of this step.
    pub lr: f64,
    /// The gradients' global norm before clipping (only with --grad-clip).
    pub grad_norm: Option<f32>,
}

/// After each epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps taken so far.
    pub step: usize,
    /// The mean loss of the epoch's steps.
    pub loss: f64,
    pub images_per_s: f64,
    pub seconds: f64,
    /// Each head's statistics at the epoch's last step.
    pub heads: Vec<HeadDiagnostics>,
    /// kNN top-1 on the test set, on the epochs it was measured.
    pub knn_top1: Option<f32>,
}

/// The records of the run in `run`, skipping lines that do not parse (a line cut short by a
/// crash); empty when the file is missing.
pub fn read(run: &Path) -> Vec<Record> {
    std::fs::read_to_string(run.join(FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The epoch records of the run in `run`, in order.
pub fn epochs(run: &Path) -> Vec<EpochRecord> {
    read(run)
        .into_iter()
        .filter_map(|r| match r {
            Record::Epoch(e) => Some(e),
            Record::Step(_) => None,
        })
        .collect()
}

/// The log a run appends to.
pub struct MetricsLog {
    file: std::fs::File,
    path: PathBuf,
}

impl MetricsLog {
    /// A new, empty log in `run`.
    pub fn create(run: &Path) -> Result<Self> {
        let path = run.join(FILE);
        std::fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
        Self::open(path)
    }

    /// The log of a resumed run, first dropping the records past `step` (left by an
    /// interrupted run after its last checkpoint).
    pub fn resume(run: &Path, step: usize) -> Result<Self> {
        let path = run.join(FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<Record>(line).is_ok_and(|record| record.step() <= step)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        write_atomic(&path, kept.as_bytes())?;
        Self::open(path)
    }

    fn open(path: PathBuf) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file, path })
    }

    /// Appends one record as one write of the whole line, so that a reader (a test or a user
    /// following the run) never sees part of one.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let line = format!("{}\n", serde_json::to_string(record)?);
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn flush(&mut self) -> Result<()> {
        Ok(self.file.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records read what earlier versions of the trainer wrote with `json!`.
    #[test]
    fn records_read_the_lines_the_trainer_wrote() {
        let step = r#"{"kind":"step","epoch":1,"step":3,"loss":5.25,"lr":0.01,"grad_norm":null}"#;
        let epoch = r#"{"kind":"epoch","epoch":2,"step":8,"loss":4.5,"images_per_s":700.0,"seconds":1.5,"heads":[],"knn_top1":0.5691}"#;
        let step: Record = serde_json::from_str(step).unwrap();
        assert_eq!(step.step(), 3);
        let Record::Epoch(epoch) = serde_json::from_str(epoch).unwrap() else { panic!("epoch") };
        assert_eq!((epoch.epoch, epoch.knn_top1), (2, Some(0.5691)));
        let again: Record = serde_json::from_str(&serde_json::to_string(&step).unwrap()).unwrap();
        assert_eq!(again, step);
    }
}
