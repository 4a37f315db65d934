//! The life of a claimed file on disk: claiming it into `underprocess/` and finishing it into
//! `processed/` or `failed/` with its report (`recover` finds at start what a crash left).
//!
//! A claimed file is named `<job id>_<original name>` in `underprocess/`: unique, so a claim
//! never meets a taken name, and after a crash the file still says which job it was and what it
//! was called. Finishing is a small commit protocol whose every state can be recovered:
//! 1. choose a name free in the target folder together with its report's name, and reserve it
//!    against the other workers of this process;
//! 2. publish the report, whole, under `NAME.report.json` (written unnamed, then linked; never
//!    replacing anything);
//! 3. move the file from `underprocess/` to `NAME` (never replacing anything).
//!
//! A crash before 2 leaves only the claimed file: it is analysed again at the next start. A
//! crash between 2 and 3 leaves a report whose file is missing beside it: when the file is
//! analysed again, its finish finds that report by its job id and moves the file beside it
//! instead of writing a second one. So every file ends with exactly one report. Nothing here
//! opens a user's file for writing, and nothing here spawns.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;

use crate::analyze::Analysis;
use crate::disk::folders::{self, FolderError, Folders, with_suffix};
use crate::disk::report::{Report, Status, Timing};
use crate::job::JobId;
use crate::test_hooks::{crash_point, pause_point};

/// Entries kept in `Names::next_attempt` before it is cleared.
const NAME_HINTS: usize = 4096;

/// Between the job id and the original name in a claimed file's name.
const CLAIM_SEPARATOR: u8 = b'_';

/// A finish that failed: why, and the report, kept so that a later attempt publishes the
/// same report without analysing the file again.
#[derive(Debug)]
pub struct Unfinished {
    pub error: LifecycleError,
    pub report: Box<Report>,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("cannot write report {path}: {source}")]
    Report { path: PathBuf, source: io::Error },
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    /// Cluster mode: the claimed file left `underprocess/` under this node (a node that took
    /// this one for dead took it over): its report must not be published too.
    #[error("{0} is no longer this node's: another node took it over")]
    ClaimGone(PathBuf),
}

/// A file that went through the whole protocol.
#[derive(Debug)]
pub struct Finished {
    pub report: Report,
    pub path: PathBuf,
    pub report_path: PathBuf,
}

/// Names handed out by finishes in progress, and where to start looking next time.
#[derive(Debug, Default)]
struct Names {
    reserved: HashSet<PathBuf>,
    /// Hash of target folder + original name → the next derived-name attempt worth trying,
    /// so that a name dropped for the thousandth time does not try the 999 taken ones first.
    /// Bounded, and without an allocation per entry. A collision only changes where the search
    /// starts: every name is still checked.
    next_attempt: HashMap<u64, u32>,
}

/// A name chosen for a finishing file.
enum Chosen {
    /// Free, with its report's name: reserved until released.
    Free(OsString),
    /// This job's own report is already there, its file missing (a crash between steps 2 and
    /// 3): the file goes beside it.
    Stranded(OsString),
}

/// The folders plus the names reserved by finishes in progress.
#[derive(Debug)]
pub struct Lifecycle {
    pub folders: Folders,
    /// Sync files and folders before each next step. A crash of this process never needs it
    /// (renames are atomic and the page cache outlives the process); a power cut does.
    durable: bool,
    names: Mutex<Names>,
    /// With `--redis`: this node's name, written in every report.
    node: Option<String>,
}

/// `<job id>_<name>`, or in cluster mode `<job id>+<node>+<name>` (the node that holds it),
/// shortened where needed to fit the filesystem's name limit.
pub fn claimed_name(job_id: JobId, node: Option<&str>, original_name: &OsStr) -> OsString {
    let prefix = match node {
        Some(node) => format!("{job_id}+{node}+"),
        None => format!("{job_id}_"),
    };
    let fitted = folders::fitting_name(original_name, 1, prefix.len());
    let mut name = OsString::from(prefix);
    name.push(fitted);
    name
}

