//! `GET /jobs/{id}`: one job's page: its facts from the store, and its report's section as the
//! tables its analyzer gives (`Section::tables`), read from the report on disk.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use crate::analyze::Details;
use crate::analyze::section::{Table, shown};
use crate::disk::folders::Folders;
use crate::disk::report::human_bytes;
use crate::job::JobState;
use crate::store::JobStore;
use crate::web::api::{find_job, read_report};
use crate::web::error::ApiError;

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    id: String,
    file: String,
    /// A failed job gets a retry button.
    failed: bool,
    facts: Vec<(String, String)>,
    error: String,
    tables: Vec<Table>,
}

/// The report's fields shown among the job's facts.
const REPORT_FACTS: [&str; 9] = [
    "kind",
    "detected",
    "sha256",
    "blake3",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "duration_us",
];

pub async fn job_page(
    store: web::Data<dyn JobStore>,
    folders: web::Data<Folders>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = find_job(&store, id.into_inner()).await?;
    let report: Value = read_report(&folders, &job).await.unwrap_or(Value::Null);
    let file = job.file.to_string_lossy().into_owned();
    let mut facts = vec![
        ("state".to_string(), job.state.as_str().to_string()),
        ("file".to_string(), file.clone()),
        (
            "original name".to_string(),
            job.original_name.to_string_lossy().into_owned(),
        ),
        ("size".to_string(), human_bytes(job.size_bytes)),
    ];
    facts.extend(REPORT_FACTS.iter().filter_map(|key| {
        report
            .get(*key)
            .map(|value| (key.replace('_', " "), shown(value)))
    }));
    if let Some(compression) = report.get("compression").filter(|c| c.is_object()) {
        let packed = compression["packed_bytes"].as_u64().unwrap_or(0);
        let unpacked = compression["unpacked_bytes"].as_u64().unwrap_or(0);
        facts.push((
            "compression".to_string(),
            format!(
                "{}: {} → {} ({:.1}:1)",
                shown(&compression["format"]),
                human_bytes(packed),
                human_bytes(unpacked),
                unpacked as f64 / packed.max(1) as f64
            ),
        ));
    }
    let error = report
        .get("error")
        .filter(|error| !error.is_null())
        .map_or(String::new(), |error| {
            format!("{}: {}", shown(&error["kind"]), shown(&error["message"]))
        });
    let tables = Details::of_report(&report)
        .map(|details| details.section().tables())
        .unwrap_or_default()
        .into_iter()
        .filter(|table| !table.is_empty())
        .collect();
    let page = JobPage {
        id: job.id.to_string(),
        file,
        failed: job.state == JobState::Failed,
        facts,
        error,
        tables,
    };
    Ok(super::html(page.render(), "the job page"))
}
