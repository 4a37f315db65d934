//! Spreadsheets (SPEC §4.2) on the real binary: workbooks written by `openpyxl` from seeded
//! data (`tests/sheets.py`), each report field compared with what the generator computed from
//! the values it wrote; a sheet that claims the whole grid costs its cells only; a shared-strings
//! table over the cap, a zip that is not a workbook, and a workbook under a wrong name fail
//! with the SPEC's kinds.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Workspace, input_report, python_script, python_with};
use serde_json::Value;

fn sheets_py(python: &Path, args: &[&str]) -> String {
    python_script(python, "sheets.py", args)
}

/// A Python with the three independent writers: openpyxl (.xlsx), xlwt (.xls), odfpy (.ods).
/// Runs the Python `script` with `path` as its one argument (it writes the workbook there).
fn write_with(python: &Path, script: &str, path: &Path) {
    let status = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .status()
        .expect("python");
    assert!(
        status.success(),
        "the script failed to write {}",
        path.display()
    );
}

fn openpyxl() -> std::path::PathBuf {
    python_with(&["openpyxl", "xlwt", "odfpy"])
}

fn assert_same_column(got: &Value, want: &Value, at: &str) {
    for (field, expected) in want.as_object().expect("column") {
        let actual = &got[field];
        if field == "mean" && expected.is_number() {
            let (e, a) = (
                expected.as_f64().unwrap_or(0.0),
                actual.as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                (e - a).abs() <= 1e-9 * e.abs().max(1.0),
                "{at} mean: {a} against {e}"
            );
        } else {
            assert_eq!(actual, expected, "{at} {field}");
        }
    }
}

#[test]
fn every_sheet_matches_what_openpyxl_xlwt_and_odfpy_wrote() {
    let python = openpyxl();
    let ws = Workspace::new();
    for (format, seed) in (1..=6u32)
        .map(|seed| ("xlsx", seed))
        .chain((7..=9).map(|seed| ("xls", seed)))
        .chain((10..=12).map(|seed| ("ods", seed)))
    {
        let name = format!("book{seed}.{format}");
        let path = ws.path(&name);
        let want: Value = serde_json::from_str(&sheets_py(
            &python,
            &[format, &seed.to_string(), path.to_str().expect("path")],
        ))
        .expect("expected JSON");
        // Even seeds: the sheet cut into many small blocks of rows, parsed in parallel.
        let blocks: &[&str] = match (format, seed % 2) {
            ("xlsx", 0) => &["--segment-bytes", "777"],
            _ => &[],
        };
        let (code, report) = input_report(&ws, &name, blocks);
        assert_eq!(code, Some(0), "{report}");
        assert_eq!(report["kind"], "spreadsheet");
        let section = &report["spreadsheet"];
        assert_eq!(section["format"], format, "{report}");
        let got = section["sheets"].as_array().expect("sheets");
        let want = want.as_array().expect("sheets");
        assert_eq!(got.len(), want.len(), "seed {seed}");
        for (sheet, expected) in got.iter().zip(want) {
            let at = format!("{format} seed {seed} {}", expected["name"]);
            for field in ["name", "rows", "user_column", "distinct_users", "top_users"] {
                assert_eq!(sheet[field], expected[field], "{at} {field}");
            }
            let columns = sheet["columns"].as_array().expect("columns");
            let expected_columns = expected["columns"].as_array().expect("columns");
            assert_eq!(columns.len(), expected_columns.len(), "{at}");
            for (column, expected) in columns.iter().zip(expected_columns) {
                assert_same_column(column, expected, &format!("{at} {}", expected["name"]));
            }
        }
    }
}

