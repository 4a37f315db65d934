"""How late `--job-timeout` stops an analysis (issue 12, item 6), release build.

Usage: python3 bench/timeout.py BIN OUT_DIR DATA_DIR [TIMEOUT_MS]
Generates (once) inputs that each take far longer than the timeout, runs
`BIN --input FILE --json --job-timeout TIMEOUT_MS` on each RUNS times, and prints the delay
between the deadline and the end of the analysis (the report's duration_ms minus the timeout),
and the process's wall time minus the timeout, worst of the runs.
"""
import bz2
import json
import os
import random
import shutil
import subprocess
import sys
import time
import zipfile

MIB = 1 << 20


def generate(path, make):
    if not os.path.exists(path):
        tmp = path + ".part"
        make(tmp)
        os.rename(tmp, path)


def sparse(size):
    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)
    return make


def log_lines(path, size, seed=1):
    rng = random.Random(seed)
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    with open(path, "w") as f:
        written = 0
        while written < size:
            line = "2026-11-29T12:00:%02d %s user%d did thing %d\n" % (
                rng.randrange(60), rng.choice(levels), rng.randrange(10_000), rng.randrange(10**6))
            f.write(line)
            written += len(line)


def text_log(path):
    log_lines(path, 1 << 30)


def bz2_log(path):
    plain = path + ".plain"
    log_lines(plain, 256 * MIB, seed=2)
    with open(plain, "rb") as src, bz2.open(path, "wb", compresslevel=9) as dst:
        shutil.copyfileobj(src, dst, 4 * MIB)
    os.remove(plain)


def big_json(path):  # one array of 40 M numbers: 400 MB, one document
    with open(path, "w") as f:
        f.write("[")
        f.write(",".join(str(i) for i in range(10_000_000)))
        for _ in range(3):
            f.write(",")
            f.write(",".join(str(i) for i in range(10_000_000)))
        f.write("]")


def many_members(path):  # 90,000 small CSV members
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(90_000):
            z.writestr("part-%05d.csv" % i, "user_id,n\nu%d,%d\n" % (i, i))


def big_members(path):  # 8 CSV members of 64 MiB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        rows = "".join("u%d,%d,item-%d\n" % (i % 50_000, i, i % 977) for i in range(400_000))
        for i in range(8):
            with z.open("orders-%d.csv" % i, "w") as member:
                member.write(b"user_id,amount,item\n")
                written = 0
                while written < 64 * MIB:
                    member.write(rows.encode())
                    written += len(rows)


CASES = [
    ("zeros.log", sparse(16 << 30), "16 GiB of zeros: one line, no newline to cut at"),
    ("zeros.csv", sparse(16 << 30), "16 GiB of zeros: a header that never ends"),
    ("lines.log", text_log, "1 GiB of log lines, segments in parallel"),
    ("lines.log.bz2", bz2_log, "256 MiB of log lines in bzip2 (the slowest decoder)"),
    ("array.json", big_json, "one JSON document of 40 M numbers"),
    ("many.zip", many_members, "90,000 CSV members"),
    ("big.zip", big_members, "8 CSV members of 64 MiB, in parallel"),
]


def main():
    binary, out, data = sys.argv[1], sys.argv[2], sys.argv[3]
    timeout_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    runs = int(os.environ.get("RUNS", "5"))
    os.makedirs(data, exist_ok=True)
    work = os.path.join(out, "timeout")
    print("--job-timeout %d ms, worst of %d runs" % (timeout_ms, runs))
    print("%-14s %9s %14s %14s  %s" % ("file", "size MB", "delay ms", "exit ms", "what"))
    worst = 0
    for name, make, what in CASES:
        path = os.path.join(data, "timeout-" + name)
        generate(path, make)
        size = os.path.getsize(path)
        delays, exits = [], []
        for _ in range(runs):
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            given = os.path.join(work, name)
            os.link(path, given)
            start = time.monotonic()
            done = subprocess.run(
                [binary, "--input", given, "--dir", os.path.join(work, "wd"), "--json",
                 "--job-timeout", "%dms" % timeout_ms],
                capture_output=True, text=True)
            wall_ms = (time.monotonic() - start) * 1000
            report = json.loads(done.stdout)
            kind = report.get("error", {}).get("kind")
            if kind != "timeout":
                sys.exit("%s: not stopped by the timeout: %s" % (name, report.get("error")))
            delays.append(report["duration_ms"] - timeout_ms)
            exits.append(wall_ms - timeout_ms)
        worst = max(worst, max(delays))
        print("%-14s %9.0f %14d %14.0f  %s" % (name, size / 1e6, max(delays), max(exits), what))
    shutil.rmtree(work, ignore_errors=True)
    print("worst delay between the deadline and the failed report: %d ms" % worst)


if __name__ == "__main__":
    main()
