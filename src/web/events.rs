//! `GET /api/events`: Server-Sent Events, a `job` event (the job as `/api/jobs/{id}` shows it,
//! without the report) on every state change, and a keep-alive comment when nothing happens.
//!
//! With `?changes=MS` (what the dashboard uses) it sends instead at most one `changed` event
//! every MS milliseconds (at least 100), carrying the counts, whenever anything changed: a page
//! that only redraws needs no event per file, and a burst of thousands of files then costs the
//! daemon and the browser a few events a second, and the pipeline nothing but a counter.
//!
//! Each client reads its own broadcast receiver: a slow or vanished client only loses its own
//! oldest events (it gets a `lagged` event saying how many) and never blocks the pipeline.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::{self, Bytes};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::health::Liveness;
use crate::job::JobSnapshot;
use crate::store::JobStore;
use crate::web::api::JobView;
use crate::web::ask;

/// Events already waiting that are sent together in one write.
const BATCH: usize = 256;

fn job_event(job: JobSnapshot) -> String {
    let data = serde_json::to_string(&JobView::from(job)).unwrap_or_default();
    format!("event: job\ndata: {data}\n\n")
}

fn lagged_event(missed: u64) -> String {
    format!("event: lagged\ndata: {missed}\n\n")
}

/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    changes: Option<u64>,
}

pub async fn events(
    store: web::Data<dyn JobStore>,
    liveness: web::Data<Liveness>,
    query: web::Query<EventsQuery>,
) -> HttpResponse {
    if let Some(ms) = query.changes {
        return changes(store, liveness, Duration::from_millis(ms.max(100)));
    }
    let receiver = store.changes().subscribe();
    // The first chunk opens the stream at once and sets the client's reconnection delay.
    let opening = Bytes::from_static(b"retry: 2000\n: connected\n\n");
    let stream = futures_util::stream::unfold(
        (receiver, Some(opening)),
        |(mut receiver, opening)| async move {
            if let Some(opening) = opening {
                return Some((Ok::<_, Infallible>(opening), (receiver, None)));
            }
            let mut chunk = match tokio::time::timeout(KEEP_ALIVE, receiver.recv()).await {
                Ok(Ok(job)) => job_event(job),
                Ok(Err(RecvError::Lagged(missed))) => lagged_event(missed),
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => {
                    return Some((
                        Ok(Bytes::from_static(b": keep-alive\n\n")),
                        (receiver, None),
                    ));
                }
            };
            // Whatever else is already waiting goes out in the same write.
            for _ in 0..BATCH {
                match receiver.try_recv() {
                    Ok(job) => chunk.push_str(&job_event(job)),
                    Err(TryRecvError::Lagged(missed)) => chunk.push_str(&lagged_event(missed)),
                    Err(_) => break,
                }
            }
            let chunk = Bytes::from(chunk);
            Some((Ok(chunk), (receiver, None)))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}

/// `?changes=MS`: one `changed` event (with the counts) per interval in which anything changed.
/// It reads the store's and the liveness's version counters once per interval and subscribes
/// to nothing, so a burst of thousands of files costs the daemon a few events a second per
/// open dashboard.
fn changes(
    store: web::Data<dyn JobStore>,
    liveness: web::Data<Liveness>,
    every: Duration,
) -> HttpResponse {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let opening = Bytes::from_static(b"retry: 2000\n: connected\n\n");
    let version = |store: &web::Data<dyn JobStore>, liveness: &Liveness| {
        store.changes().version().wrapping_add(liveness.version())
    };
    let seen = version(&store, &liveness);
    let stream = futures_util::stream::unfold(
        (ticks, store, liveness, seen, Some(opening)),
        move |(mut ticks, store, liveness, mut seen, opening)| async move {
            if let Some(opening) = opening {
                let state = (ticks, store, liveness, seen, None);
                return Some((Ok::<_, Infallible>(opening), state));
            }
            let quiet_since = tokio::time::Instant::now();
            loop {
                ticks.tick().await;
                let now = version(&store, &liveness);
                if now != seen {
                    // A store that does not answer now is asked again at the next tick.
                    let Ok(counts) = ask(&store, |store| store.counts()).await else {
                        continue;
                    };
                    seen = now;
                    let counts = serde_json::to_string(&counts).unwrap_or_default();
                    let chunk = Bytes::from(format!("event: changed\ndata: {counts}\n\n"));
                    return Some((Ok(chunk), (ticks, store, liveness, seen, None)));
                }
                if quiet_since.elapsed() >= KEEP_ALIVE {
                    let keep_alive = Bytes::from_static(b": keep-alive\n\n");
                    return Some((Ok(keep_alive), (ticks, store, liveness, seen, None)));
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}
