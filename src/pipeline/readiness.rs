//! Readiness: which files in `unprocessed/` are complete, and in which order they run.
//!
//! A file is ready when an event says it was closed after writing or moved in whole, or — when
//! found by a scan or by polling — once its size and mtime stayed the same for the settle
//! time. Ready files run small-first with aging: a file's priority is the time it became ready
//! plus one millisecond per `AGING_BYTES_PER_MS` of its size, so a large file waits behind
//! smaller ones only for a bounded time. Each ready file is queued in the store under a job id
//! (the one an upload or a retry gave it, else a new one).
//!
//! Time is given, never read: every method that needs the time takes `now`, so that the tests
//! drive the clock instead of sleeping. It reads metadata only, never a file's bytes; it never
//! claims (the scheduler does) and never spawns.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::job::JobId;
use crate::pipeline::watch::{FileEvent, is_ignored};
use crate::store::JobStore;

/// Each this many bytes of a file's size count as one millisecond of waiting: a 1 GiB file
/// yields to smaller files that became ready up to ~16 s after it, never longer.
pub const AGING_BYTES_PER_MS: u64 = 64 << 10;

/// A ready file, as it leaves readiness to be claimed.
#[derive(Debug)]
pub struct ReadyFile {
    pub name: OsString,
    pub job_id: JobId,
    pub queued_at: SystemTime,
    pub size_bytes: u64,
}

/// What readiness knows of a name in `unprocessed/`.
enum Tracked {
    /// Events say it is open for writing: only a close (or a lost-event rescan) moves it on.
    Writing,
    /// Found without a completion event: ready once unchanged for the settle time (and, for a
    /// name only seen created, once it holds bytes: an empty new file is a writer's that has
    /// not written yet).
    Settling {
        size: u64,
        modified: SystemTime,
        generation: u64,
        needs_bytes: bool,
    },
    Ready {
        generation: u64,
        job_id: JobId,
        queued_at: SystemTime,
        size_bytes: u64,
    },
    /// Offered to the cluster (work sharing): whichever node is free claims it. A rescan
    /// leaves it be; it is offered again, under the same job id, if still here long after.
    Offered {
        job_id: JobId,
        queued_at: SystemTime,
        size_bytes: u64,
        since: Instant,
    },
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ReadyEntry {
    priority: u64,
    generation: u64,
    name: OsString,
}

pub struct Readiness {
    /// `unprocessed/`.
    dir: PathBuf,
    settle: Duration,
    store: Arc<dyn JobStore>,
    tracked: HashMap<OsString, Tracked>,
    /// Min-heap of ready names; entries whose generation no longer matches are stale.
    ready: BinaryHeap<Reverse<ReadyEntry>>,
    /// Settle checks in due order (the settle time is the same for all).
    settling: VecDeque<(Instant, OsString, u64)>,
    generation: u64,
    /// Priorities count milliseconds from here.
    epoch: Instant,
    /// How many tracked names are `Offered` (work sharing: offers out and not yet claimed).
    offered: usize,
    /// How many tracked names are `Ready`.
    ready_now: usize,
}

impl Readiness {
    pub fn new(dir: PathBuf, settle: Duration, store: Arc<dyn JobStore>, now: Instant) -> Self {
        Readiness {
            dir,
            settle,
            store,
            tracked: HashMap::new(),
            ready: BinaryHeap::new(),
            settling: VecDeque::new(),
            generation: 0,
            epoch: now,
            offered: 0,
            ready_now: 0,
        }
    }

    /// Sets what is known of `name`; what was known before.
    fn track(&mut self, name: OsString, tracked: Tracked) -> Option<Tracked> {
        self.count(&tracked, 1);
        let before = self.tracked.insert(name, tracked);
        if let Some(before) = &before {
            self.count(before, -1);
        }
        before
    }