#[test]
fn a_sheet_that_claims_the_whole_grid_costs_its_cells_only() {
    let python = openpyxl();
    let ws = Workspace::new();
    let path = ws.path("far.xlsx");
    let script = "import openpyxl, sys\n\
                  wb = openpyxl.Workbook()\n\
                  wb.active['A1'] = 'name'\n\
                  wb.active['A2'] = 'x'\n\
                  wb.active['XFD1048576'] = 'far'\n\
                  wb.save(sys.argv[1])";
    write_with(&python, script, &path);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_file-processor"))
        .args(["--input", "far.xlsx", "--json"])
        .current_dir(ws.dir.path())
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    let sheet = &report["spreadsheet"]["sheets"][0];
    assert_eq!(sheet["rows"], 2, "{report}");
    assert_eq!(sheet["columns"][0]["non_empty"], 1, "{report}");
    // Peak RSS in KiB: a dense grid of 16,384 × 1,048,576 cells would be terabytes.
    let peak: u64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .expect("peak RSS");
    assert!(peak < 256 << 10, "peak RSS {peak} KiB");
}

#[test]
fn oversized_shared_strings_and_broken_workbooks_fail_with_the_spec_kinds() {
    let python = openpyxl();
    let ws = Workspace::new();
    let big = ws.path("strings.xlsx");
    sheets_py(&python, &["big-strings", big.to_str().expect("path")]);
    let (code, report) = input_report(&ws, "strings.xlsx", &[]);
    assert_eq!(code, Some(1), "{report}");
    common::assert_failed_with(&report, "limit_exceeded", "sharedStrings.xml");

    // A zip that is not a workbook.
    let plain = ws.path("plain.xlsx");
    let status = Command::new(&python)
        .args([
            "-c",
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w') as z: z.writestr('a.txt', 'hello')",
        ])
        .arg(&plain)
        .status()
        .expect("python");
    assert!(status.success());
    let (code, report) = input_report(&ws, "plain.xlsx", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "invalid_spreadsheet", "{report}");

    // Half a workbook.
    let whole = ws.path("whole.xlsx");
    sheets_py(&python, &["xlsx", "5", whole.to_str().expect("path")]);
    let bytes = std::fs::read(&whole).expect("read");
    ws.write("half.xlsx", &bytes[..bytes.len() / 2]);
    let (code, report) = input_report(&ws, "half.xlsx", &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "invalid_spreadsheet", "{report}");
}

