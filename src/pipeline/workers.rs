//! The worker side: each of `--workers` job threads takes claimed jobs off the bounded channel
//! and runs them — analyse with the same `analyze()` as `--input`, then `Lifecycle::finish` —
//! and counts each one back through `Completions`.
//!
//! A small file is analysed right on the job thread; a large one is cut into segments that
//! the rayon pool (`--workers` threads) analyses in parallel, so a single large file still
//! uses every core. Job threads are not rayon threads on purpose: a rayon thread blocked on
//! the channel could not help with a large file's segments. A job never takes the daemon
//! down: an analyzer that panics fails the file with an `internal` error, and a panic anywhere
//! else in a job is caught too (the job is tried again, its thread lives on).
//!
//! Faults while finishing (a full disk, no descriptors left, a folder removed or made
//! read-only) never forget a job: it goes back to the scheduler with its report kept, is shown
//! as queued with its error and attempt count, and is finished later without a second
//! analysis. A file that was replaced or written to during its analysis is analysed again (it
//! fails with `changed_during_analysis` if it keeps changing); one removed meanwhile gets no
//! report.

use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A job's progress goes to the store at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

use crossbeam_channel::{Receiver, Sender};

use crate::analyze::hash::ContentHash;
use crate::analyze::{self, Analysis, AnalysisError, AnalysisOptions, Kind, Progress};
use crate::disk::lifecycle::{Lifecycle, Unfinished};
use crate::disk::report::Timing;
use crate::job::JobId;
use crate::pipeline::Shared;
use crate::pipeline::{Completions, Job};
use crate::store::JobStart;

/// How often a file that changed during its analysis is analysed again before it fails.
const CHANGED_RETRIES: u32 = 2;

/// A job whose thread panicked outside the analysis this often is left in `underprocess/`
/// for the next start (a bug; the log says so).
const MAX_PANICS: u32 = 3;

/// What every job needs; shared by all of them.
pub struct Worker {
    pub lifecycle: Arc<Lifecycle>,
    pub shared: Shared,
    pub options: AnalysisOptions,
    pub completions: Arc<Completions>,
}

/// Marks a job thread lost if it ends other than by its channel closing.
struct Alive<'a> {
    liveness: &'a crate::health::Liveness,
    done: bool,
}

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        if !self.done {
            log::error!("a job thread stopped unexpectedly");
            self.liveness.job_thread_lost();
        }
    }
}

/// The life of one job thread: runs jobs until the channel closes. A job that could not be
/// finished goes back to the scheduler on `unfinished` to be tried again later.
pub fn work(jobs: Receiver<Job>, unfinished: Sender<Job>, worker: Arc<Worker>) {
    let mut alive = Alive {
        liveness: &worker.shared.liveness,
        done: false,
    };
    while let Ok(job) = jobs.recv() {
        let id = job.id;
        let rerun = job.rerun();
        match catch_unwind(AssertUnwindSafe(|| worker.run(job))) {
            Ok(None) => {}
            Ok(Some(again)) => {
                // Never waits for long: the scheduler reads this channel on every turn.
                let _ = unfinished.send(again);
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                if rerun.panics < MAX_PANICS {
                    log::error!("job {id}: panicked outside the analysis ({message}); tried again");
                    worker.shared.store.finish_failed(
                        id,
                        &format!("internal error: {message}"),
                        rerun.attempts,
                    );
                    let _ = unfinished.send(rerun);
                } else {
                    log::error!(
                        "job {id}: panicked {MAX_PANICS} times ({message}); its file stays in \
                         underprocess/ until the next start"
                    );
                    worker.shared.store.forget(id);
                }
            }
        }
        worker.completions.job_finished(jobs.len());
    }
    alive.done = true;
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// What identifies the bytes analysed: a file replaced or written to changes at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
}

fn identity(path: &Path) -> Option<Identity> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|metadata| identity_of(&metadata))
}

fn identity_of(metadata: &std::fs::Metadata) -> Identity {
    Identity {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.len(),
        modified: (metadata.mtime(), metadata.mtime_nsec()),
    }
}

