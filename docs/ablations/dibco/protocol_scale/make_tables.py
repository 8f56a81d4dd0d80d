"""Tables of the protocol's scale test: each fold's seed-0 model on its own test collections x0.5/x1/x2.

Reads launch.scale_test's output folders (<scale_root>/<fold>/x<factor>/<collection>/pages.csv,
one per fold, the fold model scored as `binjax-seed0_<fold>` with and without --rescale=auto)
and the protocol's x1 scores (<protocol_root>/arg=<fold>,seed=0/protocol/pages.csv and
baselines/<collection>/pages.csv);
writes pages.csv (every page, scale and binarizer) and tables.md beside this file.

  python docs/ablations/dibco/protocol_scale/make_tables.py /work/protocol/scale /work/protocol/baseline
"""

import csv
import math
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
COLUMNS = ("fold model", "fold model, --rescale=auto", "otsu", "sauvola", "su")
ORDER = ("dibco2009", "dibco2010", "dibco2011", "dibco2012", "dibco2013", "dibco2014", "dibco2016",
         "bickley", "monk_cuper", "msi2015", "nabuco", "phibd")


def _rows(scale_root: pathlib.Path, protocol_root: pathlib.Path) -> list[dict]:
    rows = []
    for path in sorted(scale_root.glob("*/x*/*/pages.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                name = row["binarizer"]
                column = ("fold model, --rescale=auto" if name.endswith("-rescale_auto")
                          else "fold model" if name.startswith("binjax-") else name)
                rows.append(dict(binarizer=column, factor=float(row["factor"]), collection=row["collection"],
                                 page=row["page"], fm=float(row["fm"])))
    # x1: the protocol's own scores of the recipe's seed-0 runs (arg=<fold>,seed=0) and baselines.
    x1 = sorted(protocol_root.glob("arg=*,seed=0/protocol/pages.csv")) + sorted(protocol_root.glob("baselines/*/pages.csv"))
    for path in x1:
        with path.open() as f:
            for row in csv.DictReader(f):
                if row["binarizer"].startswith("binjax "):
                    continue  # a run of another arm, named by its overrides (binjax.protocol.recipe_name)
                column = "fold model" if row["binarizer"] == "binjax" else row["binarizer"]
                rows.append(dict(binarizer=column, factor=1.0, collection=row["collection"], page=row["page"],
                                 fm=float(row["fm"])))
    return rows


def _mean(values):
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else math.nan


def tables(rows: list[dict]) -> str:
    cell = {}
    for row in rows:
        cell.setdefault((row["collection"], row["factor"], row["binarizer"]), []).append(row["fm"])
    factors = sorted({r["factor"] for r in rows})
    collections = [c for c in ORDER if any(k[0] == c for k in cell)]
    fmt = lambda v: "–" if v is None or not math.isfinite(v) else f"{v:.2f}"  # noqa: E731
    lines = ["FM % per collection and scale, mean over pages (– : not run).", "",
             "| collection | scale | " + " | ".join(COLUMNS) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
    summary = {}
    for factor in factors:
        for collection in collections:
            values = [(_mean(cell[k]) if (k := (collection, factor, b)) in cell else None) for b in COLUMNS]
            lines.append(f"| {collection} | x{factor:g} | " + " | ".join(fmt(v) for v in values) + " |")
            for b, v in zip(COLUMNS, values):
                if v is not None:
                    summary.setdefault((factor, b), []).append((v, collection))
    lines += ["", "Mean of collections and worst collection per scale (only where every collection was scored).",
              "", "| scale | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for factor in factors:
        out = []
        for b in COLUMNS:
            scored = summary.get((factor, b), [])
            if len(scored) < len(collections):
                out.append("–")
                continue
            worst = min(scored)
            out.append(f"{_mean([v for v, _ in scored]):.2f} / {worst[0]:.2f} ({worst[1]})")
        lines.append(f"| x{factor:g} mean / worst | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def main(scale_root: str, protocol_root: str) -> None:
    rows = _rows(pathlib.Path(scale_root), pathlib.Path(protocol_root))
    with (HERE / "pages.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ("binarizer", "factor", "collection", "page", "fm"))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["factor"], r["collection"], r["page"], r["binarizer"])))
    (HERE / "tables.md").write_text(tables(rows))
    print((HERE / "tables.md").read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