    /// Stops tracking `name`; what was known of it.
    fn forget_name(&mut self, name: &OsString) -> Option<Tracked> {
        let before = self.tracked.remove(name);
        if let Some(before) = &before {
            self.count(before, -1);
        }
        before
    }

    fn count(&mut self, tracked: &Tracked, by: isize) {
        match tracked {
            Tracked::Offered { .. } => self.offered = self.offered.saturating_add_signed(by),
            Tracked::Ready { .. } => self.ready_now = self.ready_now.saturating_add_signed(by),
            _ => {}
        }
    }

    /// How many offers are out and not yet claimed (their files are still here).
    pub fn offered(&self) -> usize {
        self.offered
    }

    /// Whether a file is ready and neither taken nor offered.
    pub fn has_ready(&self) -> bool {
        self.ready_now > 0
    }

    /// When the next settle check is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.settling.front().map(|(due, ..)| *due)
    }

    /// Applies a folder event about one name (`Rescan` and `Failed` are the scheduler's).
    pub fn apply(&mut self, event: FileEvent, now: Instant) {
        log::trace!("event {event:?}");
        match event {
            FileEvent::Ready(name) => self.mark_ready(name, now),
            FileEvent::Writing(name) => {
                if let Some(Tracked::Ready { job_id, .. }) = self.track(name, Tracked::Writing) {
                    // Written again after it looked complete: it waits for the next close.
                    self.store.forget(job_id);
                }
            }
            FileEvent::Changed(name) => self.start_settling(name, None, false, now),
            // A writer's first write turns it into `Writing`; a hard link is never written
            // and settles (holding bytes, unchanged for the settle time).
            FileEvent::Created(name) => {
                if !matches!(self.tracked.get(&name), Some(Tracked::Writing)) {
                    self.start_settling(name, None, true, now);
                }
            }
            FileEvent::Gone(name) => self.untrack(&name),
            FileEvent::Rescan | FileEvent::Failed(_) => {}
        }
    }

    fn untrack(&mut self, name: &OsString) {
        if let Some(Tracked::Ready { job_id, .. }) = self.forget_name(name) {
            self.store.forget(job_id);
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Complete now: queue it (once).
    fn mark_ready(&mut self, name: OsString, now: Instant) {
        if matches!(self.tracked.get(&name), Some(Tracked::Ready { .. })) {
            return;
        }
        let path = self.dir.join(&name);
        let (size, key) = match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                (metadata.len(), (metadata.dev(), metadata.ino()))
            }
            _ => {
                self.forget_name(&name);
                return;
            }
        };
        let generation = self.next_generation();
        let job_id = self
            .store
            .take_expected(key)
            .unwrap_or_else(JobId::generate);
        let queued_at = SystemTime::now();
        let waited_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        log::debug!("job {job_id}: {} is ready ({size} bytes)", path.display());
        self.store.queue(job_id, &name, size, queued_at);
        self.ready.push(Reverse(ReadyEntry {
            priority: waited_ms + size / AGING_BYTES_PER_MS,
            generation,
            name: name.clone(),
        }));
        self.track(
            name,
            Tracked::Ready {
                generation,
                job_id,
                queued_at,
                size_bytes: size,
            },
        );
    }

    /// (Re)starts the settle check of a name, with its metadata if already known.
    fn start_settling(
        &mut self,
        name: OsString,
        metadata: Option<Metadata>,
        needs_bytes: bool,
        now: Instant,
    ) {
        let metadata = match metadata {
            Some(metadata) => metadata,
            None => match fs::symlink_metadata(self.dir.join(&name)) {
                Ok(metadata) => metadata,
                Err(_) => return self.untrack(&name),
            },
        };
        if !metadata.is_file() {
            return self.untrack(&name);
        }
        self.untrack(&name);
        let generation = self.next_generation();
        self.settling
            .push_back((now + self.settle, name.clone(), generation));
        self.track(
            name,
            Tracked::Settling {
                size: metadata.len(),
                modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                generation,
                needs_bytes,
            },
        );
    }

