//! The JSON API (SPEC §5): `/api/status`, `/api/jobs`, `/api/jobs/{id}` (uploads and retries
//! are `upload` and `retry`).
//!
//! Every answer is built from the job store; only `/api/jobs/{id}` reads a file, the job's
//! published report, to embed it. Errors are JSON objects `{"error": "..."}` with the status.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::disk::folders::Folders;
use crate::disk::report::{ERROR_SUFFIX, REPORT_SUFFIX, rfc3339};
use crate::job::{Counts, JobId, JobSnapshot, JobState};
use crate::store::JobStore;
use crate::web::ask;
use crate::web::error::ApiError;

/// Jobs listed per state by `/api/status` (the rest is paged by `/api/jobs`).
const STATUS_RECENT: usize = 20;
/// `/api/jobs` without `limit`, and the most it gives at once.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// One job as the API shows it.
#[derive(Serialize)]
pub struct JobView {
    pub job_id: String,
    pub file: String,
    pub original_name: String,
    pub state: JobState,
    pub size_bytes: u64,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// `{done, total}` segments while processing (and as it ended).
    pub progress: Option<Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::analyze::Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::job::ErrorInfo>,
    /// Failed attempts to finish it (its report or its move failed); it is tried again.
    #[serde(skip_serializing_if = "is_zero")]
    pub attempts: u32,
    /// Why the last attempt to finish it failed, while it waits to be tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub status_url: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl From<JobSnapshot> for JobView {
    fn from(job: JobSnapshot) -> JobView {
        let summary = job.summary;
        JobView {
            job_id: job.id.to_string(),
            status_url: format!("/api/jobs/{}", job.id),
            file: job.file.to_string_lossy().into_owned(),
            original_name: job.original_name.to_string_lossy().into_owned(),
            state: job.state,
            size_bytes: job.size_bytes,
            queued_at: rfc3339(job.queued_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            progress: job.progress.map(|(done, total)| Progress { done, total }),
            kind: summary.as_ref().map(|s| s.kind),
            duration_ms: summary.as_ref().map(|s| s.duration_ms),
            error: summary.and_then(|s| s.error),
            attempts: job.attempts,
            last_error: job.last_error,
        }
    }
}

#[derive(Serialize)]
struct Status {
    counts: Counts,
    /// The finished jobs of the history by kind.
    kinds: Vec<crate::job::KindCount>,
    queued: Vec<JobView>,
    processing: Vec<JobView>,
    processed: Vec<JobView>,
    failed: Vec<JobView>,
    last_processed: Option<JobView>,
}

fn views(jobs: Vec<JobSnapshot>) -> Vec<JobView> {
    jobs.into_iter().map(JobView::from).collect()
}

/// `GET /api/status`: counts, every queued and running job (up to a bound), the most recent
/// finished ones, and the last processed file.
pub async fn status(store: web::Data<dyn JobStore>) -> Result<HttpResponse, ApiError> {
    let body = ask(&store, |store| {
        let page = |state| views(store.recent(state, STATUS_RECENT));
        Status {
            counts: store.counts(),
            kinds: store.kinds(),
            queued: page(JobState::Queued),
            processing: page(JobState::Processing),
            processed: page(JobState::Completed),
            failed: page(JobState::Failed),
            last_processed: store.last_processed().map(JobView::from),
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `GET /api/jobs?state=&limit=&offset=`: newest first.
pub async fn jobs(
    store: web::Data<dyn JobStore>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let state = match query.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(name) => Some(
            name.parse::<JobState>()
                .map_err(|err| ApiError::BadRequest(err.to_string()))?,
        ),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = query.offset.unwrap_or(0);
    let (total, page) = ask(&store, move |store| store.list(state, limit, offset)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "jobs": views(page),
    })))
}

/// `GET /api/jobs/{id}`: the job, and its report once published.
pub async fn job(
    store: web::Data<dyn JobStore>,
    folders: web::Data<Folders>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = find_job(&store, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(job_body(&folders, job).await))
}

/// A job as `GET /api/jobs/{id}` shows it: its view, and its report once published.
pub async fn job_body(folders: &Folders, job: JobSnapshot) -> Value {
    let report = read_report(folders, &job).await;
    let mut body = serde_json::to_value(JobView::from(job)).unwrap_or(Value::Null);
    if let (Some(report), Value::Object(map)) = (report, &mut body) {
        map.insert("report".to_string(), report);
    }
    body
}

/// Where a finished job's report is: in its folder, under its file's name (one path
/// component, checked: a name read back from a report at start is data, not a path).
pub fn report_path(folders: &Folders, job: &JobSnapshot) -> Option<PathBuf> {
    let (dir, suffix) = match job.state {
        JobState::Completed => (&folders.processed, REPORT_SUFFIX),
        JobState::Failed => (&folders.failed, ERROR_SUFFIX),
        JobState::Queued | JobState::Processing => return None,
    };
    let mut name = job.file.clone();
    name.push(suffix);
    crate::disk::folders::is_single_component(&job.file).then(|| dir.join(name))
}

/// A finished job's report as JSON, read on a blocking thread (reports may be large; the
/// executor must not wait on the disk).
pub async fn read_report(folders: &Folders, job: &JobSnapshot) -> Option<Value> {
    let path = report_path(folders, job)?;
    web::block(move || crate::disk::report::read_back(&path))
        .await
        .ok()
        .flatten()
}

/// The job with the id of a request's path, or a 404.
pub async fn find_job(
    store: &web::Data<dyn JobStore>,
    id: String,
) -> Result<JobSnapshot, ApiError> {
    let Ok(job_id) = JobId::from_string(&id) else {
        return Err(ApiError::UnknownJob(id));
    };
    ask(store, move |store| store.get(job_id))
        .await?
        .ok_or(ApiError::UnknownJob(id))
}

/// Shared for handlers that need the folders.
pub fn folders_data(folders: &Folders) -> web::Data<Folders> {
    web::Data::from(Arc::new(folders.clone()))
}

/// `GET /api/nodes`: every node of the cluster, up or down, by name (SPEC §6); this daemon
/// alone without `--redis`, or while Redis does not answer.
pub async fn nodes(
    store: web::Data<dyn JobStore>,
    settings: web::Data<crate::web::WebSettings>,
) -> Result<HttpResponse, ApiError> {
    let running = ask(&store, |store| store.counts().processing as u64).await?;
    let nodes = match settings.membership.clone() {
        Some(membership) => {
            web::block(move || {
                membership
                    .nodes()
                    .filter(|nodes| !nodes.is_empty())
                    .unwrap_or_else(|| vec![membership.myself(running)])
            })
            .await?
        }
        None => vec![crate::cluster::NodeView {
            name: settings.node_name.clone(),
            address: settings.node_address.clone(),
            state: "up",
            running,
            last_heartbeat: crate::disk::report::rfc3339(std::time::SystemTime::now()),
        }],
    };
    Ok(HttpResponse::Ok().json(nodes))
}
