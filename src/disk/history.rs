//! Reloads the job store's history at start from the reports on disk, so that the dashboard
//! survives a restart.
//!
//! It lists `processed/` and `failed/` once, counts every report (the all-time counters), and
//! reads back only the newest `--history` of them (by modification time), each through a
//! small stub of the report's fields. It never writes, and a report it cannot read is skipped.
//!
//! What is in those folders is data anyone may have dropped or uploaded, so a name ending in
//! `.report.json` is not yet a report. It counts only when the file it describes is beside it:
//! `NAME.report.json` next to a regular file `NAME` (and its `file` field says `NAME`, its
//! `status` matches the folder). Dropping or uploading files cannot forge such a pair: the
//! daemon places a user's file at `NAME` only after publishing `NAME.report.json` itself (the
//! report is linked first, never replacing, and a taken report name makes the pair taken), and
//! it publishes a report at `R` only when `R` is free; so a user's file that lands at
//! `NAME.report.json` has no `NAME` beside it (a later `NAME` is given `NAME-2`), and a user's
//! file never sits where the daemon's report for `NAME` does. The job's names come from the
//! directory entry, not from the report's text: one path component, the bytes on disk.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;

use crate::analyze::{Details, Kind};
use crate::disk::folders::{self, Folders};
use crate::disk::report::{self, ErrorInfo, Status};
use crate::job::{JobId, JobSnapshot, JobState, JobSummary};

/// The finished jobs to restore, oldest first, and the all-time counts of reports on disk.
#[derive(Default)]
pub struct History {
    pub jobs: Vec<JobSnapshot>,
    pub completed: u64,
    pub failed: u64,
}

#[derive(Deserialize)]
struct ReportStub {
    job_id: String,
    file: String,
    original_name: String,
    status: Status,
    kind: Kind,
    size_bytes: u64,
    queued_at: String,
    started_at: String,
    finished_at: String,
    duration_ms: u64,
    /// Reports written before it had only `duration_ms`.
    #[serde(default)]
    duration_us: Option<u64>,
    error: Option<ErrorInfo>,
    /// The cluster node that wrote it (cluster mode only).
    #[serde(default)]
    node: Option<String>,
    /// The kind's section, whichever it is (a section that does not read back as its kind's
    /// is left out: the job is restored without its figure).
    #[serde(flatten, deserialize_with = "lenient")]
    details: Option<Details>,
}

fn lenient<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Details>, D::Error> {
    Ok(Option::<Details>::deserialize(deserializer).unwrap_or(None))
}

/// Reads back the newest `limit` reports of `folders`.
pub fn load(folders: &Folders, limit: usize) -> History {
    let mut history = History::default();
    let mut found = pairs(folders, None);
    for (_, found) in &found {
        match found.status {
            Status::Completed => history.completed += 1,
            Status::Failed => history.failed += 1,
        }
    }
    if limit == 0 {
        found.clear();
    } else if found.len() > limit {
        let older = found.len() - limit;
        found.select_nth_unstable_by_key(older, |(modified, _)| *modified);
        found.drain(..older);
    }
    found.sort_by_key(|(modified, _)| *modified);
    let mut jobs = Vec::with_capacity(found.len());
    for (_, found) in found {
        match read(&found) {
            Some((job, _)) => jobs.push(job),
            None => {
                log::debug!(
                    "{} is not a readable report of {}; not counted",
                    found.path.display(),
                    found.file.to_string_lossy()
                );
                match found.status {
                    Status::Completed => history.completed -= 1,
                    Status::Failed => history.failed -= 1,
                }
            }
        }
    }
    history.jobs = jobs;
    history
}

/// The finished jobs whose reports node `node` wrote at or after `after`, oldest first (a
/// cluster node that died may not have told the others about its last finishes: they are
/// read back from its reports).
pub fn written_since(folders: &Folders, after: SystemTime, node: &str) -> Vec<JobSnapshot> {
    let mut found = pairs(folders, Some(after));
    found.sort_by_key(|(modified, _)| *modified);
    found
        .into_iter()
        .filter_map(|(_, found)| read(&found))
        .filter(|(_, by)| by.as_deref() == Some(node))
        .map(|(job, _)| job)
        .collect()
}

