//! What a stranger can and cannot do (issue 10, "Security"): a file that looks like a report is
//! data, never a record that steers the daemon outside its folders; names that are not UTF-8
//! still work; pages of other sites and other host names are refused; error answers name no
//! paths of the daemon.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::{Daemon, Workspace, wait_until};
use reqwest::blocking::multipart;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

use common::http_client as client;

fn upload(daemon: &Daemon, name: &str, bytes: &[u8]) -> (u16, Value) {
    let part = multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string());
    let form = multipart::Form::new().part("file", part);
    let response = client()
        .post(daemon.url("/api/upload"))
        .multipart(form)
        .send()
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn job_id(answer: &Value) -> String {
    answer["jobs"][0]["job_id"]
        .as_str()
        .expect("job id")
        .to_string()
}

fn state_of(daemon: &Daemon, id: &str) -> String {
    let (_, job) = daemon.get_json(&format!("/api/jobs/{id}"));
    job["state"].as_str().unwrap_or("").to_string()
}

/// One raw HTTP/1.1 request with exactly the headers given (`Host` included): the status.
fn raw(port: u16, request_line: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(LONG)).expect("timeout");
    let mut head = format!("{request_line} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

const PLANTED_ID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

fn planted_report(file: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "job_id": PLANTED_ID, "file": file, "original_name": file, "status": "failed",
        "kind": "text", "size_bytes": 6, "sha256": null,
        "queued_at": "2026-11-22T10:00:00.000Z", "started_at": "2026-11-22T10:00:00.000Z",
        "finished_at": "2026-11-22T10:00:01.000Z", "duration_ms": 1,
        "error": {"kind": "internal", "message": "planted"}
    }))
    .expect("json")
}

#[test]
fn a_planted_report_is_data_and_steers_nothing_after_a_restart() {
    let ws = Workspace::new();
    let secret = ws.write("victim/secret.txt", b"secret");
    let daemon = Daemon::start(&ws, &[], &[]);
    // Uploaded, and dropped: both land in processed/ as data.
    let (status, answer) = upload(
        &daemon,
        "planted.report.json",
        &planted_report("../../victim/secret.txt"),
    );
    assert_eq!(status, 202, "{answer}");
    let uploaded = job_id(&answer);
    ws.write(
        "watch_dir/unprocessed/dropped.error.json",
        &planted_report("../../victim/secret.txt"),
    );
    let (_, answer) = upload(&daemon, "fine.txt", b"fine\n");
    let fine = job_id(&answer);
    assert!(
        wait_until(LONG, || state_of(&daemon, &uploaded) == "completed"
            && state_of(&daemon, &fine) == "completed"
            && daemon.counts()["completed"] == 3),
        "{}",
        daemon.log()
    );
    let before = daemon.counts();
    daemon.kill();

    let daemon = Daemon::start(&ws, &[], &[]);
    assert_eq!(daemon.counts(), before, "counts after a restart");
    let (status, _) = daemon.get_json(&format!("/api/jobs/{PLANTED_ID}"));
    assert_eq!(status, 404, "a planted report is no job");
    let (status, answer) = daemon.retry(PLANTED_ID);
    assert_eq!(status, 404, "{answer}");
    assert_eq!(std::fs::read(&secret).expect("still there"), b"secret");
    assert_eq!(state_of(&daemon, &uploaded), "completed");
    let (_, job) = daemon.get_json(&format!("/api/jobs/{uploaded}"));
    assert_eq!(job["report"]["job_id"], uploaded.as_str(), "{job}");
    // Its bytes are untouched in processed/.
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/planted.report.json")).expect("kept"),
        planted_report("../../victim/secret.txt")
    );
}

