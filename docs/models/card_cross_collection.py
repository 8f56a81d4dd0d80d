"""A released model's card section "cross_collection", from the protocol's scores of its recipe.

A model trained on every collection has no unseen collection left, so what its card promises on a
user's archive is what the protocol's fold models of the same recipe scored on collections they
never trained on. This reads those scores (<root>/arg=*/protocol/pages.csv of each root, rows of
the recipe's name as binjax.protocol names it) and the classic methods' (<first root>/baselines/
*/pages.csv), and writes the section into the card: per collection the FM % (mean over its pages,
then over the seeds run), how many seeds, Otsu, Sauvola and Su; the mean of collections and the
worst collection. Needs only Python.

  python docs/models/card_cross_collection.py binjax/weights/collections_lite/card.json \
      'binjax data.mix.synthetic_fraction=0.5' docs/ablations/dibco/synthetic_mix/runs \
      --what='FM % of the protocol fold models of this recipe ...'
"""

import argparse
import collections
import csv
import json
import pathlib
import statistics

METHODS = ("otsu", "sauvola", "su")
ORDER = ("dibco2009", "dibco2011", "dibco2013", "dibco2010", "dibco2012", "dibco2014", "dibco2016",
         "bickley", "monk_cuper", "msi2015", "nabuco", "phibd")  # the folds' order, as the cards have it


def section(recipe: str, roots: list[pathlib.Path], what: str) -> dict:
    pages = collections.defaultdict(list)  # (collection, seed or method) -> page FMs
    paths = [p for root in roots for p in sorted(root.glob("arg=*/protocol/pages.csv"))]
    for path in paths + sorted(roots[0].glob("baselines/*/pages.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r["binarizer"] == recipe:
                    pages[(r["collection"], int(r["seed"]))].append(float(r["fm"]))
                elif r["binarizer"] in METHODS:
                    pages[(r["collection"], r["binarizer"])].append(float(r["fm"]))
    scored = {c for c, key in pages if isinstance(key, int)}
    if not scored:
        raise SystemExit(f"error: no protocol scores of {recipe!r} under {', '.join(map(str, roots))}")
    table = {}
    for name in [c for c in ORDER if c in scored]:
        seeds = sorted(k for c, k in pages if c == name and isinstance(k, int))
        table[name] = {"fm": round(statistics.fmean(statistics.fmean(pages[(name, s)]) for s in seeds), 2),
                       "seeds": len(seeds),
                       **{m: round(statistics.fmean(pages[(name, m)]), 2) for m in METHODS if (name, m) in pages}}
    worst = min(table, key=lambda c: table[c]["fm"])
    return {"what": what, "collections": table,
            "mean": round(statistics.fmean(v["fm"] for v in table.values()), 2),
            "worst": [worst, table[worst]["fm"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("card", type=pathlib.Path, help="card.json to write the section into")
    parser.add_argument("recipe", help="the recipe's name in the protocol's pages.csv, e.g. 'binjax data.contrast=stretch'")
    parser.add_argument("roots", type=pathlib.Path, nargs="+", help="protocol roots; the first holds baselines/")
    parser.add_argument("--what", required=True, help="the sentence saying what the figures are")
    args = parser.parse_args()
    card = json.loads(args.card.read_text())
    card["cross_collection"] = section(args.recipe, args.roots, args.what)
    args.card.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["cross_collection"], indent=2))


if __name__ == "__main__":
    main()
