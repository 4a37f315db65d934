"""Hostile workbooks (issue 13): outcome, time and peak memory of each, release build.

Usage: python3 bench/workbooks.py BIN OUT_DIR   (`make bench-workbooks`; Python's standard
library only: every workbook is written part by part with zipfile)

Each case runs `BIN --input NAME --json` once under /usr/bin/time -v; the table gives the
report's status (and error kind and message), the wall time and the peak RSS.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
import zlib

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def skeleton(sheets=1, same_part=False):
    """The parts every workbook needs: `sheets` sheets, each its own part unless `same_part`."""
    listed = "".join(
        '<sheet name="S%d" sheetId="%d" r:id="rId%d"/>' % (i, i + 1, 0 if same_part else i)
        for i in range(sheets)
    )
    links = "".join(
        '<Relationship Id="rId%d" Type="%s/worksheet" Target="worksheets/sheet%d.xml"/>'
        % (i, REL, i)
        for i in range(1 if same_part else sheets)
    )
    return {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "_rels/.rels": '<Relationships xmlns="%s"><Relationship Id="r" Type="%s/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>' % (PKG, REL),
        "xl/workbook.xml": '<workbook xmlns="%s" xmlns:r="%s"><sheets>%s</sheets></workbook>'
        % (MAIN, REL, listed),
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="%s">%s'
        '<Relationship Id="rS" Type="%s/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>" % (PKG, links, REL),
    }


def sheet(rows, dimension="A1"):
    return '<worksheet xmlns="%s"><dimension ref="%s"/><sheetData>%s</sheetData></worksheet>' % (
        MAIN, dimension, rows)


def write(path, parts):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in parts.items():
            z.writestr(name, body)


def far_cells(path):
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', "A1:XFD1048576")
    write(path, parts)


def big_shared_strings(path):
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>')
    parts["xl/sharedStrings.xml"] = '<sst xmlns="%s">%s</sst>' % (
        MAIN, "".join("<si><t>s%07d</t></si>" % i for i in range(3_500_000)))
    write(path, parts)


def huge_cell(path):
    """One inline string of 200 MB of base64 (it does not deflate 1,000:1)."""
    text = base64.b64encode(os.urandom(150_000_000)).decode()
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>%s</t></is></c></row>' % text)
    write(path, parts)


def laughs(path):
    """A billion laughs: nested entities in the shared strings' DOCTYPE."""
    entities = '<!ENTITY lol "lol">' + "".join(
        '<!ENTITY lol%d "%s">' % (i, ("&lol%s;" % ("" if i == 1 else i - 1)) * 10)
        for i in range(1, 10))
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        '<row r="2"><c r="A2" t="s"><v>0</v></c></row>')
    parts["xl/sharedStrings.xml"] = (
        '<?xml version="1.0"?><!DOCTYPE sst [%s]><sst xmlns="%s"><si><t>&lol9;</t></si></sst>'
        % (entities, MAIN))
    write(path, parts)


def deflate_bomb(path):
    """A sheet of 1 GiB of spaces inside <sheetData>: about 1 MB packed."""
    parts = skeleton()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in parts.items():
            z.writestr(name, body)
        with z.open("xl/worksheets/sheet0.xml", "w", force_zip64=True) as out:
            out.write(('<worksheet xmlns="%s"><sheetData>' % MAIN).encode())
            chunk = b" " * (1 << 20)
            for _ in range(1024):
                out.write(chunk)
            out.write(b"</sheetData></worksheet>")


def deep(path):
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is>%s<t>x</t>%s</is></c></row>'
        % ("<r>" * 100_000, "</r>" * 100_000))
    write(path, parts)


def many_sheets(path):
    parts = skeleton(sheets=100_000, same_part=True)
    parts["xl/worksheets/sheet0.xml"] = sheet('<row r="1"><c r="A1"><v>1</v></c></row>')
    write(path, parts)


def past_xfd(path):
    parts = skeleton()
    parts["xl/worksheets/sheet0.xml"] = sheet('<row r="1"><c r="XFE1"><v>1</v></c></row>')
    write(path, parts)


def random_bytes(path):
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))


CASES = [
    ("cells at A1 and XFD1048576, dimension A1:XFD1048576", far_cells),
    ("shared strings declaring 84 MB (3.5 million strings)", big_shared_strings),
    ("one cell of 200 MB", huge_cell),
    ("a billion laughs in the shared strings", laughs),
    ("a sheet of 1 GiB of spaces, 1 MB packed", deflate_bomb),
    ("a cell 100,000 elements deep", deep),
    ("100,000 sheets naming one part", many_sheets),
    ("a cell in column XFE", past_xfd),
    ("1 MiB of random bytes named .xlsx", random_bytes),
]


def main():
    binary, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    work = os.path.join(out, "workbooks")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    print("| hostile workbook | packed | outcome | time | peak RSS |")
    print("|---|---|---|---|---|")
    for index, (label, build) in enumerate(CASES):
        name = "case%d.xlsx" % index
        build(os.path.join(work, name))
        packed = os.path.getsize(os.path.join(work, name))
        start = time.monotonic()
        done = subprocess.run(["/usr/bin/time", "-v", binary, "--input", name, "--json"],
                              cwd=work, capture_output=True, text=True)
        elapsed = time.monotonic() - start
        peak = 0
        for line in done.stderr.splitlines():
            if "Maximum resident set size" in line:
                peak = int(line.split(":")[1]) / 1024
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = {"status": "failed",
                      "error": {"kind": "no report", "message": done.stderr[-200:]}}
        if report.get("status") == "failed":
            outcome = "`%s`: %s" % (report["error"]["kind"], report["error"]["message"])
        else:
            sheets = report.get("spreadsheet", {}).get("sheets", [])
            outcome = "completed: %d sheet(s), %s rows" % (
                len(sheets), ", ".join(str(s["rows"]) for s in sheets[:3]))
        print("| %s | %s | %s | %.2f s | %.1f MiB |" % (
            label, "%.1f MB" % (packed / 1e6) if packed >= 1e5 else "%d B" % packed,
            outcome, elapsed, peak))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
