#!/usr/bin/env python3
"""Independent reference for the integration tests: the SPEC's definitions computed with
Python's own tools (bytes.split, str decoding, the csv module, math.fsum, hashlib), sharing no
code with the Rust analyzers.

usage:
  reference.py text PATH              -> JSON: lines, words, chars, blank_lines, max_line_bytes, log_levels
  reference.py csv PATH [USER_COLUMN] -> JSON: the csv section (top_users: all users ranked)
  reference.py sha256 PATH
  reference.py gen-text PATH SEED     -> writes a hostile text file
  reference.py gen-csv PATH SEED      -> writes a hostile CSV file
  reference.py compress FORMAT SRC DST -> DST is SRC compressed with Python's gzip (two
                                        members: each half its own), lzma (xz) or bz2
  reference.py zip DST SPEC.json      -> DST is a zip (zipfile) of SPEC's members: [{"name",
                                        "data"|"file"|"dir"|"symlink"|"zeros": N, "stored"?}]
  reference.py zip-hostile CASE DST  -> DST is a hostile zip: overlap, lying, many, nul-name,
                                        bad-crc, bad-data, short, big-bad-crc
  reference.py tar MODE DST SPEC.json -> DST is a tar (tarfile MODE: w, w:gz, w:xz, w:bz2) of
                                        SPEC's members: [{"name", "data"|"file"|"dir"|"symlink"}]
"""
import bz2
import struct
import zipfile
import collections
import tarfile
import gzip
import lzma
import csv
import datetime
import hashlib
import io
import json
import math
import random
import re
import sys

SPACE = b" \t\n\r\x0b\x0c"
LEVELS = {"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "notice": "NOTICE",
          "warn": "WARN", "warning": "WARN", "err": "ERROR", "error": "ERROR",
          "crit": "CRITICAL", "critical": "CRITICAL", "alert": "CRITICAL", "fatal": "FATAL",
          "emerg": "FATAL", "panic": "FATAL"}
# README "text": a level word counts at the line's start or after its timestamp, in brackets,
# before ":", as the value of a level key, or as klog's letter; only the first 268 bytes of a
# line are read, and a level word must start in the first 256.
BLANK = rb"[ \t\r\x0b\x0c]"
TOKEN = re.compile(rb"[A-Za-z0-9_./-]+")
STAMP_WORD = re.compile(rb"[0-9][0-9+,\-./:TZ]*(?=[ \t\r\x0b\x0c\]]|$)")
CALENDAR = re.compile(rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|Mon|Tue|Wed|Thu"
                      rb"|Fri|Sat|Sun),?(?=[ \t\r\x0b\x0c]|$)")
SEPARATOR = re.compile(rb"[-|](?=[ \t\r\x0b\x0c]|$)")
KLOG = {ord("I"): "INFO", ord("W"): "WARN", ord("E"): "ERROR", ord("F"): "FATAL"}
KEY = rb"(?:level|lvl|severity)"
BARE_VALUE = re.compile(rb"(?:^|[^A-Za-z0-9_./-])" + KEY + rb"=$", re.I)
QUOTED_VALUE = re.compile(rb"(?:^|[^A-Za-z0-9_./-])" + KEY + rb'="$', re.I)
JSON_VALUE = re.compile(rb'"' + KEY + rb'"' + BLANK + rb"*:" + BLANK + rb'*"$', re.I)
OPEN = re.compile(rb"([\[<])" + BLANK + rb"{0,3}$")
CLOSE = re.compile(BLANK + rb"{0,3}([\]>])")
USER_NAMES = {"userid", "user", "username", "uid", "customerid", "clientid", "accountid",
              "memberid"}
INT_RE = re.compile(r"[+-]?[0-9]+")
FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def header_end(line):
    at, brackets = 0, 0
    while True:
        at = re.compile(BLANK + b"*").match(line, at).end()
        if at >= len(line) or at >= 256:
            return at, brackets
        if line[at:at + 1] == b"[":
            if STAMP_WORD.match(line, at + 1):
                at += 1
                continue
            close = line.find(b"]", at)
            if brackets < 2 and close >= 0:
                at, brackets = close + 1, brackets + 1
                continue
            return at, brackets
        match = STAMP_WORD.match(line, at) or SEPARATOR.match(line, at) or CALENDAR.match(line, at)
        if not match:
            return at, brackets
        at = match.end() + (1 if line[match.end():match.end() + 1] == b"]" else 0)


