//! The dashboard in a real browser: Debian's chromium, headless, driven over the DevTools
//! protocol. Opens the page, drops a file, and checks that the page shows it as processed
//! without a reload; uploads two files through the page's file input and follows them in "my
//! uploads"; retries the failed one with its button; saves a screenshot to
//! `target/tmp/dashboard.png`. Then an archive's job page: its members table (a markup name shown as
//! text, never run) and totals; and a compressed file's page: both sizes and the ratio.
//!
//! Without a chromium on the machine the test says so and passes, unless `FP_REQUIRE_BROWSER`
//! is set, as `.ci/run` does: in CI it cannot be skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Daemon, Workspace, wait_until};
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const LONG: Duration = Duration::from_secs(60);

fn find_chromium() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    let dirs: Vec<PathBuf> = std::env::split_paths(&paths).collect();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|path| path.is_file())
}

/// GET on chromium's DevTools HTTP endpoint, read up to its Content-Length (it does not close
/// the connection when done).
fn devtools_json(port: u16, path: &str) -> Value {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Value::Null;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .is_err()
    {
        return Value::Null;
    }
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return serde_json::from_str(body).unwrap_or(Value::Null);
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Value::Null,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// A headless chromium showing one page, killed when dropped.
struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(binary: &PathBuf, url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let stderr = child.stderr.take().expect("stderr");
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                port = rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                break;
            }
        }
        let port = port.expect("chromium announced its DevTools port");
        let mut page_url = None;
        let found = wait_until(LONG, || {
            let targets = devtools_json(port, "/json/list");
            page_url = targets.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                    .map(str::to_string)
            });
            page_url.is_some()
        });
        assert!(found, "chromium has no page target");
        let (page, _) = tungstenite::connect(page_url.expect("page")).expect("DevTools socket");
        Browser {
            child,
            page,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(message.to_string()))
            .expect("send");
        loop {
            let reply = self.page.read().expect("read");
            let Message::Text(text) = reply else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).expect("json");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// Waits until the page says its event stream is open ("live").
    fn wait_until_live(&mut self) {
        let state = self.eval_until(
            "document.getElementById('state') ? document.getElementById('state').textContent : ''",
            |v| v.as_str().is_some_and(|s| s.contains("live")),
        );
        assert!(
            state.as_str().is_some_and(|s| s.contains("live")),
            "{state}"
        );
    }

    fn eval_until(&mut self, expression: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + LONG;
        loop {
            let value = self.eval(expression);
            if want(&value) || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves the page as `target/tmp/NAME` (a PNG).
fn save_screenshot(browser: &mut Browser, name: &str) {
    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("screenshot data"))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&out, png).expect("save screenshot");
    eprintln!("screenshot: {}", out.display());
}

/// The chromium to test with; `None` (the test is skipped, and says so) only when there is
/// none and `FP_REQUIRE_BROWSER` is unset.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("FP_REQUIRE_BROWSER").is_none(),
            "FP_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("no chromium on this machine: the browser test is skipped");
    }
    found
}

