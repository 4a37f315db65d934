#!/usr/bin/env python3
"""Deterministic benchmark data: a log file and a CSV with a user column.

usage: gen.py log PATH SIZE_BYTES | gen.py csv PATH SIZE_BYTES | gen.py zip PATH SIZE_BYTES
(zip: 200 CSV members, SIZE_BYTES unpacked in all, deflated at level 6)
The same arguments always give the same bytes (seeded generator).
"""
import random
import sys

LEVELS = ["INFO"] * 70 + ["DEBUG"] * 15 + ["WARN"] * 8 + ["ERROR"] * 5 + ["FATAL"] * 2
WORDS = ("request handled user session cache miss hit upstream timeout retry "
         "connection opened closed payload bytes latency queue worker job "
         "scheduled finished failed größe café naïve").split()


def log_block(rng, lines):
    out = []
    for i in range(lines):
        ts = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
        msg = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14)))
        out.append(f"{ts} {rng.choice(LEVELS):5} [worker-{rng.randint(1, 16)}] {msg} id={rng.getrandbits(40):x}\n")
        if rng.random() < 0.01:
            out.append("\n")
    return "".join(out).encode()


def write_log(path, size):
    rng = random.Random(42)
    block = log_block(rng, 60_000)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = block[: size - written]
            f.write(chunk)
            written += len(chunk)


def write_csv(path, size, seed=7):
    rng = random.Random(seed)
    users = [f"user{n:05d}" for n in range(20_000)]
    countries = ["DE", "FR", "US", "JP", "BR", "IN", "NG", "CA"]
    statuses = ["paid", "refunded", "pending", "failed"]
    with open(path, "w", newline="") as f:
        f.write("order_id,user_id,amount,quantity,country,status,note\n")
        written = 0
        order = 0
        rows = []
        while written < size:
            order += 1
            note = '"gift, wrapped\nfragile"' if rng.random() < 0.01 else rng.choice(["", "express", "n/a"])
            row = (f"{order},{rng.choice(users)},{rng.randint(1, 99999) / 100:.2f},"
                   f"{rng.randint(1, 9)},{rng.choice(countries)},{rng.choice(statuses)},{note}\n")
            rows.append(row)
            written += len(row)
            if len(rows) >= 10_000:
                f.write("".join(rows))
                rows = []
        f.write("".join(rows))


def write_zip(path, size, members=200):
    import os
    import zipfile
    part = path + ".member"
    with zipfile.ZipFile(path + ".part", "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for i in range(members):
            write_csv(part, size // members, seed=100 + i)
            archive.write(part, f"orders/part-{i:03d}.csv")
    os.remove(part)
    os.rename(path + ".part", path)


if __name__ == "__main__":
    kind, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"log": write_log, "csv": write_csv, "zip": write_zip}[kind](path, size)
