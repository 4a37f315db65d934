//! file-processor: a hot-folder daemon that analyses the files dropped into it.
//!
//! The tree follows the data. `main` → `cli` (flags) → `config` (resolved settings) → `lib::run`
//! picks a mode: `single_shot` (`--input`: one file through the same analysis and disk
//! lifecycle, then exit), `health::probe` (`--check-health`), or `daemon`, which builds
//! everything below, owns the order of start and shutdown, and is the only place that spawns
//! threads (`run` starts the analyzers' rayon pool, `analyze::start_pool`, for either mode):
//!
//! - `pipeline/`: `watch` (folder events) → `readiness` (complete files, small first) →
//!   `scheduler` (claims, hands over, retries finishes) → `workers` (the job threads).
//! - `analyze/`: `analyze()` picks the analyzer by kind: `text`, `csv/` (`parse`, `stats`,
//!   `users`), `json`, `archive/` (`tar`, `zip`), `spreadsheet`, `document`; `compressed` unpacks
//!   `.gz .zst .xz .bz2` streams for them; `detect` names the content signature; `rules`
//!   judges `--accept` / `--reject` and an extension's promise; `section` is what each section
//!   shows (figure, summary, tables); `isolate` runs the parsers that must not run in the
//!   daemon's process (`.ods`, `.xls`) in a limited child process.
//! - `cluster`: with `--redis`, this node's membership of the cluster (heartbeat, the node
//!   list, whether Redis answers).
//! - `disk/`: `folders` (no-replace moves) → `lifecycle` (claim, finish) with `report` (the
//!   JSON beside the file); `recover` and `history` read the folders back at start.
//! - `store/`: the `JobStore` seam every job state goes through (`memory` is its first
//!   backend; `events` its change feed; `intake` the uploaded files' job ids; `suite` the tests
//!   every backend passes).
//! - `web/`: the HTTP side, reading the store (`ask`) and `health` and `metrics`.
//!
//! `allocator` sets the C allocator's thresholds once, at start.
//!
//! `job` is the vocabulary all of them share (ids, states, snapshots, counts); `health` the
//! daemon's liveness; `metrics` its Prometheus counters; `test_hooks` the crash points the
//! tests use, compiled into debug builds only.

pub mod allocator;
pub mod analyze;
pub mod cli;
pub mod cluster;
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
        Mode::Child { name } => Ok(analyze::isolate::child_main(name, &config.analysis)),
        Mode::SingleShot { inputs, json } => {
            start_analysis_pool(config.workers)?;
            Ok(single_shot::run(
                inputs,
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

/// The analyzers' pool (`analyze::start_pool`), for either mode.
fn start_analysis_pool(workers: usize) -> Result<(), UsageError> {
    analyze::start_pool(workers)
        .map_err(|err| UsageError(format!("cannot start {workers} workers: {err}")))
}