impl Worker {
    /// Progress that the worker pushes to the store at most every `PROGRESS_EVERY` (a step
    /// in between costs one atomic load: a burst of small files never touches the store for
    /// it); its last value goes with `finish`.
    fn live_progress(&self, id: JobId) -> Progress {
        let store = Arc::clone(&self.shared.store);
        let started = Instant::now();
        let last_told_ms = AtomicU64::new(0);
        Progress::with_callback(move |done, total| {
            let now_ms = started.elapsed().as_millis() as u64;
            let last = last_told_ms.load(Ordering::Relaxed);
            let due = now_ms >= last + PROGRESS_EVERY.as_millis() as u64;
            if due
                && last_told_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                store.progressed(id, done, total);
                crate::test_hooks::pause_point("after-progress");
            }
        })
    }

    fn run(&self, mut job: Job) -> Option<Job> {
        let progress = self.live_progress(job.id);
        self.shared.store.start(JobStart {
            id: job.id,
            original_name: job.original_name.clone(),
            file: job.claimed.file_name().unwrap_or_default().to_os_string(),
            size_bytes: job.size_bytes,
            queued_at: job.queued_at,
        });
        crate::test_hooks::panic_point("before-finish");
        let outcome = match job.report.take() {
            // Analysed before; only its finish failed.
            Some(report) => {
                if !crate::disk::folders::exists(&job.claimed) {
                    log::warn!(
                        "job {}: {} is gone from underprocess/; nothing to finish",
                        job.id,
                        job.claimed.display()
                    );
                    self.shared.store.forget(job.id);
                    return None;
                }
                self.lifecycle.folders.recreate_missing();
                self.lifecycle
                    .finish_report(&job.claimed, &job.original_name, job.id, report, true)
                    .map_err(|(error, report)| Unfinished { error, report })
            }
            None => {
                let started_at = SystemTime::now();
                let analysis = self.analyze_unchanged(&job, &progress)?;
                if let Err(err) = &analysis.details
                    && err.is_transient()
                {
                    // The machine's fault, not the file's: analysed again after a backoff.
                    job.after_crash = true;
                    let what = format!("cannot analyse it now ({err})");
                    return Some(self.try_again_later(job, &what, &err.to_string()));
                }
                let timing = Timing {
                    queued_at: job.queued_at,
                    started_at,
                    finished_at: SystemTime::now(),
                };
                self.lifecycle.finish(
                    &job.claimed,
                    &job.original_name,
                    job.id,
                    analysis,
                    timing,
                    job.after_crash || job.attempts > 0,
                )
            }
        };
        match outcome {
            Ok(finished) => {
                let report = &finished.report;
                log::info!(
                    "job {}: {} {} -> {} ({}, {} bytes, {} ms){}",
                    job.id,
                    report.status.as_str(),
                    job.original_name.to_string_lossy(),
                    finished.path.display(),
                    report.kind.as_str(),
                    report.size_bytes,
                    report.duration_ms,
                    if job.attempts > 0 {
                        format!(", finished after {} failed attempt(s)", job.attempts)
                    } else {
                        String::new()
                    }
                );
                self.shared.store.finish(
                    job.id,
                    report,
                    finished.path.file_name().unwrap_or_default(),
                    progress.get(),
                );
                let since_ready = std::time::SystemTime::now()
                    .duration_since(job.queued_at)
                    .unwrap_or_default();
                self.shared.metrics.job_finished(
                    report.size_bytes,
                    report.duration_us,
                    since_ready.as_micros() as u64,
                    report.status == crate::disk::report::Status::Failed,
                );
                None
            }
            Err(Unfinished { error, report }) => {
                job.report = Some(report);
                let what = format!("cannot finish ({error})");
                Some(self.try_again_later(job, &what, &error.to_string()))
            }
        }
    }

    /// One more failed attempt: the job is shown queued with `error` and goes back to the
    /// scheduler, which runs it again after a backoff.
    fn try_again_later(&self, mut job: Job, what: &str, error: &str) -> Job {
        job.attempts += 1;
        log::error!(
            "job {}: {what}; attempt {} failed, it is tried again with backoff",
            job.id,
            job.attempts
        );
        self.shared.store.finish_failed(job.id, error, job.attempts);
        job
    }

    /// Analyses the claimed file, again if it changed meanwhile (its identity before and after
    /// differ). `None`: it was removed, and gets no report.
    fn analyze_unchanged(&self, job: &Job, progress: &Progress) -> Option<Analysis> {
        let mut tries = 0;
        loop {
            // What the analysis opened is what it read; when it could not open the file, the
            // path's identity now (no bytes were read: nothing can have changed under them).
            let mut opened = None;
            crate::test_hooks::pause_point("before-analysis");
            let analysis = self.analyze_caught(job, progress, &mut opened);
            let before = opened
                .as_ref()
                .map(identity_of)
                .or_else(|| identity(&job.claimed));
            crate::test_hooks::pause_point("after-analysis");
            let after = identity(&job.claimed);
            match (before, after) {
                (_, None) => {
                    log::warn!(
                        "job {}: {} was removed during its analysis; no report",
                        job.id,
                        job.claimed.display()
                    );
                    self.shared.store.forget(job.id);
                    return None;
                }
                (Some(before), Some(after)) if before == after => return Some(analysis),
                (_, Some(_)) if tries < CHANGED_RETRIES => {
                    log::warn!(
                        "job {}: {} changed during its analysis; analysing it again",
                        job.id,
                        job.claimed.display()
                    );
                    tries += 1;
                }
                _ => {
                    return Some(Analysis {
                        details: Err(AnalysisError::Changed),
                        size_bytes: after.map_or(analysis.size_bytes, |a| a.size),
                        hash: ContentHash::missing(analysis.hash.algorithm),
                        ..analysis
                    });
                }
            }
        }
    }

    /// `analyze()`, with a panic turned into an `internal` failure of the file.
    fn analyze_caught(
        &self,
        job: &Job,
        progress: &Progress,
        opened: &mut Option<std::fs::Metadata>,
    ) -> Analysis {
        catch_unwind(AssertUnwindSafe(|| {
            analyze::analyze_noting(&job.claimed, &self.options, progress, opened)
        }))
        .unwrap_or_else(|panic| {
            let message = panic_message(&*panic);
            log::error!("job {}: the analyzer panicked: {message}", job.id);
            Analysis {
                kind: Kind::from_extension(&job.claimed).unwrap_or(Kind::Binary),
                detected: None,
                compression: None,
                size_bytes: job.size_bytes,
                hash: ContentHash::missing(self.options.hash),
                details: Err(AnalysisError::Internal(message)),
            }
        })
    }
}
