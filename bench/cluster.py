#!/usr/bin/env python3
"""Cluster benchmarks for `make bench-cluster` (called by bench/run.sh with the release binary).

A real redis-server is started on a free loopback port, without persistence. Three figures,
each a ratio of runs made alternately in the same invocation, so that the machine's drift hits
both sides alike:

1. The 20,000-file burst (bench/watch.py's, 1 KiB files moved in at once, timed from the first
   move to the newest report) through one node with `--redis` against one daemon without it.
2. The same burst through three nodes with `--redis` on one folder tree against one daemon
   with `--workers 2`.
3. wrk on /api/status of a node in cluster mode with 10,000 jobs in the history.

Every burst is checked: each file ends once in processed/, nothing is left.

Usage: cluster.py BIN WORKDIR
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import watch  # noqa: E402  (the burst's folders, files and checks are the watch benchmark's)

FILES = watch.FILES
# Five alternating pairs unless WATCH_RUNS says otherwise (the watch benchmark's default is
# three): on the 2-core VM one pair in five or so falls in a slow spell of the filesystem, and
# the median of three is then decided by the two others alone.
RUNS = int(os.environ.get("WATCH_RUNS", 5))


class Redis:
    def __init__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("redis-server did not answer")
            time.sleep(0.05)

    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self):
        """Empties Redis and zeroes its command counts, for the next burst."""
        for command in (["FLUSHALL"], ["CONFIG", "RESETSTAT"]):
            subprocess.run(["redis-cli", "-p", str(self.port)] + command, check=True, capture_output=True)

    def commands(self):
        """Commands served since the last `flush`, by name (`INFO commandstats`)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "commandstats"],
                             check=True, capture_output=True, text=True).stdout
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"cmdstat_(\S+?):calls=(\d+)", out)}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Node:
    """One daemon on `root`, its log in `root/<label>.log`; ready once it serves /health (and,
    in cluster mode, once it has joined: the burst starts with every node registered)."""

    def __init__(self, binary, root, label, extra):
        self.log_path = os.path.join(root, f"{label}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "--dir", root, "--port", "0"] + extra,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while "/health" not in open(self.log_path).read():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{label} did not start:\n" + open(self.log_path).read())
            time.sleep(0.02)

    def port(self):
        return re.search(r"http://[0-9.]+:(\d+)/health", open(self.log_path).read()).group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        if code != 0:
            raise SystemExit(f"node exited {code}:\n" + open(self.log_path).read()[-3000:])


def check_burst(root):
    done = [e.name for e in os.scandir(os.path.join(root, "processed")) if not e.name.endswith(".json")]
    failed = [e.name for e in os.scandir(os.path.join(root, "failed")) if not e.name.endswith(".json")]
    left = os.listdir(os.path.join(root, "unprocessed")) + os.listdir(os.path.join(root, "underprocess"))
    if failed or left or len(done) != FILES or len(set(done)) != FILES:
        raise SystemExit(f"burst: {len(done)} processed, {len(failed)} failed, {len(left)} left of {FILES}")


def burst(binary, base, nodes):
    """`nodes` is a list of extra-argument lists, one per daemon. Returns files/s."""
    root = watch.folders(base)
    names = watch.stage(root, FILES, "c")
    started = [Node(binary, root, f"node{i}", extra) for i, extra in enumerate(nodes)]
    if any("--redis" in extra for extra in nodes):
        time.sleep(2.5)  # every node has sent a heartbeat; one holds the scanner lease
    start = time.time()
    for name in names:
        os.rename(os.path.join(root, "stage", name), os.path.join(root, "unprocessed", name))
    if not watch.wait_for_reports(root, FILES):
        raise SystemExit(f"burst: only {len(watch.reports(root))} of {FILES} reports")
    end = max(e.stat().st_mtime for e in watch.reports(root))
    for node in started:
        node.stop()
    check_burst(root)
    return FILES / (end - start)


def api(binary, base, extra):
    """wrk on /api/status of a daemon (`extra`: its cluster flags, or none) whose view holds
    10,000 finished jobs."""
    root = watch.folders(base)
    for i in range(10000):
        with open(os.path.join(root, "unprocessed", f"h{i:05d}.log"), "wb") as f:
            f.write(watch.BODY)
    node = Node(binary, root, "api", extra)
    if not watch.wait_for_reports(root, 10000):
        raise SystemExit("api: the 10,000 files were not processed")
    time.sleep(1.5)
    port = node.port()
    status = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/api/status"], capture_output=True, text=True).stdout
    out = subprocess.run(["wrk", "-t2", "-c50", "-d10s", "--latency", f"http://127.0.0.1:{port}/api/status"],
                         capture_output=True, text=True, check=True).stdout
    node.stop()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rate, p99_ms, status


