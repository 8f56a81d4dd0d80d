"""Tabulates the OCR results of launch/evaluate.py --ocr runs into docs/ocr/results.{md,csv}.

    python docs/ocr/tabulate.py samples=/tmp/ocr/samples dibco_2013=/tmp/ocr/dibco_2013+/tmp/ocr/unet_2013

Each argument is label=<evaluate --out folder>[+<another run on the same pages>...]. Set figures are CER/WER from edit counts summed
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
        label, folders = arg.split("=", 1)
        # label=a+b: runs of other binarizers on the same pages; the first run's readings of the
        # input and ground truth are kept.
        ocr, per_page = None, {}
        for folder in folders.split("+"):
            run = json.loads((pathlib.Path(folder) / "summary.json").read_text())["ocr"]
            ocr = ocr or run
            for page, sources in run["per_page"].items():
                for source, counts in sources.items():
                    per_page.setdefault(page, {}).setdefault(source, counts)
        groups: dict[str, dict[str, dict[str, int]]] = {}
        for page, sources in per_page.items():
            for group in ("all", kind(label, page)):
                for source, c in sources.items():
                    if not c["ref_chars"]:  # an empty reference: no error rate (as ocr.OcrScorer.summary)
                        continue
                    total = groups.setdefault(group, {}).setdefault(source, dict.fromkeys(
                        ("char_edits", "ref_chars", "word_edits", "ref_words", "pages"), 0))
                    for k in ("char_edits", "ref_chars", "word_edits", "ref_words"):
                        total[k] += int(c[k])
                    total["pages"] += 1
        for page, sources in per_page.items():  # sets whose references are all empty still get a row
            groups.setdefault(kind(label, page), {})
            groups.setdefault("all", {})
        for group, sources in groups.items():
            if not sources:
                rows.append({"set": label, "pages": group, "reference": ocr["reference"], "source": "(none)",
                             "n_pages": 0, "ref_chars": 0, "cer": float("nan"), "wer": float("nan"),
                             "tesseract": ocr["tesseract"], "psm": ocr["psm"], "oem": ocr["oem"], "lang": ocr["lang"]})
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
    sources = list(dict.fromkeys(r["source"] for r in rows if r["source"] != "(none)"))
    lines = ["| set | pages | reference | " + " | ".join(sources) + " |", "|---|---|---|" + "---:|" * len(sources)]
    for key in dict.fromkeys((r["set"], r["pages"]) for r in rows):
        cells = {r["source"]: r for r in rows if (r["set"], r["pages"]) == key}
        first = next(iter(cells.values()))
        lines.append(f"| {key[0]} | {key[1]} ({first['n_pages']}, {first['ref_chars']} chars) | {first['reference']} | "
                     + " | ".join(f"{cells[s]['cer']:.1f}" if s in cells else "" for s in sources) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