#[test]
fn a_workbook_built_whole_runs_in_a_child_that_may_fail_alone() {
    let python = openpyxl();
    let ws = Workspace::new();
    // A few hundred bytes that claim 6,103 × 16,384 cells (just under calamine's own cell
    // limit): building them needs gigabytes, more than the parser process may map.
    let grid = ws.path("watch_dir/unprocessed/grid.ods");
    std::fs::create_dir_all(grid.parent().expect("parent")).expect("mkdir");
    let staged = ws.path("grid.ods");
    sheets_py(
        &python,
        &["ods-grid", "6103", staged.to_str().expect("path")],
    );
    let daemon = common::Daemon::start(&ws, &[], &[]);
    std::fs::rename(&staged, &grid).expect("move in");
    let failed = ws.path("watch_dir/failed/grid.ods.error.json");
    assert!(
        common::wait_until(std::time::Duration::from_secs(60), || failed.exists()),
        "{}",
        daemon.log()
    );
    let report = ws.read_json("watch_dir/failed/grid.ods.error.json");
    common::assert_failed_with(&report, "limit_exceeded", "MiB it may use");
    // The daemon lived through it and goes on.
    let book = ws.path("book.ods");
    sheets_py(&python, &["ods", "3", book.to_str().expect("path")]);
    std::fs::rename(&book, ws.path("watch_dir/unprocessed/book.ods")).expect("move in");
    let done = ws.path("watch_dir/processed/book.ods.report.json");
    assert!(
        common::wait_until(std::time::Duration::from_secs(60), || done.exists()),
        "{}",
        daemon.log()
    );
    let (status, health) = daemon.get_json("/health");
    assert_eq!(status, 200, "{health}");

    // A parser past --job-timeout is stopped with its process.
    let slow = ws.path("slow.ods");
    sheets_py(&python, &["ods-grid", "300", slow.to_str().expect("path")]);
    let (code, report) = input_report(&ws, "slow.ods", &["--job-timeout", "50ms"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "timeout", "{report}");
}

#[test]
fn the_job_page_shows_each_sheet_and_a_document_its_text() {
    let python = python_with(&["openpyxl", "xlwt", "odfpy", "python-docx"]);
    let ws = Workspace::new();
    let daemon = common::Daemon::start(&ws, &[], &[]);
    let book = ws.path("book.xlsx");
    sheets_py(&python, &["xlsx", "5", book.to_str().expect("path")]);
    let doc = ws.path("notes.docx");
    python_script(
        &python,
        "docs.py",
        &["docx", "3", doc.to_str().expect("path")],
    );
    for name in ["book.xlsx", "notes.docx"] {
        std::fs::rename(
            ws.path(name),
            ws.path(&format!("watch_dir/unprocessed/{name}")),
        )
        .expect("move in");
    }
    let reports = ["book.xlsx", "notes.docx"].map(|name| {
        let path = ws.path(&format!("watch_dir/processed/{name}.report.json"));
        assert!(
            common::wait_until(std::time::Duration::from_secs(60), || path.exists()),
            "{name}: {}",
            daemon.log()
        );
        ws.read_json(&format!("watch_dir/processed/{name}.report.json"))
    });
    let [book, doc] = reports;
    let sheets = book["spreadsheet"]["sheets"].as_array().expect("sheets");
    let (status, page) = daemon.get(&format!("/jobs/{}", book["job_id"].as_str().expect("id")));
    assert_eq!(status, 200);
    for (index, sheet) in sheets.iter().enumerate() {
        let name = sheet["name"].as_str().expect("name");
        assert!(page.contains(&format!("id=\"sheet{index}\"")), "{page}");
        assert!(
            page.contains(&format!("id=\"sheet{index}-columns\"")),
            "{page}"
        );
        assert!(page.contains(name), "{name}");
        if sheet["top_users"]
            .as_array()
            .is_some_and(|users| !users.is_empty())
        {
            assert!(
                page.contains(&format!("id=\"sheet{index}-top-users\"")),
                "{page}"
            );
        }
    }
    assert!(
        !page.contains("delimiter"),
        "a sheet has no delimiter: {page}"
    );
    let (status, page) = daemon.get(&format!("/jobs/{}", doc["job_id"].as_str().expect("id")));
    assert_eq!(status, 200);
    assert!(page.contains("id=\"document\""), "{page}");
    assert!(page.contains("id=\"text\""), "{page}");
    let words = doc["document"]["text"]["words"].as_u64().expect("words");
    assert!(
        page.contains(&format!("<td>{words}</td>")),
        "{words} words on {page}"
    );
}

/// The parser processes of the daemon with process id `parent`.
fn parser_processes(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4, after the parenthesised command name, is the parent's pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains("--child-analysis")
        })
        .collect()
}

#[test]
fn a_stop_signal_to_the_whole_group_lets_the_parser_finish_its_file() {
    let python = openpyxl();
    let ws = Workspace::new();
    let mut daemon = common::Daemon::start(&ws, &["--shutdown-timeout", "60s"], &[]);
    // About 5 million cells: seconds of parsing in a debug build.
    let staged = ws.path("slow.ods");
    sheets_py(
        &python,
        &["ods-grid", "300", staged.to_str().expect("path")],
    );
    std::fs::rename(&staged, ws.path("watch_dir/unprocessed/slow.ods")).expect("move in");
    let mut parsers = Vec::new();
    assert!(
        common::wait_until(std::time::Duration::from_secs(30), || {
            parsers = parser_processes(daemon.pid());
            !parsers.is_empty()
        }),
        "no parser process: {}",
        daemon.log()
    );
    // As systemd stops a service: SIGTERM to every process of it.
    for pid in parsers.iter().copied().chain([daemon.pid()]) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let status = daemon.wait(std::time::Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", daemon.log());
    let report = ws.read_json("watch_dir/processed/slow.ods.report.json");
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["spreadsheet"]["sheets"][0]["rows"], 299, "{report}");
    assert!(
        parsers
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    );
}

