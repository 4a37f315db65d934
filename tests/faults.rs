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

fn get_json(daemon: &Daemon, path: &str) -> (u16, Value) {
    let (status, body) = daemon.get(path);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn counts(daemon: &Daemon) -> Value {
    get_json(daemon, "/api/status").1["counts"].clone()
}

fn visible(ws: &Workspace, rel: &str) -> Vec<String> {
    ws.files_in(rel)
        .into_iter()
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// Every data file in `processed/` (not the reports) with its bytes.
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
    let files: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("f{i:02}.txt"),
                format!("line {i}\nanother\n").into_bytes(),
            )
        })
        .collect();
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
            let (_, queued) = get_json(&daemon, "/api/jobs?state=queued");
            queued["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().any(|job| job["attempts"].as_u64() >= Some(2)))
        }),
        "{}",
        daemon.log()
    );
    let (_, queued) = get_json(&daemon, "/api/jobs?state=queued");
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
    let (status, health) = get_json(&daemon, "/health");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be finished")),
        "{health}"
    );
    assert_eq!(counts(&daemon)["completed"], 0);
    assert!(visible(&ws, "watch_dir/failed").is_empty());

    // Space is back: everything finishes on its own, exactly once, bytes unchanged.
    std::fs::remove_file(&filler).expect("free space");
    assert!(
        wait_until(LONG, || counts(&daemon)["completed"] == files.len()),
        "{}\n{:?}",
        daemon.log(),
        counts(&daemon)
    );
    let mut got = processed_files(&ws);
    got.sort();
    assert_eq!(got, files, "each file once, bytes unchanged");
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
            let (_, queued) = get_json(&daemon, "/api/jobs?state=queued");
            queued["jobs"][0]["attempts"].as_u64() >= Some(2)
        }),
        "{}",
        daemon.log()
    );
    let (status, health) = get_json(&daemon, "/health");
    assert_eq!(
        (status, health["status"].as_str()),
        (503, Some("degraded")),
        "{health}"
    );
    assert_eq!(visible(&ws, "watch_dir/underprocess").len(), 1);

    // The obstacle goes: the folder is created again and the job finishes.
    std::fs::remove_file(&processed).expect("remove the obstacle");
    assert!(
        wait_until(LONG, || counts(&daemon)["completed"] == 1),
        "{}",
        daemon.log()
    );
    assert_eq!(
        processed_files(&ws),
        vec![("a.txt".to_string(), b"alpha\n".to_vec())]
    );
    assert!(wait_until(LONG, || daemon.get("/health").0 == 200));
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
        wait_until(Duration::from_secs(20), || counts(&daemon)["completed"]
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
        wait_until(Duration::from_secs(20), || counts(&daemon)["completed"]
            == 2),
        "{}",
        daemon.log()
    );
    let mut got = processed_files(&ws);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("b.txt".to_string(), b"beta\n".to_vec()),
            ("c.txt".to_string(), b"gamma\n".to_vec())
        ]
    );
}
