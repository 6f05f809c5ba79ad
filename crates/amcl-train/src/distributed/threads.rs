//! Ranks as threads of one process: a [`Collective`] over host memory, for several devices of
//! one machine (and for testing several ranks on a CPU).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Collective, RankError};

/// One rank of a group of threads (see [`ThreadGroup::new`]).
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    world: usize,
    round: Mutex<Round>,
    changed: Condvar,
}

/// The exchange in progress: a generation counter, what each rank has put in, and the last
/// completed exchange's result (kept until every rank has taken it, which is before the next
/// one can complete).
#[derive(Debug, Default)]
struct Round {
    generation: u64,
    slots: Vec<Option<Arc<Vec<f32>>>>,
    arrived: usize,
    result: Vec<Arc<Vec<f32>>>,
    stopped: Option<(usize, String)>,
}

impl ThreadGroup {
    /// The `world` ranks of a new group, in rank order; hand one to each thread.
    pub fn new(world: usize) -> Vec<ThreadGroup> {
        let round = Round { slots: vec![None; world], ..Round::default() };
        let shared = Arc::new(Shared { world, round: Mutex::new(round), changed: Condvar::new() });
        (0..world).map(|rank| ThreadGroup { rank, shared: shared.clone() }).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        // A rank that panicked while holding the lock left nothing half-written that matters:
        // the others read `stopped`, set by the panicking rank's runner.
        self.shared.round.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn all_gather(&self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>, RankError> {
        let mut round = self.lock();
        if let Some((rank, reason)) = &round.stopped {
            return Err(RankError::Stopped { rank: *rank, reason: reason.clone() });
        }
        let generation = round.generation;
        round.slots[self.rank] = Some(Arc::new(data));
        round.arrived += 1;
        if round.arrived == self.shared.world {
            round.result = round.slots.iter_mut().map(|s| s.take().expect("every rank")).collect();
            round.arrived = 0;
            round.generation += 1;
            self.shared.changed.notify_all();
            return Ok(round.result.clone());
        }
        loop {
            round = self.shared.changed.wait(round).unwrap_or_else(|p| p.into_inner());
            if round.generation != generation {
                return Ok(round.result.clone());
            }
            if let Some((rank, reason)) = &round.stopped {
                return Err(RankError::Stopped { rank: *rank, reason: reason.clone() });
            }
        }
    }

    fn abort(&self, reason: &str) {
        let mut round = self.lock();
        if round.stopped.is_none() {
            round.stopped = Some((self.rank, reason.to_string()));
        }
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_every_share_in_rank_order() {
        let group = ThreadGroup::new(3);
        let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|rank| {
                    scope.spawn(move || {
                        (0..50)
                            .map(|step| {
                                let mine = vec![rank.rank() as f32, step as f32];
                                let all = rank.all_gather(mine).unwrap();
                                all.iter().flat_map(|v| v.iter().copied()).collect()
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for per_rank in &results {
            for (step, got) in per_rank.iter().enumerate() {
                let s = step as f32;
                assert_eq!(got, &vec![0.0, s, 1.0, s, 2.0, s]);
            }
        }
        let sums: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|rank| scope.spawn(move || rank.all_reduce_sum(vec![1.0, rank.rank() as f32])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        assert!(sums.iter().all(|s| s == &vec![3.0, 3.0]));
    }

    #[test]
    fn a_stopped_rank_is_named_to_the_others() {
        let mut group = ThreadGroup::new(2);
        let second = group.pop().unwrap();
        let first = group.pop().unwrap();
        let waiting = std::thread::spawn(move || first.all_gather(vec![1.0]));
        second.abort("out of memory");
        let err = waiting.join().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "rank 1 stopped: out of memory");
    }
}
