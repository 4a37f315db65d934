//! `POST /api/upload`: multipart `file` parts streamed to temporary files in `unprocessed/`
//! and renamed into place once the whole request has arrived, each under a job id it keeps
//! through the pipeline.
//!
//! Nothing is held in memory but the chunk being written. A part is written to a
//! `.fp-*.tmp` name, which the watcher ignores and the next start removes after a crash; the
//! request is all or nothing: if it fails or goes over `--max-upload-bytes`, every part of it
//! is deleted and none reaches the queue. A part's file is closed as soon as the part is
//! received (a request holds one open file at most, whatever its number of parts), and a
//! client that sends nothing for the body timeout loses its request (408). A part the type rules
//! refuse fails the whole request with 415: at its part header when its name decides, else once
//! received, by its first bytes; nothing of the request is kept.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tempfile::NamedTempFile;

use crate::analyze::rules::TypeRules;
use crate::analyze::{Source, detect};
use crate::disk::folders::{self, Folders};
use crate::health::Liveness;
use crate::job::JobId;
use crate::store::JobStore;
use crate::web::WebSettings;
use crate::web::api::job_body;
use crate::web::error::ApiError;
use crate::web::throttle;
use crate::web::wait::{AnswerQuery, Waiter};

/// Small chunks are gathered up to this size before a write; one buffer of it per upload in
/// flight, reused from write to write.
const WRITE_BYTES: usize = 32 << 10;
/// A request's body may exceed its files' bytes by this much (part headers and boundaries)
/// before its `Content-Length` alone refuses it.
const MULTIPART_OVERHEAD: u64 = 64 << 10;
/// Parts one request may carry: each file part is a temporary file, and empty parts cost no
/// bytes against the limit.
const MAX_PARTS: usize = 1000;
/// Uploads whose bodies are read at once; the others wait, their bytes in the kernel's socket
/// buffers and the HTTP layer's read buffer, not in the multipart parser or a write buffer.
/// A client silent for a second gives its turn up until its next bytes arrive, so slow
/// clients cannot keep the others waiting.
const READ_AT_ONCE: usize = 32;
static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(READ_AT_ONCE);

/// Longest name kept from a client, in bytes.
const MAX_NAME_BYTES: usize = 200;

fn bad_multipart(err: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("bad multipart request: {err}"))
}

fn store_error(err: std::io::Error) -> ApiError {
    ApiError::unavailable("cannot store the upload", &err)
}

/// One accepted file, as the answer lists it.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub job_id: String,
    /// Its name in `unprocessed/`.
    pub file: String,
    pub status_url: String,
}

/// A part received whole and closed, not yet in `unprocessed/`; deleted if dropped.
struct Staged {
    temp: tempfile::TempPath,
    key: (u64, u64),
    name: OsString,
    size: u64,
}

/// The next item of a body stream, or 408 when the client sent nothing for `timeout`.
async fn next_within<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    timeout: std::time::Duration,
) -> Result<Option<S::Item>, ApiError> {
    tokio::time::timeout(timeout, stream.next())
        .await
        .map_err(|_| ApiError::Timeout(timeout))
}

/// A client silent this long gives its reading turn up until its next bytes arrive.
const SILENT_WITH_TURN: std::time::Duration = std::time::Duration::from_secs(1);

/// The next item of a body stream (as `next_within`), holding a reading turn while bytes
/// flow and none once the client has been silent for `SILENT_WITH_TURN`.
async fn next_in_turn<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    turn: &mut Option<tokio::sync::SemaphorePermit<'static>>,
    timeout: std::time::Duration,
) -> Result<Option<S::Item>, ApiError> {
    let grace = SILENT_WITH_TURN.min(timeout);
    let item = match tokio::time::timeout(grace, stream.next()).await {
        Ok(item) => item,
        Err(_) => {
            *turn = None;
            next_within(stream, timeout.saturating_sub(grace)).await?
        }
    };
    if turn.is_none() {
        // Never closed: an error could only mean reading without a turn.
        *turn = READING.acquire().await.ok();
    }
    Ok(item)
}

/// Syncs (with `--fsync`) and closes a received part, keeping its path and identity.
fn close(temp: NamedTempFile, durable: bool) -> std::io::Result<(tempfile::TempPath, (u64, u64))> {
    if durable {
        temp.as_file().sync_all()?;
    }
    let metadata = temp.as_file().metadata()?;
    Ok((temp.into_temp_path(), (metadata.dev(), metadata.ino())))
}

