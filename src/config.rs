//! Resolved settings: the raw flags checked once and turned into what the program runs with.
//!
//! After `Config::from_cli` succeeds no other code looks at flags or environment variables.

use std::path::PathBuf;

use crate::analyze::AnalysisOptions;
use crate::cli::Cli;

/// A usage error: printed as one `error: ...` line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone)]
pub enum Mode {
    /// `--input FILE`: analyse one file and exit.
    SingleShot { input: PathBuf, json: bool },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub dir: PathBuf,
    pub workers: usize,
    pub analysis: AnalysisOptions,
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, UsageError> {
        let Some(input) = cli.input else {
            return Err(UsageError(
                "watch mode is not available in this version yet; analyse a file with --input FILE"
                    .to_string(),
            ));
        };
        if cli.top == 0 {
            return Err(UsageError("--top must be at least 1".to_string()));
        }
        let workers = cli.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n.get(),
        );
        Ok(Config {
            mode: Mode::SingleShot {
                input,
                json: cli.json,
            },
            dir: cli.dir,
            workers,
            analysis: AnalysisOptions {
                segment_bytes: cli.segment_bytes,
                user_column: cli.user_column,
                top_users: cli.top,
                ..AnalysisOptions::default()
            },
        })
    }
}
