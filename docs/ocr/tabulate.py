"""Tabulates the OCR results of launch/evaluate.py --ocr runs into docs/ocr/results.{md,csv}.

    python docs/ocr/tabulate.py samples=/tmp/ocr/samples dibco_2013=/tmp/ocr/dibco_2013 ...

Each argument is label=<evaluate --out folder>. Set figures are CER/WER from edit counts summed
over pages; DIBCO pages are also split into printed and handwritten by their names (2009 P/H,
2011 and 2013 PR/HW; the H-DIBCO years are all handwritten).
"""

import csv
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent


def kind(label: str, page: str) -> str:
    if not label.startswith("dibco"):
        return "synthetic"
    return "printed" if re.match(r"^(P|PR)\d", page) else "handwritten"


def main(args):
    rows = []
    for arg in args:
        label, folder = arg.split("=", 1)
        summary = json.loads((pathlib.Path(folder) / "summary.json").read_text())
        ocr = summary["ocr"]
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for page, sources in ocr["per_page"].items():
            for group in ("all", kind(label, page)):
                for source, c in sources.items():
                    total = groups.setdefault(group, {}).setdefault(source, dict.fromkeys(
                        ("char_edits", "ref_chars", "word_edits", "ref_words", "pages"), 0))
                    for k in ("char_edits", "ref_chars", "word_edits", "ref_words"):
                        total[k] += int(c[k])
                    total["pages"] += 1
        for group, sources in groups.items():
            if group == "synthetic":
                continue
            for source, t in sources.items():
                rows.append({"set": label, "pages": group, "reference": ocr["reference"], "source": source,
                             "n_pages": t["pages"], "ref_chars": t["ref_chars"],
                             "cer": 100 * t["char_edits"] / t["ref_chars"] if t["ref_chars"] else float("nan"),
                             "wer": 100 * t["word_edits"] / t["ref_words"] if t["ref_words"] else float("nan"),
                             "tesseract": ocr["tesseract"], "psm": ocr["psm"], "oem": ocr["oem"], "lang": ocr["lang"]})
    with open(HERE / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.2f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    sources = list(dict.fromkeys(r["source"] for r in rows))
    lines = ["| set | pages | reference | " + " | ".join(sources) + " |", "|---|---|---|" + "---:|" * len(sources)]
    for key in dict.fromkeys((r["set"], r["pages"]) for r in rows):
        cells = {r["source"]: r for r in rows if (r["set"], r["pages"]) == key}
        first = next(iter(cells.values()))
        lines.append(f"| {key[0]} | {key[1]} ({first['n_pages']}, {first['ref_chars']} chars) | {first['reference']} | "
                     + " | ".join(f"{cells[s]['cer']:.1f}" if s in cells else "" for s in sources) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