pub async fn upload(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<AnswerQuery>,
    store: web::Data<dyn JobStore>,
    folders: web::Data<Folders>,
    settings: web::Data<WebSettings>,
    liveness: web::Data<Liveness>,
) -> Result<HttpResponse, ApiError> {
    // A bad `wait` is refused before a byte of the body is read.
    let wait = query.wait()?;
    let limit = settings.max_upload_bytes;
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(ApiError::TooLarge(limit));
    }
    // The connection reads ahead of this handler by one window at most (`throttle`), also
    // while the upload waits for its turn.
    let window = request.conn_data::<Arc<throttle::Window>>().cloned();
    let body = throttle::hold(body.into_inner(), window);
    let body: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> = Box::pin(body);
    let mut payload = Multipart::from_request(&request, &mut body.into())
        .await
        .map_err(bad_multipart)?;
    // Never closed: an error could only mean reading without a turn.
    let mut turn = READING.acquire().await.ok();
    let mut staged: Vec<Staged> = Vec::new();
    let mut total: u64 = 0;
    let mut parts = 0;
    let idle = settings.body_timeout;
    let durable = settings.fsync;
    while let Some(field) = next_in_turn(&mut payload, &mut turn, idle).await? {
        let mut field = field.map_err(bad_multipart)?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::BadRequest(format!(
                "more than {MAX_PARTS} parts in one request"
            )));
        }
        let is_file = field.name() == Some("file");
        let name = field
            .content_disposition()
            .and_then(|disposition| disposition.get_filename())
            .map(safe_name);
        if is_file {
            let shown = name.clone().unwrap_or_else(|| OsString::from("upload"));
            if let Some(refusal) = settings.rules.judge_name(Path::new(&shown)) {
                // Refused before a byte of it is stored; `staged` is deleted on return.
                return Err(ApiError::Refused(format!(
                    "{}: {refusal}",
                    shown.to_string_lossy()
                )));
            }
        }
        let mut temp = if is_file {
            let dir = folders.unprocessed.clone();
            Some(
                block(move || folders::temp_in(&dir))
                    .await
                    .map_err(store_error)?,
            )
        } else {
            None
        };
        let mut size: u64 = 0;
        let mut pending: Vec<u8> = if is_file {
            Vec::with_capacity(WRITE_BYTES)
        } else {
            Vec::new()
        };
        while let Some(chunk) = next_in_turn(&mut field, &mut turn, idle).await? {
            let chunk = chunk.map_err(bad_multipart)?;
            total += chunk.len() as u64;
            if total > limit {
                // `staged` and `temp` are dropped on return: their files are deleted.
                return Err(ApiError::TooLarge(limit));
            }
            let Some(file) = temp.take() else {
                continue; // not a file part: read and dropped
            };
            size += chunk.len() as u64;
            if pending.len() + chunk.len() <= WRITE_BYTES {
                pending.extend_from_slice(&chunk);
                temp = Some(file);
                continue;
            }
            // The gathered bytes, then the chunk itself (written from where it is, not copied).
            let (file, buffer) = write(file, pending, chunk).await.map_err(store_error)?;
            temp = Some(file);
            pending = buffer;
        }
        if let Some(file) = temp {
            // The last bytes and the close in one trip to a blocking thread.
            let last = pending;
            let (temp, key) = block(move || {
                let mut file = file;
                file.write_all(&last)?;
                close(file, durable)
            })
            .await
            .map_err(store_error)?;
            let name = name.unwrap_or_else(|| OsString::from("upload"));
            staged.push(Staged {
                temp,
                key,
                name,
                size,
            });
        }
    }
    drop(turn);
    if staged.is_empty() {
        return Err(ApiError::BadRequest(
            "no `file` part in the request".to_string(),
        ));
    }
    let rules = settings.rules.clone();
    let (staged, refusal) = block(move || {
        let refusal = first_refusal(&staged, &rules);
        Ok((staged, refusal))
    })
    .await
    .map_err(store_error)?;
    if let Some(refusal) = refusal {
        // Every part of the request is deleted as `staged` is dropped: all or nothing.
        return Err(ApiError::Refused(refusal));
    }
    // Following the feed from before the files are placed: no finish can come before it.
    let waiter = wait.map(|wait| Waiter::start(store.get_ref(), wait));
    let shared = store.clone().into_inner();
    let unprocessed = folders.unprocessed.clone();
    let claim_here = settings.claim_here.clone();
    let accepted = block(move || {
        let store = shared;
        Ok(match claim_here {
            Some(here) => claim_all(staged, &here, &*store),
            None => place_all(staged, &unprocessed, &*store, durable),
        })
    })
    .await
    .map_err(store_error)??;
    for job in &accepted {
        log::info!("job {}: uploaded as {}", job.job_id, job.file);
    }
    if let Some(back) = query.redirect() {
        return Ok(back);
    }
    if let Some(waiter) = waiter {
        let ids: Vec<JobId> = accepted
            .iter()
            .filter_map(|job| JobId::from_string(&job.job_id).ok())
            .collect();
        if let Some(finished) = waiter.finished(&store, &liveness, &ids).await {
            let mut jobs = Vec::with_capacity(finished.len());
            for job in finished {
                jobs.push(job_body(&folders, job).await);
            }
            return Ok(HttpResponse::Ok().json(json!({ "jobs": jobs })));
        }
    }
    Ok(HttpResponse::Accepted().json(json!({ "jobs": accepted })))
}