#[test]
fn the_dashboard_shows_a_dropped_file_as_processed_without_a_reload() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--settle-ms", "50"], &[]);
    let mut browser = Browser::open(&chromium, &format!("http://127.0.0.1:{}/", daemon.port));

    // The page is up and its event stream is open.
    browser.wait_until_live();
    let before = browser.eval("document.getElementById('count-completed').textContent");
    assert!(before.as_str().is_some_and(|s| s.contains('0')), "{before}");
    // A reload would lose this.
    browser.eval("window.__sameDocument = 'yes'");

    ws.write("stage/seen-live.csv", b"user_id,n\nu1,1\nu2,2\n");
    std::fs::rename(
        ws.path("stage/seen-live.csv"),
        ws.path("watch_dir/unprocessed/seen-live.csv"),
    )
    .expect("move in");

    let processed = browser.eval_until(
        "(document.getElementById('processed') || {textContent: ''}).textContent",
        |v| v.as_str().is_some_and(|s| s.contains("seen-live.csv")),
    );
    assert!(
        processed
            .as_str()
            .is_some_and(|s| s.contains("seen-live.csv") && s.contains("2 rows")),
        "the page did not show the file: {processed}\n{}",
        daemon.log()
    );
    assert_eq!(
        browser.eval("window.__sameDocument"),
        json!("yes"),
        "the page reloaded"
    );
    let last = browser.eval("document.getElementById('last-processed').textContent");
    assert!(
        last.as_str().is_some_and(|s| s.contains("seen-live.csv")),
        "{last}"
    );

    // Upload through the page: two files chosen in its file input, as a user would.
    let log_body = b"INFO started\nERROR disk full\n";
    let good = ws.write("to-upload/uploaded.log", log_body);
    let bad = ws.write("to-upload/broken.json", b"{\"a\": ");
    let document = browser.call("DOM.getDocument", json!({}));
    let input = browser.call(
        "DOM.querySelector",
        json!({ "nodeId": document["root"]["nodeId"], "selector": "#upload-input" }),
    );
    browser.call(
        "DOM.setFileInputFiles",
        json!({
            "nodeId": input["nodeId"],
            "files": [good.display().to_string(), bad.display().to_string()],
        }),
    );
    let mine_text = "(document.getElementById('mine') || {textContent: ''}).textContent";
    let both_done = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.contains("uploaded.log") && s.contains("completed") && s.contains("failed")
        })
    };
    let mine = browser.eval_until(mine_text, both_done);
    assert!(both_done(&mine), "my uploads: {mine}\n{}", daemon.log());
    // The browser remembers the job ids the server gave; they are the reports' ids.
    let stored = browser.eval("localStorage.getItem('file-processor.my-uploads')");
    let stored: Value = serde_json::from_str(stored.as_str().expect("stored")).expect("JSON");
    let id_of = |file: &str| -> String {
        stored
            .as_array()
            .and_then(|jobs| jobs.iter().find(|job| job["file"] == file))
            .and_then(|job| job["job_id"].as_str())
            .unwrap_or_else(|| panic!("{file} not in {stored}"))
            .to_string()
    };
    let report = ws.read_json("watch_dir/processed/uploaded.log.report.json");
    assert_eq!(report["job_id"], id_of("uploaded.log").as_str());
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/uploaded.log")).expect("uploaded"),
        log_body
    );
    let broken = id_of("broken.json");
    assert_eq!(
        ws.read_json("watch_dir/failed/broken.json.error.json")["job_id"],
        broken.as_str()
    );

    // The failed row's retry button: the job runs again under its id and fails again.
    let failed_rows = browser.eval_until(
        "(document.getElementById('failed') || {textContent: ''}).textContent",
        |v| v.as_str().is_some_and(|s| s.contains("broken.json")),
    );
    assert!(
        failed_rows.as_str().is_some_and(|s| s.contains("retry")),
        "{failed_rows}"
    );
    browser.eval("document.querySelector('#failed form.retry button').click()");
    assert!(
        wait_until(LONG, || daemon
            .log()
            .contains(&format!("job {broken}: retried"))),
        "{}",
        daemon.log()
    );
    assert!(
        wait_until(LONG, || {
            ws.files_in("watch_dir/failed/.retried")
                .contains(&format!("{broken}.error.json"))
                && ws
                    .files_in("watch_dir/failed")
                    .iter()
                    .filter(|n| !n.starts_with('.'))
                    .count()
                    == 2
        }),
        "{:?}\n{}",
        ws.files_in("watch_dir/failed"),
        daemon.log()
    );
    let again = browser.eval_until(mine_text, both_done);
    assert!(both_done(&again), "{again}");
    assert_eq!(
        browser.eval("window.__sameDocument"),
        json!("yes"),
        "the page reloaded"
    );

    save_screenshot(&mut browser, "dashboard.png");
}

