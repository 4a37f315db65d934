"""Spreadsheet and PDF figures (issue 13), release build, ratios measured in the same run.

Usage: python3 bench/documents.py BIN OUT_DIR DATA_DIR   (needs openpyxl and reportlab: run by
`make bench-documents`, which makes a venv under bench/out/py, and pdftotext)

- a 500,000-row x 6-column .xlsx: file-processor against openpyxl (read-only mode) iterating
  the rows and computing the same column statistics (tests/sheets.py's column_stats);
- a 200-page PDF: file-processor against `pdftotext FILE - | wc -w`.
Each side runs RUNS times, alternating; the figure is the ratio of the means. Peak RSS of
file-processor (and of its parser process) from /usr/bin/time -v.
"""
import datetime
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

RUNS = int(os.environ.get("RUNS", "3"))


def make_xlsx(path):
    import openpyxl
    rng = random.Random(1)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("orders")
    ws.append(["user_id", "amount", "quantity", "paid", "when", "country"])
    start = datetime.datetime(2024, 1, 1)
    for i in range(500_000):
        ws.append([
            "user%d" % rng.randrange(20_000),
            round(rng.uniform(1, 1000), 2),
            rng.randrange(1, 10),
            rng.random() < 0.5,
            start + datetime.timedelta(seconds=rng.randrange(10**7)),
            rng.choice(["FR", "DE", "US", "JP", "BR"]),
        ])
    wb.save(path)


def make_pdf(path):
    import pdfs
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            pdfs.text_pdf(7, 200, path)
        finally:
            sys.stdout = stdout


OPENPYXL = r"""
import sys, openpyxl
sys.path.insert(0, sys.argv[2])
from sheets import column_stats
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
for ws in wb.worksheets:
    rows = ws.iter_rows(values_only=True)
    header = next(rows)
    columns = [[] for _ in header]
    users = {}
    for row in rows:
        for i, value in enumerate(row[:len(header)]):
            columns[i].append(value)
        if row[0] is not None:
            users[str(row[0]).strip()] = users.get(str(row[0]).strip(), 0) + 1
    stats = [column_stats(name, values) for name, values in zip(header, columns)]
    top = sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
print(len(stats), len(top))
"""


def timed(command, prepare=None):
    if prepare:
        prepare()
    start = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def peak_mib(command, prepare):
    prepare()
    done = subprocess.run(["/usr/bin/time", "-v"] + command, capture_output=True, text=True)
    for line in done.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[1]) / 1024
    return 0.0


def compare(label, ours, reference, prepare):
    mine, theirs = [], []
    for _ in range(RUNS):
        theirs.append(timed(reference))
        mine.append(timed(ours, prepare))
    ours_mean, ref_mean = statistics.mean(mine), statistics.mean(theirs)
    print("%-6s reference %7.3f s (%s)" % (label, ref_mean, " ".join(reference)[:90]))
    print("%-6s ours      %7.3f s -> %5.1fx faster, peak RSS %.1f MiB" % (
        "", ours_mean, ref_mean / ours_mean, peak_mib(ours, prepare)))


def main():
    binary, out, data = sys.argv[1], sys.argv[2], sys.argv[3]
    python = sys.executable
    os.makedirs(data, exist_ok=True)
    work = os.path.join(out, "documents")
    xlsx = os.path.join(data, "orders-500k.xlsx")
    pdf = os.path.join(data, "text-200.pdf")
    if not os.path.exists(xlsx):
        make_xlsx(xlsx + ".part.xlsx")
        os.rename(xlsx + ".part.xlsx", xlsx)
    if not os.path.exists(pdf):
        make_pdf(pdf + ".part.pdf")
        os.rename(pdf + ".part.pdf", pdf)

    def given(source):
        name = os.path.basename(source)

        def prepare():
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            os.link(source, os.path.join(work, name))
        return prepare, [binary, "--input", os.path.join(work, name), "--dir",
                         os.path.join(work, "wd"), "--json"]

    prepare, ours = given(xlsx)
    tests = os.path.join(os.path.dirname(__file__), "..", "tests")
    compare("xlsx", ours, [python, "-c", OPENPYXL, xlsx, tests], prepare)
    prepare, ours = given(pdf)
    compare("pdf", ours, ["sh", "-c", "pdftotext '%s' - | wc -w" % pdf], prepare)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
