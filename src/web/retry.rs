//! `POST /api/jobs/{id}/retry`: a failed job's file goes from `failed/` back to
//! `unprocessed/` under the same job id; its error report is kept in `failed/.retried/`.
//!
//! Order: the store takes the job out of the failed ones first (so that a second retry of
//! the same job is refused), then the report is set aside, then the file moves. If the file
//! cannot move, the report goes back beside it and the job is failed again in the store,
//! counted as before. Every name used here is checked to be one path component of its folder:
//! the store's names may come from reports read back at start.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::disk::folders::{self, Folders};
use crate::disk::report::ERROR_SUFFIX;
use crate::health::Liveness;
use crate::job::{JobId, JobSnapshot, RetryRefused};
use crate::pipeline::watch::is_ignored;
use crate::store::JobStore;
use crate::web::api::job_body;
use crate::web::error::ApiError;
use crate::web::wait::{AnswerQuery, Waiter};
use crate::web::{WebSettings, ask};

/// Under `failed/`: the error reports of retried jobs.
pub const RETRIED_DIR: &str = ".retried";

pub async fn retry(
    path: web::Path<String>,
    query: web::Query<AnswerQuery>,
    store: web::Data<dyn JobStore>,
    folders: web::Data<Folders>,
    settings: web::Data<WebSettings>,
    liveness: web::Data<Liveness>,
) -> Result<HttpResponse, ApiError> {
    let wait = query.wait()?;
    let raw = path.into_inner();
    let id = JobId::from_string(&raw).map_err(|_| ApiError::UnknownJob(raw.clone()))?;
    let begun = ask(&store, move |store| store.begin_retry(id)).await?;
    let job = begun.map_err(|refused| match refused {
        RetryRefused::Unknown => ApiError::UnknownJob(raw),
        RetryRefused::NotFailed(state) => ApiError::Conflict(format!(
            "job {id} is {}, and only a failed job can be retried",
            state.as_str()
        )),
    })?;
    let durable = settings.fsync;
    // Following the feed from before the file moves: its finish cannot come before it.
    let waiter = wait.map(|wait| Waiter::start(store.get_ref(), wait));
    let moved = {
        let folders = folders.clone();
        let store = store.clone().into_inner();
        let job = job.clone();
        let claim_here = settings.claim_here.clone();
        web::block(move || requeue(&folders, &*store, id, &job, durable, claim_here.as_ref())).await
    };
    let failure = match moved {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(err)) => Err(err),
        Err(err) => Err(ApiError::Unavailable {
            what: "cannot requeue the file".to_string(),
            detail: err.to_string(),
        }),
    };
    let file = match failure {
        Ok(file) => file,
        Err(err) => {
            ask(&store, move |store| store.undo_retry(job)).await?;
            return Err(err);
        }
    };
    log::info!(
        "job {id}: retried; {} is back in unprocessed/",
        file.to_string_lossy()
    );
    if let Some(back) = query.redirect() {
        return Ok(back);
    }
    if let Some(waiter) = waiter
        && let Some(mut finished) = waiter.finished(&store, &liveness, &[id]).await
        && let Some(job) = finished.pop()
    {
        return Ok(HttpResponse::Ok().json(job_body(&folders, job).await));
    }
    Ok(HttpResponse::Accepted().json(json!({
        "job_id": id.to_string(),
        "file": file.to_string_lossy(),
        "state": "queued",
        "status_url": format!("/api/jobs/{id}"),
    })))
}

/// Sets the error report aside and moves the file into `unprocessed/` under its original
/// name (or the first free name derived from it). Returns the name it got.
fn requeue(
    folders: &Folders,
    store: &dyn JobStore,
    id: JobId,
    job: &JobSnapshot,
    durable: bool,
    claim_here: Option<&crate::web::ClaimHere>,
) -> Result<OsString, ApiError> {
    let shown = job.file.to_string_lossy();
    let file = folders::entry_of(&folders.failed, &job.file).ok_or_else(|| {
        ApiError::Conflict(format!("job {id}: {shown:?} is not a name in failed/"))
    })?;
    let metadata = fs::symlink_metadata(&file)
        .ok()
        .filter(fs::Metadata::is_file)
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "job {id}: its file {shown} is no longer in failed/"
            ))
        })?;
    let key = (metadata.dev(), metadata.ino());
    let mut report_name = job.file.clone();
    report_name.push(ERROR_SUFFIX);
    let report = folders.failed.join(report_name);
    let set_aside = set_aside(&folders.failed, &report, id, durable)
        .map_err(|err| ApiError::unavailable("cannot set the old report aside", &err))?;
    let name = requeue_name(job);
    if let Some(here) = claim_here {
        // A cluster: claimed by this node at once, under the job's id (see `ClaimHere`).
        return match here.claim(&file, id, &name) {
            Ok(leftover) => {
                here.hand_over(vec![leftover]);
                Ok(name)
            }
            Err(err) => Err(put_back(set_aside, &report, id, err.to_string())),
        };
    }
    store.expect_file(key, id);
    match folders::move_into(&file, &folders.unprocessed, &name, None, durable) {
        Ok(placed) => {
            let placed = folders::file_name_of(&placed).map_or(name.clone(), |n| n.to_os_string());
            store.file_placed(key, &placed);
            Ok(placed)
        }
        Err(err) => {
            store.withdraw_file(key);
            Err(put_back(set_aside, &report, id, err.to_string()))
        }
    }
}

/// A requeue that failed: the old report goes back where it was; the error says why.
fn put_back(
    set_aside: Option<std::path::PathBuf>,
    report: &std::path::Path,
    id: JobId,
    why: String,
) -> ApiError {
    if let Some(kept) = set_aside
        && let Err(back) = folders::rename_no_replace(&kept, report)
    {
        log::error!("job {id}: cannot put {} back: {back}", kept.display());
    }
    ApiError::Unavailable {
        what: "cannot requeue the file".to_string(),
        detail: why,
    }
}

/// The name the file goes back under: its original name when that is a name the scheduler
/// picks up (one path component, not ignored), else its name in `failed/`.
fn requeue_name(job: &JobSnapshot) -> OsString {
    [&job.original_name, &job.file]
        .into_iter()
        .find(|name| folders::is_single_component(name) && !is_ignored(name))
        .cloned()
        .unwrap_or_else(|| OsString::from("retried"))
}

/// Moves the job's error report, if there is one, to `failed/.retried/<job id>.error.json`
/// (or a derived free name after several retries). Returns where it went.
fn set_aside(
    failed: &Path,
    report: &Path,
    id: JobId,
    durable: bool,
) -> std::io::Result<Option<std::path::PathBuf>> {
    if !folders::exists(report) {
        return Ok(None);
    }
    let dir = failed.join(RETRIED_DIR);
    fs::create_dir_all(&dir)?;
    let name = OsString::from(format!("{id}{ERROR_SUFFIX}"));
    folders::move_into(report, &dir, &name, None, durable)
        .map(Some)
        .map_err(std::io::Error::other)
}
