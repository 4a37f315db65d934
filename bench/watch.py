#!/usr/bin/env python3
"""Watch-mode benchmarks for `make bench` (called by bench/run.sh with release binaries).

1. Burst: FILES files of 1 KiB moved into unprocessed/ at once, timed from the first move to
   the last report (the newest report's mtime), against the floor loop (examples/floor.rs)
   timed on the same files in the same run. Checks that nothing was lost.
2. Latency: one small file at a time dropped into an idle daemon, timed until its report
   exists; p50/p90/p99 of LATENCY_SAMPLES drops.
3. Memory: 100,000 files through one daemon, dropped in batches of 1,000 (each batch once the
   previous one is done); VmRSS after 10,000 and after 100,000, and the peak from
   /usr/bin/time -v.
4. HTTP: wrk on /api/status and / with 10,000 jobs in the history.
5. The burst watched (WATCH_ONLY=http runs only part 4): alternating pairs of the burst unwatched and the burst with the dashboard
   open in headless chromium and a paced wrk (bench/paced.lua) on /api/status; then once with
   an unpaced wrk. WATCH_ONLY=watched runs only this part; WATCH_ONLY=burst only part 1.

Usage: watch.py BIN FLOOR WORKDIR
"""

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

FILES = int(os.environ.get("WATCH_FILES", 20000))
RUNS = int(os.environ.get("WATCH_RUNS", 3))
LATENCY_SAMPLES = int(os.environ.get("LATENCY_SAMPLES", 200))
MEMORY_BATCH = int(os.environ.get("MEMORY_BATCH", 1000))
MEMORY_BATCHES = int(os.environ.get("MEMORY_BATCHES", 100))
BODY = (b"2026-11-22T10:00:00Z INFO request served in 3 ms by worker 7\n" * 17)[:1024]


RUN = [0]


def folders(base):
    """A fresh root for each run. Nothing is deleted until the end: on ext4 without a journal,
    creating files right after deleting many is slow for minutes (the allocator skips recently
    deleted inodes), which would distort whichever run came next."""
    RUN[0] += 1
    root = os.path.join(base, f"run{RUN[0]}")
    for name in ("unprocessed", "underprocess", "processed", "failed", "stage"):
        os.makedirs(os.path.join(root, name))
    return root


def stage(root, count, prefix):
    """Writes the files to move in, then flushes them and everything earlier runs left dirty
    (`sync`): otherwise the kernel writes 40,000 files of the previous run back to disk during
    the next one, on the same 2 cores, and one run can come out at half the rate of the next."""
    names = []
    for i in range(count):
        name = f"{prefix}{i:06d}.log"
        with open(os.path.join(root, "stage", name), "wb") as f:
            f.write(BODY[:-8] + b"%07d\n" % i)
        names.append(name)
    os.sync()
    return names


def reports(root):
    return [e for e in os.scandir(os.path.join(root, "processed")) if e.name.endswith(".report.json")]


