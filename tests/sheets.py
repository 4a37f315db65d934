"""Workbooks for the spreadsheet tests, and what SPEC §4.2 says their report holds, computed
here from the values written (never from file-processor's output).

Usage (with openpyxl, xlwt and odfpy installed):
  sheets.py xlsx|xls|ods SEED PATH
                               writes PATH (openpyxl, xlwt, odfpy), prints the expected
                               `sheets` as JSON
  sheets.py big-strings PATH   an .xlsx whose sharedStrings.xml unpacks to more than 64 MiB
  sheets.py ods-grid ROWS PATH an .ods that claims ROWS x 16,384 cells in a few hundred bytes
"""
import datetime
import json
import random
import sys
import zipfile

import openpyxl


def text_of(value):
    """The text distinct counts and text extremes see: numbers in their shortest form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def family(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, datetime.datetime):
        return "datetime"
    return "string"


def column_stats(name, values):
    values = [v for v in values if v is not None and v != ""]
    out = {"name": name, "non_empty": len(values)}
    if not values:
        out.update(type="empty", distinct=0, min=None, max=None, mean=None)
        return out
    families = {family(v) for v in values}
    texts = [text_of(v) for v in values]
    out["distinct"] = len(set(texts))
    if families == {"number"}:
        whole = all(isinstance(v, int) or (v.is_integer() and abs(v) <= 2**53) for v in values)
        out["type"] = "integer" if whole else "float"
        out["min"], out["max"] = min(values), max(values)
        out["mean"] = sum(values) / len(values)
    elif families == {"bool"}:
        out.update(type="bool", min=min(values), max=max(values), mean=None)
    elif families == {"datetime"}:
        out.update(type="datetime", min=min(texts), max=max(texts), mean=None)
    else:
        ordered = sorted(texts, key=lambda t: t.encode())
        out.update(type="string", min=ordered[0], max=ordered[-1], mean=None)
    return out


def make(seed, path, fmt):
    rng = random.Random(seed)
    sheets = []  # (name, {(row, column): value}), rows and columns from 0
    expected = []
    for s in range(rng.randint(1, 3)):
        name = "Sheet %d" % (s + 1)
        cells = {}
        top, left = rng.randint(0, 3), rng.randint(0, 2)  # blank rows and columns before
        header = ["user_id", "amount", "qty", "paid", "when", "note", "mixed", "sparse", "blank"]
        users = [" u%d " % i if i % 7 == 0 else "u%d" % i for i in range(rng.randint(3, 40))]
        rows = []
        for r in range(rng.randint(0, 300)):
            rows.append([
                rng.choice(users) if rng.random() < 0.95 else None,
                rng.choice([rng.randint(-500, 500), round(rng.uniform(-1000, 1000), 2)]),
                rng.randint(0, 10**12),
                rng.random() < 0.5,
                datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 10**8)),
                rng.choice(["alpha", "beta", "Gamma", "été", "#N/A"]),
                rng.choice([rng.randint(0, 9), "x%d" % rng.randint(0, 9), 2.5]),
                rng.randint(1, 3) if rng.random() < 0.2 else None,
                None,
            ])
        for c, title in enumerate(header):
            cells[(top, left + c)] = title
        expected_rows = []
        for r, row in enumerate(rows):
            if rng.random() < 0.05 or all(v is None for v in row):
                continue  # a blank row: not counted
            expected_rows.append(row)
            for c, value in enumerate(row):
                if value is not None:
                    cells[(top + 1 + r, left + c)] = value
        sheets.append((name, cells))
        columns = [column_stats(h, [row[i] for row in expected_rows]) for i, h in enumerate(header)]
        per_user = {}
        for row in expected_rows:
            user = row[0]
            if user is None or not user.strip():
                continue
            per_user[user.strip()] = per_user.get(user.strip(), 0) + 1
        ranked = sorted(per_user.items(), key=lambda kv: (-kv[1], kv[0].encode()))
        expected.append({
            "name": name,
            "rows": len(expected_rows),
            "columns": columns,
            "user_column": "user_id",
            "distinct_users": len(per_user),
            "top_users": [{"user": u, "rows": n} for u, n in ranked[:10]],
        })
    if fmt == "xlsx" and seed % 2 == 0:
        write_xlsx_streamed(sheets, path)
    else:
        {"xlsx": write_xlsx, "xls": write_xls, "ods": write_ods}[fmt](sheets, path)
    print(json.dumps(expected))


def write_xlsx(sheets, path):
    wb = openpyxl.Workbook()
    for s, (name, cells) in enumerate(sheets):
        ws = wb.active if s == 0 else wb.create_sheet()
        ws.title = name
        for (r, c), value in cells.items():
            ws.cell(row=r + 1, column=c + 1, value=value)
    wb.save(path)


def write_xlsx_streamed(sheets, path):
    """openpyxl's other writer: write-only mode (inline strings, rows in order), and dates
    counted from 1904."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904
    wb = openpyxl.Workbook(write_only=True)
    wb.epoch = CALENDAR_MAC_1904
    for name, cells in sheets:
        ws = wb.create_sheet(name)
        height = max((r for r, _ in cells), default=-1) + 1
        width = max((c for _, c in cells), default=-1) + 1
        for r in range(height):
            ws.append([cells.get((r, c)) for c in range(width)])
    wb.save(path)


