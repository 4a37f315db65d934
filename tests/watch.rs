//! Watch mode, end to end: the real daemon on real folders, killed and restarted for real.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{Daemon, Workspace, wait_until};
use rustix::process::Signal;

const LONG: Duration = Duration::from_secs(120);

fn is_report(name: &str) -> bool {
    name.ends_with(".report.json") || name.ends_with(".error.json")
}

/// Data files (not reports) in `processed/` and `failed/`.
fn finished_files(ws: &Workspace) -> Vec<String> {
    let mut names = Vec::new();
    for folder in ["processed", "failed"] {
        for name in ws.files_in(&format!("watch_dir/{folder}")) {
            if !is_report(&name) {
                names.push(format!("{folder}/{name}"));
            }
        }
    }
    names
}

fn count_finished(ws: &Workspace) -> usize {
    finished_files(ws).len()
}

/// Every file dropped (by content) is finished exactly once, each with exactly one report that
/// names it, nothing is left in `underprocess/`, and no temp file is anywhere.
fn assert_exactly_once(ws: &Workspace, dropped: &[Vec<u8>]) {
    let mut seen: HashMap<Vec<u8>, Vec<String>> = HashMap::new();
    for rel in finished_files(ws) {
        let bytes = fs::read(ws.path(&format!("watch_dir/{rel}"))).expect("read finished");
        seen.entry(bytes).or_default().push(rel.clone());
        let suffix = if rel.starts_with("processed/") {
            ".report.json"
        } else {
            ".error.json"
        };
        let report = ws.read_json(&format!("watch_dir/{rel}{suffix}"));
        let name = rel
            .split_once('/')
            .map(|(_, name)| name)
            .unwrap_or_default();
        assert_eq!(report["file"], name, "report of {rel}");
    }
    for content in dropped {
        let places = seen.remove(content).unwrap_or_default();
        assert_eq!(
            places.len(),
            1,
            "{:?} finished {} times: {places:?}",
            String::from_utf8_lossy(&content[..content.len().min(40)]),
            places.len()
        );
    }
    assert!(seen.is_empty(), "finished files nobody dropped: {seen:?}");
    for folder in ["processed", "failed"] {
        let names = ws.files_in(&format!("watch_dir/{folder}"));
        let reports = names.iter().filter(|n| is_report(n)).count();
        assert_eq!(
            reports * 2,
            names.len(),
            "one report per file in {folder}: {names:?}"
        );
    }
    assert!(ws.files_in("watch_dir/underprocess").is_empty());
    for folder in ["unprocessed", "underprocess", "processed", "failed"] {
        let temps: Vec<_> = ws
            .files_in(&format!("watch_dir/{folder}"))
            .into_iter()
            .filter(|n| n.starts_with(".fp-"))
            .collect();
        assert!(temps.is_empty(), "temp files left in {folder}: {temps:?}");
    }
}

/// `count` distinct small files written in `stage/` (same filesystem), for moving in.
fn stage_files(ws: &Workspace, count: usize, prefix: &str) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let name = format!("{prefix}{i:05}.log");
            let body = format!("file {prefix}{i}\nINFO line {i}\n").into_bytes();
            ws.write(&format!("stage/{name}"), &body);
            (name, body)
        })
        .collect()
}

/// Writes `writes` lines of `level` into `unprocessed/NAME` through one open handle, pausing
/// after each, and checks after each pause that the file was not claimed. Returns the bytes.
fn write_slowly(
    ws: &Workspace,
    name: &str,
    level: &str,
    writes: usize,
    pause: Duration,
) -> Vec<u8> {
    let path = ws.path(&format!("watch_dir/unprocessed/{name}"));
    let mut file = fs::File::create(&path).expect("create");
    let mut written = Vec::new();
    for i in 0..writes {
        let line = format!("{level} write {i} of a slow writer\n");
        file.write_all(line.as_bytes()).expect("write");
        file.flush().expect("flush");
        written.extend_from_slice(line.as_bytes());
        std::thread::sleep(pause);
        assert!(
            path.exists(),
            "claimed while still being written (write {i})"
        );
    }
    written
}