#[test]
fn a_workbook_read_in_process_stops_at_its_deadline() {
    let python = openpyxl();
    let ws = Workspace::new();
    let path = ws.path("rows.xlsx");
    let script = "import openpyxl, sys\n\
                  wb = openpyxl.Workbook(write_only=True)\n\
                  ws = wb.create_sheet('rows')\n\
                  ws.append(['user_id', 'n'])\n\
                  for i in range(20000): ws.append(['u%d' % (i % 97), i])\n\
                  wb.save(sys.argv[1])";
    write_with(&python, script, &path);
    let (code, report) = input_report(&ws, "rows.xlsx", &["--job-timeout", "1ms"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error"]["kind"], "timeout", "{report}");
    // With time enough, the same file completes.
    let (code, report) = input_report(&ws, "watch_dir/failed/rows.xlsx", &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["spreadsheet"]["sheets"][0]["rows"], 20000,
        "{report}"
    );
}

#[test]
fn parsers_still_start_after_the_binary_is_replaced_under_the_daemon() {
    let python = openpyxl();
    let ws = Workspace::new();
    // The daemon runs from a copy; an upgrade then removes that file.
    let copy = ws.path("file-processor-old");
    std::fs::copy(env!("CARGO_BIN_EXE_file-processor"), &copy).expect("copy the binary");
    let daemon = common::Daemon::start_from(&ws, &copy, &[]);
    std::fs::remove_file(&copy).expect("remove the binary");
    // A name that starts with a dash, too: it reaches the parser process as a name.
    let staged = ws.path("-book.ods");
    sheets_py(&python, &["ods", "3", staged.to_str().expect("path")]);
    std::fs::rename(&staged, ws.path("watch_dir/unprocessed/-book.ods")).expect("move in");
    let done = ws.path("watch_dir/processed/-book.ods.report.json");
    assert!(
        common::wait_until(std::time::Duration::from_secs(60), || done.exists()),
        "{:?}\n{}",
        ws.files_in("watch_dir/failed"),
        daemon.log()
    );
    let report = ws.read_json("watch_dir/processed/-book.ods.report.json");
    assert_eq!(report["spreadsheet"]["format"], "ods", "{report}");
}

/// An `.xlsx` written by hand, part by part, with what openpyxl never writes: element
/// prefixes, cells without a reference, rich and phonetic runs, CDATA, a comment hiding a row,
/// formula, error, ISO-date and boolean cells, dates from 1904, relative and absolute part
/// targets. `parts` are stored (not deflated) in a zip at `path`.
fn write_parts(path: &Path, parts: &[(&str, String)]) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in parts {
        zip.start_file(*name, stored).expect("member");
        zip.write_all(body.as_bytes()).expect("write");
    }
    zip.finish().expect("finish");
}

fn hand_written_workbook() -> Vec<(&'static str, String)> {
    let main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let pkg = "http://schemas.openxmlformats.org/package/2006/relationships";
    let inline = |text: &str| format!("<x:is><x:t>{text}</x:t></x:is>");
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<x:worksheet xmlns:x="{main}"><x:sheetData>
<x:row r="2"><x:c r="B2" t="inlineStr">{user}</x:c><x:c t="inlineStr"><x:is><x:r><x:t>a &amp; </x:t></x:r><x:r><x:t>b</x:t></x:r></x:is></x:c><x:c t="s"><x:v>0</x:v></x:c><x:c t="inlineStr">{when}</x:c><x:c t="inlineStr">{flag}</x:c></x:row>
<!-- <x:row r="99"><x:c t="inlineStr"><x:is><x:t>hidden</x:t></x:is></x:c></x:row> -->
<x:row r="3"><x:c r="B3" t="s"><x:v>1</x:v></x:c><x:c r="C3" t="str"><x:f>"tw"&amp;"o"</x:f><x:v>two</x:v></x:c><x:c r="D3"><x:v>1.5</x:v></x:c><x:c r="E3" s="1"><x:v>0.5</x:v></x:c><x:c r="F3" t="b"><x:v>1</x:v></x:c></x:row>
<x:row r="4"><x:c r="B4" t="inlineStr"><x:is><x:t><![CDATA[<x:row r="7"> & co]]></x:t></x:is></x:c><x:c r="C4" t="e"><x:v>#DIV/0!</x:v></x:c><x:c r="D4"><x:v>2.50</x:v></x:c><x:c r="E4" t="d"><x:v>2026-11-30T08:00:00</x:v></x:c><x:c r="F4" t="b"><x:v>0</x:v></x:c></x:row>
<x:row r="5"/>
<x:row r="6"><x:c r="A6"><x:v>7</x:v></x:c><x:c r="B6" t="s"><x:v>1</x:v></x:c><x:c r="D6"><x:v>1E3</x:v></x:c><x:c r="E6" s="1"><x:v>45000</x:v></x:c></x:row>
</x:sheetData><x:rowBreaks count="1"><x:brk id="3"/></x:rowBreaks></x:worksheet>"#,
        user = inline("user_id"),
        when = inline("when"),
        flag = inline("flag"),
    );
    vec![
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#.to_string(),
        ),
        (
            "_rels/.rels",
            format!(
                r#"<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/officeDocument" Target="book/main.xml"/></Relationships>"#
            ),
        ),
        (
            "book/main.xml",
            format!(
                r#"<workbook xmlns="{main}" xmlns:r="{rel}"><workbookPr date1904="1"/><sheets><sheet name="Q&amp;A" sheetId="1" r:id="rId7"/></sheets></workbook>"#
            ),
        ),
        (
            "book/_rels/main.xml.rels",
            format!(
                r#"<Relationships xmlns="{pkg}"><Relationship Id="rId7" Type="{rel}/worksheet" Target="sheets/../sheets/one.xml"/><Relationship Id="rId8" Type="{rel}/sharedStrings" Target="/book/strings.xml"/><Relationship Id="rId9" Type="{rel}/styles" Target="looks.xml"/></Relationships>"#
            ),
        ),
        ("book/sheets/one.xml", sheet),
        (
            "book/strings.xml",
            format!(
                r#"<sst xmlns="{main}"><si><t>amount</t></si><si><r><t>bo</t></r><r><rPr><b/></rPr><t>b</t></r><rPh sb="0" eb="1"><t>ボブ</t></rPh></si></sst>"#
            ),
        ),
        (
            "book/looks.xml",
            format!(
                r#"<styleSheet xmlns="{main}"><numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy\ hh:mm"/></numFmts><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="164"/></cellXfs></styleSheet>"#
            ),
        ),
    ]
}

