//! The in-memory registry of jobs and of the daemon's liveness: what the dashboard and
//! `/health` read.
//!
//! The pipeline writes it (queued → processing → completed | failed); readers get copies.
//! Every queued and running job is kept; finished ones only up to `history` (oldest dropped
//! first), so memory does not grow with the number of files ever processed. It never touches
//! the filesystem: it is a picture of the pipeline, not its source of truth.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::analyze::{Kind, Progress};
use crate::metrics::Metrics;
use crate::report::{ErrorInfo, Report, Status};

/// A job's id: a ULID (sortable by time; 16 bytes, no allocation). Reports carry it as text.
pub type JobId = ulid::Ulid;

/// State changes kept for a subscriber that is behind; older ones are dropped for it.
const EVENT_BACKLOG: usize = 1024;

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

impl JobState {
    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }
}

/// What the registry keeps of a finished job's report (the rest is in the report on disk,
/// beside the file): small, so that the history costs little.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub kind: Kind,
    pub duration_ms: u64,
    pub error: Option<ErrorInfo>,
    /// The key figure of its kind: lines (text), rows (csv), records (json).
    pub count: Option<u64>,
}

impl JobSummary {
    /// The summary of a report.
    pub fn of(report: &Report) -> JobSummary {
        JobSummary {
            kind: report.kind,
            duration_ms: report.duration_ms,
            error: report.error.clone(),
            count: report
                .text
                .as_ref()
                .map(|text| text.lines)
                .or(report.csv.as_ref().map(|csv| csv.rows))
                .or(report.json.as_ref().map(|json| json.records)),
        }
    }
}

/// Why a job cannot be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRefused {
    /// Not in the registry (never seen, or older than the history).
    Unknown,
    /// Only a failed job can be retried.
    NotFailed(JobState),
}

/// Files and bytes finished in one minute.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Minutes of throughput kept.
pub const THROUGHPUT_MINUTES: usize = 30;

/// A copy of one job as it is now.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub id: JobId,
    /// Names are the bytes on disk (not always UTF-8): views show them lossily, paths use
    /// them as they are.
    pub original_name: OsString,
    /// The name now: in `unprocessed/`, `underprocess/`, then `processed/` or `failed/`.
    pub file: OsString,
    pub size_bytes: u64,
    pub state: JobState,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Chunks done and total while processing.
    pub progress: Option<(u64, u64)>,
    pub summary: Option<JobSummary>,
    /// Times its finish failed (a full disk, a folder gone); it waits and is tried again.
    pub attempts: u32,
    /// Why its last finish failed, while it waits to be tried again.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub processing: usize,
    /// All time: the reports on disk at start, plus those finished since (not only those
    /// still in the history).
    pub completed: u64,
    pub failed: u64,
}

/// A job that starts processing, with what the registry may not have seen when it was queued
/// (a file requeued from `underprocess/` at start was never queued in this run).
pub struct JobStart {
    pub id: JobId,
    pub original_name: OsString,
    pub file: OsString,
    pub size_bytes: u64,
    pub queued_at: SystemTime,
    pub progress: Arc<Progress>,
}

/// One job as the registry keeps it: one allocation for the record and one for its name, so
/// that a full history costs little and its churn does not fragment the heap.
struct JobRecord {
    id: JobId,
    original_name: Box<OsStr>,
    /// The name now, when it differs from `original_name`.
    renamed: Option<Box<OsStr>>,
    size_bytes: u64,
    state: JobState,
    queued_at: SystemTime,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    /// Live while processing.
    progress: Option<Arc<Progress>>,
    /// What `progress` said last, once it is gone.
    final_progress: Option<(u64, u64)>,
    summary: Option<JobSummary>,
    /// The stamp of its entry in `Jobs::order` for its state while active.
    entered: u64,
    attempts: u32,
    last_error: Option<Box<str>>,
}

