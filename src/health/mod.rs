//! Liveness: whether the daemon is doing its work, what `GET /health` and the dashboard's
//! banner say. The scheduler beats and reports the watch and the pool; the job threads report
//! their own loss; the store says which jobs wait for a finish that failed. `probe` is the
//! other side, the `--check-health` client.
//!
//! Nothing here blocks: every flag is an atomic, read and written from any thread.

pub mod probe;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The scheduler beats at least this often; `/health` fails after a few missed beats.
pub const HEARTBEAT_LIMIT: Duration = Duration::from_secs(5);

/// What `/health` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Alive, but work is held up for a reason that clears on its own.
    Degraded(String),
    /// Not doing its work: stopped, stopping, or a part of it is gone.
    Unavailable(String),
}

/// Jobs whose finish failed and that wait to be tried again, with the last error: what the
/// store knows of work held up (`JobStore::finish_trouble`).
pub type FinishTrouble = Option<(usize, String)>;

pub struct Liveness {
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
    /// Bumped when what `health` says may have changed, for the live views.
    version: AtomicU64,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            watcher_ok: AtomicBool::new(true),
            pool_ok: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            job_threads_lost: AtomicU64::new(0),
            folder_trouble: Mutex::new(None),
            version: AtomicU64::new(0),
        }
    }

    /// Called by the scheduler on every turn of its loop.
    pub fn heartbeat(&self) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(elapsed, Ordering::Relaxed);
    }

    pub fn set_watcher_ok(&self, ok: bool) {
        self.watcher_ok.store(ok, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_pool_ok(&self, ok: bool) {
        self.pool_ok.store(ok, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// Shutdown has begun: no new claims.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Seconds since the daemon started.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// A job thread ended other than at shutdown.
    pub fn job_thread_lost(&self) {
        self.job_threads_lost.fetch_add(1, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets (`Some(reason)`) or clears (`None`) what keeps `unprocessed/` from being watched.
    pub fn set_folder_trouble(&self, reason: Option<String>) {
        let mut slot = self
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

    /// Something `/health` or the dashboard's banners show changed elsewhere (Redis went or
    /// came back): the live views refresh.
    pub fn touch(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// Grows whenever what `health` says may have changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Ok while the watcher and the pool are alive and work flows; degraded while something
    /// that heals on its own holds work up (`trouble`: jobs whose finish failed); unavailable
    /// when a part is gone.
    pub fn health(&self, trouble: FinishTrouble) -> Health {
        let now = self.started.elapsed().as_millis() as u64;
        let beat = self.last_beat_ms.load(Ordering::Relaxed);
        let lost = self.job_threads_lost.load(Ordering::Relaxed);
        if self.draining.load(Ordering::Relaxed) {
            Health::Unavailable("shutting down".into())
        } else if !self.pool_ok.load(Ordering::Relaxed) {
            Health::Unavailable("the worker pool has stopped".into())
        } else if lost > 0 {
            Health::Unavailable(format!("{lost} job thread(s) stopped"))
        } else if now.saturating_sub(beat) > HEARTBEAT_LIMIT.as_millis() as u64 {
            Health::Unavailable("the scheduler is not responding".into())
        } else {
            let mut reasons: Vec<String> = self
                .folder_trouble
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .cloned()
                .collect();
            if let Some((unfinished, last)) = trouble {
                reasons.push(format!(
                    "{unfinished} file(s) cannot be finished and are tried again: {last}"
                ));
            }
            if !reasons.is_empty() {
                Health::Degraded(reasons.join("; "))
            } else if !self.watcher_ok.load(Ordering::Relaxed) {
                Health::Degraded(
                    "the folder watcher has failed; it is re-armed at the next scan".into(),
                )
            } else {
                Health::Ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_liveness_flags() {
        let liveness = Liveness::new();
        liveness.heartbeat();
        assert_eq!(liveness.health(None), Health::Ok);
        liveness.set_watcher_ok(false);
        assert!(matches!(liveness.health(None), Health::Degraded(_)));
        liveness.set_watcher_ok(true);
        liveness.set_folder_trouble(Some("folder gone".into()));
        assert_eq!(
            liveness.health(None),
            Health::Degraded("folder gone".into())
        );
        liveness.set_folder_trouble(None);
        assert_eq!(liveness.health(None), Health::Ok);
        assert_eq!(
            liveness.health(Some((2, "disk full".into()))),
            Health::Degraded("2 file(s) cannot be finished and are tried again: disk full".into())
        );
        liveness.job_thread_lost();
        assert!(matches!(liveness.health(None), Health::Unavailable(_)));
        let liveness = Liveness::new();
        liveness.heartbeat();
        liveness.set_draining();
        assert!(matches!(liveness.health(None), Health::Unavailable(_)));
    }
}