#[test]
fn an_archive_page_lists_its_members_and_a_compressed_page_its_sizes() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &[], &[]);
    // A zip (Python's zipfile) with a CSV, a log, a broken JSON and a name that is markup.
    let hostile = "<img src=x onerror=\"window.__xss=1\">.txt";
    std::fs::create_dir_all(ws.path("stage")).expect("mkdir");
    let zip = ws.path("stage/bundle.zip");
    let gz = ws.path("stage/app.log.gz");
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import gzip, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   z.writestr('orders.csv', 'user_id,n\\nu1,1\\nu2,2\\nu1,3\\n')\n\
             \x20   z.writestr('logs/app.log', 'INFO a\\nERROR b\\n')\n\
             \x20   z.writestr('bad.json', '{not json')\n\
             \x20   z.writestr(sys.argv[3], 'hello there\\n')\n\
             open(sys.argv[2], 'wb').write(gzip.compress(b'INFO line\\n' * 5000))",
        ])
        .arg(&zip)
        .arg(&gz)
        .arg(hostile)
        .status()
        .expect("python3");
    assert!(status.success());
    for name in ["bundle.zip", "app.log.gz"] {
        std::fs::rename(
            ws.path(&format!("stage/{name}")),
            ws.path(&format!("watch_dir/unprocessed/{name}")),
        )
        .expect("move in");
    }
    assert!(
        wait_until(LONG, || {
            ws.path("watch_dir/processed/bundle.zip.report.json")
                .exists()
                && ws
                    .path("watch_dir/processed/app.log.gz.report.json")
                    .exists()
        }),
        "{}",
        daemon.log()
    );
    let zip_id = ws.read_json("watch_dir/processed/bundle.zip.report.json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let gz_id = ws.read_json("watch_dir/processed/app.log.gz.report.json")["job_id"]
        .as_str()
        .expect("id")
        .to_string();

    let mut browser = Browser::open(
        &chromium,
        &format!("http://127.0.0.1:{}/jobs/{zip_id}", daemon.port),
    );
    let rows_js = "Array.from(document.querySelectorAll('#members tr')).map(r => \
                   Array.from(r.children).map(c => c.textContent.trim()))";
    let rows = browser.eval_until(rows_js, |v| v.as_array().is_some_and(|r| r.len() >= 5));
    let rows = rows.as_array().expect("rows");
    let row_of = |name: &str| -> Vec<String> {
        rows.iter()
            .find(|row| row[0] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))
            .as_array()
            .expect("cells")
            .iter()
            .map(|cell| cell.as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(row_of("orders.csv")[2..], ["csv", "completed", "3 rows"]);
    assert_eq!(
        row_of("logs/app.log")[2..],
        ["text", "completed", "2 lines"]
    );
    let bad = row_of("bad.json");
    assert_eq!(bad[2..4], ["json", "failed"]);
    assert!(bad[4].starts_with("invalid_json"), "{bad:?}");
    // The markup name is shown as text, and never ran.
    assert_eq!(row_of(hostile)[3], "completed");
    assert_eq!(browser.eval("window.__xss === undefined"), json!(true));
    let totals = browser.eval("document.getElementById('archive').textContent");
    let totals = totals.as_str().unwrap_or_default();
    for fact in ["entries4", "files4", "lines3", "rows3"] {
        assert!(
            totals.replace(char::is_whitespace, "").contains(fact),
            "{fact}: {totals}"
        );
    }

    browser.call(
        "Page.navigate",
        json!({ "url": format!("http://127.0.0.1:{}/jobs/{gz_id}", daemon.port) }),
    );
    let facts = browser.eval_until(
        "(document.getElementById('job') || {textContent: ''}).textContent",
        |v| v.as_str().is_some_and(|s| s.contains("compression")),
    );
    let facts = facts.as_str().unwrap_or_default();
    let report = ws.read_json("watch_dir/processed/app.log.gz.report.json");
    let packed = report["compression"]["packed_bytes"]
        .as_u64()
        .expect("packed");
    let ratio = 50_000.0 / packed as f64;
    assert!(facts.contains("gzip"), "{facts}");
    assert!(facts.contains("48.8 KiB"), "unpacked size: {facts}");
    assert!(facts.contains(&format!("({ratio:.1}:1)")), "{facts}");
}

/// The dashboard at a glance: the chart's empty state, then its axes once files finished
/// (its bars add up to the files on disk); the counts by kind against the reports on disk; a
/// running file's elapsed time (going on between refreshes), speed and time left. Saves
/// `target/tmp/dashboard-at-a-glance.png` while the large file runs.
#[test]
fn the_dashboard_reads_at_a_glance() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let ws = Workspace::new();
    // Each time a job's progress is told, it waits 1.5 s: a large file runs for seconds.
    let daemon = Daemon::start(
        &ws,
        &["--settle-ms", "50", "--segment-bytes", "1048576"],
        &[("FP_PAUSE_AT", "after-progress:1500")],
    );
    let mut browser = Browser::open(&chromium, &format!("http://127.0.0.1:{}/", daemon.port));
    let text_of =
        |id: &str| format!("(document.getElementById('{id}') || {{textContent: ''}}).textContent");
    let empty = browser.eval_until(&text_of("chart-empty"), |v| {
        v.as_str().is_some_and(|s| !s.is_empty())
    });
    assert_eq!(empty, json!("No files in the last 30 minutes."));
    let kinds = browser.eval(&text_of("kinds"));
    assert_eq!(kinds, json!("By kind: no file finished yet."));

    // Files of five kinds, one of them failing.
    let files: [(&str, &[u8]); 6] = [
        ("orders.csv", b"user_id,n\nu1,1\nu2,2\n"),
        ("more.csv", b"a,b\n1,2\n"),
        ("app.log", b"INFO up\nERROR down\n"),
        ("event.json", b"{\"a\": 1}"),
        ("broken.json", b"{\"a\": "),
        ("blob.bin", b"\x00\x01\x02\xff\xfe\x00"),
    ];
    for (name, bytes) in files {
        ws.write(&format!("stage/{name}"), bytes);
        std::fs::rename(
            ws.path(&format!("stage/{name}")),
            ws.path(&format!("watch_dir/unprocessed/{name}")),
        )
        .expect("move in");
    }
    let finished =
        || ws.files_in("watch_dir/processed").len() + ws.files_in("watch_dir/failed").len();
    assert!(
        wait_until(LONG, || finished() == 2 * files.len()),
        "{}",
        daemon.log()
    );
    // The reference: kinds counted from the reports on disk, not from the daemon's counters.
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (folder, suffix, failed) in [
        ("processed", ".report.json", false),
        ("failed", ".error.json", true),
    ] {
        for name in ws.files_in(&format!("watch_dir/{folder}")) {
            if let Some(file) = name.strip_suffix(suffix) {
                let report = ws.read_json(&format!("watch_dir/{folder}/{file}{suffix}"));
                let kind = report["kind"].as_str().expect("kind").to_string();
                let entry = expected.entry(kind).or_default();
                if failed { entry.1 += 1 } else { entry.0 += 1 }
            }
        }
    }
    assert_eq!(expected.len(), 4, "{expected:?}");
    let mut want: Vec<String> = expected
        .iter()
        .map(|(kind, (completed, failed))| match failed {
            0 => format!("{kind} {completed}"),
            n => format!("{kind} {completed} +{n} failed"),
        })
        .collect();
    want.sort();
    // A file and its report are in place a moment before the job is told finished (and the
    // page hears of it within a quarter of a second): the page is read until it agrees, or
    // until the wait runs out and the assertion below shows what it said instead.
    let sorted_texts = |v: &Value| -> Option<Vec<String>> {
        let mut texts: Vec<String> = v
            .as_array()?
            .iter()
            .map(|k| k.as_str().unwrap_or_default().to_string())
            .collect();
        texts.sort();
        Some(texts)
    };
    let shown_js = "Array.from(document.querySelectorAll('#kinds .kind')).map(k => k.textContent)";
    let shown = browser.eval_until(shown_js, |v| sorted_texts(v).as_ref() == Some(&want));
    let shown = sorted_texts(&shown).unwrap_or_else(|| panic!("{shown}"));
    assert_eq!(shown, want);

    // The chart: no empty state, a value axis from 0, six time labels five minutes apart, and
    // bars whose titles add up to the files finished.
    let chart = browser.eval_until(
        "document.getElementById('chart') ? [\
           Array.from(document.querySelectorAll('#chart text.value')).map(t => t.textContent),\
           Array.from(document.querySelectorAll('#chart text.time')).map(t => t.textContent),\
           Array.from(document.querySelectorAll('#chart rect.bar title')).map(t => t.textContent),\
           document.getElementById('chart-empty') === null] : null",
        // Read until the bars count every file (the chart follows the finishes it hears of).
        |v| bar_files(&v[2]) == Some(files.len() as u64),
    );
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{chart}"))
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let values = strings(&chart[0]);
    let times = strings(&chart[1]);
    let titles = strings(&chart[2]);
    assert_eq!(chart[3], json!(true), "the empty state is gone: {chart}");
    assert_eq!(values.len(), 3, "{chart}");
    assert_eq!(values[0], "0");
    let top: u64 = values[2].parse().expect("a number");
    assert_eq!(values[1], (top / 2).to_string());
    assert_eq!(times.last().map(String::as_str), Some("UTC"), "{chart}");
    assert_eq!(times.len(), 7, "six times and the zone: {chart}");
    for time in &times[..6] {
        let (hours, minutes) = time.split_once(':').expect("HH:MM");
        let hours: u32 = hours.parse().expect("hours");
        let minutes: u32 = minutes.parse().expect("minutes");
        assert!(
            hours < 24 && minutes < 60 && minutes.is_multiple_of(5),
            "{time}"
        );
    }
    assert_eq!(titles.len(), 30);
    let per_minute: Vec<u64> = titles
        .iter()
        .map(|t| files_in_title(t).expect("files in the title"))
        .collect();
    assert_eq!(
        per_minute.iter().sum::<u64>(),
        files.len() as u64,
        "{titles:?}"
    );
    assert!(
        per_minute.iter().all(|&n| n <= top),
        "{titles:?} over {top}"
    );

    // A large file in progress: elapsed, speed, time left.
    let line = b"2026-11-30 08:00:00 INFO a line of a large log file\n";
    let big: Vec<u8> = line.iter().copied().cycle().take(24 << 20).collect();
    ws.write("stage/large.log", &big);
    std::fs::rename(
        ws.path("stage/large.log"),
        ws.path("watch_dir/unprocessed/large.log"),
    )
    .expect("move in");
    let cells_js = "Array.from(document.querySelectorAll('#processing tr')).slice(1)\
                    .map(r => Array.from(r.children).map(c => c.textContent.trim()))";
    let known = |v: &Value| {
        v.as_array().is_some_and(|rows| {
            rows.iter().any(|row| {
                row[0] == "large.log" && row[4].as_str().is_some_and(|s| s.ends_with("/s"))
            })
        })
    };
    let rows = browser.eval_until(cells_js, known);
    assert!(known(&rows), "{rows}\n{}", daemon.log());
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row[0] == "large.log"))
        .expect("the row")
        .clone();
    // "0.4 s", "12 s", "3 min 05 s" or "2 h 07 min", in seconds.
    let seconds = |cell: &Value| -> f64 {
        let text = cell.as_str().unwrap_or_default();
        let words: Vec<&str> = text.split(' ').collect();
        let number = |word: &str| -> f64 { word.parse().unwrap_or_else(|_| panic!("{text}")) };
        match words[..] {
            [n, "s"] => number(n),
            [m, "min", s, "s"] => number(m) * 60.0 + number(s),
            [h, "h", m, "min"] => number(h) * 3600.0 + number(m) * 60.0,
            _ => panic!("not a duration: {text}"),
        }
    };
    let elapsed = seconds(&row[3]);
    let left = seconds(&row[5]);
    assert!(elapsed > 0.0 && left >= 0.0, "{row}");
    let percent: f64 = row[2]
        .as_str()
        .and_then(|p| p.trim_end_matches('%').trim().rsplit(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{row}"));
    assert!(percent > 0.0 && percent < 100.0, "{row}");
    save_screenshot(&mut browser, "dashboard-at-a-glance.png");
    // The elapsed time goes on between refreshes.
    std::thread::sleep(Duration::from_millis(1200));
    let later = browser.eval(cells_js);
    let row = later
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row[0] == "large.log"))
        .unwrap_or_else(|| panic!("still running (it pauses 1.5 s a step): {later}"));
    assert!(seconds(&row[3]) > elapsed, "{row} after {elapsed} s");
    assert!(
        wait_until(LONG, || ws
            .path("watch_dir/processed/large.log.report.json")
            .exists()),
        "{}",
        daemon.log()
    );
    let report = ws.read_json("watch_dir/processed/large.log.report.json");
    // Counted another way: newlines, and the cut-off line at the end.
    let lines = big.iter().filter(|&&b| b == b'\n').count() + usize::from(!big.ends_with(b"\n"));
    assert_eq!(report["text"]["lines"], lines);
}

