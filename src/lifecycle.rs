//! The life of a claimed file on disk: claiming it into `underprocess/`, finishing it into
//! `processed/` or `failed/` with its report, and repairing at start what a crash left half-way.
//!
//! Finishing is a small commit protocol in which every intermediate state can be recovered:
//! 1. choose a name free in the target folder together with its report's name, and reserve it
//!    against the other workers of this process;
//! 2. write the report to a hidden temp file `.fp-<job>.tmp` in the target folder;
//! 3. move the file from `underprocess/` to its name (never replacing anything);
//! 4. rename the temp report to `NAME.report.json` (never replacing anything).
//!
//! A crash before 3 leaves the file in `underprocess/` and perhaps a temp report, which
//! `recover` removes; the file is analysed again. A crash between 3 and 4 leaves a complete temp
//! report whose file is in place: `recover` publishes it. So every file ends with exactly one
//! report. Nothing here opens a user's file for writing, and nothing here spawns.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;

use crate::analyze::Analysis;
use crate::folders::{self, FolderError, Folders};
use crate::report::{Report, Status, Timing};

/// Reports are small; a temp report larger than this is not one of ours.
const MAX_REPORT_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("cannot write report {path}: {source}")]
    Report { path: PathBuf, source: io::Error },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
}

/// A file that went through the whole protocol.
#[derive(Debug)]
pub struct Finished {
    pub report: Report,
    pub path: PathBuf,
    pub report_path: PathBuf,
}

/// What `recover` found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files claimed before the crash, to analyse again, oldest first.
    pub requeue: Vec<PathBuf>,
    /// Temp reports whose file had already been moved: now in place.
    pub published: usize,
    /// Temp files of interrupted writes, removed.
    pub removed: usize,
}

/// Names handed out by finishes in progress, and where to start looking next time.
#[derive(Debug, Default)]
struct Names {
    reserved: HashSet<PathBuf>,
    /// Target folder + original name → the next derived-name attempt worth trying, so that a
    /// name dropped for the thousandth time does not try the 999 taken ones first. Bounded.
    next_attempt: HashMap<PathBuf, u32>,
}

/// Entries kept in `Names::next_attempt` before it is cleared.
const NAME_HINTS: usize = 4096;

/// The folders plus the names reserved by finishes in progress.
#[derive(Debug)]
pub struct Lifecycle {
    pub folders: Folders,
    /// Sync files and folders before each rename. A crash of this process never needs it
    /// (renames are atomic and the page cache outlives the process); a power cut does.
    durable: bool,
    names: Mutex<Names>,
}

impl Lifecycle {
    pub fn new(folders: Folders, durable: bool) -> Lifecycle {
        Lifecycle {
            folders,
            durable,
            names: Mutex::new(Names::default()),
        }
    }

