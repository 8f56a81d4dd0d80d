"""Ablation sweeps: grid helpers, run names, locked overrides, launcher commands, run/skip/report."""

import csv
import importlib
import json
import os
import pathlib
import shlex
import subprocess
import sys

import ml_collections
import pytest

from binjax import sweep

REPO = pathlib.Path(__file__).resolve().parents[1]
ABLATIONS = sorted(p.stem for p in (REPO / "configs" / "ablations").glob("*.py") if not p.name.startswith("_"))
# Whole smoke sweeps trained end to end, and with how many `launch.train` subprocesses (0: in process).
WHOLE_SMOKE_SWEEPS = {"augmentation": 2, "foreground": 0, "width_depth": 0}


def _field(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


def test_grid_and_with_seeds():
    runs = sweep.grid({"loss.name": ["bce", "dice"]}, batch_size=[4, 8])
    assert runs == [
        {"loss.name": "bce", "batch_size": 4}, {"loss.name": "bce", "batch_size": 8},
        {"loss.name": "dice", "batch_size": 4}, {"loss.name": "dice", "batch_size": 8},
    ]
    seeded = sweep.with_seeds(runs[:2], [0, 1])
    assert seeded == [
        {"loss.name": "bce", "batch_size": 4, "seed": 0}, {"loss.name": "bce", "batch_size": 4, "seed": 1},
        {"loss.name": "bce", "batch_size": 8, "seed": 0}, {"loss.name": "bce", "batch_size": 8, "seed": 1},
    ]
    assert sweep.grid() == [{}]
    with pytest.raises(TypeError, match="loss.name"):
        sweep.grid({"loss.name": "dice"})  # a bare string is not a list of values


def test_run_name_is_stable_and_filesystem_safe():
    assert sweep.run_name({"seed": 1, "loss.name": "dice"}) == "loss.name=dice,seed=1"
    assert sweep.run_name({"loss.name": "dice", "seed": 1}) == "loss.name=dice,seed=1"
    assert sweep.run_name({"arg": "lite", "seed": 0}) == "arg=lite,seed=0"
    assert sweep.run_name({"model.widths": (4, 8), "data.folder.train": "/a b/c"}) == (
        "data.folder.train=_a_b_c,model.widths=(4,8)")
    assert sweep.run_name({}) == "base"
    assert sweep.group_key({"loss.name": "dice", "seed": 1}) == "loss.name=dice"


def test_apply_overrides_sets_fields_and_rejects_unknown_keys():
    config = importlib.import_module("configs.ablations.loss").get_config("smoke")
    config.lock()
    sweep.apply_overrides(config, {"loss.name": "dice", "seed": 3, "model.widths": [4, 8], "arg": "ignored"})
    assert (config.loss.name, config.seed, config.model.widths) == ("dice", 3, (4, 8))
    with pytest.raises(KeyError, match=r"'loss.nmae'.*no field 'nmae'"):
        sweep.apply_overrides(config, {"loss.nmae": "dice"})
    with pytest.raises(KeyError, match="no field 'sed'"):
        sweep.apply_overrides(ml_collections.ConfigDict(dict(seed=0)), {"sed": 1})  # even unlocked
    with pytest.raises(KeyError, match="no field 'x'"):
        sweep.apply_overrides(config, {"seed.x": 1})  # a leaf is not a sub-config
    with pytest.raises(TypeError):
        sweep.apply_overrides(config, {"seed": "one"})


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_configs_load_and_their_sweeps_apply(name):
    module = importlib.import_module(f"configs.ablations.{name}")
    module.get_config()
    assert module.get_config("smoke").num_steps == 4
    for arg in (None, "smoke"):
        experiment = sweep.Sweep(f"configs/ablations/{name}.py" + (f":{arg}" if arg else ""), "/tmp/unused")
        assert len(experiment.runs) >= 4 and {r["seed"] for r in experiment.runs} == {0, 1}
        for overrides in experiment.runs:
            config = experiment.config(overrides)  # every run's config loads, overrides apply
            # smoke runs take 4 steps, or what an arm sets, still tiny (synthetic_mix's twice the steps: 8)
            steps = overrides.get("num_steps", 4)
            assert (config.num_steps == steps <= 2 * 4) == (arg == "smoke")
            for key, value in overrides.items():
                assert key == sweep.ARG or _field(config, key) == value


def test_architecture_sweep_builds_each_model():
    module = importlib.import_module("configs.ablations.architecture")
    assert module.get_config("unet_noskip,smoke").model.skips is False
    assert module.get_config("lite").model.name == "lite"
    assert module.get_config("sae,smoke").model.name == "sae"
    with pytest.raises(ValueError, match="resnet"):
        module.get_config("resnet")


def _sweep(*args, **kwargs):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_print_commands():
    result = _sweep("--config=configs/ablations/architecture.py:smoke", "--workdir=/tmp/root", "--print_commands",
                    "--only=lite|sae|seed=0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (
        "python -m launch.train --config=configs/ablations/architecture.py:unet,smoke "
        "--workdir=/tmp/root/arg=unet,seed=0 --config.seed=0")
    assert len(lines) == 2 + 2 + 2  # lite x2, sae x2, and the other models' seed 0
    assert "--config=configs/ablations/architecture.py:lite,smoke --workdir=/tmp/root/arg=lite,seed=1" in lines[3]


def test_sweep_runs_skips_finished_runs_and_reports(tmp_path):
    args = ["--config=configs/ablations/loss.py:smoke", f"--workdir={tmp_path}"]
    first = _sweep(*args, "--only=loss.name=dice,", "--limit=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 to start" in first.stdout and "Sweep finished: 2 trained now" in first.stdout
    for seed in (0, 1):
        run = tmp_path / f"loss.name=dice,seed={seed}"
        assert (run / sweep.DONE).exists() and (run / "metrics.jsonl").exists()
        assert '"name": "dice"' in (run / "config.json").read_text()

    again = _sweep(*args, "--only=loss.name=dice,", "--limit=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 done (skipped)" in again.stdout and "0 trained now" in again.stdout

    report = _sweep(*args, "--report")
    assert report.returncode == 0, report.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert [r["run"] for r in rows] == [f"loss.name={n},seed={s}" for n in ("bce", "dice", "bce_dice", "focal") for s in (0, 1)]
    done = [r for r in rows if r["status"] == "done"]
    assert [r["run"] for r in done] == ["loss.name=dice,seed=0", "loss.name=dice,seed=1"]
    for r in done:
        assert r["last_val_step"] == "4" and 0.0 <= float(r["final_val/f1"]) <= 1.0 and int(r["num_params"]) > 0
        assert float(r["best_val/f1"]) >= float(r["final_val/f1"])
        # The DIBCO F-measure of the validation mosaic is the F1 training logged from pixel counts.
        assert float(r["final_fm"]) == pytest.approx(100 * float(r["final_val/f1"]), rel=1e-5)
        assert float(r["best_fm"]) == pytest.approx(100 * float(r["best_val/f1"]), rel=1e-5)
        assert float(r["best_drd"]) >= 0 and float(r["best_psnr"]) > 0 and 0 <= float(r["best_pfm"]) <= 100
        assert float(r["train_images_per_s"]) > 0 and float(r["inference_mp_per_s"]) > 0
    assert all(r["best_fm"] == "" for r in rows if r["status"] != "done")  # nothing to score yet
    md = (tmp_path / "report.md").read_text()
    assert "| loss.name=dice | 2 (2) |" in md and " ± " in md and "## DIBCO measures and speed" in md
    assert (tmp_path / "plots" / "dibco_best_drd_by_run.png").stat().st_size > 0
    for metric in sweep.METRICS:
        assert (tmp_path / "plots" / f"{metric.replace('/', '_')}_by_run.png").stat().st_size > 0
    assert (tmp_path / "plots" / "val_curves.png").stat().st_size > 0


def test_print_commands_one_per_run_and_slurm_array_task_i_runs_run_i(tmp_path):
    args = ["--config=configs/ablations/width_depth.py:smoke", f"--workdir={tmp_path}/root", "--python=echo"]
    printed = _sweep(*args, "--print_commands")
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.strip().splitlines()
    runs = sweep.Sweep("configs/ablations/width_depth.py:smoke", tmp_path / "root").runs
    assert len(lines) == len(runs) == 8
    for line, overrides in zip(lines, runs):
        cmd = shlex.split(line)
        assert cmd[:4] == ["echo", "-m", "launch.train", "--config=configs/ablations/width_depth.py:smoke"]
        assert cmd[4] == f"--workdir={tmp_path}/root/{sweep.run_name(overrides)}"
        assert sorted(cmd[5:]) == sorted(f"--config.{k}={v}" for k, v in overrides.items())

    script = tmp_path / "width_depth.sbatch"
    written = _sweep(*args, f"--slurm_array={script}")
    assert written.returncode == 0, written.stderr
    text = script.read_text()
    assert "#SBATCH --array=0-7\n" in text and f"#SBATCH --output={tmp_path}/root/slurm/%A_%a.out" in text
    assert (tmp_path / "root" / "slurm").is_dir()
    for task, line in enumerate(lines):  # with python=echo, task i prints run i's command line
        ran = subprocess.run(["bash", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID=str(task)),
                             cwd=tmp_path, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split() == shlex.split(line)[1:]
    for env in (dict(os.environ, SLURM_ARRAY_TASK_ID="8"), {k: v for k, v in os.environ.items() if k != "SLURM_ARRAY_TASK_ID"}):
        ran = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        assert ran.returncode != 0 and ran.stdout == ""


@pytest.mark.parametrize("name", sorted(WHOLE_SMOKE_SWEEPS))
def test_whole_smoke_sweep_trains_skips_and_reports(name, tmp_path):
    parallel = WHOLE_SMOKE_SWEEPS[name]
    args = [f"--config=configs/ablations/{name}.py:smoke", f"--workdir={tmp_path}", f"--parallel={parallel}"]
    runs = sweep.Sweep(f"configs/ablations/{name}.py:smoke", tmp_path).runs
    first = _sweep(*args)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert f"{len(runs)} to start" in first.stdout and f"Sweep finished: {len(runs)} trained now" in first.stdout
    for overrides in runs:
        run = tmp_path / sweep.run_name(overrides)
        assert (run / sweep.DONE).exists() and (run / "metrics.jsonl").exists()
        assert (run / "train.log").exists() == (parallel > 0)
        config = ml_collections.ConfigDict(json.loads((run / "config.json").read_text()))
        for key, value in overrides.items():  # the run trained with its overrides (also via the CLI)
            assert _field(config, key) == value, (run, key)

    if parallel:  # (test_sweep_runs_skips_finished_runs_and_reports checks skipping in process)
        again = _sweep(*args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f"{len(runs)} done (skipped)" in again.stdout and "0 trained now" in again.stdout

    report = _sweep(*args, "--report")
    assert report.returncode == 0, report.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "report.csv")))
    assert [r["run"] for r in rows] == [sweep.run_name(o) for o in runs]
    assert all(r["status"] == "done" and r["last_val_step"] == "4" for r in rows)
    md = (tmp_path / "report.md").read_text()
    for group in {sweep.group_key(o) for o in runs}:
        assert f"| {group} | 2 (2) |" in md
    assert (tmp_path / "plots" / "val_curves.png").stat().st_size > 0
    assert all((tmp_path / "plots" / f"{m.replace('/', '_')}_by_run.png").exists() for m in sweep.METRICS)

    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], set()).add(r["final_val/otsu_f1"])
    if name == "width_depth":  # each point of the grid is a different model
        assert len({r["num_params"] for r in rows}) == len(runs) // 2
    else:  # the same model, and every arm scored on the same validation patches (Otsu scores them alike)
        assert len({r["num_params"] for r in rows}) == 1
        assert all(len(otsu) == 1 for otsu in by_seed.values()), by_seed


