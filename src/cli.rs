//! Command-line flags as typed (clap derive); every flag also reads an `FP_*` variable.
//!
//! This module only describes and parses flags. Checking them against each other and turning
//! them into settings is `config`'s job; nothing here touches the filesystem.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::Parser;

use crate::analyze::hash::HashAlgorithm;

/// Hot-folder file processor: analyses logs, CSV and JSON files, compressed files, archives,
/// spreadsheets and documents, and writes a JSON report beside each one.
///
/// By default (--watch) it runs as a daemon: every file that lands in DIR/unprocessed/ is
/// claimed into DIR/underprocess/, analysed, and moved to DIR/processed/ with NAME.report.json
/// beside it (or to DIR/failed/ with NAME.error.json). SIGINT/SIGTERM stop it cleanly.
///
/// With --input FILE it analyses one file the same way and exits (--input may be given several
/// times: the files are analysed concurrently). Exit codes: 0 completed, 1 a file failed
/// analysis, 2 usage error (before anything is moved).
#[derive(Debug, Parser)]
#[command(name = "file-processor", version, about, long_about)]
pub struct Cli {
    /// Run the daemon: scan, watch and analyse DIR/unprocessed/ (the default mode).
    #[arg(long, env = "FP_WATCH", conflicts_with = "input")]
    pub watch: bool,

    /// Analyse FILE once, move it through the folders, print the report and exit. Give it
    /// several times (`--input a.csv --input b.log`) to analyse several files concurrently.
    #[arg(long, env = "FP_INPUT", value_name = "FILE")]
    pub input: Vec<PathBuf>,

    /// With --input: print the report as JSON instead of a summary (with several files, one
    /// JSON array of the reports, in the order given).
    #[arg(long, env = "FP_JSON")]
    pub json: bool,

    /// Root of the unprocessed/ underprocess/ processed/ failed/ folders (created if missing).
    #[arg(long, env = "FP_DIR", value_name = "DIR", default_value = "watch_dir")]
    pub dir: PathBuf,

    /// Threads that analyse at once, at most 1024 [default: number of CPUs].
    #[arg(long, env = "FP_WORKERS", value_name = "N")]
    pub workers: Option<NonZeroUsize>,

    /// CSV column counted per user [default: the first header named like user_id, username,
    /// uid, customer_id, client_id, account_id or member_id].
    #[arg(long, env = "FP_USER_COLUMN", value_name = "NAME")]
    pub user_column: Option<String>,

    /// How many users the CSV report's top_users lists.
    #[arg(long, env = "FP_TOP", value_name = "N", default_value_t = 10)]
    pub top: usize,

    /// The most bytes decompressing one file may yield (all layers); a file that would yield
    /// more fails with `limit_exceeded`.
    #[arg(long, env = "FP_MAX_UNPACKED_BYTES", value_name = "N", default_value_t = 16 << 30)]
    pub max_unpacked_bytes: u64,

    /// The most members an archive may have (folders included); more fails it with
    /// `limit_exceeded`.
    #[arg(
        long,
        env = "FP_MAX_ENTRIES",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub max_entries: u64,

    /// How deep archives are opened: 1 the file itself, 2 (the default) also an archive inside
    /// it; one nested deeper is listed as skipped.
    #[arg(long, env = "FP_MAX_DEPTH", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub max_depth: u32,

    /// Analyse only files of these kinds or extensions (comma-separated: text, csv, json,
    /// archive, spreadsheet, document, binary, or a name ending such as .log.gz); others go to
    /// failed/ with `rejected`, and an upload of one gets 415. E.g. `--accept csv,text,.log.gz`.
    /// A file whose first bytes are a format its extension does not explain (an executable
    /// named .txt) must also be accepted as that format's kind (binary).
    #[arg(long, env = "FP_ACCEPT", value_name = "LIST", value_delimiter = ',')]
    pub accept: Vec<String>,

    /// Refuse files of these kinds or extensions (as --accept), e.g. `--reject binary,.exe`;
    /// it wins over --accept.
    #[arg(long, env = "FP_REJECT", value_name = "LIST", value_delimiter = ',')]
    pub reject: Vec<String>,