def level_of(line):
    line = line[:268]
    if re.match(rb"[IWEF][0-9]{4} ", line):
        return KLOG[line[0]]
    header, _ = header_end(line)
    for match in TOKEN.finditer(line):
        start, end = match.span()
        if start >= 256:
            return None
        word = match.group().decode("ascii")
        if word not in (word.lower(), word.upper(), word.capitalize()) or word.lower() not in LEVELS:
            continue
        before, after = line[:start], line[end:end + 1]
        bracket = OPEN.search(before), CLOSE.match(line, end)
        if ((start == header and (after in (b"", b":") or re.fullmatch(BLANK, after)))
                or re.match(b":(?:" + BLANK + b"|$)", line[end:])
                or (re.search(b"(?:^|" + BLANK + b")- $", before)
                    and re.match(b" -(?:" + BLANK + b"|$)", line[end:]))
                or (all(bracket) and bracket[0].group(1) + bracket[1].group(1) in (b"[]", b"<>"))
                or BARE_VALUE.search(before)
                or (after == b'"' and (QUOTED_VALUE.search(before) or JSON_VALUE.search(before)))):
            return LEVELS[word.lower()]
    return None


def text_stats(data):
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    try:
        chars = len(data.decode("utf-8"))
    except UnicodeDecodeError:
        chars = None
    body = data.split(b"\n")
    if body and body[-1] == b"":
        body.pop()
    blank = 0
    longest = 0
    levels = collections.Counter()
    for line in body:
        if line.strip(SPACE) == b"":
            blank += 1
        longest = max(longest, len(line[:-1] if line.endswith(b"\r") else line))
        level = level_of(line)
        if level:
            levels[level] += 1
    return {"lines": lines, "words": len(data.split()), "chars": chars, "blank_lines": blank,
            "max_line_bytes": longest, "log_levels": dict(levels)}


def number(value):
    if INT_RE.fullmatch(value) and -2**63 <= int(value) < 2**63:
        return int(value)
    if FLOAT_RE.fullmatch(value) and math.isfinite(float(value)):
        return float(value)
    return None


DATETIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})"
                      r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?")
EPOCH = datetime.date(1970, 1, 1).toordinal()


def instant(value):
    """README "csv": (seconds since 1970 UTC, nanoseconds, zoned) of an ISO 8601 date or
    date-time in one of the accepted forms, else None. Validated by Python's datetime."""
    m = DATETIME.fullmatch(value)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0),
                                   int(minute or 0), int(second or 0))
    except ValueError:
        return None
    offset = 0
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[-2:]) if len(zone) > 3 else 0
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 3600 + minutes * 60) * (1 if zone[0] == "+" else -1)
    days = moment.toordinal() - EPOCH
    seconds = days * 86400 + moment.hour * 3600 + moment.minute * 60 + moment.second - offset
    return seconds, int((fraction or "").ljust(9, "0") or 0), zone is not None


