"""Ablation sweeps: a config file's `get_sweep()` grid, one run directory per point, one report.

A config file may define, beside `get_config(arg=None)`,

    def get_sweep(arg=None):
        return sweep.with_seeds(sweep.grid(**{"loss.name": ["bce", "dice"]}), seeds=[0, 1])

returning a list of override dicts with flat dotted keys ({'loss.name': 'dice', 'seed': 1}). The
reserved key ARG ('arg') changes the config file's argument for that run instead of a field: it is
joined before the sweep's own argument, so {'arg': 'lite'} under `architecture.py:smoke` loads
`get_config('lite,smoke')` (for runs whose models have different hyper-parameters).

Each run trains in ROOT/<run_name(overrides)> as an ordinary, resumable `launch/train.py` run; a
DONE file (JSON) is written there once it finished. `write_report` gathers every run's final and
best validation scores into ROOT/report.csv, ROOT/report.md and ROOT/plots/*.png.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import math
import pathlib
import re
import shlex
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from binjax import reporting

ARG = "arg"  # reserved override key: the config file's argument for this run (see module doc)
SEED = "seed"
DONE = "DONE"
METRICS = ("val/f1", "val/iou", "val/dice", "val/precision", "val/recall", "val/otsu_f1")
# From binjax.run_scores: DIBCO measures of the best and latest checkpoints on the validation
# patches, and speed.
RUN_MEASURES = ("best_fm", "best_pfm", "best_psnr", "best_drd", "final_fm", "final_pfm", "final_psnr",
                "final_drd", "train_images_per_s", "inference_mp_per_s")

Overrides = dict[str, Any]


# ------------------------------------------------------------------------ Declaring sweeps
def grid(axes: Mapping[str, Sequence[Any]] | None = None, **more_axes: Sequence[Any]) -> list[Overrides]:
    """Cartesian product of dotted-key axes, first axis slowest: grid(**{'loss.name': [...], 'seed': [0, 1]}).

    Axes may come as a mapping (dotted keys are not Python identifiers) or as keyword arguments.
    """
    axes = {**(axes or {}), **more_axes}
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid axis {key!r} needs a list of values, got {values!r}")
    keys = list(axes)
    return [dict(zip(keys, point)) for point in itertools.product(*(list(axes[k]) for k in keys))]


def with_seeds(runs: Sequence[Mapping[str, Any]], seeds: Iterable[int]) -> list[Overrides]:
    """Each run once per seed (runs outer, seeds inner), seed stored under 'seed'."""
    seeds = list(seeds)
    return [{**run, SEED: int(seed)} for run in runs for seed in seeds]


def _value_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_value_text(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def run_name(overrides: Mapping[str, Any]) -> str:
    """A stable, filesystem-safe directory name: 'loss.name=dice,seed=1' ('base' when empty).

    Keys are sorted with the config argument first and the seed last, so the same overrides give the
    same name whatever their dict order.
    """
    if not overrides:
        return "base"
    keys = sorted(overrides, key=lambda k: (k != ARG, k == SEED, k))
    text = ",".join(f"{k}={_value_text(overrides[k])}" for k in keys)
    return re.sub(r"[^A-Za-z0-9._=,+()-]", "_", text)


def group_key(overrides: Mapping[str, Any]) -> str:
    """The run name without its seed: the runs that are averaged together."""
    return run_name({k: v for k, v in overrides.items() if k != SEED})


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Sets each dotted key of `overrides` in `config` (in place, returned); ARG is skipped.

    Raises KeyError naming the key and the valid fields when a key is not in the config, even if the
    config is unlocked; the field's type is checked by ConfigDict (TypeError).
    """
    for key, value in overrides.items():
        if key == ARG:
            continue
        target = config
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents + [leaf]):
            if not isinstance(target, ml_collections.ConfigDict) or part not in target:
                where = ".".join(parents[:depth]) or "the config"
                known = sorted(target.keys()) if isinstance(target, ml_collections.ConfigDict) else []
                raise KeyError(f"sweep override {key!r}: {where} has no field {part!r}; fields there: {known}")
            if depth < len(parents):
                target = target[part]
        if isinstance(value, list):
            value = tuple(value)
        target[leaf] = value
    return config