fn move_in(ws: &Workspace, name: &str) {
    fs::rename(
        ws.path(&format!("stage/{name}")),
        ws.path(&format!("watch_dir/unprocessed/{name}")),
    )
    .expect("move in");
}

#[test]
fn startup_requeues_underprocess_cleans_temps_and_scans_unprocessed() {
    let ws = Workspace::new();
    ws.write("watch_dir/underprocess/left.txt", b"left by a crash\n");
    ws.write("watch_dir/unprocessed/old.csv", b"user_id,n\nu1,1\nu2,2\n");
    ws.write("watch_dir/unprocessed/new.txt", b"hello world\n");
    ws.write("watch_dir/unprocessed/.fp-upload.tmp", b"half an upload");
    ws.write("watch_dir/processed/.fp-01ABC.tmp", b"{\"file\": \"nothing");
    let daemon = Daemon::start(&ws, &["--settle-ms", "100"], &[]);
    assert!(
        wait_until(LONG, || count_finished(&ws) == 3),
        "{}",
        daemon.log()
    );
    assert_exactly_once(
        &ws,
        &[
            b"left by a crash\n".to_vec(),
            b"user_id,n\nu1,1\nu2,2\n".to_vec(),
            b"hello world\n".to_vec(),
        ],
    );
    let report = ws.read_json("watch_dir/processed/old.csv.report.json");
    assert_eq!(report["csv"]["rows"], 2);
    assert_eq!(report["csv"]["distinct_users"], 2);
    assert!(daemon.log().contains("requeued"), "{}", daemon.log());
}

#[test]
fn a_burst_with_dropped_events_loses_nothing_and_repeats_nothing() {
    let ws = Workspace::new();
    let files = stage_files(&ws, 3000, "burst");
    // A tiny event buffer and one worker: the scheduler falls behind, events are dropped,
    // and only the rescan can find the rest (the reconcile scan is too far away to help).
    let daemon = Daemon::start(
        &ws,
        &[
            "--event-buffer",
            "16",
            "--workers",
            "1",
            "--settle-ms",
            "100",
            "--reconcile-ms",
            "600000",
        ],
        &[],
    );
    for (name, _) in &files {
        move_in(&ws, name);
    }
    assert!(
        wait_until(LONG, || count_finished(&ws) >= files.len()),
        "finished {} of {}",
        count_finished(&ws),
        files.len()
    );
    let log = daemon.log();
    assert!(
        log.contains("rescanning"),
        "no rescan happened:\n{}",
        &log[..log.len().min(3000)]
    );
    let (_, metrics) = daemon.get("/metrics");
    let rescans = metrics
        .lines()
        .find_map(|l| l.strip_prefix("file_processor_rescans_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(rescans.is_some_and(|n| n >= 1), "{metrics}");
    std::thread::sleep(Duration::from_millis(300));
    let dropped: Vec<Vec<u8>> = files.into_iter().map(|(_, body)| body).collect();
    assert_exactly_once(&ws, &dropped);
    assert!(ws.files_in("watch_dir/unprocessed").is_empty());
}

#[test]
fn a_slow_writer_is_never_read_half_written() {
    let ws = Workspace::new();
    // Scans every 200 ms and settles after 100 ms: only the close event may make it ready.
    let daemon = Daemon::start(&ws, &["--settle-ms", "100", "--reconcile-ms", "200"], &[]);
    let expected = write_slowly(&ws, "slow.log", "ERROR", 10, Duration::from_millis(300));
    assert!(
        wait_until(LONG, || count_finished(&ws) == 1),
        "{}",
        daemon.log()
    );
    let report = ws.read_json("watch_dir/processed/slow.log.report.json");
    assert_eq!(report["size_bytes"], expected.len());
    assert_eq!(report["text"]["lines"], 10);
    assert_eq!(report["text"]["log_levels"]["ERROR"], 10);
    assert_exactly_once(&ws, &[expected]);
}

#[test]
fn the_same_name_dropped_twenty_times_gives_twenty_files() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "100"], &[]);
    let mut dropped = Vec::new();
    for i in 0..20 {
        let body = format!("id,value\n{i},{}\n", i * i).into_bytes();
        ws.write("stage/data.csv", &body);
        move_in(&ws, "data.csv");
        dropped.push(body);
        assert!(
            wait_until(LONG, || !ws.path("watch_dir/unprocessed/data.csv").exists()),
            "{}",
            daemon.log()
        );
    }
    assert!(
        wait_until(LONG, || count_finished(&ws) == 20),
        "{}",
        daemon.log()
    );
    assert_exactly_once(&ws, &dropped);
    let mut names = ws.files_in("watch_dir/processed");
    names.retain(|n| !is_report(n));
    let mut want: Vec<String> = std::iter::once("data.csv".to_string())
        .chain((2..=20).map(|i| format!("data-{i}.csv")))
        .collect();
    want.sort();
    assert_eq!(names, want);
    for name in &names {
        let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
        assert_eq!(report["original_name"], "data.csv");
        assert_eq!(report["file"], name.as_str());
    }
}

