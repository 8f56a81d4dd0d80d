"""Test setup: fake 8 CPU devices before JAX is imported, so sharding is tested on CPU.

JAX_PLATFORMS, when set, is kept: launch/device_check.sh runs its selection of the suite with
JAX_PLATFORMS=cuda on a GPU. BINJAX_TEST_HOST_DEVICES (default 8) sets the fake CPU device count;
its dry run on the CPU uses 1, the device count of the one-GPU machine it prepares for.
"""

import os
import pathlib
import shutil
import tempfile

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # xdist workers inherit it
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
                               + os.environ.get("BINJAX_TEST_HOST_DEVICES", "8")).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA compilation cache for the whole session, this process and every launcher
# subprocess the tests start (they inherit the environment): the smoke models are compiled by
# dozens of tests and subprocesses, and each shape compiles once. A fresh folder per session, so
# the suite's time is a cold start's; removed at the end (pytest_sessionfinish). pytest-xdist's
# workers inherit the folder from the main process, which made it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="binjax-tests-xla-cache-")
    _OWN_XLA_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]
else:
    _OWN_XLA_CACHE = None
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    del session, exitstatus
    if _OWN_XLA_CACHE is not None:
        shutil.rmtree(_OWN_XLA_CACHE, ignore_errors=True)


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIBCO = REPO_ROOT.parent / "shared" / "data" / "dibco"


@pytest.fixture
def dibco_dir() -> pathlib.Path:
    """The team's DIBCO pages beside the checkout; skips the test when they are absent."""
    if not (SHARED_DIBCO / "MANIFEST.tsv").exists():
        pytest.skip(f"DIBCO benchmark pages not found at {SHARED_DIBCO} (../shared is absent)")
    return SHARED_DIBCO


@pytest.fixture(scope="session")
def dibco_fixed_data_dir(tmp_path_factory) -> pathlib.Path:
    """A tfds data_dir holding dibco/fixed, prepared once from the shared pages (about 25 s)."""
    if not (SHARED_DIBCO / "MANIFEST.tsv").exists():
        pytest.skip(f"DIBCO benchmark pages not found at {SHARED_DIBCO} (../shared is absent)")
    from binjax.data import dibco  # noqa: PLC0415 -- imports tensorflow_datasets: only when needed

    data_dir = tmp_path_factory.mktemp("tfds_fixed")
    dibco.prepare(SHARED_DIBCO, data_dir, "fixed")
    return data_dir


def save_tiny_checkpoint(workdir: pathlib.Path, channels: int = 1, **data) -> pathlib.Path:
    """An untrained tiny U-Net (the smoke config) saved by the real Checkpointer: a model to
    run through the launchers without training one. `data` overrides config.data fields."""
    import jax  # noqa: PLC0415

    from binjax import checkpointing, sharding, train  # noqa: PLC0415
    from configs import default as default_config  # noqa: PLC0415

    config = default_config.get_config("smoke")  # unet depth 2, base width 4
    config.data.channels = channels
    config.data.update(data)
    mesh = sharding.make_mesh(config.mesh, devices=jax.devices()[:1])
    state = train.make_steps(config, mesh).init()
    saver = checkpointing.Checkpointer(workdir, every_steps=1, best_metric=None)
    saver.maybe_save(1, state, {}, config, force=True)
    saver.wait_until_finished()
    saver.close()
    return workdir


@pytest.fixture(scope="session")
def tiny_grey_workdir(tmp_path_factory) -> pathlib.Path:
    """save_tiny_checkpoint's 1-channel model, saved once for every test that only runs it."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_grey_workdir"), channels=1)


def binarize_with_bad_flag(tmp_path: pathlib.Path, page, flag: str) -> None:
    """Runs launch.binarize on one page with a bad `flag`; asserts one stderr line naming it and no output."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    repo = pathlib.Path(__file__).resolve().parents[1]
    path = tmp_path / "page.png"
    Image.fromarray(page).save(path)
    env = dict(os.environ, PYTHONPATH=str(repo), JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "launch.binarize", str(path), f"--out={tmp_path / 'o'}", flag],
                            capture_output=True, text=True, cwd=repo, env=env, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert not (tmp_path / "o").exists()
