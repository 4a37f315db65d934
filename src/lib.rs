//! file-processor: a hot-folder daemon that analyses the files dropped into it.
//!
//! The flow, one module per stage: `cli` (flags) → `config` (resolved settings) → `daemon`
//! (builds the pipeline) → `watch` (folder events) → `queue` (readiness, order, claims) →
//! `pool` (workers) → `analyze` (the analyzers) → `lifecycle` (claim, finish, recover) →
//! `report` (the JSON report) → `registry` (jobs in memory, with `metrics` and, at start,
//! `history`) → `web` (dashboard, API, events). `single_shot` runs one file through the same
//! analysis and lifecycle. `run` builds the rayon pool; `daemon` builds everything else;
//! nothing else spawns threads.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod disk;
pub mod health;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod single_shot;
pub mod store;
pub mod test_hooks;
pub mod web;

use std::process::ExitCode;

use config::{Config, Mode, UsageError};
use daemon::DaemonError;
use single_shot::SingleShotError;

/// Why the program stopped abnormally; each carries its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    SingleShot(#[from] SingleShotError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) => 2,
            RunError::SingleShot(err) => err.exit_code(),
            RunError::Daemon(err) => err.exit_code(),
        }
    }
}

/// Runs the program with resolved settings; `Ok` carries the exit code of a normal run.
pub fn run(config: Config) -> Result<ExitCode, RunError> {
    match &config.mode {
        Mode::CheckHealth { host, port } => Ok(health::probe::check(host, *port)),
        Mode::SingleShot { input, json } => {
            start_analysis_pool(config.workers)?;
            Ok(single_shot::run(
                input,
                &config.dir,
                *json,
                &config.analysis,
            )?)
        }
        Mode::Watch(settings) => {
            start_analysis_pool(config.workers)?;
            Ok(daemon::run(
                &config.dir,
                config.workers,
                &config.analysis,
                settings,
            )?)
        }
    }
}

/// The rayon pool that analyses the segments of large files: `workers` threads.
fn start_analysis_pool(workers: usize) -> Result<(), UsageError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("analyze-{i}"))
        .build_global()
        .map_err(|err| UsageError(format!("cannot start {workers} workers: {err}")))
}
