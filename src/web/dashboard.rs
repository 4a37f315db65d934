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
use crate::job::{Counts, JobSnapshot, JobState, KindCount, Minute};
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
    /// While it runs: time since it started (also in ms, for the page's clock to go on
    /// from), bytes per second so far, and the time left at that speed.
    pub elapsed: String,
    pub elapsed_ms: u64,
    pub speed: String,
    pub eta: String,
}

/// The throughput chart: bars of files per minute, a value axis and a time axis.
pub struct Chart {
    pub width: usize,
    pub height: usize,
    /// Where the grid lines run, and how wide a bar is.
    pub grid_from: usize,
    pub grid_to: usize,
    pub bar_width: usize,
    pub bars: Vec<Bar>,
    pub values: Vec<Tick>,
    pub times: Vec<Tick>,
    /// No file finished in any of the minutes shown.
    pub empty: bool,
}

pub struct Bar {
    pub x: usize,
    pub y: u64,
    pub height: u64,
    pub label: String,
}

/// A labelled point of an axis: `at` is y for the value axis, x for the time axis.
pub struct Tick {
    pub at: u64,
    pub label: String,
}

/// Finished files of one kind, as the counts show them.
pub struct KindRow {
    pub kind: &'static str,
    pub completed: usize,
    pub failed: usize,
}

/// Layout of the chart, in pixels.
const CHART_LEFT: usize = 40;
const CHART_TOP: u64 = 8;
const CHART_HEIGHT: u64 = 72;
const BAR_STEP: usize = 20;
const BAR_WIDTH: usize = 16;
/// Time labels every this many minutes.
const TIME_EVERY: u64 = 5;

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
    chart: Chart,
    /// Finished files of the history by kind, and what they are counted over.
    kinds: Vec<KindRow>,
    kinds_caption: String,
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
            duration: summary.map_or(String::new(), |s| {
                took(s.duration_us.max(s.duration_ms.saturating_mul(1000)))
            }),
            when: clock(when),
            progress_done: done,
            progress_total: total.max(1),
            percent: (done * 100).checked_div(total).unwrap_or(0),
            elapsed: String::new(),
            elapsed_ms: 0,
            speed: String::new(),
            eta: String::new(),
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

/// Running jobs as rows with their elapsed time, speed and time left at `now`.
fn running_rows(jobs: Vec<JobSnapshot>, now: SystemTime) -> Vec<Row> {
    jobs.into_iter()
        .map(|job| {
            let elapsed = job
                .started_at
                .and_then(|started| now.duration_since(started).ok())
                .unwrap_or_default();
            let (speed, eta) = pace(job.size_bytes, job.progress, elapsed);
            let mut row = Row::from(job);
            row.elapsed = span(elapsed.as_secs_f64());
            row.elapsed_ms = elapsed.as_millis() as u64;
            row.speed = speed;
            row.eta = eta;
            row
        })
        .collect()
}

/// Speed so far and time left at that speed, from the share of segments done: "—" for
/// both until a first segment is done (no speed is known yet).
fn pace(size: u64, progress: Option<(u64, u64)>, elapsed: std::time::Duration) -> (String, String) {
    let unknown = || ("—".to_string(), "—".to_string());
    let Some((done, total)) = progress.filter(|&(done, total)| done > 0 && total > 0) else {
        return unknown();
    };
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return unknown();
    }
    let share = (done.min(total) as f64) / total as f64;
    let speed = size as f64 * share / seconds;
    let left = seconds * (1.0 - share) / share;
    (format!("{}/s", human_bytes(speed as u64)), span(left))
}

/// An analysis time: `412 µs`, `12.3 ms`, `2.41 s`, then as `span`.
fn took(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        1_000_000..60_000_000 => format!("{:.2} s", us as f64 / 1e6),
        _ => span(us as f64 / 1e6),
    }
}

/// A duration for people: `0.4 s`, `12 s`, `3 min 05 s`, `2 h 07 min`.
fn span(seconds: f64) -> String {
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    match whole {
        0..60 => format!("{whole} s"),
        60..3600 => format!("{} min {:02} s", whole / 60, whole % 60),
        _ => format!("{} h {:02} min", whole / 3600, whole % 3600 / 60),
    }
}

/// The chart of the minutes given, oldest first: bars scaled to a round top value.
fn chart(minutes: &[Minute]) -> Chart {
    let most = minutes.iter().map(|m| m.files).max().unwrap_or(0);
    let top = round_top(most);
    let bottom = CHART_TOP + CHART_HEIGHT;
    let bars = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let height = scaled(m.files.min(top), top);
            Bar {
                x: CHART_LEFT + i * BAR_STEP + (BAR_STEP - BAR_WIDTH) / 2,
                y: bottom - height,
                height,
                label: format!(
                    "{}: {} files, {}",
                    clock(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.minute * 60)),
                    m.files,
                    human_bytes(m.bytes)
                ),
            }
        })
        .collect();
    let values = [0, top / 2, top]
        .into_iter()
        .map(|value| Tick {
            at: bottom - scaled(value, top),
            label: value.to_string(),
        })
        .collect();
    let times = minutes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.minute % TIME_EVERY == 0)
        .map(|(i, m)| Tick {
            at: (CHART_LEFT + i * BAR_STEP + BAR_STEP / 2) as u64,
            label: format!("{:02}:{:02}", m.minute / 60 % 24, m.minute % 60),
        })
        .collect();
    let plot_end = CHART_LEFT + minutes.len() * BAR_STEP;
    Chart {
        // Room right of the plot for the "UTC" label.
        width: plot_end + 30,
        height: (bottom + 22) as usize,
        grid_from: CHART_LEFT - 4,
        grid_to: plot_end,
        bar_width: BAR_WIDTH,
        bars,
        values,
        times,
        empty: most == 0,
    }
}

