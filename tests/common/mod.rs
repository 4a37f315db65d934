//! Shared helpers for integration tests: run the real binary in a fresh temp folder, and ask
//! the Python reference (`tests/reference.py`) for independent results.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, bytes).expect("write input");
        path
    }

    /// Runs the binary with `args` in this workspace, with a clean `FP_*` environment.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_file-processor"));
        command.current_dir(self.dir.path()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("FP_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        command.output().expect("run file-processor")
    }

    /// Files under `rel`, sorted, as paths relative to it.
    pub fn files_in(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name != ".gitkeep")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn read_json(&self, rel: &str) -> Value {
        let text = std::fs::read_to_string(self.path(rel)).expect("read report");
        serde_json::from_str(&text).expect("report is JSON")
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `tests/reference.py COMMAND PATH ARGS...` and parses its JSON (or returns its text).
pub fn reference(command: &str, path: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(command)
        .arg(path)
        .args(args)
        .output()
        .expect("python3 is needed for the reference computations");
    assert!(
        output.status.success(),
        "reference.py {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub fn reference_json(command: &str, path: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&reference(command, path, args)).expect("reference JSON")
}