/// What a claimed file's name says: its job, the node that holds it (cluster mode), and its
/// original name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedName {
    pub job_id: JobId,
    pub node: Option<String>,
    pub original: OsString,
}

/// Between the job id and the node in a cluster node's claimed name, and after the node.
const NODE_MARK: u8 = b'+';

/// A claimed file's name parsed, if it has a claimed form.
pub fn parse_claimed_name(name: &OsStr) -> Option<ClaimedName> {
    let bytes = name.as_bytes();
    let id_len = JobId::nil().to_string().len();
    if bytes.len() > id_len + 2 && bytes[id_len] == NODE_MARK {
        let job_id = JobId::from_string(std::str::from_utf8(&bytes[..id_len]).ok()?).ok()?;
        let rest = &bytes[id_len + 1..];
        let end = rest.iter().position(|&b| b == NODE_MARK)?;
        let node = std::str::from_utf8(&rest[..end]).ok()?;
        let original = &rest[end + 1..];
        if node.is_empty() || original.is_empty() {
            return None;
        }
        return Some(ClaimedName {
            job_id,
            node: Some(node.to_string()),
            original: OsStr::from_bytes(original).to_os_string(),
        });
    }
    let separator = bytes.iter().position(|&b| b == CLAIM_SEPARATOR)?;
    let id = std::str::from_utf8(&bytes[..separator]).ok()?;
    let job_id = JobId::from_string(id).ok()?;
    let original = &bytes[separator + 1..];
    (!original.is_empty()).then(|| ClaimedName {
        job_id,
        node: None,
        original: OsStr::from_bytes(original).to_os_string(),
    })
}

impl Lifecycle {
    pub fn new(folders: Folders, durable: bool) -> Lifecycle {
        Lifecycle {
            folders,
            durable,
            names: Mutex::new(Names::default()),
            node: None,
        }
    }

    /// Reports name this node (cluster mode).
    pub fn with_node(mut self, node: Option<String>) -> Lifecycle {
        self.node = node;
        self
    }

    fn lock_names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `unprocessed/NAME` by renaming it to `underprocess/<job id>_NAME`.
    /// `Ok(None)`: it is gone (claimed or removed by someone else).
    pub fn claim(&self, job_id: JobId, name: &OsStr) -> Result<Option<PathBuf>, FolderError> {
        let from = self.folders.unprocessed.join(name);
        self.claim_from(&from, job_id, name)
            .or_else(|err| match err {
                FolderError::Move { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    Ok(None)
                }
                err => Err(err),
            })
    }

