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

/// `--input NAME --json` with `extra` flags: the exit code and the report printed.
pub fn input_report(ws: &Workspace, name: &str, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--input", name, "--json"];
    args.extend_from_slice(extra);
    let out = ws.run(&args);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|err| panic!("no report ({err}); stderr: {}", stderr(&out)));
    (out.status.code(), report)
}

pub fn reference_json(command: &str, path: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&reference(command, path, args)).expect("reference JSON")
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The daemon, started on a free port in a workspace; killed with SIGKILL when dropped.
pub struct Daemon {
    child: std::process::Child,
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `file-processor --dir watch_dir --port 0 ARGS` and waits until it serves.
    pub fn start(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::try_start(ws, args, env).unwrap_or_else(|log| panic!("daemon did not start:\n{log}"))
    }

    /// `Err(log)` when the daemon exits or does not announce itself within 30 s.
    pub fn try_start(
        ws: &Workspace,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        Self::try_start_with(
            ws,
            Path::new(env!("CARGO_BIN_EXE_file-processor")),
            None,
            args,
            env,
        )
    }

    /// Starts the daemon from another copy of the binary (an upgrade test).
    pub fn start_from(ws: &Workspace, binary: &Path, args: &[&str]) -> Daemon {
        Self::try_start_with(ws, binary, None, args, &[])
            .unwrap_or_else(|log| panic!("daemon did not start:\n{log}"))
    }

    /// Starts the daemon with at most `open_files` descriptors (`prlimit --nofile`).
    pub fn start_with_open_files(
        ws: &Workspace,
        open_files: u32,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let binary = Path::new(env!("CARGO_BIN_EXE_file-processor"));
        Self::try_start_with(ws, binary, Some(open_files), args, env)
            .unwrap_or_else(|log| panic!("daemon did not start:\n{log}"))
    }

    fn try_start_with(
        ws: &Workspace,
        binary: &Path,
        open_files: Option<u32>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        use std::io::BufRead;
        let mut command = match open_files {
            None => Command::new(binary),
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(binary);
                command
            }
        };
        command
            .current_dir(ws.dir.path())
            .args(["--dir", "watch_dir", "--port", "0"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (key, _) in std::env::vars() {
            if key.starts_with("FP_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.env("RUST_LOG", "file_processor=debug");
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("start file-processor");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Daemon {
            child,
            port: 0,
            log,
        };
        let announced = wait_until(std::time::Duration::from_secs(30), || {
            daemon.log().contains("/health") || daemon.has_exited()
        });
        let log = daemon.log();
        let port = log
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok());
        match port {
            Some(port) if announced => {
                daemon.port = port;
                Ok(daemon)
            }
            _ => {
                // Let the reader thread catch the last lines.
                std::thread::sleep(std::time::Duration::from_millis(100));
                Err(daemon.log())
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Waits for the process to end on its own.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread catch the last lines.
                std::thread::sleep(std::time::Duration::from_millis(100));
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.signal(rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }

    /// A plain HTTP/1.1 GET on the daemon's port: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for the API tests: no redirects followed, a generous timeout.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

impl Daemon {
    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A GET whose body is JSON (`Null` when it is not).
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `counts` of `/api/status`.
    pub fn counts(&self) -> Value {
        self.get_json("/api/status").1["counts"].clone()
    }

    /// `POST /api/jobs/{id}/retry`: the status and the JSON answer.
    pub fn retry(&self, id: &str) -> (u16, Value) {
        let response = http_client()
            .post(self.url(&format!("/api/jobs/{id}/retry")))
            .send()
            .expect("retry");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }
}

/// A minimal HTTP GET over a fresh connection, read to the end.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn part(name: &str, bytes: &[u8]) -> reqwest::blocking::multipart::Part {
    reqwest::blocking::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string())
}

/// `POST /api/upload` with one `file` part per `(name, bytes)`: the status and the JSON answer.
pub fn upload(daemon: &Daemon, parts: Vec<(&str, &[u8])>, token: Option<&str>) -> (u16, Value) {
    let mut form = reqwest::blocking::multipart::Form::new();
    for (name, bytes) in parts {
        form = form.part("file", part(name, bytes));
    }
    let mut request = http_client()
        .post(daemon.url("/api/upload"))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("upload");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// Every file under `rel`, dot files and subfolders included, as paths relative to it.
pub fn everything_in(ws: &Workspace, rel: &str) -> Vec<String> {
    let root = ws.path(rel);
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(&root).expect("under root");
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// A Python with `packages` (PyPI) installed, in a virtual environment made once under the
/// target folder: the independent writers of the spreadsheet and document tests.
pub fn python_with(packages: &[&str]) -> PathBuf {
    static MADE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py");
    let python = venv.join("bin/python");
    let imports = packages
        .iter()
        .map(|p| {
            p.split(['=', '<', '>'])
                .next()
                .unwrap_or(p)
                .replace('-', "_")
        })
        .map(|module| match module.as_str() {
            "odfpy" => "odf".to_string(),
            "python_docx" => "docx".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {imports}")])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if ready() {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv");
    assert!(made.success(), "python3 -m venv failed");
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(packages)
        .status()
        .expect("pip install");
    assert!(installed.success(), "pip install {packages:?} failed");
    assert!(ready(), "{imports} do not import after pip install");
    python
}

/// Runs `python tests/SCRIPT ARGS...` and returns what it printed; fails the test if it fails.
pub fn python_script(python: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new(python)
        .arg(path)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run {script}: {err}"));
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `report` is a failure of `kind` whose message contains `words`.
pub fn assert_failed_with(report: &Value, kind: &str, words: &str) {
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(report["error"]["kind"], kind, "{report}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{words:?} in {report}");
}

/// BLAKE3 of the file at `path` by `b3sum` (Debian's, the BLAKE3 team's own tool).
pub fn b3sum(path: &Path) -> String {
    let out = Command::new("b3sum")
        .arg("--no-names")
        .arg(path)
        .output()
        .expect("b3sum is needed (apt-get install b3sum)");
    assert!(out.status.success(), "b3sum failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A real `redis-server` on a free loopback port, without persistence (a restart starts
/// empty); killed when dropped. `None` when the machine has no redis-server (then a test says
/// so and passes), unless `FP_REQUIRE_REDIS` is set (CI sets it), which fails instead.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            assert!(
                std::env::var_os("FP_REQUIRE_REDIS").is_none(),
                "FP_REQUIRE_REDIS is set but no redis-server was found"
            );
            eprintln!("no redis-server on this machine: the cluster test is skipped");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let mut server = RedisServer { child: None, port };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again, empty) on its port and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let port = self.port;
        let answers = wait_until(std::time::Duration::from_secs(10), || {
            use std::io::{Read, Write};
            let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let mut reply = [0u8; 7];
            stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
        });
        assert!(answers, "redis-server did not answer on port {port}");
    }

    /// Sends one command (its arguments as bytes, so that they may be any bytes) on a new
    /// connection, and returns the first line of the reply (`$…` for a bulk reply, `-ERR …`).
    pub fn command(&self, args: &[&[u8]]) -> String {
        use std::io::{BufRead, Write};
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.write_all(&request).expect("send to redis");
        let mut line = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut line)
            .expect("a reply from redis");
        line.trim_end().to_string()
    }

    /// Kills it, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