#[test]
fn a_name_that_is_not_utf8_works_in_the_api_and_in_retry_across_a_restart() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let raw_name = OsStr::from_bytes(b"caf\xe9.json");
    std::fs::write(ws.path("watch_dir/unprocessed").join(raw_name), b"{broken").expect("drop");
    assert!(
        wait_until(LONG, || daemon.counts()["failed"] == 1),
        "{}",
        daemon.log()
    );
    let (_, failed) = daemon.get_json("/api/jobs?state=failed");
    let id = failed["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, job) = daemon.get_json(&format!("/api/jobs/{id}"));
    assert_eq!(job["report"]["job_id"], id.as_str(), "its report: {job}");
    let (status, answer) = daemon.retry(&id);
    assert_eq!(status, 202, "{answer}");
    assert!(
        wait_until(LONG, || state_of(&daemon, &id) == "failed"),
        "{}",
        daemon.log()
    );
    daemon.kill();

    let daemon = Daemon::start(&ws, &[], &[]);
    let (_, job) = daemon.get_json(&format!("/api/jobs/{id}"));
    assert_eq!(
        job["report"]["job_id"],
        id.as_str(),
        "after a restart: {job}"
    );
    // Mended where it lies, under its name on disk, then retried: it completes.
    let failed_dir = ws.path("watch_dir/failed");
    let on_disk: Vec<_> = std::fs::read_dir(&failed_dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|name| {
            !name.as_bytes().starts_with(b".") && !name.as_bytes().ends_with(b".error.json")
        })
        .collect();
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert!(on_disk[0].as_bytes().starts_with(b"caf\xe9"), "{on_disk:?}");
    std::fs::write(failed_dir.join(&on_disk[0]), b"{}").expect("mend");
    let (status, answer) = daemon.retry(&id);
    assert_eq!(status, 202, "{answer}");
    assert!(
        wait_until(LONG, || state_of(&daemon, &id) == "completed"),
        "{}",
        daemon.log()
    );
    assert!(
        ws.path("watch_dir/processed").join(raw_name).is_file(),
        "{:?} {}",
        ws.files_in("watch_dir/processed"),
        daemon.log()
    );
}

#[test]
fn other_origins_and_other_host_names_are_refused_token_or_not() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--allowed-hosts", "files.example.com"], &[]);
    let port = daemon.port;
    let here = format!("127.0.0.1:{port}");
    let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\r\nhello\n\r\n--b--\r\n";
    let multipart = ("Content-Type", "multipart/form-data; boundary=b");

    // A page elsewhere posting a form: refused, and nothing is kept.
    for cross in [
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Origin", &format!("http://127.0.0.1:{}", port + 1) as &str),
        ("Referer", "http://evil.example/attack.html"),
    ] {
        let (status, response) = raw(
            port,
            "POST /api/upload",
            &[("Host", &here), multipart, cross],
            body,
        );
        assert_eq!(status, 403, "{cross:?}: {response}");
    }
    let (status, _) = raw(
        port,
        &format!("POST /api/jobs/{PLANTED_ID}/retry"),
        &[("Host", &here), ("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert!(ws.files_in("watch_dir/unprocessed").is_empty());
    assert!(ws.files_in("watch_dir/processed").is_empty());

    // DNS rebinding: a name this daemon does not serve, on any route.
    for path in ["GET /", "GET /api/status", "GET /metrics"] {
        let (status, _) = raw(
            port,
            path,
            &[("Host", &format!("evil.example:{port}"))],
            b"",
        );
        assert_eq!(status, 421, "{path}");
    }
    // Served: loopback, localhost, an IP, the allowed name; a same-origin form; curl.
    for host in [
        here.clone(),
        format!("localhost:{port}"),
        "files.example.com".to_string(),
        "[::1]".to_string(),
    ] {
        let (status, _) = raw(port, "GET /api/status", &[("Host", &host)], b"");
        assert_eq!(status, 200, "{host}");
    }
    let same = format!("http://{here}");
    let (status, response) = raw(
        port,
        "POST /api/upload",
        &[("Host", &here), multipart, ("Origin", &same)],
        body,
    );
    assert_eq!(status, 202, "{response}");
    let (status, answer) = upload(&daemon, "curl.txt", b"no origin\n");
    assert_eq!(status, 202, "{answer}");
    drop(daemon);

    // With a token, the same: the host check comes first.
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[("FP_TOKEN", "s3cret")]);
    let (status, _) = raw(
        daemon.port,
        "GET /api/status",
        &[("Host", "evil.example"), ("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(status, 421);
    let (status, _) = raw(
        daemon.port,
        "POST /api/upload",
        &[
            ("Host", &format!("127.0.0.1:{}", daemon.port)),
            ("Authorization", "Bearer s3cret"),
            ("Origin", "http://evil.example"),
            multipart,
        ],
        body,
    );
    assert_eq!(status, 403);
}

#[test]
fn a_request_that_cannot_be_served_gets_503_without_the_daemons_paths() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    // unprocessed/ replaced by a file: nothing can be stored there.
    let unprocessed = ws.path("watch_dir/unprocessed");
    std::fs::remove_dir_all(&unprocessed).expect("remove");
    std::fs::write(&unprocessed, b"in the way").expect("block");
    let part = multipart::Part::bytes(b"x\n".to_vec()).file_name("x.txt");
    let response = client()
        .post(daemon.url("/api/upload"))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .expect("upload");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body = response.text().expect("body");
    let root = ws.dir.path().to_string_lossy().into_owned();
    assert!(!body.contains(&root), "{body}");
    assert!(!body.contains("/watch_dir"), "{body}");
    assert!(!body.contains(".fp-"), "{body}");
}