    /// Claims `unprocessed/NAME` by renaming it into `underprocess/` under a free name.
    /// `Ok(None)`: it is gone (claimed or removed by someone else).
    pub fn claim(&self, name: &OsStr) -> Result<Option<PathBuf>, FolderError> {
        let from = self.folders.unprocessed.join(name);
        match folders::move_into(&from, &self.folders.underprocess, name, None, self.durable) {
            Ok(path) => {
                crash_point("after-claim");
                Ok(Some(path))
            }
            Err(FolderError::Move { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Returns a claimed file that was never started to `unprocessed/` (at shutdown), under
    /// its original name if free.
    pub fn unclaim(&self, claimed: &Path, original_name: &OsStr) -> Result<PathBuf, FolderError> {
        folders::move_into(
            claimed,
            &self.folders.unprocessed,
            original_name,
            None,
            self.durable,
        )
    }

    /// Moves the claimed file to `processed/` or `failed/` and publishes its report there
    /// (see the module comment for the order and why).
    pub fn finish(
        &self,
        claimed: &Path,
        original_name: &OsStr,
        job_id: &str,
        analysis: Analysis,
        timing: Timing,
    ) -> Result<Finished, LifecycleError> {
        let status = if analysis.details.is_ok() {
            Status::Completed
        } else {
            Status::Failed
        };
        let target_dir = match status {
            Status::Completed => &self.folders.processed,
            Status::Failed => &self.folders.failed,
        };
        let suffix = status.report_suffix();
        let temp_path = target_dir.join(format!(
            "{}{job_id}{}",
            folders::TEMP_PREFIX,
            folders::TEMP_SUFFIX
        ));
        let mut report = Report::new(
            job_id.to_string(),
            original_name,
            original_name,
            analysis,
            timing,
        );
        let hint_key = target_dir.join(original_name);
        let mut attempt = self
            .lock_names()
            .next_attempt
            .get(&hint_key)
            .copied()
            .unwrap_or(1);
        loop {
            let name = self.reserve_name(target_dir, original_name, suffix, &mut attempt)?;
            let path = target_dir.join(&name);
            let report_path = target_dir.join(with_suffix(&name, suffix));
            let outcome = self.place(claimed, &path, &report_path, &temp_path, &name, &mut report);
            self.release(&path, &report_path);
            match outcome {
                Ok(report_path) => {
                    let mut names = self.lock_names();
                    if names.next_attempt.len() >= NAME_HINTS {
                        names.next_attempt.clear();
                    }
                    names.next_attempt.insert(hint_key, attempt + 1);
                    drop(names);
                    return Ok(Finished {
                        report,
                        path,
                        report_path,
                    });
                }
                // The name is taken (the move never replaces): next name.
                Err(PlaceError::Taken) => {
                    log::debug!("job {job_id}: {} was taken meanwhile", path.display());
                    attempt += 1;
                }
                Err(PlaceError::Failed(err)) => {
                    let _ = fs::remove_file(&temp_path);
                    return Err(err);
                }
            }
        }
    }

    /// Steps 2–4 of the protocol for one chosen name.
    fn place(
        &self,
        claimed: &Path,
        path: &Path,
        report_path: &Path,
        temp_path: &Path,
        name: &OsStr,
        report: &mut Report,
    ) -> Result<PathBuf, PlaceError> {
        report.file = name.to_string_lossy().into_owned();
        let mut json = report.to_json();
        json.push('\n');
        self.write_temp_report(temp_path, json.as_bytes())
            .map_err(|source| {
                PlaceError::Failed(LifecycleError::Report {
                    path: temp_path.to_path_buf(),
                    source,
                })
            })?;
        crash_point("after-report-temp");
        match folders::rename_no_replace(claimed, path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(PlaceError::Taken);
            }
            Err(source) => {
                return Err(PlaceError::Failed(
                    FolderError::Move {
                        from: claimed.to_path_buf(),
                        to_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                        source,
                    }
                    .into(),
                ));
            }
        }
        crash_point("after-move");
        let published = match folders::rename_no_replace(temp_path, report_path) {
            Ok(()) => report_path.to_path_buf(),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                // A file of that name appeared after we checked (not ours: ours are reserved).
                // The report goes beside it rather than over it.
                let dir = report_path.parent().unwrap_or(Path::new("."));
                let name = report_path.file_name().unwrap_or_default();
                let written = folders::write_new_file(dir, name, json.as_bytes())
                    .map_err(|err| PlaceError::Failed(err.into()))?;
                let _ = fs::remove_file(temp_path);
                written
            }
            Err(source) => {
                return Err(PlaceError::Failed(LifecycleError::Report {
                    path: report_path.to_path_buf(),
                    source,
                }));
            }
        };
        if self.durable {
            if let Some(dir) = path.parent() {
                folders::sync_dir(dir);
            }
            folders::sync_dir(&self.folders.underprocess);
        }
        Ok(published)
    }

    fn write_temp_report(&self, temp_path: &Path, bytes: &[u8]) -> io::Result<()> {
        // The job id makes the name unique; `create_new` still refuses to replace anything.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp_path)
            .or_else(|err| {
                // Left by an earlier attempt of this very job (a name taken meanwhile).
                if err.kind() == io::ErrorKind::AlreadyExists {
                    fs::remove_file(temp_path)?;
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(temp_path)
                } else {
                    Err(err)
                }
            })?;
        if crash_armed("during-report-write") {
            file.write_all(&bytes[..bytes.len() / 2])?;
            crash_point("during-report-write");
        }
        file.write_all(bytes)?;
        if self.durable {
            file.sync_all()?;
        }
        Ok(())
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first name from `attempt` on that no other finish holds and whose report's name is
    /// free on disk; both are reserved until `release`. Whether the name itself is free is
    /// left to the move, which never replaces: one system call fewer per file.
    fn reserve_name(
        &self,
        dir: &Path,
        name: &OsStr,
        suffix: &str,
        attempt: &mut u32,
    ) -> Result<OsString, FolderError> {
        while *attempt <= folders::MAX_NAME_ATTEMPTS {
            let candidate = folders::fitting_name(name, *attempt, suffix.len());
            let path = dir.join(&candidate);
            let report_path = dir.join(with_suffix(&candidate, suffix));
            let reserved_here = {
                let mut names = self.lock_names();
                let free =
                    !names.reserved.contains(&path) && !names.reserved.contains(&report_path);
                if free {
                    names.reserved.insert(path.clone());
                    names.reserved.insert(report_path.clone());
                }
                free
            };
            // The disk is checked outside the lock: the workers must not queue behind each
            // other's system calls.
            if reserved_here {
                if !folders::exists(&report_path) {
                    return Ok(candidate);
                }
                self.release(&path, &report_path);
            }
            *attempt += 1;
        }
        Err(FolderError::NoFreeName {
            name: name.to_os_string(),
            dir: dir.to_path_buf(),
        })
    }

    fn release(&self, path: &Path, report_path: &Path) {
        let mut names = self.lock_names();
        names.reserved.remove(path);
        names.reserved.remove(report_path);
    }

    /// Repairs what a crash left: removes temp files of interrupted writes, publishes temp
    /// reports whose file was already moved, and lists the files left in `underprocess/`.
    /// Must run before anything else touches the folders.
    pub fn recover(&self) -> Result<Recovered, LifecycleError> {
        let mut recovered = Recovered::default();
        for dir in [&self.folders.unprocessed, &self.folders.underprocess] {
            for name in temp_files(dir)? {
                remove_leftover(&dir.join(name), &mut recovered);
            }
        }
        for (dir, suffix) in [
            (&self.folders.processed, Status::Completed.report_suffix()),
            (&self.folders.failed, Status::Failed.report_suffix()),
        ] {
            for name in temp_files(dir)? {
                let temp = dir.join(&name);
                match stranded_report_target(&temp, dir, suffix) {
                    Some(report_path) => match folders::rename_no_replace(&temp, &report_path) {
                        Ok(()) => {
                            log::info!(
                                "recovered the report of an interrupted job: {}",
                                report_path.display()
                            );
                            recovered.published += 1;
                        }
                        Err(err) => {
                            log::warn!("cannot publish {}: {err}", temp.display());
                            remove_leftover(&temp, &mut recovered);
                        }
                    },
                    None => remove_leftover(&temp, &mut recovered),
                }
            }
        }
        let underprocess = &self.folders.underprocess;
        let list_error = |source| LifecycleError::List {
            path: underprocess.clone(),
            source,
        };
        let mut left = Vec::new();
        for entry in fs::read_dir(underprocess).map_err(list_error)? {
            let entry = entry.map_err(list_error)?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if !is_file || entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            left.push((modified, entry.path()));
        }
        left.sort();
        recovered.requeue = left.into_iter().map(|(_, path)| path).collect();
        Ok(recovered)
    }
}

enum PlaceError {
    Taken,
    Failed(LifecycleError),
}

fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut out = name.to_os_string();
    out.push(suffix);
    out
}

fn temp_files(dir: &Path) -> Result<Vec<OsString>, LifecycleError> {
    let list_error = |source| LifecycleError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let name = entry.map_err(list_error)?.file_name();
        if folders::is_temp_name(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

fn remove_leftover(path: &Path, recovered: &mut Recovered) {
    match fs::remove_file(path) {
        Ok(()) => {
            log::info!(
                "removed the leftover of an interrupted write: {}",
                path.display()
            );
            recovered.removed += 1;
        }
        Err(err) => log::warn!("cannot remove {}: {err}", path.display()),
    }
}

/// Where a temp report belongs, if it is a complete report whose file is already in `dir`
/// and whose own name is still free there (step 3 done, step 4 not).
fn stranded_report_target(temp: &Path, dir: &Path, suffix: &str) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Stub {
        file: String,
    }
    let mut bytes = Vec::new();
    File::open(temp)
        .ok()?
        .take(MAX_REPORT_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let stub: Stub = serde_json::from_slice(&bytes).ok()?;
    let file = Path::new(&stub.file);
    let name = folders::file_name_of(file).filter(|name| *name == file.as_os_str())?;
    let report_path = dir.join(with_suffix(name, suffix));
    (folders::exists(&dir.join(name)) && !folders::exists(&report_path)).then_some(report_path)
}

/// Test hook: with `FP_CRASH_AT=POINT` in the environment the process kills itself with
/// SIGKILL when it reaches POINT, so that the tests can crash the real binary at each step of
/// the protocol. Points: `after-claim`, `during-report-write`, `after-report-temp`,
/// `after-move`.
fn crash_point(point: &str) {
    if crash_armed(point) {
        log::warn!("FP_CRASH_AT={point}: killing this process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

fn crash_armed(point: &str) -> bool {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    CRASH_AT
        .get_or_init(|| std::env::var("FP_CRASH_AT").ok())
        .as_deref()
        == Some(point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{AnalysisOptions, Progress, analyze};
    use std::time::SystemTime;

    fn setup() -> (tempfile::TempDir, Lifecycle) {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        (dir, Lifecycle::new(folders, false))
    }

    fn finish(lifecycle: &Lifecycle, name: &str, content: &str) -> Finished {
        fs::write(lifecycle.folders.unprocessed.join(name), content).expect("write");
        let claimed = lifecycle
            .claim(OsStr::new(name))
            .expect("claim")
            .expect("present");
        let analysis = analyze(&claimed, &AnalysisOptions::default(), &Progress::silent());
        let now = SystemTime::now();
        let timing = Timing {
            queued_at: now,
            started_at: now,
            finished_at: now,
        };
        let id = ulid::Ulid::generate().to_string();
        lifecycle
            .finish(&claimed, OsStr::new(name), &id, analysis, timing)
            .expect("finish")
    }

    #[test]
    fn finishing_never_replaces_and_names_the_report_after_the_file() {
        let (_dir, lifecycle) = setup();
        fs::write(lifecycle.folders.processed.join("a.txt"), "mine").expect("write");
        let done = finish(&lifecycle, "a.txt", "one\ntwo\n");
        assert_eq!(done.path, lifecycle.folders.processed.join("a-2.txt"));
        assert_eq!(
            done.report_path,
            lifecycle.folders.processed.join("a-2.txt.report.json")
        );
        assert_eq!(done.report.file, "a-2.txt");
        assert_eq!(done.report.original_name, "a.txt");
        let written: serde_json::Value =
            serde_json::from_slice(&fs::read(&done.report_path).expect("read")).expect("json");
        assert_eq!(written["file"], "a-2.txt");
        assert_eq!(
            fs::read_to_string(lifecycle.folders.processed.join("a.txt")).expect("read"),
            "mine"
        );
        let failed = finish(&lifecycle, "b.json", "{broken");
        assert_eq!(
            failed.report_path,
            lifecycle.folders.failed.join("b.json.error.json")
        );
        assert!(
            temp_files(&lifecycle.folders.processed)
                .expect("list")
                .is_empty()
        );
    }

    #[test]
    fn recovery_publishes_stranded_reports_and_drops_incomplete_ones() {
        let (_dir, lifecycle) = setup();
        let processed = &lifecycle.folders.processed;
        // Crash between the move and the report's rename: the file is in place.
        fs::write(processed.join("moved.txt"), "x").expect("write");
        fs::write(
            processed.join(".fp-AAA.tmp"),
            r#"{"file": "moved.txt", "status": "completed"}"#,
        )
        .expect("write");
        // Crash before the move: the file is still in underprocess/.
        fs::write(
            processed.join(".fp-BBB.tmp"),
            r#"{"file": "waiting.txt", "status": "completed"}"#,
        )
        .expect("write");
        fs::write(lifecycle.folders.underprocess.join("waiting.txt"), "y").expect("write");
        // Crash during the report write.
        fs::write(processed.join(".fp-CCC.tmp"), r#"{"file": "wai"#).expect("write");
        // A report that names a path, not a name, is not trusted.
        fs::write(processed.join(".fp-DDD.tmp"), r#"{"file": "../moved.txt"}"#).expect("write");
        fs::write(lifecycle.folders.unprocessed.join(".fp-upload.tmp"), "z").expect("write");

        let recovered = lifecycle.recover().expect("recover");
        assert_eq!(recovered.published, 1);
        assert_eq!(recovered.removed, 4);
        assert_eq!(
            recovered.requeue,
            vec![lifecycle.folders.underprocess.join("waiting.txt")]
        );
        assert!(processed.join("moved.txt.report.json").exists());
        assert!(temp_files(processed).expect("list").is_empty());
        assert!(
            temp_files(&lifecycle.folders.unprocessed)
                .expect("list")
                .is_empty()
        );
    }
}