#[derive(Default)]
struct Jobs {
    /// Queued and processing jobs. Shrunk again after a burst.
    active: HashMap<JobId, JobRecord>,
    /// Finished jobs, oldest first: a ring of at most `history` records, so that the history
    /// costs the same memory however many jobs go through it (looked up by scanning, newest
    /// first: microseconds for 10,000).
    finished: VecDeque<JobRecord>,
    /// How many of `finished` completed and how many failed.
    in_ring: [usize; 2],
    /// Active ids in the order they entered their state, newest at the back, one deque per
    /// active state: the newest few are read from the back without sorting `active`. An entry
    /// counts while its record is in that state with the same stamp; the others are skipped,
    /// and swept out once they are half the deque.
    order: [VecDeque<(u64, JobId)>; 2],
    stamp: u64,
    counts: Counts,
    /// Active jobs whose finish failed and that wait to be tried again, and the last error.
    unfinished: usize,
    last_finish_error: String,
    /// Files and bytes finished per minute, the last `THROUGHPUT_MINUTES` minutes with any.
    throughput: VecDeque<Minute>,
}

fn minute_of(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

pub struct Registry {
    jobs: Mutex<Jobs>,
    metrics: Metrics,
    /// Every state change, for the live views. A send never waits: a subscriber that falls
    /// behind loses the oldest events (and is told so), the pipeline never does.
    events: broadcast::Sender<JobSnapshot>,
    /// Bumped on every state change and progress step: what the dashboard's coalesced stream
    /// looks at, so that watching costs the pipeline one atomic add per change.
    version: AtomicU64,
    /// `Jobs::unfinished`, readable without the lock (the scheduler looks at every turn).
    unfinished: AtomicUsize,
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
    /// Job threads that stopped (they never should: each job runs under `catch_unwind`).
    job_threads_lost: AtomicU64,
    /// Why `unprocessed/` cannot be watched right now (missing, unlistable): it heals on its
    /// own, and `/health` says "degraded" meanwhile.
    folder_trouble: Mutex<Option<String>>,
}

/// What `/health` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Alive, but work is held up for a reason that clears on its own.
    Degraded(String),
    /// Not doing its work: stopped, stopping, or a part of it is gone.
    Unavailable(String),
}

