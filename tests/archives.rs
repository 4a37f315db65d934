//! Tar archives (SPEC §4.1) through the real binary, made by Python's `tarfile` (and the
//! `zstd` tool for `.tar.zst`). Each text and CSV member's section must equal the reference's
//! analysis of the member's bytes (`tests/reference.py`), the counts and totals must add up,
//! names are reported as stored, links are never followed, and hostile archives fail with the
//! error kind the SPEC names.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Workspace, input_report as analyse, reference, reference_json};
use serde_json::{Value, json};

/// `members` written as the spec file the reference's archive makers read.
fn spec_for(ws: &Workspace, dst: &Path, members: &Value) -> String {
    let name = dst.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let spec = ws.write(&format!("spec-{name}.json"), members.to_string().as_bytes());
    spec.to_string_lossy().into_owned()
}

/// A tar of `members` at `dst`, by Python's `tarfile` (`mode`: w, w:gz, w:xz, w:bz2).
fn make_tar(ws: &Workspace, mode: &str, dst: &Path, members: &Value) {
    let spec = spec_for(ws, dst, members);
    reference(
        "tar",
        Path::new(mode),
        &[dst.to_str().expect("path"), &spec],
    );
}

/// A hostile log (`seed`) and a hostile CSV (`seed + 1`) made by the reference.
fn seeded_log_and_csv(ws: &Workspace, seed: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let log = ws.path("app.log");
    reference("gen-text", &log, &[&seed.to_string()]);
    let csv = ws.path("orders.csv");
    reference("gen-csv", &csv, &[&(seed + 1).to_string()]);
    (log, csv)
}

fn member<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["archive"]["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name:?} in {report}"))
}

#[test]
fn every_tar_format_reports_its_members_as_the_reference_reads_them() {
    for (mode, suffix) in [
        ("w", ".tar"),
        ("w:gz", ".tar.gz"),
        ("w:xz", ".tar.xz"),
        ("w:bz2", ".tar.bz2"),
        ("zst", ".tar.zst"),
    ] {
        let ws = Workspace::new();
        let (log, csv) = seeded_log_and_csv(&ws, 7);
        let members = json!([
            {"name": "data/", "dir": true},
            {"name": "data/app.log", "file": log},
            {"name": "data/orders.csv", "file": csv},
            {"name": "data/events.ndjson", "data": "{\"a\":1}\n{\"b\":2}\n"},
            {"name": "data/broken.json", "data": "{not json"},
            {"name": "data/latest", "symlink": "/etc/passwd"},
        ]);
        let name = format!("bundle{suffix}");
        if mode == "zst" {
            let plain = ws.path("bundle.tar");
            make_tar(&ws, "w", &plain, &members);
            let status = Command::new("zstd")
                .args(["-q", "-f", "-o"])
                .arg(ws.path(&name))
                .arg(&plain)
                .status()
                .expect("the zstd tool is needed");
            assert!(status.success());
        } else {
            make_tar(&ws, mode, &ws.path(&name), &members);
        }
        let (code, report) = analyse(&ws, &name, &["--top", "100000"]);
        assert_eq!(code, Some(0), "{suffix}: {report}");
        assert_eq!(report["kind"], "archive");
        let archive = &report["archive"];
        assert_eq!(
            archive["format"],
            suffix.trim_start_matches('.'),
            "{suffix}"
        );
        assert_eq!(archive["entries"], 6, "{suffix}");
        assert_eq!(archive["files"], 4, "{suffix}");

        let want_text = reference_json("text", &log, &[]);
        let want_csv = reference_json("csv", &csv, &[]);
        assert_eq!(
            member(&report, "data/app.log")["text"],
            want_text,
            "{suffix}"
        );
        let got_csv = &member(&report, "data/orders.csv")["csv"];
        for (field, wanted) in want_csv.as_object().expect("reference") {
            assert_eq!(&got_csv[field], wanted, "{suffix}: csv {field}");
        }
        assert_eq!(member(&report, "data/events.ndjson")["json"]["records"], 2);
        let broken = member(&report, "data/broken.json");
        assert_eq!(broken["status"], "failed");
        assert_eq!(broken["error"]["kind"], "invalid_json");
        let link = member(&report, "data/latest");
        assert_eq!(
            (&link["kind"], &link["status"]),
            (&json!("symlink"), &json!("skipped"))
        );
        assert_eq!(member(&report, "data/")["kind"], "folder");

        let sizes = [&log, &csv]
            .iter()
            .map(|p| std::fs::metadata(p).expect("size").len())
            .sum::<u64>()
            + "{\"a\":1}\n{\"b\":2}\n".len() as u64
            + "{not json".len() as u64;
        assert_eq!(archive["unpacked_bytes"], sizes, "{suffix}");
        assert_eq!(archive["totals"]["lines"], want_text["lines"]);
        assert_eq!(archive["totals"]["words"], want_text["words"]);
        assert_eq!(archive["totals"]["rows"], want_csv["rows"]);
        assert_eq!(
            archive["kinds"],
            json!({"csv": 1, "json": 2, "text": 1}),
            "{suffix}"
        );
    }
}