    /// Claims a file from anywhere (`--input`), copying it when it is on another filesystem.
    pub fn claim_from(
        &self,
        from: &Path,
        job_id: JobId,
        name: &OsStr,
    ) -> Result<Option<PathBuf>, FolderError> {
        let claimed = claimed_name(job_id, self.node.as_deref(), name);
        let path = folders::move_into(
            from,
            &self.folders.underprocess,
            &claimed,
            None,
            self.durable,
        )?;
        crash_point("after-claim");
        Ok(Some(path))
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

    /// Publishes the report and moves the claimed file beside it, in `processed/` or `failed/`
    /// (see the module comment for the order and why). `after_crash`: the file was claimed
    /// before a crash, so its report may already be there.
    pub fn finish(
        &self,
        claimed: &Path,
        original_name: &OsStr,
        job_id: JobId,
        analysis: Analysis,
        timing: Timing,
        after_crash: bool,
    ) -> Result<Finished, Unfinished> {
        let mut report = Report::new(
            job_id.to_string(),
            original_name,
            original_name,
            analysis,
            timing,
        );
        report.node.clone_from(&self.node);
        self.finish_report(
            claimed,
            original_name,
            job_id,
            Box::new(report),
            after_crash,
        )
        .map_err(|(error, report)| Unfinished { error, report })
    }

    /// `finish` with the report already made: also what a later attempt calls after a failed
    /// finish (with `report_may_exist`, as its report may have been published).
    pub fn finish_report(
        &self,
        claimed: &Path,
        original_name: &OsStr,
        job_id: JobId,
        mut report: Box<Report>,
        report_may_exist: bool,
    ) -> Result<Finished, (LifecycleError, Box<Report>)> {
        let after_crash = report_may_exist;
        // Cluster mode: the claimed file as this node holds it, to know it again if another
        // node takes it over and moves it beside this node's report.
        let held = if self.node.is_some() {
            folders::file_key(claimed)
        } else {
            None
        };
        if self.node.is_some() && !after_crash && held.is_none() {
            return Err((LifecycleError::ClaimGone(claimed.to_path_buf()), report));
        }
        // A node taken for dead may lose the claim after this check: its move beside the
        // report then finds the claim gone, and the report is withdrawn (or kept, when the
        // node that took the file over adopted it; see `move_beside_report`).
        pause_point("before-report");
        let status = report.status;
        let target_dir = match status {
            Status::Completed => &self.folders.processed,
            Status::Failed => &self.folders.failed,
        };
        let suffix = status.report_suffix();
        let hint_key =
            xxhash_rust::xxh3::xxh3_64(target_dir.join(original_name).as_os_str().as_bytes());
        let mut attempt = if after_crash {
            1
        } else {
            let names = self.lock_names();
            names.next_attempt.get(&hint_key).copied().unwrap_or(1)
        };
        // A hint is only where the search starts: when the name itself is free again (the
        // file moved out, e.g. retried), it is the one to take.
        if attempt > 1
            && !folders::exists(&target_dir.join(original_name))
            && !folders::exists(&target_dir.join(with_suffix(original_name, suffix)))
        {
            attempt = 1;
        }
        loop {
            let chosen = match self.choose_name(
                target_dir,
                original_name,
                suffix,
                &mut attempt,
                after_crash.then_some(job_id),
                job_id,
            ) {
                Ok(chosen) => chosen,
                Err(err) => return Err((err.into(), report)),
            };
            let (name, stranded) = match chosen {
                Chosen::Free(name) => (name, false),
                Chosen::Stranded(name) => (name, true),
            };
            let path = target_dir.join(&name);
            let report_path = target_dir.join(with_suffix(&name, suffix));
            report.file = name.to_string_lossy().into_owned();
            let outcome = if stranded {
                log::info!(
                    "job {job_id}: its report {} was published before a crash; moving the file \
                     beside it",
                    report_path.display()
                );
                self.move_beside_report(claimed, &path, None, None)
            } else {
                let outcome = self.publish_and_move(claimed, &path, &report_path, &report, held);
                self.release(&path, &report_path);
                outcome
            };
            match outcome {
                Ok(()) => {
                    let mut names = self.lock_names();
                    if names.next_attempt.len() >= NAME_HINTS {
                        names.next_attempt.clear();
                    }
                    names.next_attempt.insert(hint_key, attempt + 1);
                    drop(names);
                    return Ok(Finished {
                        report: *report,
                        path,
                        report_path,
                    });
                }
                // A name was taken after we looked (by something outside this process; the
                // move and the report never replace anything): the next name.
                Err(Step::Taken) => {
                    log::debug!("job {job_id}: {} was taken meanwhile", path.display());
                    attempt += 1;
                }
                Err(Step::Failed(err)) => return Err((err, report)),
            }
        }
    }

    /// Steps 2 and 3 of the protocol for one chosen name.
    fn publish_and_move(
        &self,
        claimed: &Path,
        path: &Path,
        report_path: &Path,
        report: &Report,
        held: Option<(u64, u64)>,
    ) -> Result<(), Step> {
        let mut json = report.to_json();
        json.push('\n');
        let dir = report_path.parent().unwrap_or(Path::new("."));
        let name = report_path.file_name().unwrap_or_default();
        match folders::publish_new_file(dir, name, json.as_bytes(), self.durable) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(Step::Taken),
            Err(source) => {
                return Err(Step::Failed(LifecycleError::Report {
                    path: report_path.to_path_buf(),
                    source,
                }));
            }
        }
        crash_point("after-report");
        pause_point("after-report");
        self.move_beside_report(claimed, path, Some(report_path), held)
    }

