//! Command-line flags as typed (clap derive); every flag also reads an `FP_*` variable.
//!
//! This module only describes and parses flags. Checking them against each other and turning
//! them into settings is `config`'s job; nothing here touches the filesystem.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::Parser;

/// Hot-folder file processor: analyses logs, CSV and JSON files and writes a JSON report
/// beside each one.
///
/// With --input FILE it analyses one file: FILE is moved to DIR/underprocess/, analysed, and
/// moved to DIR/processed/ with NAME.report.json beside it (or to DIR/failed/ with
/// NAME.error.json). Exit codes: 0 completed, 1 the file failed analysis, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "file-processor", version, about, long_about)]
pub struct Cli {
    /// Analyse FILE once, move it through the folders, print the report and exit.
    #[arg(long, env = "FP_INPUT", value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// With --input: print the report as JSON instead of a summary.
    #[arg(long, env = "FP_JSON")]
    pub json: bool,

    /// Root of the unprocessed/ underprocess/ processed/ failed/ folders (created if missing).
    #[arg(long, env = "FP_DIR", value_name = "DIR", default_value = "watch_dir")]
    pub dir: PathBuf,

    /// Threads that analyse at once [default: number of CPUs].
    #[arg(long, env = "FP_WORKERS", value_name = "N")]
    pub workers: Option<NonZeroUsize>,

    /// CSV column counted per user [default: the first header named like user_id, username,
    /// uid, customer_id, client_id, account_id or member_id].
    #[arg(long, env = "FP_USER_COLUMN", value_name = "NAME")]
    pub user_column: Option<String>,

    /// How many users the CSV report's top_users lists.
    #[arg(long, env = "FP_TOP", value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// Target size of the pieces a large file is cut into for parallel analysis.
    #[arg(long, env = "FP_SEGMENT_BYTES", value_name = "BYTES", default_value_t = 8 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: u64,
}