def runs(label, values):
    return f"{statistics.median(values):8.0f} files/s  (runs: {', '.join(f'{x:.0f}' for x in values)})"


def main():
    binary, workdir = sys.argv[1:3]
    for tool in ("redis-server", "redis-cli", "wrk", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing (apt-get install redis-server wrk curl)")
    base = os.path.join(workdir, f"cluster-bench-{os.getpid()}")
    marker = os.path.join(workdir, ".watch-bench-deleted")
    watch.wait_for_old_deletions(marker)
    redis = Redis()
    try:
        only = os.environ.get("CLUSTER_ONLY", "")
        if only in ("", "one"):
            print(f"== cluster: burst of {FILES} files of 1 KiB, one node with --redis against one without "
                  f"({RUNS} alternating pairs, {os.cpu_count()} cores)")
            local, clustered = [], []
            for _ in range(RUNS):
                local.append(burst(binary, base, [[]]))
                redis.flush()
                clustered.append(burst(binary, base, [["--redis", redis.url(), "--node", "solo"]]))
            print(f"      one daemon, no Redis:       {runs('local', local)}")
            print(f"      one node with --redis:      {runs('redis', clustered)}")
            print(f"      -> {statistics.median(clustered) / statistics.median(local):.2f}x the local throughput")
        if only in ("", "three"):
            print(f"== cluster: the same burst through three nodes on one tree against one daemon with --workers 2 "
                  f"({RUNS} alternating pairs)")
            single, three, slim, counted = [], [], [], []
            for _ in range(RUNS):
                single.append(burst(binary, base, [["--workers", "2"]]))
                redis.flush()
                three.append(burst(binary, base, [["--redis", redis.url(), "--node", f"n{i}"] for i in range(3)]))
                counted.append(redis.commands())
                redis.flush()
                slim.append(burst(binary, base, [["--redis", redis.url(), "--node", f"n{i}", "--workers", "1"]
                                                 for i in range(3)]))
            print(f"      one daemon, --workers 2:    {runs('single', single)}")
            print(f"      three nodes with --redis:   {runs('three', three)}  (2 workers each)")
            print(f"      the same, --workers 1 each: {runs('slim', slim)}")
            pairs = [t / s for t, s in zip(three, single)]
            print(f"      -> {statistics.median(three) / statistics.median(single):.2f}x one daemon "
                  f"({statistics.median(slim) / statistics.median(single):.2f}x with one worker per node); "
                  f"pair by pair {', '.join(f'{p:.2f}' for p in pairs)} (median {statistics.median(pairs):.2f})")
            names = ("xadd", "xreadgroup", "xack", "xread")
            print(f"      Redis commands per three-node burst (2 workers each, start to stop): "
                  f"{', '.join(str(sum(c.values())) for c in counted)}; median "
                  + ", ".join(f"{n.upper()} {statistics.median(c.get(n, 0) for c in counted):.0f}" for n in names))
        if only in ("", "http"):
            print(f"== cluster: wrk -t2 -c50 -d10s on /api/status, 10,000 jobs in the history, a node with --redis "
                  f"against a daemon without ({RUNS} alternating pairs; wrk on the same 2 cores)")
            plain, clustered = [], []
            for _ in range(RUNS):
                plain.append(api(binary, base, []))
                redis.flush()
                clustered.append(api(binary, base, ["--redis", redis.url(), "--node", "api"]))
            for label, results in (("one daemon, no Redis:", plain), ("one node with --redis:", clustered)):
                rates = [r for r, _, _ in results]
                p99s = [p for _, p, _ in results]
                jobs = re.search(r'"completed":\s*(\d+)', results[-1][2])
                print(f"      {label:24} {statistics.median(rates):8,.0f} req/s, p99 {statistics.median(p99s):.2f} ms "
                      f"(medians; runs: {', '.join(f'{r:,.0f} req/s {p:.1f} ms' for r, p in zip(rates, p99s))}; "
                      f"completed in the view: {jobs.group(1) if jobs else '?'})")
    finally:
        redis.stop()
        shutil.rmtree(base, ignore_errors=True)
        with open(marker, "w"):
            pass


if __name__ == "__main__":
    main()
