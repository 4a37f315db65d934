//! The in-memory registry of jobs and of the daemon's liveness: what the dashboard and
//! `/health` read.
//!
//! The pipeline writes it (queued → processing → completed | failed); readers get copies.
//! Every queued and running job is kept; finished ones only up to `history` (oldest dropped
//! first), so memory does not grow with the number of files ever processed. It never touches
//! the filesystem: it is a picture of the pipeline, not its source of truth.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::analyze::{Kind, Progress};
use crate::report::{ErrorInfo, Report, Status};

/// The scheduler beats at least this often; `/health` fails after a few missed beats.
pub const HEARTBEAT_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Processing,
    Completed,
    Failed,
}

/// What the registry keeps of a finished job's report.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub kind: Kind,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub error: Option<ErrorInfo>,
    pub report_path: PathBuf,
}

/// A copy of one job as it is now.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub id: String,
    pub original_name: String,
    /// The name now: in `unprocessed/`, `underprocess/`, then `processed/` or `failed/`.
    pub file: String,
    pub size_bytes: u64,
    pub state: JobState,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Chunks done and total while processing.
    pub progress: Option<(u64, u64)>,
    pub summary: Option<JobSummary>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub processing: usize,
    /// Since the daemon started (not only those still in the history).
    pub completed: u64,
    pub failed: u64,
}

/// A job that starts processing, with what the registry may not have seen when it was queued
/// (a file requeued from `underprocess/` at start was never queued in this run).
pub struct JobStart {
    pub id: String,
    pub original_name: String,
    pub file: String,
    pub size_bytes: u64,
    pub queued_at: SystemTime,
    pub progress: Arc<Progress>,
}

struct JobRecord {
    snapshot: JobSnapshot,
    progress: Option<Arc<Progress>>,
}

#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, JobRecord>,
    /// Finished job ids, oldest first: the history that `history` bounds.
    finished: VecDeque<String>,
    counts: Counts,
}

pub struct Registry {
    jobs: Mutex<Jobs>,
    history: usize,
    liveness: Liveness,
}

struct Liveness {
    started: Instant,
    /// Milliseconds since `started` of the scheduler's last loop.
    last_beat_ms: AtomicU64,
    watcher_ok: AtomicBool,
    pool_ok: AtomicBool,
    draining: AtomicBool,
}

