//! Batches on a worker thread: while the device runs step t, the worker gathers and converts the
//! images of steps t+1 and t+2, so the device never waits on the host.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::TensorData;

use super::Dataset;

/// Host-side batches of one pass over `order`, produced ahead on a worker thread.
pub struct Prefetcher {
    receiver: Receiver<TensorData>,
    worker: Option<JoinHandle<()>>,
}

/// Batches kept ready ahead of the device.
const AHEAD: usize = 2;

impl Prefetcher {
    /// Starts producing the batches `order.chunks_exact(batch_size)`, skipping the first `skip`.
    pub fn start(data: Arc<Dataset>, order: Vec<usize>, batch_size: usize, skip: usize) -> Self {
        let (sender, receiver) = sync_channel(AHEAD);
        let worker = std::thread::spawn(move || {
            for chunk in order.chunks_exact(batch_size).skip(skip) {
                if sender.send(data.batch_data(chunk)).is_err() {
                    return; // the consumer stopped early
                }
            }
        });
        Self { receiver, worker: Some(worker) }
    }
}

impl Iterator for Prefetcher {
    type Item = TensorData;

    fn next(&mut self) -> Option<TensorData> {
        self.receiver.recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Unblock a worker waiting to send, then wait for it.
        let (_, dead) = sync_channel(0);
        self.receiver = dead;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
