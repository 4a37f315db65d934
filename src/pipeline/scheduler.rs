//! The scheduler: the pipeline's one thread of decisions. It applies folder events to
//! `Readiness`, claims ready files into `underprocess/` just before a worker is free for them,
//! hands the jobs over, brings back the ones whose finish failed after a backoff, keeps
//! `unprocessed/` watched, and owns the order of shutdown.
//!
//! Claims happen here, one at a time, after every pending event has been applied, and only
//! while fewer than `CLAIMED_PER_WORKER` per worker are out: files not yet claimed stay in
//! `unprocessed/`. A rescan after lost events and a periodic reconcile scan mean no missed
//! event can strand a file. This thread never reads a file and never spawns.

use std::collections::VecDeque;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::disk::lifecycle::Lifecycle;
use crate::disk::recover::Leftover;
use crate::job::JobId;
use crate::pipeline::readiness::Readiness;
use crate::pipeline::watch::{FileEvent, FolderWatcher};
use crate::pipeline::{CLAIMED_PER_WORKER, Completions, Job, Shared, backoff};

/// Events applied in one go before the scheduler looks at its other duties.
const EVENT_BATCH: usize = 4096;

pub enum Control {
    /// Stop claiming, wait for running jobs (bounded), return.
    Stop,
    /// Files taken over from a dead cluster node, already claimed by this one: they run
    /// first, as files left by a crash do.
    Adopt(Vec<Leftover>),
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

pub struct Scheduler {
    lifecycle: Arc<Lifecycle>,
    shared: Shared,
    settings: SchedulerSettings,
    readiness: Readiness,
    /// Files found in `underprocess/` at start: already claimed, they run first.
    requeued: VecDeque<Job>,
    /// Jobs whose finish failed, each with the time of its next attempt. While any wait, no
    /// new file is claimed: the fault would most likely strike it too.
    unfinished: Vec<(Instant, Job)>,
    /// Jobs handed to the workers (and not taken back); `in_flight` subtracts the finished.
    handed_over: usize,
    completions: Arc<Completions>,
    /// The watch on `unprocessed/` (`None` in unit tests), the folder's (device, inode) it
    /// was armed on, and whether it reported an error since.
    watcher: Option<FolderWatcher>,
    watched_folder: Option<(u64, u64)>,
    watcher_failed: bool,
    /// Whether the watch is paused because another node scans (`follow_work_mode`).
    paused_watch: bool,
    next_folder_check: Instant,
    /// Cluster mode: ready files are shared out through Redis (`cluster::Membership`).
    work: Option<Work>,
    /// Since when no job has been out and no file ready, and how many jobs had finished when
    /// memory was last given back (`give_back_when_idle`).
    idle_since: Option<Instant>,
    finished_at_trim: usize,
}

/// Memory the allocator keeps for the next job is given back once the pool has been idle
/// this long.
const TRIM_WHEN_IDLE: Duration = Duration::from_secs(1);

/// Work sharing: while Redis answers, the node holding the scanner lease offers the ready
/// files it finds, and every node claims offers as it has room (by the same rename as
/// always). Without Redis each node scans and claims on its own again.
struct Work {
    membership: Arc<crate::cluster::Membership>,
    channels: crate::cluster::WorkChannels,
    /// Offers read for this node, not yet claimed.
    pending: VecDeque<crate::cluster::Offer>,
    /// (sharing, scanning) as last seen: a change resets readiness.
    mode: (bool, bool),
    /// When offers are next looked at for ones gone stale (not at every dispatch: the look
    /// goes through every file tracked).
    next_stale_check: Instant,
}

/// A job shown queued this long whose file is nowhere is a ghost (`sweep_ghosts`).
const GHOST_AFTER: Duration = Duration::from_secs(30);

/// A file offered and still in `unprocessed/` this long after is offered again (its offer
/// was lost with a Redis that restarted empty).
const REOFFER_AFTER: Duration = Duration::from_secs(120);

/// Offers the scanning node keeps out at most (files offered and not yet claimed).
const OFFER_WINDOW: usize = 256;

/// How often offers are looked at for ones gone stale.
const STALE_CHECK: Duration = Duration::from_secs(5);

/// A file already in `underprocess/` (left by a crash, or taken over from a dead node) as a
/// queued job: its finish looks for a report already published under its id.
fn leftover_job(shared: &Shared, leftover: Leftover) -> Job {
    let now = SystemTime::now();
    let size_bytes = fs::metadata(&leftover.path).map_or(0, |m| m.len());
    let id = leftover.job_id.unwrap_or_else(JobId::generate);
    shared
        .store
        .queue(id, &leftover.original_name, size_bytes, now);
    log::info!("job {id}: requeued {}", leftover.path.display());
    Job::new(
        id,
        leftover.original_name,
        leftover.path,
        size_bytes,
        now,
        true,
    )
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
        let requeued = requeue
            .into_iter()
            .map(|leftover| leftover_job(&shared, leftover))
            .collect();
        let unprocessed = lifecycle.folders.unprocessed.clone();
        Scheduler {
            readiness: Readiness::new(
                unprocessed.clone(),
                settings.settle,
                Arc::clone(&shared.store),
                Instant::now(),
            ),
            shared,
            settings,
            requeued,
            unfinished: Vec::new(),
            handed_over: 0,
            completions,
            watched_folder: folder_identity(&unprocessed),
            watcher,
            watcher_failed: false,
            paused_watch: false,
            next_folder_check: Instant::now() + FOLDER_CHECK,
            lifecycle,
            work: None,
            idle_since: None,
            finished_at_trim: 0,
        }
    }

