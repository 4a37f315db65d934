//! The JSON report of a job (SPEC §4) and its human summary.
//!
//! Field names are a stable contract: scripts and the dashboard read them. A report is written
//! once, atomically, beside the file it describes (`NAME.report.json` in `processed/`,
//! `NAME.error.json` in `failed/`), and never rewritten.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::analyze::compressed::CompressionReport;
use crate::analyze::hash::ContentHash;
use crate::analyze::{Analysis, Details, Kind};
pub use crate::job::ErrorInfo;
use crate::job::JobSummary;

pub const REPORT_SUFFIX: &str = ".report.json";

/// A report larger than this is not read back (ours are far smaller).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// A report is never larger than this: its longest lists are cut, each with a `*_truncated`
/// flag, so that the API and the job page can always read it back whole.
pub const MAX_REPORT_JSON_BYTES: usize = 1 << 20;

/// Reads a report (or the part of it `T` describes) back from disk; `None` when it is missing,
/// too large or not such JSON.
pub fn read_back<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_REPORT_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
pub const ERROR_SUFFIX: &str = ".error.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Completed,
    Failed,
}

impl Status {
    /// The word the report's `status` field carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// The suffix of the report written beside a file that ended in this state.
    pub fn report_suffix(self) -> &'static str {
        match self {
            Status::Completed => REPORT_SUFFIX,
            Status::Failed => ERROR_SUFFIX,
        }
    }
}

/// When a job was queued, started and finished.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub queued_at: SystemTime,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub job_id: String,
    /// The file's name now (in `processed/` or `failed/`).
    pub file: String,
    /// The name it arrived with.
    pub original_name: String,
    pub status: Status,
    pub kind: Kind,
    /// What the first bytes say the file is (`zip`, `gzip`, `pdf`, `text`, `unknown`, ...).
    pub detected: String,
    pub size_bytes: u64,
    /// `sha256`, `blake3`, or no field (`--hash`).
    #[serde(flatten)]
    pub hash: ContentHash,
    pub queued_at: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// The same duration in microseconds (absent from reports written before it existed).
    #[serde(default)]
    pub duration_us: u64,
    /// A compressed file's format and sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionReport>,
    /// The kind's section, under its own field (`text`, `csv`, `json`).
    #[serde(flatten)]
    pub details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// With `--redis`: the node that ran the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A time as the reports and the API write it: RFC 3339, UTC, to the millisecond.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

impl Report {
    pub fn new(
        job_id: String,
        file: &OsStr,
        original_name: &OsStr,
        analysis: Analysis,
        timing: Timing,
    ) -> Report {
        let duration = timing
            .finished_at
            .duration_since(timing.started_at)
            .unwrap_or_default();
        let mut report = Report {
            job_id,
            file: file.to_string_lossy().into_owned(),
            original_name: original_name.to_string_lossy().into_owned(),
            status: Status::Completed,
            kind: analysis.kind,
            detected: analysis.detected.unwrap_or_else(|| "unknown".to_string()),
            size_bytes: analysis.size_bytes,
            hash: analysis.hash,
            queued_at: rfc3339(timing.queued_at),
            started_at: rfc3339(timing.started_at),
            finished_at: rfc3339(timing.finished_at),
            duration_ms: duration.as_millis() as u64,
            duration_us: duration.as_micros() as u64,
            compression: analysis.compression,
            details: None,
            error: None,
            node: None,
        };
        match analysis.details {
            Ok(details) => report.details = details,
            Err(err) => {
                report.status = Status::Failed;
                report.error = Some(ErrorInfo {
                    kind: err.kind(),
                    message: err.to_string(),
                });
            }
        }
        report.fit(MAX_REPORT_JSON_BYTES);
        report
    }

