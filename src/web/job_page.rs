//! `GET /jobs/{id}`: one job's page, its report as tables (text counts and log levels, CSV
//! facts, columns and top users as bars, JSON facts), from the registry and the report on disk.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use crate::disk::folders::Folders;
use crate::disk::report::human_bytes;
use crate::job::JobState;
use crate::store::JobStore;
use crate::web::api::{ApiError, find_job, read_report};

pub struct BarRow {
    pub label: String,
    pub value: u64,
    /// Of the largest value, 0–100.
    pub percent: u64,
}

pub struct ColumnRow {
    pub name: String,
    pub kind: String,
    pub non_empty: String,
    pub distinct: String,
    pub min: String,
    pub max: String,
    pub mean: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    id: String,
    file: String,
    /// A failed job gets a retry button.
    failed: bool,
    facts: Vec<(String, String)>,
    error: String,
    text: Vec<(String, String)>,
    levels: Vec<BarRow>,
    csv: Vec<(String, String)>,
    columns: Vec<ColumnRow>,
    top_users: Vec<BarRow>,
    json: Vec<(String, String)>,
}

/// A JSON value as table text: strings bare, null as a dash.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn facts(section: &Value, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|key| section.get(*key).map(|v| (key.replace('_', " "), shown(v))))
        .collect()
}

fn bars(items: impl Iterator<Item = (String, u64)>) -> Vec<BarRow> {
    let items: Vec<(String, u64)> = items.collect();
    let most = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    items
        .into_iter()
        .map(|(label, value)| BarRow {
            label,
            value,
            percent: value * 100 / most,
        })
        .collect()
}

pub async fn job_page(
    store: web::Data<dyn JobStore>,
    folders: web::Data<Folders>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = find_job(&store, id.into_inner()).await?;
    let report: Value = read_report(&folders, &job).await.unwrap_or(Value::Null);
    let file = job.file.to_string_lossy().into_owned();
    let state = job.state.as_str().to_string();
    let mut page = JobPage {
        id: job.id.to_string(),
        file: file.clone(),
        failed: job.state == JobState::Failed,
        facts: vec![
            ("state".into(), state),
            ("file".into(), file),
            (
                "original name".into(),
                job.original_name.to_string_lossy().into_owned(),
            ),
            ("size".into(), human_bytes(job.size_bytes)),
        ],
        error: String::new(),
        text: Vec::new(),
        levels: Vec::new(),
        csv: Vec::new(),
        columns: Vec::new(),
        top_users: Vec::new(),
        json: Vec::new(),
    };
    page.facts.extend(facts(
        &report,
        &[
            "kind",
            "sha256",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
        ],
    ));
    if let Some(error) = report.get("error").filter(|e| !e.is_null()) {
        page.error = format!("{}: {}", shown(&error["kind"]), shown(&error["message"]));
    }
    if let Some(text) = report.get("text") {
        page.text = facts(
            text,
            &["lines", "words", "chars", "blank_lines", "max_line_bytes"],
        );
        if let Some(levels) = text.get("log_levels").and_then(Value::as_object) {
            page.levels = bars(
                levels
                    .iter()
                    .map(|(level, n)| (level.clone(), n.as_u64().unwrap_or(0))),
            );
        }
    }
    if let Some(csv) = report.get("csv") {
        page.csv = facts(
            csv,
            &[
                "delimiter",
                "rows",
                "malformed_rows",
                "user_column",
                "distinct_users",
            ],
        );
        if let Some(columns) = csv.get("columns").and_then(Value::as_array) {
            page.columns = columns
                .iter()
                .map(|c| ColumnRow {
                    name: shown(&c["name"]),
                    kind: shown(&c["type"]),
                    non_empty: shown(&c["non_empty"]),
                    distinct: if c["distinct_approx"] == Value::Bool(true) {
                        format!("≈{}", shown(&c["distinct"]))
                    } else {
                        shown(&c["distinct"])
                    },
                    min: shown(&c["min"]),
                    max: shown(&c["max"]),
                    mean: shown(&c["mean"]),
                })
                .collect();
        }
        if let Some(users) = csv.get("top_users").and_then(Value::as_array) {
            page.top_users = bars(
                users
                    .iter()
                    .map(|u| (shown(&u["user"]), u["rows"].as_u64().unwrap_or(0))),
            );
        }
    }
    if let Some(json) = report.get("json") {
        page.json = facts(json, &["format", "valid", "top_level", "records", "keys"]);
    }
    Ok(super::html(page.render(), "the job page"))
}