    /// Settle checks that are due: unchanged → ready; changed → check again later.
    pub fn check_settled(&mut self, now: Instant) {
        while let Some((due, ..)) = self.settling.front() {
            if *due > now {
                break;
            }
            let Some((_, name, generation)) = self.settling.pop_front() else {
                break;
            };
            let Some(Tracked::Settling {
                size,
                modified,
                generation: current,
                needs_bytes,
            }) = self.tracked.get(&name)
            else {
                continue;
            };
            if *current != generation {
                continue;
            }
            let (size, modified, needs_bytes) = (*size, *modified, *needs_bytes);
            match fs::symlink_metadata(self.dir.join(&name)) {
                Ok(metadata)
                    if metadata.is_file()
                        && metadata.len() == size
                        && metadata.modified().ok() == Some(modified)
                        && !(needs_bytes && size == 0) =>
                {
                    self.forget_name(&name);
                    self.mark_ready(name, now);
                }
                Ok(metadata) => self.start_settling(name, Some(metadata), needs_bytes, now),
                Err(_) => self.untrack(&name),
            }
        }
    }

    /// Lists `unprocessed/`: unknown files start settling (oldest first), names that are gone
    /// are forgotten. After lost events, files thought open for writing are settled too: their
    /// close event may be among the lost. An error means the folder could not be listed.
    pub fn rescan(&mut self, events_lost: bool, now: Instant) -> io::Result<()> {
        let entries = fs::read_dir(&self.dir)?;
        let mut present = HashSet::new();
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_ignored(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            present.insert(name.clone());
            let settle = match self.tracked.get(&name) {
                None => true,
                Some(Tracked::Writing) => events_lost,
                Some(_) => false,
            };
            if settle && let Ok(metadata) = entry.metadata() {
                let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((modified, name, metadata));
            }
        }
        let gone: Vec<OsString> = self
            .tracked
            .keys()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect();
        for name in &gone {
            self.untrack(name);
        }
        if !found.is_empty() {
            log::debug!(
                "scan of {} found {} new file(s)",
                self.dir.display(),
                found.len()
            );
        }
        // Uploads and retries removed before they were queued: their jobs end here.
        let dir = &self.dir;
        for id in self.store.sweep_expected(&mut |name, key| {
            crate::disk::folders::file_key(&dir.join(name)) == Some(key)
        }) {
            log::info!("job {id}: its file left unprocessed/ before it was queued");
            self.store.forget(id);
        }
        found.sort_by_key(|(modified, ..)| *modified);
        for (_, name, metadata) in found {
            self.start_settling(name, Some(metadata), false, now);
        }
        Ok(())
    }

    /// The best ready file, taken out of readiness (the caller claims it).
    pub fn next_ready(&mut self) -> Option<ReadyFile> {
        while let Some(Reverse(entry)) = self.ready.pop() {
            let current = matches!(
                self.tracked.get(&entry.name),
                Some(Tracked::Ready { generation, .. }) if *generation == entry.generation
            );
            if !current {
                continue;
            }
            if let Some(Tracked::Ready {
                job_id,
                queued_at,
                size_bytes,
                ..
            }) = self.forget_name(&entry.name)
            {
                return Some(ReadyFile {
                    name: entry.name,
                    job_id,
                    queued_at,
                    size_bytes,
                });
            }
        }
        None
    }

    /// The best ready file, kept as offered to the cluster (work sharing) instead of taken
    /// out: a rescan does not make it ready again while it waits for a node to claim it.
    pub fn next_to_offer(&mut self, now: Instant) -> Option<ReadyFile> {
        let file = self.next_ready()?;
        self.track(
            file.name.clone(),
            Tracked::Offered {
                job_id: file.job_id,
                queued_at: file.queued_at,
                size_bytes: file.size_bytes,
                since: now,
            },
        );
        Some(file)
    }