    /// Cuts the section's longest lists (CSV columns, top users) until the JSON fits in
    /// `max` bytes. Every string in a report is already short (values and names are cut at
    /// 256 bytes), so only lists can make it large.
    fn fit(&mut self, max: usize) {
        if self
            .details
            .as_ref()
            .is_none_or(|details| details.section().longest_list() < 64)
        {
            return; // far below the limit: not worth serialising to find out
        }
        loop {
            let size = self.to_json().len();
            let Some(details) = self.details.as_mut().filter(|_| size > max) else {
                return;
            };
            // Keep the share of each list that fits, with a margin, and look again.
            let share = max as f64 * 0.9 / size as f64;
            if !details.section_mut().cut_lists(share) {
                return;
            }
        }
    }

    /// What the job store keeps of this report.
    pub fn job_summary(&self) -> JobSummary {
        JobSummary {
            kind: self.kind,
            duration_ms: self.duration_ms,
            duration_us: self.duration_us,
            error: self.error.clone(),
            figure: self
                .details
                .as_ref()
                .map(|details| details.section().figure()),
        }
    }

    pub fn to_json(&self) -> String {
        // A report holds only strings, numbers and finite floats: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|err| {
            format!(
                "{{\"job_id\":{:?},\"error\":\"report encoding: {err}\"}}",
                self.job_id
            )
        })
    }

    /// A few lines for a person at a terminal.
    pub fn summary(&self, file_path: &Path, report_path: &Path) -> String {
        let mut out = String::new();
        let status = self.status.as_str();
        let _ = writeln!(
            out,
            "{status}: {} -> {}",
            self.original_name,
            file_path.display()
        );
        let _ = writeln!(
            out,
            "  {} · {} · {} ms{}",
            self.kind.as_str(),
            human_bytes(self.size_bytes),
            self.duration_ms,
            match self.hash.algorithm.field() {
                Some(name) => format!(" · {name} {}", self.hash.hex.as_deref().unwrap_or("-")),
                None => String::new(),
            },
        );
        if let Some(compression) = &self.compression {
            let ratio = compression.unpacked_bytes as f64 / compression.packed_bytes.max(1) as f64;
            let _ = writeln!(
                out,
                "  {}: {} → {} ({ratio:.1}:1)",
                compression.format.as_str(),
                human_bytes(compression.packed_bytes),
                human_bytes(compression.unpacked_bytes),
            );
        }
        if let Some(details) = &self.details {
            for line in details.section().summary_lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if let Some(error) = &self.error {
            let _ = writeln!(out, "  error ({}): {}", error.kind, error.message);
        }
        let _ = writeln!(out, "  report: {}", report_path.display());
        out
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::AnalysisError;
    use std::time::Duration;

    fn timing() -> Timing {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Timing {
            queued_at: start,
            started_at: start,
            finished_at: start + Duration::from_millis(1500),
        }
    }

    #[test]
    fn failed_report_has_the_error_object() {
        let analysis = Analysis {
            kind: Kind::Json,
            detected: None,
            compression: None,
            size_bytes: 3,
            hash: ContentHash {
                algorithm: crate::analyze::hash::HashAlgorithm::Sha256,
                hex: Some("ab".into()),
            },
            details: Err(AnalysisError::invalid(Kind::Json, "invalid JSON: x")),
        };
        let report = Report::new(
            "01J".into(),
            OsStr::new("a-2.json"),
            OsStr::new("a.json"),
            analysis,
            timing(),
        );
        let value: serde_json::Value =
            serde_json::from_str(&report.to_json()).expect("report is JSON");
        assert_eq!(value["status"], "failed");
        assert_eq!(value["error"]["kind"], "invalid_json");
        assert_eq!(value["file"], "a-2.json");
        assert_eq!(value["original_name"], "a.json");
        assert_eq!(value["duration_ms"], 1500);
        assert_eq!(value["duration_us"], 1_500_000);
        assert_eq!(value["queued_at"], "2023-11-14T22:13:20.000Z");
        assert!(value.get("json").is_none());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
