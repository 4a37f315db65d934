//! Uploads, the token and retries over real HTTP (reqwest) against the running daemon
//! (SPEC §5): files and reports are checked on disk, byte for byte.

mod common;

use std::time::Duration;

use common::{Daemon, Workspace, everything_in, part, upload, wait_until};
use reqwest::blocking::multipart;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

use common::http_client as client;

fn job(daemon: &Daemon, id: &str) -> Value {
    let (status, body) = daemon.get(&format!("/api/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("job JSON")
}

fn state_of(daemon: &Daemon, id: &str) -> String {
    job(daemon, id)["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn several_files_in_one_request_keep_their_job_ids_and_safe_names() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let csv = b"user_id,amount\nu1,5\nu2,7\nu1,1\n".as_slice();
    let log = b"ERROR disk full\nINFO retry\n".as_slice();
    let sent: Vec<(&str, &[u8], &str)> = vec![
        ("orders.csv", csv, "orders.csv"),
        ("../../escape.log", log, "escape.log"),
        ("..\\..\\win.log", log, "win.log"),
        (".hidden", b"x\n", "hidden"),
        ("..", b"dots\n", "upload"),
        ("orders.csv", b"user_id\nu9\n", "orders-2.csv"),
    ];
    let (status, answer) = upload(
        &daemon,
        sent.iter()
            .map(|(name, bytes, _)| (*name, *bytes))
            .collect(),
        None,
    );
    assert_eq!(status, 202, "{answer}\n{}", daemon.log());
    let jobs = answer["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), sent.len());
    let mut ids = Vec::new();
    for (job, (_, _, safe)) in jobs.iter().zip(&sent) {
        // The second orders.csv gets its derived name in unprocessed/ if the first is still
        // there, else in processed/ when it finishes.
        let named = job["file"].as_str().unwrap_or_default();
        assert!(
            named == *safe || (*safe == "orders-2.csv" && named == "orders.csv"),
            "{answer}"
        );
        let id = job["job_id"].as_str().expect("job_id").to_string();
        assert_eq!(job["status_url"], format!("/api/jobs/{id}"));
        ids.push(id);
    }
    assert!(
        wait_until(LONG, || ids
            .iter()
            .all(|id| state_of(&daemon, id) == "completed")),
        "{}",
        daemon.log()
    );
    // The id the upload answered is the one in the report on disk, and the bytes are the
    // ones sent (whichever of the two orders.csv finished first kept the plain name).
    let mut finals = Vec::new();
    for (id, (_, bytes, _)) in ids.iter().zip(&sent) {
        let name = job(&daemon, id)["file"].as_str().expect("file").to_string();
        let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
        assert_eq!(report["job_id"], id.as_str());
        let kept = std::fs::read(ws.path(&format!("watch_dir/processed/{name}"))).expect("file");
        assert_eq!(kept, *bytes, "{name}");
        finals.push(name);
    }
    // Uploaded files get the mode of any new file here (0666 less the umask), as a file
    // created by this test does, not a temp file's 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    let reference = ws.write("reference-mode", b"");
    for name in &finals {
        assert_eq!(
            mode(&ws.path(&format!("watch_dir/processed/{name}"))),
            mode(&reference),
            "{name}"
        );
    }
    std::fs::remove_file(&reference).expect("remove");
    let mut wanted: Vec<String> = sent.iter().map(|(_, _, safe)| safe.to_string()).collect();
    finals.sort();
    wanted.sort();
    assert_eq!(finals, wanted);
    assert_eq!(job(&daemon, &ids[0])["report"]["csv"]["distinct_users"], 2);
    // Nothing anywhere else: no escaped file, no temp file left.
    let mut expected: Vec<String> = sent
        .iter()
        .flat_map(|(_, _, safe)| [safe.to_string(), format!("{safe}.report.json")])
        .map(|name| format!("processed/{name}"))
        .collect();
    expected.push(".file-processor.lock".to_string());
    expected.sort();
    assert_eq!(everything_in(&ws, "watch_dir"), expected);
    let outside: Vec<String> = everything_in(&ws, "")
        .into_iter()
        .filter(|path| !path.starts_with("watch_dir/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn an_upload_over_the_limit_gets_413_and_leaves_nothing() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--max-upload-bytes", "10000"], &[]);
    let small = vec![b'a'; 4000];
    let large = vec![b'b'; 8000];
    // Together over the limit: the first part was already written when the second went over.
    let (status, answer) = upload(
        &daemon,
        vec![("small.txt", &small), ("large.txt", &large)],
        None,
    );
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("10000"))
    );
    // Declared too large by its Content-Length: refused before it is read.
    let (status, _) = upload(&daemon, vec![("huge.txt", &vec![b'c'; 200_000])], None);
    assert_eq!(status, 413);
    // The daemon goes on, and the limit is what it says.
    let (status, answer) = upload(&daemon, vec![("fits.txt", &vec![b'd'; 9000])], None);
    assert_eq!(status, 202, "{answer}");
    let id = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        wait_until(LONG, || state_of(&daemon, &id) == "completed"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        everything_in(&ws, "watch_dir"),
        [
            ".file-processor.lock",
            "processed/fits.txt",
            "processed/fits.txt.report.json"
        ]
    );
    let (_, status) = daemon.get("/api/status");
    let status: Value = serde_json::from_str(&status).expect("status");
    assert_eq!(status["counts"]["completed"], 1);
    assert_eq!(status["counts"]["queued"], 0);
}

#[test]
fn with_a_token_every_route_but_health_needs_it() {
    let ws = Workspace::new();
    let token = "correct horse battery staple";
    let daemon = Daemon::start(&ws, &[], &[("FP_TOKEN", token)]);
    let http = client();
    for path in [
        "/",
        "/api/status",
        "/api/jobs",
        "/api/events",
        "/metrics",
        "/jobs/x",
    ] {
        let response = http.get(daemon.url(path)).send().expect("get");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let response = http
            .get(daemon.url(path))
            .bearer_auth("wrong")
            .send()
            .expect("get");
        assert_eq!(response.status().as_u16(), 401, "{path} with a wrong token");
    }
    let health = http.get(daemon.url("/health")).send().expect("health");
    assert_eq!(health.status().as_u16(), 200);
    // A browser asking for the page gets the sign-in form.
    let page = http
        .get(daemon.url("/"))
        .header("Accept", "text/html")
        .send()
        .expect("page");
    assert_eq!(page.status().as_u16(), 401);
    assert!(page.text().expect("body").contains("name=\"token\""));
    // Nothing is written without the token.
    let (status, _) = upload(&daemon, vec![("a.txt", b"a\n")], None);
    assert_eq!(status, 401);
    assert_eq!(everything_in(&ws, "watch_dir"), [".file-processor.lock"]);

    // With it: the API, the stream and uploads.
    for path in ["/", "/api/status", "/metrics"] {
        let response = http
            .get(daemon.url(path))
            .bearer_auth(token)
            .send()
            .expect("get");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let events = http
        .get(daemon.url("/api/events"))
        .bearer_auth(token)
        .send()
        .expect("events");
    assert_eq!(events.status().as_u16(), 200);
    drop(events);
    let (status, answer) = upload(&daemon, vec![("a.txt", b"a\n")], Some(token));
    assert_eq!(status, 202, "{answer}");

    // The sign-in form: a wrong token is refused, the right one sets the cookie.
    let wrong = http
        .post(daemon.url("/login"))
        .form(&[("token", "nope"), ("next", "/")])
        .send()
        .expect("login");
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = http
        .post(daemon.url("/login"))
        .form(&[("token", token), ("next", "/api/status")])
        .send()
        .expect("login");
    assert_eq!(right.status().as_u16(), 303);
    assert_eq!(right.headers()["location"], "/api/status");
    let cookie = right.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains(token),
        "the cookie must not carry the token"
    );
    let session = cookie.split(';').next().expect("name=value");
    let status = http
        .get(daemon.url("/api/status"))
        .header("Cookie", session)
        .send()
        .expect("status");
    assert_eq!(status.status().as_u16(), 200);
    // Signed in, the page offers to sign out; signing out clears the cookie.
    let page = http
        .get(daemon.url("/"))
        .header("Cookie", session)
        .send()
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().expect("body").contains("action=\"/logout\""));
    let out = http
        .post(daemon.url("/logout"))
        .header("Cookie", session)
        .send()
        .expect("logout");
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(out.headers()["location"], "/login");
    let cleared = out.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        cleared.starts_with("fp_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // `next` never leads off the server.
    let away = http
        .post(daemon.url("/login"))
        .form(&[("token", token), ("next", "//evil.example/")])
        .send()
        .expect("login");
    assert_eq!(away.headers()["location"], "/");
}

#[test]
fn an_empty_token_is_a_usage_error() {
    let ws = Workspace::new();
    let out = ws.run_with_env(&["--watch", "--port", "0"], &[("FP_TOKEN", "  ")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = common::stderr(&out);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_failed_job_is_retried_under_the_same_id() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let (_, answer) = upload(
        &daemon,
        vec![("broken.json", b"{\"a\": "), ("fine.txt", b"ok\n")],
        None,
    );
    let broken = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let fine = answer["jobs"][1]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        wait_until(LONG, || state_of(&daemon, &broken) == "failed"
            && state_of(&daemon, &fine) == "completed"),
        "{}",
        daemon.log()
    );

    // Refused: a job that did not fail, an unknown id.
    let (status, answer) = daemon.retry(&fine);
    assert_eq!(status, 409, "{answer}");
    let (status, _) = daemon.retry("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(status, 404);
    let (status, _) = daemon.retry("not-an-id");
    assert_eq!(status, 404);

    // Retried as it is: it fails again, under the same id, and failed/ holds it once.
    let (status, answer) = daemon.retry(&broken);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["job_id"], broken.as_str());
    assert_eq!(answer["state"], "queued");
    assert!(
        wait_until(LONG, || state_of(&daemon, &broken) == "failed"),
        "{}",
        daemon.log()
    );
    let visible = |ws: &Workspace| -> Vec<String> {
        let names = ws.files_in("watch_dir/failed");
        names.into_iter().filter(|n| !n.starts_with('.')).collect()
    };
    let failed = visible(&ws);
    assert_eq!(failed.len(), 2, "one file and its report: {failed:?}");
    let file = failed
        .iter()
        .find(|name| !name.ends_with(".error.json"))
        .expect("the file");
    // Its name was free again: no stale `broken-2.json`.
    assert_eq!(file, "broken.json");
    assert_eq!(
        std::fs::read(ws.path(&format!("watch_dir/failed/{file}"))).expect("bytes"),
        b"{\"a\": "
    );
    let report = ws.read_json(&format!("watch_dir/failed/{file}.error.json"));
    assert_eq!(report["job_id"], broken.as_str());
    // The first error report is kept aside, not left to confuse.
    let aside = ws.read_json(&format!("watch_dir/failed/.retried/{broken}.error.json"));
    assert_eq!(aside["job_id"], broken.as_str());
    assert_eq!(aside["status"], "failed");
    let (_, status) = daemon.get("/api/status");
    let status: Value = serde_json::from_str(&status).expect("status");
    assert_eq!(status["counts"]["failed"], 1, "counted once: {status}");

    // Mended where it lies, then retried: completed under the same id, and failed/ is empty.
    std::fs::write(ws.path(&format!("watch_dir/failed/{file}")), b"{\"a\": 1}").expect("mend");
    let (status, _) = daemon.retry(&broken);
    assert_eq!(status, 202);
    assert!(
        wait_until(LONG, || state_of(&daemon, &broken) == "completed"),
        "{}",
        daemon.log()
    );
    assert!(visible(&ws).is_empty(), "{:?}", visible(&ws));
    let (_, status) = daemon.get("/api/status");
    let status: Value = serde_json::from_str(&status).expect("status");
    assert_eq!(status["counts"]["failed"], 0);
    assert_eq!(status["counts"]["completed"], 2);
    let done = job(&daemon, &broken);
    assert_eq!(done["report"]["job_id"], broken.as_str());
    assert_eq!(
        everything_in(&ws, "watch_dir/failed/.retried").len(),
        2,
        "both error reports kept"
    );
}

#[test]
fn a_half_upload_is_never_processed_and_leaves_nothing() {
    use std::io::Write;
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    let head =
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.log\"\r\n\r\n";
    write!(
        stream,
        "POST /api/upload HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 10000000\r\n\r\n{head}"
    )
    .expect("send head");
    stream
        .write_all(&vec![b'x'; 1 << 20])
        .expect("send part of the body");
    // It is being written under a temporary name the watcher ignores, never under its own.
    assert!(
        wait_until(LONG, || everything_in(&ws, "watch_dir/unprocessed")
            .iter()
            .any(|name| name.starts_with(".fp-") && name.ends_with(".tmp"))),
        "{:?}",
        everything_in(&ws, "watch_dir")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !everything_in(&ws, "watch_dir")
            .iter()
            .any(|n| n.contains("half"))
    );
    // The client goes away: the partial file goes too, and no job was ever queued.
    drop(stream);
    assert!(
        wait_until(LONG, || everything_in(&ws, "watch_dir")
            == [".file-processor.lock"]),
        "{:?}",
        everything_in(&ws, "watch_dir")
    );
    let (_, status) = daemon.get("/api/status");
    let status: Value = serde_json::from_str(&status).expect("status");
    assert_eq!(status["counts"]["queued"], 0);
    assert_eq!(status["counts"]["completed"], 0);
    // Empty parts cost no bytes, but each would be a file: a request has at most 1,000.
    let mut form = multipart::Form::new();
    for i in 0..1001 {
        form = form.part("file", part(&format!("empty{i}"), b""));
    }
    let response = client()
        .post(daemon.url("/api/upload"))
        .multipart(form)
        .send()
        .expect("upload");
    assert_eq!(response.status().as_u16(), 400);
    let refusal: Value = response.json().expect("json");
    assert!(
        refusal["error"]
            .as_str()
            .is_some_and(|e| e.contains("1000 parts")),
        "{refusal}"
    );
    assert_eq!(everything_in(&ws, "watch_dir"), [".file-processor.lock"]);
    // And the daemon goes on.
    let (code, _) = upload(&daemon, vec![("whole.log", b"INFO ok\n")], None);
    assert_eq!(code, 202);
    assert!(wait_until(LONG, || ws
        .files_in("watch_dir/processed")
        .contains(&"whole.log".to_string())));
}

#[test]
fn forms_without_javascript_come_back_to_the_page() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let post = |path: &str, form: Option<multipart::Form>| {
        let request = client().post(daemon.url(path));
        let request = match form {
            Some(form) => request.multipart(form),
            None => request,
        };
        request.send().expect("post")
    };
    // The dashboard's upload form: a 303 back to the page, and the file is queued.
    let form = multipart::Form::new().part("file", part("form.txt", b"from a form\n"));
    let back = post("/api/upload?next=/", Some(form));
    assert_eq!(back.status().as_u16(), 303);
    assert_eq!(back.headers()["location"], "/");
    assert!(wait_until(LONG, || ws
        .files_in("watch_dir/processed")
        .contains(&"form.txt".to_string())));
    // `next` off the server is not followed: the JSON answer instead.
    let form = multipart::Form::new().part("file", part("b.json", b"{"));
    let answer = post("/api/upload?next=//evil.example/", Some(form));
    assert_eq!(answer.status().as_u16(), 202);
    let answer: Value = answer.json().expect("json");
    let id = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(wait_until(LONG, || state_of(&daemon, &id) == "failed"));
    // A failed job's page has a retry button that comes back to it.
    let (code, page) = daemon.get(&format!("/jobs/{id}"));
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("action=\"/api/jobs/{id}/retry?next=/jobs/{id}\"")),
        "{page}"
    );
    // Pressing it (or a failed row's button): back to the page it was pressed on.
    let back = post(&format!("/api/jobs/{id}/retry?next=/jobs/{id}"), None);
    assert_eq!(back.status().as_u16(), 303);
    assert_eq!(back.headers()["location"], format!("/jobs/{id}").as_str());
    assert!(wait_until(LONG, || daemon
        .log()
        .contains(&format!("job {id}: retried"))));
}

