//! The scheduler: decides when a file in `unprocessed/` is complete, in which order ready
//! files run, and claims each one just before a worker is free for it.
//!
//! A file is ready when an event says it was closed after writing or moved in whole, or — when
//! found by a scan or by polling — once its size and mtime stayed the same for the settle
//! time. Ready files run small-first with aging: a file's priority is the time it became ready
//! plus one millisecond per `AGING_BYTES_PER_MS` of its size, so a large file waits behind
//! smaller ones only for a bounded time. Claims happen here, one at a time, after every
//! pending event has been applied, and only while fewer than `workers` jobs run: files
//! not yet claimed stay in `unprocessed/`. A rescan after lost events and a periodic
//! reconcile scan mean no missed event can strand a file. This thread never reads a file and
//! never spawns.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::disk::lifecycle::{Leftover, Lifecycle};
use crate::disk::report::Report;
use crate::job::JobId;
use crate::pipeline::Shared;
use crate::pipeline::watch::{FileEvent, FolderWatcher, is_ignored};

/// Each this many bytes of a file's size count as one millisecond of waiting: a 1 GiB file
/// yields to smaller files that became ready up to ~16 s after it, never longer.
const AGING_BYTES_PER_MS: u64 = 64 << 10;

/// Events applied in one go before the scheduler looks at its other duties.
const EVENT_BATCH: usize = 4096;

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

    fn finished(&self) -> usize {
        self.finished.load(Ordering::Acquire)
    }
}

pub enum Control {
    /// Stop claiming, wait for running jobs (bounded), return.
    Stop,
}

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub workers: usize,
    pub settle: Duration,
    pub reconcile: Duration,
    pub shutdown_timeout: Duration,
}

/// The channels the scheduler reads and writes; built by `daemon`.
pub struct SchedulerChannels {
    pub events: Receiver<FileEvent>,
    /// Set by the watcher when it had to drop events.
    pub missed: Arc<AtomicBool>,
    pub control: Receiver<Control>,
    pub jobs: Sender<Job>,
    /// The other end of `jobs`: at shutdown, claimed jobs no worker has started are taken
    /// back and their files returned to `unprocessed/`.
    pub unstarted: Receiver<Job>,
    /// Rung by the workers when their queue runs low.
    pub doorbell: Receiver<()>,
    /// Jobs the workers could not finish, to be tried again after a backoff.
    pub unfinished: Receiver<Job>,
}

/// What the scheduler knows of a name in `unprocessed/`.
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
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ReadyEntry {
    priority: u64,
    generation: u64,
    name: OsString,
}

pub struct Scheduler {
    lifecycle: Arc<Lifecycle>,
    shared: Shared,
    settings: SchedulerSettings,
    tracked: HashMap<OsString, Tracked>,
    /// Min-heap of ready names; entries whose generation no longer matches are stale.
    ready: BinaryHeap<Reverse<ReadyEntry>>,
    /// Settle checks in due order (the settle time is the same for all).
    settling: VecDeque<(Instant, OsString, u64)>,
    /// Files found in `underprocess/` at start: already claimed, they run first.
    requeued: VecDeque<Job>,
    /// Jobs whose finish failed, each with the time of its next attempt. While any wait, no
    /// new file is claimed: the fault would most likely strike it too.
    unfinished: Vec<(Instant, Job)>,
    /// Jobs handed to the workers (and not taken back); `in_flight` subtracts the finished.
    handed_over: usize,
    completions: Arc<Completions>,
    generation: u64,
    epoch: Instant,
    /// The watch on `unprocessed/` (`None` in unit tests), the folder's (device, inode) it
    /// was armed on, and whether it reported an error since.
    watcher: Option<FolderWatcher>,
    watched_folder: Option<(u64, u64)>,
    watcher_failed: bool,
    next_folder_check: Instant,
}

/// How often the scheduler checks that `unprocessed/` is there and is the folder watched.
const FOLDER_CHECK: Duration = Duration::from_millis(500);

