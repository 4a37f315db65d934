//! The cluster's view (`--redis`): a `MemoryStore` that holds every node's jobs. This node's
//! jobs go into it as always, and each change is also written to an outbox, which the daemon's
//! feed thread publishes to a Redis stream; the other nodes' changes, read from that stream,
//! are applied to it (`apply`). Reads never leave the process, so the web never waits on Redis,
//! and while Redis is down the outbox keeps what this node did (up to `OUTBOX_LIMIT` changes)
//! until it can be published: every node's view converges once Redis is back.
//!
//! Changes travel in batches, encoded with `postcard` (a compact binary form of the same serde
//! types: a quarter of the bytes of JSON, and several times faster to write and read, which
//! matters because every node decodes every other node's finishes). A batch read from Redis is
//! data another process wrote: one that does not decode is skipped.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::disk::report::{Report, Status};
use crate::health::FinishTrouble;
use crate::job::{
    Counts, JobId, JobSnapshot, JobState, JobSummary, KindCount, Minute, RetryRefused,
};
use crate::store::intake::FileKey;
use crate::store::memory::Finished;
use crate::store::{ChangeFeed, JobStart, JobStore, MemoryStore};

/// Changes kept while Redis is down; past it the oldest are dropped (and counted).
pub const OUTBOX_LIMIT: usize = 100_000;

/// A job's queued change waits this long before it is published, and is not published at all
/// if the job has moved on meanwhile (claimed, finished, forgotten): the change that moved it
/// tells the other nodes all the queued one would have. In a burst the scanning node queues
/// every file it finds, most are claimed within a second, and a queued change for each was
/// half of all the changes every other node decoded and applied. The price: a file still
/// waiting shows as queued on the other nodes this much later than on the scanning node.
pub const QUEUED_HELD: Duration = Duration::from_secs(1);

/// One change of one job, as it travels between nodes. The encoding (`encode_changes`) names
/// no fields: any change to this type, or to the types inside it, must come with a new
/// `CHANGES_ENCODING`, so that nodes of different versions skip each other's batches instead
/// of misreading them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Queued {
        id: String,
        name: String,
        size_bytes: u64,
        queued_at: u64,
    },
    Forgotten {
        id: String,
    },
    /// A running job's progress (the worker says so at most a few times a second).
    Progressed {
        id: String,
        done: u64,
        total: u64,
    },
    Started {
        id: String,
        name: String,
        file: String,
        size_bytes: u64,
        queued_at: u64,
    },
    Finished {
        id: String,
        name: String,
        file: String,
        size_bytes: u64,
        state: JobState,
        queued_at: u64,
        started_at: Option<u64>,
        progress: (u64, u64),
        summary: JobSummary,
    },
}

fn finished(state: JobState) -> bool {
    matches!(state, JobState::Completed | JobState::Failed)
}

/// Milliseconds since the epoch, as times travel between nodes.
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time that travelled as `millis`.
pub(crate) fn time_of(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// The name of the encoding of a batch of changes, under which it is published: a node reads
/// only batches under the name it knows.
pub const CHANGES_ENCODING: &str = "changes-postcard-1";

/// A batch of changes as it is published. A change holds strings, numbers and enums only,
/// so this fails only if the encoder itself does (e.g. memory): the caller drops the batch.
pub fn encode_changes(changes: &[Change]) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(changes)
}

/// A change waiting in the outbox: its job (none for one given back after a failed publish,
/// which was coalesced already), whether it finishes the job, and the change.
struct Outgoing {
    id: Option<JobId>,
    finishes: bool,
    change: Box<Change>,
}

/// A job whose queued change is held back (`QUEUED_HELD`): the change is made when due, from
/// the view, if the job is still queued then (most are not, and cost nothing more).
struct Held {
    due: Instant,
    id: JobId,
}

pub struct ReplicaStore {
    view: MemoryStore,
    outbox: Mutex<VecDeque<Outgoing>>,
    /// Jobs whose queued change is not due yet, oldest first.
    held: Mutex<VecDeque<Held>>,
    dropped: AtomicU64,
    /// Jobs this node runs now (its heartbeat says how many).
    running_here: Mutex<HashSet<JobId>>,
}

