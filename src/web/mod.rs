//! The HTTP server (actix-web): the dashboard, the job pages, the JSON API, the event stream,
//! metrics and health, uploads and retries, and the token check in front of them.
//!
//! `configure` is the one list of routes. The views read the job store (through `ask`, which
//! keeps a store call that may block off the async executor) and, for one job, its published
//! report; `/health` reads the daemon's liveness, `/metrics` its metrics and the store's counts. Only two handlers change anything on disk, and only by putting a
//! file into `unprocessed/` for the pipeline to find: `upload` and `retry`. The server is
//! started and stopped by `daemon`.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod guard;
pub mod job_page;
pub mod retry;
pub mod throttle;
pub mod upload;
pub mod wait;

use std::net::TcpListener;

use std::time::Duration;

use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::{AppConfig, Extensions, Server, fn_service};
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpResponse, web};
use serde_json::json;

use crate::disk::folders::Folders;
use crate::health::{Health, Liveness};
use crate::metrics::Metrics;
use crate::pipeline::Shared;
use crate::store::JobStore;
use crate::web::error::ApiError;

/// Threads that serve HTTP.
const HTTP_WORKERS: usize = 2;

/// Blocking threads per HTTP worker (actix's default is 512 shared by the workers).
const BLOCKING_THREADS: usize = 4;

/// What the HTTP side is told at start.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// `--token`: when set, every route but `/health` and `/login` needs it.
    pub token: Option<String>,
    /// `--max-upload-bytes`: the most file bytes one upload request may carry.
    pub max_upload_bytes: u64,
    /// `--fsync`: uploads and retries are synced too.
    pub fsync: bool,
    /// `--host`, `localhost`, IP literals and `--allowed-hosts`.
    pub allowed_hosts: guard::AllowedHosts,
    /// A request body that sends nothing this long is dropped (408).
    pub body_timeout: std::time::Duration,
    /// Connections served at once (both HTTP workers together): what the descriptor budget
    /// leaves after the pipeline's reserve.
    pub max_connections: usize,
    /// `--accept` / `--reject`: an upload they refuse gets 415 and nothing is kept.
    pub rules: crate::analyze::rules::TypeRules,
    /// This daemon as a node: its name and where it listens (`GET /api/nodes`).
    pub node_name: String,
    pub node_address: String,
    /// `--redis`: this node's membership of the cluster.
    pub membership: Option<std::sync::Arc<crate::cluster::Membership>>,
    /// `--redis`: uploads and retries are claimed by this node at once (below).
    pub claim_here: Option<ClaimHere>,
}

/// In a cluster, the folders are shared, and a file put into `unprocessed/` could be claimed
/// by another node under a job id of its own, while the client holds this one's. So an upload
/// or a retry is claimed into `underprocess/` by this node, under the id the client got, and
/// handed to this node's scheduler: every node learns the id from its `queued` change.
#[derive(Clone)]
pub struct ClaimHere {
    pub lifecycle: std::sync::Arc<crate::disk::lifecycle::Lifecycle>,
    pub scheduler: crossbeam_channel::Sender<crate::pipeline::scheduler::Control>,
}

impl std::fmt::Debug for ClaimHere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimHere")
    }
}

impl ClaimHere {
    /// Claims `from` for job `id` (named `name`) and hands it to the scheduler.
    pub fn claim(
        &self,
        from: &std::path::Path,
        id: crate::job::JobId,
        name: &std::ffi::OsStr,
    ) -> std::io::Result<crate::disk::recover::Leftover> {
        match self.lifecycle.claim_from(from, id, name) {
            Ok(Some(path)) => Ok(crate::disk::recover::Leftover {
                path,
                job_id: Some(id),
                original_name: name.to_os_string(),
            }),
            Ok(None) => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            Err(crate::disk::folders::FolderError::Move { source, .. }) => Err(source),
            Err(other) => Err(std::io::Error::other(other)),
        }
    }