/// A cluster node's dashboard: the nodes table, then the banner once Redis is gone, seen in
/// the browser without a reload; saves `target/tmp/dashboard-cluster.png`.
#[test]
fn a_cluster_dashboard_shows_the_nodes_and_says_when_redis_is_gone() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let Some(mut redis) = common::RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let ws = Workspace::new();
    let a = Daemon::start(
        &ws,
        &["--settle-ms", "50", "--redis", &url, "--node", "a"],
        &[],
    );
    let b = Daemon::start(
        &ws,
        &["--settle-ms", "50", "--redis", &url, "--node", "b"],
        &[],
    );
    // Both nodes have beaten at least once before the page is read.
    assert!(wait_until(LONG, || {
        a.get_json("/api/nodes").1.as_array().map_or(0, Vec::len) == 2
    }));
    let mut browser = Browser::open(&chromium, &format!("http://127.0.0.1:{}/", a.port));
    // The page's event stream is open before anything changes.
    browser.wait_until_live();
    let up = browser.eval_until(
        "document.querySelectorAll('#nodes tr.node-up').length",
        |v| v.as_u64() == Some(2),
    );
    assert_eq!(up, json!(2), "{}", a.log());
    browser.eval("window.__sameDocument = 'yes'");

    // Node a alone from here, so that the file below is surely a's (without Redis each node
    // claims on its own, and a's page only hears of a's jobs).
    b.kill();
    redis.stop();
    assert!(wait_until(LONG, || a.get_json("/health").1["redis"] == "down"));
    // The page refreshes its live part when Redis's state changes, and when a job does.
    ws.write(
        "watch_dir/unprocessed/while-down.log",
        b"INFO still working\n",
    );
    let banner = browser.eval_until(
        "document.getElementById('redis-down') ? 'shown' : ''",
        |v| v == "shown",
    );
    assert_eq!(banner, json!("shown"), "{}", a.log());
    assert_eq!(
        browser.eval("window.__sameDocument"),
        json!("yes"),
        "the page reloaded"
    );
    save_screenshot(&mut browser, "dashboard-cluster.png");
}

/// The files a chart bar's title counts (`HH:MM: N files`).
fn files_in_title(title: &str) -> Option<u64> {
    title
        .split(": ")
        .nth(1)
        .and_then(|f| f.split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// The files all the chart's bar titles count, if each says how many.
fn bar_files(titles: &Value) -> Option<u64> {
    titles
        .as_array()?
        .iter()
        .map(|t| t.as_str().and_then(files_in_title))
        .sum()
}