/// Every report beside the file it describes in `processed/` and `failed/` (modified at or
/// after `after`, when given), with its modification time.
fn pairs(folders: &Folders, after: Option<SystemTime>) -> Vec<(SystemTime, Found)> {
    let mut found: Vec<(SystemTime, Found)> = Vec::new();
    for (dir, status) in [
        (&folders.processed, Status::Completed),
        (&folders.failed, Status::Failed),
    ] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(file) = described_file(&name, status.report_suffix()) else {
                continue;
            };
            // The pair: the report names a regular file beside it.
            let beside = fs::symlink_metadata(dir.join(&file)).is_ok_and(|m| m.is_file());
            if !beside {
                log::debug!(
                    "{} has no file {} beside it: not a report",
                    entry.path().display(),
                    file.to_string_lossy()
                );
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if after.is_some_and(|after| modified < after) {
                continue;
            }
            found.push((
                modified,
                Found {
                    path: entry.path(),
                    file,
                    status,
                },
            ));
        }
    }
    found
}

/// A report candidate: its path, the file it describes, and the folder's status.
struct Found {
    path: PathBuf,
    file: OsString,
    status: Status,
}

/// `NAME` for a directory entry `NAME` + `suffix`, when `NAME` is one visible path component.
fn described_file(name: &OsStr, suffix: &str) -> Option<OsString> {
    let bytes = name.as_bytes();
    let file = bytes.strip_suffix(suffix.as_bytes())?;
    let file = OsStr::from_bytes(file);
    (folders::is_single_component(file) && !file.as_bytes().starts_with(b"."))
        .then(|| file.to_os_string())
}