impl ReplicaStore {
    pub fn new(history: usize) -> ReplicaStore {
        ReplicaStore {
            view: MemoryStore::new(history),
            outbox: Mutex::new(VecDeque::new()),
            held: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            running_here: Mutex::new(HashSet::new()),
        }
    }

    fn send(&self, id: JobId, change: Change) {
        let finishes = matches!(change, Change::Finished { .. });
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        if outbox.len() >= OUTBOX_LIMIT {
            outbox.pop_front();
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                log::warn!(
                    "more than {OUTBOX_LIMIT} changes wait for Redis: the oldest are dropped, \
                     and the other nodes' views miss them"
                );
            }
        }
        outbox.push_back(Outgoing {
            id: Some(id),
            finishes,
            change: Box::new(change),
        });
    }

    /// Holds back the queued change of job `id` (`QUEUED_HELD`); when too many are held, the
    /// oldest is released at once.
    fn hold(&self, id: JobId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = (held.len() >= OUTBOX_LIMIT)
            .then(|| held.pop_front())
            .flatten();
        held.push_back(Held {
            due: Instant::now() + QUEUED_HELD,
            id,
        });
        drop(held);
        if let Some(oldest) = oldest {
            self.release(oldest.id);
        }
    }

    /// Sends job `id`'s queued change, as the view has the job now, if it is still queued.
    fn release(&self, id: JobId) {
        if let Some(job) = self.view.get(id)
            && job.state == JobState::Queued
        {
            let change = Change::Queued {
                id: id.to_string(),
                name: job.file.to_string_lossy().into_owned(),
                size_bytes: job.size_bytes,
                queued_at: millis(job.queued_at),
            };
            self.send(id, change);
        }
    }

    /// Moves the queued changes due by `now` whose job is still queued to the outbox; the
    /// others are dropped (the change that moved their job on is in the outbox, or was
    /// published, or was read from another node). A job queued again since (a retry) is
    /// still queued: its change goes, and the nodes that saw it finish later take it for
    /// stale.
    fn release_held(&self, now: Instant) {
        loop {
            let due = {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                match held.front() {
                    Some(first) if first.due <= now => held.pop_front(),
                    _ => None,
                }
            };
            let Some(due) = due else {
                return;
            };
            self.release(due.id);
        }
    }

    /// Up to `limit` changes to publish as of `now`, oldest first; `give_back` returns them
    /// when the publishing failed. A job queued, started and finished within one batch
    /// travels as its finish alone (which carries all the others say), and a queued change
    /// waits `QUEUED_HELD` first: a burst costs about one change per file.
    pub fn take_outbox(&self, limit: usize, now: Instant) -> Vec<Change> {
        self.release_held(now);
        let taken: Vec<Outgoing> = {
            let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
            let n = outbox.len().min(limit);
            outbox.drain(..n).collect()
        };
        let mut finished_later = HashSet::new();
        let mut kept: Vec<Change> = Vec::with_capacity(taken.len());
        for change in taken.into_iter().rev() {
            if let Some(id) = change.id {
                if change.finishes {
                    finished_later.insert(id);
                } else if finished_later.contains(&id) {
                    continue;
                }
            }
            kept.push(*change.change);
        }
        kept.reverse();
        kept
    }

    /// Changes `take_outbox` gave that could not be published: first again, in order.
    pub fn give_back(&self, changes: Vec<Change>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        for change in changes.into_iter().rev() {
            // Already coalesced: nothing in them is dropped a second time.
            outbox.push_front(Outgoing {
                id: None,
                finishes: false,
                change: Box::new(change),
            });
        }
    }

    /// How many jobs this node is running.
    pub fn running_here(&self) -> usize {
        self.running_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn set_running(&self, id: JobId, running: bool) {
        let mut here = self.running_here.lock().unwrap_or_else(|e| e.into_inner());
        if running {
            here.insert(id);
        } else {
            here.remove(&id);
        }
    }

    /// Finishes read back from the reports of a node that died: each one this view does not
    /// have finished yet joins it (the node died before it published them). How many did.
    pub fn heal(&self, jobs: Vec<JobSnapshot>) -> usize {
        let mut healed = 0;
        for job in jobs {
            let (Some(summary), true) = (job.summary, finished(job.state)) else {
                continue;
            };
            if self
                .view
                .get(job.id)
                .is_some_and(|known| finished(known.state))
            {
                continue;
            }
            healed += 1;
            self.view.finish_elsewhere(
                job.id,
                Finished {
                    state: job.state,
                    original_name: &job.original_name,
                    size_bytes: job.size_bytes,
                    file: &job.file,
                    progress: (1, 1),
                    summary,
                    queued_at: Some(job.queued_at),
                    started_at: job.started_at,
                },
            );
        }
        healed
    }

    /// Applies a batch of changes another node published (`encode_changes`); a batch that
    /// does not decode is skipped whole.
    pub fn apply_encoded(&self, bytes: &[u8]) {
        match postcard::from_bytes::<Vec<Change>>(bytes) {
            Ok(changes) => {
                for change in changes {
                    self.apply_change(change);
                }
            }
            Err(err) => log::debug!(
                "skipped a batch of changes that does not decode ({} bytes): {err}",
                bytes.len()
            ),
        }
    }

    fn apply_change(&self, change: Change) {
        let parse = |id: &str| JobId::from_string(id).ok();
        // Changes of one job come from several nodes and threads (the scanning node queues
        // it, another runs it): one that arrives after the job finished here is stale, unless
        // it was queued after that finish (a retry), which opens the job again.
        let finished_here = |id: JobId| self.view.timing(id).is_some_and(|job| finished(job.state));
        let stale = |id: JobId, queued_at: u64| {
            self.view.timing(id).is_some_and(|job| {
                finished(job.state) && job.finished_at.is_some_and(|f| f >= time_of(queued_at))
            })
        };
        let reopen = |id: JobId| {
            if finished_here(id) {
                let _ = self.view.begin_retry(id);
            }
        };
        match change {
            Change::Queued {
                id,
                name,
                size_bytes,
                queued_at,
            } => {
                if let Some(id) = parse(&id)
                    && !stale(id, queued_at)
                {
                    reopen(id);
                    self.view
                        .queue(id, OsStr::new(&name), size_bytes, time_of(queued_at));
                }
            }
            Change::Progressed { id, done, total } => {
                if let Some(id) = parse(&id)
                    && !finished_here(id)
                {
                    self.view.progressed(id, done, total);
                }
            }
            Change::Forgotten { id } => {
                if let Some(id) = parse(&id)
                    && self.view.timing(id).is_some_and(|job| !finished(job.state))
                {
                    self.view.forget(id);
                }
            }
            Change::Started {
                id,
                name,
                file,
                size_bytes,
                queued_at,
            } => {
                if let Some(id) = parse(&id)
                    && !stale(id, queued_at)
                {
                    reopen(id);
                    self.view.start(JobStart {
                        id,
                        original_name: name.into(),
                        file: file.into(),
                        size_bytes,
                        queued_at: time_of(queued_at),
                    });
                }
            }
            Change::Finished {
                id,
                name,
                file,
                size_bytes,
                state,
                queued_at,
                started_at,
                progress,
                summary,
            } => {
                if let Some(id) = parse(&id)
                    && finished(state)
                {
                    // A finish of a run queued after the one this view saw finish (a retry
                    // whose queued and started changes were folded into it) opens it again.
                    if !stale(id, queued_at) {
                        reopen(id);
                    }
                    self.view.finish_elsewhere(
                        id,
                        Finished {
                            state,
                            original_name: OsStr::new(&name),
                            size_bytes,
                            file: OsStr::new(&file),
                            progress,
                            summary,
                            queued_at: Some(time_of(queued_at)),
                            started_at: started_at.map(time_of),
                        },
                    );
                }
            }
        }
    }
}

