"""`--rescale=auto` at the protocol's own scale (x1), on the default model's recipe (issue #13).

The synthetic arm's fold models (configs/ablations/synthetic_mix.py, fraction 0.5: the recipe of
the released collections_lite) on their test collections, as the protocol scored them and with
--rescale=auto (launch.scale_test --factors=1 --rescale_modes=auto --overlap=0.5). Reads
<auto_root>/seed<S>_<fold>/x1/<collection>/pages.csv and the protocol's per-page scores under
<synthetic_root>/arg=*/protocol/pages.csv; writes auto_x1.md beside this file (also printed).
Needs only Python.

  python docs/ablations/dibco/protocol_scale/auto_x1_table.py docs/ablations/dibco/protocol_scale/auto_x1 \
      docs/ablations/dibco/synthetic_mix/runs
"""

import csv
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))  # the scale study's own table script: the same collection order
from make_tables import ORDER  # noqa: E402

RECIPE = "binjax data.mix.synthetic_fraction=0.5"   # binjax.protocol.recipe_name of the synthetic arm


def read(path: pathlib.Path, keep) -> dict:
    with path.open() as f:
        return {(r["collection"], r["page"]): float(r["fm"]) for r in csv.DictReader(f) if keep(r)}


def main(auto_root: pathlib.Path, synthetic_root: pathlib.Path) -> str:
    lines = ["FM % of the synthetic recipe's fold models on their test collections at x1 (overlap 0.5), as the "
             "protocol scored them and with `--rescale=auto`; pages changed: those whose FM moved (the others "
             "were left at their size).", "",
             "| collection | seed | as scored | --rescale=auto | change | pages changed |",
             "|---|---:|---:|---:|---:|---:|"]
    per_seed = {}
    for seed in (0, 1):
        plain = {}
        for path in synthetic_root.glob(f"arg=*,seed={seed}/protocol/pages.csv"):
            plain.update(read(path, lambda r: r["binarizer"] == RECIPE))
        auto = {}
        for path in auto_root.glob(f"seed{seed}_*/x1/*/pages.csv"):
            auto.update(read(path, lambda r: r["binarizer"].endswith("-rescale_auto")))
        for collection in ORDER:
            pages = sorted(p for c, p in auto if c == collection)
            if not pages:
                continue
            a = statistics.fmean(plain[(collection, p)] for p in pages)
            b = statistics.fmean(auto[(collection, p)] for p in pages)
            moved = sum(abs(plain[(collection, p)] - auto[(collection, p)]) > 1e-9 for p in pages)
            per_seed.setdefault(seed, {})[collection] = (a, b)
            lines.append(f"| {collection} | {seed} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {moved} of {len(pages)} |")
    for seed, scores in per_seed.items():
        if len(scores) == len(ORDER):
            a, b = statistics.fmean(v[0] for v in scores.values()), statistics.fmean(v[1] for v in scores.values())
            lines.append(f"| **mean of the {len(ORDER)}** | {seed} | {a:.2f} | {b:.2f} | {b - a:+.2f} | |")
            wa, wb = (min(scores, key=lambda c, i=i: scores[c][i]) for i in (0, 1))
            lines.append(f"| **worst of the {len(ORDER)}** | {seed} | {scores[wa][0]:.2f} ({wa}) | "
                         f"{scores[wb][1]:.2f} ({wb}) | {scores[wb][1] - scores[wa][0]:+.2f} | |")
    text = "\n".join(lines) + "\n"
    (HERE / "auto_x1.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(*map(pathlib.Path, sys.argv[1:3])))
