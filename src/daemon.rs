//! Watch mode: the one place that creates every thread and channel of the daemon and owns the
//! order of start and shutdown.
//!
//! `start`: lock the folder root (one daemon per folder), bind the HTTP port, repair what a
//! crash left (`disk::recover`), build the job store, the liveness and the metrics
//! (`pipeline::Shared`) and reload the history from the reports on disk, start watching, the
//! HTTP server and the job threads, then the scheduler scans `unprocessed/` (watching first,
//! so nothing slips in between) and requeues what was left in `underprocess/`.
//! `Running::shut_down`, after SIGINT/SIGTERM: the scheduler stops claiming and waits for
//! running jobs (bounded), then the watcher, the job threads and the HTTP server stop in that
//! order. A second signal exits at once; files then left in `underprocess/` are requeued at
//! the next start.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread;

use crossbeam_channel::{Sender, bounded};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::analyze::AnalysisOptions;
use crate::cluster::{self, Membership};
use crate::config::WatchSettings;
use crate::disk::folders::{FolderError, Folders};
use crate::disk::lifecycle::{Lifecycle, LifecycleError};
use crate::disk::{self, history, recover};
use crate::health::Liveness;
use crate::metrics::Metrics;
use crate::pipeline::Shared;
use crate::pipeline::scheduler::{Control, Scheduler, SchedulerChannels, SchedulerSettings};
use crate::pipeline::watch;
use crate::pipeline::workers::{self, Worker};
use crate::pipeline::{CLAIMED_PER_WORKER, Completions};
use crate::store::{JobStore, MemoryStore, ReplicaStore};
use crate::web;

/// Errors that stop the daemon before it runs (exit 2), or that kill it (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Folders(#[from] FolderError),
    #[error(transparent)]
    Recover(#[from] LifecycleError),
    #[error(
        "another file-processor is already running on {0} (a single daemon and the nodes of a \
         cluster cannot share folders)"
    )]
    Locked(PathBuf),
    #[error("node {0:?} already runs on these folders")]
    NodeLocked(String),
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl DaemonError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Panicked(_) => 1,
            _ => 2,
        }
    }
}

/// Runs the daemon until a signal stops it: `start`, then `Running::shut_down`.
pub fn run(
    dir: &std::path::Path,
    workers: usize,
    options: &AnalysisOptions,
    settings: &WatchSettings,
) -> Result<ExitCode, DaemonError> {
    start(dir, workers, options, settings)?.shut_down()
}

/// A started daemon: every thread it runs, and the folder lock it holds until it stops.
pub struct Running {
    scheduler: thread::JoinHandle<usize>,
    job_threads: Vec<thread::JoinHandle<()>>,
    http: thread::JoinHandle<()>,
    http_handle: actix_web::dev::ServerHandle,
    /// `--redis`: this node's membership and its threads (heartbeat, feed, work).
    cluster: Option<(Arc<Membership>, Vec<thread::JoinHandle<()>>)>,
    _lock: File,
    _node_lock: Option<File>,
}