impl Registry {
    pub fn new(history: usize) -> Registry {
        Registry {
            jobs: Mutex::new(Jobs::default()),
            history,
            liveness: Liveness {
                started: Instant::now(),
                last_beat_ms: AtomicU64::new(0),
                watcher_ok: AtomicBool::new(true),
                pool_ok: AtomicBool::new(true),
                draining: AtomicBool::new(false),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        // A panic elsewhere while holding the lock leaves consistent data: every update below
        // is a handful of field writes.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A file in `unprocessed/` is ready and waits for a worker.
    pub fn queue(&self, id: &str, name: &str, size_bytes: u64, queued_at: SystemTime) {
        let mut jobs = self.lock();
        jobs.counts.queued += 1;
        jobs.by_id.insert(
            id.to_string(),
            JobRecord {
                snapshot: JobSnapshot {
                    id: id.to_string(),
                    original_name: name.to_string(),
                    file: name.to_string(),
                    size_bytes,
                    state: JobState::Queued,
                    queued_at,
                    started_at: None,
                    finished_at: None,
                    progress: None,
                    summary: None,
                },
                progress: None,
            },
        );
    }

    /// A queued job that will not run in this process: its file vanished, changed, or stays
    /// in `unprocessed/` at shutdown.
    pub fn forget(&self, id: &str) {
        let mut jobs = self.lock();
        if let Some(record) = jobs.by_id.remove(id) {
            match record.snapshot.state {
                JobState::Queued => jobs.counts.queued -= 1,
                JobState::Processing => jobs.counts.processing -= 1,
                JobState::Completed | JobState::Failed => {
                    jobs.finished.retain(|finished| finished != id);
                }
            }
        }
    }

    /// The file was claimed into `underprocess/` and is being analysed.
    pub fn start(&self, start: JobStart) {
        let mut jobs = self.lock();
        let previous = jobs.by_id.remove(&start.id);
        if previous
            .as_ref()
            .is_some_and(|r| r.snapshot.state == JobState::Queued)
        {
            jobs.counts.queued -= 1;
        }
        jobs.counts.processing += 1;
        jobs.by_id.insert(
            start.id.clone(),
            JobRecord {
                snapshot: JobSnapshot {
                    id: start.id,
                    original_name: start.original_name,
                    file: start.file,
                    size_bytes: start.size_bytes,
                    state: JobState::Processing,
                    queued_at: start.queued_at,
                    started_at: Some(SystemTime::now()),
                    finished_at: None,
                    progress: None,
                    summary: None,
                },
                progress: Some(start.progress),
            },
        );
    }

    /// The job's report is published; the job joins the bounded history.
    pub fn finish(&self, report: &Report, report_path: PathBuf) {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        let state = match report.status {
            Status::Completed => JobState::Completed,
            Status::Failed => JobState::Failed,
        };
        match state {
            JobState::Completed => jobs.counts.completed += 1,
            _ => jobs.counts.failed += 1,
        }
        let summary = JobSummary {
            kind: report.kind,
            sha256: report.sha256.clone(),
            duration_ms: report.duration_ms,
            error: report.error.clone(),
            report_path,
        };
        let now = SystemTime::now();
        match jobs.by_id.get_mut(&report.job_id) {
            Some(record) => {
                if record.snapshot.state == JobState::Processing {
                    jobs.counts.processing -= 1;
                }
                let snapshot = &mut record.snapshot;
                snapshot.state = state;
                snapshot.file = report.file.clone();
                snapshot.finished_at = Some(now);
                snapshot.progress = record.progress.take().map(|p| p.get());
                snapshot.summary = Some(summary);
            }
            None => {
                let snapshot = JobSnapshot {
                    id: report.job_id.clone(),
                    original_name: report.original_name.clone(),
                    file: report.file.clone(),
                    size_bytes: report.size_bytes,
                    state,
                    queued_at: now,
                    started_at: None,
                    finished_at: Some(now),
                    progress: None,
                    summary: Some(summary),
                };
                jobs.by_id.insert(
                    report.job_id.clone(),
                    JobRecord {
                        snapshot,
                        progress: None,
                    },
                );
            }
        }
        jobs.finished.push_back(report.job_id.clone());
        while jobs.finished.len() > self.history {
            if let Some(oldest) = jobs.finished.pop_front() {
                jobs.by_id.remove(&oldest);
            }
        }
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    pub fn get(&self, id: &str) -> Option<JobSnapshot> {
        let jobs = self.lock();
        jobs.by_id.get(id).map(JobRecord::snapshot_now)
    }

    /// Every job the registry holds, in no particular order.
    pub fn all(&self) -> Vec<JobSnapshot> {
        let jobs = self.lock();
        jobs.by_id.values().map(JobRecord::snapshot_now).collect()
    }

    /// Called by the scheduler on every turn of its loop.
    pub fn heartbeat(&self) {
        let elapsed = self.liveness.started.elapsed().as_millis() as u64;
        self.liveness.last_beat_ms.store(elapsed, Ordering::Relaxed);
    }

    pub fn set_watcher_ok(&self, ok: bool) {
        self.liveness.watcher_ok.store(ok, Ordering::Relaxed);
    }

    pub fn set_pool_ok(&self, ok: bool) {
        self.liveness.pool_ok.store(ok, Ordering::Relaxed);
    }

    /// Shutdown has begun: no new claims.
    pub fn set_draining(&self) {
        self.liveness.draining.store(true, Ordering::Relaxed);
    }

    /// `Ok` while the watcher and the pool are alive; else why not.
    pub fn health(&self) -> Result<(), &'static str> {
        let liveness = &self.liveness;
        let now = liveness.started.elapsed().as_millis() as u64;
        let beat = liveness.last_beat_ms.load(Ordering::Relaxed);
        if liveness.draining.load(Ordering::Relaxed) {
            Err("shutting down")
        } else if !liveness.watcher_ok.load(Ordering::Relaxed) {
            Err("the folder watcher has failed")
        } else if !liveness.pool_ok.load(Ordering::Relaxed) {
            Err("the worker pool has stopped")
        } else if now.saturating_sub(beat) > HEARTBEAT_LIMIT.as_millis() as u64 {
            Err("the scheduler is not responding")
        } else {
            Ok(())
        }
    }
}

impl JobRecord {
    fn snapshot_now(&self) -> JobSnapshot {
        let mut snapshot = self.snapshot.clone();
        if let Some(progress) = &self.progress {
            snapshot.progress = Some(progress.get());
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{Analysis, Details};
    use crate::report::Timing;
    use std::ffi::OsStr;

    fn report(id: &str, ok: bool) -> Report {
        let now = SystemTime::now();
        let analysis = Analysis {
            kind: Kind::Binary,
            size_bytes: 1,
            sha256: None,
            details: if ok {
                Ok(Details::None)
            } else {
                Err(crate::analyze::AnalysisError::Truncated)
            },
        };
        let timing = Timing {
            queued_at: now,
            started_at: now,
            finished_at: now,
        };
        Report::new(
            id.into(),
            OsStr::new("f"),
            OsStr::new("f"),
            analysis,
            timing,
        )
    }

    fn start(registry: &Registry, id: &str) {
        registry.start(JobStart {
            id: id.into(),
            original_name: "f".into(),
            file: "f".into(),
            size_bytes: 1,
            queued_at: SystemTime::now(),
            progress: Arc::new(Progress::silent()),
        });
    }

    #[test]
    fn a_job_moves_through_its_states_and_the_counts_follow() {
        let registry = Registry::new(10);
        registry.queue("a", "f", 1, SystemTime::now());
        registry.queue("b", "g", 1, SystemTime::now());
        assert_eq!(registry.counts().queued, 2);
        start(&registry, "a");
        registry.forget("b");
        let counts = registry.counts();
        assert_eq!((counts.queued, counts.processing), (0, 1));
        assert_eq!(
            registry.get("a").map(|j| j.state),
            Some(JobState::Processing)
        );
        registry.finish(&report("a", false), PathBuf::from("x"));
        let counts = registry.counts();
        assert_eq!(
            (counts.processing, counts.completed, counts.failed),
            (0, 0, 1)
        );
        assert_eq!(registry.get("a").map(|j| j.state), Some(JobState::Failed));
        assert!(registry.get("b").is_none());
    }

    #[test]
    fn history_is_bounded_and_drops_the_oldest() {
        let registry = Registry::new(3);
        for i in 0..10 {
            let id = format!("job{i}");
            start(&registry, &id);
            registry.finish(&report(&id, true), PathBuf::from("x"));
        }
        assert_eq!(registry.all().len(), 3);
        assert!(registry.get("job6").is_none());
        assert!(registry.get("job7").is_some());
        assert_eq!(registry.counts().completed, 10);
    }

    #[test]
    fn health_follows_the_liveness_flags() {
        let registry = Registry::new(1);
        registry.heartbeat();
        assert_eq!(registry.health(), Ok(()));
        registry.set_watcher_ok(false);
        assert!(registry.health().is_err());
        registry.set_watcher_ok(true);
        registry.set_draining();
        assert!(registry.health().is_err());
    }
}