/// Runs blocking file work off the server's threads.
async fn block<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    web::block(work)
        .await
        .map_err(|err| std::io::Error::other(err.to_string()))?
}

/// The first received part the type rules refuse, judged by its name and its first bytes.
/// A part that cannot be opened here is left to the pipeline, which judges every file again.
fn first_refusal(staged: &[Staged], rules: &TypeRules) -> Option<String> {
    if rules.is_empty() {
        return None;
    }
    staged.iter().find_map(|part| {
        let source = Source::open(&part.temp).ok()?;
        let name = Path::new(&part.name);
        let refusal = rules.judge(name, &detect::detect(&source)).err()?;
        Some(format!("{}: {refusal}", part.name.to_string_lossy()))
    })
}

/// Writes the gathered bytes and then `chunk`; gives the file back, and the buffer emptied
/// for the next bytes.
async fn write(
    mut temp: NamedTempFile,
    mut gathered: Vec<u8>,
    chunk: Bytes,
) -> std::io::Result<(NamedTempFile, Vec<u8>)> {
    block(move || {
        temp.write_all(&gathered)?;
        temp.write_all(&chunk)?;
        gathered.clear();
        Ok((temp, gathered))
    })
    .await
}

/// Places every part, or none: when one cannot be placed, the parts placed before it are
/// taken back out of `unprocessed/` (and deleted) unless the pipeline has claimed them
/// already; those are named in the error, as they will be processed.
fn place_all(
    staged: Vec<Staged>,
    unprocessed: &std::path::Path,
    store: &dyn JobStore,
    durable: bool,
) -> Result<Vec<Accepted>, ApiError> {
    let mut placed: Vec<(Accepted, std::path::PathBuf, (u64, u64))> = Vec::new();
    for part in staged {
        match place(part, unprocessed, store, durable) {
            Ok(done) => placed.push(done),
            Err(err) => {
                let mut kept = Vec::new();
                for (accepted, path, key) in placed {
                    if take_back(&path, key, unprocessed) {
                        store.withdraw_file(key);
                        if let Ok(id) = JobId::from_string(&accepted.job_id) {
                            store.forget(id);
                        }
                    } else {
                        kept.push(accepted);
                    }
                }
                return Err(ApiError::PartlyStored {
                    what: format!("cannot store the upload ({})", err.kind()),
                    detail: err.to_string(),
                    accepted: kept,
                });
            }
        }
    }
    Ok(placed.into_iter().map(|(accepted, ..)| accepted).collect())
}

/// In a cluster: claims every part for this node, or none (the ones claimed before a failure
/// are deleted: nothing was handed over yet), then hands them all to the scheduler.
fn claim_all(
    staged: Vec<Staged>,
    here: &crate::web::ClaimHere,
    store: &dyn JobStore,
) -> Result<Vec<Accepted>, ApiError> {
    let mut claimed = Vec::new();
    let mut accepted = Vec::new();
    for part in staged {
        let id = JobId::generate();
        store.queue(id, &part.name, part.size, SystemTime::now());
        match here.claim(&part.temp, id, &part.name) {
            Ok(leftover) => {
                // Moved: the temp path must not be deleted on drop any more.
                let _ = part.temp.keep();
                accepted.push(Accepted {
                    job_id: id.to_string(),
                    file: part.name.to_string_lossy().into_owned(),
                    status_url: format!("/api/jobs/{id}"),
                });
                claimed.push(leftover);
            }
            Err(err) => {
                store.forget(id);
                for leftover in claimed {
                    let _ = std::fs::remove_file(&leftover.path);
                    if let Some(id) = leftover.job_id {
                        store.forget(id);
                    }
                }
                return Err(ApiError::PartlyStored {
                    what: format!("cannot store the upload ({})", err.kind()),
                    detail: err.to_string(),
                    accepted: Vec::new(),
                });
            }
        }
    }
    here.hand_over(claimed);
    Ok(accepted)
}

