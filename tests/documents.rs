//! Documents (SPEC §4.3) on the real binary: `.docx` written by python-docx and `.odt` by odfpy
//! from seeded paragraphs (`tests/docs.py`), and an `.rtf` written here by hand with every
//! construct the extractor handles; each `document.text` is compared with the reference's text
//! counts of the text that was written (`tests/reference.py`), never with this project's output.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Workspace, input_report, python_script, python_with, reference_json};
use serde_json::Value;

fn docs_py(python: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&python_script(python, "docs.py", args)).expect("expected JSON")
}

#[test]
fn docx_and_odt_text_matches_the_paragraphs_written() {
    let python = python_with(&["python-docx", "odfpy"]);
    let ws = Workspace::new();
    for (format, seed) in [
        ("docx", 1),
        ("docx", 2),
        ("docx", 3),
        ("odt", 4),
        ("odt", 5),
        ("odt", 6),
    ] {
        let name = format!("doc{seed}.{format}");
        let path = ws.path(&name);
        let want = docs_py(
            &python,
            &[format, &seed.to_string(), path.to_str().expect("path")],
        );
        let (code, report) = input_report(&ws, &name, &[]);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["kind"], "document");
        let document = &report["document"];
        assert_eq!(document["format"], format);
        assert_eq!(document["pages"], Value::Null);
        assert_eq!(document["encrypted"], false);
        assert_eq!(document["text"], want, "{format} seed {seed}");
    }
}

#[test]
fn rtf_text_is_the_body_without_destinations() {
    let ws = Workspace::new();
    let rtf = concat!(
        r"{\rtf1\ansi\ansicpg1252\deff0",
        r"{\fonttbl{\f0\froman Times New Roman;}{\f1 Arial;}}",
        r"{\colortbl;\red255\green0\blue0;}",
        r"{\stylesheet{\s0 Normal;}}",
        r"{\info{\title Hidden title}{\author Nobody}}",
        r"{\*\generator Some Writer 1.0;}",
        "\n",
        r"\f0 ERROR Caf\'e9 and na\'efve\par ",
        r"Euro \u8364? sign, \uc2\u8364xx twice\par ",
        r"A\tab B\line C {\b bold {\i nested}} \{ \} \\ end\par ",
        r#"{\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt link text}}\par "#,
        r"\par ",
        r"last line\emdash done}",
    );
    ws.write("letter.rtf", rtf.as_bytes());
    let expected = "ERROR Café and naïve\nEuro € sign, € twice\nA\tB\nC bold nested { } \\ end\nlink text\n\nlast line—done";
    let plain = ws.write("expected.txt", expected.as_bytes());
    let want = reference_json("text", &plain, &[]);
    let (code, report) = input_report(&ws, "letter.rtf", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["document"]["format"], "rtf");
    assert_eq!(report["document"]["text"], want, "{report}");
}

#[test]
fn broken_documents_fail_as_invalid_document() {
    let python = python_with(&["python-docx", "odfpy"]);
    let ws = Workspace::new();
    let whole = ws.path("whole.docx");
    docs_py(&python, &["docx", "7", whole.to_str().expect("path")]);
    let bytes = std::fs::read(&whole).expect("read");
    ws.write("cut.docx", &bytes[..bytes.len() / 2]);
    // A zip without the document part.
    let status = Command::new(&python)
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('a.txt', 'hello')",
        ])
        .arg(ws.path("empty.odt"))
        .status()
        .expect("python");
    assert!(status.success());
    ws.write(
        "deep.rtf",
        format!("{{\\rtf1 {}", "{".repeat(20_000)).as_bytes(),
    );
    ws.write("fake.rtf", b"just text, not rtf\n");
    for name in ["cut.docx", "empty.odt", "deep.rtf", "fake.rtf"] {
        let (code, report) = input_report(&ws, name, &[]);
        assert_eq!(code, Some(1), "{name}: {report}");
        assert_eq!(
            report["error"]["kind"], "invalid_document",
            "{name}: {report}"
        );
    }
}

fn pdfs_py(python: &Path, args: &[&str]) -> String {
    python_script(python, "pdfs.py", args)
}

/// Words of `pdftotext FILE -` (poppler), counted as `wc -w` does.
fn pdftotext_words(path: &Path) -> u64 {
    let out = Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is needed");
    assert!(out.status.success(), "pdftotext {}", path.display());
    out.stdout
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .count() as u64
}

#[test]
fn pdf_pages_and_words_match_what_reportlab_drew_and_pdftotext() {
    let python = python_with(&["reportlab"]);
    let ws = Workspace::new();
    for (seed, pages) in [(1u32, 1u32), (2, 5), (3, 12)] {
        let name = format!("text{seed}.pdf");
        let path = ws.path(&name);
        let want: Value = serde_json::from_str(&pdfs_py(
            &python,
            &[
                "text",
                &seed.to_string(),
                &pages.to_string(),
                path.to_str().expect("path"),
            ],
        ))
        .expect("expected JSON");
        let poppler = pdftotext_words(&path);
        let (code, report) = input_report(&ws, &name, &[]);
        assert_eq!(code, Some(0), "{report}");
        let document = &report["document"];
        assert_eq!(document["format"], "pdf");
        assert_eq!(document["pages"], want["pages"], "{report}");
        assert_eq!(document["encrypted"], false);
        let words = document["text"]["words"].as_u64().expect("words");
        assert_eq!(words, want["words"].as_u64().expect("words"), "{report}");
        let off = words.abs_diff(poppler) as f64 / poppler.max(1) as f64;
        assert!(off <= 0.02, "{words} words against pdftotext's {poppler}");
    }
}