def wait_for_reports(root, count, timeout=600, every=0.5):
    """Polls processed/ every `every` s. The times measured come from the reports' mtimes, not
    from when a poll saw them, so polling seldom costs no precision; polling often would: a
    scan of processed/ takes 19 ms at 40,000 entries, on the same 2 cores the daemon is timed
    on (polled every 0.1 s, as before 2026-11-30, that was up to a fifth of a core)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(reports(root)) >= count:
            return True
        time.sleep(every)
    return False


class Daemon:
    def __init__(self, binary, root, timed=False):
        self.log_path = os.path.join(root, "daemon.log")
        self.log = open(self.log_path, "w")
        command = [binary, "--dir", root, "--port", "0"]
        if timed:
            command = ["/usr/bin/time", "-v"] + command
        self.proc = subprocess.Popen(command, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while "/health" not in open(self.log_path).read():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("daemon did not start:\n" + open(self.log_path).read())
            time.sleep(0.02)
        self.pid = self.daemon_pid() if timed else self.proc.pid

    def daemon_pid(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return int(out.split()[0])

    def port(self):
        return re.search(r"http://[0-9.]+:(\d+)/health", open(self.log_path).read()).group(1)

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        if code != 0:
            raise SystemExit(f"daemon exited {code}:\n" + open(self.log_path).read()[-3000:])
        return open(self.log_path).read()


def floor_run(floor, base):
    root = folders(base)
    for name in stage(root, FILES, "f"):
        os.rename(os.path.join(root, "stage", name), os.path.join(root, "unprocessed", name))
    out = subprocess.run([floor, root], capture_output=True, text=True, check=True).stdout.split()
    count, seconds = int(out[0]), float(out[1])
    assert count == FILES
    return FILES / seconds


def burst_run(binary, base):
    root = folders(base)
    names = stage(root, FILES, "b")
    daemon = Daemon(binary, root)
    start = time.time()
    for name in names:
        os.rename(os.path.join(root, "stage", name), os.path.join(root, "unprocessed", name))
    if not wait_for_reports(root, FILES):
        raise SystemExit(f"burst: only {len(reports(root))} of {FILES} reports")
    end = max(e.stat().st_mtime for e in reports(root))
    daemon.stop()
    finished = sum(1 for e in os.scandir(os.path.join(root, "processed")) if not e.name.endswith(".json"))
    finished += sum(1 for e in os.scandir(os.path.join(root, "failed")) if not e.name.endswith(".json"))
    left = len(os.listdir(os.path.join(root, "unprocessed"))) + len(os.listdir(os.path.join(root, "underprocess")))
    if finished != FILES or left:
        raise SystemExit(f"burst: {finished} finished, {left} left of {FILES}")
    return FILES / (end - start)


def latency(binary, base):
    root = folders(base)
    daemon = Daemon(binary, root)
    time.sleep(0.5)
    samples = []
    for i in range(LATENCY_SAMPLES):
        name = f"lat{i:04d}.txt"
        staged = os.path.join(root, "stage", name)
        with open(staged, "wb") as f:
            f.write(b"one small file\n")
        report = os.path.join(root, "processed", name + ".report.json")
        start = time.perf_counter()
        os.rename(staged, os.path.join(root, "unprocessed", name))
        while not os.path.exists(report):
            time.sleep(0.00005)
        samples.append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    daemon.stop()
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return pick(0.5), pick(0.9), pick(0.99)


def memory(binary, base):
    root = folders(base)
    daemon = Daemon(binary, root, timed=True)
    rss = []
    for batch in range(MEMORY_BATCHES):
        names = stage(root, MEMORY_BATCH, f"m{batch:02d}-")
        for name in names:
            os.rename(os.path.join(root, "stage", name), os.path.join(root, "unprocessed", name))
        waiting = [os.path.join(root, "processed", name + ".report.json") for name in names]
        deadline = time.time() + 600
        while waiting and time.time() < deadline:
            waiting = [path for path in waiting if not os.path.exists(path)]
            time.sleep(0.02)
        if waiting:
            raise SystemExit(f"memory: batch {batch} did not finish")
        if (batch + 1) % 10 == 0:
            time.sleep(0.5)
            rss.append(daemon.rss_kib())
    log = daemon.stop()
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
    return rss, peak


# ext4 without a journal skips inodes freed in the last 60 s (300 s while their inode table
# block is dirty) when it allocates new ones: right after a run deleted its 300,000 files,
# creating files is several times slower. A run therefore waits until the last one's deletions
# are that old.
QUIET_AFTER_DELETE_S = 300


def wait_for_old_deletions(marker):
    try:
        age = time.time() - os.path.getmtime(marker)
    except OSError:
        return
    if age < QUIET_AFTER_DELETE_S:
        wait = QUIET_AFTER_DELETE_S - age
        print(f"      (waiting {wait:.0f} s: the last run deleted its files {age:.0f} s ago, and new "
              f"files would be slow to create until the filesystem forgets them)", flush=True)
        time.sleep(wait)


def api(binary, base):
    """wrk on /api/status with a full history of 10,000 jobs; returns (req/s, p99 ms, RSS KiB)."""
    if shutil.which("wrk") is None:
        return None
    root = folders(base)
    for i in range(10000):
        with open(os.path.join(root, "unprocessed", f"h{i:05d}.log"), "wb") as f:
            f.write(BODY)
    daemon = Daemon(binary, root)
    if not wait_for_reports(root, 10000):
        raise SystemExit("api: the 10,000 files were not processed")
    time.sleep(0.5)
    port = daemon.port()
    results = {}
    for path in ("/api/status", "/"):
        out = subprocess.run(["wrk", "-t2", "-c50", "-d10s", "--latency", f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, check=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        results[path] = (rate, p99_ms)
    rss = daemon.rss_kib()
    daemon.stop()
    return results, rss


def watched_burst(binary, base, load):
    """The burst with the dashboard open in headless chromium (live through SSE) and `load`, a
    wrk command line (or None) asking /api/status meanwhile. Returns files/s, or None without
    the tools."""
    chromium = shutil.which("chromium")
    if chromium is None or shutil.which("wrk") is None:
        return None
    root = folders(base)
    names = stage(root, FILES, "w")
    daemon = Daemon(binary, root)
    port = daemon.port()
    profile = os.path.join(root, "chromium-profile")
    browser = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                f"--user-data-dir={profile}", "--remote-debugging-port=0", f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    command = (load + ["-d120s", f"http://127.0.0.1:{port}/api/status"]) if load else ["sleep", "120"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(2)
    start = time.time()
    for name in names:
        os.rename(os.path.join(root, "stage", name), os.path.join(root, "unprocessed", name))
    if not wait_for_reports(root, FILES):
        raise SystemExit("watched burst: not all reports")
    end = max(e.stat().st_mtime for e in reports(root))
    watcher.send_signal(signal.SIGINT)
    out, _ = watcher.communicate()
    browser.kill()
    browser.wait()
    daemon.stop()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out or "")
    return FILES / (end - start), float(rate.group(1)) if rate else None


PACED = ["wrk", "-t1", "-c4", "-s", os.path.join(os.path.dirname(os.path.abspath(__file__)), "paced.lua")]
FLOOD = ["wrk", "-t1", "-c1"]


def watched(binary, root):
    """Alternating pairs, so that the machine's drift hits both sides alike: the burst unwatched,
    then watched by chromium and a paced wrk (<= 100 req/s); once more watched by chromium and
    an unpaced wrk, for the record."""
    print(f"== watch: the burst watched by the dashboard in headless chromium and wrk on /api/status "
          f"({RUNS} alternating pairs)")
    if shutil.which("chromium") is None or shutil.which("wrk") is None:
        print("      (needs chromium and wrk)")
        return
    plain, seen, rates = [], [], []
    for _ in range(RUNS):
        plain.append(burst_run(binary, root))
        files, rate = watched_burst(binary, root, PACED)
        seen.append(files)
        rates.append(rate or 0)
    p, w = statistics.median(plain), statistics.median(seen)
    print(f"      unwatched:                                     {p:8.0f} files/s  (runs: {', '.join(f'{x:.0f}' for x in plain)})")
    print(f"      chromium + wrk -t1 -c4, 40 ms pace ({statistics.median(rates):.0f} req/s): {w:8.0f} files/s  "
          f"(runs: {', '.join(f'{x:.0f}' for x in seen)})  -> {(w - p) / p * 100:+.1f}%")
    files, rate = watched_burst(binary, root, FLOOD)
    print(f"      chromium + wrk -t1 -c1 unpaced ({rate or 0:,.0f} req/s):  {files:8.0f} files/s  "
          f"-> {(files - p) / p * 100:+.1f}% (wrk and the server take a core of the two)")


def main():
    binary, floor, workdir = sys.argv[1:4]
    root = os.path.join(workdir, f"watch-bench-{os.getpid()}")
    marker = os.path.join(workdir, ".watch-bench-deleted")
    wait_for_old_deletions(marker)
    if os.environ.get("WATCH_ONLY") == "http":
        results, rss = api(binary, root)
        for path, (rate, p99_ms) in results.items():
            print(f"      {path:12} {rate:8,.0f} req/s, p99 {p99_ms:.2f} ms")
        print(f"      daemon RSS with the full history, after the load: {rss / 1024:.1f} MiB")
        shutil.rmtree(root, ignore_errors=True)
        with open(marker, "w"):
            pass
        return
    if os.environ.get("WATCH_ONLY") == "watched":
        watched(binary, root)
        shutil.rmtree(root, ignore_errors=True)
        with open(marker, "w"):
            pass
        return
    print(f"== watch: burst of {FILES} files of 1 KiB moved in at once, {os.cpu_count()} cores, {RUNS} runs each")
    floors, ours = [], []
    for _ in range(RUNS):
        floors.append(floor_run(floor, root))
        ours.append(burst_run(binary, root))
    f, o = statistics.median(floors), statistics.median(ours)
    print(f"      floor loop (rename in, read, write report, rename out): {f:8.0f} files/s  (runs: {', '.join(f'{x:.0f}' for x in floors)})")
    print(f"      file-processor, first move to last report, 0 lost:       {o:8.0f} files/s  (runs: {', '.join(f'{x:.0f}' for x in ours)})")
    print(f"      -> {o / f:.2f}x the floor")
    if os.environ.get("WATCH_ONLY") == "burst":
        shutil.rmtree(root, ignore_errors=True)
        with open(marker, "w"):
            pass
        return
    p50, p90, p99 = latency(binary, root)
    print(f"== watch: drop-to-report latency, one small file at a time on an idle daemon ({LATENCY_SAMPLES} drops)")
    print(f"      p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms")
    rss, peak = memory(binary, root)
    first, last = rss[0], rss[-1]
    total = MEMORY_BATCH * MEMORY_BATCHES
    step = MEMORY_BATCH * 10
    print(f"== watch: memory over {total} files dropped in batches of {MEMORY_BATCH} (--history 10000)")
    print(f"      RSS after {step}: {first / 1024:.1f} MiB, after {total}: {last / 1024:.1f} MiB "
          f"({(last - first) / first * 100:+.1f}%); peak {peak / 1024:.1f} MiB")
    print(f"      RSS every {step} files (MiB): {', '.join(f'{r / 1024:.1f}' for r in rss)}")
    measured = api(binary, root)
    print("== http: wrk -t2 -c50 -d10s, 10,000 jobs in the history (wrk on the same 2 cores)")
    if measured is None:
        print("      (wrk is not installed: apt-get install wrk)")
    else:
        results, rss = measured
        for path, (rate, p99_ms) in results.items():
            print(f"      {path:12} {rate:8,.0f} req/s, p99 {p99_ms:.2f} ms")
        print(f"      daemon RSS with the full history, after the load: {rss / 1024:.1f} MiB")
    watched(binary, root)
    shutil.rmtree(root, ignore_errors=True)
    with open(marker, "w"):
        pass


if __name__ == "__main__":
    main()
