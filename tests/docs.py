"""Documents for the document tests, and the text SPEC §4.3 says they hold, computed here from
the paragraphs written (never from file-processor's output).

Usage (with python-docx and odfpy installed):
  docs.py docx|odt SEED PATH   writes PATH, prints the text's expected `text` section as JSON
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402  (its text_stats: the independent text counts)

WORDS = ["alpha", "beta", "ERROR", "WARN", "info", "Café", "naïve", "日本語", "x=1", "&amp;", "<tag>"]


def paragraphs(seed):
    rng = random.Random(seed)
    out = []
    for _ in range(rng.randint(1, 60)):
        kind = rng.random()
        if kind < 0.1:
            out.append("")
        elif kind < 0.2:
            out.append("  ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))))
        elif kind < 0.3:
            out.append("\t".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))))
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 20))))
    return out


def write_docx(paras, path):
    import docx
    document = docx.Document()
    for text in paras:
        document.add_paragraph(text)
    document.save(path)


def write_odt(paras, path):
    from odf import teletype
    from odf.opendocument import OpenDocumentText
    from odf.text import P
    document = OpenDocumentText()
    for text in paras:
        p = P()
        teletype.addTextToElement(p, text)
        document.text.addElement(p)
    document.save(path)


def main():
    fmt, seed, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    paras = paragraphs(seed)
    {"docx": write_docx, "odt": write_odt}[fmt](paras, path)
    text = "".join(p + "\n" for p in paras).encode()
    print(json.dumps(reference.text_stats(text)))


if __name__ == "__main__":
    main()
