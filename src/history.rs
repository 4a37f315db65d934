//! Reloads the registry's history at start from the reports on disk, so that the dashboard
//! survives a restart.
//!
//! It lists `processed/` and `failed/` once, counts every report (the all-time counters), and
//! reads back only the newest `--history` of them (by modification time), each through a
//! small stub of the report's fields. It never writes, and a report it cannot read is skipped.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::analyze::Kind;
use crate::folders::Folders;
use crate::registry::{JobId, JobSnapshot, JobState, JobSummary};
use crate::report::{self, ERROR_SUFFIX, ErrorInfo, REPORT_SUFFIX, Status};

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
    error: Option<ErrorInfo>,
    text: Option<CountStub>,
    csv: Option<CountStub>,
    json: Option<CountStub>,
}

/// The key figure of a report's section, whatever its name there.
#[derive(Deserialize)]
struct CountStub {
    #[serde(alias = "rows", alias = "records")]
    lines: Option<u64>,
}

/// Reads back the newest `limit` reports of `folders`.
pub fn load(folders: &Folders, limit: usize) -> History {
    let mut history = History::default();
    let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
    for (dir, suffix) in [
        (&folders.processed, REPORT_SUFFIX),
        (&folders.failed, ERROR_SUFFIX),
    ] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !is_report_name(&name, suffix) {
                continue;
            }
            if suffix == REPORT_SUFFIX {
                history.completed += 1;
            } else {
                history.failed += 1;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((modified, entry.path()));
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
    history.jobs = found
        .into_iter()
        .filter_map(|(_, path)| {
            let job = read(&path);
            if job.is_none() {
                log::debug!(
                    "{} is not a readable report; not in the history",
                    path.display()
                );
            }
            job
        })
        .collect();
    history
}

fn is_report_name(name: &OsStr, suffix: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.len() > suffix.len() && bytes.ends_with(suffix.as_bytes())
}

fn read(path: &Path) -> Option<JobSnapshot> {
    let stub: ReportStub = report::read_back(path)?;
    let time = |text: &str| humantime::parse_rfc3339(text).ok();
    Some(JobSnapshot {
        id: JobId::from_string(&stub.job_id).ok()?,
        original_name: stub.original_name,
        file: stub.file,
        size_bytes: stub.size_bytes,
        state: match stub.status {
            Status::Completed => JobState::Completed,
            Status::Failed => JobState::Failed,
        },
        queued_at: time(&stub.queued_at)?,
        started_at: time(&stub.started_at),
        finished_at: time(&stub.finished_at),
        progress: None,
        summary: Some(JobSummary {
            kind: stub.kind,
            duration_ms: stub.duration_ms,
            error: stub.error,
            count: [stub.text, stub.csv, stub.json]
                .into_iter()
                .flatten()
                .find_map(|section| section.lines),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: JobId, file: &str, status: &str, finished: &str) -> String {
        format!(
            r#"{{"job_id": "{id}", "file": "{file}", "original_name": "{file}",
                "status": "{status}", "kind": "text", "size_bytes": 3, "sha256": null,
                "queued_at": "2026-11-22T10:00:00.000Z", "started_at": "2026-11-22T10:00:00.000Z",
                "finished_at": "{finished}", "duration_ms": 1}}"#
        )
    }

    #[test]
    fn the_newest_reports_come_back_and_all_are_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folders = Folders::create(dir.path()).expect("folders");
        let ids: Vec<JobId> = (0..4).map(|_| JobId::generate()).collect();
        for (i, id) in ids.iter().enumerate() {
            let name = format!("f{i}.txt");
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
        fs::write(folders.processed.join("junk.report.json"), "not json").expect("write");
        fs::write(folders.processed.join("f0.txt"), "abc").expect("write");

        let history = load(&folders, 3);
        assert_eq!((history.completed, history.failed), (5, 1));
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
}