#[test]
fn an_upload_is_hashed_as_the_daemon_was_told_and_its_page_shows_it() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--hash", "blake3"], &[]);
    let body = b"2026-11-29 INFO hashed with blake3\n".as_slice();
    let (status, answer) = upload(&daemon, vec![("b3.log", body)], None);
    assert_eq!(status, 202, "{answer}\n{}", daemon.log());
    let id = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    assert!(
        wait_until(LONG, || state_of(&daemon, &id) == "completed"),
        "{}",
        daemon.log()
    );
    // The reference: `b3sum` on the same bytes.
    let expected = common::b3sum(&ws.write("reference.log", body));
    let report = job(&daemon, &id)["report"].clone();
    assert_eq!(report["blake3"], expected.as_str(), "{report}");
    assert!(report.get("sha256").is_none(), "{report}");
    let (status, page) = daemon.get(&format!("/jobs/{id}"));
    assert_eq!(status, 200);
    assert!(
        page.contains("blake3") && page.contains(&expected),
        "{page}"
    );
}

/// `POST PATH` with one `file` part per `(name, bytes)`, the bearer token, and a client
/// timeout: the status and the JSON answer, or `None` when the client gave up first.
fn post_files(
    daemon: &Daemon,
    path: &str,
    parts: &[(&str, &[u8])],
    token: &str,
    timeout: Duration,
) -> Option<(u16, Value)> {
    let mut form = multipart::Form::new();
    for (name, bytes) in parts {
        form = form.part("file", part(name, bytes));
    }
    let response = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client")
        .post(daemon.url(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().unwrap_or(Value::Null)))
}