fn folder_identity(dir: &std::path::Path) -> Option<(u64, u64)> {
    fs::metadata(dir)
        .ok()
        .filter(Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

impl Scheduler {
    pub fn new(
        lifecycle: Arc<Lifecycle>,
        shared: Shared,
        settings: SchedulerSettings,
        requeue: Vec<Leftover>,
        completions: Arc<Completions>,
        watcher: Option<FolderWatcher>,
    ) -> Scheduler {
        let now = SystemTime::now();
        let requeued = requeue
            .into_iter()
            .map(|leftover| {
                let size_bytes = fs::metadata(&leftover.path).map_or(0, |m| m.len());
                let id = leftover.job_id.unwrap_or_else(JobId::generate);
                let name = &leftover.original_name;
                shared.store.queue(id, name, size_bytes, now);
                log::info!(
                    "job {id}: requeued {} left by an earlier run",
                    leftover.path.display()
                );
                Job::new(
                    id,
                    leftover.original_name,
                    leftover.path,
                    size_bytes,
                    now,
                    true,
                )
            })
            .collect();
        Scheduler {
            shared,
            settings,
            tracked: HashMap::new(),
            ready: BinaryHeap::new(),
            settling: VecDeque::new(),
            requeued,
            unfinished: Vec::new(),
            handed_over: 0,
            completions,
            generation: 0,
            epoch: Instant::now(),
            watched_folder: folder_identity(&lifecycle.folders.unprocessed),
            watcher,
            watcher_failed: false,
            next_folder_check: Instant::now() + FOLDER_CHECK,
            lifecycle,
        }
    }

    /// Runs until `Control::Stop` (or until the control channel closes), then waits up to the
    /// shutdown timeout for running jobs. Returns how many were still running.
    pub fn run(mut self, channels: SchedulerChannels) -> usize {
        let SchedulerChannels {
            mut events,
            missed,
            control,
            jobs,
            unstarted,
            doorbell,
            unfinished,
        } = channels;
        let tick =
            (self.settings.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        // Everything that arrived before the watcher started is found by this first scan.
        self.rescan(false);
        let mut next_reconcile = Instant::now() + self.settings.reconcile;
        loop {
            self.shared.liveness.heartbeat();
            if missed.swap(false, Ordering::AcqRel) {
                log::warn!("the scheduler fell behind and events were dropped; rescanning");
                self.shared.metrics.rescanned();
                self.rescan(true);
            }
            self.dispatch(&jobs);
            let now = Instant::now();
            let mut wake = (now + tick).min(next_reconcile);
            if let Some((due, ..)) = self.settling.front() {
                wake = wake.min(*due);
            }
            if let Some(due) = self.unfinished.iter().map(|(due, _)| *due).min() {
                wake = wake.min(due);
            }
            select! {
                recv(events) -> event => match event {
                    Ok(event) => {
                        self.apply(event);
                        for event in events.try_iter().take(EVENT_BATCH) {
                            self.apply(event);
                        }
                    }
                    Err(_) => {
                        log::error!("the folder watcher stopped");
                        self.shared.liveness.set_watcher_ok(false);
                        events = crossbeam_channel::never();
                    }
                },
                recv(doorbell) -> _ => {},
                recv(unfinished) -> job => {
                    if let Ok(job) = job {
                        self.wait_to_finish(job);
                        for job in unfinished.try_iter() {
                            self.wait_to_finish(job);
                        }
                    }
                },
                recv(control) -> _ => break,
                default(wake.saturating_duration_since(now)) => {},
            }
            let now = Instant::now();
            if now >= self.next_folder_check {
                self.check_folder();
                self.next_folder_check = now + FOLDER_CHECK;
            }
            self.check_settled(now);
            self.give_back_memory();
            if now >= next_reconcile {
                self.rescan(false);
                next_reconcile = now + self.settings.reconcile;
            }
        }
        self.shut_down(&doorbell, &unstarted)
    }

    /// `unprocessed/` must be there and be the folder watched: a folder removed is created
    /// again, a folder created again (a new inode) or a watcher that failed is watched afresh,
    /// and the folder is then listed, as events may have been missed. Until then `/health`
    /// says why the daemon is degraded.
    fn check_folder(&mut self) {
        let dir = self.lifecycle.folders.unprocessed.clone();
        let Some(current) = folder_identity(&dir) else {
            self.watched_folder = None;
            self.shared.liveness.set_folder_trouble(Some(
                "unprocessed/ is missing; creating it again".to_string(),
            ));
            self.lifecycle.folders.recreate_missing();
            return;
        };
        if self.watched_folder == Some(current) && !self.watcher_failed {
            return;
        }
        let Some(watcher) = self.watcher.as_mut() else {
            self.watched_folder = Some(current);
            return;
        };
        match watcher.rearm() {
            Ok(()) => {
                log::warn!(
                    "{} is watched afresh (it was created again, or its watch failed)",
                    dir.display()
                );
                self.watched_folder = Some(current);
                self.watcher_failed = false;
                self.shared.liveness.set_watcher_ok(true);
                self.shared.liveness.set_folder_trouble(None);
                self.shared.metrics.rescanned();
                self.rescan(true);
            }
            Err(err) => {
                log::error!("cannot watch {}: {err}", dir.display());
                self.shared
                    .liveness
                    .set_folder_trouble(Some(format!("cannot watch unprocessed/: {err}")));
            }
        }
    }

    /// A job that could not be finished waits for its backoff.
    fn wait_to_finish(&mut self, job: Job) {
        let wait = backoff(job.attempts);
        log::debug!("job {}: next attempt to finish it in {wait:?}", job.id);
        self.unfinished.push((Instant::now() + wait, job));
    }

    /// The unfinished job whose backoff is over, if any.
    fn take_due_unfinished(&mut self) -> Option<Job> {
        let now = Instant::now();
        let at = self.unfinished.iter().position(|(due, _)| *due <= now)?;
        Some(self.unfinished.swap_remove(at).1)
    }

    /// Claims and hands over ready files while fewer than `CLAIMED_PER_WORKER` per worker are
    /// out; jobs whose finish is due again first. While finishes fail, nothing new is claimed:
    /// the files stay in `unprocessed/`, queued.
    fn dispatch(&mut self, jobs: &Sender<Job>) {
        while self.in_flight() < self.settings.workers * CLAIMED_PER_WORKER {
            let job = match self.take_due_unfinished() {
                Some(job) => job,
                None if !self.unfinished.is_empty() || self.shared.store.unfinished() > 0 => return,
                None => match self.requeued.pop_front() {
                    Some(job) => job,
                    None => match self.claim_next() {
                        Some(job) => job,
                        None => return,
                    },
                },
            };
            log::debug!("job {}: handed to the pool", job.id);
            // Never blocks: the channel holds as many jobs as may be out at once.
            if let Err(err) = jobs.send(job) {
                let job = err.into_inner();
                log::error!(
                    "job {}: the worker pool is gone; {} stays where it is",
                    job.id,
                    job.claimed.display()
                );
                self.shared.liveness.set_pool_ok(false);
                self.shared.store.forget(job.id);
                return;
            }
            self.handed_over += 1;
        }
    }

    fn in_flight(&self) -> usize {
        self.handed_over - self.completions.finished()
    }

    /// The best ready file, claimed into `underprocess/`.
    fn claim_next(&mut self) -> Option<Job> {
        while let Some(Reverse(entry)) = self.ready.pop() {
            let current = matches!(
                self.tracked.get(&entry.name),
                Some(Tracked::Ready { generation, .. }) if *generation == entry.generation
            );
            if !current {
                continue;
            }
            let Some(Tracked::Ready {
                job_id,
                queued_at,
                size_bytes,
                ..
            }) = self.tracked.remove(&entry.name)
            else {
                continue;
            };
            let name = entry.name;
            let path = self.lifecycle.folders.unprocessed.join(&name);
            // No second look before the claim: it was a regular file when it became ready, and
            // whatever replaced it since is refused by the analysis (not a regular file) and
            // reported in failed/ rather than lost.
            match self.lifecycle.claim(job_id, &name) {
                Ok(Some(claimed)) => {
                    log::debug!(
                        "job {job_id}: claimed {} as {}",
                        path.display(),
                        claimed.display()
                    );
                    return Some(Job::new(
                        job_id, name, claimed, size_bytes, queued_at, false,
                    ));
                }
                Ok(None) => {
                    log::debug!("job {job_id}: {} was gone at its claim", path.display());
                    self.shared.store.forget(job_id);
                }
                Err(err) => {
                    log::warn!("job {job_id}: cannot claim it: {err}; the next scan retries");
                    self.shared.store.forget(job_id);
                }
            }
        }
        None
    }

    fn apply(&mut self, event: FileEvent) {
        log::trace!("event {event:?}");
        match event {
            FileEvent::Ready(name) => self.mark_ready(name),
            FileEvent::Writing(name) => {
                if let Some(Tracked::Ready { job_id, .. }) =
                    self.tracked.insert(name, Tracked::Writing)
                {
                    // Written again after it looked complete: it waits for the next close.
                    self.shared.store.forget(job_id);
                }
            }
            FileEvent::Changed(name) => self.start_settling(name, None, false),
            // A writer's first write turns it into `Writing`; a hard link is never written
            // and settles (holding bytes, unchanged for the settle time).
            FileEvent::Created(name) => {
                if !matches!(self.tracked.get(&name), Some(Tracked::Writing)) {
                    self.start_settling(name, None, true);
                }
            }
            FileEvent::Gone(name) => self.untrack(&name),
            FileEvent::Rescan => {
                log::warn!("the kernel dropped folder events (queue overflow); rescanning");
                self.shared.metrics.rescanned();
                self.rescan(true);
            }
            FileEvent::Failed(message) => {
                log::error!("the folder watcher failed: {message}; re-arming it");
                self.shared.liveness.set_watcher_ok(false);
                self.watcher_failed = true;
                self.next_folder_check = Instant::now();
            }
        }
    }

    fn untrack(&mut self, name: &OsString) {
        if let Some(Tracked::Ready { job_id, .. }) = self.tracked.remove(name) {
            self.shared.store.forget(job_id);
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Complete now: queue it (once).
    fn mark_ready(&mut self, name: OsString) {
        if matches!(self.tracked.get(&name), Some(Tracked::Ready { .. })) {
            return;
        }
        let path = self.lifecycle.folders.unprocessed.join(&name);
        let (size, key) = match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                (metadata.len(), (metadata.dev(), metadata.ino()))
            }
            _ => {
                self.tracked.remove(&name);
                return;
            }
        };
        let generation = self.next_generation();
        let job_id = self
            .shared
            .store
            .take_expected(key)
            .unwrap_or_else(JobId::generate);
        let queued_at = SystemTime::now();
        let waited_ms = self.epoch.elapsed().as_millis() as u64;
        log::debug!("job {job_id}: {} is ready ({size} bytes)", path.display());
        self.shared.store.queue(job_id, &name, size, queued_at);
        self.ready.push(Reverse(ReadyEntry {
            priority: waited_ms + size / AGING_BYTES_PER_MS,
            generation,
            name: name.clone(),
        }));
        self.tracked.insert(
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
    fn start_settling(&mut self, name: OsString, metadata: Option<Metadata>, needs_bytes: bool) {
        let metadata = match metadata {
            Some(metadata) => metadata,
            None => match fs::symlink_metadata(self.lifecycle.folders.unprocessed.join(&name)) {
                Ok(metadata) => metadata,
                Err(_) => return self.untrack(&name),
            },
        };
        if !metadata.is_file() {
            return self.untrack(&name);
        }
        self.untrack(&name);
        let generation = self.next_generation();
        let due = Instant::now() + self.settings.settle;
        self.settling.push_back((due, name.clone(), generation));
        self.tracked.insert(
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
    fn check_settled(&mut self, now: Instant) {
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
            match fs::symlink_metadata(self.lifecycle.folders.unprocessed.join(&name)) {
                Ok(metadata)
                    if metadata.is_file()
                        && metadata.len() == size
                        && metadata.modified().ok() == Some(modified)
                        && !(needs_bytes && size == 0) =>
                {
                    self.tracked.remove(&name);
                    self.mark_ready(name);
                }
                Ok(metadata) => self.start_settling(name, Some(metadata), needs_bytes),
                Err(_) => self.untrack(&name),
            }
        }
    }

    /// Lists `unprocessed/`: unknown files start settling (oldest first), names that are gone
    /// are forgotten. After lost events, files thought open for writing are settled too: their
    /// close event may be among the lost.
    fn rescan(&mut self, events_lost: bool) {
        let dir = self.lifecycle.folders.unprocessed.clone();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) => {
                log::error!("cannot list {}: {err}", dir.display());
                self.shared
                    .liveness
                    .set_folder_trouble(Some(format!("cannot list unprocessed/ ({})", err.kind())));
                self.next_folder_check = Instant::now();
                return;
            }
        };
        if self.watched_folder.is_some() && !self.watcher_failed {
            self.shared.liveness.set_folder_trouble(None);
        }
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
                dir.display(),
                found.len()
            );
        }
        // Uploads and retries removed before they were queued: their jobs end here.
        let unprocessed = &self.lifecycle.folders.unprocessed;
        for id in self.shared.store.sweep_expected(&mut |name, key| {
            fs::symlink_metadata(unprocessed.join(name)).is_ok_and(|m| (m.dev(), m.ino()) == key)
        }) {
            log::info!("job {id}: its file left unprocessed/ before it was queued");
            self.shared.store.forget(id);
        }
        found.sort_by_key(|(modified, ..)| *modified);
        for (_, name, metadata) in found {
            self.start_settling(name, Some(metadata), false);
        }
    }

    /// A burst grows the tables by the number of files in it; once it is through they are
    /// shrunk again, so that memory does not keep the size of the largest burst ever.
    fn give_back_memory(&mut self) {
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

    /// Stop claiming; queued files stay in `unprocessed/` and claimed files no worker started
    /// go back there; wait for running jobs up to the shutdown timeout. Returns how many were
    /// still running.
    fn shut_down(mut self, doorbell: &Receiver<()>, unstarted: &Receiver<Job>) -> usize {
        self.shared.liveness.set_draining();
        for job in unstarted.try_iter() {
            self.handed_over -= 1;
            self.shared.store.forget(job.id);
            match self.lifecycle.unclaim(&job.claimed, &job.original_name) {
                Ok(path) => log::debug!(
                    "job {}: not started; returned to {}",
                    job.id,
                    path.display()
                ),
                Err(err) => log::warn!(
                    "job {}: not started and cannot be returned ({err}); it is requeued at the \
                     next start",
                    job.id
                ),
            }
        }
        let queued = self
            .tracked
            .values()
            .filter(|t| matches!(t, Tracked::Ready { .. }))
            .count();
        for tracked in self.tracked.values() {
            if let Tracked::Ready { job_id, .. } = tracked {
                self.shared.store.forget(*job_id);
            }
        }
        for job in self.requeued.drain(..) {
            self.shared.store.forget(job.id);
        }
        for (_, job) in self.unfinished.drain(..) {
            log::warn!(
                "job {}: still cannot be finished; {} stays in underprocess/ for the next start",
                job.id,
                job.claimed.display()
            );
            self.shared.store.forget(job.id);
        }
        log::info!(
            "shutting down: {} job(s) running, {queued} ready file(s) stay in unprocessed/",
            self.in_flight()
        );
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        while self.in_flight() > 0 {
            match doorbell.recv_deadline(deadline) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => {
                    log::warn!(
                        "{} job(s) still running after {:?}; their files stay in underprocess/ \
                         and are requeued at the next start",
                        self.in_flight(),
                        self.settings.shutdown_timeout
                    );
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::folders::Folders;

    fn scheduler() -> (tempfile::TempDir, Scheduler) {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let lifecycle = Arc::new(Lifecycle::new(folders, false));
        let (completions, _doorbell) = Completions::new(1);
        let settings = SchedulerSettings {
            workers: 1,
            settle: Duration::from_millis(50),
            reconcile: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(1),
        };
        let shared = Shared {
            store: Arc::new(crate::store::MemoryStore::new(100)),
            liveness: Arc::new(crate::health::Liveness::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        };
        let scheduler = Scheduler::new(lifecycle, shared, settings, Vec::new(), completions, None);
        (dir, scheduler)
    }

    /// A file of `size` bytes (sparse: only its size matters here).
    fn drop_file(scheduler: &Scheduler, name: &str, size: u64) {
        let path = scheduler.lifecycle.folders.unprocessed.join(name);
        fs::File::create(&path)
            .and_then(|f| f.set_len(size))
            .expect("create");
    }

    fn claim_order(scheduler: &mut Scheduler) -> Vec<String> {
        std::iter::from_fn(|| scheduler.claim_next())
            .map(|job| job.original_name.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn ready_files_run_small_first() {
        let (_dir, mut scheduler) = scheduler();
        for (name, size) in [("big", 50 << 20), ("small", 10), ("medium", 1 << 20)] {
            drop_file(&scheduler, name, size);
            scheduler.apply(FileEvent::Ready(name.into()));
        }
        assert_eq!(claim_order(&mut scheduler), ["small", "medium", "big"]);
        assert_eq!(
            scheduler.shared.store.counts().queued,
            3,
            "claimed, not started"
        );
    }

    #[test]
    fn a_large_file_that_waited_long_enough_goes_before_newer_small_ones() {
        let (_dir, mut scheduler) = scheduler();
        // 6.4 MB counts as 100 ms of waiting.
        drop_file(&scheduler, "large", 100 * AGING_BYTES_PER_MS);
        scheduler.apply(FileEvent::Ready("large".into()));
        std::thread::sleep(Duration::from_millis(150));
        drop_file(&scheduler, "small", 10);
        scheduler.apply(FileEvent::Ready("small".into()));
        assert_eq!(claim_order(&mut scheduler), ["large", "small"]);
    }

    #[test]
    fn a_file_written_again_after_it_looked_ready_waits_for_its_close() {
        let (_dir, mut scheduler) = scheduler();
        drop_file(&scheduler, "log", 10);
        scheduler.apply(FileEvent::Ready("log".into()));
        scheduler.apply(FileEvent::Writing("log".into()));
        assert!(claim_order(&mut scheduler).is_empty());
        // A reconcile scan does not settle it either: only the close (or lost events) can.
        scheduler.rescan(false);
        std::thread::sleep(Duration::from_millis(80));
        scheduler.check_settled(Instant::now());
        assert!(claim_order(&mut scheduler).is_empty());
        scheduler.apply(FileEvent::Ready("log".into()));
        assert_eq!(claim_order(&mut scheduler), ["log"]);
    }

    #[test]
    fn a_scanned_file_is_ready_only_once_unchanged_for_the_settle_time() {
        let (_dir, mut scheduler) = scheduler();
        drop_file(&scheduler, "found", 10);
        scheduler.rescan(false);
        scheduler.check_settled(Instant::now());
        assert!(claim_order(&mut scheduler).is_empty(), "not settled yet");
        std::thread::sleep(Duration::from_millis(80));
        drop_file(&scheduler, "found", 20);
        scheduler.check_settled(Instant::now());
        assert!(
            claim_order(&mut scheduler).is_empty(),
            "it changed: settle again"
        );
        std::thread::sleep(Duration::from_millis(80));
        scheduler.check_settled(Instant::now());
        assert_eq!(claim_order(&mut scheduler), ["found"]);
    }
}