#[test]
fn constructs_openpyxl_never_writes_are_read_as_written() {
    let ws = Workspace::new();
    let parts = hand_written_workbook();
    // Once whole, once in blocks of a row or two (the comment and CDATA hide row tags).
    for (name, flags) in [
        ("hand.xlsx", &[][..]),
        ("hand-blocks.xlsx", &["--segment-bytes", "64"][..]),
    ] {
        write_parts(&ws.path(name), &parts);
        let (code, report) = input_report(&ws, name, flags);
        assert_eq!(code, Some(0), "{report}");
        let sheet = &report["spreadsheet"]["sheets"][0];
        assert_eq!(sheet["name"], "Q&A", "{report}");
        // Rows 3, 4 and 6: row 5 is empty, row 99 a comment, A6 left of the header.
        assert_eq!(sheet["rows"], 3, "{report}");
        assert_eq!(sheet["user_column"], "user_id", "{report}");
        assert_eq!(sheet["distinct_users"], 2, "{report}");
        assert_eq!(
            sheet["top_users"],
            serde_json::json!([{"user": "bob", "rows": 2}, {"user": "<x:row r=\"7\"> & co", "rows": 1}]),
            "{report}"
        );
        let columns = sheet["columns"].as_array().expect("columns");
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            ["user_id", "a & b", "amount", "when", "flag"],
            "{report}"
        );
        let expect = [
            (
                1,
                "string",
                2,
                2,
                serde_json::json!("#DIV/0!"),
                serde_json::json!("two"),
            ),
            (
                2,
                "float",
                3,
                3,
                serde_json::json!(1.5),
                serde_json::json!(1000.0),
            ),
            // 1904 dates: serial 0.5 is noon on 1904-01-01, 45000 is 2027-03-16 (Python's
            // datetime(1904, 1, 1) + timedelta(days=45000)).
            (
                3,
                "datetime",
                3,
                3,
                serde_json::json!("1904-01-01T12:00:00"),
                serde_json::json!("2027-03-16T00:00:00"),
            ),
            (
                4,
                "bool",
                2,
                2,
                serde_json::json!(false),
                serde_json::json!(true),
            ),
        ];
        for (index, kind, non_empty, distinct, min, max) in expect {
            let column = &columns[index];
            assert_eq!(column["type"], kind, "{column}");
            assert_eq!(column["non_empty"], non_empty, "{column}");
            assert_eq!(column["distinct"], distinct, "{column}");
            assert_eq!(column["min"], min, "{column}");
            assert_eq!(column["max"], max, "{column}");
        }
        let mean = columns[2]["mean"].as_f64().expect("mean");
        assert!((mean - (1.5 + 2.5 + 1000.0) / 3.0).abs() < 1e-9, "{mean}");
    }
}

