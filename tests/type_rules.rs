//! Type rules (`--accept`, `--reject`), extensions that promise a format the bytes lack
//! (`invalid_<kind>`) and `--job-timeout` (SPEC §4, §4.4), on the real binary: dropped files
//! end in `failed/` unchanged with the error the SPEC names, refused uploads get 415 and leave
//! nothing behind, and a file past its deadline frees its worker for the next one.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Workspace, everything_in, input_report, upload, wait_until};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// A real executable's bytes (ELF on Linux).
fn executable() -> Vec<u8> {
    std::fs::read("/bin/true").expect("read /bin/true")
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06";

/// A zip holding one CSV, by Python's `zipfile`.
fn zip_bytes(ws: &Workspace) -> Vec<u8> {
    let path = ws.path("made.zip");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('a.csv', 'id\\n1\\n')",
        ])
        .arg(&path)
        .status()
        .expect("python3");
    assert!(status.success());
    std::fs::read(&path).expect("read zip")
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    child.wait_with_output().expect("gzip").stdout
}

/// Waits until `name` has left `unprocessed/` and `underprocess/`; returns its report.
fn outcome(ws: &Workspace, name: &str) -> Value {
    let done = ws.path(&format!("watch_dir/processed/{name}.report.json"));
    let failed = ws.path(&format!("watch_dir/failed/{name}.error.json"));
    // The report is published first and the file moved beside it just after (SPEC §3): wait
    // for both, or a test that looks at the file can catch it between the two.
    let moved = |folder: &str| ws.path(&format!("watch_dir/{folder}/{name}")).exists();
    assert!(
        wait_until(LONG, || (done.exists() && moved("processed"))
            || (failed.exists() && moved("failed"))),
        "{name} never finished: {:?}",
        everything_in(ws, "watch_dir")
    );
    let rel = if done.exists() {
        format!("watch_dir/processed/{name}.report.json")
    } else {
        format!("watch_dir/failed/{name}.error.json")
    };
    ws.read_json(&rel)
}

#[test]
fn dropped_files_the_rules_refuse_fail_as_rejected_with_their_bytes_unchanged() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--accept", "csv,text,.log.gz"], &[]);
    let elf = executable();
    let zip = zip_bytes(&ws);
    let gz = gzip_bytes(b"INFO started\nERROR disk full\n");
    // (name, bytes, passes, words the refusal must contain)
    let cases: Vec<(&str, Vec<u8>, bool, Vec<&str>)> = vec![
        ("orders.csv", b"user_id,n\nu1,1\n".to_vec(), true, vec![]),
        ("notes", b"plain words\n".to_vec(), true, vec![]),
        ("app.log.gz", gz, true, vec![]),
        (
            "tool.txt",
            elf.clone(),
            false,
            vec!["kind text", "extension .txt", "detected elf", "kind binary"],
        ),
        (
            "export.csv",
            zip,
            false,
            vec!["kind csv", "detected zip", "kind archive"],
        ),
        (
            "data.json",
            b"{\"a\": 1}".to_vec(),
            false,
            vec!["kind json", "extension .json", "--accept csv,text,.log.gz"],
        ),
        ("tool", elf, false, vec!["kind binary", "extension none"]),
    ];
    for (name, bytes, _, _) in &cases {
        ws.write(&format!("watch_dir/unprocessed/{name}"), bytes);
    }
    for (name, bytes, passes, words) in &cases {
        let report = outcome(&ws, name);
        if *passes {
            assert_eq!(report["status"], "completed", "{name}: {report}");
            continue;
        }
        assert_eq!(report["status"], "failed", "{name}: {report}");
        assert_eq!(report["error"]["kind"], "rejected", "{name}: {report}");
        let message = report["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{name}: {word:?} in {message}");
        }
        let kept = std::fs::read(ws.path(&format!("watch_dir/failed/{name}"))).expect("kept");
        assert!(kept == *bytes, "{name}: bytes changed in failed/");
        // The API tells the same.
        let id = report["job_id"].as_str().expect("job id");
        let (status, job) = daemon.get_json(&format!("/api/jobs/{id}"));
        assert_eq!(status, 200);
        assert_eq!(job["state"], "failed", "{job}");
        assert_eq!(job["error"]["kind"], "rejected", "{job}");
    }
    let gz = outcome(&ws, "app.log.gz");
    assert_eq!(gz["kind"], "text");
    assert_eq!(gz["text"]["lines"], 2);
}

#[test]
fn reject_wins_and_names_the_rule() {
    let ws = Workspace::new();
    let _daemon = Daemon::start(&ws, &["--reject", "binary,.exe"], &[]);
    ws.write("watch_dir/unprocessed/setup.exe", b"MZ but really text\n");
    ws.write("watch_dir/unprocessed/photo.png", PNG);
    ws.write("watch_dir/unprocessed/fine.log", b"INFO ok\n");
    let exe = outcome(&ws, "setup.exe");
    assert_eq!(exe["error"]["kind"], "rejected", "{exe}");
    assert!(
        exe["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--reject .exe")),
        "{exe}"
    );
    let png = outcome(&ws, "photo.png");
    assert_eq!(png["error"]["kind"], "rejected", "{png}");
    assert_eq!(png["detected"], "png", "{png}");
    assert_eq!(outcome(&ws, "fine.log")["status"], "completed");
}

