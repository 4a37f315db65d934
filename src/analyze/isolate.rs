//! Parsers that see hostile input and may loop or allocate without bound run in a child
//! process of this same binary, the way Apache Tika's `-spawnChild` protects its server: a
//! blow-up costs that file, never the daemon.
//!
//! The parent hands the child the open file as its standard input (the same inode it claimed,
//! never a path that could be swapped), its name (for the extension) and the analysis flags.
//! The child lowers its own limits before it reads a byte (`setrlimit`: `CHILD_MEMORY_BYTES` of
//! address space, the job's remaining time in CPU seconds), analyses, and prints one JSON line:
//! the report section, or the error. The parent waits no longer than the job's deadline (then it
//! kills the child: `timeout`), reads at most `CHILD_OUTPUT_BYTES`, and turns a child that died
//! into the file's error: out of memory is `limit_exceeded`, any other crash `invalid_<kind>`.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{AnalysisError, AnalysisOptions, Deadline, Details, Kind, Source};
use crate::job::ErrorInfo;

/// The address space a child may map: its parser's memory, whatever the file claims.
pub const CHILD_MEMORY_BYTES: u64 = 1 << 30;
/// The most a child may print (its report section).
pub const CHILD_OUTPUT_BYTES: u64 = 64 << 20;
/// How often the parent looks whether the child is done.
const POLL: Duration = Duration::from_millis(2);

/// The flag that makes the binary a child (hidden from `--help`).
pub const CHILD_FLAG: &str = "--child-analysis";

/// What a child prints: its section, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ChildOutcome {
    Details(Option<Details>),
    Error(ErrorInfo),
}

/// Analyses `source` (a `kind` file) in a child process; `Ok(None)` when no child can be
/// started in this build (`options.child_binary` unset: the unit tests) or the analyzer has
/// no section for it.
pub fn in_child(
    source: &Source,
    kind: Kind,
    options: &AnalysisOptions,
) -> Result<Option<Details>, AnalysisError> {
    let Some(binary) = &options.child_binary else {
        return Ok(None);
    };
    let remaining = source.deadline.remaining();
    let file = source.file.try_clone().map_err(AnalysisError::open)?;
    let mut command = Command::new(binary);
    command
        // `--flag=NAME`: a name that starts with `-` is still the flag's value.
        .arg({
            let mut flag = std::ffi::OsString::from(format!("{CHILD_FLAG}="));
            flag.push(source.path.file_name().unwrap_or(source.path.as_os_str()));
            flag
        })
        .args(["--top", &options.top_users.to_string()])
        .args([
            "--max-unpacked-bytes",
            &options.max_unpacked_bytes.to_string(),
        ])
        .args(["--max-entries", &options.max_entries.to_string()])
        .args([
            "--job-timeout",
            &format!("{}ms", remaining.as_millis().max(1)),
        ]);
    if let Some(column) = &options.user_column {
        command.args(["--user-column", column]);
    }
    leave_stop_signals_to_the_daemon(&mut command);
    // Nothing of the parent's environment (its FP_* settings) reaches the child.
    let mut child = command
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| AnalysisError::Unavailable {
            during: "start a parser process for",
            source: err,
        })?;
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = out.take(CHILD_OUTPUT_BYTES + 1).read_to_end(&mut text);
            text
        })
    });
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = err.take(64 << 10).read_to_end(&mut text);
            text
        })
    });
    let give_up = Instant::now() + remaining;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= give_up => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AnalysisError::Internal(format!(
                    "cannot wait for the parser process: {err}"
                )));
            }
        }
    };
    let output = stdout
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    let diagnostics = stderr
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    // What the child said last, but Rust's hint about backtraces.
    let diagnostics = String::from_utf8_lossy(&diagnostics);
    let last_line = diagnostics
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.starts_with("note: "))
        .unwrap_or("")
        .to_string();
    let Some(status) = status else {
        return Err(AnalysisError::TimedOut(source.deadline.limit()));
    };
    if status.success() {
        if output.len() as u64 > CHILD_OUTPUT_BYTES {
            return Err(AnalysisError::LimitExceeded(format!(
                "the parser's report is over {} MiB",
                CHILD_OUTPUT_BYTES >> 20
            )));
        }
        return match serde_json::from_slice::<ChildOutcome>(&output) {
            Ok(ChildOutcome::Details(details)) => Ok(details),
            Ok(ChildOutcome::Error(error)) => Err(error_of(error, kind, source.deadline)),
            Err(err) => Err(AnalysisError::Internal(format!(
                "the parser process printed no report: {err}"
            ))),
        };
    }
    log::debug!(
        "{}: parser process ended with {status}: {last_line}",
        source.path.display()
    );
    Err(crash(status, &last_line, kind, source.deadline))
}

