//! The daemon's pipeline, in the order a file moves through it: `watch` (folder events) →
//! `scheduler` (readiness, order, claims) → `workers` (analysis and finish on the job threads).
//! It never serves HTTP and never keeps job state of its own beyond what a claim needs: the
//! store (`crate::store`) is told every step.

pub mod scheduler;
pub mod watch;
pub mod workers;

use std::sync::Arc;

use crate::health::Liveness;
use crate::metrics::Metrics;
use crate::store::JobStore;

/// Where the pipeline tells what it does: the job store (each job's state), the daemon's
/// liveness (heartbeats, the watch, the pool) and its metrics (bytes, durations, rescans).
/// Built once by `daemon` and handed to the scheduler and every worker.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn JobStore>,
    pub liveness: Arc<Liveness>,
    pub metrics: Arc<Metrics>,
}
