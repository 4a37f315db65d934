//! The in-memory job store: the first `JobStore` backend, for a daemon that runs alone.
//!
//! The pipeline writes it (queued → processing → completed | failed); readers get copies.
//! Every queued and running job is kept; finished ones only up to `history` (oldest dropped
//! first), so memory does not grow with the number of files ever processed. It never touches
//! the filesystem: it is a picture of the pipeline, not its source of truth. Every method
//! holds one lock for a handful of field writes or a bounded scan: none blocks.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use crate::analyze::Kind;
use crate::disk::report::{Report, Status};
use crate::health::FinishTrouble;
use crate::job::{
    Counts, JobId, JobSnapshot, JobState, JobSummary, KindCount, Minute, RetryRefused,
    THROUGHPUT_MINUTES,
};
use crate::store::intake::{FileKey, Intake};
use crate::store::{ChangeFeed, JobStart, JobStore};

/// One job as the store keeps it: one allocation for the record and one for its name, so
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
    /// Segments done and total, as the worker said last.
    progress: Option<(u64, u64)>,
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
    /// costs the same memory however many jobs go through it.
    finished: VecDeque<JobRecord>,
    /// Where each id of `finished` is: its sequence number (the oldest's is `finished_first`),
    /// so that a look-up by id costs the same however long the history (a cluster node looks
    /// up every job another node finishes).
    finished_at: HashMap<JobId, u64>,
    finished_first: u64,
    /// How many of `finished` completed and how many failed, in all and per kind
    /// (`Kind::ALL` order); kept by `ring_enter` and `ring_leave`.
    in_ring: [usize; 2],
    kinds_in_ring: [[usize; 2]; Kind::ALL.len()],
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

pub struct MemoryStore {
    jobs: Mutex<Jobs>,
    changes: ChangeFeed,
    /// `Jobs::unfinished`, readable without the lock (the scheduler looks at every turn).
    unfinished: AtomicUsize,
    history: usize,
    intake: Intake,
}

