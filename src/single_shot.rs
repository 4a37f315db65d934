//! `--input FILE` (once or several times): each file through the whole life cycle, then exit.
//!
//! Every argument is checked before anything is moved: one that is unusable (missing, not a
//! regular file, given twice, in a folder it cannot leave) stops the run with exit code 2 and
//! leaves every file where it was. The files are then analysed concurrently on the analysis
//! pool; each gets its report and its summary (printed in the order given), and the exit code
//! is the worst of them.
//!
//! FILE is claimed into `underprocess/` (renamed, or copied and removed when it lives on another
//! filesystem), analysed by the same `analyze()` as the daemon uses, and finished by the same
//! `Lifecycle::finish`: moved to `processed/` or `failed/` under a name that is free there
//! together with its report's name, with its report published atomically beside it. Nothing
//! is ever overwritten.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::analyze::{self, AnalysisOptions, Progress};
use crate::config::UsageError;
use crate::disk::folders::{self, FolderError, Folders};
use crate::disk::lifecycle::{Finished, Lifecycle, LifecycleError};
use crate::disk::report::{Status, Timing};
use crate::job::JobId;

/// Files at least this large get a progress bar when stderr is a terminal.
const PROGRESS_BAR_MIN_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SingleShotError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Nothing was moved yet: the file is where it was.
    #[error(transparent)]
    Setup(FolderError),
    /// The file was claimed but could not be finished; the message says where it is.
    #[error("{source} (the file is at {location})")]
    Finish {
        source: LifecycleError,
        location: PathBuf,
    },
}

impl SingleShotError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SingleShotError::Usage(_) | SingleShotError::Setup(_) => 2,
            SingleShotError::Finish { .. } => 1,
        }
    }
}

/// Runs the single-shot mode; `Ok` carries exit code 0 (every file completed) or 1 (one
/// failed, or could not be finished: its error is printed and the others go on).
pub fn run(
    inputs: &[PathBuf],
    dir: &Path,
    print_json: bool,
    options: &AnalysisOptions,
) -> Result<ExitCode, SingleShotError> {
    let mut names = Vec::with_capacity(inputs.len());
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        names.push(check_input(input)?);
        check_removable(input)?;
        let same = std::fs::canonicalize(input).unwrap_or_else(|_| input.clone());
        if !seen.insert(same) {
            return Err(UsageError(format!("{} is given twice", input.display())).into());
        }
    }
    let folders = Folders::create(dir).map_err(SingleShotError::Setup)?;
    // Every step is synced: the cost is nothing next to an analysis.
    let lifecycle = Lifecycle::new(folders, true);
    let one = inputs.len() == 1;
    let outcomes: Vec<Result<Finished, SingleShotError>> = inputs
        .par_iter()
        .zip(&names)
        .map(|(input, name)| run_one(&lifecycle, input, name, options, one))
        .collect();

    let mut worst = 0u8;
    let mut reports = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(finished) => {
                if finished.report.status == Status::Failed {
                    worst = worst.max(1);
                }
                if print_json {
                    reports.push(finished.report.to_json());
                } else {
                    print!(
                        "{}",
                        finished
                            .report
                            .summary(&finished.path, &finished.report_path)
                    );
                }
            }
            Err(err) => {
                // Claimed, not finished: said on stderr, where the file is.
                eprintln!("error: {err}");
                worst = worst.max(err.exit_code());
            }
        }
    }
    if print_json {
        if one && reports.len() == 1 {
            println!("{}", reports[0]);
        } else {
            println!("[{}]", reports.join(",\n"));
        }
    }
    Ok(ExitCode::from(worst))
}

/// One file through the life cycle: claim, analyse, finish.
fn run_one(
    lifecycle: &Lifecycle,
    input: &Path,
    original_name: &OsStr,
    options: &AnalysisOptions,
    show_progress: bool,
) -> Result<Finished, SingleShotError> {
    let job_id = JobId::generate();
    let queued_at = SystemTime::now();
    let claimed = lifecycle
        .claim_from(input, job_id, original_name)
        .map_err(SingleShotError::Setup)?
        .ok_or_else(|| UsageError(format!("no such file: {}", input.display())))?;
    log::debug!(
        "job {job_id}: claimed {} as {}",
        input.display(),
        claimed.display()
    );

    let started_at = SystemTime::now();
    let progress = if show_progress {
        progress_for(&claimed)
    } else {
        Progress::silent()
    };
    let analysis = analyze::analyze(&claimed, options, &progress);
    let finished_at = SystemTime::now();

    let timing = Timing {
        queued_at,
        started_at,
        finished_at,
    };
    let finished = lifecycle
        .finish(&claimed, original_name, job_id, analysis, timing, false)
        .map_err(|unfinished| SingleShotError::Finish {
            source: unfinished.error,
            location: claimed.clone(),
        })?;
    log::debug!("job {job_id}: moved to {}", finished.path.display());
    Ok(finished)
}

/// FILE must exist and be a regular file (not a folder, a device or a symbolic link: a link
/// would be moved instead of the file it points to).
fn check_input(input: &Path) -> Result<std::ffi::OsString, UsageError> {
    let metadata = std::fs::symlink_metadata(input).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            UsageError(format!("no such file: {}", input.display()))
        } else {
            UsageError(format!("cannot read {}: {err}", input.display()))
        }
    })?;
    if !metadata.file_type().is_file() {
        return Err(UsageError(format!(
            "not a regular file: {}",
            input.display()
        )));
    }
    folders::file_name_of(input)
        .map(OsStr::to_os_string)
        .ok_or_else(|| UsageError(format!("not a file name: {}", input.display())))
}

/// FILE is moved, not copied: its folder must let it go. Checked first, so that a file that
/// cannot leave (a read-only mount, a folder without write permission) is refused before
/// anything is copied, rather than leaving a copy behind.
fn check_removable(input: &Path) -> Result<(), UsageError> {
    let parent = match input.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    rustix::fs::access(
        parent,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|errno| {
        UsageError(format!(
            "cannot move {} out of {} ({}); nothing was done",
            input.display(),
            parent.display(),
            std::io::Error::from(errno)
        ))
    })
}

/// A progress bar on stderr for large files when a person is watching; silent otherwise.
fn progress_for(path: &Path) -> Progress {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    if size < PROGRESS_BAR_MIN_BYTES || !std::io::stderr().is_terminal() {
        return Progress::silent();
    }
    // Hidden until the analysis knows how many chunks there are (a bar of length 0 draws full).
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} chunks ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(
        path.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    );
    Progress::with_callback(move |done, total| {
        if total > 0 && bar.is_hidden() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_length(total);
        bar.set_position(done);
        if total > 0 && done >= total {
            bar.finish_and_clear();
        }
    })
}