def iso(moment, zoned):
    seconds, nanos = moment
    day = datetime.date.fromordinal(seconds // 86400 + EPOCH)
    of_day = seconds % 86400
    text = "%sT%02d:%02d:%02d" % (day.isoformat(), of_day // 3600, of_day // 60 % 60, of_day % 60)
    if nanos:
        text += "." + ("%09d" % nanos).rstrip("0")
    return text + ("Z" if zoned else "")


def csv_stats(data, user_column=None):
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    first = next((l for l in re.split(rb"[\r\n]", data) if l), b"")
    counts = {d: first.count(d.encode()) for d in [",", ";", "\t", "|"]}
    delimiter = ","
    for d in [",", ";", "\t", "|"]:
        if counts[d] > counts[delimiter]:
            delimiter = d
    text = data.decode("utf-8")
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    if not records:
        return {"delimiter": delimiter, "rows": 0, "columns": [], "malformed_rows": 0,
                "user_column": None, "distinct_users": None, "top_users": []}
    header, rows = records[0], records[1:]
    columns = []
    for i, name in enumerate(header):
        values = [r[i] for r in rows if i < len(r) and r[i] != ""]
        numbers = [number(v) for v in values]
        if not values:
            kind, low, high, mean = "empty", None, None, None
        elif (all(n is None for n in numbers)
              and all(instant(v) is not None for v in values)):
            moments = [instant(v) for v in values]
            zoned = any(z for _, _, z in moments)
            kind, mean = "datetime", None
            low = iso(min((s, n) for s, n, _ in moments), zoned)
            high = iso(max((s, n) for s, n, _ in moments), zoned)
        elif any(n is None for n in numbers):
            as_bytes = [v.encode() for v in values]
            kind, mean = "string", None
            low, high = min(as_bytes).decode(), max(as_bytes).decode()
        else:
            kind = "float" if any(isinstance(n, float) for n in numbers) else "integer"
            floats = [float(n) for n in numbers]
            low, high = (min(numbers), max(numbers)) if kind == "integer" else (min(floats), max(floats))
            mean = math.fsum(floats) / len(floats)
        columns.append({"name": name, "type": kind, "non_empty": len(values),
                        "distinct": len(set(values)), "min": low, "max": high, "mean": mean})
    if user_column is not None:
        index = header.index(user_column) if user_column in header else None
    else:
        index = next((i for i, h in enumerate(header)
                      if re.sub(r"[\W_]", "", h).lower() in USER_NAMES), None)
    users = collections.Counter()
    if index is not None:
        for r in rows:
            if index < len(r) and r[index].strip(" \t\n\r\x0b\x0c"):
                users[r[index].strip(" \t\n\r\x0b\x0c")] += 1
    ranked = sorted(users.items(), key=lambda kv: (-kv[1], kv[0].encode()))
    return {"delimiter": delimiter, "rows": len(rows), "columns": columns,
            "malformed_rows": sum(1 for r in rows if len(r) != len(header)),
            "user_column": None if index is None else header[index],
            "distinct_users": None if index is None else len(users),
            "top_users": [{"user": u, "rows": n} for u, n in ranked]}


def gen_text(rng):
    pieces = [b"\n", b"\r\n", b" ", b"\t", b"\x0b\x0c", b"INFO", b"error", b"WARNING ", b"Error",
              b"ERROR_X", "é€😀".encode(), b"\0", b"word", b"x" * 300, b"[debug]", b"\n\n",
              b"\n2026-11-23T08:00:00.123Z ", b"\nNov 23 08:00:00 ", b"[main] ", b"- ", b"| ",
              b":", b"level=", b'"level": "', b'"', b"< warn >", b"[ INFO  ]", b"pkg-error:",
              b"\nE1123 ", b"\n[2026-11-23 08:00:00] ", b"crit", b"Panic", b"lvl=", b"]"]
    out = []
    for _ in range(rng.randint(2000, 6000)):
        out.append(rng.choice(pieces))
        if rng.random() < 0.3:
            out.append(("%x" % rng.getrandbits(32)).encode())
    return b"".join(out)


def gen_csv(rng):
    users = [" alice", "bob ", "carol", "dave", "Erin", "frank", "ünïcode"]
    fields = [lambda: "", lambda: str(rng.randint(-999, 999)),
              lambda: "%.3f" % rng.uniform(-50, 50), lambda: rng.choice(["x", "yy", "zzz"]),
              lambda: '"quoted, with\nnewline"', lambda: '"say ""hi"""', lambda: 'a"b',
              lambda: '"\r\n"', lambda: "1e3", lambda: "+7", lambda: ".5"]
    out = ["user_id,amount,label,extra\r\n" if rng.random() < 0.5 else "user_id,amount,label,extra\n"]
    for _ in range(rng.randint(500, 2000)):
        n = rng.choice([4, 4, 4, 4, 3, 5])
        row = [rng.choice(users)] + [rng.choice(fields)() for _ in range(n - 1)]
        out.append(",".join(row) + rng.choice(["\n", "\r\n", "\n\n", "\n"]))
    return "".join(out).encode()


def make_hostile_zip(case, dst):
    """Zips no honest tool makes, built by writing a plain zip and patching its bytes."""
    if case == "many":
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as archive:
            for i in range(200_000):
                archive.writestr(f"e{i}", b"")
        return
    if case == "overlap":
        # One local entry of 1 MiB of zeros; 300 central records (distinct names) point at it.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("a", bytes(1 << 20))
        data = buf.getvalue()
        cd_offset = struct.unpack("<I", data[-6:-2])[0]
        record = data[cd_offset:len(data) - 22]
        name_len = struct.unpack("<H", record[28:30])[0]
        records = b""
        for i in range(300):
            name = f"m{i:03d}".encode()
            patched = record[:28] + struct.pack("<H", len(name)) + record[30:46] + name + record[46 + name_len:]
            records += patched
        end = data[len(data) - 22:]
        end = end[:8] + struct.pack("<HHII", 300, 300, len(records), cd_offset) + end[20:]
        open(dst, "wb").write(data[:cd_offset] + records + end)
        return
    if case == "lying":
        # A member of 2 MiB of text that declares 100 bytes, in its local and central headers.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("small.log", b"line of text\n" * ((2 << 20) // 13))
        data = bytearray(buf.getvalue())
        data[22:26] = struct.pack("<I", 100)
        cd_offset = struct.unpack("<I", bytes(data[-6:-2]))[0]
        data[cd_offset + 24:cd_offset + 28] = struct.pack("<I", 100)
        open(dst, "wb").write(bytes(data))
        return
    if case in ("bad-crc", "bad-data", "short", "big-bad-crc"):
        # One deflated member (small, or past the 4 MiB inflated whole) with a wrong CRC-32,
        # garbled compressed bytes, or a declared size larger than what it holds.
        size = (6 << 20) if case == "big-bad-crc" else (256 << 10)
        rng = random.Random(5)
        text = b"".join(b"%08x line of text\n" % rng.getrandbits(32) for _ in range(size // 23))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("member.log", text)
        data = bytearray(buf.getvalue())
        cd_offset = struct.unpack("<I", bytes(data[-6:-2]))[0]
        if case in ("bad-crc", "big-bad-crc"):
            crc = struct.unpack("<I", bytes(data[14:18]))[0] ^ 0x5A5A5A5A
            data[14:18] = struct.pack("<I", crc)
            data[cd_offset + 16:cd_offset + 20] = struct.pack("<I", crc)
        elif case == "bad-data":
            start = 30 + len("member.log")
            data[start + 100:start + 400] = bytes([0xFF]) * 300
        else:
            declared = len(text) + 1000
            data[22:26] = struct.pack("<I", declared)
            data[cd_offset + 24:cd_offset + 28] = struct.pack("<I", declared)
        open(dst, "wb").write(bytes(data))
        return
    if case == "nul-name":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("aXb.txt", b"one two\n")
        data = buf.getvalue().replace(b"aXb.txt", b"a\x00b.txt")
        open(dst, "wb").write(data)
        return
    sys.exit(f"unknown hostile zip {case}")


def main():
    command, path = sys.argv[1], sys.argv[2]
    if command == "text":
        print(json.dumps(text_stats(open(path, "rb").read())))
    elif command == "csv":
        user = sys.argv[3] if len(sys.argv) > 3 else None
        print(json.dumps(csv_stats(open(path, "rb").read(), user)))
    elif command == "sha256":
        print(hashlib.sha256(open(path, "rb").read()).hexdigest())
    elif command == "gen-text":
        open(path, "wb").write(gen_text(random.Random(int(sys.argv[3]))))
    elif command == "gen-csv":
        open(path, "wb").write(gen_csv(random.Random(int(sys.argv[3]))))
    elif command == "tar":
        members = json.load(open(sys.argv[4]))
        with tarfile.open(sys.argv[3], path) as archive:
            for member in members:
                info = tarfile.TarInfo(member["name"])
                if "dir" in member:
                    info.type = tarfile.DIRTYPE
                    archive.addfile(info)
                elif "symlink" in member:
                    info.type = tarfile.SYMTYPE
                    info.linkname = member["symlink"]
                    archive.addfile(info)
                else:
                    data = open(member["file"], "rb").read() if "file" in member else member["data"].encode()
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    elif command == "zip":
        members = json.load(open(sys.argv[3]))
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in members:
                method = zipfile.ZIP_STORED if member.get("stored") else zipfile.ZIP_DEFLATED
                if "dir" in member:
                    archive.writestr(zipfile.ZipInfo(member["name"]), b"")
                elif "symlink" in member:
                    info = zipfile.ZipInfo(member["name"])
                    info.create_system = 3
                    info.external_attr = (0o120777 << 16)
                    archive.writestr(info, member["symlink"])
                else:
                    if "file" in member:
                        data = open(member["file"], "rb").read()
                    elif "zeros" in member:
                        data = bytes(member["zeros"])
                    else:
                        data = member["data"].encode()
                    archive.writestr(member["name"], data, compress_type=method)
    elif command == "zip-hostile":
        make_hostile_zip(path, sys.argv[3])
    elif command == "compress":
        data = open(sys.argv[3], "rb").read()
        if path == "gzip":
            half = len(data) // 2
            packed = gzip.compress(data[:half]) + gzip.compress(data[half:])
        elif path == "xz":
            packed = lzma.compress(data, format=lzma.FORMAT_XZ)
        elif path == "bzip2":
            packed = bz2.compress(data)
        else:
            sys.exit(f"unknown format {path}")
        open(sys.argv[4], "wb").write(packed)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
