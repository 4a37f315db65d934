//! `--input FILE` end to end: the real binary on real folders.

mod common;

use common::{Workspace, reference, stderr, stdout};
use std::os::unix::fs::MetadataExt;

#[test]
fn a_file_goes_to_processed_with_its_report_and_bytes_unchanged() {
    let ws = Workspace::new();
    let body = b"2026-01-01 INFO up\n2026-01-01 ERROR down\n";
    let input = ws.write("incoming/app.log", body);
    let expected_sha = reference("sha256", &input, &[]);

    let out = ws.run(&["--input", "incoming/app.log"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!input.exists(), "the input was moved, not copied");
    assert_eq!(
        ws.files_in("watch_dir/processed"),
        vec!["app.log", "app.log.report.json"]
    );
    for folder in ["unprocessed", "underprocess", "failed"] {
        assert!(
            ws.path("watch_dir").join(folder).is_dir(),
            "{folder} created"
        );
        assert!(ws.files_in(&format!("watch_dir/{folder}")).is_empty());
    }
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/app.log")).expect("read"),
        body
    );

    let report = ws.read_json("watch_dir/processed/app.log.report.json");
    assert_eq!(report["status"], "completed");
    assert_eq!(report["kind"], "text");
    assert_eq!(report["file"], "app.log");
    assert_eq!(report["original_name"], "app.log");
    assert_eq!(report["size_bytes"], body.len());
    assert_eq!(report["sha256"], expected_sha.as_str());
    assert_eq!(report["text"]["lines"], 2);
    assert_eq!(report["text"]["log_levels"]["ERROR"], 1);
    assert_eq!(report["job_id"].as_str().map(str::len), Some(26));
    for stamp in ["queued_at", "started_at", "finished_at"] {
        let text = report[stamp].as_str().expect("timestamp");
        assert!(humantime::parse_rfc3339(text).is_ok(), "{stamp}: {text}");
        assert!(text.ends_with('Z'), "{stamp} is UTC");
    }
    assert!(stdout(&out).starts_with("completed: app.log -> "));
}

