"""Tables of the contrast study: each protocol fold model on its test collections, plain and stretched.

Reads the protocol's scores of its fold models on plain pages (<protocol_root>/arg=<fold>,seed=<n>/
protocol/pages.csv), of the arm trained on stretched pages (arg=<fold>,data.contrast=stretch,seed=<n>) and of the classic methods (baselines/*/pages.csv),
and launch.evaluate's scores of the same models with --contrast=stretch
(<stretch_root>/seed<N>_stretch/<collection>/model/per_image.csv, where <collection> is the
folder's name: 2009 ... 2016 for the DIBCO years). Pages the protocol leaves out (MSI 2015 H12)
are left out here too. Writes pages.csv and tables.md beside this file.

  python docs/ablations/dibco/contrast/make_tables.py /work/protocol/baseline /work/protocol/contrast
"""

import csv
import math
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
ORDER = ("dibco2009", "dibco2010", "dibco2011", "dibco2012", "dibco2013", "dibco2014", "dibco2016",
         "bickley", "monk_cuper", "msi2015", "nabuco", "phibd")
METHODS = ("otsu", "sauvola", "su")
MODES_BY_RECIPE = {"binjax": "none", "binjax data.contrast=stretch": "trained on stretched"}


def _collection(folder: str) -> str:
    return f"dibco{folder}" if folder.isdigit() else folder


def read_rows(protocol_root: pathlib.Path, stretch_root: pathlib.Path) -> list[dict]:
    rows, pages = [], set()
    for path in sorted(protocol_root.glob("arg=*,seed=*/protocol/pages.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                # The protocol names each run's rows by its recipe (binjax.protocol.recipe_name): the
                # recipe's own runs 'binjax', the arm trained (and so scored) on stretched pages by its
                # override; runs of other ablations sharing the root are left out.
                mode = MODES_BY_RECIPE.get(r["binarizer"])
                if mode is None:
                    continue
                rows.append(dict(binarizer="fold model", contrast=mode, seed=int(r["seed"]),
                                 collection=r["collection"], page=r["page"], fm=float(r["fm"])))
                pages.add((r["collection"], r["page"]))
    for path in sorted(protocol_root.glob("baselines/*/pages.csv")):
        with path.open() as f:
            rows += [dict(binarizer=r["binarizer"], contrast="none", seed="", collection=r["collection"],
                          page=r["page"], fm=float(r["fm"])) for r in csv.DictReader(f)]
    for path in sorted(stretch_root.glob("seed*_stretch/*/model/per_image.csv")):
        seed, collection = int(path.parts[-4][4:].split("_")[0]), _collection(path.parts[-3])
        with path.open() as f:
            rows += [dict(binarizer="fold model", contrast="stretch", seed=seed, collection=collection,
                          page=r["page"], fm=float(r["fm"]))
                     for r in csv.DictReader(f) if (collection, r["page"]) in pages]
    return rows


def _mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else math.nan


def tables(rows: list[dict]) -> str:
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        column = (f"seed {r['seed']}, {r['contrast']}" if r["binarizer"] == "fold model" else r["binarizer"])
        cells.setdefault((r["collection"], column), []).append(r["fm"])
    seeds = sorted({r["seed"] for r in rows if r["binarizer"] == "fold model"})
    modes = ("none", "stretch", "trained on stretched")
    model_columns = [f"seed {s}, {c}" for s in seeds for c in modes]
    collections = [c for c in ORDER if any(k[0] == c for k in cells)]
    header = model_columns + [f"mean of seeds, {mode}" for mode in modes] + list(METHODS)
    lines = ["FM % per collection (mean over pages); each fold model scored on its own test collections: "
             "the recipe's model on plain pages (`none`) and with `--contrast=stretch`, and the model trained "
             "on stretched pages (`data.contrast=stretch`, scored on stretched pages). – : not scored yet.", "",
             "| collection | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    per_column: dict[str, list[tuple[float, str]]] = {}
    for c in collections:
        values = {}
        for col in model_columns + list(METHODS):
            values[col] = _mean(cells[(c, col)]) if (c, col) in cells else math.nan
        for mode in modes:
            cols = [f"seed {s}, {mode}" for s in seeds]
            values[f"mean of seeds, {mode}"] = (_mean([values[col] for col in cols])
                                                if all(math.isfinite(values[col]) for col in cols) else math.nan)
        for col in header:
            if math.isfinite(values[col]):
                per_column.setdefault(col, []).append((values[col], c))
        lines.append(f"| {c} | " + " | ".join("–" if not math.isfinite(values[col]) else f"{values[col]:.2f}"
                                              for col in header) + " |")
    lines += summary_lines(per_column, header, collections)
    return "\n".join(lines) + "\n"


def summary_lines(per_column: dict[str, list[tuple[float, str]]], header: list[str],
                  collections: list[str]) -> list[str]:
    """The **mean** and **worst** rows: a column's only when every collection has a score in it."""
    lines = []
    for label, pick in (("mean", lambda s: f"{_mean([v for v, _ in s]):.2f}"),
                        ("worst", lambda s: "{:.2f} ({})".format(*min(s)))):
        out = []
        for col in header:
            scored = per_column.get(col, [])
            out.append(pick(scored) if len(scored) == len(collections) else "–")
        lines.append(f"| **{label}** | " + " | ".join(out) + " |")
    return lines


def write_study(folder: pathlib.Path, rows: list[dict], tables_md: str) -> None:
    """folder/pages.csv (every page row, sorted) and folder/tables.md, which is also printed."""
    with (folder / "pages.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ("binarizer", "contrast", "seed", "collection", "page", "fm"))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["collection"], r["page"], r["binarizer"], str(r["seed"]),
                                                     r["contrast"])))
    (folder / "tables.md").write_text(tables_md)
    print(tables_md)


def main(protocol_root: str, stretch_root: str) -> None:
    rows = read_rows(pathlib.Path(protocol_root), pathlib.Path(stretch_root))
    write_study(HERE, rows, tables(rows))


if __name__ == "__main__":
    main(*sys.argv[1:3])
