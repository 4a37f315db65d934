//! `GET /`: the dashboard (askama), and the script that keeps it live.
//!
//! The page is complete without JavaScript, upload and retry forms included (they come back
//! to the page). With it, `static/dashboard.js` listens to `/api/events?changes=250` and, when
//! jobs changed (at most four times a second), fetches the page's live part (`?fragment=1`) and
//! swaps it in: no reload, no polling. It also uploads dropped files with a progress bar each
//! and follows "my uploads", the job ids this browser got, kept in its localStorage. Assets are
//! compiled into the binary: nothing comes from a CDN.

use std::time::SystemTime;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::disk::report::human_bytes;
use crate::health::{FinishTrouble, Health, Liveness};
use crate::job::{Counts, JobSnapshot, JobState, Minute};
use crate::store::JobStore;
use crate::web::ask;
use crate::web::auth::Auth;
use crate::web::error::ApiError;

/// Rows of the processed list per page.
const PAGE_ROWS: usize = 50;
/// Rows shown of the queued, running and failed lists.
const LIST_ROWS: usize = 100;
/// Throughput is averaged over this many recent minutes.
const RATE_MINUTES: usize = 5;

const SCRIPT: &str = include_str!("../../static/dashboard.js");

/// One job as a table row: everything already formatted.
pub struct Row {
    pub id: String,
    pub file: String,
    pub original: String,
    pub kind: String,
    pub size: String,
    pub figure: String,
    pub duration: String,
    pub when: String,
    pub progress_done: u64,
    pub progress_total: u64,
    pub percent: u64,
    pub error: String,
}

pub struct Bar {
    pub x: usize,
    pub height: u64,
    pub label: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    fragment: bool,
    /// With `--token`: a sign-out button.
    signed_in: bool,
    counts: Counts,
    last: Option<Row>,
    queued: Vec<Row>,
    processing: Vec<Row>,
    processed: Vec<Row>,
    failed: Vec<Row>,
    page: usize,
    pages: usize,
    throughput: Vec<Bar>,
    chart_width: usize,
    files_per_min: String,
    mb_per_s: String,
    /// Why the daemon is degraded or unavailable; empty when healthy.
    health: String,
    /// With `--redis`: the nodes, and whether Redis does not answer.
    nodes: Vec<crate::cluster::NodeView>,
    redis_down: bool,
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<usize>,
    fragment: Option<u8>,
}

fn clock(time: SystemTime) -> String {
    // RFC 3339 to the second, shown as "YYYY-MM-DD HH:MM:SS" UTC.
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

impl From<JobSnapshot> for Row {
    fn from(job: JobSnapshot) -> Row {
        let summary = job.summary.as_ref();
        let kind = summary.map_or("", |s| s.kind.as_str()).to_string();
        let figure = summary
            .and_then(|s| s.figure)
            .map_or(String::new(), |figure| figure.to_string());
        let (done, total) = job.progress.unwrap_or((0, 0));
        let when = job.finished_at.or(job.started_at).unwrap_or(job.queued_at);
        Row {
            id: job.id.to_string(),
            original: job.original_name.to_string_lossy().into_owned(),
            file: job.file.to_string_lossy().into_owned(),
            kind,
            size: human_bytes(job.size_bytes),
            figure,
            duration: summary.map_or(String::new(), |s| format!("{} ms", s.duration_ms)),
            when: clock(when),
            progress_done: done,
            progress_total: total.max(1),
            percent: (done * 100).checked_div(total).unwrap_or(0),
            error: match (&job.last_error, summary.and_then(|s| s.error.as_ref())) {
                (Some(last), _) => format!("attempt {} failed: {last}", job.attempts),
                (None, Some(e)) => format!("{}: {}", e.kind, e.message),
                (None, None) => String::new(),
            },
        }
    }
}

fn rows(jobs: Vec<JobSnapshot>) -> Vec<Row> {
    jobs.into_iter().map(Row::from).collect()
}

/// What the page shows of the store, asked in one go.
struct Reading {
    counts: Counts,
    pages: usize,
    page: usize,
    processed: Vec<JobSnapshot>,
    minutes: Vec<Minute>,
    last: Option<JobSnapshot>,
    queued: Vec<JobSnapshot>,
    processing: Vec<JobSnapshot>,
    failed: Vec<JobSnapshot>,
    trouble: FinishTrouble,
}

fn read(store: &dyn JobStore, page: usize) -> Reading {
    // A page past the end shows the last page.
    let (total, _) = store.list(Some(JobState::Completed), 0, 0);
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let page = page.min(pages - 1);
    Reading {
        counts: store.counts(),
        pages,
        page,
        processed: store
            .list(Some(JobState::Completed), PAGE_ROWS, page * PAGE_ROWS)
            .1,
        minutes: store.throughput(),
        last: store.last_processed(),
        queued: store.recent(JobState::Queued, LIST_ROWS),
        processing: store.recent(JobState::Processing, LIST_ROWS),
        failed: store.recent(JobState::Failed, LIST_ROWS),
        trouble: store.finish_trouble(),
    }
}

pub async fn dashboard(
    store: web::Data<dyn JobStore>,
    liveness: web::Data<Liveness>,
    auth: web::Data<Auth>,
    settings: web::Data<super::WebSettings>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked = query.page.unwrap_or(0);
    let reading = ask(&store, move |store| read(store, asked)).await?;
    let (nodes, redis_down) = match settings.membership.clone() {
        Some(membership) => {
            let running = reading.counts.processing as u64;
            web::block(move || {
                let down = !membership.redis_up();
                let nodes = membership
                    .nodes()
                    .filter(|nodes| !nodes.is_empty())
                    .unwrap_or_else(|| vec![membership.myself(running)]);
                (nodes, down)
            })
            .await?
        }
        None => (Vec::new(), false),
    };
    let minutes = &reading.minutes;
    let most = minutes.iter().map(|m| m.files).max().unwrap_or(0).max(1);
    let recent = &minutes[minutes.len().saturating_sub(RATE_MINUTES)..];
    let files: u64 = recent.iter().map(|m| m.files).sum();
    let bytes: u64 = recent.iter().map(|m| m.bytes).sum();
    let seconds = (recent.len().max(1) * 60) as f64;
    let page = Dashboard {
        fragment: query.fragment.is_some(),
        signed_in: auth.enabled(),
        counts: reading.counts,
        last: reading.last.map(Row::from),
        queued: rows(reading.queued),
        processing: rows(reading.processing),
        processed: rows(reading.processed),
        failed: rows(reading.failed),
        page: reading.page,
        pages: reading.pages,
        chart_width: minutes.len() * 20,
        throughput: minutes
            .iter()
            .enumerate()
            .map(|(i, m)| Bar {
                x: i * 20,
                height: m.files * 60 / most,
                label: format!(
                    "{}: {} files, {}",
                    clock(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.minute * 60)),
                    m.files,
                    human_bytes(m.bytes)
                ),
            })
            .collect(),
        files_per_min: format!("{:.1}", files as f64 * 60.0 / seconds),
        mb_per_s: format!("{:.2}", bytes as f64 / seconds / 1e6),
        health: match liveness.health(reading.trouble) {
            Health::Ok => String::new(),
            Health::Degraded(reason) | Health::Unavailable(reason) => reason,
        },
        nodes,
        redis_down,
    };
    Ok(super::html(page.render(), "the dashboard"))
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .body(SCRIPT)
}