def test_each_run_is_handed_on_as_soon_as_it_is_done(tmp_path, monkeypatch):
    """on_done sees a run right after its DONE marker and before the next run trains, so a sweep
    stopped part-way (here: the third run fails) has handed on every run it finished."""
    from binjax import sweep_runs, train

    experiment = sweep.Sweep("configs/ablations/loss.py:smoke", tmp_path)
    plan = experiment.runs[:3]
    events = []

    def fake_train(config, workdir, progress=True):
        assert progress is False   # the caller's --noprogress reaches the training bar
        if len(events) == 2 * 2:  # two runs trained and handed on: the third breaks
            raise RuntimeError("disk gone")
        pathlib.Path(workdir).mkdir(parents=True)
        events.append(("train", pathlib.Path(workdir).name))
        return {"val/f1": 0.5}

    def on_done(overrides):
        workdir = experiment.workdir(overrides)
        assert (workdir / sweep.DONE).exists()
        events.append(("done", workdir.name))

    monkeypatch.setattr(train, "train_and_evaluate", fake_train)
    failed = sweep_runs.train_in_process(plan, experiment, on_done=on_done, progress=False)
    names = [sweep.run_name(r) for r in plan]
    assert events == [("train", names[0]), ("done", names[0]), ("train", names[1]), ("done", names[1])]
    assert failed == [names[2]]
