//! Compressed single streams (SPEC §4.1) through the real binary: `.gz` (two members, as
//! `logrotate` and `cat a.gz b.gz` make), `.xz`, `.bz2` made by Python's own `gzip`, `lzma`
//! and `bz2`, `.zst` by the `zstd` tool. Each report's section must equal the reference's
//! analysis of the uncompressed file (`tests/reference.py`), and `compression` must give the
//! format and both sizes. Hostile streams fail with the error kind the SPEC names.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Workspace, input_report as analyse, reference, reference_json};

/// `src` compressed as `format` into `dst`, by a tool that is not the code under test.
fn compress(format: &str, src: &Path, dst: &Path) {
    if format == "zstd" {
        let status = Command::new("zstd")
            .args(["-q", "-f", "-o"])
            .arg(dst)
            .arg(src)
            .status()
            .expect("the zstd tool is needed (apt-get install zstd)");
        assert!(status.success(), "zstd failed");
    } else {
        reference(
            "compress",
            Path::new(format),
            &[src.to_str().expect("path"), dst.to_str().expect("path")],
        );
    }
}

fn suffix(format: &str) -> &'static str {
    match format {
        "gzip" => ".gz",
        "zstd" => ".zst",
        "xz" => ".xz",
        _ => ".bz2",
    }
}

#[test]
fn every_format_gives_the_report_of_the_uncompressed_file() {
    for format in ["gzip", "zstd", "xz", "bzip2"] {
        for (kind, name, seed) in [("text", "app.log", 3), ("csv", "orders.csv", 4)] {
            let ws = Workspace::new();
            let plain = ws.path(&format!("plain-{name}"));
            reference(&format!("gen-{kind}"), &plain, &[&seed.to_string()]);
            let packed_name = format!("{name}{}", suffix(format));
            let packed = ws.path(&packed_name);
            compress(format, &plain, &packed);
            let want = reference_json(kind, &plain, &[]);
            let (code, report) = analyse(&ws, &packed_name, &["--top", "100000"]);
            assert_eq!(code, Some(0), "{format} {kind}: {report}");
            assert_eq!(report["kind"], kind, "{format}");
            let section = &report[kind];
            for (field, wanted) in want.as_object().expect("reference object") {
                assert_eq!(&section[field], wanted, "{format} {kind}: {field}");
            }
            let plain_len = std::fs::metadata(&plain).expect("plain").len();
            let packed_len =
                std::fs::metadata(ws.path(&format!("watch_dir/processed/{packed_name}")))
                    .expect("moved to processed/")
                    .len();
            assert_eq!(report["compression"]["format"], format);
            assert_eq!(report["compression"]["unpacked_bytes"], plain_len);
            assert_eq!(report["compression"]["packed_bytes"], packed_len);
            assert_eq!(report["size_bytes"], packed_len, "the file as stored");
            let detected = if format == "bzip2" { "bzip2" } else { format };
            assert_eq!(report["detected"], detected);
        }
    }
}

#[test]
fn a_compressed_json_stream_and_an_unnamed_one() {
    let ws = Workspace::new();
    let plain = ws.write("plain.ndjson", b"{\"a\":1}\n{\"b\":2}\n[3]\n");
    compress("gzip", &plain, &ws.path("events.ndjson.gz"));
    let (code, report) = analyse(&ws, "events.ndjson.gz", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["kind"], "json");
    assert_eq!(report["json"]["records"], 3);
    assert_eq!(report["json"]["format"], "lines");

    // No kind in the name under the suffix: text when the bytes are text.
    let plain = ws.write("plain-notes", b"just some words\n");
    compress("xz", &plain, &ws.path("notes.xz"));
    let (code, report) = analyse(&ws, "notes.xz", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["kind"], "text");
    assert_eq!(report["text"]["words"], 3);
}

#[test]
fn a_truncated_stream_fails_as_an_invalid_archive() {
    let ws = Workspace::new();
    let plain = ws.path("plain.log");
    reference("gen-text", &plain, &["5"]);
    compress("gzip", &plain, &ws.path("whole.log.gz"));
    let whole = std::fs::read(ws.path("whole.log.gz")).expect("read");
    ws.write("cut.log.gz", &whole[..whole.len() / 3]);
    let (code, report) = analyse(&ws, "cut.log.gz", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["error"]["kind"], "invalid_archive", "{report}");
    assert!(ws.path("watch_dir/failed/cut.log.gz").exists());

    ws.write("not-really.csv.gz", b"id,name\n1,a\n");
    let (code, report) = analyse(&ws, "not-really.csv.gz", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "invalid_archive");
    assert_eq!(report["detected"], "text");
}

#[test]
fn a_ratio_bomb_and_the_unpacked_limit_fail_with_limit_exceeded() {
    let ws = Workspace::new();
    // 64 MiB of zeros: gzip packs it about 1,030:1.
    let zeros = ws.write("zeros.bin", &vec![0u8; 64 << 20]);
    compress("gzip", &zeros, &ws.path("zeros.log.gz"));
    let started = std::time::Instant::now();
    let (code, report) = analyse(&ws, "zeros.log.gz", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded", "{report}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("1000:1"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    let plain = ws.path("plain.log");
    reference("gen-text", &plain, &["6"]);
    compress("bzip2", &plain, &ws.path("big.log.bz2"));
    let (code, report) = analyse(&ws, "big.log.bz2", &["--max-unpacked-bytes", "1000"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "limit_exceeded");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--max-unpacked-bytes"), "{message}");
}
