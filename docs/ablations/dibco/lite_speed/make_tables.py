"""Tables of the fast light model in the cross-collection protocol: configs/ablations/lite_speed.py.

Reads the protocol's per-run scores (<protocol_root>/arg=*/protocol/pages.csv) and the classic
methods' (<protocol_root>/baselines/*/pages.csv), and writes tables.md beside this file: FM % per collection and seed for the default model's recipe (stretched pages)
and the fast light model on the same pages, beside Otsu, Sauvola and Su. Needs only Python.

  python docs/ablations/dibco/lite_speed/make_tables.py docs/ablations/dibco/protocol_baseline
"""

import collections
import csv
import math
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "contrast"))  # the contrast study's collection order
from make_tables import METHODS, ORDER  # noqa: E402

# binjax.protocol.recipe_name of the two arms (the sweep's overrides, sorted).
ARMS = {"binjax data.contrast=stretch": "default recipe",
        "binjax data.contrast=stretch,model.decoder_expansion=1,model.expansion=2,model.head=space_to_depth": "fast"}


def tables(protocol_root: pathlib.Path, arms: dict[str, str] = ARMS, *more_roots: pathlib.Path) -> str:
    """The table of `arms` (recipe name -> column label) over the runs of one or more protocol roots;
    the classic methods' scores come from the first root. Other studies call it with their arms."""
    scores = collections.defaultdict(list)  # (collection, column) -> page FMs
    paths = [path for root in (protocol_root, *more_roots) for path in sorted(root.glob("arg=*/protocol/pages.csv"))]
    paths += sorted(protocol_root.glob("baselines/*/pages.csv"))
    for path in paths:
        with path.open() as f:
            for r in csv.DictReader(f):
                if r["binarizer"] in arms:
                    column = f"{arms[r['binarizer']]}, seed {r['seed']}"
                elif r["binarizer"] in METHODS:
                    column = r["binarizer"]
                else:
                    continue
                scores[(r["collection"], column)].append(float(r["fm"]))
    # Arms in the order given, each seed after seed; then the classic methods.
    rank = {label: i for i, label in enumerate(arms.values())}
    columns = sorted({c for _, c in scores if c not in METHODS},
                     key=lambda c: (rank[c.rsplit(", seed ", 1)[0]], c)) + list(METHODS)
    names = [c for c in ORDER if any(k[0] == c for k in scores)]
    lines = ["FM % per collection (mean over its pages), each collection scored by fold models that never "
             "trained on it; – : not run.", "",
             "| collection | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name in names:
        cells = [f"{statistics.fmean(scores[(name, c)]):.2f}" if (name, c) in scores else "–" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    # The worst collection over the collections every column has scored (the fast arm runs the deciding folds first).
    shared = [n for n in names if all((n, c) in scores for c in columns)]
    worst = []
    for c in columns:
        means = {n: statistics.fmean(scores[(n, c)]) for n in shared}
        worst.append("{:.2f} ({})".format(*min((v, n) for n, v in means.items())) if means else "–")
    if shared:
        lines.append(f"| **worst of {', '.join(shared)}** | " + " | ".join(worst) + " |")
    # The protocol's own figures, for the columns that scored every collection.
    complete = [c for c in columns if all((n, c) in scores for n in names)]
    if complete and len(shared) < len(names):
        means = {c: {n: statistics.fmean(scores[(n, c)]) for n in names} for c in complete}
        lines.append("| **mean of all collections** | " + " | ".join(
            f"{statistics.fmean(means[c].values()):.2f}" if c in means else "–" for c in columns) + " |")
        lines.append("| **worst of all collections** | " + " | ".join(
            "{:.2f} ({})".format(*min((v, n) for n, v in means[c].items())) if c in means else "–"
            for c in columns) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = tables(pathlib.Path(sys.argv[1]))
    (HERE / "tables.md").write_text(text)
    print(text)