#[test]
fn json_output_is_the_written_report() {
    let ws = Workspace::new();
    ws.write("d.csv", b"user_id,n\nu1,1\nu2,2\nu1,3\n");
    let out = ws.run(&["--input", "d.csv", "--json", "--dir", "wd"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(printed, ws.read_json("wd/processed/d.csv.report.json"));
    assert_eq!(printed["csv"]["top_users"][0]["user"], "u1");
    assert_eq!(printed["csv"]["top_users"][0]["rows"], 2);
}

#[test]
fn a_file_that_cannot_be_analysed_goes_to_failed_with_exit_code_1() {
    let ws = Workspace::new();
    ws.write("broken.json", b"{\"a\": [1, 2,, 3]}");
    let out = ws.run(&["--input", "broken.json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(
        ws.files_in("watch_dir/failed"),
        vec!["broken.json", "broken.json.error.json"]
    );
    assert!(ws.files_in("watch_dir/processed").is_empty());
    let report = ws.read_json("watch_dir/failed/broken.json.error.json");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["error"]["kind"], "invalid_json");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1 column 13")),
        "{report}"
    );
}

#[test]
fn binary_and_oddly_encoded_files_are_not_failures() {
    let ws = Workspace::new();
    ws.write("blob.bin", &[0u8, 159, 146, 150, 255, 0, 1]);
    ws.write("latin1.txt", b"caf\xe9 cr\xe8me\n");
    let out = ws.run(&["--input", "blob.bin", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["kind"], "binary");
    assert!(report.get("text").is_none());

    let out = ws.run(&["--input", "latin1.txt", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["kind"], "text");
    assert_eq!(report["text"]["chars"], serde_json::Value::Null);
    assert_eq!(report["text"]["words"], 2);
}

#[test]
fn taken_names_get_derived_names_and_nothing_is_overwritten() {
    let ws = Workspace::new();
    ws.write("watch_dir/processed/data.csv", b"already here");
    ws.write(
        "watch_dir/processed/data-2.csv.report.json",
        b"a user's file",
    );
    for round in 0..3 {
        ws.write("data.csv", format!("a\n{round}\n").as_bytes());
        let out = ws.run(&["--input", "data.csv"]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    }
    assert_eq!(
        ws.files_in("watch_dir/processed"),
        vec![
            "data-2.csv.report.json",
            "data-3.csv",
            "data-3.csv.report.json",
            "data-4.csv",
            "data-4.csv.report.json",
            "data-5.csv",
            "data-5.csv.report.json",
            "data.csv",
        ]
    );
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/data.csv")).expect("read"),
        b"already here"
    );
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/data-2.csv.report.json")).expect("read"),
        b"a user's file"
    );
    let report = ws.read_json("watch_dir/processed/data-4.csv.report.json");
    assert_eq!(report["file"], "data-4.csv");
    assert_eq!(report["original_name"], "data.csv");
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/data-4.csv")).expect("read"),
        b"a\n1\n"
    );
}

#[test]
fn a_file_on_another_filesystem_is_copied_synced_and_removed() {
    let shm = std::path::Path::new("/dev/shm");
    let ws = Workspace::new();
    let same_device = std::fs::metadata(shm)
        .map(|m| m.dev() == std::fs::metadata(ws.dir.path()).map_or(0, |w| w.dev()));
    if !matches!(same_device, Ok(false)) {
        panic!("this test needs /dev/shm on a filesystem other than the temp folder");
    }
    let outside = tempfile::Builder::new()
        .prefix("fp-test-")
        .suffix(".txt")
        .tempfile_in(shm)
        .expect("temp file in /dev/shm");
    std::fs::write(outside.path(), b"hello from tmpfs\n").expect("write");
    let input = outside.path().to_path_buf();
    let name = input
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let out = ws.run(&["--input", input.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(!input.exists(), "the source was removed after the copy");
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed").join(&name)).expect("read"),
        b"hello from tmpfs\n"
    );
    let leftovers = ws.files_in("watch_dir/underprocess");
    assert!(leftovers.is_empty(), "stray files: {leftovers:?}");
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("a-folder")).expect("mkdir");
    ws.write("real.txt", b"x");
    std::os::unix::fs::symlink(ws.path("real.txt"), ws.path("link.txt")).expect("symlink");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--input", "missing.csv"],
            "error: no such file: missing.csv",
        ),
        (
            &["--input", "a-folder"],
            "error: not a regular file: a-folder",
        ),
        (
            &["--input", "link.txt"],
            "error: not a regular file: link.txt",
        ),
        (
            &["--no-such-flag"],
            "error: unexpected argument '--no-such-flag'",
        ),
        (
            &["--input", "real.txt", "--top", "0"],
            "error: --top must be at least 1",
        ),
        (
            &["--input", "real.txt", "--workers", "0"],
            "error: invalid value '0'",
        ),
        (
            &["--input", "real.txt", "--workers", "100000"],
            "error: --workers 100000 is more than 1024",
        ),
        (
            &["--watch", "--workers", "100000"],
            "error: --workers 100000 is more than 1024",
        ),
        (&["--json"], "error: --json only applies to --input FILE"),
        (
            &["--watch", "--input", "real.txt"],
            "error: the argument '--watch' cannot be used with",
        ),
    ];
    for &(args, want) in cases {
        let out = ws.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with(want), "{args:?}: {err:?}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    assert!(
        ws.path("real.txt").exists(),
        "nothing moved on a usage error"
    );
    assert!(
        !ws.path("watch_dir").exists(),
        "no folders made on a usage error"
    );
}

