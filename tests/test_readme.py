"""The README's commands run as pasted: every one that needs neither ../shared nor long runs.

Each command of the README's ```bash blocks is run in order, by bash, in a fresh folder that holds
the checkout's configs/, data/ and docs/, with this venv's bin/ first on PATH (as after
`source .venv/bin/activate`). A command that is not run must match one of NOT_RUN's rules, each
with its reason, so a new README command is run here unless someone says why not.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

NOT_RUN = [
    (r"^python3 -m venv|^source \.venv|^pip install", "the install: .ci/run makes the venv exactly so"),
    (r"^python -m pytest$", "the suite itself: .ci/run runs it, with this test in it"),
    (r"launch\.sweep .*--report", "reports on a sweep's trained runs: none here"),
    (r"\.\./shared", "needs the DIBCO pages (../shared/data/dibco)"),
    (r"^sbatch|tpu_vm\.sh|^export TPU_NAME|local_multiprocess\.sh", "a cluster (the local rehearsal is tests/test_distributed.py)"),
    (r"/path/to/torch-venv", "needs PyTorch, no dependency of binjax"),
    (r"--config=configs/(default|lite|dibco_\w+|collections_\w+)\.py "
     r"--workdir=workdirs/(default|lite|dibco_\w+|collections_\w+|mine|synthetic|dibco_ft)\b"
     r"(?!.*:smoke)", "a full training: minutes (quickstart) to hours"),
    (r"--checkpoints?=workdirs/(default|dibco_\w+|collections_\w+)\b", "needs a full training's workdir"),
    (r"^cp docs/card_template.json my_card.json$", "the DIBCO export's card (its exports need DIBCO trainings)"),
    (r"launch\.benchmark", "a benchmark: minutes, and its figures are not checked"),
    (r"launch\.sweep .*configs/ablations/loss\.py (?!.*(--print_commands|--slurm_array))", "trains a sweep: hours"),
    (r"/data/train", "needs the user's own folders"),
    (r"launch\.protocol", "the cross-collection protocol: every collection of ../shared/data, hours"),
    (r"^launch/(device_check|gpu_wheels)\.sh", "a GPU check (its dry run is tests/test_device_check.py) "
     "and a download of wheels"),
]


def readme_commands(text: str) -> list[str]:
    """The commands of the README's ```bash blocks: continuation lines joined, comment lines dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def _why_not_run(command: str) -> str | None:
    for pattern, reason in NOT_RUN:
        if re.search(pattern, command):
            return reason
    return None


def _bin_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """This venv's bin/ if it has binjax's console scripts, else stubs as pip writes them."""
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    venv_bin = pathlib.Path(sys.executable).parent
    if all((venv_bin / name).exists() for name in scripts):
        return venv_bin
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, target in scripts.items():
        module, function = target.split(":")
        (stubs / name).write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
                                  f"sys.exit({function}())\n")
        (stubs / name).chmod(0o755)
    (stubs / "python").symlink_to(sys.executable)
    return stubs


def test_every_readme_command_is_run_or_says_why_not():
    commands = readme_commands((REPO / "README.md").read_text())
    assert len(commands) > 20
    run = [c for c in commands if _why_not_run(c) is None]
    # The install check, the --help commands, the smoke runs and exports are among those run.
    assert any("binjax-train --config=configs/default.py:smoke" in c for c in run)
    assert any(c.endswith("--help") for c in run)
    assert any(c.startswith("binjax-export") for c in run)


@pytest.mark.slow
def test_readme_commands_run_as_pasted(tmp_path):
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("configs", "data", "docs"):
        (work / name).symlink_to(REPO / name)
    bin_dir = _bin_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # a fresh shell: no test's fake devices
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               VIRTUAL_ENV=str(bin_dir.parent))
    for command in readme_commands((REPO / "README.md").read_text()):
        if _why_not_run(command) is not None:
            continue
        result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + command], cwd=work, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        # Quiet by default: the libraries' INFO lines (Orbax, JAX's backend probes) stay hidden.
        for noise in ("orbax", "libtpu", "Unable to initialize backend"):
            assert noise not in result.stderr, f"{command}: {noise!r} in its log:\n{result.stderr[-3000:]}"
    assert (work / "workdirs" / "smoke_export" / "card.json").exists()
    assert (work / "workdirs" / "smoke_eval" / "summary.md").exists()
