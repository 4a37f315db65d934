//! The job vocabulary every stage shares: a job's id, its state, what is kept of it
//! (`JobSnapshot`, `JobSummary`) and the counts. Plain data: nothing here stores, moves or
//! reads anything, so a module that only needs to name a job imports this, not the store.

use std::ffi::OsString;
use std::str::FromStr;
use std::time::SystemTime;

use serde::Serialize;

use crate::analyze::Kind;
use crate::analyze::section::Figure;

/// A job's id: a ULID (sortable by time; 16 bytes, no allocation). Reports carry it as text.
pub type JobId = ulid::Ulid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl JobState {
    /// Every state, in the order a job goes through them.
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Processing,
        JobState::Completed,
        JobState::Failed,
    ];

    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }
}

/// A state name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}: use queued, processing, completed or failed")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    /// The API's names; `processed` is accepted for `completed` (the dashboard's word).
    fn from_str(name: &str) -> Result<JobState, UnknownState> {
        match name {
            "processed" => Ok(JobState::Completed),
            _ => JobState::ALL
                .into_iter()
                .find(|state| state.as_str() == name)
                .ok_or_else(|| UnknownState(name.to_string())),
        }
    }
}

/// What the store keeps of a finished job's report (the rest is in the report on disk,
/// beside the file): small, so that the history costs little.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobSummary {
    pub kind: Kind,
    pub duration_ms: u64,
    /// The same to the microsecond (0 from a node that did not send it).
    #[serde(default)]
    pub duration_us: u64,
    pub error: Option<ErrorInfo>,
    /// The key figure of its kind's section (lines, rows, records), if it has one.
    #[serde(skip)]
    pub figure: Option<Figure>,
}

/// Why a job failed, as its report says: a stable `kind` and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    pub kind: String,
    pub message: String,
}

/// Why a job cannot be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryRefused {
    /// Not in the store (never seen, or older than the history).
    Unknown,
    /// Only a failed job can be retried.
    NotFailed(JobState),
}

/// Files and bytes finished in one minute.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Finished jobs of one kind in the history, as the dashboard counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub kind: crate::analyze::Kind,
    pub completed: usize,
    pub failed: usize,
}

/// Minutes of throughput kept.
pub const THROUGHPUT_MINUTES: usize = 30;

/// A copy of one job as it is now.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub id: JobId,
    /// Names are the bytes on disk (not always UTF-8): views show them lossily, paths use
    /// them as they are.
    pub original_name: OsString,
    /// The name now: in `unprocessed/`, `underprocess/`, then `processed/` or `failed/`.
    pub file: OsString,
    pub size_bytes: u64,
    pub state: JobState,
    pub queued_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Chunks done and total while processing.
    pub progress: Option<(u64, u64)>,
    pub summary: Option<JobSummary>,
    /// Times its finish failed (a full disk, a folder gone); it waits and is tried again.
    pub attempts: u32,
    /// Why its last finish failed, while it waits to be tried again.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub processing: usize,
    /// All time: the reports on disk at start, plus those finished since (not only those
    /// still in the history).
    pub completed: u64,
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_serialized_ones_and_parse_back() {
        for state in JobState::ALL {
            assert_eq!(
                serde_json::to_value(state).ok(),
                Some(state.as_str().into())
            );
            assert_eq!(state.as_str().parse(), Ok(state));
        }
        assert_eq!("processed".parse(), Ok(JobState::Completed));
        assert!("done".parse::<JobState>().is_err());
    }
}
