//! Faults while the daemon runs (issue 10, "Faults"): a full disk, a folder removed or in the
//! way, a file replaced or removed during its analysis, hard links, a name taken ten thousand
//! times. Each fault must leave every file exactly once in `processed/` or `failed/` once it
//! clears, with the job visible meanwhile and `/health` telling the truth, without a restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Workspace, wait_until};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

fn visible(ws: &Workspace, rel: &str) -> Vec<String> {
    ws.files_in(rel)
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// Every data file in `processed/` (not the reports) with its bytes, sorted by name.
fn processed_files(ws: &Workspace) -> Vec<(String, Vec<u8>)> {
    visible(ws, "watch_dir/processed")
        .into_iter()
        .filter(|name| !name.ends_with(".report.json"))
        .map(|name| {
            let bytes =
                std::fs::read(ws.path(&format!("watch_dir/processed/{name}"))).expect("read");
            (name, bytes)
        })
        .collect()
}

/// `count` files `fNN.EXT` with the contents `content(N)`.
fn numbered_files(
    count: usize,
    ext: &str,
    content: impl Fn(usize) -> String,
) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| (format!("f{i:02}.{ext}"), content(i).into_bytes()))
        .collect()
}

/// A tmpfs of `size` mounted at `path`, unmounted on drop; `None` where mounting is not
/// allowed (then the test says so, and CI, which sets `FP_REQUIRE_TMPFS`, fails instead).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs(path.to_path_buf())),
            _ => {
                assert!(
                    std::env::var_os("FP_REQUIRE_TMPFS").is_none(),
                    "cannot mount a tmpfs, and FP_REQUIRE_TMPFS is set"
                );
                eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` until it has no space left.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![7u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_full_disk_holds_jobs_visibly_and_they_finish_once_space_is_back() {
    let ws = Workspace::new();
    let root = ws.path("watch_dir");
    let Some(_tmpfs) = Tmpfs::mount(&root, "4m") else {
        return;
    };
    let daemon = Daemon::start(&ws, &["--workers", "2"], &[]);
    // Staged on the same filesystem, then the disk is filled, then they are moved in: a move
    // needs no space, but each report does.
    let staging = root.join("staging");
    std::fs::create_dir(&staging).expect("staging");
    let files = numbered_files(30, "txt", |i| format!("line {i}\nanother\n"));
    for (name, bytes) in &files {
        std::fs::write(staging.join(name), bytes).expect("stage");
    }
    let filler = fill(&root);
    for (name, _) in &files {
        std::fs::rename(staging.join(name), root.join("unprocessed").join(name)).expect("move in");
    }

    // Held up, visibly: queued again with the error and the attempts; /health degraded.
    assert!(
        wait_until(LONG, || {
            let (_, queued) = daemon.get_json("/api/jobs?state=queued");
            queued["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().any(|job| job["attempts"].as_u64() >= Some(2)))
        }),
        "{}",
        daemon.log()
    );
    let (_, queued) = daemon.get_json("/api/jobs?state=queued");
    let waiting = queued["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|job| job["attempts"].as_u64() >= Some(1))
        .expect("a job waiting to be finished")
        .clone();
    assert!(
        waiting["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("space")),
        "{waiting}"
    );
    let (status, health) = daemon.get_json("/health");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be finished")),
        "{health}"
    );
    assert_eq!(daemon.counts()["completed"], 0);
    assert!(visible(&ws, "watch_dir/failed").is_empty());

    // Space is back: everything finishes on its own, exactly once, bytes unchanged.
    std::fs::remove_file(&filler).expect("free space");
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == files.len()),
        "{}\n{:?}",
        daemon.log(),
        daemon.counts()
    );
    assert_eq!(
        processed_files(&ws),
        files,
        "each file once, bytes unchanged"
    );
    let reports = visible(&ws, "watch_dir/processed")
        .into_iter()
        .filter(|name| name.ends_with(".report.json"))
        .count();
    assert_eq!(reports, files.len(), "one report each");
    assert!(visible(&ws, "watch_dir/underprocess").is_empty());
    assert!(visible(&ws, "watch_dir/unprocessed").is_empty());
    assert!(visible(&ws, "watch_dir/failed").is_empty());
    assert!(
        wait_until(LONG, || daemon.get("/health").0 == 200),
        "{:?}",
        daemon.get("/health")
    );
}

#[test]
fn a_folder_in_the_way_holds_a_job_until_it_is_gone() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let processed = ws.path("watch_dir/processed");
    std::fs::remove_dir(&processed).expect("remove processed/");
    std::fs::write(&processed, b"in the way").expect("a file in its place");
    ws.write("watch_dir/unprocessed/a.txt", b"alpha\n");
    assert!(
        wait_until(LONG, || {
            let (_, queued) = daemon.get_json("/api/jobs?state=queued");
            queued["jobs"][0]["attempts"].as_u64() >= Some(2)
        }),
        "{}",
        daemon.log()
    );
    let (status, health) = daemon.get_json("/health");
    assert_eq!(
        (status, health["status"].as_str()),
        (503, Some("degraded")),
        "{health}"
    );
    assert_eq!(visible(&ws, "watch_dir/underprocess").len(), 1);
    // The dashboard says so too: a banner, and the job's row with its last error.
    let (_, page) = daemon.get("/");
    assert!(
        page.contains("id=\"health\"") && page.contains("cannot be finished"),
        "{page}"
    );
    assert!(
        page.contains("attempt ") && page.contains(" failed: "),
        "{page}"
    );

    // The obstacle goes: the folder is created again and the job finishes.
    std::fs::remove_file(&processed).expect("remove the obstacle");
    finished_once(&ws, &daemon, "a.txt", b"alpha\n");
}

/// Waits for the daemon's one job to complete, then checks that `processed/` holds `name`
/// once with `bytes`, and that `/health` says 200 again.
fn finished_once(ws: &Workspace, daemon: &Daemon, name: &str, bytes: &[u8]) {
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == 1),
        "{}",
        daemon.log()
    );
    assert_eq!(
        processed_files(ws),
        vec![(name.to_string(), bytes.to_vec())]
    );
    assert!(wait_until(LONG, || daemon.get("/health").0 == 200));
}

#[test]
fn a_removed_processed_folder_is_created_again_and_the_job_finishes_there() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    std::fs::remove_dir(ws.path("watch_dir/processed")).expect("remove processed/");
    ws.write("watch_dir/unprocessed/b.txt", b"beta\n");
    finished_once(&ws, &daemon, "b.txt", b"beta\n");
    assert!(visible(&ws, "watch_dir/underprocess").is_empty());
    assert!(visible(&ws, "watch_dir/failed").is_empty());
    assert!(
        daemon.log().contains("was missing: created it again"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_removed_unprocessed_folder_is_created_again_and_watched() {
    let ws = Workspace::new();
    // A reconcile scan too rare to help: only a re-armed watch picks the file up in time.
    let daemon = Daemon::start(&ws, &["--reconcile-ms", "600000"], &[]);
    let unprocessed = ws.path("watch_dir/unprocessed");
    std::fs::remove_dir_all(&unprocessed).expect("remove unprocessed/");
    // Created again by the daemon (or by the operator: the same watch is re-armed either way).
    assert!(
        wait_until(LONG, || unprocessed.is_dir()),
        "{}",
        daemon.log()
    );
    assert!(
        wait_until(LONG, || daemon.get("/health").0 == 200),
        "{:?}",
        daemon.get("/health")
    );
    ws.write("watch_dir/unprocessed/b.txt", b"beta\n");
    assert!(
        wait_until(Duration::from_secs(20), || daemon.counts()["completed"]
            == 1),
        "{}",
        daemon.log()
    );
    // And when the operator replaces it himself, with a file already inside.
    let elsewhere = ws.path("new-unprocessed");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::fs::remove_dir_all(&unprocessed).expect("remove");
    std::fs::write(elsewhere.join("c.txt"), b"gamma\n").expect("write");
    std::fs::rename(&elsewhere, &unprocessed).expect("put in place");
    assert!(
        wait_until(Duration::from_secs(20), || daemon.counts()["completed"]
            == 2),
        "{}",
        daemon.log()
    );
    assert_eq!(
        processed_files(&ws),
        vec![
            ("b.txt".to_string(), b"beta\n".to_vec()),
            ("c.txt".to_string(), b"gamma\n".to_vec())
        ]
    );
}

/// The claimed file of the one job in `underprocess/`, once the job pauses after its
/// analysis (`FP_PAUSE_AT`).
fn paused_claim(ws: &Workspace, daemon: &Daemon) -> std::path::PathBuf {
    assert!(
        wait_until(LONG, || daemon.log().contains("FP_PAUSE_AT=after-analysis")),
        "{}",
        daemon.log()
    );
    let claimed = visible(ws, "watch_dir/underprocess");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    ws.path(&format!("watch_dir/underprocess/{}", claimed[0]))
}

/// Drops `name` holding `first`, lets `change` act on its claimed file while the job pauses
/// after its analysis, and checks that the file was analysed again and lands in `processed/`
/// holding `last`, with the report of those bytes (returned).
fn changed_during_analysis(
    name: &str,
    first: &[u8],
    change: impl FnOnce(&Workspace, &std::path::Path),
    last: &[u8],
) -> serde_json::Value {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[("FP_PAUSE_AT", "after-analysis:1500")]);
    ws.write(&format!("watch_dir/unprocessed/{name}"), first);
    let claimed = paused_claim(&ws, &daemon);
    change(&ws, &claimed);
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == 1),
        "{}",
        daemon.log()
    );
    assert_eq!(
        processed_files(&ws),
        vec![(name.to_string(), last.to_vec())]
    );
    assert!(
        daemon.log().contains("changed during its analysis"),
        "{}",
        daemon.log()
    );
    let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
    assert_eq!(
        report["size_bytes"],
        last.len(),
        "the report describes the file beside it"
    );
    report
}

#[test]
fn a_file_replaced_during_its_analysis_is_analysed_again_and_reported_as_it_is() {
    let report = changed_during_analysis(
        "t2.txt",
        &b"a long first version\n".repeat(50_000),
        |ws, claimed| {
            // Replaced whole (a new inode), as an editor's save or `mv` does.
            let replacement = ws.write("watch_dir/replacement", b"short\nnew\n");
            std::fs::rename(&replacement, claimed).expect("replace");
        },
        b"short\nnew\n",
    );
    assert_eq!(report["text"]["lines"], 2);
}

/// A small file is read whole once, when opened: bytes written to it afterwards (same inode)
/// must still make it analysed again, so that its report describes the bytes beside it.
#[test]
fn a_small_file_written_to_during_its_analysis_is_analysed_again() {
    use std::io::Write;
    let report = changed_during_analysis(
        "grows.txt",
        b"one\n",
        |_, claimed| {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(claimed)
                .expect("open in place");
            file.write_all(b"two\nthree\n").expect("append");
        },
        b"one\ntwo\nthree\n",
    );
    assert_eq!(report["text"]["lines"], 3, "{report}");
}

/// A claimed file swapped for a link before its analysis opens it: the open refuses the link
/// (`O_NOFOLLOW`), the file fails with that error at once (not as "changed during its
/// analysis" after two more tries), and the link's target is neither read nor moved.
#[test]
fn a_claimed_file_swapped_for_a_link_fails_with_the_open_error() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[("FP_PAUSE_AT", "before-analysis:1500")]);
    let secret = ws.write("secret.txt", b"not for the report\n");
    ws.write("watch_dir/unprocessed/swap.txt", b"dropped\n");
    assert!(
        wait_until(LONG, || daemon
            .log()
            .contains("FP_PAUSE_AT=before-analysis")),
        "{}",
        daemon.log()
    );
    let claimed = visible(&ws, "watch_dir/underprocess");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let claimed = ws.path(&format!("watch_dir/underprocess/{}", claimed[0]));
    std::fs::remove_file(&claimed).expect("remove");
    std::os::unix::fs::symlink(&secret, &claimed).expect("link");
    assert!(
        wait_until(LONG, || daemon.counts()["failed"] == 1),
        "{}",
        daemon.log()
    );
    let report = ws.read_json("watch_dir/failed/swap.txt.error.json");
    assert_eq!(report["error"]["kind"], "io", "{report}");
    assert!(
        !daemon.log().contains("changed during its analysis"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        std::fs::read(&secret).expect("the target stays"),
        b"not for the report\n"
    );
    assert!(
        !report.to_string().contains("not for the report"),
        "{report}"
    );
}

#[test]
fn a_file_removed_during_its_analysis_leaves_no_report() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[("FP_PAUSE_AT", "after-analysis:1500")]);
    ws.write("watch_dir/unprocessed/gone.txt", b"soon gone\n");
    let claimed = paused_claim(&ws, &daemon);
    std::fs::remove_file(&claimed).expect("remove");
    assert!(
        wait_until(LONG, || daemon
            .log()
            .contains("was removed during its analysis")),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(visible(&ws, "watch_dir/processed").is_empty());
    assert!(
        visible(&ws, "watch_dir/failed").is_empty(),
        "no report without its file"
    );
    let counts = daemon.counts();
    assert_eq!(
        (
            counts["completed"].as_u64(),
            counts["failed"].as_u64(),
            counts["queued"].as_u64(),
            counts["processing"].as_u64()
        ),
        (Some(0), Some(0), Some(0), Some(0)),
        "{counts}"
    );
    // The daemon goes on.
    ws.write("watch_dir/unprocessed/next.txt", b"next\n");
    assert!(
        wait_until(LONG, || counts_completed(&daemon) == 1),
        "{}",
        daemon.log()
    );
}

fn counts_completed(daemon: &Daemon) -> u64 {
    daemon.counts()["completed"].as_u64().unwrap_or(0)
}

#[test]
fn hard_links_and_linked_unnamed_files_are_processed_and_slow_writers_still_wait() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let ws = Workspace::new();
    // A reconcile scan too rare to help: readiness must come from the events and the settle.
    let daemon = Daemon::start(
        &ws,
        &["--settle-ms", "300", "--reconcile-ms", "600000"],
        &[],
    );
    let unprocessed = ws.path("watch_dir/unprocessed");

    // A slow writer: creates the file, waits longer than the settle time, then writes.
    let slow_path = unprocessed.join("slow.txt");
    let mut slow = std::fs::File::create(&slow_path).expect("create");

    // `ln` from the same filesystem, and `cp -l`.
    let original = ws.write("watch_dir/outside.txt", b"linked\n");
    std::fs::hard_link(&original, unprocessed.join("linked.txt")).expect("ln");
    // O_TMPFILE + linkat, the pattern of careful writers (and of the daemon's own reports).
    let unnamed = rustix::fs::openat(
        rustix::fs::CWD,
        &unprocessed,
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .expect("O_TMPFILE");
    let mut unnamed = std::fs::File::from(unnamed);
    unnamed.write_all(b"unnamed then linked\n").expect("write");
    rustix::fs::linkat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", unnamed.as_raw_fd()),
        rustix::fs::CWD,
        unprocessed.join("tmpfile.txt"),
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .expect("linkat");
    drop(unnamed);

    assert!(
        wait_until(Duration::from_secs(10), || counts_completed(&daemon) == 2),
        "{}",
        daemon.log()
    );
    // The slow writer's empty file was not taken for complete.
    std::thread::sleep(Duration::from_millis(900));
    assert!(slow_path.exists(), "{}", daemon.log());
    slow.write_all(b"first\n").expect("write");
    std::thread::sleep(Duration::from_millis(900));
    assert!(slow_path.exists(), "still open: not complete");
    slow.write_all(b"second\n").expect("write");
    drop(slow);
    assert!(
        wait_until(Duration::from_secs(10), || counts_completed(&daemon) == 3),
        "{}",
        daemon.log()
    );
    assert_eq!(
        processed_files(&ws),
        vec![
            ("linked.txt".to_string(), b"linked\n".to_vec()),
            ("slow.txt".to_string(), b"first\nsecond\n".to_vec()),
            ("tmpfile.txt".to_string(), b"unnamed then linked\n".to_vec()),
        ]
    );
}

#[test]
fn a_name_taken_ten_thousand_times_still_finds_a_place() {
    let ws = Workspace::new();
    let processed = ws.path("watch_dir/processed");
    std::fs::create_dir_all(&processed).expect("mkdir");
    // export.csv and export-2.csv … export-10000.csv are all taken (by files, as after 10,000
    // drops; the reports do not matter for the pair's name).
    std::fs::write(processed.join("export.csv"), b"old").expect("write");
    for n in 2..=10_000 {
        std::fs::write(processed.join(format!("export-{n}.csv")), b"old").expect("write");
    }
    let daemon = Daemon::start(&ws, &[], &[]);
    ws.write("watch_dir/unprocessed/export.csv", b"id,user_id\n1,a\n");
    assert!(
        wait_until(LONG, || counts_completed(&daemon) == 1),
        "{}",
        daemon.log()
    );
    let (_, done) = daemon.get_json("/api/jobs?state=completed");
    let job = &done["jobs"][0];
    let id = job["job_id"].as_str().expect("id");
    assert_eq!(job["file"], format!("export-{id}.csv"), "{job}");
    assert_eq!(
        std::fs::read(processed.join(format!("export-{id}.csv"))).expect("placed"),
        b"id,user_id\n1,a\n"
    );
    assert!(
        processed
            .join(format!("export-{id}.csv.report.json"))
            .is_file()
    );
    assert!(visible(&ws, "watch_dir/underprocess").is_empty());
}

#[test]
fn input_from_a_folder_that_cannot_let_go_leaves_no_copy() {
    let ws = Workspace::new();
    let source = ws.path("readonly");
    let Some(_tmpfs) = Tmpfs::mount(&source, "1m") else {
        return;
    };
    std::fs::write(source.join("data.txt"), b"one\ntwo\n").expect("write");
    let remount = |mode: &str| {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&source)
            .status()
            .expect("remount");
        assert!(status.success());
    };
    remount("ro");
    let input = source.join("data.txt");
    let input = input.to_str().expect("utf-8 path");
    for _ in 0..2 {
        let output = ws.run(&["--dir", "watch_dir", "--input", input]);
        assert_eq!(output.status.code(), Some(2), "{}", common::stderr(&output));
        let err = common::stderr(&output);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: cannot move"), "{err}");
        assert!(err.contains("nothing was done"), "{err}");
        for folder in ["unprocessed", "underprocess", "processed", "failed"] {
            assert!(
                visible(&ws, &format!("watch_dir/{folder}")).is_empty(),
                "{folder}: {:?}",
                ws.files_in(&format!("watch_dir/{folder}"))
            );
        }
    }
    // The move itself, should the check ever be passed: the copy is withdrawn.
    let target = ws.path("target");
    std::fs::create_dir(&target).expect("mkdir");
    let moved = file_processor::disk::folders::move_into(
        &source.join("data.txt"),
        &target,
        std::ffi::OsStr::new("data.txt"),
        None,
        false,
    );
    assert!(moved.is_err(), "{moved:?}");
    assert!(
        std::fs::read_dir(&target).expect("list").next().is_none(),
        "no copy left"
    );
    remount("rw");
    let output = ws.run(&["--dir", "watch_dir", "--input", input]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert_eq!(
        processed_files(&ws),
        vec![("data.txt".to_string(), b"one\ntwo\n".to_vec())],
        "one processed copy"
    );
    assert!(!source.join("data.txt").exists());
}

#[test]
fn a_flood_of_idle_connections_cannot_take_the_pipelines_descriptors() {
    use std::net::TcpStream;
    let ws = Workspace::new();
    let daemon =
        Daemon::start_with_open_files(&ws, 256, &["--workers", "2", "--settle-ms", "100"], &[]);
    // Far more idle connections than descriptors, kept open (and opened again as the server
    // drops idle ones) while the files go through.
    let port = daemon.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                held.retain(|s| s.peer_addr().is_ok());
                while held.len() < 400 {
                    match TcpStream::connect_timeout(
                        &([127, 0, 0, 1], port).into(),
                        Duration::from_millis(200),
                    ) {
                        Ok(stream) => held.push(stream),
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let files = numbered_files(40, "csv", |i| format!("id,user_id\n{i},u{i}\n"));
    for (name, bytes) in &files {
        ws.write(&format!("watch_dir/unprocessed/{name}"), bytes);
    }
    let all_done = wait_until(LONG, || {
        visible(&ws, "watch_dir/processed").len() == 2 * files.len()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flood.join();
    assert!(all_done, "{}", daemon.log());
    assert_eq!(processed_files(&ws), files);
    // Not one finish hit "too many open files": the pipeline kept its reserve.
    assert!(!daemon.log().contains("cannot finish"), "{}", daemon.log());
}

/// Uploads being received: their temp files in `unprocessed/`.
fn upload_temp_files(ws: &Workspace) -> usize {
    ws.files_in("watch_dir/unprocessed")
        .iter()
        .filter(|n| n.starts_with(".fp-"))
        .count()
}

/// An upload of `name` that sends its headers and five bytes of a 100,000-byte body, then
/// nothing.
fn silent_upload(daemon: &Daemon, name: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    let body = format!(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\nstart"
    );
    write!(
        stream,
        "POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; \
         boundary=b\r\nContent-Length: 100000\r\n\r\n{body}"
    )
    .expect("send");
    stream
}

#[test]
fn a_dribbling_upload_is_dropped_and_leaves_nothing() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--body-timeout", "1s"], &[]);
    let mut dribblers = Vec::new();
    for i in 0..5 {
        dribblers.push(silent_upload(&daemon, &format!("d{i}.txt")));
    }
    // While they hang, each holds a temp file…
    assert!(
        wait_until(LONG, || upload_temp_files(&ws) == 5),
        "{:?}",
        ws.files_in("watch_dir/unprocessed")
    );
    // …until the body timeout: then 408, and nothing is left.
    let mut answers = Vec::new();
    for mut stream in dribblers {
        use std::io::Read;
        stream.set_read_timeout(Some(LONG)).expect("timeout");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        answers.push(response.split_whitespace().nth(1).unwrap_or("").to_string());
    }
    assert!(answers.iter().all(|status| status == "408"), "{answers:?}");
    assert!(
        wait_until(LONG, || ws.files_in("watch_dir/unprocessed").is_empty()),
        "{:?}",
        ws.files_in("watch_dir/unprocessed")
    );
    assert_eq!(daemon.counts()["queued"], 0);
}

/// Only so many uploads are read at once (the others wait in the kernel's buffers), but a
/// client that goes silent gives its turn up: forty silent uploads, more than the turns, do not
/// keep a normal upload waiting for their body timeout.
#[test]
fn silent_uploads_do_not_keep_others_waiting() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--body-timeout", "120s"], &[]);
    let mut silent = Vec::new();
    for i in 0..40 {
        silent.push(silent_upload(&daemon, &format!("s{i}.txt")));
    }
    // Every turn is taken: each upload that has one is writing its temp file.
    assert!(
        wait_until(LONG, || upload_temp_files(&ws) >= 32),
        "{:?}",
        ws.files_in("watch_dir/unprocessed")
    );
    let part = reqwest::blocking::multipart::Part::bytes(b"INFO after them\n".to_vec())
        .file_name("after.log");
    // Far below the silent ones' 120 s: had they kept their turns, this would time out.
    let response = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
        .post(format!("http://127.0.0.1:{}/api/upload", daemon.port))
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()
        .expect("the upload is answered while forty others stay silent");
    assert_eq!(response.status().as_u16(), 202);
    assert!(
        wait_until(LONG, || ws
            .files_in("watch_dir/processed")
            .contains(&"after.log".to_string())),
        "{}",
        daemon.log()
    );
    drop(silent);
}

#[test]
fn an_upload_removed_before_it_is_queued_leaves_no_phantom_job() {
    let ws = Workspace::new();
    // Polling too slow to see it, a reconcile scan every second.
    let daemon = Daemon::start(&ws, &["--poll", "600000", "--reconcile-ms", "1000"], &[]);
    let part = reqwest::blocking::multipart::Part::bytes(b"x\n".to_vec()).file_name("gone.txt");
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/api/upload", daemon.port))
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()
        .expect("upload");
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().expect("json");
    let id = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    std::fs::remove_file(ws.path("watch_dir/unprocessed/gone.txt")).expect("remove");
    assert_eq!(daemon.counts()["queued"], 1, "queued by the upload");
    assert!(
        wait_until(LONG, || daemon.counts()["queued"] == 0),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.get(&format!("/api/jobs/{id}")).0, 404);
}

#[test]
fn an_upload_of_many_parts_holds_one_open_file_at_a_time() {
    let ws = Workspace::new();
    // 300 parts against 256 descriptors: each part's file must be closed once received.
    let daemon = Daemon::start_with_open_files(&ws, 256, &[], &[]);
    let mut form = reqwest::blocking::multipart::Form::new();
    for i in 0..300 {
        let part = reqwest::blocking::multipart::Part::bytes(format!("part {i}\n").into_bytes())
            .file_name(format!("p{i:03}.txt"));
        form = form.part("file", part);
    }
    let response = common::http_client()
        .post(daemon.url("/api/upload"))
        .multipart(form)
        .send()
        .expect("upload");
    let status = response.status().as_u16();
    let answer: Value = response.json().unwrap_or(Value::Null);
    assert_eq!(status, 202, "{answer}\n{}", daemon.log());
    assert_eq!(answer["jobs"].as_array().map(Vec::len), Some(300));
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == 300),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_job_thread_outlives_a_panic_outside_the_analysis() {
    let ws = Workspace::new();
    // One job thread; the first two jobs to reach their finish panic there.
    let daemon = Daemon::start(
        &ws,
        &["--workers", "1"],
        &[("FP_PANIC_AT", "before-finish:2")],
    );
    ws.write("watch_dir/unprocessed/a.txt", b"alpha\n");
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == 1),
        "{}",
        daemon.log()
    );
    assert_eq!(
        daemon
            .log()
            .matches("panicked outside the analysis")
            .count(),
        2
    );
    // The same thread goes on with the next file, and /health never saw a thread go.
    ws.write("watch_dir/unprocessed/b.txt", b"beta\n");
    assert!(
        wait_until(LONG, || daemon.counts()["completed"] == 2),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.get("/health").0, 200);
    assert_eq!(
        processed_files(&ws),
        vec![
            ("a.txt".to_string(), b"alpha\n".to_vec()),
            ("b.txt".to_string(), b"beta\n".to_vec())
        ]
    );
}

/// `--max-connections`: past the cap a connection waits in the kernel's backlog, unserved, and
/// is served as soon as another closes; uploads past the cap queue and all complete.
#[test]
fn connections_past_the_cap_wait_their_turn() {
    use std::io::{Read, Write};
    let ws = Workspace::new();
    let daemon = Daemon::start(
        &ws,
        &["--max-connections", "2", "--body-timeout", "120s"],
        &[],
    );
    // Two uploads that send a few bytes, then nothing, take both places.
    let mut held: Vec<std::net::TcpStream> = (0..2)
        .map(|i| silent_upload(&daemon, &format!("held{i}.txt")))
        .collect();
    assert!(
        wait_until(LONG, || upload_temp_files(&ws) == 2),
        "{:?}",
        ws.files_in("watch_dir/unprocessed")
    );
    let mut waiting = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut first = [0u8; 1];
    let early = waiting.read(&mut first);
    assert!(
        matches!(&early, Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a third connection was served while two held the places: {early:?}"
    );
    // One held upload goes away: the waiting request is answered.
    drop(held.pop());
    waiting.set_read_timeout(Some(LONG)).expect("timeout");
    let mut response = String::new();
    waiting.read_to_string(&mut response).expect("answer");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(held);
    // Eight uploads at once through two places: every one answered 202 and processed.
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                format!("q{i}.csv"),
                format!("id,user_id\n{i},u{i}\n").into_bytes(),
            )
        })
        .collect();
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let uploads: Vec<_> = files
            .iter()
            .map(|(name, bytes)| {
                let daemon = &daemon;
                scope.spawn(move || common::upload(daemon, vec![(name, bytes)], None).0)
            })
            .collect();
        uploads
            .into_iter()
            .map(|upload| upload.join().expect("upload thread"))
            .collect()
    });
    assert_eq!(answers, vec![202; 8]);
    assert!(
        wait_until(LONG, || processed_files(&ws).len() == files.len()),
        "{}",
        daemon.log()
    );
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(processed_files(&ws), expected);
    // The held uploads that went away left nothing behind.
    assert!(
        wait_until(LONG, || ws.files_in("watch_dir/unprocessed").is_empty()),
        "{:?}",
        ws.files_in("watch_dir/unprocessed")
    );
}
