//! The worker side: each of `--workers` job threads takes claimed jobs off the bounded channel
//! and runs them — analyse with the same `analyze()` as `--input`, then `Lifecycle::finish` —
//! and counts each one back through `Completions`.
//!
//! A small file is analysed right on the job thread; a large one is cut into segments that
//! the rayon pool (`--workers` threads) analyses in parallel, so a single large file still
//! uses every core. Job threads are not rayon threads on purpose: a rayon thread blocked on
//! the channel could not help with a large file's segments. A job never takes the daemon
//! down: an analyzer that panics fails the file with an `internal` error, and a file that
//! cannot be finished stays in `underprocess/`, requeued at the next start.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use crate::analyze::{self, Analysis, AnalysisError, AnalysisOptions, Kind, Progress};
use crate::lifecycle::Lifecycle;
use crate::queue::{Completions, Job};
use crate::registry::{JobId, JobStart, Registry};
use crate::report::Timing;

/// What every job needs; shared by all of them.
pub struct Worker {
    pub lifecycle: Arc<Lifecycle>,
    pub registry: Arc<Registry>,
    pub options: AnalysisOptions,
    pub completions: Arc<Completions>,
}

/// The life of one job thread: runs jobs until the channel closes.
pub fn work(jobs: Receiver<Job>, worker: Arc<Worker>) {
    while let Ok(job) = jobs.recv() {
        worker.run(job);
        worker.completions.job_finished(jobs.len());
    }
}

/// Progress events of one job are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Worker {
    /// Progress that tells the registry's subscribers, at most every `PROGRESS_EVERY`.
    fn live_progress(&self, id: JobId) -> Progress {
        let registry = Arc::clone(&self.registry);
        let started = Instant::now();
        let last_sent_ms = AtomicU64::new(0);
        Progress::with_callback(move |_, _| {
            let now_ms = started.elapsed().as_millis() as u64;
            let last = last_sent_ms.load(Ordering::Relaxed);
            let due = now_ms >= last + PROGRESS_EVERY.as_millis() as u64;
            if due
                && last_sent_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                registry.progressed(id);
            }
        })
    }

    fn run(&self, job: Job) {
        let progress = Arc::new(self.live_progress(job.id));
        let original_name = job.original_name.to_string_lossy().into_owned();
        self.registry.start(JobStart {
            id: job.id,
            original_name: job.original_name.clone(),
            file: job.claimed.file_name().unwrap_or_default().to_os_string(),
            size_bytes: job.size_bytes,
            queued_at: job.queued_at,
            progress: Arc::clone(&progress),
        });
        let started_at = SystemTime::now();
        let analysis = catch_unwind(AssertUnwindSafe(|| {
            analyze::analyze(&job.claimed, &self.options, &progress)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the analyzer panicked".to_string());
            log::error!("job {}: the analyzer panicked: {message}", job.id);
            Analysis {
                kind: Kind::from_extension(&job.claimed).unwrap_or(Kind::Binary),
                size_bytes: job.size_bytes,
                sha256: None,
                details: Err(AnalysisError::Internal(message)),
            }
        });
        let timing = Timing {
            queued_at: job.queued_at,
            started_at,
            finished_at: SystemTime::now(),
        };
        match self.lifecycle.finish(
            &job.claimed,
            &job.original_name,
            job.id,
            analysis,
            timing,
            job.after_crash,
        ) {
            Ok(finished) => {
                let report = &finished.report;
                log::info!(
                    "job {}: {} {original_name} -> {} ({}, {} bytes, {} ms)",
                    job.id,
                    report.status.as_str(),
                    finished.path.display(),
                    report.kind.as_str(),
                    report.size_bytes,
                    report.duration_ms,
                );
                self.registry.finish(
                    job.id,
                    report,
                    finished.path.file_name().unwrap_or_default(),
                );
            }
            Err(err) => {
                log::error!(
                    "job {}: {err}; {} stays there and is retried at the next start",
                    job.id,
                    job.claimed.display()
                );
                self.registry.forget(job.id);
            }
        }
    }
}
