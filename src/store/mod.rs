//! The job store: the one seam between the pipeline, which changes job state, and the web,
//! which reads it. `JobStore` lists every operation either side needs; `memory::MemoryStore`
//! (one process, everything in memory) is its first implementation and the reference for the
//! others, which must pass the same suite (`suite`, run against every backend).
//!
//! A trait object (`Arc<dyn JobStore>`), not an enum of backends: a backend lives in its own
//! module with its own dependencies (a Redis client for the next one), and the code that uses
//! the store is compiled once, against the trait, whichever backend a run picks. The cost is
//! one indirect call per operation, nothing next to the lock each one takes.
//!
//! Rules for every backend: a method never panics on data it reads back; a method may block
//! (a network round trip) only if `may_block` says so, and then the web calls it on a blocking
//! thread, never on the async executor; the pipeline calls it from its own threads.
//! Progress is pushed by the worker (`progressed`, throttled by the worker, and its last value
//! with `finish`), never polled, so that a backend can store it where other nodes read it.

pub mod events;
pub mod intake;
pub mod memory;
pub mod replica;
#[cfg(test)]
pub(crate) mod suite;

use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

pub use events::ChangeFeed;
pub use intake::FileKey;
pub use memory::MemoryStore;
pub use replica::ReplicaStore;

use crate::disk::report::Report;
use crate::health::FinishTrouble;
use crate::job::{Counts, JobId, JobSnapshot, JobState, KindCount, Minute, RetryRefused};

/// A job that starts processing, with what the store may not have seen when it was queued
/// (a file requeued from `underprocess/` at start was never queued in this run).
pub struct JobStart {
    pub id: JobId,
    pub original_name: OsString,
    pub file: OsString,
    pub size_bytes: u64,
    pub queued_at: SystemTime,
}

pub trait JobStore: Send + Sync {
    // --- The pipeline: a job's life.

    /// A file in `unprocessed/` is ready and waits for a worker. Queueing a job already
    /// queued (an upload seen by the scheduler) updates its name and size.
    fn queue(&self, id: JobId, name: &OsStr, size_bytes: u64, queued_at: SystemTime);

    /// A job that will not run in this process: its file vanished, changed, or stays in
    /// `unprocessed/` at shutdown.
    fn forget(&self, id: JobId);

    /// The file was claimed into `underprocess/` and is being analysed.
    fn start(&self, start: JobStart);

    /// A running job has done `done` of its `total` segments. The worker pushes it at most a
    /// few times a second per job (`workers::PROGRESS_EVERY`); the store tells its subscribers
    /// each time.
    fn progressed(&self, id: JobId, done: u64, total: u64);

    /// The job's report is published and its file is `file` (the name on disk; the report's
    /// `file` is its lossy text); `progress` is where its analysis ended (segments done and
    /// total).
    fn finish(&self, id: JobId, report: &Report, file: &OsStr, progress: (u64, u64));

    /// A running job could not be finished (its report or its move failed): it is shown
    /// queued again, with the error and the number of attempts, until it is tried again.
    fn finish_failed(&self, id: JobId, error: &str, attempts: u32);

    /// Jobs whose finish failed and that wait to be tried again (cheap: read at every turn of
    /// the scheduler).
    fn unfinished(&self) -> usize;

    /// How many jobs wait after a failed finish, and the last error, when any do.
    fn finish_trouble(&self) -> FinishTrouble;

    /// Finished jobs read back from their reports at start, oldest first, and the all-time
    /// counts of the reports on disk.
    fn restore(&self, finished: Vec<JobSnapshot>, completed: u64, failed: u64);

    // --- Retries.

    /// A failed job goes back to the queue under its id. Returns the job as it was.
    fn begin_retry(&self, id: JobId) -> Result<JobSnapshot, RetryRefused>;

    /// A retry whose file could not be moved back: the job is failed again, as before.
    fn undo_retry(&self, before: JobSnapshot);

    // --- Reads, for the web.

    fn get(&self, id: JobId) -> Option<JobSnapshot>;

    /// Jobs in `state` (all when `None`), newest first: by finish time for finished jobs, by
    /// start or queue time for the others. Returns the total and the page.
    fn list(
        &self,
        state: Option<JobState>,
        limit: usize,
        offset: usize,
    ) -> (usize, Vec<JobSnapshot>);

    /// The newest `limit` jobs in `state`.
    fn recent(&self, state: JobState, limit: usize) -> Vec<JobSnapshot> {
        self.list(Some(state), limit, 0).1
    }

    /// The newest finished job that completed.
    fn last_processed(&self) -> Option<JobSnapshot>;

    fn counts(&self) -> Counts;

    /// The finished jobs of the history (the newest `--history`) by kind, completed and
    /// failed, in `Kind::ALL` order; kinds without any are left out.
    fn kinds(&self) -> Vec<KindCount>;

    /// Files and bytes finished per minute over the last `THROUGHPUT_MINUTES` minutes, oldest
    /// first, the minutes without any included as zeros.
    fn throughput(&self) -> Vec<Minute>;

    /// Every change, as it happens.
    fn changes(&self) -> &ChangeFeed;

    /// Whether a call may wait on I/O; the web then calls it off the async executor.
    fn may_block(&self) -> bool {
        false
    }

    // --- The intake: files the HTTP side places in `unprocessed/` with a job id already
    // given (uploads, retries), so that the scheduler queues them under that id.

    /// The file `key`, about to be renamed into `unprocessed/`, is job `id`.
    fn expect_file(&self, key: FileKey, id: JobId);

    /// The file `key` is now `unprocessed/NAME`.
    fn file_placed(&self, key: FileKey, name: &OsStr);

    /// The file did not get there after all.
    fn withdraw_file(&self, key: FileKey);

    /// The job id given to the file `key`, if any; at most once.
    fn take_expected(&self, key: FileKey) -> Option<JobId>;

    /// Drops the expected files no longer in `unprocessed/` (`present(name, key)` says whether
    /// `NAME` there is still that file) and returns their job ids.
    fn sweep_expected(&self, present: &mut dyn FnMut(&OsStr, FileKey) -> bool) -> Vec<JobId>;
}
