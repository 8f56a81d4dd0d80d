"""Tables of the flatten study: each stretch-arm fold model on its test collections, as trained
(stretched pages) and with --contrast=flatten (each page divided by its own paper, then stretched),
and the fold models trained on flattened pages (configs/ablations/flatten.py's second arm).

Reads the protocol's scores of the arms trained on stretched and on flattened pages
(<protocol_root>/arg=<fold>,data.contrast=<stretch|flatten>,seed=<n>/protocol/pages.csv), of the classic
methods (baselines/*/pages.csv), and launch.evaluate's scores of the same models with
--contrast=flatten at the protocol's overlap 0.5 (<flatten_root>/seed<N>_flatten/<collection>/model/
per_image.csv, <collection> the data folder's name: 2009 ... 2016 for the DIBCO years). Pages the
protocol leaves out (MSI 2015 H12) are left out here too. Writes pages.csv and tables.md beside
this file. Needs only Python.

  python docs/ablations/dibco/flatten/make_tables.py /work/protocol/baseline /work/protocol/flatten
"""

import csv
import math
import pathlib
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "contrast"))  # the contrast study's collection order and helpers
from make_tables import METHODS, ORDER, _collection, _mean, summary_lines, write_study  # noqa: E402

# binjax.protocol.recipe_name of each arm's runs -> its column label
ARMS = {"binjax data.contrast=stretch": "stretch", "binjax data.contrast=flatten": "trained on flattened"}
MODES = ("stretch", "flatten", "trained on flattened")


def read_rows(protocol_root: pathlib.Path, flatten_root: pathlib.Path) -> list[dict]:
    rows, pages = [], set()
    for path in sorted(protocol_root.glob("arg=*,seed=*/protocol/pages.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r["binarizer"] not in ARMS:  # the recipe's runs and other ablations' share the root
                    continue
                rows.append(dict(binarizer="fold model", contrast=ARMS[r["binarizer"]], seed=int(r["seed"]),
                                 collection=r["collection"], page=r["page"], fm=float(r["fm"])))
                pages.add((r["collection"], r["page"]))
    for path in sorted(protocol_root.glob("baselines/*/pages.csv")):
        with path.open() as f:
            rows += [dict(binarizer=r["binarizer"], contrast="none", seed="", collection=r["collection"],
                          page=r["page"], fm=float(r["fm"])) for r in csv.DictReader(f)]
    for path in sorted(flatten_root.glob("seed*_flatten/*/model/per_image.csv")):
        seed, collection = int(path.parts[-4][4:].split("_")[0]), _collection(path.parts[-3])
        with path.open() as f:
            rows += [dict(binarizer="fold model", contrast="flatten", seed=seed, collection=collection,
                          page=r["page"], fm=float(r["fm"]))
                     for r in csv.DictReader(f) if (collection, r["page"]) in pages]
    return rows


def tables(rows: list[dict]) -> str:
    cells: dict[tuple, list[float]] = {}
    by_page: dict[tuple, float] = {}
    for r in rows:
        column = f"seed {r['seed']}, {r['contrast']}" if r["binarizer"] == "fold model" else r["binarizer"]
        cells.setdefault((r["collection"], column), []).append(r["fm"])
        by_page[(r["collection"], r["page"], column)] = r["fm"]
    seeds = sorted({r["seed"] for r in rows if r["binarizer"] == "fold model"})
    model_columns = [col for col in (f"seed {s}, {m}" for s in seeds for m in MODES)
                     if any(k[1] == col for k in cells)]  # an arm not run with a seed has no column
    collections = [c for c in ORDER if any(k[0] == c for k in cells)]
    header = model_columns + list(METHODS)
    lines = ["FM % per collection (mean over pages); each stretch-arm fold model scored on its own test "
             "collections as trained (`stretch`) and with `--contrast=flatten` (inference only), and the "
             "fold models trained on flattened pages (`trained on flattened`). – : not scored.", "",
             "| collection | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    per_column: dict[str, list[tuple[float, str]]] = {}
    for c in collections:
        values = {col: _mean(cells[(c, col)]) if (c, col) in cells else math.nan for col in header}
        for col in header:
            if math.isfinite(values[col]):
                per_column.setdefault(col, []).append((values[col], c))
        lines.append(f"| {c} | " + " | ".join("–" if not math.isfinite(values[col]) else f"{values[col]:.2f}"
                                              for col in header) + " |")
    lines += summary_lines(per_column, header, collections)
    # Per page: how often flatten gains or loses, and by how much, on each collection.
    lines += ["", "Pages where `--contrast=flatten` moves FM by more than 1 (every seed scored both ways):", "",
              "| collection | pages | gains > 1 | losses > 1 | largest gain | largest loss |",
              "|---|---:|---:|---:|---:|---:|"]
    for c in collections:
        deltas = []
        for (coll, page, col), fm in by_page.items():
            if coll == c and col.endswith(", flatten"):
                plain = by_page.get((coll, page, col.replace(", flatten", ", stretch")))
                if plain is not None:
                    deltas.append((fm - plain, page))
        if deltas:
            gains, losses = [d for d in deltas if d[0] > 1], [d for d in deltas if d[0] < -1]
            best, worst = max(deltas), min(deltas)
            lines.append(f"| {c} | {len(deltas)} | {len(gains)} | {len(losses)} | {best[0]:+.2f} ({best[1]}) | "
                         f"{worst[0]:+.2f} ({worst[1]}) |")
    return "\n".join(lines) + "\n"


def main(protocol_root: str, flatten_root: str) -> None:
    rows = read_rows(pathlib.Path(protocol_root), pathlib.Path(flatten_root))
    write_study(HERE, rows, tables(rows))


if __name__ == "__main__":
    main(*sys.argv[1:3])