    /// Files offered more than `after` ago and still here (their offer was lost, e.g. with a
    /// Redis that restarted empty): offered again now, under the same job ids.
    pub fn stale_offers(&mut self, now: Instant, after: Duration) -> Vec<ReadyFile> {
        let mut again = Vec::new();
        for (name, tracked) in &mut self.tracked {
            if let Tracked::Offered {
                job_id,
                queued_at,
                size_bytes,
                since,
            } = tracked
                && now.saturating_duration_since(*since) >= after
            {
                *since = now;
                again.push(ReadyFile {
                    name: name.clone(),
                    job_id: *job_id,
                    queued_at: *queued_at,
                    size_bytes: *size_bytes,
                });
            }
        }
        again
    }

    /// Forgets every file (work sharing began or ended, or this node stopped or started being
    /// the one that scans): the next rescan finds them again.
    pub fn reset(&mut self) {
        for tracked in self.tracked.values() {
            if let Tracked::Ready { job_id, .. } = tracked {
                self.store.forget(*job_id);
            }
        }
        self.tracked.clear();
        self.offered = 0;
        self.ready_now = 0;
        self.ready.clear();
    }

    /// The job ids of every file ready and not yet taken (at shutdown: they stay in
    /// `unprocessed/`).
    pub fn ready_jobs(&self) -> Vec<JobId> {
        self.tracked
            .values()
            .filter_map(|tracked| match tracked {
                Tracked::Ready { job_id, .. } => Some(*job_id),
                _ => None,
            })
            .collect()
    }