impl JobStore for ReplicaStore {
    fn queue(&self, id: JobId, name: &OsStr, size_bytes: u64, queued_at: SystemTime) {
        self.view.queue(id, name, size_bytes, queued_at);
        self.hold(id);
    }

    fn forget(&self, id: JobId) {
        self.view.forget(id);
        self.set_running(id, false);
        self.send(id, Change::Forgotten { id: id.to_string() });
    }

    fn start(&self, start: JobStart) {
        let change = Change::Started {
            id: start.id.to_string(),
            name: start.original_name.to_string_lossy().into_owned(),
            file: start.file.to_string_lossy().into_owned(),
            size_bytes: start.size_bytes,
            queued_at: millis(start.queued_at),
        };
        self.set_running(start.id, true);
        let id = start.id;
        self.view.start(start);
        self.send(id, change);
    }

    fn progressed(&self, id: JobId, done: u64, total: u64) {
        self.view.progressed(id, done, total);
        self.send(
            id,
            Change::Progressed {
                id: id.to_string(),
                done,
                total,
            },
        );
    }

    fn finish(&self, id: JobId, report: &Report, file: &OsStr, progress: (u64, u64)) {
        let before = self.view.timing(id);
        self.view.finish(id, report, file, progress);
        self.set_running(id, false);
        let state = match report.status {
            Status::Completed => JobState::Completed,
            Status::Failed => JobState::Failed,
        };
        let started_at = before.and_then(|job| job.started_at);
        let queued_at = before.map_or_else(SystemTime::now, |job| job.queued_at);
        self.send(
            id,
            Change::Finished {
                id: id.to_string(),
                name: report.original_name.clone(),
                file: file.to_string_lossy().into_owned(),
                size_bytes: report.size_bytes,
                state,
                queued_at: millis(queued_at),
                started_at: started_at.map(millis),
                progress,
                summary: report.job_summary(),
            },
        );
    }

