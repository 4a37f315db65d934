//! The JSON API over real HTTP against the running daemon (SPEC §5).

mod common;

use std::time::Duration;

use common::{Daemon, Workspace, wait_until};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let (status, body) = daemon.get(path);
    let json = serde_json::from_str(&body).unwrap_or_else(|err| panic!("{path}: {err}: {body}"));
    (status, json)
}

fn drop_file(ws: &Workspace, name: &str, body: &[u8]) {
    ws.write(&format!("stage/{name}"), body);
    std::fs::rename(
        ws.path(&format!("stage/{name}")),
        ws.path(&format!("watch_dir/unprocessed/{name}")),
    )
    .expect("move in");
}

fn finished(daemon: &Daemon) -> u64 {
    let (_, status) = get_json(daemon, "/api/status");
    status["counts"]["completed"].as_u64().unwrap_or(0)
        + status["counts"]["failed"].as_u64().unwrap_or(0)
}

#[test]
fn status_jobs_and_one_job_tell_what_happened() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    drop_file(&ws, "users.csv", b"user_id,amount\nu1,5\nu2,7\nu1,1\n");
    assert!(
        wait_until(LONG, || finished(&daemon) == 1),
        "{}",
        daemon.log()
    );
    drop_file(&ws, "broken.json", b"{\"a\": ");
    assert!(
        wait_until(LONG, || finished(&daemon) == 2),
        "{}",
        daemon.log()
    );

    let (code, status) = get_json(&daemon, "/api/status");
    assert_eq!(code, 200);
    assert_eq!(status["counts"]["completed"], 1);
    assert_eq!(status["counts"]["failed"], 1);
    assert_eq!(status["counts"]["queued"], 0);
    assert_eq!(status["processed"][0]["file"], "users.csv");
    assert_eq!(status["processed"][0]["kind"], "csv");
    assert_eq!(status["failed"][0]["error"]["kind"], "invalid_json");
    assert_eq!(status["last_processed"]["file"], "users.csv");

    // Newest first: the failed job came second.
    let (_, all) = get_json(&daemon, "/api/jobs");
    assert_eq!(all["total"], 2);
    assert_eq!(all["jobs"][0]["file"], "broken.json");
    assert_eq!(all["jobs"][1]["file"], "users.csv");
    let (_, page) = get_json(&daemon, "/api/jobs?limit=1&offset=1");
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["jobs"][0]["file"], "users.csv");
    let (_, failed) = get_json(&daemon, "/api/jobs?state=failed");
    assert_eq!(failed["total"], 1);
    let (code, bad) = get_json(&daemon, "/api/jobs?state=sideways");
    assert_eq!(code, 400);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("sideways"))
    );

    // One job: its report is the one on disk.
    let id = status["processed"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (code, job) = get_json(&daemon, &format!("/api/jobs/{id}"));
    assert_eq!(code, 200);
    assert_eq!(job["state"], "completed");
    let on_disk = ws.read_json("watch_dir/processed/users.csv.report.json");
    assert_eq!(job["report"], on_disk);
    assert_eq!(job["report"]["csv"]["distinct_users"], 2);

    for unknown in [
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "not-an-id",
        "..%2F..%2Fetc%2Fpasswd",
    ] {
        let (code, error) = get_json(&daemon, &format!("/api/jobs/{unknown}"));
        assert_eq!(code, 404, "{unknown}");
        assert!(error["error"].as_str().is_some(), "{unknown}: {error}");
    }
}

#[test]
fn the_history_survives_a_restart() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    for i in 0..5 {
        drop_file(&ws, &format!("f{i}.txt"), format!("line {i}\n").as_bytes());
    }
    drop_file(&ws, "bad.json", b"[");
    assert!(
        wait_until(LONG, || finished(&daemon) == 6),
        "{}",
        daemon.log()
    );
    let (_, before) = get_json(&daemon, "/api/jobs?limit=100");
    daemon.kill();

    // Only the newest 4 come back into the history; the counters count every report.
    let daemon = Daemon::start(&ws, &["--history", "4"], &[]);
    let (_, status) = get_json(&daemon, "/api/status");
    assert_eq!(status["counts"]["completed"], 5);
    assert_eq!(status["counts"]["failed"], 1);
    let (_, after) = get_json(&daemon, "/api/jobs?limit=100");
    assert_eq!(after["total"], 4);
    let before_ids: Vec<&Value> = before["jobs"].as_array().expect("jobs").iter().collect();
    for job in after["jobs"].as_array().expect("jobs") {
        let same = before_ids
            .iter()
            .find(|old| old["job_id"] == job["job_id"])
            .unwrap_or_else(|| panic!("{job} was not there before"));
        assert_eq!(same["file"], job["file"]);
        assert_eq!(same["state"], job["state"]);
    }
    let id = after["jobs"][0]["job_id"].as_str().expect("id");
    let (code, job) = get_json(&daemon, &format!("/api/jobs/{id}"));
    assert_eq!(code, 200);
    assert!(job["report"].is_object(), "{job}");
}

