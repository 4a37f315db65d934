//! Analysis results of the real binary compared with an independent reference
//! (`tests/reference.py`: Python's bytes.split, UTF-8 decoding, csv module and math.fsum) on
//! seeded hostile data, with the file cut into many small segments so that chunk boundaries
//! fall inside lines, UTF-8 characters and quoted CSV fields.

mod common;

use common::{Workspace, reference, reference_json, stderr, stdout};
use serde_json::Value;

fn analyse(ws: &Workspace, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--input", name, "--json", "--segment-bytes", "777"];
    args.extend_from_slice(extra);
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("report JSON")
}

/// Floats equal to the last bit; everything else exactly.
fn assert_same(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (key, wanted) in w {
                let field = format!("{path}.{key}");
                assert_same(g.get(key).unwrap_or(&Value::Null), wanted, &field);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert_same(a, b, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(g), Value::Number(w)) if g.is_f64() || w.is_f64() => {
            assert_eq!(g.as_f64(), w.as_f64(), "{path}");
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

/// Generates seeded hostile data of `kind` (`text` or `csv`) with the reference, then returns
/// the binary's `kind` section and the reference's answer for the same file.
fn report_and_reference(kind: &str, seed: u32, extra: &[&str]) -> (Value, Value) {
    let ws = Workspace::new();
    let name = format!("{kind}{seed}.{}", if kind == "csv" { "csv" } else { "log" });
    let path = ws.path(&name);
    reference(&format!("gen-{kind}"), &path, &[&seed.to_string()]);
    let want = reference_json(kind, &path, &[]);
    let got = analyse(&ws, &name, extra);
    (got[kind].clone(), want)
}

#[test]
fn text_matches_the_reference_on_hostile_input() {
    for seed in 1..=6 {
        let (got, want) = report_and_reference("text", seed, &[]);
        assert_same(&got, &want, &format!("seed {seed}: text"));
    }
}

#[test]
fn csv_matches_pythons_csv_module_on_hostile_input() {
    for seed in 1..=6 {
        // --top above the number of users: the reference ranks every user.
        let (got, want) = report_and_reference("csv", seed, &["--top", "100000"]);
        assert!(want["rows"].as_u64() > Some(100), "the generator made data");
        assert!(
            want["malformed_rows"].as_u64() > Some(0),
            "ragged rows present"
        );
        assert_same(&got, &want, &format!("seed {seed}: csv"));
    }
}

#[test]
fn csv_with_named_user_column_semicolons_and_ties() {
    let ws = Workspace::new();
    let data = "\u{feff}id;who;v\n1;zed;1\n2;amy;2\n3;zed;3\n4;amy;4\n5;bob;5\n";
    let path = ws.write("semi.csv", data.as_bytes());
    let want = reference_json("csv", &path, &["who"]);
    let got = analyse(&ws, "semi.csv", &["--user-column", "who", "--top", "2"]);
    assert_eq!(got["csv"]["delimiter"], ";");
    assert_eq!(got["csv"]["columns"][0]["name"], "id");
    assert_eq!(
        got["csv"]["top_users"],
        serde_json::json!([
            {"user": "amy", "rows": 2}, {"user": "zed", "rows": 2}
        ])
    );
    let mut want_top2 = want.clone();
    if let Some(all) = want_top2["top_users"].as_array_mut() {
        all.truncate(2);
    }
    assert_same(&got["csv"], &want_top2, "semicolons");
}

/// Lines written by other programs (dpkg, apt, nginx, syslog, logfmt, JSON lines, Python's
/// logging, klog, logback, env_logger): each line's level as a person reads it, counted by
/// hand, and the reference's reading of the README rule agree with the report. dpkg's package
/// names (`info:amd64`, `libgpg-error-l10n`) and words in a sentence count nothing.
#[test]
fn log_levels_of_real_formats_are_what_a_person_reads() {
    let ws = Workspace::new();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/levels.log");
    std::fs::copy(fixture, ws.path("levels.log")).expect("copy the fixture");
    let want = reference_json("text", &ws.path("levels.log"), &[]);
    let got = analyse(&ws, "levels.log", &[]);
    let by_hand = serde_json::json!({
        "CRITICAL": 1, "DEBUG": 1, "ERROR": 7, "INFO": 5, "NOTICE": 1, "WARN": 6
    });
    assert_eq!(got["text"]["log_levels"], by_hand);
    assert_eq!(want["log_levels"], by_hand);

    // This machine's own logs, where it has them: the report reads them as the reference does.
    for log in ["/var/log/dpkg.log", "/var/log/apt/history.log"] {
        if std::fs::copy(log, ws.path("machine.log")).is_ok() {
            let want = reference_json("text", &ws.path("machine.log"), &[]);
            let got = analyse(&ws, "machine.log", &[]);
            assert_same(&got["text"], &want, log);
        }
    }
}

/// Columns of ISO 8601 dates and date-times (every accepted form, zones, impossible dates):
/// types, minima and maxima as `tests/reference.py` computes them with Python's `datetime`.
#[test]
fn csv_date_and_time_columns_match_pythons_datetime() {
    let ws = Workspace::new();
    let forms = [
        "2026-11-23",
        "2026-11-23T08:00",
        "2026-11-23 08:00:05",
        "2026-11-23T08:00:05.120",
        "2026-11-23T08:00:05.123456789",
        "2026-11-23T08:00:00Z",
        "2026-11-23T08:00:00+01:00",
        "2026-11-23T00:30:00+0100",
        "2026-12-31T23:00:00-02",
        "1969-12-31T23:59:59",
        "2024-02-29",
    ];
    let mut csv = String::from("when,day,local,not_all,with_numbers\n");
    for i in 0..600 {
        let when = forms[i % forms.len()];
        let day = format!("20{:02}-{:02}-{:02}", i % 90, i % 12 + 1, i % 28 + 1);
        let local = format!("2026-11-{:02} {:02}:{:02}:00", i % 30 + 1, i % 24, i % 60);
        let not_all = if i == 300 { "2026-02-30" } else { when };
        let with_numbers = if i == 7 { "42" } else { day.as_str() };
        csv.push_str(&format!("{when},{day},{local},{not_all},{with_numbers}\n"));
    }
    ws.write("dates.csv", csv.as_bytes());
    let want = reference_json("csv", &ws.path("dates.csv"), &[]);
    let got = analyse(&ws, "dates.csv", &[]);
    assert_same(&got["csv"]["columns"], &want["columns"], "columns");
    let types: Vec<&str> = want["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["datetime", "datetime", "datetime", "string", "string"]
    );
    assert_eq!(got["csv"]["columns"][0]["min"], "1969-12-31T23:59:59Z");
    assert_eq!(got["csv"]["columns"][0]["max"], "2027-01-01T01:00:00Z");
    assert_eq!(got["csv"]["columns"][2]["max"], "2026-11-30T23:59:00");
}

/// A column past the exact limit is estimated, and the estimate is the same wherever the file
/// is cut (SPEC: identical to a sequential analysis), within HyperLogLog's error of the true
/// count (a `HashSet` of the values, here).
#[test]
fn estimated_distinct_counts_do_not_depend_on_the_cut_points() {
    let ws = Workspace::new();
    let mut csv = String::from("id,user\n");
    let mut ids = std::collections::HashSet::new();
    for row in 0..160_000u64 {
        // Scrambled so that each segment holds values from all over the range.
        let id = row.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        ids.insert(id);
        csv.push_str(&format!("{id},u{}\n", row % 97));
    }
    let mut counts = Vec::new();
    for (i, segment) in ["8388608", "65536", "4099"].iter().enumerate() {
        let name = format!("wide{i}.csv");
        ws.write(&name, csv.as_bytes());
        let out = ws.run(&["--input", &name, "--json", "--segment-bytes", segment]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).expect("report JSON");
        let id = &report["csv"]["columns"][0];
        assert_eq!(id["distinct_approx"], true, "{id}");
        assert_eq!(report["csv"]["columns"][1]["distinct"], 97);
        counts.push(id["distinct"].as_u64().expect("a count"));
    }
    assert!(counts.iter().all(|&c| c == counts[0]), "{counts:?}");
    let error = (counts[0] as f64 - ids.len() as f64).abs() / ids.len() as f64;
    assert!(error < 0.05, "{} estimated as {}", ids.len(), counts[0]);
}

/// Columns with tens of thousands of distinct values (kept sorted rather than hashed past
/// 16,384) count exactly, up to the limit itself (100,000), as Python's csv module and a `set`
/// count them, wherever the file is cut: one segment, or hundreds merged.
#[test]
fn large_exact_distinct_counts_match_the_reference_at_every_cut() {
    let ws = Workspace::new();
    let mut csv = String::from("id,user_id,amount\n");
    for row in 0..150_000u64 {
        // 60,000 ids, each drawn two or three times; 100,000 amounts (104,729 is prime to
        // 100,000, so each block of 100,000 rows draws every amount once).
        let id = (row * 7_919) % 60_000;
        let cents = (row * 104_729) % 100_000;
        csv.push_str(&format!(
            "{id},u{},{}.{:02}\n",
            row % 97,
            cents / 100,
            cents % 100
        ));
    }
    let mut reports = Vec::new();
    for (i, segment) in ["8388608", "65536", "4099"].iter().enumerate() {
        let name = format!("many{i}.csv");
        ws.write(&name, csv.as_bytes());
        let want = reference_json("csv", &ws.path(&name), &[]);
        assert_eq!(want["columns"][0]["distinct"], 60_000, "the data");
        assert_eq!(want["columns"][2]["distinct"], 100_000, "the data");
        let out = ws.run(&[
            "--input",
            &name,
            "--json",
            "--top",
            "100000",
            "--segment-bytes",
            segment,
        ]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).expect("report JSON");
        assert_same(&report["csv"], &want, &format!("segments of {segment}"));
        for column in report["csv"]["columns"].as_array().expect("columns") {
            assert!(column.get("distinct_approx").is_none(), "{column}");
        }
        reports.push(report["csv"].clone());
    }
    assert!(reports.iter().all(|r| r == &reports[0]));
}
