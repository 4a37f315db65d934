"""PDFs for the document tests: written by reportlab from seeded text (the expected counts
computed here from that text), encrypted ones, and hostile ones built object by object.

Usage (with reportlab installed for the first two):
  pdfs.py text SEED PAGES PATH     prints {"pages", "words"} of the text drawn
  pdfs.py encrypted user|owner PATH
  pdfs.py hostile inflate|cycle|xref-loop|deep PATH
"""
import json
import random
import sys
import zlib

WORDS = ["alpha", "beta", "gamma", "delta", "ERROR", "warning", "report", "value", "42", "x-ray"]


def text_pdf(seed, pages, path):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    rng = random.Random(seed)
    c = canvas.Canvas(path, pagesize=A4)
    words = 0
    for _ in range(pages):
        y = 800
        for _ in range(rng.randint(5, 45)):
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
            words += len(line.split())
            c.drawString(50, y, line)
            y -= 17
        c.showPage()
    c.save()
    print(json.dumps({"pages": pages, "words": words}))


def encrypted_pdf(which, path):
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas
    user = "secret" if which == "user" else ""
    encrypt = pdfencrypt.StandardEncryption(user, ownerPassword="owner", strength=128)
    c = canvas.Canvas(path, encrypt=encrypt)
    c.drawString(50, 800, "four words of text")
    c.showPage()
    c.save()


def build(objects, path, trailer_extra=b"", xref_prev=None):
    """A PDF of `objects` (bytes bodies, numbered from 1) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    prev = b"" if xref_prev is None else b" /Prev %d" % (xref if xref_prev == "self" else xref_prev)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, prev, trailer_extra, xref)
    open(path, "wb").write(bytes(out))


def stream(data, filters=b""):
    return b"<< /Length %d%s >>\nstream\n" % (len(data), filters) + data + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def hostile(case, path):
    if case == "inflate":
        # One page whose content stream inflates to 1 GiB of spaces.
        packed = zlib.compress(b" " * (1 << 30), 9)
        build([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            stream(packed, b" /Filter /FlateDecode"),
            FONT,
        ], path)
    elif case == "cycle":
        # The page tree's only kid is the tree itself.
        build([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
        ], path)
    elif case == "xref-loop":
        # The cross-reference table names itself as the previous one.
        build([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            stream(b"BT /F1 12 Tf 50 800 Td (one two) Tj ET"),
            FONT,
        ], path, xref_prev="self")
    elif case == "deep":
        # An array nested 100,000 deep.
        build([
            b"<< /Type /Catalog /Pages 2 0 R /Deep " + b"[" * 100_000 + b"]" * 100_000 + b" >>",
            b"<< /Type /Pages /Kids [] /Count 0 >>",
        ], path)
    else:
        sys.exit("unknown hostile PDF " + case)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "text":
        text_pdf(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif command == "encrypted":
        encrypted_pdf(sys.argv[2], sys.argv[3])
    elif command == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + command)
