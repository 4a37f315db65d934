//! Recovery at start, before anything else touches the folders: removes the temp files of
//! writes a crash interrupted (uploads, copies, reports on filesystems without unnamed files)
//! and lists the files a crash left in `underprocess/`, oldest first, to be analysed again.
//! A claimed file's name (`<job id>_<original name>`) says which job it was; its finish then
//! finds a report already published under that id (`lifecycle`).
//!
//! In cluster mode (`me` is this node's name) the folders are shared: at start a node touches
//! only its own claims and temp files (and a single daemon's, which cannot run beside a
//! cluster); `take_over` later adopts the claims and removes the temp files of nodes that Redis
//! says are dead.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::disk::folders::{self, Folders};
use crate::disk::lifecycle::{LifecycleError, claimed_name, parse_claimed_name};
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
pub fn recover(folders: &Folders, me: Option<&str>) -> Result<Recovered, LifecycleError> {
    let mut recovered = Recovered::default();
    for dir in [
        &folders.unprocessed,
        &folders.underprocess,
        &folders.processed,
        &folders.failed,
    ] {
        for name in temp_files(dir)? {
            let owner = folders::temp_owner(&name);
            if owner.is_some() && owner != me {
                continue; // another node's
            }
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
            // Another node's: it finishes it, or `take_over` adopts it once that node is dead.
            Some(claim) if claim.node.is_some() && claim.node.as_deref() != me => continue,
            Some(claim) => (Some(claim.job_id), claim.original),
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

/// The other nodes that hold claims in `underprocess/` (and, with `every_folder`, own temp
/// files in any folder: a longer listing, done less often): the ones whose liveness
/// `take_over` needs.
pub fn other_nodes(folders: &Folders, me: &str, every_folder: bool) -> Vec<String> {
    let mut nodes = std::collections::BTreeSet::new();
    let dirs = folders.all();
    let dirs = if every_folder { &dirs[..] } else { &dirs[1..2] };
    for &dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let owner = match parse_claimed_name(&name) {
                Some(claim) if dir == &folders.underprocess => claim.node,
                _ => folders::temp_owner(&name).map(str::to_string),
            };
            if let Some(owner) = owner.filter(|owner| owner != me) {
                nodes.insert(owner);
            }
        }
    }
    nodes.into_iter().collect()
}

/// Adopts the claims of the `dead` nodes: each is renamed to a claim of `me` (a rename: of
/// several live nodes doing this at once, one wins and the others find it gone), and listed
/// to be analysed again, oldest first; the dead nodes' temp files are removed.
pub fn take_over(folders: &Folders, me: &str, dead: &[String]) -> Vec<Leftover> {
    let is_dead = |node: &str| dead.iter().any(|d| d == node);
    for dir in folders.all() {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if folders::is_temp_name(&name) && folders::temp_owner(&name).is_some_and(is_dead) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => log::info!(
                        "removed a temp file of a dead node: {}",
                        entry.path().display()
                    ),
                    Err(err) => log::debug!("cannot remove {}: {err}", entry.path().display()),
                }
            }
        }
    }
    let Ok(entries) = fs::read_dir(&folders.underprocess) else {
        return Vec::new();
    };
    let mut adopted = Vec::new();
    for entry in entries.flatten() {
        let Some(claim) = parse_claimed_name(&entry.file_name()) else {
            continue;
        };
        let Some(node) = claim.node.as_deref().filter(|node| is_dead(node)) else {
            continue;
        };
        let ours = folders
            .underprocess
            .join(claimed_name(claim.job_id, Some(me), &claim.original));
        match folders::rename_no_replace(&entry.path(), &ours) {
            Ok(()) => {
                log::info!(
                    "job {}: took over {} from dead node {node:?}",
                    claim.job_id,
                    entry.path().display()
                );
                let modified = fs::metadata(&ours)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                adopted.push((
                    modified,
                    Leftover {
                        path: ours,
                        job_id: Some(claim.job_id),
                        original_name: claim.original,
                    },
                ));
            }
            // Another live node took it first.
            Err(err) => log::debug!("cannot take over {}: {err}", entry.path().display()),
        }
    }
    adopted.sort_by_key(|(modified, _)| *modified);
    adopted.into_iter().map(|(_, leftover)| leftover).collect()
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
