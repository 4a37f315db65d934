//! Cluster mode (`--redis`, SPEC §6): this node's membership in Redis, and whether Redis
//! answers. A node's liveness is a key (`fp:node:NAME`) refreshed every second that expires
//! after `--node-timeout`; every node's last record also stays in one hash (`fp:nodes`), so a
//! node that died is listed as down with its last heartbeat. Redis being down never stops the
//! node (claims are renames on the shared folders): it is tracked, logged on each change and
//! shown on `/health`; the next heartbeat that gets through registers the node again, also
//! after a Redis that restarted empty.
//!
//! Everything read back from Redis is data another process wrote: records that do not parse
//! are skipped, never trusted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use redis::Commands;
use serde::{Deserialize, Serialize};

use crate::disk::report::rfc3339;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The shortest `--node-timeout`: a few heartbeats.
const MIN_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connecting, and each command, give up after this long (then Redis counts as down).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

const NODE_KEY: &str = "node:";
const NODES_HASH: &str = "nodes";

/// The lease of the node that exports the cluster's gauges in `/metrics` (one at a time).
const REPORTER_KEY: &str = "reporter";

/// The lease of the node that scans `unprocessed/` and offers what is ready (one at a time).
const SCANNER_KEY: &str = "scanner";

/// Ready files offered to every node, and the consumer group that shares them out.
const READY_STREAM: &str = "ready";
const WORKERS_GROUP: &str = "workers";
const READY_KEPT: usize = 100_000;

/// How long one read of offers waits when this node has room for more.
const OFFER_WAIT: Duration = Duration::from_millis(100);

/// How long the offer thread gathers offers and acknowledgements once one is there, before
/// it sends them all in one round trip.
const OFFER_GATHER: Duration = Duration::from_millis(5);

/// How often a node looks for offers a dead node read and never acknowledged.
const RECLAIM_EVERY: Duration = Duration::from_secs(2);

/// Files one entry of the ready stream offers at most: a burst of small files costs Redis,
/// and the nodes that read it, one entry (one `XADD`, one delivery, one `XACK`) per this many
/// files. (32 was measured: no less CPU, and one node takes more of a burst's end.)
const OFFER_BATCH: usize = 8;

/// Bytes of files one entry offers at most (a larger file goes alone): one node takes a whole
/// entry, so large files are offered one or a few at a time, for every node to get its share.
const OFFER_BYTES: u64 = 4 << 20;

/// Splits `offers` into entries of at most `OFFER_BATCH` files and `OFFER_BYTES` together
/// (or one larger file alone), in order.
fn entries_of(offers: &[Offer]) -> Vec<&[Offer]> {
    let mut entries = Vec::new();
    let mut rest = offers;
    while !rest.is_empty() {
        let mut bytes = 0u64;
        let mut n = 0;
        for offer in rest.iter().take(OFFER_BATCH) {
            bytes = bytes.saturating_add(offer.size_bytes);
            if n > 0 && bytes > OFFER_BYTES {
                break;
            }
            n += 1;
        }
        let (entry, after) = rest.split_at(n);
        entries.push(entry);
        rest = after;
    }
    entries
}

/// The field under which one entry of the ready stream holds its files: a `postcard` list of
/// `OfferedFile` (one field, not four per file, for Redis to store and every reader to parse).
/// Any change to `OfferedFile` comes with a new name, so that nodes of different versions
/// skip each other's entries instead of misreading them.
const OFFERS_ENCODING: &str = "offers-postcard-1";

/// One file of an entry of the ready stream, as it travels.
#[derive(Serialize, Deserialize)]
struct OfferedFile<'a> {
    /// The job id (a ULID) the scanning node gave it.
    id: u128,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, [u8]>,
    size_bytes: u64,
    /// Milliseconds since the epoch.
    queued_at: u64,
}

/// The files of one entry, encoded (`OFFERS_ENCODING`); `None` if the encoder fails, which it
/// does only without memory (a file is numbers and a name).
fn encode_offers(offers: &[Offer]) -> Option<Vec<u8>> {
    let files: Vec<OfferedFile> = offers
        .iter()
        .map(|offer| OfferedFile {
            id: offer.job_id.0,
            name: std::borrow::Cow::Borrowed(offer.name.as_encoded_bytes()),
            size_bytes: offer.size_bytes,
            queued_at: crate::store::replica::millis(offer.queued_at),
        })
        .collect();
    postcard::to_stdvec(&files).ok()
}

/// A ready file offered to the cluster: the job id the scanning node gave it, and, once read
/// from the stream, its entry (acknowledged once every file it offers is dealt with).
#[derive(Debug, Clone)]
pub struct Offer {
    pub entry: Option<Arc<OfferEntry>>,
    pub job_id: crate::job::JobId,
    pub name: std::ffi::OsString,
    pub size_bytes: u64,
    pub queued_at: SystemTime,
}

/// An entry of the ready stream read by this node: its id, and how many of the files it
/// offers are not dealt with yet.
#[derive(Debug)]
pub struct OfferEntry {
    pub id: String,
    left: std::sync::atomic::AtomicUsize,
}