impl Registry {
    pub fn new(history: usize) -> Registry {
        Registry {
            jobs: Mutex::new(Jobs::default()),
            metrics: Metrics::new(),
            events: broadcast::channel(EVENT_BACKLOG).0,
            version: AtomicU64::new(0),
            unfinished: AtomicUsize::new(0),
            history,
            liveness: Liveness {
                started: Instant::now(),
                last_beat_ms: AtomicU64::new(0),
                watcher_ok: AtomicBool::new(true),
                pool_ok: AtomicBool::new(true),
                draining: AtomicBool::new(false),
                job_threads_lost: AtomicU64::new(0),
                folder_trouble: Mutex::new(None),
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
    /// Queueing a job already queued (an upload seen by the scheduler) updates its name and
    /// size.
    pub fn queue(&self, id: JobId, name: &OsStr, size_bytes: u64, queued_at: SystemTime) {
        let mut jobs = self.lock();
        if let Some(record) = jobs.active.get_mut(&id) {
            record.size_bytes = size_bytes;
            if record.file() != name {
                record.set_file(name);
            }
            self.announce(record);
            return;
        }
        jobs.counts.queued += 1;
        let mut record = JobRecord::new(id, name, size_bytes, queued_at);
        record.entered = jobs.enter(id, JobState::Queued);
        self.announce(&record);
        jobs.active.insert(id, record);
    }

    /// A queued job that will not run in this process: its file vanished, changed, or stays
    /// in `unprocessed/` at shutdown.
    pub fn forget(&self, id: JobId) {
        self.version.fetch_add(1, Ordering::Relaxed);
        let mut jobs = self.lock();
        if let Some(record) = jobs.active.remove(&id) {
            match record.state {
                JobState::Queued => jobs.counts.queued -= 1,
                _ => jobs.counts.processing -= 1,
            }
            if record.last_error.is_some() {
                jobs.unfinished -= 1;
                self.unfinished.store(jobs.unfinished, Ordering::Relaxed);
            }
            jobs.give_back_memory();
        } else if let Some(at) = jobs.finished.iter().position(|record| record.id == id)
            && let Some(record) = jobs.finished.remove(at)
        {
            jobs.in_ring[finished_slot(record.state)] -= 1;
        }
    }

    /// The file was claimed into `underprocess/` and is being analysed.
    pub fn start(&self, start: JobStart) {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        match jobs.active.get(&start.id) {
            Some(record) => {
                if record.state == JobState::Queued {
                    jobs.counts.queued -= 1;
                }
            }
            None => {
                let record = JobRecord::new(
                    start.id,
                    &start.original_name,
                    start.size_bytes,
                    start.queued_at,
                );
                jobs.active.insert(start.id, record);
            }
        }
        jobs.counts.processing += 1;
        let stamp = jobs.enter(start.id, JobState::Processing);
        let Some(record) = jobs.active.get_mut(&start.id) else {
            return;
        };
        record.state = JobState::Processing;
        record.entered = stamp;
        record.size_bytes = start.size_bytes;
        record.set_file(&start.file);
        record.started_at = Some(SystemTime::now());
        record.progress = Some(start.progress);
        self.announce(record);
    }

    /// The job's report is published and its file is `file` (the name on disk; the report's
    /// `file` is its lossy text); the job joins the bounded history.
    pub fn finish(&self, id: JobId, report: &Report, file: &OsStr) {
        self.metrics
            .job_finished(report.size_bytes, report.duration_ms);
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
        let now = SystemTime::now();
        let mut record = match jobs.active.remove(&id) {
            Some(record) => {
                match record.state {
                    JobState::Queued => jobs.counts.queued -= 1,
                    _ => jobs.counts.processing -= 1,
                }
                if record.last_error.is_some() {
                    jobs.unfinished -= 1;
                    self.unfinished.store(jobs.unfinished, Ordering::Relaxed);
                }
                record
            }
            None => JobRecord::new(
                id,
                OsStr::new(&report.original_name),
                report.size_bytes,
                now,
            ),
        };
        record.state = state;
        record.set_file(file);
        record.last_error = None;
        record.finished_at = Some(now);
        record.final_progress = record.progress.take().map(|p| p.get());
        record.summary = Some(JobSummary::of(report));
        let minute = minute_of(now);
        match jobs.throughput.back_mut() {
            Some(last) if last.minute == minute => {
                last.files += 1;
                last.bytes += report.size_bytes;
            }
            _ => {
                if jobs.throughput.len() >= THROUGHPUT_MINUTES {
                    jobs.throughput.pop_front();
                }
                jobs.throughput.push_back(Minute {
                    minute,
                    files: 1,
                    bytes: report.size_bytes,
                });
            }
        }
        self.announce(&record);
        jobs.push_finished(record, self.history);
        jobs.give_back_memory();
    }

    /// A running job could not be finished (its report or its move failed): it is queued
    /// again, visibly, with the error and the number of attempts, until the pipeline tries it
    /// again.
    pub fn finish_failed(&self, id: JobId, error: &str, attempts: u32) {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        let Some(record) = jobs.active.get(&id) else {
            return;
        };
        if record.state == JobState::Processing {
            jobs.counts.processing -= 1;
            jobs.counts.queued += 1;
        }
        let stamp = jobs.enter(id, JobState::Queued);
        let Some(record) = jobs.active.get_mut(&id) else {
            return;
        };
        record.state = JobState::Queued;
        record.entered = stamp;
        record.attempts = attempts;
        let newly = record.last_error.is_none();
        record.last_error = Some(error.into());
        if newly {
            jobs.unfinished += 1;
            self.unfinished.store(jobs.unfinished, Ordering::Relaxed);
        }
        jobs.last_finish_error = error.to_string();
        record.final_progress = record.progress.take().map(|p| p.get());
        self.announce(record);
    }

    /// A failed job goes back to the queue under its id: out of the history and counted as
    /// queued (no longer as failed). Returns the job as it was; its file is still in `failed/`.
    pub fn begin_retry(&self, id: JobId) -> Result<JobSnapshot, RetryRefused> {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        if let Some(record) = jobs.active.get(&id) {
            return Err(RetryRefused::NotFailed(record.state));
        }
        let at = jobs
            .finished
            .iter()
            .rposition(|record| record.id == id)
            .ok_or(RetryRefused::Unknown)?;
        let state = jobs.finished[at].state;
        if state != JobState::Failed {
            return Err(RetryRefused::NotFailed(state));
        }
        let mut record = jobs.finished.remove(at).ok_or(RetryRefused::Unknown)?;
        jobs.in_ring[finished_slot(state)] -= 1;
        let before = record.snapshot_now();
        jobs.counts.failed = jobs.counts.failed.saturating_sub(1);
        jobs.counts.queued += 1;
        record.state = JobState::Queued;
        record.queued_at = SystemTime::now();
        record.started_at = None;
        record.finished_at = None;
        record.final_progress = None;
        record.summary = None;
        record.entered = jobs.enter(id, JobState::Queued);
        self.announce(&record);
        jobs.active.insert(id, record);
        Ok(before)
    }

    /// Jobs in `state` (all when `None`), newest first: by finish time for finished jobs, by
    /// start or queue time for the others. Returns the total and the page.
    pub fn list(
        &self,
        state: Option<JobState>,
        limit: usize,
        offset: usize,
    ) -> (usize, Vec<JobSnapshot>) {
        let jobs = self.lock();
        let end = offset.saturating_add(limit);
        let (active_total, active): (usize, Vec<&JobRecord>) = match state {
            Some(state @ (JobState::Queued | JobState::Processing)) => {
                let total = match state {
                    JobState::Queued => jobs.counts.queued,
                    _ => jobs.counts.processing,
                };
                (total, jobs.newest_active(state).take(end).collect())
            }
            Some(_) => (0, Vec::new()),
            None => {
                // The newest `end` of each active state, merged.
                let mut both: Vec<&JobRecord> = jobs
                    .newest_active(JobState::Processing)
                    .take(end)
                    .chain(jobs.newest_active(JobState::Queued).take(end))
                    .collect();
                both.sort_by_key(|record| std::cmp::Reverse(record.newest_time()));
                (jobs.active.len(), both)
            }
        };
        let finished = match state {
            Some(JobState::Queued | JobState::Processing) => None,
            _ => Some(jobs.newest_finished(state)),
        };
        let total = active_total + jobs.in_ring(state);
        let page = active
            .into_iter()
            .chain(finished.into_iter().flatten())
            .skip(offset)
            .take(limit)
            .map(JobRecord::snapshot_now)
            .collect();
        (total, page)
    }

    /// The newest `limit` jobs in `state`, without counting them all (for `/api/status`).
    pub fn recent(&self, state: JobState, limit: usize) -> Vec<JobSnapshot> {
        self.list(Some(state), limit, 0).1
    }

    /// The newest finished job that completed.
    pub fn last_processed(&self) -> Option<JobSnapshot> {
        let jobs = self.lock();
        jobs.finished
            .iter()
            .rev()
            .find(|record| record.state == JobState::Completed)
            .map(JobRecord::snapshot_now)
    }

    /// Puts finished jobs read back from their reports at start, oldest first, into the
    /// history; the all-time counters start from the reports found on disk.
    pub fn restore(&self, finished: Vec<JobSnapshot>, completed: u64, failed: u64) {
        let mut jobs = self.lock();
        jobs.counts.completed += completed;
        jobs.counts.failed += failed;
        for job in finished {
            jobs.push_finished(JobRecord::finished_from(job), self.history);
        }
    }

    /// A retry whose file could not be moved back: the job is failed again, as it was before
    /// `begin_retry` (and counted as failed again, not lost from the counts).
    pub fn undo_retry(&self, before: JobSnapshot) {
        let mut jobs = self.lock();
        if let Some(record) = jobs.active.remove(&before.id) {
            match record.state {
                JobState::Queued => jobs.counts.queued -= 1,
                _ => jobs.counts.processing -= 1,
            }
        }
        jobs.counts.failed += 1;
        let record = JobRecord::finished_from(before);
        self.announce(&record);
        jobs.push_finished(record, self.history);
    }

    /// Files and bytes finished per minute over the last `THROUGHPUT_MINUTES` minutes, oldest
    /// first, with the minutes without any included as zeros.
    pub fn throughput(&self) -> Vec<Minute> {
        let jobs = self.lock();
        let now = minute_of(SystemTime::now());
        let first = now + 1 - THROUGHPUT_MINUTES as u64;
        (first..=now)
            .map(|minute| {
                jobs.throughput
                    .iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(Minute {
                        minute,
                        ..Minute::default()
                    })
            })
            .collect()
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    pub fn get(&self, id: JobId) -> Option<JobSnapshot> {
        let jobs = self.lock();
        jobs.active
            .get(&id)
            .or_else(|| jobs.finished.iter().rev().find(|record| record.id == id))
            .map(JobRecord::snapshot_now)
    }

    /// Every job the registry holds, in no particular order.
    pub fn all(&self) -> Vec<JobSnapshot> {
        let jobs = self.lock();
        jobs.active
            .values()
            .chain(jobs.finished.iter())
            .map(JobRecord::snapshot_now)
            .collect()
    }

    /// A running job made progress: tell the subscribers (the caller throttles).
    pub fn progressed(&self, id: JobId) {
        self.version.fetch_add(1, Ordering::Relaxed);
        if self.events.receiver_count() == 0 {
            return;
        }
        let jobs = self.lock();
        if let Some(record) = jobs.active.get(&id) {
            self.announce(record);
        }
    }

    /// Grows with every state change and progress step; equal readings mean nothing changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// A receiver of every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobSnapshot> {
        self.events.subscribe()
    }

    /// Tells the subscribers, if any (no copy is made when nobody listens).
    fn announce(&self, record: &JobRecord) {
        self.version.fetch_add(1, Ordering::Relaxed);
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(record.snapshot_now());
        }
    }

    /// `unprocessed/` was listed again after lost events.
    pub fn note_rescan(&self) {
        self.metrics.rescanned();
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode(self.counts())
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

    /// Seconds since the registry (the daemon) started.
    pub fn uptime_seconds(&self) -> u64 {
        self.liveness.started.elapsed().as_secs()
    }

    /// Jobs whose finish failed and that wait to be tried again.
    pub fn unfinished(&self) -> usize {
        self.unfinished.load(Ordering::Relaxed)
    }

    /// A job thread ended other than at shutdown.
    pub fn job_thread_lost(&self) {
        self.liveness
            .job_threads_lost
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sets (`Some(reason)`) or clears (`None`) what keeps `unprocessed/` from being watched.
    pub fn set_folder_trouble(&self, reason: Option<String>) {
        let mut slot = self
            .liveness
            .folder_trouble
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *slot != reason {
            match &reason {
                Some(reason) => log::warn!("degraded: {reason}"),
                None => log::info!("no longer degraded: unprocessed/ is watched again"),
            }
            *slot = reason;
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ok while the watcher and the pool are alive and work flows; degraded while something
    /// that heals on its own holds work up; unavailable when a part is gone.
    pub fn health(&self) -> Health {
        let liveness = &self.liveness;
        let now = liveness.started.elapsed().as_millis() as u64;
        let beat = liveness.last_beat_ms.load(Ordering::Relaxed);
        let lost = liveness.job_threads_lost.load(Ordering::Relaxed);
        if liveness.draining.load(Ordering::Relaxed) {
            Health::Unavailable("shutting down".into())
        } else if !liveness.pool_ok.load(Ordering::Relaxed) {
            Health::Unavailable("the worker pool has stopped".into())
        } else if lost > 0 {
            Health::Unavailable(format!("{lost} job thread(s) stopped"))
        } else if now.saturating_sub(beat) > HEARTBEAT_LIMIT.as_millis() as u64 {
            Health::Unavailable("the scheduler is not responding".into())
        } else {
            let mut reasons: Vec<String> = liveness
                .folder_trouble
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect();
            let unfinished = self.unfinished();
            if unfinished > 0 {
                let last = self.lock().last_finish_error.clone();
                reasons.push(format!(
                    "{unfinished} file(s) cannot be finished and are tried again: {last}"
                ));
            }
            if !reasons.is_empty() {
                Health::Degraded(reasons.join("; "))
            } else if !liveness.watcher_ok.load(Ordering::Relaxed) {
                Health::Degraded(
                    "the folder watcher has failed; it is re-armed at the next scan".into(),
                )
            } else {
                Health::Ok
            }
        }
    }
}

impl Jobs {
    /// A burst grows the table by the number of queued files; once they are done it is
    /// shrunk again, so that memory follows what is held now, not the largest burst ever.
    fn give_back_memory(&mut self) {
        let len = self.active.len();
        if self.active.capacity() > 4 * len + 1024 {
            self.active.shrink_to(2 * len);
        }
        for state in [JobState::Queued, JobState::Processing] {
            let order = &self.order[active_slot(state)];
            if order.capacity() > 4 * order.len() + 1024 {
                let target = 2 * order.len();
                self.order[active_slot(state)].shrink_to(target);
            }
        }
    }

    /// Records that the active job `id` entered `state` now; returns the stamp for its record.
    fn enter(&mut self, id: JobId, state: JobState) -> u64 {
        self.stamp += 1;
        let stamp = self.stamp;
        let live = match state {
            JobState::Queued => self.counts.queued,
            _ => self.counts.processing,
        };
        let slot = active_slot(state);
        if self.order[slot].len() > 2 * live + 64 {
            let active = &self.active;
            self.order[slot].retain(|&(stamp, id)| current(active, state, stamp, id).is_some());
        }
        self.order[slot].push_back((stamp, id));
        stamp
    }

    /// The active jobs in `state`, newest first, stopping once all of them were seen.
    fn newest_active(&self, state: JobState) -> impl Iterator<Item = &JobRecord> {
        let live = match state {
            JobState::Queued => self.counts.queued,
            _ => self.counts.processing,
        };
        self.order[active_slot(state)]
            .iter()
            .rev()
            .filter_map(move |&(stamp, id)| current(&self.active, state, stamp, id))
            .take(live)
    }

    /// Finished jobs in `state` (all finished ones when `None`), newest first.
    fn newest_finished(&self, state: Option<JobState>) -> impl Iterator<Item = &JobRecord> {
        self.finished
            .iter()
            .rev()
            .filter(move |record| state.is_none_or(|state| record.state == state))
    }

    fn in_ring(&self, state: Option<JobState>) -> usize {
        match state {
            None => self.finished.len(),
            Some(JobState::Completed) => self.in_ring[0],
            Some(JobState::Failed) => self.in_ring[1],
            Some(_) => 0,
        }
    }

    /// Adds a finished job to the history ring of at most `history` records.
    fn push_finished(&mut self, record: JobRecord, history: usize) {
        if history == 0 {
            return;
        }
        if self.finished.len() >= history {
            if let Some(oldest) = self.finished.pop_front() {
                self.in_ring[finished_slot(oldest.state)] -= 1;
            }
        } else if self.finished.len() == self.finished.capacity() {
            // Grow, but never past `history`: a ring with spare slots would, as it turns,
            // touch all of them.
            let target = (2 * self.finished.len()).max(64).min(history);
            self.finished.reserve_exact(target - self.finished.len());
        }
        self.in_ring[finished_slot(record.state)] += 1;
        self.finished.push_back(record);
    }
}

fn active_slot(state: JobState) -> usize {
    match state {
        JobState::Queued => 0,
        _ => 1,
    }
}

fn finished_slot(state: JobState) -> usize {
    match state {
        JobState::Completed => 0,
        _ => 1,
    }
}

/// The record an `order` entry points at, if the entry is still current.
fn current(
    active: &HashMap<JobId, JobRecord>,
    state: JobState,
    stamp: u64,
    id: JobId,
) -> Option<&JobRecord> {
    active
        .get(&id)
        .filter(|record| record.state == state && record.entered == stamp)
}

impl JobRecord {
    fn new(id: JobId, name: &OsStr, size_bytes: u64, queued_at: SystemTime) -> JobRecord {
        JobRecord {
            id,
            original_name: name.into(),
            renamed: None,
            size_bytes,
            state: JobState::Queued,
            queued_at,
            started_at: None,
            finished_at: None,
            progress: None,
            final_progress: None,
            summary: None,
            entered: 0,
            attempts: 0,
            last_error: None,
        }
    }

    /// A finished job's record from its snapshot (history reload, undone retry).
    fn finished_from(job: JobSnapshot) -> JobRecord {
        let mut record = JobRecord::new(job.id, &job.original_name, job.size_bytes, job.queued_at);
        record.set_file(&job.file);
        record.state = job.state;
        record.started_at = job.started_at;
        record.finished_at = job.finished_at;
        record.final_progress = job.progress;
        record.summary = job.summary;
        record
    }

    fn newest_time(&self) -> SystemTime {
        self.finished_at
            .or(self.started_at)
            .unwrap_or(self.queued_at)
    }

    fn file(&self) -> &OsStr {
        self.renamed.as_deref().unwrap_or(&self.original_name)
    }

    fn set_file(&mut self, file: &OsStr) {
        if file != self.file() {
            self.renamed = (file != &*self.original_name).then(|| file.into());
        }
    }

    fn snapshot_now(&self) -> JobSnapshot {
        JobSnapshot {
            id: self.id,
            original_name: self.original_name.to_os_string(),
            file: self.file().to_os_string(),
            size_bytes: self.size_bytes,
            state: self.state,
            queued_at: self.queued_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            progress: self
                .progress
                .as_ref()
                .map(|p| p.get())
                .or(self.final_progress),
            summary: self.summary.clone(),
            attempts: self.attempts,
            last_error: self.last_error.as_deref().map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{Analysis, Details};
    use crate::report::Timing;

    fn id(n: u128) -> JobId {
        JobId::from(n)
    }

    fn report(id: JobId, ok: bool) -> Report {
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
            id.to_string(),
            OsStr::new("f"),
            OsStr::new("f"),
            analysis,
            timing,
        )
    }

    fn start(registry: &Registry, id: JobId) {
        registry.start(JobStart {
            id,
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
        let (a, b) = (id(1), id(2));
        registry.queue(a, OsStr::new("f"), 1, SystemTime::now());
        registry.queue(b, OsStr::new("g"), 1, SystemTime::now());
        assert_eq!(registry.counts().queued, 2);
        start(&registry, a);
        registry.forget(b);
        let counts = registry.counts();
        assert_eq!((counts.queued, counts.processing), (0, 1));
        assert_eq!(registry.get(a).map(|j| j.state), Some(JobState::Processing));
        let failed = report(a, false);
        registry.finish(a, &failed, OsStr::new("f-2"));
        let counts = registry.counts();
        assert_eq!(
            (counts.processing, counts.completed, counts.failed),
            (0, 0, 1)
        );
        let job = registry.get(a).expect("kept");
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(
            (job.original_name.as_os_str(), job.file.as_os_str()),
            (OsStr::new("f"), OsStr::new("f-2"))
        );
        assert!(job.summary.and_then(|s| s.error).is_some());
        assert!(registry.get(b).is_none());
    }

    #[test]
    fn a_refused_retry_leaves_the_job_failed_and_counted() {
        let registry = Registry::new(10);
        let a = id(1);
        start(&registry, a);
        registry.finish(a, &report(a, false), OsStr::new("f"));
        let before = registry.begin_retry(a).expect("failed job");
        assert_eq!((registry.counts().queued, registry.counts().failed), (1, 0));
        registry.undo_retry(before);
        let counts = registry.counts();
        assert_eq!((counts.queued, counts.failed), (0, 1));
        assert_eq!(registry.get(a).map(|j| j.state), Some(JobState::Failed));
        assert!(registry.begin_retry(a).is_ok(), "retryable again");
    }

    #[test]
    fn state_names_are_the_serialized_ones() {
        use JobState::*;
        for state in [Queued, Processing, Completed, Failed] {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
        }
    }

    #[test]
    fn history_is_bounded_and_drops_the_oldest() {
        let registry = Registry::new(3);
        for i in 0..10 {
            start(&registry, id(i));
            registry.finish(id(i), &report(id(i), true), OsStr::new("f"));
        }
        assert_eq!(registry.all().len(), 3);
        assert!(registry.get(id(6)).is_none());
        assert!(registry.get(id(7)).is_some());
        assert_eq!(registry.counts().completed, 10);
    }

    #[test]
    fn health_follows_the_liveness_flags() {
        let registry = Registry::new(1);
        registry.heartbeat();
        assert_eq!(registry.health(), Health::Ok);
        registry.set_watcher_ok(false);
        assert!(matches!(registry.health(), Health::Degraded(_)));
        registry.set_watcher_ok(true);
        registry.set_folder_trouble(Some("folder gone".into()));
        assert_eq!(registry.health(), Health::Degraded("folder gone".into()));
        registry.set_folder_trouble(None);
        assert_eq!(registry.health(), Health::Ok);
        registry.job_thread_lost();
        assert!(matches!(registry.health(), Health::Unavailable(_)));
        let registry = Registry::new(1);
        registry.heartbeat();
        registry.set_draining();
        assert!(matches!(registry.health(), Health::Unavailable(_)));
    }

    /// Random queue/start/finish/forget sequences: every listing equals what a plain model
    /// (a list of (id, state) in the order each job entered its state) says, newest first.
    mod listing {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Queue(u8),
            Start(u8),
            Finish(u8, bool),
            Forget(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => any::<u8>().prop_map(|n| Op::Queue(n % 40)),
                3 => any::<u8>().prop_map(|n| Op::Start(n % 40)),
                2 => (any::<u8>(), any::<bool>()).prop_map(|(n, ok)| Op::Finish(n % 40, ok)),
                1 => any::<u8>().prop_map(|n| Op::Forget(n % 40)),
            ]
        }

        proptest! {
            #[test]
            fn listings_match_a_plain_model(ops in proptest::collection::vec(op(), 1..400)) {
                let history = 15;
                let registry = Registry::new(history);
                // Entry order of every job the model still knows, oldest first.
                let mut model: Vec<(JobId, JobState)> = Vec::new();
                for op in ops {
                    let position = |model: &Vec<(JobId, JobState)>, n: u8| {
                        model.iter().position(|(job, _)| *job == id(n as u128))
                    };
                    match op {
                        Op::Queue(n) => {
                            if position(&model, n).is_none() {
                                registry.queue(id(n as u128), OsStr::new("f"), 1, SystemTime::now());
                                model.push((id(n as u128), JobState::Queued));
                            }
                        }
                        Op::Start(n) => match position(&model, n) {
                            Some(at) if model[at].1 == JobState::Queued => {
                                start(&registry, id(n as u128));
                                model.remove(at);
                                model.push((id(n as u128), JobState::Processing));
                            }
                            _ => {}
                        },
                        Op::Finish(n, ok) => match position(&model, n) {
                            Some(at) if model[at].1 == JobState::Processing => {
                                registry.finish(id(n as u128), &report(id(n as u128), ok), OsStr::new("f"));
                                model.remove(at);
                                let state = if ok { JobState::Completed } else { JobState::Failed };
                                model.push((id(n as u128), state));
                                let finished: Vec<usize> = (0..model.len())
                                    .filter(|&i| !matches!(model[i].1, JobState::Queued | JobState::Processing))
                                    .collect();
                                if finished.len() > history {
                                    model.remove(finished[0]);
                                }
                            }
                            _ => {}
                        },
                        Op::Forget(n) => {
                            if let Some(at) = position(&model, n) {
                                registry.forget(id(n as u128));
                                model.remove(at);
                            }
                        }
                    }
                }
                let states = [None, Some(JobState::Queued), Some(JobState::Processing),
                    Some(JobState::Completed), Some(JobState::Failed)];
                for state in states {
                    let active = |s: JobState| matches!(s, JobState::Queued | JobState::Processing);
                    let newest = |finished: bool| model.iter().rev()
                        .filter(move |(_, s)| state.is_none_or(|state| *s == state) && active(*s) != finished)
                        .map(|(job, _)| *job);
                    // Active jobs first, then finished ones.
                    let expected: Vec<JobId> = newest(false).chain(newest(true)).collect();
                    let (total, page) = registry.list(state, 1000, 0);
                    let got: Vec<JobId> = page.iter().map(|job| job.id).collect();
                    if state.is_some() {
                        prop_assert_eq!(&got, &expected, "state {:?}", state);
                    } else {
                        // Across both active states the order is by time, which ties within
                        // a test this fast: compare as sets there.
                        let mut got_sorted = got.clone();
                        got_sorted.sort();
                        let mut expected_sorted = expected.clone();
                        expected_sorted.sort();
                        prop_assert_eq!(got_sorted, expected_sorted);
                    }
                    prop_assert_eq!(total, expected.len());
                    let (_, second) = registry.list(state, 3, 2);
                    let got: Vec<JobId> = second.iter().map(|job| job.id).collect();
                    if state.is_some() {
                        let want: Vec<JobId> = expected.iter().skip(2).take(3).copied().collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }
}
