//! Recovery at start, before anything else touches the folders: removes the temp files of
//! writes a crash interrupted (uploads, copies, reports on filesystems without unnamed files)
//! and lists the files a crash left in `underprocess/`, oldest first, to be analysed again.
//! A claimed file's name (`<job id>_<original name>`) says which job it was; its finish then
//! finds a report already published under that id (`lifecycle`).

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::disk::folders::{self, Folders};
use crate::disk::lifecycle::{LifecycleError, parse_claimed_name};
use crate::job::JobId;

/// A file found in `underprocess/` at start: claimed before a crash, to be analysed again.
#[derive(Debug, PartialEq, Eq)]
pub struct Leftover {
    pub path: PathBuf,
    /// The job it was, when its name says so (then its report may already be published).
    pub job_id: Option<JobId>,
    pub original_name: OsString,
}

/// What `recover` found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files claimed before the crash, oldest first.
    pub requeue: Vec<Leftover>,
    /// Temp files of interrupted writes, removed.
    pub removed: usize,
}

/// Removes temp files of interrupted writes (uploads, copies, reports on filesystems
/// without unnamed files) and lists the files left in `underprocess/`. Must run before
/// anything else touches the folders.
pub fn recover(folders: &Folders) -> Result<Recovered, LifecycleError> {
    let mut recovered = Recovered::default();
    for dir in [
        &folders.unprocessed,
        &folders.underprocess,
        &folders.processed,
        &folders.failed,
    ] {
        for name in temp_files(dir)? {
            let temp = dir.join(name);
            match fs::remove_file(&temp) {
                Ok(()) => {
                    log::info!(
                        "removed the leftover of an interrupted write: {}",
                        temp.display()
                    );
                    recovered.removed += 1;
                }
                Err(err) => log::warn!("cannot remove {}: {err}", temp.display()),
            }
        }
    }
    let underprocess = &folders.underprocess;
    let list_error = |source| LifecycleError::List {
        path: underprocess.clone(),
        source,
    };
    let mut left = Vec::new();
    for entry in fs::read_dir(underprocess).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || name.as_bytes().starts_with(b".") {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let (job_id, original_name) = match parse_claimed_name(&name) {
            Some((job_id, original)) => (Some(job_id), original),
            None => (None, name),
        };
        left.push((
            modified,
            Leftover {
                path: entry.path(),
                job_id,
                original_name,
            },
        ));
    }
    left.sort_by_key(|(modified, _)| *modified);
    recovered.requeue = left.into_iter().map(|(_, leftover)| leftover).collect();
    Ok(recovered)
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
