"""Peak memory and report size on hostile data (issue 10, item 11), release build.

Usage: python3 bench/memory.py BIN OUT_DIR DATA_DIR
Generates (once) the cases the issue measured, runs `BIN --input FILE --json` on each under
/usr/bin/time -v, and prints peak RSS (MiB) and report size next to the SPEC's goal.
"""
import os
import re
import shutil
import subprocess
import sys

MIB = 1 << 20


def generate(path, make):
    if not os.path.exists(path):
        tmp = path + ".part"
        with open(tmp, "w") as f:
            make(f)
        os.rename(tmp, path)


def users_csv(f):  # 1.2 M distinct user ids of 1 KB: 1.2 GB
    f.write("user_id,n\n")
    pad = "x" * 990
    for i in range(1_200_000):
        f.write("%s%09d,%d\n" % (pad, i, i))


def wide_csv(f):  # 16,384 columns x 7,000 distinct rows
    cols = 16384
    f.write(",".join("c%d" % i for i in range(cols)) + "\n")
    for r in range(7000):
        f.write(",".join([str(r * 7 + 1)] * cols) + "\n")


def keys_json(f):  # 30 keys of 3 MiB: 90 MB
    f.write("{" + ",".join('"%s": %d' % (chr(97 + i) * (3 << 20), i) for i in range(30)) + "}")


def deep_json(f):  # [[[[…]]]] 50 M deep: 100 MB
    n = 50_000_000
    f.write("[" * n + "]" * n)


CASES = [
    ("users-1k.csv", users_csv, 128),
    ("wide-16384.csv", wide_csv, 128),
    ("long-keys.json", keys_json, 64),
    ("deep.json", deep_json, 64),
]


def main():
    binary, out, data = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    os.makedirs(data, exist_ok=True)
    print("%-16s %10s %10s %10s %12s  %s" % ("file", "size MB", "peak MiB", "goal MiB", "report B", "outcome"))
    for name, make, goal in CASES:
        path = os.path.join(data, name)
        generate(path, make)
        watch = os.path.join(out, "memory-watch")
        shutil.rmtree(watch, ignore_errors=True)
        size = os.path.getsize(path)
        run = subprocess.run(
            ["/usr/bin/time", "-v", binary, "--dir", watch, "--input", path, "--json"],
            capture_output=True, text=True)
        peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
        # --input moved it: put it back for the next run.
        for folder in ("processed", "failed"):
            moved = os.path.join(watch, folder, name)
            if os.path.exists(moved):
                os.rename(moved, path)
        report = run.stdout
        outcome = re.search(r'"status": "(\w+)"', report)
        kind = re.search(r'"kind": "(\w+)"', report[report.find('"error"'):]) if '"error"' in report else None
        print("%-16s %10.0f %10.1f %10d %12d  %s%s" % (
            name, size / 1e6, peak / 1024, goal, len(report),
            outcome.group(1) if outcome else "?", " (" + kind.group(1) + ")" if kind else ""))


if __name__ == "__main__":
    main()
