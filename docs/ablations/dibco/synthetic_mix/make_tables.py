"""Tables of the synthetic-page study: configs/ablations/synthetic_mix.py against the recipe it builds on.

Reads the protocol's per-run scores of the chosen recipe (stretched pages, contrast.py's arm) and
the classic methods' from <protocol_root>, the synthetic arm's from <synthetic_root>
(arg=*/protocol/pages.csv in each), and writes tables.md beside this file (also printed), through
the fast-model study's table (docs/ablations/dibco/lite_speed/make_tables.py). With a third root,
also the synthetic arm's fold models flattened at inference (launch.evaluate --contrast=flatten
--overlap=0.5: <flatten_root>/seed<N>_flatten/<collection>/model/per_image.csv) beside the same
models as trained, on the pages the protocol scores. With a fourth, the 'polish' stage's runs (synthetic_mix.py:polish,
<polish_root>/arg=<fold>,seed=<s>) beside the mix runs they start from. Needs only Python.

  python docs/ablations/dibco/synthetic_mix/make_tables.py docs/ablations/dibco/protocol_baseline \
      docs/ablations/dibco/synthetic_mix/runs docs/ablations/dibco/synthetic_mix/flatten_at_inference \
      docs/ablations/dibco/synthetic_mix/polish_runs
"""

import csv
import importlib.util
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).parent
_spec = importlib.util.spec_from_file_location("lite_speed_tables", HERE.parent / "lite_speed" / "make_tables.py")
lite_speed_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lite_speed_tables)

# binjax.protocol.recipe_name of each arm -> its column. synthetic_mix.py puts the stretch into the
# config itself, so its runs are named by the synthetic fraction alone.
ARMS = {"binjax data.contrast=stretch": "stretch recipe",
        "binjax data.mix.synthetic_fraction=0.25": "synthetic 0.25",
        "binjax data.mix.synthetic_fraction=0.5": "synthetic 0.5",
        "binjax data.mix.synthetic_fraction=0.5,data.synthetic.clutter.faintest_ink=0.6": "0.5, no faint ink",
        "binjax data.mix.synthetic_fraction=0.5,num_steps=4000": "0.5, 4000 steps",
        "binjax data.mix.synthetic_fraction=0.5,data.synthetic.clutter.faded_ink=0.0": "0.5, no faded ink",
        "binjax data.mix.synthetic_fraction=0.5,data.synthetic.clutter.darkest_bleed=0.5": "0.5, bleed at most half",
        "binjax data.mix.synthetic_fraction=0.5,data.synthetic.clutter.paper_shading=0.0": "0.5, light paper",
        "binjax data.context=paper,data.mix.synthetic_fraction=0.5": "0.5, paper channel"}
SYNTHETIC = "binjax data.mix.synthetic_fraction=0.5"


def flatten_table(synthetic_root: pathlib.Path, flatten_root: pathlib.Path) -> str:
    """The synthetic arm's fold models as trained (the protocol's scores) and flattened at inference."""
    lines = ["The synthetic arm's fold models (fraction 0.5) as trained and with `--contrast=flatten` at "
             "inference (FM %, the protocol's pages, overlap 0.5).", "",
             "| collection, seed | as trained | flattened | change |", "|---|---:|---:|---:|"]
    for path in sorted(flatten_root.glob("seed*_flatten/*/model/per_image.csv")):
        seed, collection = int(path.parts[-4][4:].split("_")[0]), path.parts[-3]
        with path.open() as f:
            flat = {r["page"]: float(r["fm"]) for r in csv.DictReader(f)}
        trained = {}
        for run in synthetic_root.glob(f"arg=*,seed={seed}/protocol/pages.csv"):
            with run.open() as f:
                trained.update({r["page"]: float(r["fm"]) for r in csv.DictReader(f)
                                if r["binarizer"] == SYNTHETIC and r["collection"] == collection})
        pages = [p for p in trained if p in flat]
        a, b = statistics.fmean(trained[p] for p in pages), statistics.fmean(flat[p] for p in pages)
        lines.append(f"| {collection}, {seed} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    return "\n".join(lines) + "\n"


def _collection_means(root: pathlib.Path, pattern: str, binarizer: str) -> dict:
    """{(collection, seed): mean page FM} of one arm's runs under root."""
    pages = {}
    for path in root.glob(pattern):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r["binarizer"] == binarizer:
                    pages.setdefault((r["collection"], int(r["seed"])), []).append(float(r["fm"]))
    return {k: statistics.fmean(v) for k, v in pages.items()}


def polish_table(protocol_root: pathlib.Path, synthetic_root: pathlib.Path, polish_root: pathlib.Path) -> str:
    """The 'polish' stage (synthetic_mix.py:polish, its own protocol root, runs named arg=<fold>,seed=<s>)
    beside the mix run it starts from and the stretch recipe."""
    polished = _collection_means(polish_root, "arg=*/protocol/pages.csv", "binjax")
    mix = _collection_means(synthetic_root, "arg=*/protocol/pages.csv", SYNTHETIC)
    recipe = _collection_means(protocol_root, "arg=*/protocol/pages.csv", "binjax data.contrast=stretch")
    lines = ["The 'polish' stage: 500 real-page steps at a quarter of the learning rate from the seed-0 mix "
             "run (fraction 0.5), FM %.", "",
             "| collection, seed | stretch recipe | synthetic 0.5 | polished | change from 0.5 |",
             "|---|---:|---:|---:|---:|"]
    order = list(lite_speed_tables.ORDER)
    for (collection, seed), fm in sorted(polished.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
        base = mix.get((collection, seed))
        cells = [f"{v:.2f}" if v is not None else "–" for v in (recipe.get((collection, seed)), base, fm)]
        change = f"{fm - base:+.2f}" if base is not None else "–"
        lines.append(f"| {collection}, {seed} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    protocol_root, synthetic_root = map(pathlib.Path, sys.argv[1:3])
    text = lite_speed_tables.tables(protocol_root, ARMS, synthetic_root)
    if len(sys.argv) > 3:
        text += "\n" + flatten_table(synthetic_root, pathlib.Path(sys.argv[3]))
    if len(sys.argv) > 4:
        text += "\n" + polish_table(protocol_root, synthetic_root, pathlib.Path(sys.argv[4]))
    (HERE / "tables.md").write_text(text)
    print(text)