    /// Hands claimed files to the scheduler; when it is stopping, they stay this node's claims
    /// and run at its next start.
    pub fn hand_over(&self, claimed: Vec<crate::disk::recover::Leftover>) {
        if claimed.is_empty() {
            return;
        }
        let adopt = crate::pipeline::scheduler::Control::Adopt(claimed);
        if let Err(err) = self
            .scheduler
            .send_timeout(adopt, std::time::Duration::from_secs(1))
        {
            log::warn!("claimed files wait for the next start: {err}");
        }
    }
}

/// The server on an already bound listener, not yet running: await it in an actix system.
pub fn server(
    listener: TcpListener,
    shared: Shared,
    folders: &Folders,
    settings: WebSettings,
) -> std::io::Result<Server> {
    let store: web::Data<dyn JobStore> = web::Data::from(shared.store);
    let liveness = web::Data::from(shared.liveness);
    let metrics = web::Data::from(shared.metrics);
    let folders = api::folders_data(folders);
    let auth = web::Data::new(auth::Auth::new(settings.token.as_deref()));
    let allowed_hosts = web::Data::new(settings.allowed_hosts.clone());
    // Per HTTP worker; more wait in the kernel's backlog until one closes.
    let max_connections = settings.max_connections.div_ceil(HTTP_WORKERS).max(1);
    let settings = web::Data::new(settings);
    /// Bytes the multipart parser holds per upload at most, beyond the part it hands over.
    const MULTIPART_BUFFER: usize = 16 << 10;
    let local = listener.local_addr()?;
    let app = move || {
        App::new()
            .app_data(store.clone())
            .app_data(liveness.clone())
            .app_data(metrics.clone())
            .app_data(folders.clone())
            .app_data(auth.clone())
            .app_data(settings.clone())
            .app_data(allowed_hosts.clone())
            // The multipart parser's buffer per upload in flight (64 KiB by default).
            .app_data(actix_multipart::MultipartConfig::default().buffer_limit(MULTIPART_BUFFER))
            .wrap(from_fn(auth::require_token))
            // Wrapped last, so it runs first: before the token is even looked at.
            .wrap(from_fn(guard::check_origin_and_host))
            .wrap(from_fn(throttle::open_for_others))
            .configure(configure)
    };
    // actix-web's `HttpServer`, built by hand so that every connection is read through a
    // `throttle::Throttled` stream (HttpServer takes plain TCP streams only). Its settings
    // are HttpServer's defaults, spelled out.
    let server = actix_server::Server::build()
        .workers(HTTP_WORKERS)
        .max_concurrent_connections(max_connections)
        // File work (upload writes, retries) runs on a few blocking threads per worker: enough
        // to keep the disk busy, and each thread that exists keeps its own malloc arena.
        .worker_max_blocking_threads(BLOCKING_THREADS)
        // The daemon handles SIGINT/SIGTERM itself and stops the server last.
        .disable_signals()
        .shutdown_timeout(2)
        .listen("http", listener, move || {
            let service = actix_http::HttpService::build()
                .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(local)
                .on_connect_ext(
                    |stream: &throttle::Throttled<TcpStream>, data: &mut Extensions| {
                        data.insert(stream.window());
                    },
                )
                .h1(map_config(
                    app()
                        .into_factory()
                        .map_err(|err: actix_web::Error| err.error_response()),
                    move |_| AppConfig::default(),
                ));
            fn_service(|stream: TcpStream| async move {
                let peer = stream.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((throttle::Throttled::new(stream), peer))
            })
            .and_then(service)
        })?
        .run();
    Ok(server)
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(dashboard::dashboard))
        .route("/static/dashboard.js", web::get().to(dashboard::script))
        .route("/jobs/{id}", web::get().to(job_page::job_page))
        .route("/health", web::get().to(health))
        .route("/api/status", web::get().to(api::status))
        .route("/api/jobs", web::get().to(api::jobs))
        .route("/api/jobs/{id}", web::get().to(api::job))
        .route("/api/jobs/{id}/retry", web::post().to(retry::retry))
        .route("/api/upload", web::post().to(upload::upload))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::login))
        .route("/logout", web::post().to(auth::logout))
        .route("/api/events", web::get().to(events::events))
        .route("/api/nodes", web::get().to(api::nodes))
        .route("/metrics", web::get().to(metrics));
}