#[test]
fn encrypted_and_hostile_pdfs_end_as_the_spec_says() {
    let python = python_with(&["reportlab"]);
    let ws = Workspace::new();
    // A user password: no text, but the file completes.
    pdfs_py(
        &python,
        &[
            "encrypted",
            "user",
            ws.path("locked.pdf").to_str().expect("path"),
        ],
    );
    let (code, report) = input_report(&ws, "locked.pdf", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["document"]["encrypted"], true, "{report}");
    assert!(report["document"].get("text").is_none(), "{report}");
    // Only an owner password: the empty password opens it, and it is read.
    pdfs_py(
        &python,
        &[
            "encrypted",
            "owner",
            ws.path("open.pdf").to_str().expect("path"),
        ],
    );
    let (code, report) = input_report(&ws, "open.pdf", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["document"]["encrypted"], true, "{report}");
    assert_eq!(report["document"]["text"]["words"], 4, "{report}");

    // (case, outcome: an error kind, or the pages of a completed file)
    let cases: [(&str, Result<u64, &str>); 4] = [
        ("inflate", Err("limit_exceeded")),
        ("cycle", Ok(0)),
        ("xref-loop", Ok(1)),
        ("deep", Ok(0)),
    ];
    for (case, outcome) in cases {
        let name = format!("{case}.pdf");
        pdfs_py(
            &python,
            &["hostile", case, ws.path(&name).to_str().expect("path")],
        );
        let (code, report) = input_report(&ws, &name, &[]);
        match outcome {
            Err(kind) => {
                assert_eq!(code, Some(1), "{case}: {report}");
                assert_eq!(report["error"]["kind"], kind, "{case}: {report}");
            }
            Ok(pages) => {
                assert_eq!(code, Some(0), "{case}: {report}");
                assert_eq!(report["document"]["pages"], pages, "{case}: {report}");
            }
        }
    }

    // Cut in half, and bytes that are not a PDF at all.
    let whole = ws.path("whole.pdf");
    pdfs_py(&python, &["text", "4", "3", whole.to_str().expect("path")]);
    let bytes = std::fs::read(&whole).expect("read");
    ws.write("cut.pdf", &bytes[..bytes.len() / 2]);
    ws.write("noise.pdf", b"\x00\x01 not a pdf at all");
    for name in ["cut.pdf", "noise.pdf"] {
        let (code, report) = input_report(&ws, name, &[]);
        assert_eq!(code, Some(1), "{name}: {report}");
        assert_eq!(
            report["error"]["kind"], "invalid_document",
            "{name}: {report}"
        );
    }
}

mod hostile_bytes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Random bytes that look like a PDF, an `.xls` or an `.ods` reach the parser process:
        /// whatever it does, the file ends completed or failed with a report, the daemon's
        /// process never crashes.
        #[test]
        fn random_bytes_reach_the_parsers_and_end_with_a_report(
            body in prop::collection::vec(prop_oneof![
                any::<u8>(),
                Just(b'['), Just(b'<'), Just(b'('), Just(b'/'), Just(b' '), Just(b'\n'),
            ], 0..2000),
            kind in prop::sample::select(vec!["pdf", "xls", "ods"]),
        ) {
            let ws = Workspace::new();
            let mut bytes = match kind {
                "pdf" => b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages ".to_vec(),
                // An OLE compound file's magic, or a zip's.
                "xls" => b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec(),
                _ => b"PK\x03\x04".to_vec(),
            };
            bytes.extend_from_slice(&body);
            if kind == "pdf" {
                bytes.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
            }
            let name = format!("noise.{kind}");
            ws.write(&name, &bytes);
            let (code, report) = input_report(&ws, &name, &["--job-timeout", "20s"]);
            prop_assert!(matches!(code, Some(0) | Some(1)), "{report}");
            prop_assert!(report["status"] == "completed" || report["status"] == "failed");
        }
    }
}

#[test]
fn pdfs_shipped_by_debian_count_within_two_percent_of_pdftotext() {
    let mut found: Vec<std::path::PathBuf> = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/usr/share/doc")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "pdf") {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        eprintln!("no PDF under /usr/share/doc on this machine: nothing to compare");
        return;
    }
    let ws = Workspace::new();
    for (i, pdf) in found.iter().take(8).enumerate() {
        let name = format!("debian{i}.pdf");
        std::fs::copy(pdf, ws.path(&name)).expect("copy");
        let poppler = pdftotext_words(pdf);
        let (code, report) = input_report(&ws, &name, &[]);
        assert_eq!(code, Some(0), "{}: {report}", pdf.display());
        let words = report["document"]["text"]["words"].as_u64().expect("words");
        let off = words.abs_diff(poppler) as f64 / poppler.max(1) as f64;
        eprintln!("{}: {words} words, pdftotext {poppler}", pdf.display());
        assert!(
            off <= 0.02,
            "{}: {words} words against pdftotext's {poppler}",
            pdf.display()
        );
    }
}