    fn finish_failed(&self, id: JobId, error: &str, attempts: u32) {
        self.view.finish_failed(id, error, attempts);
    }

    fn unfinished(&self) -> usize {
        self.view.unfinished()
    }

    fn finish_trouble(&self) -> FinishTrouble {
        self.view.finish_trouble()
    }

    fn restore(&self, finished: Vec<JobSnapshot>, completed: u64, failed: u64) {
        self.view.restore(finished, completed, failed);
    }

    fn begin_retry(&self, id: JobId) -> Result<JobSnapshot, RetryRefused> {
        self.view.begin_retry(id)
    }

    fn undo_retry(&self, before: JobSnapshot) {
        self.view.undo_retry(before);
    }

    fn get(&self, id: JobId) -> Option<JobSnapshot> {
        self.view.get(id)
    }

    fn list(
        &self,
        state: Option<JobState>,
        limit: usize,
        offset: usize,
    ) -> (usize, Vec<JobSnapshot>) {
        self.view.list(state, limit, offset)
    }

    fn last_processed(&self) -> Option<JobSnapshot> {
        self.view.last_processed()
    }

    fn counts(&self) -> Counts {
        self.view.counts()
    }

    fn kinds(&self) -> Vec<KindCount> {
        self.view.kinds()
    }

    fn throughput(&self) -> Vec<Minute> {
        self.view.throughput()
    }

    fn changes(&self) -> &ChangeFeed {
        self.view.changes()
    }

    fn expect_file(&self, key: FileKey, id: JobId) {
        self.view.expect_file(key, id);
    }

    fn file_placed(&self, key: FileKey, name: &OsStr) {
        self.view.file_placed(key, name);
    }

    fn withdraw_file(&self, key: FileKey) {
        self.view.withdraw_file(key);
    }

    fn take_expected(&self, key: FileKey) -> Option<JobId> {
        self.view.take_expected(key)
    }