impl OfferEntry {
    /// One more of its files is dealt with (claimed, or found gone); true for the last one,
    /// when the entry is to be acknowledged.
    pub fn dealt_with(&self) -> bool {
        self.left.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// The scheduler's side of work sharing: offers to publish, offers read for it, entries it
/// has dealt with, how many more it has room for, and a nudge for the reader when room opens.
pub struct WorkChannels {
    pub publish: crossbeam_channel::Sender<Offer>,
    pub offers: crossbeam_channel::Receiver<Offer>,
    pub acks: crossbeam_channel::Sender<String>,
    pub wanted: Arc<std::sync::atomic::AtomicUsize>,
    pub nudge: crossbeam_channel::Sender<()>,
}

/// The offer thread's side: offers to publish (as the scanning node) and entries to
/// acknowledge, sent together in one round trip.
pub struct OfferEnds {
    pub publish: crossbeam_channel::Receiver<Offer>,
    pub acks: crossbeam_channel::Receiver<String>,
}

/// The reader thread's side: offers read for this node, and how many it has room for.
pub struct ReadEnds {
    pub offers: crossbeam_channel::Sender<Offer>,
    pub wanted: Arc<std::sync::atomic::AtomicUsize>,
    pub nudge: crossbeam_channel::Receiver<()>,
}

/// Both sides of the work-sharing channels.
pub fn work_channels() -> (WorkChannels, OfferEnds, ReadEnds) {
    let (publish_tx, publish_rx) = crossbeam_channel::unbounded();
    let (offers_tx, offers_rx) = crossbeam_channel::unbounded();
    let (acks_tx, acks_rx) = crossbeam_channel::unbounded();
    // One nudge pending is enough: the reader looks at `wanted` when it wakes.
    let (nudge_tx, nudge_rx) = crossbeam_channel::bounded(1);
    let wanted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (
        WorkChannels {
            publish: publish_tx,
            offers: offers_rx,
            acks: acks_tx,
            wanted: Arc::clone(&wanted),
            nudge: nudge_tx,
        },
        OfferEnds {
            publish: publish_rx,
            acks: acks_rx,
        },
        ReadEnds {
            offers: offers_tx,
            wanted,
            nudge: nudge_rx,
        },
    )
}

/// The files one entry of the ready stream offers (`encode_offers`, at most `OFFER_BATCH`),
/// sharing the entry. An entry that does not decode offers nothing, and a file whose name is
/// not one the watcher would take is left out; an entry with none is acknowledged by the
/// caller.
fn offers_of(entry: &redis::streams::StreamId) -> Vec<Offer> {
    let encoded: Option<Vec<u8>> = entry.get(OFFERS_ENCODING);
    let files: Vec<OfferedFile> = encoded
        .as_deref()
        .and_then(|bytes| postcard::from_bytes(bytes).ok())
        .unwrap_or_default();
    let mut offers: Vec<Offer> = files
        .iter()
        .take(OFFER_BATCH)
        .filter_map(offer_of)
        .collect();
    let shared = Arc::new(OfferEntry {
        id: entry.id.clone(),
        left: std::sync::atomic::AtomicUsize::new(offers.len()),
    });
    for offer in &mut offers {
        offer.entry = Some(Arc::clone(&shared));
    }
    offers
}

fn offer_of(file: &OfferedFile) -> Option<Offer> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(&file.name);
    // A name from Redis is data: one path component the watcher would pick up (never `..`,
    // a path, or a name it ignores, such as an upload's temp file), or nothing.
    let single = std::path::Path::new(name).components().count() == 1
        && !file.name.contains(&b'/')
        && name != ".."
        && !crate::pipeline::watch::is_ignored(name);
    single.then(|| Offer {
        entry: None,
        job_id: crate::job::JobId::from(file.id),
        name: name.to_os_string(),
        size_bytes: file.size_bytes,
        queued_at: crate::store::replica::time_of(file.queued_at),
    })
}

/// Every node's job changes (`store::replica`), trimmed to about this many.
const CHANGES_STREAM: &str = "changes";
/// Entries kept in the stream of changes; an entry holds what one node published in one
/// round trip (up to `CHANGES_PER_TRIP` changes).
const CHANGES_KEPT: usize = 20_000;

/// Changes published, and read, in one round trip at most.
const CHANGES_PER_TRIP: usize = 1000;

/// How long one read of the stream waits for news.
const FEED_WAIT: Duration = Duration::from_millis(200);

/// `--redis`, `--node`, `--node-timeout`, checked.
#[derive(Clone)]
pub struct ClusterSettings {
    /// The URL as given (it may hold a password: never logged, see `shown_url`).
    pub url: String,
    /// `--node`; `None`: the host name and the port the daemon listens on.
    pub node: Option<String>,
    pub node_timeout: Duration,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("url", &shown_url(&self.url))
            .field("node", &self.node)
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}

impl ClusterSettings {
    /// `None` without `--redis`; an error (a usage error: exit 2) for a URL the client cannot
    /// use, a name that is not one, or a timeout too short.
    pub fn from_flags(
        redis: Option<&str>,
        node: Option<&str>,
        node_timeout: Duration,
    ) -> Result<Option<ClusterSettings>, String> {
        let Some(url) = redis else {
            return Ok(None);
        };
        redis::Client::open(url).map_err(|err| format!("--redis {}: {err}", shown_url(url)))?;
        if let Some(name) = node {
            check_node_name(name)?;
        }
        if node_timeout < MIN_NODE_TIMEOUT {
            return Err(format!(
                "--node-timeout must be at least {} (nodes say they are alive every second)",
                humantime::format_duration(MIN_NODE_TIMEOUT)
            ));
        }
        Ok(Some(ClusterSettings {
            url: url.to_string(),
            node: node.map(str::to_string),
            node_timeout,
        }))
    }
}

/// A node name: 1 to 64 letters, digits, `.`, `_`, `-` or `:` (it is part of Redis keys and
/// of file names).
fn check_node_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fine) {
        return Err(format!(
            "--node {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or ':'"
        ));
    }
    Ok(())
}

