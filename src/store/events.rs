//! The change feed of a store: every state change of a job as a `JobSnapshot`, and a version
//! number that grows with each change, for the live views (`/api/events`, the dashboard).
//!
//! A backend publishes here whatever changed, whether the change was made in this process
//! (the in-memory store) or by another node and learnt from outside (a remote store's
//! subscription). A publish never waits: a subscriber that falls behind loses its oldest
//! events (and is told so), the pipeline never does; and when nobody listens no snapshot is
//! even made.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::job::JobSnapshot;

/// State changes kept for a subscriber that is behind; older ones are dropped for it.
const EVENT_BACKLOG: usize = 1024;

pub struct ChangeFeed {
    events: broadcast::Sender<JobSnapshot>,
    /// Bumped on every state change and progress step: what the dashboard's coalesced stream
    /// looks at, so that watching costs the pipeline one atomic add per change.
    version: AtomicU64,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            events: broadcast::channel(EVENT_BACKLOG).0,
            version: AtomicU64::new(0),
        }
    }
}

impl ChangeFeed {
    /// Something changed that has no snapshot to send (a job forgotten).
    pub fn bump(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// A job changed: `snapshot` is made only if someone listens.
    pub fn publish(&self, snapshot: impl FnOnce() -> JobSnapshot) {
        self.bump();
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(snapshot());
        }
    }

    /// Whether any subscriber listens for snapshots.
    pub fn has_subscribers(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Grows with every change; equal readings mean nothing changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobSnapshot> {
        self.events.subscribe()
    }
}