/// A workbook of the minimal parts, whose one sheet has `rows` inside `<sheetData>`, and whose
/// workbook lists `sheets` sheets, all naming that part.
fn minimal_workbook(rows: &str, sheets: usize, strings: &str) -> Vec<(&'static str, String)> {
    let main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    let rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let pkg = "http://schemas.openxmlformats.org/package/2006/relationships";
    let listed: String = (0..sheets)
        .map(|i| format!(r#"<sheet name="S{i}" sheetId="{}" r:id="rId1"/>"#, i + 1))
        .collect();
    vec![
        (
            "_rels/.rels",
            format!(
                r#"<Relationships xmlns="{pkg}"><Relationship Id="r" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/workbook.xml",
            format!(
                r#"<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>{listed}</sheets></workbook>"#
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                r#"<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/worksheets/sheet1.xml",
            format!(r#"<worksheet xmlns="{main}"><sheetData>{rows}</sheetData></worksheet>"#),
        ),
        ("xl/sharedStrings.xml", strings.to_string()),
    ]
}

#[test]
fn hostile_workbooks_end_with_a_clear_answer() {
    let ws = Workspace::new();
    let header = r#"<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>"#;
    // A billion laughs: only the five named entities are read, the rest stands for nothing.
    let laughs = {
        let mut entities = r#"<!ENTITY lol "lol">"#.to_string();
        for i in 1..10 {
            let inner = if i == 1 {
                "&lol;".to_string()
            } else {
                format!("&lol{};", i - 1)
            };
            entities.push_str(&format!(r#"<!ENTITY lol{i} "{}">"#, inner.repeat(10)));
        }
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE sst [{entities}]><sst><si><t>a&lol9;b</t></si></sst>"#
        )
    };
    let deep = format!(
        r#"<row r="2"><c r="A2" t="inlineStr"><is>{}<t>x</t>{}</is></c></row>"#,
        "<r>".repeat(100_000),
        "</r>".repeat(100_000)
    );
    type Case = (
        &'static str,
        Vec<(&'static str, String)>,
        &'static str,
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            "laughs.xlsx",
            minimal_workbook(
                &format!(r#"{header}<row r="2"><c r="A2" t="s"><v>0</v></c></row>"#),
                1,
                &laughs,
            ),
            "completed",
            "ab",
        ),
        (
            "deep.xlsx",
            minimal_workbook(&format!("{header}{deep}"), 1, "<sst/>"),
            "completed",
            "x",
        ),
        (
            "sheets.xlsx",
            minimal_workbook(header, 5000, "<sst/>"),
            "limit_exceeded",
            "the workbook lists 5000 sheets; at most 4096 are read",
        ),
        (
            "xfe.xlsx",
            minimal_workbook(r#"<row r="1"><c r="XFE1"><v>1</v></c></row>"#, 1, "<sst/>"),
            "invalid_spreadsheet",
            "right of the last column a sheet may have (XFD)",
        ),
    ];
    for (name, parts, outcome, detail) in cases {
        write_parts(&ws.path(name), &parts);
        let started = std::time::Instant::now();
        let (code, report) = input_report(&ws, name, &[]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{name}"
        );
        if outcome == "completed" {
            assert_eq!(code, Some(0), "{report}");
            let column = &report["spreadsheet"]["sheets"][0]["columns"][0];
            assert_eq!(column["min"], detail, "{name}: {report}");
        } else {
            assert_eq!(code, Some(1), "{report}");
            common::assert_failed_with(&report, outcome, detail);
        }
    }
}
