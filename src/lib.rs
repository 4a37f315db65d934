//! file-processor: a hot-folder daemon that analyses the files dropped into it.
//!
//! The flow, one module per stage: `cli` (flags) → `config` (resolved settings) →
//! `single_shot` (one file through the folders) → `analyze` (the analyzers) → `report` (the
//! JSON report) → `folders` (every move and write). `run` is the one place that builds the
//! thread pool; nothing else spawns threads.

pub mod analyze;
pub mod cli;
pub mod config;
pub mod folders;
pub mod lifecycle;
pub mod report;
pub mod single_shot;

use std::process::ExitCode;

use config::{Config, Mode, UsageError};
use single_shot::SingleShotError;

/// Runs the program with resolved settings; `Ok` carries the exit code of a normal run.
pub fn run(config: Config) -> Result<ExitCode, SingleShotError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(config.workers)
        .thread_name(|i| format!("analyze-{i}"))
        .build_global()
        .map_err(|err| UsageError(format!("cannot start {} workers: {err}", config.workers)))?;
    match &config.mode {
        Mode::SingleShot { input, json } => {
            single_shot::run(input, &config.dir, *json, &config.analysis)
        }
    }
}
