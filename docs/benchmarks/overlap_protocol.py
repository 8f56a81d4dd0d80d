"""Overlap 0.125 against the protocol's 0.5 on the protocol's own test collections.

The protocol scores every fold model at overlap 0.5 (binjax.protocol.SCORING). This reads those
scores (<protocol_root>/arg=<fold>,data.contrast=stretch,seed=<n>/protocol/pages.csv: the default
recipe's fold models) and launch.evaluate's scores of the same models at another overlap
(<overlap_root>/seed<n>_<overlap>/<folder>/model/per_image.csv, <folder> the data folder's name:
2009 ... 2016 for the DIBCO years), and prints a markdown table: per collection and seed, the mean
FM at both overlaps and the page that moved most. Needs only Python.

  python docs/benchmarks/overlap_protocol.py /work/protocol/baseline /work/protocol/overlap_lite
"""

import csv
import pathlib
import re
import statistics
import sys

RECIPE = "binjax data.contrast=stretch"   # binjax.protocol.recipe_name of the default recipe's runs


def main(protocol_root: pathlib.Path, overlap_root: pathlib.Path) -> None:
    at_half = {}   # (seed, collection, page) -> FM at 0.5
    for path in protocol_root.glob("arg=*,data.contrast=stretch,seed=*/protocol/pages.csv"):
        with path.open() as f:
            at_half.update({(r["seed"], r["collection"], r["page"]): float(r["fm"])
                            for r in csv.DictReader(f) if r["binarizer"] == RECIPE})
    pairs: dict[tuple, list] = {}
    for path in sorted(overlap_root.glob("seed*_*/*/model/per_image.csv")):
        seed, overlap = re.fullmatch(r"seed(\d+)_([\d.]+)", path.parts[-4]).groups()
        folder = path.parts[-3]
        collection = f"dibco{folder}" if folder.isdigit() else folder
        with path.open() as f:
            for r in csv.DictReader(f):
                key = (seed, collection, r["page"].split("/")[-1])
                if key in at_half:   # pages the protocol leaves out (MSI 2015 H12) stay out
                    pairs.setdefault((overlap, seed, collection), []).append((float(r["fm"]), at_half[key], key[2]))
    print("| collection | seed | pages | FM at 0.5 (protocol) | FM at overlap | change | page that moved most |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for (overlap, seed, collection), rows in sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        new, old = statistics.fmean(r[0] for r in rows), statistics.fmean(r[1] for r in rows)
        most = max(rows, key=lambda r: abs(r[0] - r[1]))
        print(f"| {collection} | {seed} | {len(rows)} | {old:.2f} | {new:.2f} ({overlap}) | {new - old:+.2f} | "
              f"{most[2]} {most[0] - most[1]:+.2f} |")


if __name__ == "__main__":
    main(*map(pathlib.Path, sys.argv[1:3]))