/// Pixels for `value` (at most `top`) on the value axis; in 128 bits, so that no count can
/// overflow it.
fn scaled(value: u64, top: u64) -> u64 {
    (u128::from(value) * u128::from(CHART_HEIGHT) / u128::from(top.max(1))) as u64
}

/// The value at the top of the chart: the first of 2, 4, 6, 10, 20, 40, 60, 100, … at
/// least `most` (even, so that its half is a whole number too).
fn round_top(most: u64) -> u64 {
    let mut scale: u64 = 1;
    loop {
        for step in [2u64, 4, 6, 10] {
            let top = step.saturating_mul(scale);
            if top >= most || top == u64::MAX {
                return top;
            }
        }
        scale = scale.saturating_mul(10);
    }
}

/// The kinds' counts, and what they count: the history, which holds every finished file
/// unless `--history` dropped the oldest.
fn kind_rows(kinds: Vec<KindCount>, counts: Counts) -> (Vec<KindRow>, String) {
    let shown: usize = kinds.iter().map(|k| k.completed + k.failed).sum();
    let all = counts.completed + counts.failed;
    let caption = if (shown as u64) < all {
        format!("By kind, of the {shown} most recent:")
    } else {
        "By kind:".to_string()
    };
    let rows = kinds
        .into_iter()
        .map(|k| KindRow {
            kind: k.kind.as_str(),
            completed: k.completed,
            failed: k.failed,
        })
        .collect();
    (rows, caption)
}

/// What the page shows of the store, asked in one go.
struct Reading {
    counts: Counts,
    pages: usize,
    page: usize,
    processed: Vec<JobSnapshot>,
    minutes: Vec<Minute>,
    kinds: Vec<KindCount>,
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
        kinds: store.kinds(),
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
    let (kinds, kinds_caption) = kind_rows(reading.kinds, reading.counts);
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
        processing: running_rows(reading.processing, SystemTime::now()),
        processed: rows(reading.processed),
        failed: rows(reading.failed),
        page: reading.page,
        pages: reading.pages,
        chart: chart(minutes),
        kinds,
        kinds_caption,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_top_is_round_and_at_least_the_highest_bar() {
        let tops: Vec<u64> = [0, 1, 2, 3, 5, 7, 10, 11, 45, 61, 100, 101, 9_999]
            .into_iter()
            .map(round_top)
            .collect();
        assert_eq!(tops, [2, 2, 2, 4, 6, 10, 10, 20, 60, 100, 100, 200, 10_000]);
        assert_eq!(round_top(u64::MAX), u64::MAX);
        assert_eq!(scaled(u64::MAX, u64::MAX), CHART_HEIGHT);
    }

    #[test]
    fn the_chart_has_axes_and_says_when_it_is_empty() {
        let minute = |minute, files| Minute {
            minute,
            files,
            bytes: files * 1000,
        };
        let quiet = chart(&[minute(600, 0), minute(601, 0)]);
        assert!(quiet.empty);
        // 10:00 UTC is minute 600 of the day; 10:05 has a label, 10:01 to 10:04 not.
        let busy = chart(&(600..606).map(|m| minute(m, m - 600)).collect::<Vec<_>>());
        assert!(!busy.empty);
        let times: Vec<&str> = busy.times.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(times, ["10:00", "10:05"]);
        let values: Vec<&str> = busy.values.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(values, ["0", "3", "6"]);
        // The highest bar (5 files, top 6) is 5/6 of the plot; the value axis' top is its top.
        assert_eq!(busy.bars[5].height, 5 * CHART_HEIGHT / 6);
        assert_eq!(busy.values[2].at, CHART_TOP);
        assert_eq!(busy.bars[0].height, 0);
    }

    #[test]
    fn speed_and_time_left_follow_the_share_done() {
        let second = std::time::Duration::from_secs(1);
        // A quarter of 40 MB in 2 s: 5 MB/s, 6 s to go.
        let (speed, eta) = pace(40_000_000, Some((1, 4)), 2 * second);
        assert_eq!(eta, "6.0 s");
        assert_eq!(speed, format!("{}/s", human_bytes(5_000_000)));
        assert_eq!(pace(40, Some((0, 4)), second), ("—".into(), "—".into()));
        assert_eq!(pace(40, None, second), ("—".into(), "—".into()));
        assert_eq!(took(412), "412 µs");
        assert_eq!(took(12_345), "12.3 ms");
        assert_eq!(took(2_414_000), "2.41 s");
        assert_eq!(took(185_000_000), "3 min 05 s");
        assert_eq!(span(0.42), "0.4 s");
        assert_eq!(span(59.6), "1 min 00 s");
        assert_eq!(span(185.0), "3 min 05 s");
        assert_eq!(span(7620.0), "2 h 07 min");
    }
}