# ------------------------------------------------------------------------ Loading sweep files
def parse_config_path(spec: str) -> tuple[str, str | None]:
    """'configs/ablations/loss.py:smoke' -> ('configs/ablations/loss.py', 'smoke')."""
    path, _, arg = spec.partition(":")
    return path, (arg or None)


def load_module(path: str | pathlib.Path) -> ModuleType:
    """Imports a config file by path (as ml_collections' config_flags does)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    spec = importlib.util.spec_from_file_location(f"_binjax_sweep_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"{path} defines no get_config()")
    return module


def run_arg(sweep_arg: str | None, overrides: Mapping[str, Any]) -> str | None:
    """The config argument of one run: its ARG override joined before the sweep's argument."""
    parts = [str(p) for p in (overrides.get(ARG), sweep_arg) if p not in (None, "")]
    return ",".join(parts) or None


class Sweep:
    """The runs of a sweep file: `Sweep('configs/ablations/loss.py:smoke', root)`."""

    def __init__(self, config_spec: str, root: str | pathlib.Path):
        self.config_spec = config_spec
        self.path, self.arg = parse_config_path(config_spec)
        self.module = load_module(self.path)
        if not hasattr(self.module, "get_sweep"):
            raise AttributeError(f"{self.path} defines no get_sweep(); it is not a sweep file")
        self.root = pathlib.Path(root)
        self.runs: list[Overrides] = list(self.module.get_sweep(self.arg))
        names = [run_name(r) for r in self.runs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{self.path}: get_sweep() repeats runs {duplicates}")

    def config(self, overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
        """The locked config of one run, overrides applied."""
        config = self.module.get_config(run_arg(self.arg, overrides))
        config.lock()
        return apply_overrides(config, overrides)

    def workdir(self, overrides: Mapping[str, Any]) -> pathlib.Path:
        return self.root / run_name(overrides)

    def command(self, overrides: Mapping[str, Any], python: str = "python") -> list[str]:
        """The `launch/train.py` command line that trains one run (same workdir, so it resumes)."""
        arg = run_arg(self.arg, overrides)
        cmd = [python, "-m", "launch.train", f"--config={self.path}" + (f":{arg}" if arg else ""),
               f"--workdir={self.workdir(overrides)}"]
        cmd += [f"--config.{k}={_value_text(v)}" for k, v in overrides.items() if k != ARG]
        return cmd

    def status(self, overrides: Mapping[str, Any]) -> str:
        """'done', 'partial' (started, resumable) or 'todo'."""
        return run_status(self.workdir(overrides), self.config(overrides).num_steps)


def shell_command(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def slurm_array_script(experiment: Sweep, runs: Sequence[Mapping[str, Any]], *, python: str = "python",
                       cwd: str | pathlib.Path) -> str:
    """An sbatch script for a job array whose task i trains runs[i] (`Sweep.command`, resumable).

    The commands name config and workdir as given, so the script first changes to `cwd` (where they
    resolve, normally the repository); each task's log goes to ROOT/slurm/<job>_<task>.out (absolute,
    ROOT/slurm must exist). Resources are not set here: add them on the command line, where they
    override the script, e.g. `sbatch --partition=gpu --gres=gpu:1 --time=4:00:00 --array=0-7%2`.
    """
    if not runs:
        raise ValueError("no runs to put in a SLURM array")
    log_dir = (pathlib.Path(cwd) / experiment.root / "slurm").resolve()
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={shlex.quote('sweep_' + pathlib.Path(experiment.path).stem)}",
        f"#SBATCH --array=0-{len(runs) - 1}",
        f"#SBATCH --output={log_dir}/%A_%a.out",
        f"# {len(runs)} runs of {experiment.config_spec}, task i = run i; a resubmitted task resumes its run.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(pathlib.Path(cwd).resolve()))}",
        'case "${SLURM_ARRAY_TASK_ID:?not a SLURM array task}" in',
    ]
    for i, overrides in enumerate(runs):
        lines.append(f"  {i})  # {run_name(overrides)}")
        lines.append(f"    exec {shell_command(experiment.command(overrides, python=python))} ;;")
    lines += [f'  *) echo "task $SLURM_ARRAY_TASK_ID: this array has tasks 0-{len(runs) - 1}" >&2; exit 2 ;;', "esac", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------ Run state
def run_status(workdir: pathlib.Path, num_steps: int) -> str:
    """'done' once DONE exists or a validation record reached num_steps (a run trained elsewhere)."""
    if (workdir / DONE).exists():
        return "done"
    records = reporting.read_metrics(workdir)
    if any("val/f1" in r and r["step"] >= num_steps for r in records):
        return "done"
    return "partial" if workdir.exists() and any(workdir.iterdir()) else "todo"


def mark_done(workdir: pathlib.Path, info: Mapping[str, Any]) -> None:
    (workdir / DONE).write_text(json.dumps(dict(info), indent=1, default=float) + "\n")


# ------------------------------------------------------------------------ Report
def count_params(config: ml_collections.ConfigDict) -> int:
    """Parameters of config's model, counted from shapes only (nothing is allocated)."""
    from flax import nnx

    from binjax import models, train

    return models.count_params(nnx.eval_shape(lambda: train.build_model(config, nnx.Rngs(0))))


def collect(sweep: Sweep, *, measures: bool = True) -> list[dict]:
    """One row per run: overrides, status, final and best (by val/f1) validation scores, params.

    measures: also score each run's checkpoints with the DIBCO measures and time its model
    (binjax.run_scores: train images/s, inference MP/s); runs without a checkpoint get None.
    """
    from binjax import run_scores  # noqa: PLC0415 -- loads JAX

    rows, cache = [], {}
    for overrides in sweep.runs:
        config = sweep.config(overrides)
        workdir = sweep.workdir(overrides)
        val = [r for r in reporting.read_metrics(workdir) if "val/f1" in r]
        row: dict[str, Any] = dict(
            run=run_name(overrides),
            group=group_key(overrides),
            seed=overrides.get(SEED, config.seed),
            status=run_status(workdir, config.num_steps),
            num_params=count_params(config),
            num_steps=config.num_steps,
            last_val_step=val[-1]["step"] if val else None,
        )
        best = max(val, key=lambda r: r["val/f1"]) if val else None
        row["best_step"] = best["step"] if best else None
        for metric in METRICS:
            row[f"final_{metric}"] = val[-1].get(metric) if val else None
            row[f"best_{metric}"] = best.get(metric) if best else None
        if measures:
            extra = run_scores.run_scores(workdir, config, cache=cache) if val else {}
            for key in RUN_MEASURES:
                row[key] = extra.get(key)
        row["curve"] = [(r["step"], r["val/f1"]) for r in val]
        rows.append(row)
    return rows


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return math.nan, math.nan, 0
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std, len(values)


def summarize(rows: list[dict]) -> list[dict]:
    """Per group (non-seed overrides): mean, sample std and count of each final and best metric."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    summary = []
    for group, members in groups.items():
        entry: dict[str, Any] = dict(group=group, runs=len(members),
                                     done=sum(m["status"] == "done" for m in members),
                                     num_params=members[0]["num_params"])
        for metric in METRICS:
            for which in ("final", "best"):
                entry[f"{which}_{metric}"] = _mean_std([m[f"{which}_{metric}"] for m in members])
        for key in RUN_MEASURES:
            if key in members[0]:
                entry[key] = _mean_std([m[key] for m in members])
        summary.append(entry)
    return summary


def _fmt(stat: tuple[float, float, int], digits: int = 4) -> str:
    mean, std, n = stat
    return "–" if n == 0 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_report(sweep: Sweep, *, measures: bool = True) -> dict[str, pathlib.Path]:
    """Writes ROOT/report.csv (one row per run), ROOT/report.md (groups, mean ± std) and plots."""
    rows = collect(sweep, measures=measures)
    summary = summarize(rows)
    root = sweep.root
    root.mkdir(parents=True, exist_ok=True)

    csv_path = root / "report.csv"
    fields = [k for k in rows[0] if k != "curve"] if rows else ["run"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    md_path = root / "report.md"
    lines = [f"# Sweep report: `{sweep.config_spec}`", "",
             f"{len(rows)} runs in {len(summary)} groups; mean ± sample std over seeds; "
             "'best' = the validation with the highest val/f1.", ""]
    for which in ("final", "best"):
        lines += [f"## {which.capitalize()} validation", "",
                  "| group | runs (done) | params | " + " | ".join(METRICS) + " |",
                  "|---|---|---:|" + "---:|" * len(METRICS)]
        for s in summary:
            lines.append(f"| {s['group']} | {s['runs']} ({s['done']}) | {s['num_params']:,} | "
                         + " | ".join(_fmt(s[f"{which}_{m}"]) for m in METRICS) + " |")
        lines.append("")
    if measures:
        lines += ["## DIBCO measures and speed", "",
                  "FM, pFM (percent), PSNR (dB) and DRD of the best and the latest checkpoint on the "
                  "validation patches laid out as one page (binjax.run_scores); train images/s as "
                  "logged, inference megapixels/s of a 1024² page in 512² tiles.", "",
                  "| group | best FM | best pFM | best PSNR | best DRD | final FM | final DRD | train img/s | inference MP/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in summary:
            cells = [_fmt(s[k], 2) for k in ("best_fm", "best_pfm", "best_psnr", "best_drd", "final_fm",
                                             "final_drd", "train_images_per_s", "inference_mp_per_s")]
            lines.append(f"| {s['group']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Runs", "", "| run | status | last val step | final val/f1 | best val/f1 (step) |",
              "|---|---|---:|---:|---:|"]
    for r in rows:
        final = "–" if r["final_val/f1"] is None else f"{r['final_val/f1']:.4f}"
        best = "–" if r["best_val/f1"] is None else f"{r['best_val/f1']:.4f} ({r['best_step']})"
        lines.append(f"| {r['run']} | {r['status']} | {r['last_val_step'] or '–'} / {r['num_steps']} | {final} | {best} |")
    md_path.write_text("\n".join(lines) + "\n")

    plots = _plot(rows, summary, root / "plots")
    return dict(csv=csv_path, md=md_path, **plots)


def _plot(rows: list[dict], summary: list[dict], plot_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    groups = [s["group"] for s in summary]
    panels = [(f"final_{m}", f"final {m}", m.replace("/", "_")) for m in METRICS]
    panels += [(k, k.replace("_", " "), f"dibco_{k}") for k in RUN_MEASURES[:4] if summary and k in summary[0]]
    for key, label, stem in panels:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) + 2), 4))
        for i, s in enumerate(summary):
            mean, std, n = s[key]
            seeds = [r[key] for r in rows if r["group"] == s["group"] and r[key] is not None]
            ax.scatter([i] * len(seeds), seeds, color="0.6", s=12, zorder=2)
            if n:
                ax.errorbar([i], [mean], yerr=[std], fmt="o", color="C0", capsize=5, zorder=3)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_title(f"{label}: mean ± std over seeds (grey: each seed)")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = plot_dir / f"{stem}_by_run.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written[key.removeprefix("final_")] = path
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row["curve"]:
            steps, f1 = zip(*row["curve"])
            ax.plot(steps, f1, marker=".", label=row["run"])
    ax.set_xlabel("step")
    ax.set_ylabel("val/f1")
    ax.set_title("Validation F1 per run")
    ax.grid(alpha=0.3)
    if any(r["curve"] for r in rows):
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = plot_dir / "val_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written["val_curves"] = path
    return written