/// The URL without its password (`redis://:***@host:6379/0`).
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn rfc_millis(time: SystemTime) -> u128 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// This host's name, for the default node name.
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "node {0:?} is already live (another daemon says so every second); give this one \
         another --node"
    )]
    NameTaken(String),
    #[error("--redis {0}")]
    Url(String),
}

/// What a node writes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeRecord {
    name: String,
    address: String,
    running: u64,
    last_heartbeat: String,
    /// Which run of the node wrote it: a restarted node, or a second daemon under the same
    /// name, has another.
    instance: String,
}

/// A node as `GET /api/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub name: String,
    pub address: String,
    /// `up` or `down`.
    pub state: &'static str,
    pub running: u64,
    pub last_heartbeat: String,
}

/// This node in the cluster.
pub struct Membership {
    pub name: String,
    /// Every key of this cluster starts with it: `fp:<the folder tree's id>:`. Nodes on
    /// another tree, sharing the same Redis, are another cluster.
    space: String,
    address: String,
    node_timeout: Duration,
    client: redis::Client,
    instance: String,
    connection: Mutex<Option<redis::Connection>>,
    /// The feed's own connection: its reads wait for news, the heartbeat must not.
    feed_connection: Mutex<Option<redis::Connection>>,
    /// The reader of offers' own connection (work sharing): its reads wait too.
    work_connection: Mutex<Option<redis::Connection>>,
    /// The offer thread's own connection: publishing never waits behind a read.
    offer_connection: Mutex<Option<redis::Connection>>,
    /// Whether this node held the scanner lease at its last heartbeat.
    scanner: AtomicBool,
    /// Whether the consumer group of ready files exists (made by the work thread).
    group_ready: AtomicBool,
    up: AtomicBool,
    /// Whether this node held the reporter lease at its last heartbeat.
    reporter: AtomicBool,
    /// Jobs running here, as of the last heartbeat.
    running: std::sync::atomic::AtomicU64,
    /// Why Redis is down, while it is.
    trouble: Mutex<Option<String>>,
    /// Told when Redis goes or comes back, so that the live views refresh.
    liveness: Arc<crate::health::Liveness>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("redis_up", &self.redis_up())
            .finish()
    }
}