#[test]
fn sigkill_at_every_crash_point_then_restart_finishes_each_file_once() {
    for point in ["after-claim", "during-report-write", "after-report"] {
        let ws = Workspace::new();
        let files = stage_files(&ws, 5, "crash");
        fs::create_dir_all(ws.path("watch_dir/unprocessed")).expect("mkdir");
        for (name, _) in &files {
            move_in(&ws, name);
        }
        let env = [("FP_CRASH_AT", point)];
        let args = ["--workers", "1", "--settle-ms", "50"];
        // The daemon may die before it announces itself: the first job is claimed at once.
        let mut crashed = match Daemon::try_start(&ws, &args, &env) {
            Ok(daemon) => Some(daemon),
            Err(log) => {
                assert!(
                    log.contains(point),
                    "{point}: did not reach the crash point:\n{log}"
                );
                None
            }
        };
        if let Some(daemon) = crashed.as_mut() {
            let status = daemon.wait(LONG).expect("the crash point kills the daemon");
            assert!(!status.success(), "{point}");
            assert!(daemon.log().contains(point), "{point}: {}", daemon.log());
        }
        let in_flight = ws.files_in("watch_dir/underprocess").len()
            + ws.files_in("watch_dir/processed").len()
            + ws.files_in("watch_dir/failed").len();
        assert!(in_flight > 0, "{point}: the crash happened mid-job");

        let daemon = Daemon::start(&ws, &args, &[]);
        assert!(
            wait_until(LONG, || count_finished(&ws) == files.len()),
            "{point}: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
        let dropped: Vec<Vec<u8>> = files.into_iter().map(|(_, body)| body).collect();
        assert_exactly_once(&ws, &dropped);
        if point == "after-report" {
            // The report published before the crash was kept, not written again.
            assert!(
                daemon.log().contains("was published before a crash"),
                "{}",
                daemon.log()
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_of_a_burst_then_restart_finishes_each_file_once() {
    let ws = Workspace::new();
    let files = stage_files(&ws, 600, "kill");
    fs::create_dir_all(ws.path("watch_dir/unprocessed")).expect("mkdir");
    for (name, _) in &files {
        move_in(&ws, name);
    }
    let args = ["--workers", "2", "--settle-ms", "20"];
    // Fixed pauses (no randomness in a test): early, mid-scan and mid-work kills.
    for pause_ms in [5, 40, 90, 150, 230] {
        let daemon = Daemon::start(&ws, &args, &[]);
        std::thread::sleep(Duration::from_millis(pause_ms));
        daemon.kill();
    }
    let daemon = Daemon::start(&ws, &args, &[]);
    assert!(
        wait_until(LONG, || count_finished(&ws) == files.len()),
        "finished {}: {}",
        count_finished(&ws),
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(200));
    let dropped: Vec<Vec<u8>> = files.into_iter().map(|(_, body)| body).collect();
    assert_exactly_once(&ws, &dropped);
}

#[test]
fn ignored_names_and_subfolders_are_left_alone() {
    let ws = Workspace::new();
    let ignored = [
        ".hidden.csv",
        "download.part",
        "chrome.crdownload",
        "scratch.tmp",
        ".notes.swp",
        "backup.txt~",
    ];
    fs::create_dir_all(ws.path("watch_dir/unprocessed")).expect("mkdir");
    let daemon = Daemon::start(&ws, &["--settle-ms", "50", "--reconcile-ms", "100"], &[]);
    for name in ignored {
        ws.write(&format!("watch_dir/unprocessed/{name}"), b"leave me\n");
    }
    ws.write("watch_dir/unprocessed/sub/inner.txt", b"leave me too\n");
    ws.write("watch_dir/unprocessed/real.txt", b"take me\n");
    assert!(
        wait_until(LONG, || count_finished(&ws) == 1),
        "{}",
        daemon.log()
    );
    // Several reconcile scans later, still untouched.
    std::thread::sleep(Duration::from_millis(600));
    let mut left = ws.files_in("watch_dir/unprocessed");
    left.sort();
    let mut want: Vec<String> = ignored.iter().map(|s| s.to_string()).collect();
    want.push("sub".to_string());
    want.sort();
    assert_eq!(left, want);
    assert_eq!(ws.files_in("watch_dir/unprocessed/sub"), vec!["inner.txt"]);
    assert_eq!(finished_files(&ws), vec!["processed/real.txt"]);
}

#[test]
fn sigterm_lets_the_running_job_finish_leaves_the_queue_and_exits_0() {
    let ws = Workspace::new();
    let mut daemon = Daemon::start(&ws, &["--workers", "1", "--settle-ms", "50"], &[]);
    // Large enough that its analysis is still running when the signal comes.
    let line = b"INFO a line of a large log file that takes a while to analyse\n";
    let mut big = Vec::with_capacity(48 << 20);
    while big.len() < 48 << 20 {
        big.extend_from_slice(line);
    }
    ws.write("stage/big.log", &big);
    move_in(&ws, "big.log");
    assert!(
        wait_until(LONG, || {
            let claimed = ws.files_in("watch_dir/underprocess");
            claimed.len() == 1 && claimed[0].ends_with("_big.log")
        }),
        "{}",
        daemon.log()
    );
    for i in 0..3 {
        ws.write(&format!("stage/q{i}.txt"), b"queued\n");
        move_in(&ws, &format!("q{i}.txt"));
    }
    std::thread::sleep(Duration::from_millis(100));
    daemon.signal(Signal::TERM);
    let status = daemon.wait(LONG).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert_eq!(
        finished_files(&ws),
        vec!["processed/big.log"],
        "{}",
        daemon.log()
    );
    assert_eq!(
        ws.files_in("watch_dir/unprocessed"),
        vec!["q0.txt", "q1.txt", "q2.txt"]
    );
    assert!(ws.files_in("watch_dir/underprocess").is_empty());
    let report = ws.read_json("watch_dir/processed/big.log.report.json");
    assert_eq!(report["size_bytes"], big.len());
}

#[test]
fn polling_finds_written_and_moved_files_only_once_they_settle() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--poll", "100", "--settle-ms", "1000"], &[]);
    ws.write("stage/moved.csv", b"a,b\n1,2\n");
    move_in(&ws, "moved.csv");
    // A writer pausing less than the settle time between writes.
    let expected = write_slowly(&ws, "written.log", "WARN", 8, Duration::from_millis(150));
    assert!(
        wait_until(LONG, || count_finished(&ws) == 2),
        "{}",
        daemon.log()
    );
    assert_exactly_once(&ws, &[b"a,b\n1,2\n".to_vec(), expected]);
    let report = ws.read_json("watch_dir/processed/written.log.report.json");
    assert_eq!(report["text"]["log_levels"]["WARN"], 8);
    assert!(daemon.log().contains("polling every"), "{}", daemon.log());
}

#[test]
fn health_a_bad_file_and_a_second_daemon_on_the_same_folder() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    let (status, body) = daemon.get("/health");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["status"], "ok");
    assert!(health["jobs"]["uptime_seconds"].is_u64(), "{health}");

    ws.write("stage/broken.json", b"{\"a\": [1, 2");
    ws.write("stage/fine.json", b"{\"a\": [1, 2]}");
    move_in(&ws, "broken.json");
    move_in(&ws, "fine.json");
    assert!(
        wait_until(LONG, || count_finished(&ws) == 2),
        "{}",
        daemon.log()
    );
    let report = ws.read_json("watch_dir/failed/broken.json.error.json");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["error"]["kind"], "invalid_json");
    assert_eq!(
        daemon.get("/health").0,
        200,
        "still healthy after a bad file"
    );

    let second = ws.run(&["--dir", "watch_dir", "--port", "0"]);
    assert_eq!(second.status.code(), Some(2));
    let err = common::stderr(&second);
    assert!(
        err.lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: another file-processor is already running"),
        "{err}"
    );
    assert!(Path::new(&ws.path("watch_dir/processed/fine.json")).exists());
}

#[test]
fn health_is_degraded_while_the_watched_folder_is_gone_and_heals() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--reconcile-ms", "100"], &[]);
    assert_eq!(daemon.get("/health").0, 200);
    // Gone, with a file in its place so that the daemon cannot create it again.
    let unprocessed = ws.path("watch_dir/unprocessed");
    fs::remove_dir_all(&unprocessed).expect("remove");
    fs::write(&unprocessed, b"in the way").expect("block");
    assert!(
        wait_until(LONG, || daemon.get("/health").0 == 503),
        "{}",
        daemon.log()
    );
    let (_, body) = daemon.get("/health");
    assert!(
        body.contains("degraded") && body.contains("unprocessed/"),
        "{body}"
    );
    // It stays so while the cause lasts (no latching either way), then heals on its own.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(daemon.get("/health").0, 503);
    fs::remove_file(&unprocessed).expect("unblock");
    assert!(
        wait_until(LONG, || daemon.get("/health").0 == 200),
        "{}",
        daemon.log()
    );
    assert!(unprocessed.is_dir());
}