    /// How long one file's analysis may run (e.g. 90s, 10m); past it the analysis is stopped
    /// and the file fails with `timeout`, and the worker takes the next file.
    #[arg(long, env = "FP_JOB_TIMEOUT", value_name = "DURATION", default_value = "10m",
          value_parser = humantime::parse_duration)]
    pub job_timeout: std::time::Duration,

    /// The content hash each report carries.
    #[arg(long, env = "FP_HASH", value_name = "ALG", value_enum, default_value_t = HashAlgorithm::Sha256)]
    pub hash: HashAlgorithm,

    /// Target size of the pieces a large file is cut into for parallel analysis.
    #[arg(long, env = "FP_SEGMENT_BYTES", value_name = "BYTES", default_value_t = 8 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: u64,

    /// Address of the dashboard and the API.
    #[arg(
        long,
        env = "FP_HOST",
        value_name = "ADDR",
        default_value = "127.0.0.1"
    )]
    pub host: String,

    /// Port of the HTTP server; 0 picks a free one (the log says which).
    #[arg(long, env = "FP_PORT", value_name = "N", default_value_t = 5000)]
    pub port: u16,

    /// Poll the folder every MS milliseconds instead of using inotify (network shares, Docker
    /// Desktop mounts). Files are then ready once unchanged for --settle-ms.
    #[arg(long, env = "FP_POLL", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub poll: Option<u64>,

    /// A file found by a scan or by polling (no close event) is ready once its size and mtime
    /// stayed the same this long.
    #[arg(long, env = "FP_SETTLE_MS", value_name = "MS", default_value_t = 1000)]
    pub settle_ms: u64,

    /// Interval of the reconcile scan of unprocessed/ that catches any missed event.
    #[arg(long, env = "FP_RECONCILE_MS", value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_ms: u64,

    /// On SIGINT/SIGTERM, how long running analyses may take to finish (e.g. 30s, 2m); files
    /// still running then stay in underprocess/ and are requeued at the next start.
    #[arg(long, env = "FP_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub shutdown_timeout: std::time::Duration,

    /// Finished jobs the registry keeps in memory.
    #[arg(long, env = "FP_HISTORY", value_name = "N", default_value_t = 10_000)]
    pub history: usize,

    /// Sync every report and move to disk before the next step, so that a power cut cannot
    /// lose one (about 0.3 ms more per file here). A crash of the daemon never needs it.
    #[arg(long, env = "FP_FSYNC")]
    pub fsync: bool,

    /// When set, every route but /health (and the sign-in page) needs it: `Authorization:
    /// Bearer T`, or the cookie that the sign-in page sets for browsers. Prefer FP_TOKEN: a
    /// flag shows in `ps`.
    #[arg(long, env = "FP_TOKEN", value_name = "T", hide_env_values = true)]
    pub token: Option<String>,

    /// The most file bytes one upload request may carry; a larger one gets 413 and leaves
    /// nothing behind.
    #[arg(long, env = "FP_MAX_UPLOAD_BYTES", value_name = "N", default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,

    /// An upload whose body sends nothing for this long is dropped (408) and leaves nothing.
    #[arg(long, env = "FP_BODY_TIMEOUT", value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,

    /// HTTP connections served at once (dashboards' event streams included). More wait, with
    /// their bytes in the kernel's socket buffers, until one closes: each connection may hold up
    /// to ~0.4 MiB of HTTP buffers, so this bounds the server's memory whatever the load.
    #[arg(long, env = "FP_MAX_CONNECTIONS", value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,

    /// Host names the server answers to besides localhost, IP addresses and --host
    /// (comma-separated; `*` for any): add the name a proxy or a DNS name reaches it by. Other
    /// names get 421, which stops DNS-rebinding attacks from web pages.
    #[arg(
        long,
        env = "FP_ALLOWED_HOSTS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Several daemons as one service (SPEC §6): the Redis (or Valkey) they share, as
    /// redis://[:PASSWORD@]HOST[:PORT][/DB]. Without it nothing Redis-related runs.
    #[arg(
        long,
        env = "FP_REDIS",
        value_name = "URL",
        hide_env_values = true,
        conflicts_with = "input"
    )]
    pub redis: Option<String>,

    /// With --redis: this daemon's name in the cluster [default: host name and --port].
    #[arg(long, env = "FP_NODE", value_name = "NAME", requires = "redis")]
    pub node: Option<String>,

    /// With --redis: a node that has not said it is alive for this long is dead.
    #[arg(long, env = "FP_NODE_TIMEOUT", value_name = "DURATION", default_value = "15s",
          value_parser = humantime::parse_duration)]
    pub node_timeout: std::time::Duration,

    /// Ask the daemon on --host/--port whether it is healthy (GET /health) and exit 0 if so,
    /// 1 if not: the Docker image's HEALTHCHECK, with no other tool needed.
    #[arg(long, conflicts_with_all = ["input", "watch"])]
    pub check_health: bool,

    /// Internal: run as the parser process of another file-processor, on the file given as
    /// standard input, named NAME (see `analyze::isolate`).
    #[arg(long = "child-analysis", value_name = "NAME", hide = true,
          conflicts_with_all = ["input", "watch", "check_health"])]
    pub child_analysis: Option<PathBuf>,

    /// Folder events buffered between the watcher and the scheduler; when full, events are
    /// dropped and the folder is rescanned (the tests make it tiny to force that).
    #[arg(long, env = "FP_EVENT_BUFFER", value_name = "N", default_value_t = 16_384,
          hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub event_buffer: u64,
}