impl MemoryStore {
    pub fn new(history: usize) -> MemoryStore {
        MemoryStore {
            jobs: Mutex::new(Jobs::default()),
            changes: ChangeFeed::default(),
            unfinished: AtomicUsize::new(0),
            history,
            intake: Intake::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Jobs> {
        // A panic elsewhere while holding the lock leaves consistent data: every update below
        // is a handful of field writes.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every job the store holds, in no particular order.
    pub fn all(&self) -> Vec<JobSnapshot> {
        let jobs = self.lock();
        jobs.active
            .values()
            .chain(jobs.finished.iter())
            .map(JobRecord::snapshot_now)
            .collect()
    }

    /// Removes the active job `id`, out of its state's count (and of the unfinished ones).
    fn take_active(&self, jobs: &mut Jobs, id: JobId) -> Option<JobRecord> {
        let record = jobs.active.remove(&id)?;
        match record.state {
            JobState::Queued => jobs.counts.queued -= 1,
            _ => jobs.counts.processing -= 1,
        }
        if record.last_error.is_some() {
            jobs.unfinished -= 1;
            self.unfinished.store(jobs.unfinished, Ordering::Relaxed);
        }
        Some(record)
    }

    /// Tells the subscribers, if any (no copy is made when nobody listens).
    fn announce(&self, record: &JobRecord) {
        self.changes.publish(|| record.snapshot_now());
    }
}

impl JobStore for MemoryStore {
    /// A file in `unprocessed/` is ready and waits for a worker.
    /// Queueing a job already queued (an upload seen by the scheduler) updates its name and
    /// size.
    fn queue(&self, id: JobId, name: &OsStr, size_bytes: u64, queued_at: SystemTime) {
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
    fn forget(&self, id: JobId) {
        self.changes.bump();
        let mut jobs = self.lock();
        if self.take_active(&mut jobs, id).is_some() {
            jobs.give_back_memory();
        } else if let Some(at) = jobs.finished_position(id) {
            jobs.remove_finished(at);
        }
    }

    /// The file was claimed into `underprocess/` and is being analysed.
    fn start(&self, start: JobStart) {
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
        record.progress = None;
        self.announce(record);
    }

    /// The job's report is published and its file is `file` (the name on disk; the report's
    /// `file` is its lossy text); the job joins the bounded history.
    fn finish(&self, id: JobId, report: &Report, file: &OsStr, progress: (u64, u64)) {
        let state = match report.status {
            Status::Completed => JobState::Completed,
            Status::Failed => JobState::Failed,
        };
        let finished = Finished {
            state,
            original_name: OsStr::new(&report.original_name),
            size_bytes: report.size_bytes,
            file,
            progress,
            summary: report.job_summary(),
            queued_at: None,
            started_at: None,
        };
        self.finish_job(id, finished);
    }

    /// A running job could not be finished (its report or its move failed): it is queued
    /// again, visibly, with the error and the number of attempts, until the pipeline tries it
    /// again.
    fn finish_failed(&self, id: JobId, error: &str, attempts: u32) {
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
        self.announce(record);
    }

    /// A failed job goes back to the queue under its id: out of the history and counted as
    /// queued (no longer as failed). Returns the job as it was; its file is still in `failed/`.
    fn begin_retry(&self, id: JobId) -> Result<JobSnapshot, RetryRefused> {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        if let Some(record) = jobs.active.get(&id) {
            return Err(RetryRefused::NotFailed(record.state));
        }
        let at = jobs.finished_position(id).ok_or(RetryRefused::Unknown)?;
        let state = jobs.finished[at].state;
        if state != JobState::Failed {
            return Err(RetryRefused::NotFailed(state));
        }
        let mut record = jobs.remove_finished(at).ok_or(RetryRefused::Unknown)?;
        let before = record.snapshot_now();
        jobs.counts.failed = jobs.counts.failed.saturating_sub(1);
        jobs.counts.queued += 1;
        record.state = JobState::Queued;
        record.queued_at = SystemTime::now();
        record.started_at = None;
        record.finished_at = None;
        record.progress = None;
        record.summary = None;
        record.entered = jobs.enter(id, JobState::Queued);
        self.announce(&record);
        jobs.active.insert(id, record);
        Ok(before)
    }

    /// Jobs in `state` (all when `None`), newest first: by finish time for finished jobs, by
    /// start or queue time for the others. Returns the total and the page.
    fn list(
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

    /// The newest finished job that completed.
    fn last_processed(&self) -> Option<JobSnapshot> {
        let jobs = self.lock();
        jobs.finished
            .iter()
            .rev()
            .find(|record| record.state == JobState::Completed)
            .map(JobRecord::snapshot_now)
    }

    /// Puts finished jobs read back from their reports at start, oldest first, into the
    /// history; the all-time counters start from the reports found on disk.
    fn restore(&self, finished: Vec<JobSnapshot>, completed: u64, failed: u64) {
        let mut jobs = self.lock();
        jobs.counts.completed += completed;
        jobs.counts.failed += failed;
        for job in finished {
            jobs.push_finished(JobRecord::finished_from(job), self.history);
        }
    }

    /// A retry whose file could not be moved back: the job is failed again, as it was before
    /// `begin_retry` (and counted as failed again, not lost from the counts).
    fn undo_retry(&self, before: JobSnapshot) {
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
    fn throughput(&self) -> Vec<Minute> {
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

    fn counts(&self) -> Counts {
        self.lock().counts
    }

    fn kinds(&self) -> Vec<KindCount> {
        let jobs = self.lock();
        Kind::ALL
            .into_iter()
            .zip(jobs.kinds_in_ring)
            .filter(|(_, [completed, failed])| completed + failed > 0)
            .map(|(kind, [completed, failed])| KindCount {
                kind,
                completed,
                failed,
            })
            .collect()
    }

    fn get(&self, id: JobId) -> Option<JobSnapshot> {
        let jobs = self.lock();
        jobs.active
            .get(&id)
            .or_else(|| jobs.finished_position(id).map(|at| &jobs.finished[at]))
            .map(JobRecord::snapshot_now)
    }

    fn progressed(&self, id: JobId, done: u64, total: u64) {
        let mut jobs = self.lock();
        let Some(record) = jobs.active.get_mut(&id) else {
            return;
        };
        record.progress = Some((done, total));
        self.announce(record);
    }

    fn unfinished(&self) -> usize {
        self.unfinished.load(Ordering::Relaxed)
    }

    fn finish_trouble(&self) -> FinishTrouble {
        if self.unfinished() == 0 {
            return None;
        }
        let jobs = self.lock();
        (jobs.unfinished > 0).then(|| (jobs.unfinished, jobs.last_finish_error.clone()))
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }

    fn expect_file(&self, key: FileKey, id: JobId) {
        self.intake.expect(key, id);
    }

    fn file_placed(&self, key: FileKey, name: &OsStr) {
        self.intake.placed(key, name);
    }

    fn withdraw_file(&self, key: FileKey) {
        self.intake.withdraw(key);
    }

    fn take_expected(&self, key: FileKey) -> Option<JobId> {
        self.intake.take(key)
    }

    fn sweep_expected(&self, present: &mut dyn FnMut(&OsStr, FileKey) -> bool) -> Vec<JobId> {
        self.intake.sweep(present)
    }
}

/// When a job was queued, started and finished, and its state: what a cluster node checks
/// for every change another node publishes, read without copying the job's names and summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub state: JobState,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
}

/// A finished job, from its report (this process) or from another node's change.
pub struct Finished<'a> {
    pub state: JobState,
    pub original_name: &'a OsStr,
    pub size_bytes: u64,
    pub file: &'a OsStr,
    pub progress: (u64, u64),
    pub summary: JobSummary,
    /// When the store never saw it queued or started (another node's job).
    pub queued_at: Option<SystemTime>,
    pub started_at: Option<SystemTime>,
}

impl MemoryStore {
    /// The state and times of job `id`, if the store has it (`JobStore::get` without the copy).
    pub fn timing(&self, id: JobId) -> Option<Timing> {
        let jobs = self.lock();
        jobs.active
            .get(&id)
            .or_else(|| jobs.finished_position(id).map(|at| &jobs.finished[at]))
            .map(|record| Timing {
                state: record.state,
                queued_at: record.queued_at,
                started_at: record.started_at,
                finished_at: record.finished_at,
            })
    }

    /// The job is finished: it leaves the active jobs, joins the history and the counts.
    pub fn finish_job(&self, id: JobId, finished: Finished<'_>) {
        let mut guard = self.lock();
        let jobs = &mut *guard;
        let state = finished.state;
        match state {
            JobState::Completed => jobs.counts.completed += 1,
            _ => jobs.counts.failed += 1,
        }
        let now = SystemTime::now();
        let mut record = match self.take_active(jobs, id) {
            Some(record) => record,
            None => {
                let mut record = JobRecord::new(
                    id,
                    finished.original_name,
                    finished.size_bytes,
                    finished.queued_at.unwrap_or(now),
                );
                record.started_at = finished.started_at;
                record
            }
        };
        record.state = state;
        record.set_file(finished.file);
        record.last_error = None;
        record.finished_at = Some(now);
        record.progress = Some(finished.progress);
        record.summary = Some(finished.summary);
        let minute = minute_of(now);
        match jobs.throughput.back_mut() {
            Some(last) if last.minute == minute => {
                last.files += 1;
                last.bytes += finished.size_bytes;
            }
            _ => {
                if jobs.throughput.len() >= THROUGHPUT_MINUTES {
                    jobs.throughput.pop_front();
                }
                jobs.throughput.push_back(Minute {
                    minute,
                    files: 1,
                    bytes: finished.size_bytes,
                });
            }
        }
        self.announce(&record);
        jobs.push_finished(record, self.history);
        jobs.give_back_memory();
    }

    /// Another node finished job `id`: as `finish_job`, unless this store already has it
    /// finished (the history read back from the reports at start holds it too).
    pub fn finish_elsewhere(&self, id: JobId, finished: Finished<'_>) {
        let known = self.lock().finished_position(id).is_some();
        if !known {
            self.finish_job(id, finished);
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

    /// Counts a record that joins `finished`.
    fn ring_enter(&mut self, record: &JobRecord) {
        let slot = finished_slot(record.state);
        self.in_ring[slot] += 1;
        if let Some(summary) = &record.summary {
            self.kinds_in_ring[summary.kind as usize][slot] += 1;
        }
    }

    /// Uncounts a record that leaves `finished`.
    fn ring_leave(&mut self, record: &JobRecord) {
        let slot = finished_slot(record.state);
        self.in_ring[slot] -= 1;
        if let Some(summary) = &record.summary {
            let count = &mut self.kinds_in_ring[summary.kind as usize][slot];
            *count = count.saturating_sub(1);
        }
    }

    /// Adds a finished job to the history ring of at most `history` records.
    fn push_finished(&mut self, record: JobRecord, history: usize) {
        if history == 0 {
            return;
        }
        if self.finished.len() >= history {
            if let Some(oldest) = self.finished.pop_front() {
                self.ring_leave(&oldest);
                if self.finished_at.get(&oldest.id) == Some(&self.finished_first) {
                    self.finished_at.remove(&oldest.id);
                }
                self.finished_first += 1;
            }
        } else if self.finished.len() == self.finished.capacity() {
            // Grow, but never past `history`: a ring with spare slots would, as it turns,
            // touch all of them.
            let target = (2 * self.finished.len()).max(64).min(history);
            self.finished.reserve_exact(target - self.finished.len());
        }
        self.ring_enter(&record);
        self.finished_at
            .insert(record.id, self.finished_first + self.finished.len() as u64);
        self.finished.push_back(record);
        if self.finished_at.capacity() > 4 * self.finished_at.len() + 1024 {
            self.finished_at.shrink_to(2 * self.finished_at.len());
        }
    }

    /// Where the newest finished record of `id` is in `finished`.
    fn finished_position(&self, id: JobId) -> Option<usize> {
        let seq = *self.finished_at.get(&id)?;
        let at = usize::try_from(seq.checked_sub(self.finished_first)?).ok()?;
        self.finished
            .get(at)
            .is_some_and(|record| record.id == id)
            .then_some(at)
    }

    /// Takes the finished record at `at` out of the ring (a forget or a retry: rare), and
    /// numbers the ring afresh.
    fn remove_finished(&mut self, at: usize) -> Option<JobRecord> {
        let record = self.finished.remove(at)?;
        self.ring_leave(&record);
        self.finished_at.clear();
        let first = self.finished_first;
        for (i, record) in self.finished.iter().enumerate() {
            self.finished_at.insert(record.id, first + i as u64);
        }
        Some(record)
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
        record.progress = job.progress;
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
            progress: self.progress,
            summary: self.summary.clone(),
            attempts: self.attempts,
            last_error: self.last_error.as_deref().map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_passes_the_shared_suite() {
        crate::store::suite::run_all(&|history| Box::new(MemoryStore::new(history)));
    }
}