/// Starts a one-worker daemon with `args` and waits until a large log is claimed; returns it
/// with the log's bytes.
fn daemon_busy_with_a_large_file(ws: &Workspace, args: &[&str]) -> (Daemon, Vec<u8>) {
    let mut all = vec!["--workers", "1", "--settle-ms", "50"];
    all.extend_from_slice(args);
    let daemon = Daemon::start(ws, &all, &[]);
    let line = b"INFO a line of a large log file that takes a while to analyse\n";
    let big: Vec<u8> = line.iter().copied().cycle().take(48 << 20).collect();
    ws.write("stage/big.log", &big);
    move_in(ws, "big.log");
    assert!(
        wait_until(LONG, || ws.files_in("watch_dir/underprocess").len() == 1),
        "{}",
        daemon.log()
    );
    // Claimed is not yet running: a job handed to the pool but not started when the signal
    // comes is put back in unprocessed/, and the shutdown has nothing to wait for (one CI run
    // under load sent its signal in that gap).
    assert!(
        wait_until(LONG, || daemon.counts()["processing"].as_u64() == Some(1)),
        "{}",
        daemon.log()
    );
    (daemon, big)
}

/// After an interrupted shutdown: the file waits in `underprocess/` with no report; a restart
/// finishes it exactly once.
fn assert_left_for_the_next_start(ws: &Workspace, big: Vec<u8>) {
    let left = ws.files_in("watch_dir/underprocess");
    assert!(left.len() == 1 && left[0].ends_with("_big.log"), "{left:?}");
    assert!(finished_files(ws).is_empty(), "{:?}", finished_files(ws));
    let daemon = Daemon::start(ws, &["--workers", "1"], &[]);
    assert!(
        wait_until(LONG, || count_finished(ws) == 1),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_exactly_once(ws, &[big]);
}

#[test]
fn a_shutdown_timeout_leaves_the_running_file_for_the_next_start() {
    let ws = Workspace::new();
    let (mut daemon, big) = daemon_busy_with_a_large_file(&ws, &["--shutdown-timeout", "200ms"]);
    daemon.signal(Signal::TERM);
    let status = daemon.wait(LONG).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert!(
        daemon.log().contains("still running after"),
        "{}",
        daemon.log()
    );
    assert_left_for_the_next_start(&ws, big);
}

#[test]
fn a_second_signal_exits_at_once_and_nothing_is_lost() {
    let ws = Workspace::new();
    let (mut daemon, big) = daemon_busy_with_a_large_file(&ws, &[]);
    daemon.signal(Signal::TERM);
    assert!(
        wait_until(LONG, || daemon.log().contains("finishing running jobs")),
        "{}",
        daemon.log()
    );
    daemon.signal(Signal::TERM);
    let status = daemon.wait(LONG).expect("exits");
    assert_eq!(status.code(), Some(1), "{}", daemon.log());
    assert_left_for_the_next_start(&ws, big);
}

#[test]
fn a_port_in_use_is_one_error_line_and_nothing_moves() {
    let ws = Workspace::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    ws.write("watch_dir/unprocessed/waiting.txt", b"stays\n");
    ws.write("watch_dir/unprocessed/.fp-upload.tmp", b"left by a crash\n");
    let out = ws.run(&["--dir", "watch_dir", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    // Not even start-up recovery ran: the daemon did not start.
    assert_eq!(
        ws.files_in("watch_dir/unprocessed"),
        [".fp-upload.tmp", "waiting.txt"]
    );
}

/// Small jobs take well under a millisecond: the report's `duration_us` and the duration
/// histogram keep them (the histogram once summed whole milliseconds, so such jobs counted 0),
/// and the time from ready to finished has its own histogram, never shorter than the analysis.
#[test]
fn small_jobs_are_timed_to_the_microsecond() {
    let ws = Workspace::new();
    let files = stage_files(&ws, 20, "tiny");
    let daemon = Daemon::start(&ws, &["--settle-ms", "100"], &[]);
    for (name, _) in &files {
        move_in(&ws, name);
    }
    assert!(
        wait_until(LONG, || count_finished(&ws) == files.len()),
        "{}",
        daemon.log()
    );
    let mut reported_us = 0u64;
    for (name, _) in &files {
        let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
        let us = report["duration_us"].as_u64().expect("duration_us");
        assert_eq!(report["duration_ms"].as_u64(), Some(us / 1000), "{report}");
        reported_us += us;
    }
    assert!(reported_us > 0, "every job took 0 µs?");
    let (_, metrics) = daemon.get("/metrics");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("file_processor_{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("job_duration_seconds_count"), 20.0);
    assert_eq!(value("job_latency_seconds_count"), 20.0);
    let duration_sum = value("job_duration_seconds_sum");
    assert!(
        (duration_sum - reported_us as f64 / 1e6).abs() < 1e-6,
        "histogram {duration_sum} s, reports {reported_us} µs"
    );
    assert!(
        value("job_latency_seconds_sum") >= duration_sum,
        "{metrics}"
    );
}

/// After work, once the pool has been idle for a second, the daemon gives the allocator's
/// kept memory back: once per idle spell, not at every turn of the scheduler while idle, and
/// again after the next job.
#[test]
fn memory_is_given_back_once_each_time_the_pool_goes_idle() {
    const GIVEN_BACK: &str = "idle: the allocator gave memory back";
    let ws = Workspace::new();
    let files = stage_files(&ws, 2, "idle");
    let daemon = Daemon::start(&ws, &[], &[]);
    let given_back = || daemon.log().matches(GIVEN_BACK).count();
    // Nothing ran yet: nothing to give back.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(given_back(), 0, "{}", daemon.log());
    for (round, (name, _)) in files.iter().enumerate() {
        move_in(&ws, name);
        assert!(
            wait_until(Duration::from_secs(20), || given_back() == round + 1),
            "round {round}:\n{}",
            daemon.log()
        );
        // Idle for several scheduler turns: still once.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(given_back(), round + 1, "{}", daemon.log());
    }
    assert_eq!(count_finished(&ws), files.len());
}