#[test]
fn an_upload_with_wait_is_answered_with_the_finished_reports() {
    let ws = Workspace::new();
    let token = "wait for it";
    // Every job waits 1.5 s after its analysis: long enough for a short wait to run out.
    let daemon = Daemon::start(
        &ws,
        &["--reject", ".exe"],
        &[("FP_TOKEN", token), ("FP_PAUSE_AT", "after-analysis:1500")],
    );
    let csv = b"user_id,amount\nu1,5\nu2,7\nu1,1\n".as_slice();
    let broken = b"{\"a\": ".as_slice();
    let started = std::time::Instant::now();
    let (status, answer) = post_files(
        &daemon,
        "/api/upload?wait=30s",
        &[("orders.csv", csv), ("broken.json", broken)],
        token,
        LONG,
    )
    .expect("answered");
    // Held until both finished: each one paused 1.5 s, so never answered sooner.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(status, 200, "{answer}\n{}", daemon.log());
    let jobs = answer["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{answer}");
    assert_eq!(jobs[0]["state"], "completed", "{answer}");
    assert_eq!(jobs[1]["state"], "failed", "{answer}");
    // Each job is what `GET /api/jobs/{id}` says, its report the one on disk.
    for (job_view, (folder, suffix)) in jobs
        .iter()
        .zip([("processed", "report"), ("failed", "error")])
    {
        let id = job_view["job_id"].as_str().expect("job_id");
        assert_eq!(*job_view, job_with(&daemon, id, token), "{answer}");
        let file = job_view["file"].as_str().expect("file");
        let on_disk = ws.read_json(&format!("watch_dir/{folder}/{file}.{suffix}.json"));
        assert_eq!(job_view["report"], on_disk, "{answer}");
        assert_eq!(on_disk["job_id"], id);
    }
    // Counted by hand: three rows, two distinct users, amounts 1 to 7.
    let orders = &jobs[0]["report"];
    assert_eq!(orders["csv"]["rows"], 3, "{orders}");
    assert_eq!(orders["csv"]["columns"][0]["distinct"], 2, "{orders}");
    assert_eq!(orders["csv"]["columns"][1]["min"], 1, "{orders}");
    assert_eq!(orders["csv"]["columns"][1]["max"], 7, "{orders}");
    assert_eq!(
        jobs[1]["report"]["error"]["kind"], "invalid_json",
        "{answer}"
    );

    // A retry waits the same way: mended where it lies, it completes under the same id.
    let broken_id = jobs[1]["job_id"].as_str().expect("id").to_string();
    std::fs::write(ws.path("watch_dir/failed/broken.json"), b"{\"a\": 1}").expect("mend");
    let response = client()
        .post(daemon.url(&format!("/api/jobs/{broken_id}/retry?wait=30s")))
        .bearer_auth(token)
        .send()
        .expect("retry");
    assert_eq!(response.status().as_u16(), 200);
    let retried: Value = response.json().expect("JSON");
    assert_eq!(retried["job_id"], broken_id.as_str());
    assert_eq!(retried["state"], "completed", "{retried}");
    assert_eq!(
        retried["report"]["json"]["top_level"], "object",
        "{retried}"
    );

    // The wait runs out first: 202 exactly as without it, and the job goes on.
    let (status, answer) = post_files(
        &daemon,
        "/api/upload?wait=200ms",
        &[("late.txt", b"late\n")],
        token,
        LONG,
    )
    .expect("answered");
    // 202: the job (held 1.5 s) had not finished when the wait ran out.
    assert_eq!(status, 202, "{answer}");
    let late = answer["jobs"][0]["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(answer["jobs"][0]["status_url"], format!("/api/jobs/{late}"));
    assert!(answer["jobs"][0].get("report").is_none(), "{answer}");

    // A client that goes away while waiting cancels nothing: the whole request is sent, then
    // the connection is closed without reading the answer.
    send_and_hang_up(
        &daemon,
        "/api/upload?wait=60s",
        "gone.txt",
        b"still processed\n",
        token,
    );
    assert!(
        wait_until(LONG, || ws.files_in("watch_dir/processed").len() == 8),
        "{:?}\n{}",
        ws.files_in("watch_dir/processed"),
        daemon.log()
    );
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/gone.txt")).expect("kept"),
        b"still processed\n"
    );
    assert_eq!(state_of_with(&daemon, &late, token), "completed");

    // The token, the type rules and the wait's own bounds are checked before anything is kept.
    for (path, token, status) in [
        ("/api/upload?wait=30s", "wrong", 401),
        ("/api/upload?wait=soon", token, 400),
    ] {
        let answer = post_files(&daemon, path, &[("x.txt", b"x\n")], token, LONG);
        assert_eq!(
            answer.as_ref().map(|a| a.0),
            Some(status),
            "{path}: {answer:?}"
        );
    }
    let refused = post_files(
        &daemon,
        "/api/upload?wait=30s",
        &[("setup.exe", b"MZ")],
        token,
        LONG,
    );
    assert_eq!(refused.map(|a| a.0), Some(415));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ws.files_in("watch_dir/unprocessed"), Vec::<String>::new());
    assert_eq!(ws.files_in("watch_dir/processed").len(), 8);

    // A wait longer than the longest (5 minutes) is that one: still answered as the job ends.
    let (status, answer) = post_files(
        &daemon,
        "/api/upload?wait=1h",
        &[("patient.txt", b"patient\n")],
        token,
        LONG,
    )
    .expect("answered");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["jobs"][0]["state"], "completed", "{answer}");
}