#[test]
fn refused_uploads_get_415_and_leave_nothing_behind() {
    let ws = Workspace::new();
    // The limit is above the JSON part but below what its body plus the check of its
    // Content-Length would let through unread: the name is refused before any body is counted.
    let daemon = Daemon::start(
        &ws,
        &["--accept", "csv,text", "--max-upload-bytes", "8000"],
        &[],
    );
    let nothing: Vec<String> = everything_in(&ws, "watch_dir")
        .into_iter()
        .filter(|path| !path.ends_with(".gitkeep") && !path.ends_with(".lock"))
        .collect();
    assert_eq!(nothing, Vec::<String>::new());
    let big_json = vec![b' '; 50_000];
    // The start of an executable (its signature), under the limit.
    let elf = executable()[..4096].to_vec();
    type Parts<'a> = Vec<(&'a str, &'a [u8])>;
    let requests: Vec<(Parts, &str)> = vec![
        // Refused by its name before its body (over --max-upload-bytes) is read: not 413.
        (vec![("big.json", &big_json[..])], "kind json"),
        // Refused by its bytes once received.
        (vec![("tool.txt", &elf[..])], "detected elf"),
        // All or nothing: the good part of a refused request is not kept either.
        (
            vec![("good.csv", b"id\n1\n"), ("tool.txt", &elf[..])],
            "tool.txt",
        ),
    ];
    for (parts, word) in requests {
        let (status, answer) = upload(&daemon, parts, None);
        assert_eq!(status, 415, "{answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(word), "{word:?} in {error}");
        let left: Vec<String> = everything_in(&ws, "watch_dir")
            .into_iter()
            .filter(|path| !path.ends_with(".gitkeep") && !path.ends_with(".lock"))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "after {error}");
    }
    let (status, answer) = upload(&daemon, vec![("good.csv", b"id\n1\n")], None);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(outcome(&ws, "good.csv")["status"], "completed");
    assert_eq!(daemon.counts()["failed"], 0);
}

#[test]
fn an_extension_that_promises_a_format_the_bytes_lack_fails_as_invalid_kind() {
    let ws = Workspace::new();
    let elf = executable();
    let zip = zip_bytes(&ws);
    let cases: [(&str, &[u8], Option<&str>); 7] = [
        ("book.xlsx", b"id,name\n1,a\n", Some("invalid_spreadsheet")),
        ("old.xls", &elf, Some("invalid_spreadsheet")),
        ("empty.pdf", b"", Some("invalid_document")),
        ("letter.docx", PNG, Some("invalid_document")),
        ("bundle.zip", &zip, None),
        ("letter.rtf", b"{\\rtf1 hello}", None),
        ("tool.txt", &elf, None),
    ];
    for (name, bytes, error) in cases {
        ws.write(name, bytes);
        let (code, report) = input_report(&ws, name, &[]);
        match error {
            Some(kind) => {
                assert_eq!(code, Some(1), "{name}: {report}");
                assert_eq!(report["error"]["kind"], kind, "{name}: {report}");
                let message = report["error"]["message"].as_str().unwrap_or_default();
                let extension = Path::new(name)
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or_default();
                assert!(message.contains(&format!(".{extension}")), "{message}");
            }
            None => assert_eq!(code, Some(0), "{name}: {report}"),
        }
    }
    // A text name on an executable completes, and says what the bytes are.
    let (_, report) = input_report(&ws, "watch_dir/processed/tool.txt", &[]);
    assert_eq!(report["detected"], "elf", "{report}");
}

/// A sparse file of `bytes` zeros: as long to analyse as any file of that size, free to make.
fn sparse(path: &Path, bytes: u64) {
    let file = std::fs::File::create(path).expect("create");
    file.set_len(bytes).expect("set_len");
}

#[test]
fn a_file_past_job_timeout_fails_with_timeout_and_its_worker_goes_on() {
    let ws = Workspace::new();
    let daemon = Daemon::start(&ws, &["--job-timeout", "300ms", "--workers", "1"], &[]);
    // 16 GiB: analysing it whole would take minutes; it is stopped a buffer past its deadline.
    let staged = ws.path("huge.log");
    sparse(&staged, 16 << 30);
    std::fs::rename(&staged, ws.path("watch_dir/unprocessed/huge.log")).expect("rename");
    let report = outcome(&ws, "huge.log");
    assert_eq!(report["status"], "failed", "{report}");
    common::assert_failed_with(&report, "timeout", "--job-timeout 300ms");
    let duration = report["duration_ms"].as_u64().expect("duration");
    assert!(duration >= 300, "{report}");
    let moved = std::fs::metadata(ws.path("watch_dir/failed/huge.log")).expect("kept");
    assert_eq!(moved.len(), 16 << 30);
    // The one worker is free again.
    ws.write("watch_dir/unprocessed/after.csv", b"id\n1\n2\n");
    let after = outcome(&ws, "after.csv");
    assert_eq!(after["status"], "completed", "{after}");
    assert_eq!(after["csv"]["rows"], 2);
    assert_eq!(daemon.counts()["failed"], 1);
    let (status, health) = daemon.get_json("/health");
    assert_eq!(status, 200, "{health}");
}

#[test]
fn single_shot_honours_job_timeout_and_the_flags_are_checked() {
    let ws = Workspace::new();
    sparse(&ws.path("huge.csv"), 16 << 30);
    let (code, report) = input_report(&ws, "huge.csv", &["--job-timeout", "200ms"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "timeout", "{report}");
    for args in [
        &["--input", "x", "--accept", "csvs"][..],
        &["--input", "x", "--reject", "exe"],
        &["--input", "x", "--accept", ""],
        &["--input", "x", "--job-timeout", "0s"],
        &["--input", "x", "--job-timeout", "soon"],
    ] {
        let out = ws.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = common::stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}
