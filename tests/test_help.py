"""Every console script and launcher answers --help with a description, its flags and examples."""

import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
LAUNCHERS = ["train", "evaluate", "binarize", "export", "sweep", "benchmark", "protocol", "scale_test"]
# A flag each launcher must list, besides the shared vocabulary below.
KEY_FLAG = {"train": "--workdir", "evaluate": "--data", "binarize": "--suffix", "export": "--card",
            "sweep": "--report", "benchmark": "--what", "protocol": "--checkpoints",
            "scale_test": "--factors"}


def _check_help(result: subprocess.CompletedProcess, module: str, name: str) -> None:
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    description = out.split("\nflags:")[0]
    assert len(description.split("\n\n")[1]) > 150, "a paragraph of description"
    examples = [line for line in description.splitlines() if line.lstrip().startswith((f"{name} ", "python -m launch."))]
    assert len(examples) >= 2, description
    # A backslash-newline in a non-raw docstring joins two lines with a run of spaces.
    assert not re.search(r"\S {4,}--", description), description
    assert KEY_FLAG[module] in out


def _stub(tmp_path: pathlib.Path, name: str, target: str) -> pathlib.Path:
    """The script pip writes for a [project.scripts] entry: __main__ is this stub, not the launcher."""
    module, function = target.split(":")
    stub = tmp_path / name
    stub.write_text(f"import sys\nfrom {module} import {function}\nif __name__ == '__main__':\n"
                    f"    sys.exit({function}())\n")
    return stub


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_scripts_answer_help(name, tmp_path):
    stub = _stub(tmp_path, name, SCRIPTS[name])
    result = subprocess.run([sys.executable, str(stub), "--help"], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=120)
    _check_help(result, SCRIPTS[name].split(":")[0].removeprefix("launch."), name)


@pytest.mark.parametrize("module", LAUNCHERS)
def test_launchers_answer_help(module):
    result = subprocess.run([sys.executable, "-m", f"launch.{module}", "--help"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    _check_help(result, module, f"binjax-{module}")


def test_one_vocabulary_across_launchers():
    """The same flag names mean the same thing: one model is --checkpoint, several --checkpoints."""
    helps = {m: subprocess.run([sys.executable, "-m", f"launch.{m}", "--helpfull"], cwd=REPO, env=ENV,
                               capture_output=True, text=True, timeout=120).stdout for m in LAUNCHERS}
    for module in ("evaluate", "binarize"):
        assert "--inference_batch" in helps[module] and "Deprecated: the old name of --inference_batch" in helps[module]
    assert "--inference_batch" in helps["benchmark"]
    assert "--checkpoints:" in helps["evaluate"] and "--methods:" in helps["evaluate"]
    for module in ("binarize", "export"):
        assert "--checkpoint:" in helps[module] and "--checkpoints:" not in helps[module]
    for module in ("evaluate", "binarize", "export"):
        assert "--out:" in helps[module] and "--out_dir" not in helps[module]


def test_pytorch_benchmark_help_needs_no_torch():
    result = subprocess.run([sys.executable, "launch/benchmark_pytorch.py", "--help"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--channels_last" in result.stdout and "--inference_batch" in result.stdout
    assert not re.search(r"\S {4,}--", result.stdout.split("options:")[0])


def test_help_names_the_shipped_default_model_without_loading_jax():
    """The help texts take the default model's name from binjax.released, which needs no JAX, so a
    new default is named everywhere at once."""
    from binjax import released  # noqa: PLC0415

    probe = ("import sys; from binjax import released; assert 'jax' not in sys.modules; "
             "print(released.DEFAULT_MODEL, released.names_for_help())")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert released.DEFAULT_MODEL in released.released_models()
    for module in ("binarize", "evaluate"):
        out = subprocess.run([sys.executable, "-m", f"launch.{module}", "--help"], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=120).stdout
        flat = " ".join(out.split())
        assert f"Default: the released {released.DEFAULT_MODEL}" in flat, flat
        assert released.names_for_help() in flat
