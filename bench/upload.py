#!/usr/bin/env python3
"""Upload benchmarks for `make bench` (called by bench/run.sh with the release binary).

1. Concurrency: CONCURRENT clients on loopback each upload one 1 MiB file at once (one
   multipart request each, all started together: a bounded load). Every answer must be 202,
   and every file must end in processed/ with its bytes; reports uploads/s (first request to
   last 202) and the daemon's peak RSS (/usr/bin/time -v).
2. Per upload in flight: the same uploads with every connection served at once
   (`--max-connections 10000`), PER_UPLOAD_COUNTS clients (default 100 and 500); what one
   more upload in flight costs is the difference of the two peaks over the difference of
   the counts.
3. Size: one upload of 1 MiB and one of 1 GiB, each into a fresh daemon; the daemon's VmRSS
   is sampled every 20 ms while the upload runs, and its peak (time -v) covers the analysis
   that follows. The upload must not cost memory in proportion to its size.

Usage: upload.py BIN WORKDIR BIG_FILE
"""

import concurrent.futures
import hashlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import threading
import time

CONCURRENT = int(os.environ.get("UPLOAD_CLIENTS", 500))
MIB = 1 << 20
DAEMONS = []  # killed on the way out, whatever happens
BOUNDARY = "fp-bench-boundary-7d1c"


class Daemon:
    def __init__(self, binary, root, extra=()):
        for name in ("unprocessed", "underprocess", "processed", "failed"):
            os.makedirs(os.path.join(root, name), exist_ok=True)
        self.root = root
        self.log_path = os.path.join(root, "daemon.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["/usr/bin/time", "-v", binary, "--dir", root, "--port", "0", *extra],
                                     stderr=self.log, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        DAEMONS.append(self)
        deadline = time.time() + 30
        while "/health" not in open(self.log_path).read():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("daemon did not start:\n" + open(self.log_path).read())
            time.sleep(0.02)
        self.port = int(re.search(r"http://[0-9.]+:(\d+)/health", open(self.log_path).read()).group(1))
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        self.pid = int(out.split()[0])

    def rss_kib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except OSError:
            return 0

    def stop(self):
        """SIGTERM; returns the peak RSS in KiB from time -v."""
        os.kill(self.pid, 15)
        self.proc.wait(timeout=120)
        self.log.close()
        log = open(self.log_path).read()
        return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))


def upload(port, name, size, chunks):
    """One multipart request streaming `chunks` (an iterable of bytes) as the file `name`."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("POST", "/api/upload")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    conn.send(head)
    for chunk in chunks:
        conn.send(chunk)
    conn.send(tail)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def wait_processed(root, count, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = sum(1 for n in os.listdir(os.path.join(root, "processed")) if n.endswith(".report.json"))
        failed = sum(1 for n in os.listdir(os.path.join(root, "failed")) if n.endswith(".error.json"))
        if done + failed >= count:
            return done, failed
        time.sleep(0.05)
    raise SystemExit(f"only {done} + {failed} of {count} finished")


def many_at_once(binary, base, clients=CONCURRENT, extra=()):
    root = os.path.join(base, f"concurrent-{clients}")
    daemon = Daemon(binary, root, extra)
    body = bytes((i * 7 + 13) % 251 for i in range(MIB))
    digest = hashlib.sha256(body).hexdigest()
    start = threading.Barrier(clients)

    def one(i):
        start.wait()
        return upload(daemon.port, f"u{i:04d}.bin", len(body), [body])

    began = time.time()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, range(clients)))
    elapsed = time.time() - began
    accepted = sum(1 for status, _ in answers if status == 202)
    done, failed = wait_processed(root, accepted)
    names = [n for n in os.listdir(os.path.join(root, "processed")) if not n.endswith(".report.json")]
    intact = sum(1 for n in names
                 if hashlib.sha256(open(os.path.join(root, "processed", n), "rb").read()).hexdigest() == digest)
    peak = daemon.stop()
    shutil.rmtree(root, ignore_errors=True)
    return accepted, done, failed, intact, clients / elapsed, elapsed, peak


def sized(binary, base, label, size, source):
    root = os.path.join(base, f"sized-{label}")
    daemon = Daemon(binary, root)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(daemon.rss_kib())
            time.sleep(0.02)

    def chunks():
        if source is None:
            yield bytes(size)
            return
        with open(source, "rb") as f:
            left = size
            while left > 0:
                chunk = f.read(min(left, 4 * MIB))
                if not chunk:
                    raise SystemExit(f"{source} is shorter than {size} bytes")
                left -= len(chunk)
                yield chunk

    idle = daemon.rss_kib()
    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.time()
    status, body = upload(daemon.port, f"{label}.log", size, chunks())
    elapsed = time.time() - began
    stop.set()
    sampler.join()
    if status != 202:
        raise SystemExit(f"{label}: {status} {body[:200]!r}")
    wait_processed(root, 1)
    peak = daemon.stop()
    shutil.rmtree(root, ignore_errors=True)
    return idle, max(samples or [0]), peak, size / elapsed / MIB


def main():
    binary, base, big = sys.argv[1:4]
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    print(f"== upload: {CONCURRENT} clients upload 1 MiB each at once (loopback, {os.cpu_count()} cores)")
    accepted, done, failed, intact, rate, elapsed, peak = many_at_once(binary, base)
    print(f"      {accepted}/{CONCURRENT} answered 202; {done} processed, {failed} failed, "
          f"{intact} byte-identical; {rate:.0f} uploads/s ({elapsed:.2f} s, {rate:.0f} MiB/s); "
          f"daemon peak RSS {peak / 1024:.1f} MiB")
    counts = [int(n) for n in os.environ.get("PER_UPLOAD_COUNTS", "100 500").split()]
    print(f"== upload: what one more upload in flight costs: {' and '.join(map(str, counts))} at once, "
          "every connection served at once (--max-connections 10000)")
    peaks = []
    for clients in counts:
        accepted, done, failed, intact, rate, elapsed, peak = many_at_once(
            binary, base, clients, ("--max-connections", "10000"))
        if intact != clients:
            raise SystemExit(f"{clients} at once: only {intact} byte-identical")
        peaks.append(peak)
        print(f"      {clients} at once: all 202 and byte-identical; peak RSS {peak / 1024:.1f} MiB")
    if len(counts) > 1:
        slope = (peaks[-1] - peaks[0]) / (counts[-1] - counts[0])
        print(f"      one more upload in flight: {slope:.0f} KiB")
    big_size = os.path.getsize(big)
    print(f"== upload: one 1 MiB upload and one {big_size / MIB:.0f} MiB upload, each into a fresh daemon")
    for label, size, source in (("1mib", MIB, big), ("big", big_size, big)):
        idle, during, peak, speed = sized(binary, base, label, size, source)
        print(f"      {size / MIB:6.0f} MiB: RSS idle {idle / 1024:.1f} MiB, at most {during / 1024:.1f} MiB "
              f"while uploading ({speed:.0f} MiB/s); peak with the analysis {peak / 1024:.1f} MiB")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        for daemon in DAEMONS:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                subprocess.run(["pkill", "-KILL", "-P", str(daemon.proc.pid)], check=False)