/// Moves a just-placed part back to a temp name and deletes it, if it is still there (the
/// same inode) and not yet claimed. Returns whether it was taken back.
fn take_back(path: &std::path::Path, key: (u64, u64), unprocessed: &std::path::Path) -> bool {
    if folders::file_key(path) != Some(key) {
        return false;
    }
    let Ok(temp) = folders::temp_in(unprocessed) else {
        return false;
    };
    let temp = temp.into_temp_path();
    // Over our own empty temp file: the rename wins or fails as a whole.
    if std::fs::rename(path, &temp).is_err() {
        return false;
    }
    if folders::file_key(&temp) != Some(key) {
        // Another file took the name in between: it is not ours to delete.
        let _ = folders::rename_no_replace(&temp, path);
        let _ = temp.keep();
        return false;
    }
    true // `temp` deletes it on drop
}

/// Renames a received part into `unprocessed/` under its name, or the first derived name
/// that is free (never replacing a file), under a new job id.
fn place(
    part: Staged,
    unprocessed: &std::path::Path,
    store: &dyn JobStore,
    durable: bool,
) -> std::io::Result<(Accepted, std::path::PathBuf, (u64, u64))> {
    let key = part.key;
    let id = JobId::generate();
    // Queued before the rename, so that the scheduler, which may finish it at once, always
    // comes after: it then only updates the name.
    store.queue(id, &part.name, part.size, SystemTime::now());
    store.expect_file(key, id);
    let temp = part.temp;
    match folders::move_into(&temp, unprocessed, &part.name, None, durable) {
        Ok(placed) => {
            // Moved: the temp path must not be deleted on drop any more.
            let _ = temp.keep();
            let file = folders::file_name_of(&placed).unwrap_or(&part.name);
            store.file_placed(key, file);
            let accepted = Accepted {
                job_id: id.to_string(),
                file: file.to_string_lossy().into_owned(),
                status_url: format!("/api/jobs/{id}"),
            };
            Ok((accepted, placed, key))
        }
        Err(err) => {
            store.withdraw_file(key);
            store.forget(id);
            Err(match err {
                folders::FolderError::Move { source, .. } => source,
                other => std::io::Error::other(other),
            })
        }
    }
}

/// A client's file name reduced to one safe path component: the part after the last `/` or
/// `\`, without control characters, leading dots or surrounding spaces, at most
/// `MAX_NAME_BYTES` bytes, and never a name the watcher ignores.
pub fn safe_name(raw: &str) -> OsString {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let mut name = cleaned.trim().trim_start_matches('.').trim().to_string();
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    if name.is_empty() {
        name = "upload".to_string();
    }
    let mut name = OsString::from(name);
    if crate::pipeline::watch::is_ignored(&name) {
        // `notes.tmp` would wait in unprocessed/ forever.
        name.push(".upload");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reduced_to_one_safe_component() {
        let cases = [
            ("report.csv", "report.csv"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("/abs/path/x.log", "x.log"),
            ("..", "upload"),
            ("../", "upload"),
            ("", "upload"),
            ("   ", "upload"),
            (".hidden", "hidden"),
            ("...env", "env"),
            ("a\u{0}b\nc\u{7f}.txt", "abc.txt"),
            ("notes.tmp", "notes.tmp.upload"),
            ("draft~", "draft~.upload"),
            ("données été.csv", "données été.csv"),
        ];
        for (raw, expected) in cases {
            assert_eq!(safe_name(raw), OsString::from(expected), "{raw:?}");
        }
        let long = "é".repeat(300);
        let name = safe_name(&long);
        assert!(name.len() <= MAX_NAME_BYTES);
        assert!(name.to_str().is_some(), "cut on a character boundary");
    }
}