/// Why a child that did not exit cleanly failed the file.
fn crash(
    status: std::process::ExitStatus,
    last_line: &str,
    kind: Kind,
    deadline: Deadline,
) -> AnalysisError {
    // Past its CPU limit (`RLIMIT_CPU`): the deadline, enforced by the kernel.
    if status.signal() == Some(signal_hook::consts::SIGXCPU) {
        return AnalysisError::TimedOut(deadline.limit());
    }
    // Stopped from outside (a hang-up, a signal to the group): not the file's fault, the job
    // is analysed again.
    if let Some(signal) = status.signal()
        && [
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ]
        .contains(&signal)
    {
        return AnalysisError::Unavailable {
            during: "finish the parser process for",
            source: io::Error::other(format!("the parser process got signal {signal}")),
        };
    }
    if last_line.contains("memory allocation") || last_line.contains("capacity overflow") {
        return AnalysisError::LimitExceeded(format!(
            "the parser needed more than the {} MiB it may use",
            CHILD_MEMORY_BYTES >> 20
        ));
    }
    if last_line.contains("overflowed its stack") {
        return AnalysisError::invalid(kind, "the file is nested too deeply to be parsed");
    }
    let how = match status.signal() {
        Some(signal) => format!("signal {signal}"),
        None => format!("exit code {}", status.code().unwrap_or(-1)),
    };
    let said = if last_line.is_empty() {
        String::new()
    } else {
        format!(": {}", last_line.chars().take(300).collect::<String>())
    };
    AnalysisError::invalid(kind, format!("the parser failed ({how}){said}"))
}

/// A child's error, back as the parent's.
fn error_of(error: ErrorInfo, kind: Kind, deadline: Deadline) -> AnalysisError {
    match error.kind.as_str() {
        "limit_exceeded" => AnalysisError::LimitExceeded(error.message),
        "timeout" => AnalysisError::TimedOut(deadline.limit()),
        "io" => AnalysisError::Read(io::Error::other(error.message)),
        "internal" => AnalysisError::Internal(error.message),
        other => match other.strip_prefix("invalid_").and_then(Kind::from_name) {
            Some(named) => AnalysisError::invalid(named, error.message),
            None => AnalysisError::invalid(kind, error.message),
        },
    }
}

/// A stop signal sent to every process of the service (systemd's stop, Ctrl-C to the group) is
/// the daemon's to act on: it lets running jobs finish and kills its parsers itself when it
/// must. The child starts with SIGTERM and SIGINT ignored, a disposition that survives `exec`,
/// so there is no moment between its start and its first instruction when either kills it.
fn leave_stop_signals_to_the_daemon(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before `exec`; it only calls `signal`, which is
    // async-signal-safe, and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGTERM, libc::SIGINT] {
                if libc::signal(signal, libc::SIG_IGN) == libc::SIG_ERR {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The child's side: limits itself, analyses its standard input as a file named `name`, prints
/// the outcome as one JSON line and exits 0 (an analysis error is an outcome, not a crash).
pub fn child_main(name: &Path, options: &AnalysisOptions) -> ExitCode {
    use rustix::process::{Resource, Rlimit, Signal, set_parent_process_death_signal, setrlimit};
    // A parser never outlives the daemon that started it.
    if let Err(err) = set_parent_process_death_signal(Some(Signal::KILL)) {
        log::warn!("cannot tie the parser process to its parent: {err}");
    }
    let cpu_seconds = options.job_timeout.as_secs().saturating_add(1);
    for (resource, limit) in [
        (Resource::As, CHILD_MEMORY_BYTES),
        (Resource::Cpu, cpu_seconds),
    ] {
        let limit = Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        };
        if let Err(err) = setrlimit(resource, limit) {
            eprintln!("error: cannot limit the parser process: {err}");
            return ExitCode::from(3);
        }
    }
    let outcome = match open_stdin(name) {
        Ok(mut source) => {
            source.deadline = Deadline::after(options.job_timeout);
            match super::analyze_in_child(&source, options) {
                Ok(details) => ChildOutcome::Details(details),
                Err(err) => ChildOutcome::Error(ErrorInfo {
                    kind: err.kind(),
                    message: err.to_string(),
                }),
            }
        }
        Err(err) => ChildOutcome::Error(ErrorInfo {
            kind: err.kind(),
            message: err.to_string(),
        }),
    };
    let mut out = io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &outcome)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(3),
    }
}

/// The file the parent handed over as standard input.
fn open_stdin(name: &Path) -> Result<Source, AnalysisError> {
    let fd = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(AnalysisError::open)?;
    Source::of_file(std::fs::File::from(fd), name)
}