/// Asks the job store: at once when its answers come from memory, on a blocking thread when
/// a call may wait (a remote backend), so that the async executor never waits on it.
pub async fn ask<T: Send + 'static>(
    store: &web::Data<dyn JobStore>,
    question: impl FnOnce(&dyn JobStore) -> T + Send + 'static,
) -> Result<T, ApiError> {
    if !store.may_block() {
        return Ok(question(store.get_ref()));
    }
    let store = store.clone().into_inner();
    Ok(web::block(move || question(&*store)).await?)
}

/// 200 while the watcher and the pool are alive, else 503 with the reason; with the counts
/// and the uptime either way.
/// With `--redis`, also whether Redis answers (`"redis": "up"` or `"down"`): a node without
/// Redis goes on processing, so that alone leaves it 200.
async fn health(
    store: web::Data<dyn JobStore>,
    liveness: web::Data<Liveness>,
    settings: web::Data<WebSettings>,
) -> Result<HttpResponse, ApiError> {
    let (counts, trouble) = ask(&store, |store| (store.counts(), store.finish_trouble())).await?;
    let details = json!({
        "queued": counts.queued,
        "processing": counts.processing,
        "completed": counts.completed,
        "failed": counts.failed,
        "uptime_seconds": liveness.uptime_seconds(),
    });
    let (status, mut body) = match liveness.health(trouble) {
        Health::Ok => (StatusCode::OK, json!({ "status": "ok", "jobs": details })),
        Health::Degraded(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "degraded", "reason": reason, "jobs": details }),
        ),
        Health::Unavailable(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "reason": reason, "jobs": details }),
        ),
    };
    if let Some(membership) = &settings.membership {
        body["node"] = json!(membership.name);
        body["redis"] = json!(if membership.redis_up() { "up" } else { "down" });
        body["scanner"] = json!(membership.is_scanner());
    }
    Ok(HttpResponse::build(status).json(body))
}

/// Prometheus text format: the daemon's own metrics, and the jobs by state from the store.
async fn metrics(
    store: web::Data<dyn JobStore>,
    metrics: web::Data<Metrics>,
    settings: web::Data<WebSettings>,
) -> Result<HttpResponse, ApiError> {
    let counts = ask(&store, |store| store.counts()).await?;
    let scrape = settings.membership.as_ref().map(|m| m.scrape());
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode(counts, scrape)))
}

/// A rendered page, or a 500 that says which page failed (the cause goes to the log).
fn html(rendered: Result<String, askama::Error>, what: &str) -> HttpResponse {
    html_with_status(rendered, what, StatusCode::OK)
}

fn html_with_status(
    rendered: Result<String, askama::Error>,
    what: &str,
    status: StatusCode,
) -> HttpResponse {
    match rendered {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            log::error!("cannot render {what}: {err}");
            HttpResponse::InternalServerError().body(format!("cannot render {what}"))
        }
    }
}

/// `?next=PATH`: where a form sent without JavaScript goes back to (the upload, retry and
/// sign-in forms).
#[derive(Debug, serde::Deserialize)]
pub struct NextQuery {
    pub next: Option<String>,
}

impl NextQuery {
    /// A 303 to `next`, when it was given and is a local path.
    pub fn redirect(&self) -> Option<HttpResponse> {
        self.next.as_deref().and_then(local_path).map(see_other)
    }
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// `next` when it is a path on this server (`/…`, not `//host/…`): where a form may send the
/// browser back to, never elsewhere.
pub fn local_path(next: &str) -> Option<&str> {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    local.then_some(next)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed() {
        for good in ["/", "/jobs/01J?x=1", "/?page=2"] {
            assert_eq!(super::local_path(good), Some(good));
        }
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "evil",
            "/\\evil",
            "/a\nb",
            "",
        ] {
            assert_eq!(super::local_path(bad), None, "{bad:?}");
        }
    }
}