/// Sends a whole one-file upload over a raw connection, waits a moment, and closes the
/// connection without reading the answer.
fn send_and_hang_up(daemon: &Daemon, path: &str, name: &str, bytes: &[u8], token: &str) {
    use std::io::Write;
    let boundary = "hang-up-boundary-5f2a";
    let body = one_file_body(boundary, name, bytes);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("send the head");
    stream.write_all(&body).expect("send the body");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
}

fn job_with(daemon: &Daemon, id: &str, token: &str) -> Value {
    let response = client()
        .get(daemon.url(&format!("/api/jobs/{id}")))
        .bearer_auth(token)
        .send()
        .expect("job");
    response.json().unwrap_or(Value::Null)
}

fn state_of_with(daemon: &Daemon, id: &str, token: &str) -> String {
    job_with(daemon, id, token)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A multipart body carrying one file part.
fn one_file_body(boundary: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Reads an HTTP/1.1 answer's status line from `stream` (the answer is small).
fn status_of(stream: &mut std::net::TcpStream) -> u16 {
    use std::io::Read;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

fn vm_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// Sends `count` one-file uploads of `bytes` at once, each on its own connection, and
/// returns their statuses.
fn uploads_at_once(daemon: &Daemon, count: usize, first: usize, bytes: &[u8]) -> Vec<u16> {
    use std::io::Write;
    let boundary = "in-flight-boundary-3c9e";
    let start = std::sync::Arc::new(std::sync::Barrier::new(count));
    let clients: Vec<_> = (first..first + count)
        .map(|i| {
            let body = one_file_body(boundary, &format!("u{i:03}.bin"), bytes);
            let start = start.clone();
            let port = daemon.port;
            std::thread::spawn(move || {
                let mut stream =
                    std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                start.wait();
                write!(
                    stream,
                    "POST /api/upload HTTP/1.1\r\nHost: localhost\r\n\
                     Content-Type: multipart/form-data; boundary={boundary}\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                )
                .expect("send the head");
                stream.write_all(&body).expect("send the body");
                status_of(&mut stream)
            })
        })
        .collect();
    clients
        .into_iter()
        .map(|client| client.join().expect("client"))
        .collect()
}

/// 50 uploads of 1 MiB sent at once, then 250, every connection served at once. 32 are read
/// at a time in both waves, so the 200 more are uploads waiting for their turn: what they cost
/// at the daemon's peak is under 128 KiB each, because the HTTP layer reads each body no
/// further than its window ahead of the handler. (Without the window, actix-http read up to
/// 128 KiB of each body ahead, into a buffer of up to 256 KiB: ~300 KiB each.) The first wave
/// pays what does not grow with the uploads (threads, their arenas).
#[test]
fn uploads_waiting_their_turn_cost_under_128_kib_each() {
    const FIRST: usize = 50;
    const SECOND: usize = 250;
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--max-connections", "10000"], &[]);
    let bytes: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 + 13) as u8).collect();
    let mut peaks = Vec::new();
    for (first, count) in [(0, FIRST), (FIRST, SECOND)] {
        let statuses = uploads_at_once(&daemon, count, first, &bytes);
        assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
        assert!(
            wait_until(LONG, || ws.files_in("watch_dir/processed").len()
                == 2 * (first + count)),
            "{:?}",
            ws.files_in("watch_dir/failed")
        );
        peaks.push(vm_kib(daemon.pid(), "VmHWM:"));
    }
    for i in 0..FIRST + SECOND {
        let kept =
            std::fs::read(ws.path(&format!("watch_dir/processed/u{i:03}.bin"))).expect("kept");
        assert!(kept == bytes, "u{i:03}.bin changed");
    }
    let each = peaks[1].saturating_sub(peaks[0]) / (SECOND - FIRST) as u64;
    eprintln!("peaks {peaks:?} KiB: {each} KiB per upload waiting its turn");
    assert!(
        each < 128,
        "{each} KiB per upload in flight (peaks {peaks:?} KiB)"
    );
}

/// A body sent in 40,000 chunks of one byte each: the chunks' framing (six bytes a chunk) is
/// read but never handed to the handler, so a window moved only by what the handler takes
/// would close for good after a few thousand chunks. It is answered 202 and kept intact.
#[test]
fn a_chunked_upload_of_tiny_chunks_is_read_to_its_end() {
    use std::io::Write;
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    let bytes: Vec<u8> = (0..40_000usize).map(|i| b'a' + (i % 26) as u8).collect();
    let boundary = "tiny-chunks-boundary-81d0";
    let body = one_file_body(boundary, "tiny.txt", &bytes);
    let mut framed = Vec::with_capacity(body.len() * 6);
    for byte in &body {
        framed.extend_from_slice(b"1\r\n");
        framed.push(*byte);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /api/upload HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .expect("send the head");
    stream.write_all(&framed).expect("send the body");
    assert_eq!(status_of(&mut stream), 202);
    assert!(wait_until(LONG, || ws
        .files_in("watch_dir/processed")
        .contains(&"tiny.txt".to_string())));
    let kept = std::fs::read(ws.path("watch_dir/processed/tiny.txt")).expect("kept");
    assert!(kept == bytes, "tiny.txt changed");
}
