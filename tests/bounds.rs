//! Memory and report size bounded by bytes, not by counts (issue 10, item 11): wide files,
//! long values and more distinct users than the tables may hold give a report of at most
//! 1 MiB that says what it cut or estimated, and what it lists is still right (checked against
//! Python's csv module). Peak memory itself is measured by `make bench` (release build).

mod common;

use common::{Workspace, reference_json, stdout};
use serde_json::Value;

const MAX_REPORT: usize = 1 << 20;

fn run_json(ws: &Workspace, name: &str, data: &[u8]) -> (Value, std::path::PathBuf) {
    let path = ws.write(name, data);
    let reference_copy = ws.write(&format!("reference-{name}"), data);
    let output = ws.run(&["--dir", "watch_dir", "--input", name, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let text = stdout(&output);
    assert!(
        text.len() <= MAX_REPORT,
        "printed report of {} bytes",
        text.len()
    );
    let on_disk = std::fs::metadata(ws.path(&format!("watch_dir/processed/{name}.report.json")))
        .expect("report")
        .len();
    assert!(on_disk as usize <= MAX_REPORT, "report of {on_disk} bytes");
    assert!(!path.exists());
    (serde_json::from_str(&text).expect("json"), reference_copy)
}

#[test]
fn a_wide_file_lists_the_columns_that_fit_and_says_so() {
    let ws = Workspace::new();
    let columns = 4_000;
    let mut data = (0..columns)
        .map(|i| format!("col{i:04}{}", "n".repeat(150)))
        .collect::<Vec<_>>()
        .join(",");
    data.push('\n');
    for row in 0..30 {
        let line: Vec<String> = (0..columns).map(|i| format!("v{}-{i}", row % 7)).collect();
        data.push_str(&line.join(","));
        data.push('\n');
    }
    let (report, copy) = run_json(&ws, "wide.csv", data.as_bytes());
    let csv = &report["csv"];
    assert_eq!(csv["rows"], 30);
    assert_eq!(
        csv["columns_truncated"],
        true,
        "{}",
        csv["columns"].as_array().map_or(0, Vec::len)
    );
    assert_eq!(
        csv["distinct_exact_limit"], 250,
        "1,000,000 entries / 4,000 columns"
    );
    let listed = csv["columns"].as_array().expect("columns");
    assert!(
        listed.len() > 100 && listed.len() < columns,
        "{}",
        listed.len()
    );
    let expected = reference_json("csv", &copy, &[]);
    for (got, want) in listed
        .iter()
        .zip(expected["columns"].as_array().expect("reference"))
    {
        for field in ["name", "type", "non_empty", "distinct", "min", "max"] {
            assert_eq!(got[field], want[field], "{field} of {}", want["name"]);
        }
    }
}

#[test]
fn long_values_are_cut_in_the_report_but_counted_whole() {
    let ws = Workspace::new();
    let shared = "p".repeat(300);
    let mut data = String::from("user_id,note\n");
    // 40 users whose ids share their first 300 bytes; user k has k + 1 rows.
    for k in 0..40 {
        for _ in 0..=k {
            data.push_str(&format!(
                "{shared}{k:03}{},{}\n",
                "t".repeat(700),
                "z".repeat(k)
            ));
        }
    }
    let (report, copy) = run_json(&ws, "long.csv", data.as_bytes());
    let csv = &report["csv"];
    let expected = reference_json("csv", &copy, &[]);
    assert_eq!(csv["distinct_users"], 40);
    assert_eq!(csv["distinct_users"], expected["distinct_users"]);
    assert!(csv.get("users_approx").is_none());
    let users = csv["columns"][0].clone();
    assert_eq!(users["distinct"], 40);
    assert_eq!(users.get("distinct_approx"), None);
    // Shown cut, with the marker; the counts are the reference's.
    let top = csv["top_users"].as_array().expect("top users");
    let want: Vec<u64> = expected["top_users"]
        .as_array()
        .expect("reference")
        .iter()
        .take(top.len())
        .map(|u| u["rows"].as_u64().expect("rows"))
        .collect();
    let got: Vec<u64> = top
        .iter()
        .map(|u| u["rows"].as_u64().expect("rows"))
        .collect();
    assert_eq!(got, want);
    for user in top {
        let shown = user["user"].as_str().expect("user");
        assert!(
            shown.ends_with('…') && shown.len() <= 256 + 3,
            "{}",
            shown.len()
        );
        assert!(shown.starts_with(&shared[..200]));
    }
    for extreme in ["min", "max"] {
        let shown = users[extreme].as_str().expect("string");
        assert!(shown.ends_with('…') && shown.len() <= 256 + 3, "{extreme}");
    }
    // The note column: short values, exact min and max.
    assert_eq!(csv["columns"][1]["max"], expected["columns"][1]["max"]);
}

#[test]
fn more_users_than_the_budget_become_one_estimate_for_users_and_column() {
    let ws = Workspace::new();
    let users = 300_000;
    let pad = "u".repeat(290);
    let mut data = String::with_capacity(users * 310);
    data.push_str("user_id,n\n");
    for i in 0..users {
        data.push_str(&format!("{pad}{i:07},{i}\n"));
    }
    let (report, _) = run_json(&ws, "users.csv", data.as_bytes());
    let csv = &report["csv"];
    assert_eq!(csv["rows"], users);
    assert_eq!(csv["memory_limited"], true);
    assert_eq!(csv["users_approx"], true);
    let column = &csv["columns"][0];
    assert_eq!(column["distinct_approx"], true);
    assert_eq!(
        csv["distinct_users"], column["distinct"],
        "one estimate for both"
    );
    let estimate = column["distinct"].as_f64().expect("distinct");
    let error = (estimate - users as f64).abs() / users as f64;
    assert!(error < 0.05, "estimate {estimate} is {error:.3} off");
}

#[test]
fn long_json_keys_are_cut_and_the_report_stays_small() {
    let ws = Workspace::new();
    let keys: Vec<String> = (0..5)
        .map(|i| format!("\"{}{i}\": {i}", "k".repeat(1 << 20)))
        .collect();
    let data = format!("{{{}}}", keys.join(","));
    let (report, _) = run_json(&ws, "keys.json", data.as_bytes());
    let keys = report["json"]["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 5, "told apart by the whole key");
    for key in keys {
        let key = key.as_str().expect("key");
        assert!(key.ends_with('…') && key.len() <= 256 + 3);
    }
}

#[test]
fn json_nested_past_the_limit_fails_and_costs_nothing() {
    let ws = Workspace::new();
    let deep = 100_000;
    let data = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
    ws.write("deep.json", data.as_bytes());
    let output = ws.run(&["--dir", "watch_dir", "--input", "deep.json", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).expect("json");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["error"]["kind"], "invalid_json");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("recursion limit")),
        "{report}"
    );
    // 127 levels are fine.
    let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    ws.write("ok.json", ok.as_bytes());
    let output = ws.run(&["--dir", "watch_dir", "--input", "ok.json", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
}