#[test]
fn hostile_names_are_reported_as_stored_and_nothing_is_written_outside() {
    let ws = Workspace::new();
    let members = json!([
        {"name": "../../etc/passwd", "data": "root:x:0:0\n"},
        {"name": "/abs/path.log", "data": "one line\n"},
        {"name": "new\nline.txt", "data": "x\n"},
    ]);
    make_tar(&ws, "w:gz", &ws.path("names.tgz"), &members);
    let (code, report) = analyse(&ws, "names.tgz", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(member(&report, "../../etc/passwd")["text"]["lines"], 1);
    assert_eq!(member(&report, "/abs/path.log")["text"]["words"], 2);
    assert_eq!(member(&report, "new\nline.txt")["status"], "completed");
    // Nothing was extracted anywhere.
    let mut found = Vec::new();
    for entry in walk(&ws.path("")) {
        found.push(entry);
    }
    assert!(
        !found
            .iter()
            .any(|p| p.ends_with("passwd") || p.ends_with("path.log")),
        "{found:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn nesting_past_max_depth_is_listed_and_skipped() {
    let ws = Workspace::new();
    make_tar(
        &ws,
        "w:gz",
        &ws.path("level3.tar.gz"),
        &json!([{"name": "deep.log", "data": "deepest\n"}]),
    );
    make_tar(
        &ws,
        "w",
        &ws.path("level2.tar"),
        &json!([{"name": "level3.tar.gz", "file": ws.path("level3.tar.gz")}]),
    );
    make_tar(
        &ws,
        "w:gz",
        &ws.path("level1.tar.gz"),
        &json!([
            {"name": "level2.tar", "file": ws.path("level2.tar")},
            {"name": "top.log", "data": "a b c\n"},
        ]),
    );
    let (code, report) = analyse(&ws, "level1.tar.gz", &[]);
    assert_eq!(code, Some(0), "{report}");
    let level2 = member(&report, "level2.tar");
    assert_eq!(level2["kind"], "archive");
    assert_eq!(level2["status"], "completed");
    let level3 = &level2["archive"]["members"][0];
    assert_eq!(level3["name"], "level3.tar.gz");
    assert_eq!(level3["status"], "skipped", "{report}");
    assert!(
        level3["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("--max-depth")
    );
    assert_eq!(report["archive"]["totals"]["words"], 3);

    let (code, report) = analyse(&ws, "level2.tar", &["--max-depth", "3"]);
    assert_eq!(code, Some(0), "{report}");
    let level3 = member(&report, "level3.tar.gz");
    assert_eq!(level3["archive"]["members"][0]["text"]["words"], 1);
}

#[test]
fn too_many_members_a_bomb_and_a_truncated_tar_fail_the_file() {
    let ws = Workspace::new();
    let many: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("f{i}.txt"), "data": ""}))
        .collect();
    make_tar(&ws, "w", &ws.path("many.tar"), &Value::Array(many));
    let (code, report) = analyse(&ws, "many.tar", &["--max-entries", "20"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--max-entries")
    );

    // 64 MiB of zeros in a tar.gz: the stream passes 1,000:1 and stops.
    let zeros = ws.write("zeros.bin", &vec![0u8; 64 << 20]);
    make_tar(
        &ws,
        "w:gz",
        &ws.path("bomb.tar.gz"),
        &json!([{"name": "zeros.log", "file": zeros}]),
    );
    let started = std::time::Instant::now();
    let (code, report) = analyse(&ws, "bomb.tar.gz", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded", "{report}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    let log = ws.path("big.log");
    reference("gen-text", &log, &["9"]);
    make_tar(
        &ws,
        "w:gz",
        &ws.path("whole.tar.gz"),
        &json!([{"name": "big.log", "file": log}]),
    );
    let whole = std::fs::read(ws.path("whole.tar.gz")).expect("read");
    ws.write("cut.tar.gz", &whole[..whole.len() / 2]);
    let (code, report) = analyse(&ws, "cut.tar.gz", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "invalid_archive", "{report}");
}

/// A zip of `members` at `dst`, by Python's `zipfile`.
fn make_zip(ws: &Workspace, dst: &Path, members: &Value) {
    let spec = spec_for(ws, dst, members);
    reference("zip", dst, &[&spec]);
}

fn hostile_zip(ws: &Workspace, case: &str) -> String {
    let name = format!("{case}.zip");
    reference(
        "zip-hostile",
        Path::new(case),
        &[ws.path(&name).to_str().expect("path")],
    );
    name
}

#[test]
fn a_zip_reports_its_members_as_the_reference_reads_them() {
    let ws = Workspace::new();
    let (log, csv) = seeded_log_and_csv(&ws, 11);
    let members = json!([
        {"name": "logs/", "dir": true},
        {"name": "logs/app.log", "file": log},
        {"name": "orders.csv", "file": csv, "stored": true},
        {"name": "events.ndjson", "data": "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"},
        {"name": "broken.json", "data": "[1, 2"},
        {"name": "latest", "symlink": "/etc/shadow"},
    ]);
    make_zip(&ws, &ws.path("export.zip"), &members);
    let (code, report) = analyse(&ws, "export.zip", &["--top", "100000"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["kind"], "archive");
    assert_eq!(report["detected"], "zip");
    let archive = &report["archive"];
    assert_eq!(archive["format"], "zip");
    assert_eq!(
        (&archive["entries"], &archive["files"]),
        (&json!(6), &json!(4))
    );
    let want_text = reference_json("text", &log, &[]);
    let want_csv = reference_json("csv", &csv, &[]);
    assert_eq!(member(&report, "logs/app.log")["text"], want_text);
    let got_csv = &member(&report, "orders.csv")["csv"];
    for (field, wanted) in want_csv.as_object().expect("reference") {
        assert_eq!(&got_csv[field], wanted, "csv {field}");
    }
    assert_eq!(member(&report, "events.ndjson")["json"]["records"], 3);
    assert_eq!(
        member(&report, "broken.json")["error"]["kind"],
        "invalid_json"
    );
    assert_eq!(member(&report, "latest")["kind"], "symlink");
    assert_eq!(member(&report, "latest")["status"], "skipped");
    assert_eq!(archive["totals"]["lines"], want_text["lines"]);
    assert_eq!(archive["totals"]["rows"], want_csv["rows"]);
    assert_eq!(archive["kinds"], json!({"csv": 1, "json": 2, "text": 1}));
    // In archive order, whatever order the parallel analysis finished in.
    let names: Vec<&str> = archive["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "logs/",
            "logs/app.log",
            "orders.csv",
            "events.ndjson",
            "broken.json",
            "latest"
        ]
    );
}

#[test]
fn an_encrypted_member_is_counted_not_analysed() {
    let ws = Workspace::new();
    ws.write("secret.txt", b"the plans\n");
    ws.write("open.txt", b"hello there\n");
    let status = Command::new("zip")
        .current_dir(ws.path(""))
        .args(["-q", "-P", "pw", "locked.zip", "secret.txt"])
        .status()
        .expect("the zip tool is needed (apt-get install zip)");
    assert!(status.success());
    let status = Command::new("zip")
        .current_dir(ws.path(""))
        .args(["-q", "locked.zip", "open.txt"])
        .status()
        .expect("zip");
    assert!(status.success());
    let (code, report) = analyse(&ws, "locked.zip", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["archive"]["encrypted"], 1);
    let secret = member(&report, "secret.txt");
    assert_eq!(secret["status"], "skipped");
    assert!(secret.get("text").is_none());
    assert_eq!(member(&report, "open.txt")["text"]["words"], 2);
}

#[test]
fn hostile_zips_fail_fast_with_the_kind_the_spec_names() {
    let ws = Workspace::new();
    let cases: [(&str, &str, &str); 3] = [
        ("overlap", "invalid_archive", "overlap"),
        ("lying", "invalid_archive", "declared"),
        ("many", "limit_exceeded", "--max-entries"),
    ];
    for (case, kind, words) in cases {
        let name = hostile_zip(&ws, case);
        let started = std::time::Instant::now();
        let (code, report) = analyse(&ws, &name, &[]);
        assert_eq!(code, Some(1), "{case}: {report}");
        assert_eq!(report["error"]["kind"], kind, "{case}: {report}");
        let message = report["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{case}: {message}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{case}"
        );
    }

    // Corrupt members: a small one is inflated whole (libdeflate), a large one streamed;
    // either way the file is invalid_archive, naming what is wrong for the small ones.
    let corrupt: [(&str, &[&str]); 4] = [
        ("bad-crc", &["member.log", "CRC-32"]),
        ("bad-data", &["member.log"]),
        ("short", &["member.log", "ends after"]),
        ("big-bad-crc", &[]),
    ];
    for (case, words) in corrupt {
        let name = hostile_zip(&ws, case);
        let (code, report) = analyse(&ws, &name, &[]);
        assert_eq!(code, Some(1), "{case}: {report}");
        assert_eq!(
            report["error"]["kind"], "invalid_archive",
            "{case}: {report}"
        );
        let message = report["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{case}: {message}");
        }
    }

    // A name with a NUL is reported as stored.
    let name = hostile_zip(&ws, "nul-name");
    let (code, report) = analyse(&ws, &name, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["archive"]["members"][0]["name"], "a\u{0}b.txt");

    // One member of 64 MiB of zeros: its declared ratio is over 1,000:1 before a byte is read.
    make_zip(
        &ws,
        &ws.path("ratio.zip"),
        &json!([{"name": "zeros.log", "zeros": 64 << 20}]),
    );
    let (code, report) = analyse(&ws, "ratio.zip", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("zeros.log")
    );

    // A truncated zip has no central directory.
    let whole = std::fs::read(ws.path("watch_dir/processed/export.zip")).ok();
    assert!(whole.is_none(), "fresh workspace");
    let log = ws.path("big.log");
    reference("gen-text", &log, &["13"]);
    make_zip(
        &ws,
        &ws.path("whole.zip"),
        &json!([{"name": "big.log", "file": log}]),
    );
    let bytes = std::fs::read(ws.path("whole.zip")).expect("read");
    ws.write("cut.zip", &bytes[..bytes.len() / 2]);
    let (code, report) = analyse(&ws, "cut.zip", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "invalid_archive");
}

#[test]
fn a_nested_zip_bomb_stops_at_its_first_ratio_or_depth() {
    let ws = Workspace::new();
    // 42.zip in small: each level holds 16 copies of the level below; the bottom is 1 MiB of
    // zeros (about 1,000:1 by deflate).
    make_zip(
        &ws,
        &ws.path("l3.zip"),
        &json!([{"name": "zeros.txt", "zeros": 1 << 20}]),
    );
    let copies = |file: &Path| -> Value {
        Value::Array(
            (0..16)
                .map(|i| json!({"name": format!("c{i}.zip"), "file": file}))
                .collect(),
        )
    };
    make_zip(&ws, &ws.path("l2.zip"), &copies(&ws.path("l3.zip")));
    make_zip(&ws, &ws.path("l1.zip"), &copies(&ws.path("l2.zip")));
    let started = std::time::Instant::now();
    let (code, report) = analyse(&ws, "l1.zip", &[]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Depth 2 opens l2 (16 of them); l3 inside each is past --max-depth and skipped.
    assert_eq!(code, Some(0), "{report}");
    let l2 = member(&report, "c0.zip");
    assert_eq!(l2["status"], "completed");
    assert_eq!(l2["archive"]["members"][0]["status"], "skipped");
    // With a third level allowed, the zeros' ratio stops it.
    let (code, report) = analyse(&ws, "l2.zip", &["--max-depth", "3"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded");
}

#[test]
fn every_layer_counts_against_max_unpacked_bytes() {
    let ws = Workspace::new();
    let (log, _) = seeded_log_and_csv(&ws, 15);
    let len = std::fs::metadata(&log).expect("log").len();
    let limit = (len / 2).to_string();
    // A plain tar: the member's bytes are unpacked bytes too.
    make_tar(
        &ws,
        "w",
        &ws.path("plain.tar"),
        &json!([{"name": "a.log", "file": log}]),
    );
    // A log.gz inside a tar.gz: two layers, one budget.
    compress_with_python(&ws, &log, "inner.log.gz");
    make_tar(
        &ws,
        "w:gz",
        &ws.path("layers.tar.gz"),
        &json!([{"name": "a.log.gz", "file": ws.path("inner.log.gz")}]),
    );
    // A zip: judged on the declared sizes, before a byte is inflated.
    make_zip(
        &ws,
        &ws.path("declared.zip"),
        &json!([{"name": "a.log", "file": log}]),
    );
    for name in ["plain.tar", "layers.tar.gz", "declared.zip"] {
        let (code, report) = analyse(&ws, name, &["--max-unpacked-bytes", &limit]);
        assert_eq!(code, Some(1), "{name}: {report}");
        assert_eq!(
            report["error"]["kind"], "limit_exceeded",
            "{name}: {report}"
        );
        let (code, report) = analyse(&ws, &format!("watch_dir/failed/{name}"), &[]);
        assert_eq!(code, Some(0), "{name} within the default limit: {report}");
        // The member's own bytes: for the .log.gz, what it unpacks to is in its section.
        let member = &report["archive"]["members"][0];
        let unpacked = member["compression"]["unpacked_bytes"]
            .as_u64()
            .unwrap_or(member["size_bytes"].as_u64().unwrap_or(0));
        assert_eq!(unpacked, len, "{name}");
    }
}

fn compress_with_python(ws: &Workspace, src: &Path, dst: &str) {
    reference(
        "compress",
        Path::new("gzip"),
        &[
            src.to_str().expect("path"),
            ws.path(dst).to_str().expect("path"),
        ],
    );
}