impl Membership {
    /// Joins the cluster as `name`, reachable at `address`. When a live node already has the
    /// name (its record changes while we watch for up to `--node-timeout`), fails; when Redis
    /// cannot be reached, the node starts anyway and joins when Redis answers.
    pub fn join(
        settings: &ClusterSettings,
        tree: &str,
        name: String,
        address: String,
        liveness: Arc<crate::health::Liveness>,
    ) -> Result<Arc<Membership>, ClusterError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|err| ClusterError::Url(format!("{}: {err}", shown_url(&settings.url))))?;
        let membership = Arc::new(Membership {
            name,
            space: format!("fp:{tree}:"),
            address,
            node_timeout: settings.node_timeout,
            client,
            instance: ulid::Ulid::generate().to_string(),
            connection: Mutex::new(None),
            feed_connection: Mutex::new(None),
            work_connection: Mutex::new(None),
            offer_connection: Mutex::new(None),
            scanner: AtomicBool::new(false),
            group_ready: AtomicBool::new(false),
            up: AtomicBool::new(true),
            reporter: AtomicBool::new(false),
            running: std::sync::atomic::AtomicU64::new(0),
            trouble: Mutex::new(None),
            liveness,
            stopped: AtomicBool::new(false),
        });
        // A record left by this name: a live node refreshes it; a dead one's expires.
        let key = membership.key();
        let first: Option<Option<String>> = membership.call(|redis| redis.get(&key));
        if let Some(Some(seen)) = first {
            log::info!(
                "node {:?} has a record in Redis: waiting up to {} to see whether it is alive",
                membership.name,
                humantime::format_duration(settings.node_timeout)
            );
            let until = Instant::now() + settings.node_timeout + HEARTBEAT;
            while Instant::now() < until {
                thread::sleep(HEARTBEAT / 4);
                match membership.call(|redis| redis.get::<_, Option<String>>(&key)) {
                    Some(Some(now)) if now != seen => {
                        return Err(ClusterError::NameTaken(membership.name.clone()));
                    }
                    Some(None) | None => break,
                    Some(Some(_)) => {}
                }
            }
        }
        membership.beat(0);
        if membership.redis_up() {
            log::info!(
                "joined the cluster as node {:?} ({})",
                membership.name,
                membership.address
            );
        }
        Ok(membership)
    }

    /// The cluster's key `suffix`.
    fn key_of(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.space)
    }

    fn key(&self) -> String {
        self.key_of(&format!("{NODE_KEY}{}", self.name))
    }

    fn lock(slot: &Mutex<Option<redis::Connection>>) -> MutexGuard<'_, Option<redis::Connection>> {
        slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `command` on the connection (made anew if there is none); `None` when Redis
    /// cannot be reached or the command fails.
    ///
    /// Two failures do not mark Redis down, lest the state flicker while Redis answers:
    /// `NOGROUP` (Redis restarted empty; the caller makes the group again), and an I/O error
    /// on a connection that had worked, which may only have outlived a restart: it is
    /// dropped, and the next command, on a new connection, decides.
    fn call<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        self.call_on(&self.connection, command)
    }

    fn call_on<T>(
        &self,
        slot: &Mutex<Option<redis::Connection>>,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut connection = Self::lock(slot);
        let fresh = connection.is_none();
        if fresh {
            let made = self
                .client
                .get_connection_with_timeout(REDIS_TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(REDIS_TIMEOUT))?;
                    c.set_write_timeout(Some(REDIS_TIMEOUT))?;
                    Ok(c)
                });
            match made {
                Ok(made) => *connection = Some(made),
                Err(err) => {
                    self.set_down(err.to_string());
                    return None;
                }
            }
        }
        let result = match connection.as_mut() {
            Some(redis) => command(redis),
            None => return None,
        };
        match result {
            Ok(value) => {
                self.set_up();
                Some(value)
            }
            Err(err) if err.code() == Some("NOGROUP") => {
                // Redis answered: it restarted empty, and the caller makes the group again.
                log::debug!("redis answered: {err}");
                None
            }
            Err(err) if err.is_io_error() && !fresh => {
                // Broken, or outlived a restart: a new one next time decides.
                *connection = None;
                log::debug!("dropped a redis connection that failed: {err}");
                None
            }
            Err(err) => {
                *connection = None;
                self.set_down(err.to_string());
                None
            }
        }
    }

    fn set_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            log::info!("redis answers again: node {:?} registered again", self.name);
            self.liveness.touch();
        }
        *self.trouble.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn set_down(&self, why: String) {
        if self.up.swap(false, Ordering::Relaxed) {
            log::warn!("redis is down ({why}): processing goes on, the cluster view waits");
            self.liveness.touch();
        }
        *self.trouble.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Adds to `pipe`: renew lease `key` if this node `held` it, take it if free, and read its
    /// holder (the pipeline's reply for it).
    fn lease(&self, pipe: &mut redis::Pipeline, key: &str, held: bool, expiry: u64) {
        let key = self.key_of(key);
        if held {
            pipe.cmd("PEXPIRE").arg(&key).arg(expiry).ignore();
        }
        pipe.cmd("SET")
            .arg(&key)
            .arg(&self.name)
            .arg("NX")
            .arg("PX")
            .arg(expiry)
            .ignore()
            .cmd("GET")
            .arg(&key);
    }

    /// Whether this node scans `unprocessed/` for the cluster now (it held the scanner lease
    /// at its last heartbeat, and Redis answers).
    pub fn is_scanner(&self) -> bool {
        self.redis_up() && self.scanner.load(Ordering::Relaxed)
    }

    /// Whether work is shared through Redis now (it answers, and the group exists).
    pub fn sharing(&self) -> bool {
        self.redis_up() && self.group_ready.load(Ordering::Relaxed)
    }

    /// Makes the consumer group of ready files unless it exists, on connection `slot`;
    /// whether it exists now. It starts at the stream's beginning: offers published while
    /// it was missing (after a Redis that restarted empty) are read too.
    fn ensure_group(&self, slot: &Mutex<Option<redis::Connection>>) -> bool {
        if self.group_ready.load(Ordering::Relaxed) {
            return true;
        }
        let made: Option<redis::Value> = self.call_on(slot, |redis| {
            match redis.xgroup_create_mkstream::<_, _, _, redis::Value>(
                &self.key_of(READY_STREAM),
                WORKERS_GROUP,
                "0",
            ) {
                Err(err) if err.code() == Some("BUSYGROUP") => Ok(redis::Value::Okay),
                other => other,
            }
        });
        if made.is_some() {
            self.group_ready.store(true, Ordering::Relaxed);
        }
        made.is_some()
    }

    /// The body of the daemon's offer thread, until `leave`: publishes the offers the
    /// scheduler makes as the scanning node (`XADD`) and acknowledges what it dealt with
    /// (`XACK`), all that is waiting in one round trip.
    pub fn offer_loop(&self, ends: &OfferEnds) {
        let mut unpublished: Vec<Offer> = Vec::new();
        let mut acks: Vec<String> = Vec::new();
        while !self.stopped.load(Ordering::Relaxed) {
            if unpublished.is_empty() && acks.is_empty() {
                crossbeam_channel::select! {
                    recv(ends.publish) -> offer => match offer {
                        Ok(offer) => unpublished.push(offer),
                        Err(_) => return,
                    },
                    recv(ends.acks) -> entry => match entry {
                        Ok(entry) => acks.push(entry),
                        Err(_) => return,
                    },
                    default(OFFER_WAIT) => continue,
                }
            }
            // The scheduler offers files one by one as they become ready: a moment's wait
            // fills the entries (one `XADD` per up to `OFFER_BATCH` files, not per file or two).
            thread::sleep(OFFER_GATHER);
            unpublished.extend(ends.publish.try_iter());
            acks.extend(ends.acks.try_iter());
            if !self.ensure_group(&self.offer_connection) {
                thread::sleep(HEARTBEAT);
                continue;
            }
            let ready = self.key_of(READY_STREAM);
            let sent: Option<()> = self.call_on(&self.offer_connection, |redis| {
                let mut pipe = redis::pipe();
                for batch in entries_of(&unpublished) {
                    let Some(files) = encode_offers(batch) else {
                        // Left unoffered; the scanner offers them again when they are stale.
                        log::error!("{} offers could not be encoded", batch.len());
                        continue;
                    };
                    pipe.cmd("XADD")
                        .arg(&ready)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(READY_KEPT)
                        .arg("*")
                        .arg(OFFERS_ENCODING)
                        .arg(files)
                        .ignore();
                }
                if !acks.is_empty() {
                    pipe.cmd("XACK")
                        .arg(&ready)
                        .arg(WORKERS_GROUP)
                        .arg(&acks)
                        .ignore();
                }
                pipe.query(redis)
            });
            match sent {
                Some(()) => {
                    unpublished.clear();
                    acks.clear();
                }
                // Kept for the next try; an acknowledgement lost with Redis only means the
                // offer is read again after --node-timeout, and its file is gone by then.
                None => thread::sleep(OFFER_WAIT),
            }
        }
    }

    /// The body of the daemon's reader thread, until `leave`: reads offers for this node
    /// while it has room (`XREADGROUP COUNT room`), and takes over the offers a dead node
    /// read and never acknowledged (`XAUTOCLAIM`). Without room it waits for the scheduler's
    /// nudge rather than a timer, so a node that keeps its workers busy reads as soon as one
    /// is free.
    pub fn read_loop(&self, ends: &ReadEnds) {
        let mut last_reclaim = Instant::now();
        let idle = u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX);
        while !self.stopped.load(Ordering::Relaxed) {
            if !self.ensure_group(&self.work_connection) {
                thread::sleep(HEARTBEAT);
                continue;
            }
            let wanted = ends.wanted.load(Ordering::Relaxed);
            if wanted == 0 {
                let _ = ends.nudge.recv_timeout(OFFER_WAIT);
                continue;
            }
            // Entries, each of up to `OFFER_BATCH` files (large ones come fewer to an entry:
            // the scheduler asks again while it has room).
            let entries = wanted.div_ceil(OFFER_BATCH);
            let mut read = Vec::new();
            if last_reclaim.elapsed() >= RECLAIM_EVERY {
                last_reclaim = Instant::now();
                let options = redis::streams::StreamAutoClaimOptions::default().count(entries);
                let reclaimed: Option<redis::streams::StreamAutoClaimReply> =
                    self.call_on(&self.work_connection, |redis| {
                        redis.xautoclaim_options(
                            self.key_of(READY_STREAM),
                            WORKERS_GROUP,
                            &self.name,
                            idle,
                            "0-0",
                            options,
                        )
                    });
                if let Some(reply) = reclaimed {
                    read.extend(reply.claimed);
                }
            }
            if read.is_empty() {
                let options = redis::streams::StreamReadOptions::default()
                    .group(WORKERS_GROUP, &self.name)
                    .count(entries)
                    .block(OFFER_WAIT.as_millis() as usize);
                let reply: Option<redis::streams::StreamReadReply> = self
                    .call_on(&self.work_connection, |redis| {
                        redis.xread_options(&[&self.key_of(READY_STREAM)], &[">"], &options)
                    });
                match reply {
                    Some(reply) => read.extend(reply.keys.into_iter().flat_map(|k| k.ids)),
                    None => {
                        // NOGROUP after a Redis that restarted empty, or Redis gone.
                        self.group_ready.store(false, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            for entry in read {
                let offers = offers_of(&entry);
                if offers.is_empty() {
                    log::debug!("skipped an offer that does not parse: {}", entry.id);
                    let _: Option<usize> = self.call_on(&self.work_connection, |redis| {
                        redis.xack(self.key_of(READY_STREAM), WORKERS_GROUP, &[&entry.id])
                    });
                    continue;
                }
                // The scheduler may have lowered it meanwhile: never below 0.
                let _ = ends
                    .wanted
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(offers.len()))
                    });
                for offer in offers {
                    if ends.offers.send(offer).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the last command got through.
    pub fn redis_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether this node exports the cluster's gauges now, and how many jobs run here: what
    /// a scrape of `/metrics` needs.
    pub fn scrape(&self) -> crate::metrics::NodeScrape {
        crate::metrics::NodeScrape {
            running: self.running.load(Ordering::Relaxed),
            reporter: self.redis_up() && self.reporter.load(Ordering::Relaxed),
        }
    }

    /// Says this node is alive, running `running` jobs: one round trip (the liveness key with
    /// its expiry, and the record kept for when it is gone).
    pub fn beat(&self, running: u64) {
        let record = NodeRecord {
            name: self.name.clone(),
            address: self.address.clone(),
            running,
            last_heartbeat: rfc3339(SystemTime::now()),
            instance: self.instance.clone(),
        };
        let Ok(json) = serde_json::to_string(&record) else {
            return;
        };
        self.running.store(running, Ordering::Relaxed);
        let expiry = u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX);
        let key = self.key();
        let was_reporter = self.reporter.load(Ordering::Relaxed);
        let was_scanner = self.scanner.load(Ordering::Relaxed);
        let reply: Option<(Option<String>, Option<String>, Option<String>)> = self.call(|redis| {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&json)
                .arg("PX")
                .arg(expiry)
                .arg("GET")
                .cmd("HSET")
                .arg(self.key_of(NODES_HASH))
                .arg(&self.name)
                .arg(&json)
                .ignore();
            // The reporter and scanner leases: kept while held, taken when free.
            self.lease(&mut pipe, REPORTER_KEY, was_reporter, expiry);
            self.lease(&mut pipe, SCANNER_KEY, was_scanner, expiry);
            pipe.query(redis)
        });
        let (previous, reporter, scanner) = reply.unwrap_or_default();
        let scanning = scanner.as_deref() == Some(self.name.as_str());
        if scanning != was_scanner {
            log::info!(
                "node {:?} {} scans unprocessed/ for the cluster",
                self.name,
                if scanning { "now" } else { "no longer" }
            );
        }
        self.scanner.store(scanning, Ordering::Relaxed);
        self.reporter.store(
            reporter.as_deref() == Some(self.name.as_str()),
            Ordering::Relaxed,
        );
        let other = previous
            .and_then(|old| serde_json::from_str::<NodeRecord>(&old).ok())
            .filter(|old| old.instance != self.instance);
        if let Some(other) = other {
            log::error!(
                "another daemon ({}) also calls itself node {:?}: give one of them another --node",
                other.address,
                self.name
            );
        }
    }

    /// Every node that ever joined, by name: up while its liveness key lives. `None` when
    /// Redis does not answer.
    pub fn nodes(&self) -> Option<Vec<NodeView>> {
        let records: Vec<(String, String)> =
            self.call(|redis| redis.hgetall(self.key_of(NODES_HASH)))?;
        let records: Vec<NodeRecord> = records
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .collect();
        if records.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<String> = records
            .iter()
            .map(|r| self.key_of(&format!("{NODE_KEY}{}", r.name)))
            .collect();
        let live: Vec<Option<String>> = self.call(|redis| redis.mget(&keys))?;
        let mut nodes: Vec<NodeView> = records
            .into_iter()
            .zip(live)
            .map(|(record, live)| {
                // The live record is the newer one.
                let current = live
                    .and_then(|json| serde_json::from_str::<NodeRecord>(&json).ok())
                    .map(|now| (now, "up"));
                let (record, state) = current.unwrap_or((record, "down"));
                NodeView {
                    name: record.name,
                    address: record.address,
                    state,
                    running: record.running,
                    last_heartbeat: record.last_heartbeat,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Some(nodes)
    }

    /// This node alone, as `nodes` would show it (when Redis does not answer).
    pub fn myself(&self, running: u64) -> NodeView {
        NodeView {
            name: self.name.clone(),
            address: self.address.clone(),
            state: "up",
            running,
            last_heartbeat: rfc3339(SystemTime::now()),
        }
    }

    /// Stops the heartbeat and the feed (their threads end within a heartbeat).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Leaves the cluster (at a clean stop, once the threads ended): the node shows as down
    /// at once.
    pub fn leave(&self) {
        self.stop();
        let key = self.key();
        let _: Option<()> = self.call(|redis| redis.del(&key));
        // The leases it holds go at once, so that another node scans and reports.
        for (held, lease) in [
            (&self.scanner, &self.key_of(SCANNER_KEY)),
            (&self.reporter, &self.key_of(REPORTER_KEY)),
        ] {
            if held.load(Ordering::Relaxed) {
                let holder: Option<Option<String>> = self.call(|redis| redis.get(lease));
                if holder.flatten().as_deref() == Some(self.name.as_str()) {
                    let _: Option<()> = self.call(|redis| redis.del(lease));
                }
            }
        }
    }

    /// Beats every `HEARTBEAT` until `leave`, with the number of running jobs `running`
    /// says, and calls `after` after each beat with the beat's number: the body of the
    /// daemon's heartbeat thread.
    pub fn heartbeat_loop(&self, running: impl Fn() -> u64, mut after: impl FnMut(u64)) {
        let mut beats = 0u64;
        while !self.stopped.load(Ordering::Relaxed) {
            thread::sleep(HEARTBEAT);
            if self.stopped.load(Ordering::Relaxed) {
                break;
            }
            self.beat(running());
            beats += 1;
            after(beats);
        }
    }

    /// Where the stream of changes ends now: the cluster's view is built from the reports on
    /// disk, then from the changes after this point. When Redis does not answer, now.
    pub fn changes_end(&self) -> String {
        let last: Option<redis::streams::StreamRangeReply> =
            self.call(|redis| redis.xrevrange_count(self.key_of(CHANGES_STREAM), "+", "-", 1));
        match last {
            Some(reply) => reply
                .ids
                .into_iter()
                .next()
                .map_or_else(|| "0-0".to_string(), |entry| entry.id),
            None => format!("{}-0", rfc_millis(SystemTime::now())),
        }
    }

    /// Publishes this node's changes, in order, as one entry (`encode_changes`, under the
    /// field `CHANGES_ENCODING`) in one round trip; false when Redis did not take them (a
    /// batch that cannot be encoded is dropped, logged, and counts as taken). One entry per
    /// batch rather than per change: a burst costs Redis, and every node reading the stream,
    /// a few entries a second.
    fn publish(&self, changes: &[crate::store::replica::Change]) -> bool {
        let batch = match crate::store::replica::encode_changes(changes) {
            Ok(batch) => batch,
            Err(err) => {
                // Retrying would fail the same way: the other nodes miss these changes until
                // they rebuild their view from the reports on disk.
                log::error!(
                    "{} changes could not be encoded and are dropped: {err}",
                    changes.len()
                );
                return true;
            }
        };
        let published: Option<String> = self.call_on(&self.feed_connection, |redis| {
            redis::cmd("XADD")
                .arg(self.key_of(CHANGES_STREAM))
                .arg("MAXLEN")
                .arg("~")
                .arg(CHANGES_KEPT)
                .arg("*")
                .arg("node")
                .arg(&self.name)
                .arg(crate::store::replica::CHANGES_ENCODING)
                .arg(&batch)
                .query(redis)
        });
        published.is_some()
    }

    /// The other nodes' batches of changes after `after` (moved past them), waiting up to
    /// `FEED_WAIT` for some; `None` when Redis does not answer. A batch in an encoding this
    /// version does not know (another version's node) is passed over.
    fn read_changes(&self, after: &mut String) -> Option<Vec<Vec<u8>>> {
        let options = redis::streams::StreamReadOptions::default()
            .count(CHANGES_PER_TRIP)
            .block(FEED_WAIT.as_millis() as usize);
        let reply: Option<redis::streams::StreamReadReply> =
            self.call_on(&self.feed_connection, |redis| {
                redis.xread_options(&[&self.key_of(CHANGES_STREAM)], &[after.as_str()], &options)
            });
        let reply = reply?;
        let mut changes = Vec::new();
        for key in reply.keys {
            for entry in key.ids {
                after.clone_from(&entry.id);
                let from: Option<String> = entry.get("node");
                if from.as_deref() == Some(self.name.as_str()) {
                    continue;
                }
                if let Some(batch) = entry.get::<Vec<u8>>(crate::store::replica::CHANGES_ENCODING) {
                    changes.push(batch);
                }
            }
        }
        Some(changes)
    }

    /// The body of the daemon's feed thread, until `leave`: publishes this node's changes
    /// from `replica`'s outbox, and applies the other nodes' changes after `after`.
    pub fn feed_loop(&self, replica: &crate::store::ReplicaStore, mut after: String) {
        while !self.stopped.load(Ordering::Relaxed) {
            crate::test_hooks::pause_point("before-publish");
            let outgoing = replica.take_outbox(CHANGES_PER_TRIP, Instant::now());
            if !outgoing.is_empty() && !self.publish(&outgoing) {
                replica.give_back(outgoing);
                thread::sleep(HEARTBEAT);
                continue;
            }
            match self.read_changes(&mut after) {
                Some(batches) => {
                    for batch in batches {
                        replica.apply_encoded(&batch);
                    }
                }
                None => thread::sleep(HEARTBEAT),
            }
        }
        // What this node did last (its final finishes, and what it still holds queued).
        let outgoing = replica.take_outbox(
            CHANGES_PER_TRIP,
            Instant::now() + crate::store::replica::QUEUED_HELD,
        );
        if !outgoing.is_empty() {
            self.publish(&outgoing);
        }
    }

    /// Which of `nodes` are dead (no liveness key); `None` when Redis does not answer, as
    /// then nobody can tell.
    pub fn dead_among(&self, nodes: &[String]) -> Option<Vec<String>> {
        if nodes.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<String> = nodes
            .iter()
            .map(|n| self.key_of(&format!("{NODE_KEY}{n}")))
            .collect();
        let live: Vec<Option<String>> = self.call(|redis| redis.mget(&keys))?;
        Some(
            nodes
                .iter()
                .zip(live)
                .filter(|(name, live)| live.is_none() && **name != self.name)
                .map(|(name, _)| name.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            shown_url("redis://:secret@db:6379/0"),
            "redis://:***@db:6379/0"
        );
        assert_eq!(
            shown_url("redis://user:secret@db/1"),
            "redis://user:***@db/1"
        );
        assert_eq!(shown_url("redis://db:6379"), "redis://db:6379");
    }

    #[test]
    fn flags_are_checked() {
        let timeout = Duration::from_secs(15);
        assert!(matches!(
            ClusterSettings::from_flags(None, None, timeout),
            Ok(None)
        ));
        assert!(
            ClusterSettings::from_flags(Some("redis://127.0.0.1:1/0"), Some("a-1"), timeout)
                .is_ok()
        );
        assert!(ClusterSettings::from_flags(Some("http://x"), None, timeout).is_err());
        assert!(ClusterSettings::from_flags(Some("redis://h"), Some("a b"), timeout).is_err());
        assert!(ClusterSettings::from_flags(Some("redis://h"), Some(""), timeout).is_err());
        assert!(
            ClusterSettings::from_flags(Some("redis://h"), None, Duration::from_millis(500))
                .is_err()
        );
    }

    /// An entry of the ready stream whose one field is `bytes`.
    fn raw_entry(bytes: Vec<u8>) -> redis::streams::StreamId {
        let mut entry = redis::streams::StreamId {
            id: "1-0".to_string(),
            ..Default::default()
        };
        entry
            .map
            .insert(OFFERS_ENCODING.to_string(), redis::Value::BulkString(bytes));
        entry
    }

    /// An entry offering files of these names, as `offer_loop` writes it.
    fn entry(names: &[&[u8]]) -> redis::streams::StreamId {
        use std::os::unix::ffi::OsStrExt;
        let offers: Vec<Offer> = names
            .iter()
            .map(|name| Offer {
                entry: None,
                job_id: crate::job::JobId::generate(),
                name: std::ffi::OsStr::from_bytes(name).to_os_string(),
                size_bytes: 1024,
                queued_at: std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            })
            .collect();
        raw_entry(encode_offers(&offers).expect("encodes"))
    }

    #[test]
    fn an_offer_travels_whole_and_one_that_does_not_decode_offers_nothing() {
        use std::os::unix::ffi::OsStrExt;
        let id = crate::job::JobId::generate();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9 report.csv").to_os_string();
        let sent = Offer {
            entry: None,
            job_id: id,
            name: name.clone(),
            size_bytes: 123_456_789,
            queued_at: std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let read = offers_of(&raw_entry(
            encode_offers(std::slice::from_ref(&sent)).expect("encodes"),
        ));
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].job_id, id);
        assert_eq!(
            read[0].name, name,
            "a name that is not UTF-8 travels as its bytes"
        );
        assert_eq!(read[0].size_bytes, 123_456_789);
        assert_eq!(read[0].queued_at, sent.queued_at);
        let cut = {
            let mut bytes = encode_offers(&[sent.clone(), sent]).expect("encodes");
            bytes.truncate(bytes.len() - 3);
            bytes
        };
        // Garbage, a list that claims four billion files, a cut one, an empty one, and an
        // entry of another version (its field under another name): nothing offered.
        for hostile in [
            b"\xff\xfe garbage".to_vec(),
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3],
            cut,
            Vec::new(),
        ] {
            assert!(offers_of(&raw_entry(hostile)).is_empty());
        }
        let mut other = raw_entry(Vec::new());
        other.map.clear();
        other.map.insert(
            "name0".to_string(),
            redis::Value::BulkString(b"a.log".to_vec()),
        );
        assert!(offers_of(&other).is_empty());
    }

    #[test]
    fn an_offer_names_one_file_the_watcher_would_take_or_is_skipped() {
        let offers = offers_of(&entry(&[b"data.csv"]));
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].name, "data.csv");
        let shared = offers[0].entry.as_ref().expect("its entry");
        assert_eq!(shared.id, "1-0");
        assert!(shared.dealt_with(), "its only file dealt with: acknowledge");
        for hostile in [
            &b"../etc/passwd"[..],
            b"..",
            b"a/b",
            b"/abs",
            b"",
            b".fp-node~x.tmp",
            b"upload.part",
        ] {
            assert!(
                offers_of(&entry(&[hostile])).is_empty(),
                "{}",
                String::from_utf8_lossy(hostile)
            );
            // Beside good names, only the hostile one is left out, and the entry is
            // acknowledged once the good ones are dealt with.
            let offers = offers_of(&entry(&[b"a.log", hostile, b"b.log"]));
            let names: Vec<_> = offers.iter().map(|o| o.name.clone()).collect();
            assert_eq!(
                names,
                ["a.log", "b.log"],
                "{}",
                String::from_utf8_lossy(hostile)
            );
            let shared = offers[0].entry.as_ref().expect("its entry");
            assert!(!shared.dealt_with());
            assert!(shared.dealt_with());
        }
        // At most `OFFER_BATCH` files an entry, however many it names.
        let many: Vec<Vec<u8>> = (0..3 * OFFER_BATCH)
            .map(|i| format!("f{i}.log").into_bytes())
            .collect();
        let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        assert_eq!(offers_of(&entry(&many)).len(), OFFER_BATCH);
    }

    #[test]
    fn small_files_are_offered_many_to_an_entry_and_large_ones_alone() {
        let offer = |size_bytes: u64| Offer {
            entry: None,
            job_id: crate::job::JobId::generate(),
            name: "f.log".into(),
            size_bytes,
            queued_at: std::time::UNIX_EPOCH,
        };
        let sizes = |offers: &[Offer]| -> Vec<Vec<u64>> {
            entries_of(offers)
                .iter()
                .map(|entry| entry.iter().map(|o| o.size_bytes).collect())
                .collect()
        };
        let small: Vec<Offer> = (0..20).map(|_| offer(1024)).collect();
        let counts: Vec<usize> = sizes(&small).iter().map(Vec::len).collect();
        assert_eq!(counts, [8, 8, 4]);
        let mib = 1 << 20;
        let mixed: Vec<Offer> = [mib, mib, mib, mib, mib, 10 * mib, 1024, 3 * mib, 2 * mib]
            .into_iter()
            .map(offer)
            .collect();
        assert_eq!(
            sizes(&mixed),
            [
                vec![mib, mib, mib, mib],
                vec![mib],
                vec![10 * mib],
                vec![1024, 3 * mib],
                vec![2 * mib],
            ]
        );
        assert!(entries_of(&[]).is_empty());
        assert_eq!(sizes(&[offer(u64::MAX), offer(u64::MAX)]).len(), 2);
    }
}