    fn sweep_expected(&self, present: &mut dyn FnMut(&OsStr, FileKey) -> bool) -> Vec<JobId> {
        self.view.sweep_expected(present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replica_store_passes_the_shared_suite() {
        crate::store::suite::run_all(&|history| Box::new(ReplicaStore::new(history)));
    }

    #[test]
    fn another_nodes_changes_show_once_and_bad_ones_are_skipped() {
        let here = ReplicaStore::new(100);
        let there = ReplicaStore::new(100);
        let id = JobId::generate();
        there.queue(id, OsStr::new("a.log"), 10, SystemTime::now());
        there.start(JobStart {
            id,
            original_name: "a.log".into(),
            file: "x_a.log".into(),
            size_bytes: 10,
            queued_at: SystemTime::now(),
        });
        assert_eq!(there.running_here(), 1);
        pass(&there, &here);
        assert_eq!(
            here.get(id).map(|job| job.state),
            Some(JobState::Processing)
        );
        there.progressed(id, 3, 8);
        pass(&there, &here);
        assert_eq!(here.get(id).and_then(|job| job.progress), Some((3, 8)));
        assert_eq!(here.running_here(), 0, "another node's job runs there");
        let finished = Change::Finished {
            id: id.to_string(),
            name: "a.log".into(),
            file: "a.log".into(),
            size_bytes: 10,
            state: JobState::Completed,
            queued_at: 1,
            started_at: Some(2),
            progress: (1, 1),
            summary: JobSummary {
                kind: crate::analyze::Kind::Text,
                duration_ms: 3,
                duration_us: 3_141,
                error: None,
                figure: None,
            },
        };
        let finish = batch(&[finished]);
        here.apply_encoded(&finish);
        // Twice (a replay): counted once.
        here.apply_encoded(&finish);
        assert_eq!(here.counts().completed, 1);
        assert_eq!(here.counts().processing, 0);
        assert_eq!(here.get(id).map(|job| job.state), Some(JobState::Completed));
        // A late change of a finished job (another node's thread was slower): stale.
        let late = SystemTime::now() - Duration::from_secs(60);
        there.queue(id, OsStr::new("a.log"), 10, late);
        pass(&there, &here);
        assert_eq!(here.counts().queued, 0);
        assert_eq!(here.get(id).map(|job| job.state), Some(JobState::Completed));
        // Not a job id: skipped.
        let queued = |id: &str| Change::Queued {
            id: id.to_string(),
            name: "n".into(),
            size_bytes: 1,
            queued_at: 1,
        };
        here.apply_encoded(&batch(&[queued("../../x"), queued("")]));
        assert_eq!(here.counts().queued, 0);
        // Not a batch: skipped whole, whatever its bytes (a cut batch, JSON, random bytes).
        let two = batch(&[queued(&JobId::generate().to_string()), queued("x")]);
        here.apply_encoded(&two[..two.len() - 1]);
        here.apply_encoded(b"[{\"queued\":{}}]");
        here.apply_encoded(&[0xff; 64]);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..state % 200)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            here.apply_encoded(&bytes);
        }
        assert_eq!(here.counts().queued, 0);
        assert!(
            here.take_outbox(10, Instant::now() + QUEUED_HELD)
                .is_empty(),
            "applied changes are not sent again"
        );
    }

    /// Starts job `id` on `store` and finishes it failed.
    fn run_and_fail(store: &ReplicaStore, id: JobId) {
        crate::store::suite::start(store, id);
        let report = crate::store::suite::report(id, false);
        store.finish(id, &report, OsStr::new("f"), (1, 1));
    }

    /// What `publish` sends: the batch, encoded.
    fn batch(changes: &[Change]) -> Vec<u8> {
        encode_changes(changes).expect("a change holds strings, numbers and enums")
    }

    /// What one node's feed carries to another: its outbox, held changes included, encoded
    /// and applied.
    fn pass(from: &ReplicaStore, to: &ReplicaStore) {
        to.apply_encoded(&batch(&from.take_outbox(100, Instant::now() + QUEUED_HELD)));
    }

