//! `--check-health`: asks a running daemon's `GET /health` and turns the answer into an exit
//! code, for the Docker image's HEALTHCHECK (a slim image has no curl or wget).
//!
//! One HTTP/1.0 request on loopback, with a timeout on every step; only the status line is
//! read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// 0 when `/health` answers 200, else 1 with one line on stderr saying why.
pub fn check(host: &str, port: u16) -> ExitCode {
    match status(host, port) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("unhealthy: /health answered {code}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("unhealthy: cannot ask http://{host}:{port}/health: {err}");
            ExitCode::from(1)
        }
    }
}

fn status(host: &str, port: u16) -> std::io::Result<u16> {
    // A daemon listening on every address is asked on loopback.
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    };
    let address = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut line = String::new();
    // The status line is all that is read, and at most 1 KiB of it.
    BufReader::new(Read::take(stream, 1024)).read_line(&mut line)?;
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}
