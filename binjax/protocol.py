"""The cross-collection protocol's scoring and report: every fold's test collections, beside the
classic methods, per page, per collection, the mean and the worst collection.

A protocol is a sweep (configs/cross_collection.py) whose runs each name their test collections
in ``config.data.collections.test``. After a run has trained, ``score_run`` binarizes its test
collections with its best checkpoint (else its latest) and keeps the per-page DIBCO measures in
``<run>/protocol/``; ``score_baselines`` does the same once per collection for Otsu, Sauvola and
Su in ``ROOT/baselines/<collection>/``, and ``score_models`` for models trained elsewhere (the
released ones) in ``ROOT/models/``. All are skipped when done, so the launcher resumes.

``write_report`` then reads them all back: a collection's score is the mean over its pages (as
the DIBCO competitions average pages); a recipe's score on a collection is the mean over its
seeds (± their sample std); the mean row averages collections, not pages, so a big collection
does not hide a small one; and the worst collection is each binarizer's lowest collection FM.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from binjax import sweep as sweep_lib
from binjax.errors import DataError

BASELINES = ("otsu", "sauvola", "su")
MEASURES = ("fm", "pfm", "psnr", "drd")
HIGHER_IS_BETTER = {"fm": True, "pfm": True, "psnr": True, "drd": False}
_PAGES_CSV = "pages.csv"
_PAGE_COLUMNS = ("binarizer", "run", "seed", "collection", "page", *MEASURES)
# The protocol's own inference settings, fixed so that runs scored in different sessions stay
# comparable when a library default moves (the default overlap went from 0.5 to 0.25 after the
# first seed was scored, then to 0.125); everything else is the library's default.
SCORING = dict(overlap=0.5)


def _test_collections(config) -> list[str]:
    from binjax.data import collections  # noqa: PLC0415 -- imports tensorflow_datasets

    names = collections.parse_collections(config.data.collections.test, "config.data.collections.test")
    if not names:
        raise ValueError("config.data.collections.test is empty: the run names no test collection")
    return names


def _score(binarizers: Mapping[str, Any], names: Sequence[str], config, out_dir: pathlib.Path, *,
           weights_cache: pathlib.Path, progress: bool) -> list[dict]:
    """Evaluates `binarizers` on the named collections; returns one row per binarizer and page."""
    from binjax import evaluate  # noqa: PLC0415
    from binjax.data import collections  # noqa: PLC0415

    c = config.data.collections
    pages = collections.collection_pages(names, root=c.root, data_dir=c.data_dir, prepare=c.prepare,
                                         channels=evaluate.pages_channels(binarizers))
    summary = evaluate.evaluate_pages(binarizers, pages, out_dir, previews=False, weights_cache=weights_cache,
                                      dataset=",".join(names), progress=progress)
    rows = []
    for name, entry in summary["binarizers"].items():
        for row, collection in zip(entry["per_image"], pages.collections):
            rows.append({"binarizer": name, "collection": collection, "page": row["page"].split("/", 1)[1],
                         **{m: row[m] for m in MEASURES}})
    return rows


def _write_rows(path: pathlib.Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = _PAGE_COLUMNS) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)  # a killed run leaves no half table that would count as done


def _read_rows(path: pathlib.Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{**r, **{m: float(r[m]) for m in MEASURES}} for r in csv.DictReader(f)]


def recipe_name(overrides: Mapping[str, Any]) -> str:
    """What a run's seeds and folds share: its other overrides ('binjax' when it has none)."""
    rest = {k: v for k, v in overrides.items() if k not in (sweep_lib.ARG, sweep_lib.SEED)}
    return "binjax" if not rest else "binjax " + sweep_lib.run_name(rest)


def is_scored(experiment: sweep_lib.Sweep, overrides: Mapping[str, Any]) -> bool:
    """Whether score_run has written this run's scores."""
    return (experiment.workdir(overrides) / "protocol" / _PAGES_CSV).exists()


