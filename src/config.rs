//! Resolved settings: the raw flags checked once and turned into what the program runs with.
//!
//! After `Config::from_cli` succeeds no other code looks at flags or environment variables.

use std::path::PathBuf;
use std::time::Duration;

use crate::analyze::AnalysisOptions;
use crate::analyze::rules::TypeRules;
use crate::cli::Cli;

/// The most `--workers`: each is a job thread and a rayon thread with its own stack, and the
/// scheduler keeps several claimed files per worker; far beyond the cores it only costs.
pub const MAX_WORKERS: usize = 1024;

/// A usage error: printed as one `error: ...` line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone)]
pub enum Mode {
    /// `--input FILE` (one or more): analyse the files and exit.
    SingleShot { inputs: Vec<PathBuf>, json: bool },
    /// `--watch` (the default): the daemon.
    Watch(WatchSettings),
    /// `--check-health`: ask a running daemon.
    CheckHealth { host: String, port: u16 },
    /// `--child-analysis NAME`: the parser process of another file-processor.
    Child { name: PathBuf },
}

#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub host: String,
    pub port: u16,
    /// `Some(interval)`: a polling watcher instead of inotify.
    pub poll: Option<Duration>,
    pub settle: Duration,
    pub reconcile: Duration,
    pub shutdown_timeout: Duration,
    pub history: usize,
    pub fsync: bool,
    pub event_buffer: usize,
    pub token: Option<String>,
    pub max_upload_bytes: u64,
    pub allowed_hosts: Vec<String>,
    pub body_timeout: Duration,
    /// `--max-connections`.
    pub max_connections: u64,
    /// `--redis`: this daemon is a node of a cluster.
    pub cluster: Option<Box<crate::cluster::ClusterSettings>>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub dir: PathBuf,
    pub workers: usize,
    pub analysis: AnalysisOptions,
}

/// This program, for the parser processes: `/proc/self/exe` runs the same binary even after
/// an upgrade replaced or removed the file it was started from.
fn child_binary() -> Option<PathBuf> {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        return Some(proc_exe);
    }
    match std::env::current_exe() {
        Ok(path) => Some(path),
        Err(err) => {
            log::warn!(
                "cannot find this program ({err}): .ods, .xls and .pdf files get no analysis"
            );
            None
        }
    }
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, UsageError> {
        if cli.top == 0 {
            return Err(UsageError("--top must be at least 1".to_string()));
        }
        let workers = cli.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n.get(),
        );
        if workers > MAX_WORKERS {
            return Err(UsageError(format!(
                "--workers {workers} is more than {MAX_WORKERS}: use at most {MAX_WORKERS} (the \
                 default is the number of CPUs)"
            )));
        }
        if cli
            .token
            .as_deref()
            .is_some_and(|token| token.trim().is_empty())
        {
            return Err(UsageError(
                "--token (FP_TOKEN) is empty: give a token, or unset it to run without one"
                    .to_string(),
            ));
        }
        if cli.job_timeout.is_zero() {
            return Err(UsageError(
                "--job-timeout must be longer than 0 (e.g. 30s, 10m)".to_string(),
            ));
        }
        let rules = TypeRules::parse(&cli.accept, &cli.reject).map_err(UsageError)?;
        if cli.check_health {
            return Ok(Config {
                mode: Mode::CheckHealth {
                    host: cli.host,
                    port: cli.port,
                },
                dir: cli.dir,
                workers,
                analysis: AnalysisOptions::default(),
            });
        }
        let analysis = AnalysisOptions {
            segment_bytes: cli.segment_bytes,
            user_column: cli.user_column.clone(),
            top_users: cli.top,
            max_unpacked_bytes: cli.max_unpacked_bytes,
            max_entries: cli.max_entries,
            max_depth: cli.max_depth,
            hash: cli.hash,
            rules,
            job_timeout: cli.job_timeout,
            child_binary: child_binary(),
            ..AnalysisOptions::default()
        };
        if let Some(name) = cli.child_analysis {
            return Ok(Config {
                mode: Mode::Child { name },
                dir: cli.dir,
                workers: 1,
                analysis,
            });
        }
        let mode = match cli.input {
            inputs if !inputs.is_empty() => Mode::SingleShot {
                inputs,
                json: cli.json,
            },
            _ if cli.json => {
                return Err(UsageError(
                    "--json only applies to --input FILE".to_string(),
                ));
            }
            _ => Mode::Watch(WatchSettings {
                cluster: crate::cluster::ClusterSettings::from_flags(
                    cli.redis.as_deref(),
                    cli.node.as_deref(),
                    cli.node_timeout,
                )
                .map_err(UsageError)?
                .map(Box::new),
                host: cli.host,
                port: cli.port,
                poll: cli.poll.map(Duration::from_millis),
                settle: Duration::from_millis(cli.settle_ms),
                reconcile: Duration::from_millis(cli.reconcile_ms),
                shutdown_timeout: cli.shutdown_timeout,
                history: cli.history,
                fsync: cli.fsync,
                event_buffer: usize::try_from(cli.event_buffer).unwrap_or(usize::MAX),
                token: cli.token,
                max_upload_bytes: cli.max_upload_bytes,
                allowed_hosts: cli.allowed_hosts,
                body_timeout: cli.body_timeout,
                max_connections: cli.max_connections,
            }),
        };
        Ok(Config {
            mode,
            dir: cli.dir,
            workers,
            analysis,
        })
    }
}