/// The job a report describes, and the node that wrote it.
fn read(found: &Found) -> Option<(JobSnapshot, Option<String>)> {
    let stub: ReportStub = report::read_back(&found.path)?;
    // The report must describe the file it stands beside, in the folder of its status.
    if stub.status != found.status || stub.file != found.file.to_string_lossy() {
        return None;
    }
    let time = |text: &str| humantime::parse_rfc3339(text).ok();
    let job = JobSnapshot {
        id: JobId::from_string(&stub.job_id).ok()?,
        // A report holds names as text; a name that was not UTF-8 comes back lossy there and
        // must not become a path (retry puts the file back under it): the name on disk then
        // stands for it.
        original_name: if stub.original_name.contains(char::REPLACEMENT_CHARACTER) {
            found.file.clone()
        } else {
            OsString::from(stub.original_name)
        },
        file: found.file.clone(),
        size_bytes: stub.size_bytes,
        state: match stub.status {
            Status::Completed => JobState::Completed,
            Status::Failed => JobState::Failed,
        },
        queued_at: time(&stub.queued_at)?,
        started_at: time(&stub.started_at),
        finished_at: time(&stub.finished_at),
        progress: None,
        attempts: 0,
        last_error: None,
        summary: Some(JobSummary {
            kind: stub.kind,
            duration_ms: stub.duration_ms,
            duration_us: stub
                .duration_us
                .unwrap_or(stub.duration_ms.saturating_mul(1000)),
            error: stub.error,
            figure: stub
                .details
                .as_ref()
                .map(|details| details.section().figure()),
        }),
    };
    Some((job, stub.node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::report::REPORT_SUFFIX;

    fn report(id: JobId, file: &str, status: &str, finished: &str) -> String {
        format!(
            r#"{{"job_id": "{id}", "file": "{file}", "original_name": "{file}",
                "status": "{status}", "kind": "text", "size_bytes": 3, "sha256": null,
                "queued_at": "2026-11-22T10:00:00.000Z", "started_at": "2026-11-22T10:00:00.000Z",
                "finished_at": "{finished}", "duration_ms": 1}}"#
        )
    }

    /// A report with `section` spliced in after `duration_ms`.
    fn report_with(id: JobId, file: &str, section: &str) -> String {
        let plain = report(id, file, "completed", "2026-11-22T10:00:01.000Z");
        format!("{}, {section}}}", plain.trim_end_matches('}'))
    }

    #[test]
    fn a_restored_job_keeps_its_sections_figure_and_a_bad_section_costs_only_that() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let sections = [
            (
                "a.log",
                r#""text": {"lines": 7, "words": 9, "chars": 40, "blank_lines": 0,
                    "max_line_bytes": 10, "log_levels": {"ERROR": 2}}"#,
                Some("7 lines"),
            ),
            (
                "b.json",
                r#""json": {"format": "lines", "top_level": "object", "records": 12,
                    "keys": ["a"]}"#,
                Some("12 records"),
            ),
            ("c.log", r#""text": {"lines": "not a number"}"#, None),
        ];
        for (file, section, _) in sections {
            fs::write(folders.processed.join(file), "x").expect("write");
            fs::write(
                folders.processed.join(format!("{file}{REPORT_SUFFIX}")),
                report_with(JobId::generate(), file, section),
            )
            .expect("write");
        }
        let history = load(&folders, 10);
        assert_eq!(history.jobs.len(), 3, "every report is restored");
        for (file, _, figure) in sections {
            let job = history
                .jobs
                .iter()
                .find(|job| job.file == file)
                .expect("restored");
            let shown = job
                .summary
                .as_ref()
                .and_then(|summary| summary.figure)
                .map(|figure| figure.to_string());
            assert_eq!(shown.as_deref(), figure, "{file}");
        }
    }

    #[test]
    fn the_newest_reports_come_back_and_all_are_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let ids: Vec<JobId> = (0..4).map(|_| JobId::generate()).collect();
        for (i, id) in ids.iter().enumerate() {
            let name = format!("f{i}.txt");
            fs::write(folders.processed.join(&name), "abc").expect("write");
            let path = folders.processed.join(format!("{name}.report.json"));
            fs::write(
                &path,
                report(*id, &name, "completed", "2026-11-22T10:00:01.000Z"),
            )
            .expect("write");
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(when))
                .expect("mtime");
        }
        fs::write(folders.failed.join("bad.json"), "{").expect("write");
        fs::write(
            folders.failed.join("bad.json.error.json"),
            report(
                JobId::generate(),
                "bad.json",
                "failed",
                "2026-11-22T10:00:02.000Z",
            ),
        )
        .expect("write");
        fs::write(folders.processed.join("junk"), "data").expect("write");
        fs::write(folders.processed.join("junk.report.json"), "not json").expect("write");

        let history = load(&folders, 3);
        // junk.report.json stands beside junk, but is no report of it: not counted.
        assert_eq!((history.completed, history.failed), (4, 1));
        let restored: Vec<JobId> = history.jobs.iter().map(|job| job.id).collect();
        // The three newest by mtime, oldest first (the failed one and junk are newer than
        // f0..f3's fixed mtimes; junk is not readable and is skipped).
        assert_eq!(restored.len(), 2, "{}", restored.len());
        assert!(history.jobs.iter().any(|job| job.state == JobState::Failed));
        assert!(restored.contains(&ids[3]));

        // No history kept: nothing read back, every report still counted.
        let none = load(&folders, 0);
        assert!(none.jobs.is_empty());
        assert_eq!((none.completed, none.failed), (5, 1));
    }

    #[test]
    fn a_report_counts_only_beside_the_file_it_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let processed = &folders.processed;
        let done = "2026-11-22T10:00:01.000Z";
        // A user's file that looks like a report, with nothing called `planted` beside it.
        fs::write(
            processed.join("planted.report.json"),
            report(JobId::generate(), "../../victim/secret.txt", "failed", done),
        )
        .expect("write");
        // A report whose `file` is not the name it stands beside.
        fs::write(processed.join("a.txt"), "a").expect("write");
        fs::write(
            processed.join("a.txt.report.json"),
            report(JobId::generate(), "../a.txt", "completed", done),
        )
        .expect("write");
        // A failed report in processed/.
        fs::write(processed.join("b.txt"), "b").expect("write");
        fs::write(
            processed.join("b.txt.report.json"),
            report(JobId::generate(), "b.txt", "failed", done),
        )
        .expect("write");
        // A report beside a folder, not a file.
        fs::create_dir(processed.join("sub")).expect("mkdir");
        fs::write(
            processed.join("sub.report.json"),
            report(JobId::generate(), "sub", "completed", done),
        )
        .expect("write");
        // A non-UTF-8 name: the job's file is the name on disk, not its lossy text.
        let raw = OsStr::from_bytes(b"caf\xe9.txt");
        fs::write(processed.join(raw), "c").expect("write");
        let mut report_name = raw.to_os_string();
        report_name.push(REPORT_SUFFIX);
        let id = JobId::generate();
        fs::write(
            processed.join(&report_name),
            report(id, &raw.to_string_lossy(), "completed", done),
        )
        .expect("write");

        let history = load(&folders, 100);
        assert_eq!((history.completed, history.failed), (1, 0));
        assert_eq!(history.jobs.len(), 1);
        assert_eq!(history.jobs[0].id, id);
        assert_eq!(history.jobs[0].file, raw);
    }
}