def score_run(experiment: sweep_lib.Sweep, overrides: Mapping[str, Any], *, progress: bool = True) -> pathlib.Path:
    """Scores a trained run on its test collections (once); returns its pages.csv."""
    workdir = experiment.workdir(overrides)
    out = workdir / "protocol"
    if is_scored(experiment, overrides):
        return out / _PAGES_CSV
    from binjax import binarizers  # noqa: PLC0415 -- loads JAX

    config = experiment.config(overrides)
    (model,) = binarizers.make_binarizers([workdir], **SCORING).values()
    rows = _score({"model": model}, _test_collections(config), config, out,
                  weights_cache=experiment.root / "weights_cache", progress=progress)
    for row in rows:
        row.update(binarizer=recipe_name(overrides), run=sweep_lib.run_name(overrides), seed=overrides.get("seed", 0))
    _write_rows(out / _PAGES_CSV, rows)
    return out / _PAGES_CSV


def _test_configs(experiment: sweep_lib.Sweep) -> dict[str, Any]:
    """Every test collection of the protocol -> the config of a run that tests it (for its paths)."""
    configs = {}
    for overrides in experiment.runs:
        config = experiment.config(overrides)
        for name in _test_collections(config):
            configs.setdefault(name, config)
    return configs


def score_baselines(experiment: sweep_lib.Sweep, *, methods: Sequence[str] = BASELINES,
                    progress: bool = True) -> list[pathlib.Path]:
    """Scores the classic methods once per test collection of the protocol; returns their pages.csv."""
    from binjax import binarizers  # noqa: PLC0415

    paths = []
    for name, config in _test_configs(experiment).items():
        out = experiment.root / "baselines" / name
        if not (out / _PAGES_CSV).exists():
            rows = _score(binarizers.make_binarizers((), methods), [name], config, out,
                          weights_cache=experiment.root / "weights_cache", progress=progress)
            _write_rows(out / _PAGES_CSV, rows)
        paths.append(out / _PAGES_CSV)
    return paths


def score_models(experiment: sweep_lib.Sweep, checkpoints: Sequence[str], *, progress: bool = True) -> list[pathlib.Path]:
    """Scores models trained outside the protocol (released models, other workdirs) on every test
    collection, once each, under ROOT/models/<name>/<collection>/. Which collections such a model
    saw in training is for the reader to know: the report names them 'binjax-<checkpoint>'."""
    from binjax import binarizers  # noqa: PLC0415 -- loads JAX

    configs = _test_configs(experiment)
    paths = []
    for checkpoint in checkpoints:
        label = "binjax-" + pathlib.Path(checkpoint).name
        model = None
        for name, config in configs.items():
            out = experiment.root / "models" / label / name
            if not (out / _PAGES_CSV).exists():
                model = model or next(iter(binarizers.make_binarizers([checkpoint], **SCORING).values()))
                rows = _score({"model": model}, [name], config, out,
                              weights_cache=experiment.root / "weights_cache", progress=progress)
                for row in rows:
                    row["binarizer"] = label
                _write_rows(out / _PAGES_CSV, rows)
            paths.append(out / _PAGES_CSV)
    return paths


# ------------------------------------------------------------------------ Report
def collection_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, tuple[float, float, int]]]]:
    """binarizer -> collection -> measure -> (mean over seeds of the page mean, std over seeds, seeds)."""
    page_means: dict = defaultdict(lambda: defaultdict(list))  # (binarizer, collection) -> seed -> rows
    for row in rows:
        page_means[(row["binarizer"], row["collection"])][row.get("seed", "")].append(row)
    table: dict = defaultdict(dict)
    for (binarizer, collection), by_seed in page_means.items():
        table[binarizer][collection] = {}
        for m in MEASURES:
            per_seed = [_finite_mean([r[m] for r in seed_rows]) for seed_rows in by_seed.values()]
            mean = sum(per_seed) / len(per_seed)
            std = (math.sqrt(sum((v - mean) ** 2 for v in per_seed) / (len(per_seed) - 1))
                   if len(per_seed) > 1 else 0.0)
            table[binarizer][collection][m] = (mean, std, len(per_seed))
    return table


