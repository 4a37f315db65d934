//! The daemon's pipeline, in the order a file moves through it: `watch` (folder events) →
//! `readiness` (which files are complete, in which order) → `scheduler` (claims, hands jobs
//! over, retries finishes, stops) → `workers` (analysis and finish on the job threads). It
//! never serves HTTP and keeps no job state of its own beyond what a claim needs: the store
//! (`crate::store`) is told every step. This module holds what the stages hand each other:
//! the claimed `Job` and the `Completions` count.

pub mod readiness;
pub mod scheduler;
pub mod watch;
pub mod workers;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::disk::report::Report;
use crate::job::JobId;

use crate::health::Liveness;
use crate::metrics::Metrics;
use crate::store::JobStore;

/// Where the pipeline tells what it does: the job store (each job's state), the daemon's
/// liveness (heartbeats, the watch, the pool) and its metrics (bytes, durations, rescans).
/// Built once by `daemon` and handed to the scheduler and every worker.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn JobStore>,
    pub liveness: Arc<Liveness>,
    pub metrics: Arc<Metrics>,
}

/// Files claimed per worker at most: one running and the rest waiting in the channel, so that
/// a worker that finishes starts its next file without a round trip through this thread, and
/// this thread wakes once per several finished jobs instead of once per job. Small enough that
/// the small-first order still holds; at shutdown the waiting ones go back to `unprocessed/`.
pub const CLAIMED_PER_WORKER: usize = 8;

/// A claimed file, handed to the pool.
#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub original_name: OsString,
    /// Where it is now, in `underprocess/`.
    pub claimed: PathBuf,
    pub size_bytes: u64,
    pub queued_at: SystemTime,
    /// Claimed before a crash: its report may already be published.
    pub after_crash: bool,
    /// Failed attempts to finish it so far.
    pub attempts: u32,
    /// Times its job thread panicked outside the analysis.
    pub panics: u32,
    /// Its report, when it was analysed but could not be finished: the next attempt only
    /// finishes it.
    pub report: Option<Box<Report>>,
}

impl Job {
    /// A claimed file that runs for the first time.
    pub fn new(
        id: JobId,
        original_name: OsString,
        claimed: PathBuf,
        size_bytes: u64,
        queued_at: SystemTime,
        after_crash: bool,
    ) -> Job {
        Job {
            id,
            original_name,
            claimed,
            size_bytes,
            queued_at,
            after_crash,
            attempts: 0,
            panics: 0,
            report: None,
        }
    }

    /// This job to run again from its analysis after its thread panicked.
    pub fn rerun(&self) -> Job {
        Job {
            attempts: self.attempts + 1,
            panics: self.panics + 1,
            ..Job::new(
                self.id,
                self.original_name.clone(),
                self.claimed.clone(),
                self.size_bytes,
                self.queued_at,
                true,
            )
        }
    }
}

/// The wait before the next attempt to finish a job that failed `attempts` times: doubling
/// from 250 ms, at most 10 s, so that a fault that clears is noticed within seconds.
pub fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(6);
    (Duration::from_millis(250) * (1 << exponent)).min(Duration::from_secs(10))
}

/// Shared by the workers and the scheduler: how many claimed jobs have finished, and a
/// doorbell the workers ring when their queue runs low, so the scheduler wakes once per several
/// finished jobs instead of once per job.
pub struct Completions {
    finished: AtomicUsize,
    doorbell: Sender<()>,
    low_water: usize,
}

impl Completions {
    pub fn new(workers: usize) -> (Arc<Completions>, Receiver<()>) {
        // One pending ring is enough: the scheduler reads the counter, not the rings.
        let (doorbell, rings) = crossbeam_channel::bounded(1);
        let completions = Completions {
            finished: AtomicUsize::new(0),
            doorbell,
            low_water: workers * CLAIMED_PER_WORKER / 2,
        };
        (Arc::new(completions), rings)
    }

    /// Called by a worker after each job, with the number of claimed jobs still waiting.
    pub fn job_finished(&self, waiting: usize) {
        self.finished.fetch_add(1, Ordering::AcqRel);
        if waiting <= self.low_water {
            let _ = self.doorbell.try_send(());
        }
    }

    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::Acquire)
    }
}