/// Locks the folders, binds the port, recovers what a crash left, reloads the history, and
/// starts the watcher, the HTTP server, the job threads, the scheduler and the signal handler.
pub fn start(
    dir: &std::path::Path,
    workers: usize,
    options: &AnalysisOptions,
    settings: &WatchSettings,
) -> Result<Running, DaemonError> {
    let folders = Folders::create(dir)?;
    // A cluster's nodes share the folders (each holds its own node lock, below); a single
    // daemon holds them alone.
    let lock = lock(&folders, settings.cluster.is_some())?;
    // Before anything changes on disk: a daemon that cannot serve does not start at all.
    let address = format!("{}:{}", settings.host, settings.port);
    let listener =
        TcpListener::bind((settings.host.as_str(), settings.port)).map_err(|source| {
            DaemonError::Listen {
                address: address.clone(),
                source,
            }
        })?;
    let local = listener.local_addr().map_err(DaemonError::Start)?;
    // This daemon as a node: `--node`, or the host name and the port.
    let node_address = if local.ip().is_unspecified() {
        format!("{}:{}", cluster::host_name(), local.port())
    } else {
        local.to_string()
    };
    let node_name = settings
        .cluster
        .as_ref()
        .and_then(|cluster| cluster.node.clone())
        .unwrap_or_else(|| format!("{}:{}", cluster::host_name(), local.port()));
    let liveness = Arc::new(Liveness::new());
    let (membership, node_lock) = match &settings.cluster {
        Some(cluster) => {
            let node_lock = lock_node(&folders, &node_name)?;
            let tree = tree_id(&folders)?;
            let membership = Membership::join(
                cluster,
                &tree,
                node_name.clone(),
                node_address.clone(),
                Arc::clone(&liveness),
            )?;
            disk::folders::tag_temp_files(&node_name);
            (Some(membership), Some(node_lock))
        }
        None => (None, None),
    };
    let lifecycle = Arc::new(
        Lifecycle::new(folders, settings.fsync)
            .with_node(membership.as_ref().map(|m| m.name.clone())),
    );
    let recovered = recover::recover(
        &lifecycle.folders,
        membership.as_ref().map(|m| m.name.as_str()),
    )?;
    if recovered.removed + recovered.requeue.len() > 0 {
        log::info!(
            "recovered from an earlier run: {} file(s) to requeue, {} temp file(s) removed",
            recovered.requeue.len(),
            recovered.removed
        );
    }
    // With --redis, every node's jobs: the changes after this point are applied to the view
    // built from the reports on disk (shared by all nodes).
    let replica = membership.as_ref().map(|membership| {
        let after = membership.changes_end();
        (Arc::new(ReplicaStore::new(settings.history)), after)
    });
    let store: Arc<dyn JobStore> = match &replica {
        Some((replica, _)) => Arc::clone(replica) as Arc<dyn JobStore>,
        None => Arc::new(MemoryStore::new(settings.history)),
    };
    let shared = Shared {
        store: Arc::clone(&store),
        liveness,
        metrics: Arc::new(match &membership {
            Some(membership) => Metrics::for_node(&membership.name),
            None => Metrics::new(),
        }),
    };
    let history = history::load(&lifecycle.folders, settings.history);
    log::info!(
        "history: {} completed and {} failed report(s) on disk; the newest {} reloaded",
        history.completed,
        history.failed,
        history.jobs.len()
    );
    store.restore(history.jobs, history.completed, history.failed);

    // Every channel of the pipeline.
    // Watcher → scheduler. When full the watcher drops events and flags a rescan.
    let (event_tx, event_rx) = bounded(settings.event_buffer);
    let missed = Arc::new(AtomicBool::new(false));
    // Scheduler → job threads: claimed jobs. It holds as many as may be out at once, so a
    // send never waits.
    let (job_tx, job_rx) = bounded(workers * CLAIMED_PER_WORKER);
    // Workers → scheduler: finished jobs are counted; a doorbell rings when the queue runs low.
    let (completions, doorbell) = Completions::new(workers);
    // Workers → scheduler: jobs whose finish failed, to be tried again. At most every claimed
    // job is in it (the scheduler claims nothing new while finishes fail), so a send never
    // waits for long.
    let (unfinished_tx, unfinished_rx) = bounded(2 * workers * CLAIMED_PER_WORKER);
    let (control_tx, control_rx) = bounded(4);

    let unprocessed = lifecycle.folders.unprocessed.clone();
    let watcher =
        watch::FolderWatcher::new(&unprocessed, settings.poll, event_tx, Arc::clone(&missed))
            .map_err(|source| DaemonError::Watch {
                path: unprocessed.clone(),
                source,
            })?;

    let web_settings = web::WebSettings {
        token: settings.token.clone(),
        max_upload_bytes: settings.max_upload_bytes,
        fsync: settings.fsync,
        allowed_hosts: web::guard::AllowedHosts::new(&settings.host, &settings.allowed_hosts),
        body_timeout: settings.body_timeout,
        max_connections: connection_budget(workers, settings.max_connections),
        rules: options.rules.clone(),
        node_name,
        node_address,
        membership: membership.clone(),
        claim_here: membership.as_ref().map(|_| web::ClaimHere {
            lifecycle: Arc::clone(&lifecycle),
            scheduler: control_tx.clone(),
        }),
    };
    let (http, http_handle) = start_http(
        listener,
        shared.clone(),
        lifecycle.folders.clone(),
        web_settings,
    )?;

    let worker = Arc::new(Worker {
        lifecycle: Arc::clone(&lifecycle),
        shared: shared.clone(),
        options: options.clone(),
        completions: Arc::clone(&completions),
    });
    let job_threads = (0..workers)
        .map(|i| {
            let (jobs, worker) = (job_rx.clone(), Arc::clone(&worker));
            let unfinished = unfinished_tx.clone();
            spawn(&format!("job-{i}"), move || {
                workers::work(jobs, unfinished, worker)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let scheduler = Scheduler::new(
        Arc::clone(&lifecycle),
        shared,
        SchedulerSettings {
            workers,
            settle: settings.settle,
            reconcile: settings.reconcile,
            shutdown_timeout: settings.shutdown_timeout,
        },
        recovered.requeue,
        Arc::clone(&completions),
        Some(watcher),
    );
    // Cluster mode: ready files are shared out through Redis, by a work thread.
    let (scheduler, work_ends) = match &membership {
        Some(membership) => {
            let (channels, offer_ends, read_ends) = cluster::work_channels();
            (
                scheduler.with_work(Arc::clone(membership), channels),
                Some((offer_ends, read_ends)),
            )
        }
        None => (scheduler, None),
    };
    let channels = SchedulerChannels {
        events: event_rx,
        missed,
        control: control_rx,
        jobs: job_tx,
        unstarted: job_rx,
        doorbell,
        unfinished: unfinished_rx,
    };
    drop(unfinished_tx);
    let scheduler = spawn("scheduler", move || scheduler.run(channels))?;

    let adopt = control_tx.clone();
    handle_signals(control_tx)?;
    let cluster = match (membership, replica) {
        (Some(membership), Some((replica, after))) => {
            let (here, beating) = (Arc::clone(&replica), Arc::clone(&membership));
            let folders = lifecycle.folders.clone();
            let mut deaths = Deaths::new(Arc::clone(&replica));
            let heartbeat = spawn("cluster-heartbeat", move || {
                beating.heartbeat_loop(
                    || here.running_here() as u64,
                    |beat| {
                        take_over_dead_nodes(&beating, &folders, &adopt, beat);
                        deaths.follow(&beating, &folders, beat);
                    },
                )
            })?;
            let feeding = Arc::clone(&membership);
            let feed = spawn("cluster-feed", move || feeding.feed_loop(&replica, after))?;
            let mut threads = vec![heartbeat, feed];
            if let Some((offer_ends, read_ends)) = work_ends {
                let offering = Arc::clone(&membership);
                threads.push(spawn("cluster-offer", move || {
                    offering.offer_loop(&offer_ends)
                })?);
                let reading = Arc::clone(&membership);
                threads.push(spawn("cluster-read", move || {
                    reading.read_loop(&read_ends)
                })?);
            }
            Some((membership, threads))
        }
        _ => None,
    };

    log::info!(
        "watching {} with {workers} worker(s){}; dashboard on http://{local}/, health on \
         http://{local}/health{}",
        unprocessed.display(),
        match settings.poll {
            Some(interval) => format!(", polling every {interval:?}"),
            None => String::new(),
        },
        if settings.token.is_some() {
            " (every other route needs the token)"
        } else {
            ""
        }
    );

    Ok(Running {
        scheduler,
        job_threads,
        http,
        http_handle,
        cluster,
        _lock: lock,
        _node_lock: node_lock,
    })
}

impl Running {
    /// Waits for the scheduler to stop (after the first signal it stops claiming and waits,
    /// bounded, for running jobs), then joins the job threads and stops the HTTP server last.
    pub fn shut_down(self) -> Result<ExitCode, DaemonError> {
        let still_running = self
            .scheduler
            .join()
            .map_err(|_| DaemonError::Panicked("scheduler"))?;
        if still_running == 0 {
            // The scheduler dropped the job channel: the job threads are done.
            for thread in self.job_threads {
                thread.join().map_err(|_| DaemonError::Panicked("job"))?;
            }
        }
        if let Some((membership, threads)) = self.cluster {
            membership.stop();
            for thread in threads {
                let _ = thread.join();
            }
            membership.leave();
        }
        // The stop command is sent at once; the returned future only reports completion.
        drop(self.http_handle.stop(true));
        self.http
            .join()
            .map_err(|_| DaemonError::Panicked("http"))?;
        log::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

/// The HTTP server on its own thread (an actix system), and the handle that stops it.
fn start_http(
    listener: TcpListener,
    shared: Shared,
    folders: Folders,
    settings: web::WebSettings,
) -> Result<(thread::JoinHandle<()>, actix_web::dev::ServerHandle), DaemonError> {
    let (handle_tx, handle_rx) = bounded(1);
    let http = spawn("http", move || {
        actix_web::rt::System::new().block_on(async move {
            match web::server(listener, shared, &folders, settings) {
                Ok(server) => {
                    let _ = handle_tx.send(Ok(server.handle()));
                    if let Err(err) = server.await {
                        log::error!("the HTTP server stopped: {err}");
                    }
                }
                Err(err) => {
                    let _ = handle_tx.send(Err(err));
                }
            }
        });
    })?;
    let handle = handle_rx
        .recv()
        .map_err(|_| DaemonError::Panicked("http"))?
        .map_err(DaemonError::Start)?;
    Ok((http, handle))
}

/// SIGINT/SIGTERM: the first tells the scheduler to stop; a second exits at once (files left
/// in `underprocess/` are requeued at the next start).
fn handle_signals(control: Sender<Control>) -> Result<(), DaemonError> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(DaemonError::Start)?;
    spawn("signals", move || {
        let mut received = 0;
        for signal in signals.forever() {
            received += 1;
            if received == 1 {
                log::info!("signal {signal}: finishing running jobs, then exiting");
                let _ = control.send(Control::Stop);
            } else {
                log::warn!(
                    "signal {signal} again: exiting now; unfinished files are requeued at the next start"
                );
                std::process::exit(1);
            }
        }
    })?;
    Ok(())
}

/// Descriptors the HTTP side can never take: the pipeline's own (the watch, the files being
/// analysed and their reports, folder syncs, the log), so that a flood of connections cannot
/// make finishing a file fail with "too many open files".
const PIPELINE_RESERVE: u64 = 64;
const RESERVE_PER_WORKER: u64 = 8;
/// A connection costs its socket and, while it uploads, one temp file.
const DESCRIPTORS_PER_CONNECTION: u64 = 2;
/// The most connections served at once, however many descriptors there are.
const MAX_CONNECTIONS: u64 = 10_000;

/// Raises the soft limit of open files to the hard one, and returns how many connections the
/// HTTP side may hold: at most `wanted` (`--max-connections`), and few enough that the
/// pipeline keeps its reserve of descriptors.
fn connection_budget(workers: usize, wanted: u64) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut available = limit.current.unwrap_or(1 << 20);
    let hard = limit.maximum.unwrap_or(1 << 20).min(1 << 20);
    if hard > available {
        let raised = Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => available = hard,
            Err(err) => log::debug!("cannot raise the open-file limit to {hard}: {err}"),
        }
    }
    let reserve = PIPELINE_RESERVE + RESERVE_PER_WORKER * workers as u64;
    let connections =
        (available.saturating_sub(reserve) / DESCRIPTORS_PER_CONNECTION).clamp(4, MAX_CONNECTIONS);
    let connections = connections.min(wanted);
    log::debug!(
        "open-file limit {available}: {reserve} kept for the pipeline, at most {connections} \
         HTTP connections"
    );
    connections as usize
}

fn spawn<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, DaemonError> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(DaemonError::Start)
}

/// Every few heartbeats: the claims in `underprocess/` of nodes that Redis says are dead are
/// taken over and handed to the scheduler (every minute also their temp files anywhere).
const TAKE_OVER_EVERY: u64 = 2;
const TEMP_SWEEP_EVERY: u64 = 60;

/// Nodes seen dead that were alive while this one ran: the reports each wrote since shortly
/// before its last heartbeat are read back (on a thread of their own) and its
/// finishes this view never heard of join it. A node killed outright cannot publish its last
/// finishes; without this every other view's counts would stay short of them.
struct Deaths {
    replica: Arc<ReplicaStore>,
    /// When this node started: a node that died before was read back with the history.
    started: std::time::SystemTime,
    /// Each dead node's last heartbeat, once its reports were read back for it.
    read_back: std::collections::HashMap<String, std::time::SystemTime>,
}

/// Reports this long before a dead node's last heartbeat are read back too (clocks of the
/// machines and of the file server differ a little).
const HEAL_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

impl Deaths {
    fn new(replica: Arc<ReplicaStore>) -> Deaths {
        Deaths {
            replica,
            started: std::time::SystemTime::now(),
            read_back: std::collections::HashMap::new(),
        }
    }

    fn follow(&mut self, membership: &Membership, folders: &Folders, beat: u64) {
        if !beat.is_multiple_of(TAKE_OVER_EVERY) {
            return;
        }
        let Some(nodes) = membership.nodes() else {
            return;
        };
        for node in nodes {
            if node.name == membership.name {
                continue;
            }
            let Ok(last) = humantime::parse_rfc3339(&node.last_heartbeat) else {
                continue;
            };
            // Down, and it was alive after this node loaded the history: once per death.
            if node.state == "up"
                || last + HEAL_MARGIN < self.started
                || self.read_back.get(&node.name) == Some(&last)
            {
                continue;
            }
            self.read_back.insert(node.name.clone(), last);
            let since = last - HEAL_MARGIN;
            let (replica, folders, name) = (Arc::clone(&self.replica), folders.clone(), node.name);
            let read_back = move || {
                let jobs = history::written_since(&folders, since, &name);
                let healed = replica.heal(jobs);
                if healed > 0 {
                    log::info!(
                        "node {name:?} died before telling of {healed} finished job(s): read \
                         back from its reports"
                    );
                }
            };
            if let Err(err) = thread::Builder::new()
                .name("cluster-heal".to_string())
                .spawn(read_back)
            {
                log::warn!("cannot read back a dead node's reports: {err}");
            }
        }
    }
}

fn take_over_dead_nodes(
    membership: &Membership,
    folders: &Folders,
    scheduler: &Sender<Control>,
    beat: u64,
) {
    if !beat.is_multiple_of(TAKE_OVER_EVERY) || !membership.redis_up() {
        return;
    }
    let every_folder = beat.is_multiple_of(TEMP_SWEEP_EVERY);
    let others = recover::other_nodes(folders, &membership.name, every_folder);
    if others.is_empty() {
        return;
    }
    let Some(dead) = membership.dead_among(&others) else {
        return;
    };
    if dead.is_empty() {
        return;
    }
    let adopted = recover::take_over(folders, &membership.name, &dead);
    if adopted.is_empty() {
        return;
    }
    // Not sent (the scheduler is stopping): they are this node's claims now, requeued at its
    // next start.
    if let Err(err) = scheduler.send_timeout(Control::Adopt(adopted), cluster::HEARTBEAT) {
        log::warn!("taken-over files wait for the next start: {err}");
    }
}

/// One daemon per folder root: two would race for the same files and remove each other's
/// temp files at start. The nodes of a cluster share the root (`shared`), each with its own
/// node lock; a single daemon and a cluster exclude each other.
fn lock(folders: &Folders, shared: bool) -> Result<File, DaemonError> {
    let path = folders.root.join(".file-processor.lock");
    let lock_error = |source| DaemonError::Lock {
        path: path.clone(),
        source,
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    let operation = if shared {
        rustix::fs::FlockOperation::NonBlockingLockShared
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DaemonError::Locked(folders.root.clone())),
        Err(errno) => Err(lock_error(errno.into())),
    }
}

/// The id of this folder tree, the same for every node that shares it (a file in its root,
/// made by the first node): the cluster's keys in Redis are under it, so that nodes on other
/// trees sharing the Redis are other clusters.
fn tree_id(folders: &Folders) -> Result<String, DaemonError> {
    let path = folders.root.join(".file-processor.cluster");
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .ok()
            .map(|id| id.trim().to_string())
            .filter(|id| ulid::Ulid::from_string(id).is_ok())
    };
    if let Some(id) = read(&path) {
        return Ok(id);
    }
    // Written aside, then linked under its name: of two nodes starting at once, one wins and
    // both read its id.
    let id = ulid::Ulid::generate().to_string();
    let mut temp = disk::folders::temp_in(&folders.root).map_err(DaemonError::Start)?;
    std::io::Write::write_all(&mut temp, id.as_bytes()).map_err(DaemonError::Start)?;
    let temp = temp.into_temp_path();
    let _ = disk::folders::rename_no_replace(&temp, &path);
    read(&path).ok_or_else(|| {
        DaemonError::Start(std::io::Error::other(format!(
            "{} does not hold this folder tree's id",
            path.display()
        )))
    })
}

/// One daemon per node name on these folders.
fn lock_node(folders: &Folders, node: &str) -> Result<File, DaemonError> {
    let path = folders
        .root
        .join(format!(".file-processor.node-{node}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(DaemonError::NodeLocked(node.to_string())),
        Err(errno) => Err(DaemonError::Lock {
            path,
            source: errno.into(),
        }),
    }
}