    #[test]
    fn a_job_run_within_one_batch_travels_as_its_finish_and_a_retry_opens_it_again() {
        let here = ReplicaStore::new(100);
        let there = ReplicaStore::new(100);
        let (quick, slow) = (JobId::generate(), JobId::generate());
        for id in [quick, slow] {
            there.queue(id, OsStr::new("f"), 1, SystemTime::now());
        }
        run_and_fail(&there, quick);

        // At once: quick's finish (its queued and started changes folded into it); the
        // queued changes are held.
        let mut changes = there.take_outbox(100, Instant::now());
        assert!(
            matches!(&changes[..], [Change::Finished { id, .. }] if *id == quick.to_string()),
            "{changes:?}"
        );
        // Once they are due: slow's, still queued; not quick's, finished meanwhile.
        let later = there.take_outbox(100, Instant::now() + QUEUED_HELD);
        assert!(
            matches!(&later[..], [Change::Queued { id, .. }] if *id == slow.to_string()),
            "{later:?}"
        );
        changes.extend(later);
        here.apply_encoded(&batch(&changes));
        assert_eq!(here.get(quick).map(|j| j.state), Some(JobState::Failed));
        assert_eq!(here.get(slow).map(|j| j.state), Some(JobState::Queued));
        let first_finish = here.get(quick).and_then(|j| j.finished_at);

        // Retried there a moment later, and run again within one batch: only its finish
        // travels, and it opens the job here again instead of being taken for a replay.
        std::thread::sleep(Duration::from_millis(5));
        there.begin_retry(quick).expect("retry");
        there.queue(quick, OsStr::new("f"), 1, SystemTime::now());
        std::thread::sleep(Duration::from_millis(5));
        run_and_fail(&there, quick);
        let changes = there.take_outbox(100, Instant::now() + QUEUED_HELD);
        assert_eq!(changes.len(), 1, "{changes:?}");
        here.apply_encoded(&batch(&changes));
        assert_eq!(here.counts().failed, 1, "the same job, not a second one");
        let again = here.get(quick).and_then(|j| j.finished_at);
        assert!(again > first_finish, "{first_finish:?} then {again:?}");
        // A batch that holds a change of no job: the others in it are applied.
        here.apply_encoded(&batch(&[
            Change::Forgotten { id: "x".into() },
            Change::Forgotten {
                id: slow.to_string(),
            },
        ]));
        assert!(here.get(slow).is_none());
    }

    #[test]
    fn a_queued_change_waits_and_is_dropped_once_another_node_has_run_the_job() {
        let scanner = ReplicaStore::new(100);
        let other = ReplicaStore::new(100);
        let (taken, waiting, gone) = (JobId::generate(), JobId::generate(), JobId::generate());
        for id in [taken, waiting, gone] {
            scanner.queue(id, OsStr::new("f"), 1, SystemTime::now());
        }
        assert!(
            scanner.take_outbox(100, Instant::now()).is_empty(),
            "queued changes are held"
        );
        // Another node claims and runs `taken`; the scanning node reads its finish. `gone`
        // leaves unprocessed/ unclaimed.
        run_and_fail(&other, taken);
        let finish = batch(&other.take_outbox(100, Instant::now() + QUEUED_HELD));
        scanner.apply_encoded(&finish);
        scanner.forget(gone);
        let changes = scanner.take_outbox(100, Instant::now() + QUEUED_HELD);
        let queued: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Queued { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(queued, [waiting.to_string()], "{changes:?}");
        // The third node sees `waiting` queued, `taken` failed, `gone` not at all.
        let third = ReplicaStore::new(100);
        third.apply_encoded(&finish);
        third.apply_encoded(&batch(&changes));
        assert_eq!(third.get(waiting).map(|j| j.state), Some(JobState::Queued));
        assert_eq!(third.get(taken).map(|j| j.state), Some(JobState::Failed));
        assert!(third.get(gone).is_none());
        assert_eq!((third.counts().queued, third.counts().failed), (1, 1));
    }
}