    /// Cluster mode: shares the ready files out through Redis (see `Work`).
    pub fn with_work(
        mut self,
        membership: Arc<crate::cluster::Membership>,
        channels: crate::cluster::WorkChannels,
    ) -> Scheduler {
        self.work = Some(Work {
            membership,
            channels,
            pending: VecDeque::new(),
            mode: (false, false),
            next_stale_check: Instant::now() + STALE_CHECK,
        });
        self
    }

    /// (sharing, scanning) now.
    fn work_mode(&self) -> (bool, bool) {
        match &self.work {
            Some(work) => (work.membership.sharing(), work.membership.is_scanner()),
            None => (false, false),
        }
    }

    /// Whether this node's own scans and folder events are ignored now: work is shared and
    /// another node scans.
    fn not_scanning(&self) -> bool {
        matches!(self.work_mode(), (true, false))
    }

    /// Follows changes of the work mode: whatever readiness held was for the other mode, so
    /// it starts again (with a full scan when this node is to find the files).
    fn follow_work_mode(&mut self, now: Instant) {
        let mode = self.work_mode();
        let Some(work) = &mut self.work else {
            return;
        };
        if mode == work.mode {
            return;
        }
        work.mode = mode;
        log::info!(
            "work sharing: {}",
            match mode {
                (true, true) => "through Redis; this node scans and offers",
                (true, false) => "through Redis; another node scans",
                _ => "off (Redis does not answer); this node scans and claims on its own",
            }
        );
        self.readiness.reset();
        // Another node scans: this one's folder events would all be ignored, so it stops
        // watching until it scans again.
        if let Some(watcher) = self.watcher.as_mut() {
            if mode == (true, false) {
                watcher.pause();
                self.paused_watch = true;
            } else if self.paused_watch {
                self.paused_watch = false;
                if let Err(err) = watcher.rearm() {
                    log::error!("cannot watch unprocessed/ again: {err}");
                    self.watcher_failed = true;
                    self.next_folder_check = now;
                }
            }
        }
        if mode != (true, false) {
            self.rescan(true, now);
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
        let offers = self
            .work
            .as_ref()
            .map_or_else(crossbeam_channel::never, |work| {
                work.channels.offers.clone()
            });
        let tick =
            (self.settings.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        // Everything that arrived before the watcher started is found by this first scan.
        self.rescan(false, Instant::now());
        let mut next_reconcile = Instant::now() + self.settings.reconcile;
        loop {
            self.shared.liveness.heartbeat();
            if missed.swap(false, Ordering::AcqRel) {
                log::warn!("the scheduler fell behind and events were dropped; rescanning");
                self.shared.metrics.rescanned();
                self.rescan(true, Instant::now());
            }
            self.dispatch(&jobs);
            let now = Instant::now();
            let mut wake = (now + tick).min(next_reconcile);
            if let Some(due) = self.readiness.next_due() {
                wake = wake.min(due);
            }
            if let Some(due) = self.unfinished.iter().map(|(due, _)| *due).min() {
                wake = wake.min(due);
            }
            select! {
                recv(events) -> event => match event {
                    Ok(event) => {
                        let now = Instant::now();
                        self.apply(event, now);
                        for event in events.try_iter().take(EVENT_BATCH) {
                            self.apply(event, now);
                        }
                    }
                    Err(_) => {
                        log::error!("the folder watcher stopped");
                        self.shared.liveness.set_watcher_ok(false);
                        events = crossbeam_channel::never();
                    }
                },
                recv(doorbell) -> _ => {},
                recv(offers) -> offer => {
                    if let (Ok(offer), Some(work)) = (offer, &mut self.work) {
                        work.pending.push_back(offer);
                        work.pending.extend(offers.try_iter());
                    }
                },
                recv(unfinished) -> job => {
                    if let Ok(job) = job {
                        self.wait_to_finish(job, Instant::now());
                        for job in unfinished.try_iter() {
                            self.wait_to_finish(job, Instant::now());
                        }
                    }
                },
                recv(control) -> message => match message {
                    Ok(Control::Adopt(leftovers)) => {
                        let jobs = leftovers.into_iter().map(|l| leftover_job(&self.shared, l));
                        self.requeued.extend(jobs);
                    }
                    Ok(Control::Stop) | Err(_) => break,
                },
                default(wake.saturating_duration_since(now)) => {},
            }
            let now = Instant::now();
            if now >= self.next_folder_check {
                self.check_folder();
                self.next_folder_check = now + FOLDER_CHECK;
            }
            self.readiness.check_settled(now);
            self.readiness.give_back_memory();
            self.give_back_when_idle(now);
            if now >= next_reconcile {
                // A node that does not scan still sweeps its own view: it may hold jobs
                // queued by a scanner whose later changes were lost (a Redis that restarted
                // empty), which the scanning node's view never had.
                if self.not_scanning() {
                    self.sweep_ghosts();
                }
                self.rescan(false, now);
                next_reconcile = now + self.settings.reconcile;
            }
        }
        self.shut_down(&doorbell, &unstarted)
    }

    /// A folder event: about one name, for readiness; a lost-event notice or a watcher
    /// failure, for the scheduler.
    fn apply(&mut self, event: FileEvent, now: Instant) {
        if self.not_scanning() && !matches!(event, FileEvent::Failed(_)) {
            return;
        }
        match event {
            FileEvent::Rescan => {
                log::warn!("the kernel dropped folder events (queue overflow); rescanning");
                self.shared.metrics.rescanned();
                self.rescan(true, now);
            }
            FileEvent::Failed(message) => {
                log::error!("the folder watcher failed: {message}; re-arming it");
                self.shared.liveness.set_watcher_ok(false);
                self.watcher_failed = true;
                self.next_folder_check = now;
            }
            event => self.readiness.apply(event, now),
        }
    }

    /// Lists `unprocessed/` through readiness; a folder that cannot be listed makes the
    /// daemon degraded until it can.
    fn rescan(&mut self, events_lost: bool, now: Instant) {
        if self.not_scanning() {
            return;
        }
        if self.work_mode() == (true, true) {
            self.sweep_ghosts();
        }
        match self.readiness.rescan(events_lost, now) {
            Ok(()) => {
                if self.watched_folder.is_some() && !self.watcher_failed {
                    self.shared.liveness.set_folder_trouble(None);
                }
            }
            Err(err) => {
                log::error!(
                    "cannot list {}: {err}",
                    self.lifecycle.folders.unprocessed.display()
                );
                self.shared
                    .liveness
                    .set_folder_trouble(Some(format!("cannot list unprocessed/ ({})", err.kind())));
                self.next_folder_check = now;
            }
        }
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
                self.rescan(true, Instant::now());
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
    fn wait_to_finish(&mut self, job: Job, now: Instant) {
        let wait = backoff(job.attempts);
        log::debug!("job {}: next attempt to finish it in {wait:?}", job.id);
        self.unfinished.push((now + wait, job));
    }

    /// The unfinished job whose backoff is over, if any.
    fn take_due_unfinished(&mut self, now: Instant) -> Option<Job> {
        let at = self.unfinished.iter().position(|(due, _)| *due <= now)?;
        Some(self.unfinished.swap_remove(at).1)
    }

    /// Claims and hands over ready files while fewer than `CLAIMED_PER_WORKER` per worker are
    /// out; jobs whose finish is due again first. While finishes fail, nothing new is claimed:
    /// the files stay in `unprocessed/`, queued. In cluster mode the scanning node then
    /// offers what it has no room for.
    fn dispatch(&mut self, jobs: &Sender<Job>) {
        let now = Instant::now();
        self.follow_work_mode(now);
        let (sharing, scanning) = self.work_mode();
        let capacity = self.settings.workers * CLAIMED_PER_WORKER;
        // Without work sharing every node claims what it finds; with it, the scanning node
        // claims directly what its own workers have room for (no round trip through Redis
        // for its own share) and offers the rest.
        let filled = self.fill_pool(jobs, capacity, !sharing || scanning);
        if sharing && scanning {
            self.offer_ready(now);
        }
        if !filled {
            return;
        }
        if let Some(work) = &self.work {
            // Offers are read ahead, up to as many again as may be out at once, and in
            // batches of at least as many as may be out: one read of Redis per batch (two
            // entries or more; half that was a fifth more reads, 4 pairs of bursts), and the
            // workers have claimed offers to go on with while it travels. The scanning node
            // reads offers only once it has nothing ready of its own.
            let room = if sharing && !(scanning && self.readiness.has_ready()) {
                (2 * capacity).saturating_sub(self.in_flight() + work.pending.len())
            } else {
                0
            };
            let room = if room >= capacity { room } else { 0 };
            let before = work.channels.wanted.swap(room, Ordering::Relaxed);
            if room > before {
                let _ = work.channels.nudge.try_send(());
            }
        }
    }

    /// The scanning node offers ready files to the cluster, keeping up to `OFFER_WINDOW`
    /// offers out: each claim by another node (its file leaves `unprocessed/`) makes room for
    /// the next, and what is not offered stays for this node's own workers.
    fn offer_ready(&mut self, now: Instant) {
        let Some(work) = &mut self.work else {
            return;
        };
        let mut offered = Vec::new();
        while self.readiness.offered() < OFFER_WINDOW
            && let Some(file) = self.readiness.next_to_offer(now)
        {
            offered.push(file);
        }
        if now >= work.next_stale_check {
            work.next_stale_check = now + STALE_CHECK;
            offered.extend(self.readiness.stale_offers(now, REOFFER_AFTER));
        }
        for file in offered {
            let _ = work.channels.publish.send(crate::cluster::Offer {
                entry: None,
                job_id: file.job_id,
                name: file.name,
                size_bytes: file.size_bytes,
                queued_at: file.queued_at,
            });
        }
    }

    /// Hands claimed files to the pool while it has room: unfinished jobs due again, then
    /// requeued ones, then offers read for this node, then (if `claim_local`) ready files.
    /// False when nothing may be claimed now (finishes fail, or the pool is gone).
    fn fill_pool(&mut self, jobs: &Sender<Job>, capacity: usize, claim_local: bool) -> bool {
        while self.in_flight() < capacity {
            let job = match self.take_due_unfinished(Instant::now()) {
                Some(job) => job,
                None if !self.unfinished.is_empty() || self.shared.store.unfinished() > 0 => {
                    return false;
                }
                None => match self.requeued.pop_front() {
                    Some(job) => job,
                    None => match self
                        .claim_offer()
                        .or_else(|| if claim_local { self.claim_next() } else { None })
                    {
                        Some(job) => job,
                        None => break,
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
                return false;
            }
            self.handed_over += 1;
        }
        true
    }

    /// A cluster node's view of the queue against the folders (every node sweeps its own): a
    /// job shown queued for a while whose file is neither in `unprocessed/` nor claimed under
    /// its id (a dead node offered it, or its last changes were lost) is forgotten, on every
    /// node.
    fn sweep_ghosts(&mut self) {
        let names =
            |dir: &std::path::Path| -> Option<std::collections::HashSet<std::ffi::OsString>> {
                Some(
                    fs::read_dir(dir)
                        .ok()?
                        .flatten()
                        .map(|e| e.file_name())
                        .collect(),
                )
            };
        let folders = &self.lifecycle.folders;
        let (Some(waiting), Some(claimed)) =
            (names(&folders.unprocessed), names(&folders.underprocess))
        else {
            return;
        };
        let claimed_ids: std::collections::HashSet<JobId> = claimed
            .iter()
            .filter_map(|name| crate::disk::lifecycle::parse_claimed_name(name))
            .map(|claim| claim.job_id)
            .collect();
        let store = &self.shared.store;
        let (_, queued) = store.list(Some(crate::job::JobState::Queued), usize::MAX, 0);
        let old = SystemTime::now() - GHOST_AFTER;
        for job in queued {
            let ghost = job.queued_at < old
                && job.attempts == 0
                && !waiting.contains(&job.file)
                && !claimed_ids.contains(&job.id);
            if ghost {
                log::info!(
                    "job {}: shown queued, but {} is neither waiting nor claimed; forgotten",
                    job.id,
                    job.file.to_string_lossy()
                );
                store.forget(job.id);
            }
        }
    }

    /// Claims the next file offered to this node (work sharing), by the same rename as any
    /// claim, under the job id the scanning node gave it; every offer dealt with is
    /// acknowledged. An offer whose file is gone (another node claimed it first after a
    /// second offer, or it was removed) ends here.
    fn claim_offer(&mut self) -> Option<Job> {
        let work = self.work.as_mut()?;
        while let Some(offer) = work.pending.pop_front() {
            crate::test_hooks::pause_point("after-offer");
            crate::test_hooks::crash_point("after-offer");
            let claimed = self.lifecycle.claim(offer.job_id, &offer.name);
            if let Some(entry) = &offer.entry
                && entry.dealt_with()
            {
                let _ = work.channels.acks.send(entry.id.clone());
            }
            match claimed {
                Ok(Some(claimed)) => {
                    log::debug!(
                        "job {}: claimed the offered {} as {}",
                        offer.job_id,
                        offer.name.to_string_lossy(),
                        claimed.display()
                    );
                    return Some(Job::new(
                        offer.job_id,
                        offer.name,
                        claimed,
                        offer.size_bytes,
                        offer.queued_at,
                        false,
                    ));
                }
                Ok(None) | Err(_) => {
                    let store = &self.shared.store;
                    let queued = store
                        .get(offer.job_id)
                        .is_some_and(|job| job.state == crate::job::JobState::Queued);
                    if queued {
                        store.forget(offer.job_id);
                    }
                }
            }
        }
        None
    }

    /// Once the pool has been idle for `TRIM_WHEN_IDLE` after some jobs ran, the memory the
    /// allocator keeps for the next ones goes back to the system (`allocator::give_back`): a
    /// burst is fast, and an idle daemon small.
    fn give_back_when_idle(&mut self, now: Instant) {
        if self.in_flight() > 0 || self.readiness.has_ready() {
            self.idle_since = None;
            return;
        }
        let since = *self.idle_since.get_or_insert(now);
        let finished = self.completions.finished();
        if finished != self.finished_at_trim && now.duration_since(since) >= TRIM_WHEN_IDLE {
            self.finished_at_trim = finished;
            crate::allocator::give_back();
        }
    }

    fn in_flight(&self) -> usize {
        self.handed_over - self.completions.finished()
    }

    /// The best ready file, claimed into `underprocess/`.
    fn claim_next(&mut self) -> Option<Job> {
        while let Some(file) = self.readiness.next_ready() {
            let job_id = file.job_id;
            let path = self.lifecycle.folders.unprocessed.join(&file.name);
            // No second look before the claim: it was a regular file when it became ready, and
            // whatever replaced it since is refused by the analysis (not a regular file) and
            // reported in failed/ rather than lost.
            match self.lifecycle.claim(job_id, &file.name) {
                Ok(Some(claimed)) => {
                    log::debug!(
                        "job {job_id}: claimed {} as {}",
                        path.display(),
                        claimed.display()
                    );
                    return Some(Job::new(
                        job_id,
                        file.name,
                        claimed,
                        file.size_bytes,
                        file.queued_at,
                        false,
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
        let ready = self.readiness.ready_jobs();
        let queued = ready.len();
        for job_id in ready {
            self.shared.store.forget(job_id);
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
    use crate::pipeline::readiness::AGING_BYTES_PER_MS;

    fn scheduler(workers: usize) -> (tempfile::TempDir, Scheduler) {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let lifecycle = Arc::new(Lifecycle::new(folders, false));
        let (completions, _doorbell) = Completions::new(workers);
        let settings = SchedulerSettings {
            workers,
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

    fn drop_ready(scheduler: &mut Scheduler, name: &str, size: u64, now: Instant) {
        let path = scheduler.lifecycle.folders.unprocessed.join(name);
        fs::File::create(&path)
            .and_then(|f| f.set_len(size))
            .expect("create");
        scheduler.apply(FileEvent::Ready(name.into()), now);
    }

    #[test]
    fn claims_stop_at_the_per_worker_bound_and_go_small_first() {
        let (_dir, mut scheduler) = scheduler(1);
        let now = Instant::now();
        for i in 0..CLAIMED_PER_WORKER + 2 {
            // Sizes far enough apart to count (a size counts in steps of the aging unit).
            let size = (20 - i as u64) * AGING_BYTES_PER_MS;
            drop_ready(&mut scheduler, &format!("f{i:02}"), size, now);
        }
        let (jobs, handed) = crossbeam_channel::unbounded();
        scheduler.dispatch(&jobs);
        let names: Vec<String> = handed
            .try_iter()
            .map(|job| job.original_name.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), CLAIMED_PER_WORKER, "{names:?}");
        // Smallest first: the last dropped are the smallest.
        assert_eq!(names[0], format!("f{:02}", CLAIMED_PER_WORKER + 1));
        let underprocess = fs::read_dir(&scheduler.lifecycle.folders.underprocess)
            .expect("list")
            .count();
        assert_eq!(underprocess, CLAIMED_PER_WORKER, "claimed, not more");
        assert_eq!(
            scheduler.shared.store.counts().queued,
            CLAIMED_PER_WORKER + 2
        );
    }

    #[test]
    fn while_a_finish_waits_nothing_new_is_claimed_and_it_comes_back_after_its_backoff() {
        let (_dir, mut scheduler) = scheduler(1);
        let now = Instant::now();
        drop_ready(&mut scheduler, "first", 10, now);
        let (jobs, handed) = crossbeam_channel::unbounded();
        scheduler.dispatch(&jobs);
        let mut job = handed.try_recv().expect("claimed");
        drop_ready(&mut scheduler, "second", 10, now);
        job.attempts = 1;
        scheduler.wait_to_finish(job, now);
        scheduler.completions.job_finished(0);
        assert!(scheduler.take_due_unfinished(now).is_none(), "backing off");
        scheduler.dispatch(&jobs);
        assert!(
            handed.try_recv().is_err(),
            "nothing new while a finish waits"
        );
        let due = now + backoff(1);
        let again = scheduler.take_due_unfinished(due).expect("due again");
        assert_eq!(again.original_name, "first");
    }
}