def write_xls(sheets, path):
    import xlwt
    wb = xlwt.Workbook()
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    for name, cells in sheets:
        ws = wb.add_sheet(name)
        for (r, c), value in cells.items():
            if isinstance(value, datetime.datetime):
                ws.write(r, c, value, date_style)
            else:
                ws.write(r, c, value)
    wb.save(path)


def write_ods(sheets, path):
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P
    doc = OpenDocumentSpreadsheet()
    for name, cells in sheets:
        table = Table(name=name)
        height = max((r for r, _ in cells), default=-1) + 1
        width = max((c for _, c in cells), default=-1) + 1
        for r in range(height):
            tr = TableRow()
            for c in range(width):
                value = cells.get((r, c))
                if value is None:
                    cell = TableCell()
                elif isinstance(value, bool):
                    cell = TableCell(valuetype="boolean", booleanvalue="true" if value else "false")
                    cell.addElement(P(text="TRUE" if value else "FALSE"))
                elif isinstance(value, (int, float)):
                    cell = TableCell(valuetype="float", value=repr(value))
                    cell.addElement(P(text=repr(value)))
                elif isinstance(value, datetime.datetime):
                    cell = TableCell(valuetype="date", datevalue=value.isoformat())
                    cell.addElement(P(text=value.isoformat()))
                else:
                    cell = TableCell(valuetype="string")
                    cell.addElement(P(text=value))
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
    doc.save(path)


def big_strings(path):
    wb = openpyxl.Workbook()
    wb.active["A1"] = "name"
    wb.active["A2"] = "one"
    wb.save(path)
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    count = 3_500_000
    body = "".join("<si><t>s%07d</t></si>" % i for i in range(count))
    parts["xl/sharedStrings.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
        'spreadsheetml/2006/main" count="%d" uniqueCount="%d">%s</sst>' % (count, count, body)
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


def ods_grid(rows, path):
    """An .ods of one sheet whose single row element repeats a cell 16,384 times and itself
    `rows` times: a few hundred bytes that claim rows x 16,384 cells."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Grid">'
        '<table:table-row table:number-rows-repeated="%d"><table:table-cell '
        'table:number-columns-repeated="16384" office:value-type="float" office:value="1">'
        '<text:p>1</text:p></table:table-cell></table:table-row></table:table>'
        '</office:spreadsheet></office:body></office:document-content>' % rows
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        '</manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    if sys.argv[1] in ("xlsx", "xls", "ods"):
        make(int(sys.argv[2]), sys.argv[3], sys.argv[1])
    elif sys.argv[1] == "ods-grid":
        ods_grid(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "big-strings":
        big_strings(sys.argv[2])
    else:
        sys.exit("unknown command " + sys.argv[1])
