"""parsel's answers for tests/parsel_diff.rs.

Reads one JSON object on stdin:
    {"root": DIR, "pages": [REL_PATH, ...], "css": [QUERY, ...], "xpath": [QUERY, ...]}
and writes one JSON object on stdout:
    {"versions": {"parsel": ..., "lxml": ..., "cssselect": ...},
     "pages": {REL_PATH: {"css": [RESULT, ...], "xpath": [RESULT, ...]}}}
where each RESULT is {"ok": [str, ...]} (parsel's SelectorList.getall()) or
{"error": "ExceptionType: message"}, in the order of the queries.

Each page is read as UTF-8 text and given to parsel as `Selector(text=...)`, which is
what Scrapy does with an HtmlResponse's decoded body; the Rust side parses the same
text with `Html::parse`.
"""

import json
import os
import sys

import cssselect
import lxml
import parsel
from parsel import Selector


def run(queries, method):
    out = []
    for q in queries:
        try:
            out.append({"ok": method(q).getall()})
        except Exception as e:  # any error is an answer to compare, not a crash
            out.append({"error": f"{type(e).__name__}: {e}"})
    return out


def main():
    spec = json.load(sys.stdin)
    pages = {}
    for rel in spec["pages"]:
        with open(os.path.join(spec["root"], rel), encoding="utf-8") as f:
            sel = Selector(text=f.read())
        pages[rel] = {
            "css": run(spec["css"], sel.css),
            "xpath": run(spec["xpath"], sel.xpath),
        }
    json.dump(
        {
            "versions": {
                "parsel": parsel.__version__,
                "lxml": lxml.__version__,
                "cssselect": getattr(cssselect, "__version__", "?"),
            },
            "pages": pages,
        },
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