#[test]
fn every_flag_reads_its_environment_variable() {
    let ws = Workspace::new();
    ws.write("in.csv", b"name,member_id\na,m1\nb,m2\nc,m1\n");
    let out = ws.run_with_env(
        &[],
        &[
            ("FP_INPUT", "in.csv"),
            ("FP_DIR", "elsewhere"),
            ("FP_JSON", "true"),
            ("FP_TOP", "1"),
            ("FP_USER_COLUMN", "name"),
            ("FP_WORKERS", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["csv"]["user_column"], "name");
    assert_eq!(report["csv"]["top_users"].as_array().map(Vec::len), Some(1));
    assert!(ws.path("elsewhere/processed/in.csv").exists());
}

#[test]
fn help_documents_the_flags() {
    let ws = Workspace::new();
    let out = ws.run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for flag in [
        "--input",
        "--json",
        "--dir",
        "--workers",
        "--user-column",
        "--top",
        "FP_INPUT",
        "FP_DIR",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[test]
fn concurrent_runs_racing_for_one_name_never_overwrite() {
    let ws = Workspace::new();
    let runs = 8;
    let children: Vec<_> = (0..runs)
        .map(|i| {
            let input = ws.write(
                &format!("src{i}/same.txt"),
                format!("copy {i}\n").as_bytes(),
            );
            std::process::Command::new(env!("CARGO_BIN_EXE_file-processor"))
                .current_dir(ws.dir.path())
                .args(["--input", input.to_str().expect("utf-8 path")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let files = ws.files_in("watch_dir/processed");
    let data: Vec<&String> = files.iter().filter(|f| !f.ends_with(".json")).collect();
    let reports: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".report.json"))
        .collect();
    assert_eq!(data.len(), runs, "{files:?}");
    assert_eq!(reports.len(), runs, "{files:?}");
    let mut contents: Vec<String> = data
        .iter()
        .map(|f| std::fs::read_to_string(ws.path("watch_dir/processed").join(f)).expect("read"))
        .collect();
    contents.sort();
    let expected: Vec<String> = (0..runs).map(|i| format!("copy {i}\n")).collect();
    assert_eq!(contents, expected, "every copy kept, none overwritten");
    for name in data {
        let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
        assert_eq!(report["file"], name.as_str());
        assert_eq!(report["original_name"], "same.txt");
    }
}

#[test]
fn odd_file_names_are_handled() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let ws = Workspace::new();
    let names: [&[u8]; 3] = [b"caf\xe9 \xff.log", b"two words.csv", b"new\nline.txt"];
    for name in names {
        let path = ws.dir.path().join(OsStr::from_bytes(name));
        std::fs::write(&path, b"a,b\n1,2\n").expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_file-processor"))
            .current_dir(ws.dir.path())
            .arg("--input")
            .arg(OsStr::from_bytes(name))
            .arg("--json")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{:?}: {}", name, stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(
            report["original_name"].as_str(),
            Some(String::from_utf8_lossy(name).as_ref())
        );
        let moved = ws.path("watch_dir/processed").join(OsStr::from_bytes(name));
        assert!(moved.exists(), "{name:?} kept its exact bytes as a name");
        let mut report_name = name.to_vec();
        report_name.extend_from_slice(b".report.json");
        assert!(
            ws.path("watch_dir/processed")
                .join(OsStr::from_bytes(&report_name))
                .exists()
        );
    }
}

#[test]
fn a_large_file_shows_a_progress_bar_on_a_terminal_only() {
    let ws = Workspace::new();
    let line = b"2026-01-01 INFO a line of a large log\n";
    let big = line.repeat((64 << 20) / line.len() + 1);
    ws.write("big.log", &big);
    // `script` gives the binary a pseudo-terminal, as a person at a shell would.
    let command = format!(
        "{} --input big.log --segment-bytes 4194304",
        env!("CARGO_BIN_EXE_file-processor")
    );
    let out = std::process::Command::new("script")
        .current_dir(ws.dir.path())
        .args(["-qec", &command, "/dev/null"])
        // As in CI: no standard input.
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs the binary on a terminal");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("/16 chunks"),
        "a bar counts the chunks: {screen:?}"
    );
    assert!(!screen.contains("0/0 chunks"), "no empty bar first");

    // Without a terminal (as here) there is no bar at all.
    ws.write("big2.log", &big);
    let out = ws.run(&["--input", "big2.log", "--segment-bytes", "4194304"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("chunks"));
}

#[test]
fn the_hash_is_the_one_asked_for_under_its_own_name() {
    let ws = Workspace::new();
    // 9 MiB and a bit: several of the hasher's reads, the last one short.
    let body: Vec<u8> = (0..9 * (1 << 20) + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let input = ws.write("big.bin", &body);
    let expected = common::b3sum(&input);
    let out = ws.run(&["--input", "big.bin", "--hash", "blake3", "--json"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = ws.read_json("watch_dir/processed/big.bin.report.json");
    assert_eq!(report["blake3"], expected.as_str(), "{report}");
    assert!(report.get("sha256").is_none(), "{report}");

    // A text file's BLAKE3 comes from the analysis's own reads, segment by segment: cuts
    // inside BLAKE3's 1 KiB chunks, segments smaller than a chunk, one segment for all. The
    // hash must be b3sum's and the counts the same at every cut.
    let mut log = Vec::new();
    for i in 0..120_000u32 {
        let level = ["INFO", "WARN", "ERROR"][(i % 3) as usize];
        let pad = "x".repeat((i.wrapping_mul(2_654_435_761) >> 26) as usize);
        log.extend_from_slice(format!("2026-11-30 {level} größe {i} {pad}\n").as_bytes());
    }
    let mut counts = None;
    for segment_bytes in ["700", "65537", "1000003", "8388608"] {
        let name = format!("cut-{segment_bytes}.log");
        let input = ws.write(&name, &log);
        let expected = common::b3sum(&input);
        let out = ws.run(&[
            "--input",
            &name,
            "--hash",
            "blake3",
            "--segment-bytes",
            segment_bytes,
        ]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let report = ws.read_json(&format!("watch_dir/processed/{name}.report.json"));
        assert_eq!(
            report["blake3"],
            expected.as_str(),
            "{segment_bytes}: {report}"
        );
        assert_eq!(report["text"]["lines"], 120_000, "{report}");
        let text = report["text"].clone();
        assert_eq!(counts.get_or_insert(text.clone()), &text, "{segment_bytes}");
    }

    ws.write("plain.log", b"INFO one\n");
    let out = ws.run(&["--input", "plain.log", "--hash", "none"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = ws.read_json("watch_dir/processed/plain.log.report.json");
    assert!(report.get("sha256").is_none() && report.get("blake3").is_none());
    assert_eq!(report["text"]["lines"], 1);
    assert!(!stdout(&out).contains("sha256"), "{}", stdout(&out));

    // The environment sets it as well, and a file that fails still has its hash.
    ws.write("broken.json", b"{\"a\": ");
    let out = ws.run_with_env(&["--input", "broken.json"], &[("FP_HASH", "blake3")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let report = ws.read_json("watch_dir/failed/broken.json.error.json");
    assert_eq!(report["status"], "failed");
    assert!(
        report.get("blake3").is_some() && report.get("sha256").is_none(),
        "{report}"
    );

    let out = ws.run(&["--input", "plain.log", "--hash", "md5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

/// `--input` given several times: every file analysed, each with its report and its summary
/// in the order given, and the exit code the worst of them.
#[test]
fn several_inputs_are_each_analysed_and_the_worst_outcome_is_the_exit_code() {
    let ws = Workspace::new();
    let csv = b"user_id,n\nu1,1\nu2,2\nu1,3\n";
    let log = b"2026-01-01 INFO up\n2026-01-01 ERROR down\n";
    ws.write("a.csv", csv);
    ws.write("b.log", log);
    let out = ws.run(&["--input", "a.csv", "--input", "b.log"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let printed = stdout(&out);
    let first = printed.find("completed: a.csv").expect("a.csv's summary");
    let second = printed.find("completed: b.log").expect("b.log's summary");
    assert!(first < second, "in the order given:\n{printed}");
    assert_eq!(
        ws.files_in("watch_dir/processed"),
        vec!["a.csv", "a.csv.report.json", "b.log", "b.log.report.json"]
    );
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/a.csv")).expect("a"),
        csv
    );
    assert_eq!(
        std::fs::read(ws.path("watch_dir/processed/b.log")).expect("b"),
        log
    );

    // With --json: one array of the written reports, in the order given; a failed file makes
    // the exit code 1 and the other still completes.
    ws.write("c.log", log);
    ws.write("d.json", b"{\"a\": [1,, 2]}");
    ws.write("e.csv", csv);
    let out = ws.run(&[
        "--input", "c.log", "--input", "d.json", "--input", "e.csv", "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let reports: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("a JSON array");
    let names: Vec<&str> = reports
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["original_name"].as_str())
        .collect();
    assert_eq!(names, ["c.log", "d.json", "e.csv"]);
    assert_eq!(
        reports[0],
        ws.read_json("watch_dir/processed/c.log.report.json")
    );
    assert_eq!(
        reports[1],
        ws.read_json("watch_dir/failed/d.json.error.json")
    );
    assert_eq!(reports[1]["error"]["kind"], "invalid_json");
    assert_eq!(reports[2]["csv"]["rows"], 3);
}

/// One unusable argument among several: exit 2 with one `error:` line, before anything moves.
#[test]
fn one_unusable_input_among_several_moves_nothing() {
    let ws = Workspace::new();
    ws.write("ok.log", b"INFO fine\n");
    for args in [
        vec!["--input", "ok.log", "--input", "missing.log"],
        vec!["--input", "ok.log", "--input", "./ok.log"],
    ] {
        let out = ws.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(ws.path("ok.log").exists(), "{args:?}: ok.log was moved");
        assert!(!ws.path("watch_dir/processed").join("ok.log").exists());
    }
}