/// Reads a Server-Sent Events stream until `done` says the text so far is enough.
fn read_events(port: u16, done: impl Fn(&str) -> bool, after_connect: impl FnOnce()) -> String {
    read_stream(port, "/api/events", done, after_connect)
}

fn read_stream(
    port: u16,
    path: &str,
    done: impl Fn(&str) -> bool,
    after_connect: impl FnOnce(),
) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let mut after_connect = Some(after_connect);
    let deadline = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < deadline && !done(&text) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
        if text.contains(": connected")
            && let Some(act) = after_connect.take()
        {
            act();
        }
    }
    text
}

#[test]
fn events_stream_every_state_change_of_a_job() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    let text = read_events(
        daemon.port,
        |text| text.contains("\"state\":\"completed\""),
        || drop_file(&ws, "live.log", b"WARN live\n"),
    );
    assert!(text.contains("text/event-stream"), "{text}");
    let states: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|job| job["file"] == "live.log" || job["original_name"] == "live.log")
        .map(|job| job["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(states, ["queued", "processing", "completed"], "{text}");
    assert!(text.contains("event: job"), "{text}");
}

#[test]
fn the_dashboard_is_complete_without_javascript() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    drop_file(&ws, "a<b&c>.log", b"ERROR x\nINFO y\nINFO z\n");
    drop_file(&ws, "broken.json", b"{");
    assert!(
        wait_until(LONG, || finished(&daemon) == 2),
        "{}",
        daemon.log()
    );

    let (code, html) = daemon.get("/");
    assert_eq!(code, 200);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    // Names are escaped, never markup.
    assert!(!html.contains("a<b&c>.log"), "{html}");
    assert!(html.contains("a&#60;b&#38;c&#62;.log"), "{html}");
    assert!(html.contains("3 lines"), "{html}");
    // Its duration as its report has it, to the microsecond below a millisecond.
    let report = ws.read_json("watch_dir/processed/a<b&c>.log.report.json");
    let us = report["duration_us"].as_u64().expect("duration_us");
    let shown = match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    };
    assert!(html.contains(&format!(">{shown}</td>")), "{shown}: {html}");
    assert!(html.contains("id=\"last-processed\""), "{html}");
    assert!(
        html.contains("invalid_json"),
        "the failure and its message: {html}"
    );
    assert!(
        html.contains("<script src=\"/static/dashboard.js\">"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN: {html}"
    );

    // The chart's value axis runs 0, 1, 2 (files per minute) over 72 pixels: the two files
    // are 36 pixels each, in one minute's bar or in two.
    let heights: u64 = html
        .split("<rect class=\"bar\"")
        .skip(1)
        .filter_map(|bar| {
            bar.split("height=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(heights, 72, "{html}");
    for label in [">0</text>", ">1</text>", ">2</text>", ">UTC</text>"] {
        assert!(html.contains(label), "{label}: {html}");
    }
    assert!(html.contains("id=\"kind-text\""), "{html}");
    assert!(html.contains("page 1 of 1"), "{html}");
    // Past the last page: the last page, not an error.
    let (code, past) = daemon.get("/?page=9");
    assert_eq!(code, 200);
    assert!(
        past.contains("page 1 of 1") && past.contains("id=\"processed\""),
        "{past}"
    );

    let (code, fragment) = daemon.get("/?fragment=1");
    assert_eq!(code, 200);
    assert!(
        !fragment.contains("<html") && fragment.contains("id=\"processed\""),
        "{fragment}"
    );
    let (code, script) = daemon.get("/static/dashboard.js");
    assert_eq!(code, 200);
    assert!(script.contains("EventSource"), "{script}");
}

#[test]
fn a_job_page_shows_its_report_as_tables() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    drop_file(
        &ws,
        "orders.csv",
        b"user_id,amount,city\nu1,5,Oslo\nu2,7,Rome\nu1,1,Oslo\nu1,2,<Paris>\n",
    );
    drop_file(&ws, "app.log", b"ERROR one\nWARN two\nERROR three\n");
    assert!(
        wait_until(LONG, || finished(&daemon) == 2),
        "{}",
        daemon.log()
    );
    let (_, jobs) = get_json(&daemon, "/api/jobs");
    let id_of = |file: &str| {
        jobs["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["file"] == file))
            .and_then(|j| j["job_id"].as_str())
            .expect("job")
            .to_string()
    };

    let (code, html) = daemon.get(&format!("/jobs/{}", id_of("orders.csv")));
    assert_eq!(code, 200);
    for want in [
        "id=\"columns\"",
        "<td>amount</td>",
        "<td>integer</td>",
        "id=\"top-users\"",
        "<th>u1</th><td class=\"num\">3</td>",
        "&#60;Paris&#62;",
    ] {
        assert!(html.contains(want), "{want} missing in:\n{html}");
    }
    assert!(!html.contains("<Paris>"), "escaped");

    let (code, html) = daemon.get(&format!("/jobs/{}", id_of("app.log")));
    assert_eq!(code, 200);
    assert!(html.contains("id=\"levels\""), "{html}");
    assert!(
        html.contains("<th>ERROR</th><td class=\"num\">2</td>"),
        "{html}"
    );
    assert_eq!(daemon.get("/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV").0, 404);
}

#[test]
fn a_large_file_sends_throttled_progress_events() {
    let ws = Workspace::new();
    let daemon = Daemon::start(
        &ws,
        &["--settle-ms", "50", "--segment-bytes", "1048576"],
        &[],
    );
    let line = b"INFO one line of a large log, repeated to make the analysis last a while\n";
    let big: Vec<u8> = line.iter().copied().cycle().take(40 << 20).collect();
    ws.write("stage/big.log", &big);
    let started = std::time::Instant::now();
    let text = read_events(
        daemon.port,
        |text| text.contains("\"state\":\"completed\""),
        || {
            std::fs::rename(
                ws.path("stage/big.log"),
                ws.path("watch_dir/unprocessed/big.log"),
            )
            .expect("move in")
        },
    );
    let elapsed = started.elapsed();
    let progress: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|job| job["state"] == "processing")
        .filter_map(|job| {
            Some((
                job["progress"]["done"].as_u64()?,
                job["progress"]["total"].as_u64()?,
            ))
        })
        .collect();
    assert!(
        progress
            .iter()
            .any(|&(done, total)| done > 0 && done < total),
        "no progress in between: {progress:?} after {elapsed:?}"
    );
    // At most four a second (plus the start).
    let most = elapsed.as_millis() as usize / 250 + 2;
    assert!(
        progress.len() <= most,
        "{} events in {elapsed:?}",
        progress.len()
    );
}

#[test]
fn the_changes_stream_coalesces_a_burst_into_a_few_events() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    let started = std::time::Instant::now();
    let text = read_stream(
        daemon.port,
        "/api/events?changes=200",
        |text| text.contains("\"completed\":50"),
        || {
            for i in 0..50 {
                drop_file(&ws, &format!("b{i}.txt"), format!("{i}\n").as_bytes());
            }
        },
    );
    let elapsed = started.elapsed();
    let changed = text.matches("event: changed").count();
    assert!(text.contains("\"completed\":50"), "{text}");
    assert!(!text.contains("event: job"), "{text}");
    assert!(
        changed >= 1 && changed <= elapsed.as_millis() as usize / 200 + 2,
        "{changed} events in {elapsed:?}"
    );
}

#[test]
fn check_health_answers_for_the_running_daemon() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[("FP_TOKEN", "t0ken")]);
    let port = daemon.port.to_string();
    // As the Docker image's HEALTHCHECK runs it: host and port from the environment, the
    // server on every address; /health needs no token.
    let healthy = ws.run_with_env(
        &["--check-health"],
        &[("FP_HOST", "0.0.0.0"), ("FP_PORT", &port)],
    );
    assert_eq!(
        healthy.status.code(),
        Some(0),
        "{}",
        common::stderr(&healthy)
    );
    drop(daemon);
    let gone = ws.run_with_env(&["--check-health", "--port", &port], &[]);
    assert_eq!(gone.status.code(), Some(1));
    let stderr = common::stderr(&gone);
    assert!(stderr.starts_with("unhealthy: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The counts by kind cover the history: with `--history 3`, five files finished show three,
/// the newest, and the dashboard says what they are counted over.
#[test]
fn counts_by_kind_cover_the_history_and_say_so() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50", "--history", "3"], &[]);
    let files: [(&str, &[u8]); 5] = [
        ("a.csv", b"x\n1\n"),
        ("b.log", b"INFO a\n"),
        ("c.json", b"{"),
        ("d.csv", b"y\n2\n"),
        ("e.json", b"[1]"),
    ];
    for (done, (name, body)) in (1..).zip(files) {
        drop_file(&ws, name, body);
        // One at a time, so that which three are the newest is known.
        assert!(
            wait_until(LONG, || finished(&daemon) == done),
            "{}",
            daemon.log()
        );
    }
    let (_, status) = get_json(&daemon, "/api/status");
    // The newest three: c.json (failed), d.csv, e.json.
    assert_eq!(
        status["kinds"],
        serde_json::json!([
            {"kind": "csv", "completed": 1, "failed": 0},
            {"kind": "json", "completed": 1, "failed": 1},
        ]),
        "{status}"
    );
    let (_, html) = daemon.get("/");
    assert!(html.contains("By kind, of the 3 most recent:"), "{html}");
    assert!(html.contains("+1 failed"), "{html}");
}