    /// Step 3. When the name turns out to be taken, the report just published for it (ours:
    /// its name was free a moment ago) is withdrawn. So is it when the move fails, unless
    /// (cluster mode) the claim is gone because a node that took this one for dead moved the
    /// file `held` beside that report: it adopted the report, which stays.
    fn move_beside_report(
        &self,
        claimed: &Path,
        path: &Path,
        published: Option<&Path>,
        held: Option<(u64, u64)>,
    ) -> Result<(), Step> {
        match folders::rename_no_replace(claimed, path) {
            Ok(()) => {
                if self.durable {
                    if let Some(dir) = path.parent() {
                        folders::sync_dir(dir);
                    }
                    folders::sync_dir(&self.folders.underprocess);
                }
                Ok(())
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                if let Some(report_path) = published {
                    let _ = fs::remove_file(report_path);
                }
                Err(Step::Taken)
            }
            Err(source)
                if source.kind() == io::ErrorKind::NotFound
                    && held.is_some()
                    && folders::file_key(path) == held =>
            {
                log::warn!(
                    "{} was taken over by another node and moved beside this node's report; \
                     the report stays",
                    claimed.display()
                );
                Err(Step::Failed(LifecycleError::ClaimGone(
                    claimed.to_path_buf(),
                )))
            }
            Err(source) => {
                // The move failed for another reason (a folder gone, EIO, no descriptors, or
                // in cluster mode the claim taken over by another node): withdraw the report
                // just published, so that it never stands without its file. If even that
                // fails, the next attempt finds it by the job id.
                if let Some(report_path) = published
                    && let Err(err) = fs::remove_file(report_path)
                {
                    log::warn!(
                        "cannot withdraw {} after a failed move: {err}",
                        report_path.display()
                    );
                }
                Err(Step::Failed(
                    FolderError::Move {
                        from: claimed.to_path_buf(),
                        to_dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                        source,
                    }
                    .into(),
                ))
            }
        }
    }

    /// The first name from `attempt` on that no other finish holds (and, after a crash, whose
    /// report's name is free on disk); both are reserved until `release`. Whether the names
    /// are free is otherwise left to the publish and the move, which never replace: two system
    /// calls fewer per file. With `stranded_of`, a name whose report is that job's own and
    /// whose file is missing is chosen too.
    fn choose_name(
        &self,
        dir: &Path,
        name: &OsStr,
        suffix: &str,
        attempt: &mut u32,
        stranded_of: Option<JobId>,
        job_id: JobId,
    ) -> Result<Chosen, FolderError> {
        let unique = job_id.to_string();
        while *attempt <= folders::MAX_NAME_ATTEMPTS + folders::UNIQUE_NAME_ATTEMPTS {
            let candidate = folders::candidate_name(name, *attempt, suffix.len(), &unique);
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
            // other's system calls. Only a job that may have published its report before a
            // crash looks: otherwise a report already there makes the publish fail with
            // `AlreadyExists` (nothing is replaced) and the next name is tried, so the
            // common case costs no `stat`.
            if reserved_here {
                if stranded_of.is_none() || !folders::exists(&report_path) {
                    return Ok(Chosen::Free(candidate));
                }
                self.release(&path, &report_path);
                if let Some(job_id) = stranded_of
                    && !folders::exists(&path)
                    && report_job_id(&report_path) == Some(job_id)
                {
                    return Ok(Chosen::Stranded(candidate));
                }
            }
            *attempt += 1;
        }
        Err(FolderError::Move {
            from: name.into(),
            to_dir: dir.to_path_buf(),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        })
    }

