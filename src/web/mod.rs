//! The HTTP server (actix-web): the dashboard, the job pages, the JSON API, the event stream,
//! metrics and health — all read-only views of the registry.
//!
//! `configure` is the one list of routes. Handlers read the `Registry` (and, for one job, its
//! published report); they never move a file or touch the pipeline. The server is started and
//! stopped by `daemon`.

pub mod api;
pub mod dashboard;
pub mod events;
pub mod job_page;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::folders::Folders;
use crate::registry::Registry;

/// The server on an already bound listener, not yet running: await it in an actix system.
pub fn server(
    listener: TcpListener,
    registry: Arc<Registry>,
    folders: &Folders,
) -> std::io::Result<Server> {
    let registry = web::Data::from(registry);
    let folders = api::folders_data(folders);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .app_data(folders.clone())
            .configure(configure)
    })
    .workers(2)
    // The daemon handles SIGINT/SIGTERM itself and stops the server last.
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?
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
        .route("/api/events", web::get().to(events::events))
        .route("/metrics", web::get().to(metrics));
}

/// 200 while the watcher and the pool are alive, else 503 with the reason; with the counts
/// and the uptime either way.
async fn health(registry: web::Data<Registry>) -> HttpResponse {
    let counts = registry.counts();
    let details = json!({
        "queued": counts.queued,
        "processing": counts.processing,
        "completed": counts.completed,
        "failed": counts.failed,
        "uptime_seconds": registry.uptime_seconds(),
    });
    match registry.health() {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ok", "jobs": details })),
        Err(reason) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "reason": reason,
            "jobs": details,
        })),
    }
}

/// Prometheus text format.
async fn metrics(registry: web::Data<Registry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(registry.metrics_text())
}

/// A rendered page, or a 500 that says which page failed (the cause goes to the log).
fn html(rendered: Result<String, askama::Error>, what: &str) -> HttpResponse {
    match rendered {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            log::error!("cannot render {what}: {err}");
            HttpResponse::InternalServerError().body(format!("cannot render {what}"))
        }
    }
}