    /// A burst grows the tables by the number of files in it; once it is through they are
    /// shrunk again, so that memory does not keep the size of the largest burst ever.
    pub fn give_back_memory(&mut self) {
        if self.tracked.capacity() > 4 * self.tracked.len() + 1024 {
            self.tracked.shrink_to(2 * self.tracked.len());
        }
        if self.ready.capacity() > 4 * self.ready.len() + 1024 {
            self.ready.shrink_to(2 * self.ready.len());
        }
        if self.settling.capacity() > 4 * self.settling.len() + 1024 {
            self.settling.shrink_to(2 * self.settling.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const SETTLE: Duration = Duration::from_millis(50);

    /// Readiness on a fresh temp folder, and the instant its clock starts at.
    fn readiness() -> (tempfile::TempDir, Readiness, Instant) {
        let dir = tempfile::tempdir().expect("temp dir");
        let start = Instant::now();
        let store = Arc::new(MemoryStore::new(100));
        let readiness = Readiness::new(dir.path().to_path_buf(), SETTLE, store, start);
        (dir, readiness, start)
    }

    /// A file of `size` bytes (sparse: only its size matters here).
    fn drop_file(readiness: &Readiness, name: &str, size: u64) {
        fs::File::create(readiness.dir.join(name))
            .and_then(|f| f.set_len(size))
            .expect("create");
    }

    fn ready_order(readiness: &mut Readiness) -> Vec<String> {
        std::iter::from_fn(|| readiness.next_ready())
            .map(|file| file.name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn ready_files_run_small_first() {
        let (_dir, mut readiness, now) = readiness();
        for (name, size) in [("big", 50 << 20), ("small", 10), ("medium", 1 << 20)] {
            drop_file(&readiness, name, size);
            readiness.apply(FileEvent::Ready(name.into()), now);
        }
        assert_eq!(readiness.store.counts().queued, 3);
        assert_eq!(ready_order(&mut readiness), ["small", "medium", "big"]);
        assert_eq!(
            readiness.store.counts().queued,
            3,
            "taken for a claim, still queued until started"
        );
    }

    #[test]
    fn a_large_file_that_waited_long_enough_goes_before_newer_small_ones() {
        let (_dir, mut readiness, start) = readiness();
        // 6.4 MB counts as 100 ms of waiting.
        drop_file(&readiness, "large", 100 * AGING_BYTES_PER_MS);
        readiness.apply(FileEvent::Ready("large".into()), start);
        drop_file(&readiness, "small", 10);
        readiness.apply(
            FileEvent::Ready("small".into()),
            start + Duration::from_millis(150),
        );
        drop_file(&readiness, "newer", 10);
        readiness.apply(
            FileEvent::Ready("newer".into()),
            start + Duration::from_millis(50),
        );
        // `newer` became ready at 50 ms, before `large`'s 100 ms; `small` at 150 ms, after.
        assert_eq!(ready_order(&mut readiness), ["newer", "large", "small"]);
    }

    #[test]
    fn a_file_written_again_after_it_looked_ready_waits_for_its_close() {
        let (_dir, mut readiness, start) = readiness();
        drop_file(&readiness, "log", 10);
        readiness.apply(FileEvent::Ready("log".into()), start);
        readiness.apply(FileEvent::Writing("log".into()), start);
        assert!(ready_order(&mut readiness).is_empty());
        assert_eq!(readiness.store.counts().queued, 0, "its job is forgotten");
        // A reconcile scan does not settle it either: only the close (or lost events) can.
        readiness.rescan(false, start).expect("scan");
        readiness.check_settled(start + 2 * SETTLE);
        assert!(ready_order(&mut readiness).is_empty());
        readiness.apply(FileEvent::Ready("log".into()), start + 2 * SETTLE);
        assert_eq!(ready_order(&mut readiness), ["log"]);
    }

    #[test]
    fn after_lost_events_a_file_thought_written_settles() {
        let (_dir, mut readiness, start) = readiness();
        drop_file(&readiness, "log", 10);
        readiness.apply(FileEvent::Writing("log".into()), start);
        readiness.rescan(true, start).expect("scan");
        readiness.check_settled(start + SETTLE);
        assert_eq!(ready_order(&mut readiness), ["log"]);
    }

    #[test]
    fn a_scanned_file_is_ready_only_once_unchanged_for_the_settle_time() {
        let (_dir, mut readiness, start) = readiness();
        drop_file(&readiness, "found", 10);
        readiness.rescan(false, start).expect("scan");
        readiness.check_settled(start + SETTLE / 2);
        assert!(ready_order(&mut readiness).is_empty(), "not settled yet");
        drop_file(&readiness, "found", 20);
        let changed_seen = start + SETTLE;
        readiness.check_settled(changed_seen);
        assert!(
            ready_order(&mut readiness).is_empty(),
            "it changed: settle again"
        );
        readiness.check_settled(changed_seen + SETTLE / 2);
        assert!(ready_order(&mut readiness).is_empty(), "settling afresh");
        readiness.check_settled(changed_seen + SETTLE);
        assert_eq!(ready_order(&mut readiness), ["found"]);
    }

    #[test]
    fn an_empty_file_only_seen_created_waits_for_its_bytes() {
        let (_dir, mut readiness, start) = readiness();
        drop_file(&readiness, "new", 0);
        readiness.apply(FileEvent::Created("new".into()), start);
        readiness.check_settled(start + SETTLE);
        assert!(ready_order(&mut readiness).is_empty(), "no bytes yet");
        drop_file(&readiness, "new", 5);
        readiness.check_settled(start + 2 * SETTLE);
        readiness.check_settled(start + 3 * SETTLE);
        assert_eq!(ready_order(&mut readiness), ["new"]);
    }

    #[test]
    fn a_vanished_file_forgets_its_job() {
        let (dir, mut readiness, start) = readiness();
        drop_file(&readiness, "gone", 10);
        readiness.apply(FileEvent::Ready("gone".into()), start);
        assert_eq!(readiness.store.counts().queued, 1);
        fs::remove_file(dir.path().join("gone")).expect("remove");
        readiness.rescan(false, start).expect("scan");
        assert_eq!(readiness.store.counts().queued, 0);
        assert!(ready_order(&mut readiness).is_empty());
    }
}