def _finite_mean(values: Sequence[float]) -> float:
    # PSNR is infinite on a page binarized perfectly; the mean of the others says more than inf.
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def summary_rows(table) -> dict[str, dict[str, Any]]:
    """binarizer -> {'mean': {measure: value}, 'worst': (collection, fm), 'collections': n}."""
    out = {}
    for binarizer, by_collection in table.items():
        means = {m: sum(v[m][0] for v in by_collection.values()) / len(by_collection) for m in MEASURES}
        worst = min(by_collection, key=lambda c: by_collection[c]["fm"][0])
        out[binarizer] = {"mean": means, "worst": (worst, by_collection[worst]["fm"][0]),
                          "collections": len(by_collection)}
    return out


def _cell(stat: tuple[float, float, int]) -> str:
    mean, std, n = stat
    return f"{mean:.2f}" + (f" ± {std:.2f}" if n > 1 else "")


def report_markdown(table, summary, collections: Sequence[str]) -> str:
    binarizers = sorted(table, key=lambda b: (not b.startswith("binjax"), b))
    lines = ["# Cross-collection protocol", "",
             "FM % per test collection (mean over its pages; ± std over seeds for binjax recipes). "
             "Each collection was tested by a model that never trained or validated on it.", "",
             "| collection | " + " | ".join(binarizers) + " |", "|---|" + "---:|" * len(binarizers)]
    for collection in collections:
        cells = [_cell(table[b][collection]["fm"]) if collection in table[b] else "" for b in binarizers]
        lines.append(f"| {collection} | " + " | ".join(cells) + " |")
    lines.append("| **mean of collections** | " + " | ".join(f"**{summary[b]['mean']['fm']:.2f}**" for b in binarizers) + " |")
    lines.append("| **worst collection** | " + " | ".join(
        f"**{summary[b]['worst'][1]:.2f}** ({summary[b]['worst'][0]})" for b in binarizers) + " |")
    lines += ["", "Means of collections for every measure (DRD: lower is better):", "",
              "| binarizer | collections | " + " | ".join(m.upper() for m in MEASURES) + " | worst collection (FM) |",
              "|---|---:|" + "---:|" * len(MEASURES) + "---|"]
    for b in binarizers:
        s = summary[b]
        lines.append(f"| {b} | {s['collections']} | " + " | ".join(f"{s['mean'][m]:.2f}" for m in MEASURES)
                     + f" | {s['worst'][0]} ({s['worst'][1]:.2f}) |")
    lines += ["", "Per page: `pages.csv`; per collection and measure: `report.json`."]
    return "\n".join(lines) + "\n"


def write_report(experiment: sweep_lib.Sweep) -> dict[str, pathlib.Path]:
    """ROOT/pages.csv (every page of every binarizer), ROOT/report.md and ROOT/report.json."""
    rows = []
    for overrides in experiment.runs:
        path = experiment.workdir(overrides) / "protocol" / _PAGES_CSV
        if path.exists():
            rows += _read_rows(path)
    for path in sorted((experiment.root / "baselines").glob(f"*/{_PAGES_CSV}")):
        rows += _read_rows(path)
    for path in sorted((experiment.root / "models").glob(f"*/*/{_PAGES_CSV}")):
        rows += _read_rows(path)
    if not rows:
        raise DataError(f"{experiment.root}: no scored run or baseline yet; run the protocol first")
    order = [c for o in experiment.runs for c in _test_collections(experiment.config(o))]
    collections = list(dict.fromkeys(order))
    table = collection_scores(rows)
    summary = summary_rows(table)
    root = experiment.root
    _write_rows(root / _PAGES_CSV, rows)
    (root / "report.md").write_text(report_markdown(table, summary, collections))
    (root / "report.json").write_text(json.dumps({"collections": table, "summary": summary}, indent=1))
    return {"pages": root / _PAGES_CSV, "md": root / "report.md", "json": root / "report.json"}
