"""Every hostile archive of issue 12, analysed by the release binary: outcome, time, peak RSS.

Usage: python3 bench/bombs.py BIN OUT_DIR
Builds each case (seeded, with Python's zipfile/tarfile/gzip, tests/reference.py's hostile
zips and the `zip` tool for the encrypted member), runs `BIN --input FILE --json` on it under
/usr/bin/time -v, and prints the error kind (or the member outcomes), the wall time and the peak
RSS against the goal (under 2 s, at most 64 MiB).
"""
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import reference  # noqa: E402

MIB = 1 << 20


def zeros_zip(path, size):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("zeros.txt", "w") as member:
            chunk = bytes(MIB)
            for _ in range(size // MIB):
                member.write(chunk)


def nested(path, levels):
    """42.zip's shape: each level holds 16 copies of the one below; the bottom is 64 MiB of
    zeros (so 16^(levels-1) * 64 MiB unpacked, nominally)."""
    below = path + ".l%d" % levels
    zeros_zip(below, 64 * MIB)
    for level in range(levels - 1, 0, -1):
        current = path + ".l%d" % level
        data = open(below, "rb").read()
        with zipfile.ZipFile(current, "w", zipfile.ZIP_STORED) as z:
            for i in range(16):
                z.writestr("c%02d.zip" % i, data)
        os.remove(below)
        below = current
    os.rename(below, path)


def truncated_zip(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.log", "".join("INFO line %d\n" % i for i in range(200_000)))
    data = buf.getvalue()
    open(path, "wb").write(data[: len(data) // 2])


def truncated_gzip(path):
    data = gzip.compress(b"".join(b"INFO line %d\n" % i for i in range(500_000)))
    open(path, "wb").write(data[: len(data) // 3])


def just_under(path):  # 99,999 empty members: under --max-entries, all analysed
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for i in range(99_999):
            z.writestr("e%d" % i, b"")


def gzip_bomb(path):  # 4 GiB of zeros in one gzip stream
    with gzip.open(path, "wb", compresslevel=9) as f:
        chunk = bytes(4 * MIB)
        for _ in range(1024):
            f.write(chunk)


def tar_gz_bomb(path):  # a tar.gz of 1 GiB of zeros
    info = tarfile.TarInfo("zeros.log")
    info.size = 1 << 30

    class Zeros(io.RawIOBase):
        def __init__(self):
            self.left = info.size

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BufferedReader(Zeros(), 4 * MIB))


def hostile_names(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../etc/passwd", "root:x:0:0\n")
        z.writestr("/abs/path.log", "INFO absolute\n")
        z.writestr("line\nbreak.log", "INFO newline\n")
        link = zipfile.ZipInfo("link-to-etc")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/shadow")


def with_nul_name(path):
    reference.make_hostile_zip("nul-name", path)


def encrypted(path):
    work = path + ".d"
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, "secret.csv"), "w").write("user_id,n\nu1,1\n" * 1000)
    open(os.path.join(work, "open.txt"), "w").write("not secret\n")
    subprocess.run(["zip", "-q", "-P", "pw", os.path.abspath(path), "secret.csv"], cwd=work, check=True)
    subprocess.run(["zip", "-q", os.path.abspath(path), "open.txt"], cwd=work, check=True)
    shutil.rmtree(work)


CASES = [
    ("42-style.zip", lambda p: nested(p, 4), [], "16 x 16 x 16 zips of 64 MiB of zeros"),
    ("42-style.zip", lambda p: nested(p, 4), ["--max-depth", "16"], "the same, every level allowed"),
    ("overlap.zip", lambda p: reference.make_hostile_zip("overlap", p), [], "300 records on one 1 MiB entry"),
    ("ratio.zip", lambda p: zeros_zip(p, 1 << 30), [], "one member: 1 GiB of zeros"),
    ("truncated.zip", truncated_zip, [], "half a zip"),
    ("truncated.log.gz", truncated_gzip, [], "a third of a .log.gz"),
    ("lying.zip", lambda p: reference.make_hostile_zip("lying", p), [], "declares 100 B, holds 2 MiB"),
    ("many.zip", lambda p: reference.make_hostile_zip("many", p), [], "200,000 empty members"),
    ("under-limit.zip", just_under, [], "99,999 empty members: all analysed"),
    ("zeros.log.gz", gzip_bomb, [], "4 GiB of zeros, gzip -9"),
    ("zeros.tar.gz", tar_gz_bomb, [], "tar.gz of 1 GiB of zeros"),
    ("names.zip", hostile_names, [], "../../etc/passwd, /abs, newline, symlink"),
    ("nul-name.zip", with_nul_name, [], "a member name with a NUL"),
    ("encrypted.zip", encrypted, [], "zip -P member beside a plain one"),
]


def main():
    binary, out = sys.argv[1], sys.argv[2]
    data = os.path.join(out, "bombs")
    work = os.path.join(out, "bombs-run")
    os.makedirs(data, exist_ok=True)
    print("%-17s %9s %-16s %8s %9s  %s" % ("case", "size", "outcome", "time s", "peak MiB", "what"))
    for name, make, flags, what in CASES:
        path = os.path.join(data, name)
        if not os.path.exists(path):
            make(path + ".part")
            os.rename(path + ".part", path)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        given = os.path.join(work, name)
        shutil.copyfile(path, given)
        start = time.monotonic()
        done = subprocess.run(
            ["/usr/bin/time", "-v", binary, "--input", given, "--dir", os.path.join(work, "wd"),
             "--json"] + flags,
            capture_output=True, text=True)
        seconds = time.monotonic() - start
        peak = 0
        for line in done.stderr.splitlines():
            if "Maximum resident set size" in line:
                peak = int(line.split(":")[1]) / 1024
        report = json.loads(done.stdout)
        if report["status"] == "failed":
            outcome = report["error"]["kind"]
        else:
            members = report.get("archive", {}).get("members", [])
            states = sorted({m["status"] for m in members})
            outcome = "completed(%s)" % ",".join(states)
        label = name + (" " + " ".join(flags) if flags else "")
        print("%-17s %8.1fM %-16s %8.2f %9.1f  %s" % (
            label[:17], os.path.getsize(path) / MIB, outcome, seconds, peak, what))
        if report["status"] == "failed":
            print("%17s   %s" % ("", report["error"]["message"][:150]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