    fn release(&self, path: &Path, report_path: &Path) {
        let mut names = self.lock_names();
        names.reserved.remove(path);
        names.reserved.remove(report_path);
    }
}

enum Step {
    Taken,
    Failed(LifecycleError),
}

/// The `job_id` of the report at `path`, if it is one.
fn report_job_id(path: &Path) -> Option<JobId> {
    #[derive(Deserialize)]
    struct Stub {
        job_id: String,
    }
    let stub: Stub = crate::disk::report::read_back(path)?;
    JobId::from_string(&stub.job_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::{AnalysisOptions, Progress, analyze};
    use crate::disk::recover::Leftover;
    use std::time::SystemTime;

    fn setup() -> (tempfile::TempDir, Lifecycle) {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        (dir, Lifecycle::new(folders, false))
    }

    fn timing() -> Timing {
        let now = SystemTime::now();
        Timing {
            queued_at: now,
            started_at: now,
            finished_at: now,
        }
    }

    fn finish_claimed(lifecycle: &Lifecycle, leftover: &Leftover, after_crash: bool) -> Finished {
        let analysis = analyze(
            &leftover.path,
            &AnalysisOptions::default(),
            &Progress::silent(),
        );
        lifecycle
            .finish(
                &leftover.path,
                &leftover.original_name,
                leftover.job_id.expect("claimed name"),
                analysis,
                timing(),
                after_crash,
            )
            .expect("finish")
    }

    fn drop_and_finish(lifecycle: &Lifecycle, name: &str, content: &str) -> Finished {
        fs::write(lifecycle.folders.unprocessed.join(name), content).expect("write");
        let job_id = JobId::generate();
        let claimed = lifecycle
            .claim(job_id, OsStr::new(name))
            .expect("claim")
            .expect("present");
        let leftover = Leftover {
            path: claimed,
            job_id: Some(job_id),
            original_name: name.into(),
        };
        finish_claimed(lifecycle, &leftover, false)
    }

    #[test]
    fn claimed_names_carry_the_job_and_the_original_name() {
        let id = JobId::generate();
        let name = claimed_name(id, None, OsStr::new("my_data.csv"));
        let parsed = |node: Option<&str>, original: &str| ClaimedName {
            job_id: id,
            node: node.map(str::to_string),
            original: OsString::from(original),
        };
        assert_eq!(parse_claimed_name(&name), Some(parsed(None, "my_data.csv")));
        // A cluster node's claim says which node holds it; the name may hold the marks too.
        let name = claimed_name(id, Some("web-1:5000"), OsStr::new("a+b_c.csv"));
        assert_eq!(
            parse_claimed_name(&name),
            Some(parsed(Some("web-1:5000"), "a+b_c.csv"))
        );
        let long = "x".repeat(250) + ".csv";
        for node in [None, Some("n")] {
            let name = claimed_name(id, node, OsStr::new(&long));
            assert!(name.len() <= 255);
            assert_eq!(
                parse_claimed_name(&name).map(|c| (c.job_id, c.node)),
                Some((id, node.map(str::to_string)))
            );
        }
        for plain in [
            "data.csv",
            "_x",
            "not-a-ulid_x",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV_",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV++x",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV+n+",
        ] {
            assert_eq!(parse_claimed_name(OsStr::new(plain)), None, "{plain}");
        }
    }

    #[test]
    fn finishing_never_replaces_and_names_the_report_after_the_file() {
        let (_dir, lifecycle) = setup();
        fs::write(lifecycle.folders.processed.join("a.txt"), "mine").expect("write");
        let done = drop_and_finish(&lifecycle, "a.txt", "one\ntwo\n");
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
        // A taken report name makes the pair taken, even when the file name is free.
        fs::write(lifecycle.folders.processed.join("b.txt.report.json"), "{}").expect("write");
        let done = drop_and_finish(&lifecycle, "b.txt", "x\n");
        assert_eq!(done.path, lifecycle.folders.processed.join("b-2.txt"));
        // Found taken by the publish itself (no look first): the report there is left as it was.
        assert_eq!(
            fs::read_to_string(lifecycle.folders.processed.join("b.txt.report.json"))
                .expect("read"),
            "{}"
        );
        assert!(!lifecycle.folders.processed.join("b.txt").exists());
        let failed = drop_and_finish(&lifecycle, "c.json", "{broken");
        assert_eq!(
            failed.report_path,
            lifecycle.folders.failed.join("c.json.error.json")
        );
        assert!(
            fs::read_dir(&lifecycle.folders.underprocess)
                .expect("list")
                .next()
                .is_none()
        );
    }

    #[test]
    fn a_move_that_fails_withdraws_the_report_just_published() {
        let (_dir, lifecycle) = setup();
        let job_id = JobId::generate();
        // The claimed file is not there: the report is published, then the move fails.
        let claimed =
            lifecycle
                .folders
                .underprocess
                .join(claimed_name(job_id, None, OsStr::new("gone.txt")));
        let analysis = Analysis {
            kind: crate::analyze::Kind::Text,
            detected: None,
            compression: None,
            size_bytes: 0,
            hash: crate::analyze::hash::ContentHash::missing(Default::default()),
            details: Ok(None),
        };
        let failed = lifecycle.finish(
            &claimed,
            OsStr::new("gone.txt"),
            job_id,
            analysis,
            timing(),
            false,
        );
        let unfinished = failed.expect_err("no file to move");
        assert_eq!(
            unfinished.report.job_id,
            job_id.to_string(),
            "kept for later"
        );
        assert!(
            fs::read_dir(&lifecycle.folders.processed)
                .expect("list")
                .next()
                .is_none(),
            "no report without its file"
        );
    }

    #[test]
    fn after_a_crash_the_file_joins_its_published_report() {
        let (_dir, lifecycle) = setup();
        let processed = &lifecycle.folders.processed;
        fs::write(processed.join("log.txt"), "someone else's").expect("write");
        fs::write(processed.join("log.txt.report.json"), "{}").expect("write");
        // The state a crash between publishing the report and the move leaves.
        let job_id = JobId::generate();
        let claimed =
            lifecycle
                .folders
                .underprocess
                .join(claimed_name(job_id, None, OsStr::new("log.txt")));
        fs::write(&claimed, "line\n").expect("write");
        let stranded = format!("{{\"job_id\": \"{job_id}\", \"file\": \"log-2.txt\"}}\n");
        fs::write(processed.join("log-2.txt.report.json"), &stranded).expect("write");
        fs::write(processed.join(".fp-upload.tmp"), "partial").expect("write");

        let recovered = crate::disk::recover::recover(&lifecycle.folders, None).expect("recover");
        assert_eq!(recovered.removed, 1);
        assert_eq!(recovered.requeue.len(), 1);
        let leftover = &recovered.requeue[0];
        assert_eq!(leftover.job_id, Some(job_id));
        assert_eq!(leftover.original_name, OsString::from("log.txt"));

        let done = finish_claimed(&lifecycle, leftover, true);
        assert_eq!(done.path, processed.join("log-2.txt"));
        assert_eq!(fs::read_to_string(&done.path).expect("read"), "line\n");
        // The report published before the crash is the one: no second report.
        assert_eq!(
            fs::read_to_string(processed.join("log-2.txt.report.json")).expect("read"),
            stranded
        );
        let mut names: Vec<_> = fs::read_dir(processed)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "log-2.txt",
                "log-2.txt.report.json",
                "log.txt",
                "log.txt.report.json"
            ]
        );
    }
}
