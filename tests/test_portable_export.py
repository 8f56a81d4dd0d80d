"""The portable export (binjax/portable): a jax.export artifact with none of binjax's custom calls,
run by a script that cannot import binjax, predicting as binjax itself does."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from binjax import binarizers, cpu_kernels, export, imageio, inference, pretrained, released
from binjax.models import unet
from binjax.portable import stablehlo
from conftest import REPO_ROOT, save_tiny_checkpoint

# The runner under a Python that cannot import binjax or flax (the editable install would
# otherwise find them): `import binjax` anywhere in it raises ImportError.
_WITHOUT_BINJAX = (
    "import sys, runpy\n"
    "for name in ('binjax', 'flax', 'ml_collections', 'orbax'): sys.modules[name] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "assert not [m for m in sys.modules if m.startswith('binjax') and sys.modules[m]]\n"
)
_CLEAN_ENV = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "JAX_PLATFORMS": "cpu"}
TILE = 32  # the smoke U-Net has depth 2: tiles of 32 need no padding inside it


def _run_without_binjax(args, cwd):
    return subprocess.run([sys.executable, "-I", "-c", _WITHOUT_BINJAX, *map(str, args)], cwd=cwd,
                          env=_CLEAN_ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The smoke checkpoint exported by the launcher as weights and StableHLO at once."""
    root = tmp_path_factory.mktemp("portable")
    return _export(save_tiny_checkpoint(root / "run"), root / "export")


def _export(workdir, out):
    """launch.export of a training workdir as weights and StableHLO at once; returns `out`."""
    result = subprocess.run(
        [sys.executable, "-m", "launch.export", f"--checkpoint={workdir}", f"--out={out}",
         "--formats=weights,stablehlo", f"--tile={TILE}"],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _page(seed=0, shape=(75, 50)):
    """A page that is not a multiple of the tile, strokes on paper, saved as a grey PNG."""
    rng = np.random.default_rng(seed)
    page = np.full(shape, 215, np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 10)
        page[y:y + 3, x:x + 9] = rng.integers(10, 90)
    return np.clip(page + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)


def test_export_writes_weights_artifact_runner_and_card(exported):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["card.json", "config.json", "model.stablehlo", "run_stablehlo.py", "weights.npz"]
    card = export.read_card(exported)
    assert card["stablehlo"]["input"]["shape"] == ["b", str(TILE), str(TILE), "1"]
    assert card["stablehlo"]["input"]["dtype"] == "uint8" and card["stablehlo"]["platforms"] == ["cpu", "cuda"]
    artifact = stablehlo.load(exported / stablehlo.ARTIFACT)
    assert artifact.platforms == ("cpu", "cuda")


def test_the_runner_without_binjax_matches_binjax_binarize(exported, tmp_path):
    page = _page()
    Image.fromarray(page).save(tmp_path / "page.png", dpi=(300, 300))
    result = _run_without_binjax([exported / "run_stablehlo.py", "page.png", "page_bw.png",
                                  "--probabilities=prob.npy", "--inference_batch=3"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    model = binarizers.ModelBinarizer(exported, tile=TILE)
    grey = imageio.load_image(tmp_path / "page.png", 1)
    expected = np.asarray(model.probability(grey))
    got = np.load(tmp_path / "prob.npy")
    assert got.shape == page.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    with Image.open(tmp_path / "page_bw.png") as written:
        assert written.mode == "1" and written.info["dpi"] == pytest.approx((300, 300), rel=1e-4)
        ink = ~np.asarray(written)
    near_threshold = np.abs(expected - 0.5) < 1e-5
    assert near_threshold.mean() < 0.01  # the comparison below covers nearly every pixel
    assert np.array_equal(ink[~near_threshold], model(grey)[~near_threshold])


def test_the_runner_names_a_missing_model_in_one_line(tmp_path):
    result = _run_without_binjax([stablehlo.RUNNER_SOURCE, "page.png", "out.png", "--model=none.stablehlo"],
                                 tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: none.stablehlo: no such file")


def _unet16():
    """A small U-Net whose 3x3 convs have 16 and 32 channels, those binjax's CPU kernels take, in
    eval mode; random weights from numpy (initialising it eagerly in JAX costs seconds)."""
    rng = np.random.default_rng(0)
    abstract = nnx.eval_shape(lambda: unet.UNet(1, depth=1, base_width=16, norm="batch", rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)

    def fill(path, leaf):
        value = rng.normal(0.0, 0.2, leaf.shape).astype(leaf.dtype)
        is_variance = any(getattr(k, "key", None) == "var" for k in path)
        return np.abs(value) + 0.5 if is_variance else value  # BatchNorm variances > 0

    model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))
    return nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)


def test_the_artifact_holds_no_binjax_custom_call_and_predicts_as_the_model():
    model = _unet16()
    artifact = stablehlo.export_tile_predictor(model, in_channels=1, tile=16)
    assert not {t for t in stablehlo.custom_call_targets(artifact) if t.startswith("binjax")}
    tiles = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    expected = np.asarray(inference.make_predict_fn(model)(tiles.astype(np.float32) / np.float32(255)))
    # atol: binjax's own path runs Winograd convs on x86 (within ~1e-5 of the largest output)
    np.testing.assert_allclose(np.asarray(artifact.call(tiles)), expected, rtol=0, atol=1e-5)
    if not cpu_kernels.available():
        pytest.skip("binjax's CPU kernels are not available here: nothing they could leak into")
    # The control: traced with the kernels on, the same function does call them.
    predictor = stablehlo.tile_predictor(model)
    spec = jax.ShapeDtypeStruct((*jax.export.symbolic_shape("b"), 16, 16, 1), np.uint8)
    checks = [jax.export.DisabledSafetyCheck.custom_call(t) for t in (cpu_kernels.CONV3X3_TO16,
              cpu_kernels.CONV3X3_WINOGRAD, cpu_kernels.CONV3X3_WINOGRAD_AFFINE_RELU)]
    with_kernels = jax.export.export(jax.jit(predictor), disabled_checks=checks)(spec)
    assert {t for t in stablehlo.custom_call_targets(with_kernels) if t.startswith("binjax")}


def test_asking_for_onnx_fails_in_one_line_before_loading(tmp_path):
    """ONNX is not written (README "Export a model" says why): asking for it says so."""
    result = subprocess.run([sys.executable, "-m", "launch.export", "--checkpoint=dibco_lite",
                             f"--out={tmp_path / 'out'}", "--formats=stablehlo,onnx"],
                            cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                            capture_output=True, text=True, timeout=120)
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and "--formats=stablehlo,onnx: choose from weights, stablehlo" in last_line
    assert not (tmp_path / "out").exists()


def test_the_released_lite_model_exports_and_predicts_as_binjax():
    model, config = pretrained.load_model(released.DEFAULT_MODEL)
    artifact = stablehlo.export_tile_predictor(model, in_channels=int(config.data.channels), tile=64)
    grey = imageio.load_image(REPO_ROOT / "data" / "samples" / "synthetic_00_grey_in.png", 1)
    tiles = np.stack([grey[:64, :64], grey[100:164, 200:264]])
    expected = np.asarray(inference.make_predict_fn(model)(tiles.astype(np.float32) / np.float32(255)))
    np.testing.assert_allclose(np.asarray(artifact.call(tiles)), expected, rtol=0, atol=1e-5)


def test_the_runner_stretches_as_binjax_and_as_the_model_was_trained(tmp_path):
    """A model trained on contrast-stretched pages: the card records it, and the runner (which
    repeats binjax.contrast.stretch) gives binjax's probabilities without being told."""
    from binjax import contrast
    from binjax.portable import run_stablehlo

    rng = np.random.default_rng(5)
    for page in (rng.integers(90, 140, (37, 41, 1), dtype=np.uint8), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
                 np.full((9, 9, 1), 77, np.uint8)):
        np.testing.assert_array_equal(run_stablehlo.stretch(page), contrast.stretch(page))
    out = _export(save_tiny_checkpoint(tmp_path / "run", contrast="stretch"), tmp_path / "export")
    assert export.read_card(out)["stablehlo"]["contrast"] == "stretch"
    faint = (_page().astype(np.int32) // 8 + 150).astype(np.uint8)  # ink a few levels below the paper
    Image.fromarray(faint).save(tmp_path / "faint.png")
    model = binarizers.ModelBinarizer(out, tile=TILE)
    assert model.contrast == "stretch"
    expected = np.asarray(model.probability(faint))
    for extra, want in (([], expected), (["--contrast=none"], np.asarray(
            binarizers.ModelBinarizer(out, tile=TILE, contrast="none").probability(faint)))):
        result = _run_without_binjax([out / "run_stablehlo.py", "faint.png", "faint_bw.png",
                                      "--probabilities=prob.npy", *extra], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        np.testing.assert_allclose(np.load(tmp_path / "prob.npy"), want, rtol=0, atol=1e-5)
    assert np.abs(expected - np.load(tmp_path / "prob.npy")).max() > 1e-3  # the two really differ


def test_the_runner_flattens_as_binjax_and_as_the_model_was_trained(tmp_path):
    """A model trained on flattened pages: the runner repeats binjax.contrast.flatten with numpy
    alone (scipy's filters rebuilt from sliding windows) and gives binjax's probabilities."""
    from skimage import data

    from binjax import contrast
    from binjax.portable import run_stablehlo

    rng = np.random.default_rng(6)
    for page in (data.page()[..., None], data.astronaut(), rng.integers(0, 256, (57, 93, 3), dtype=np.uint8),
                 np.full((9, 9, 1), 77, np.uint8)):
        ours, theirs = run_stablehlo.flatten(page).astype(int), contrast.flatten(page)
        # scipy sums its box filter in another order: a pixel on a rounding edge may land 1 level off.
        assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 1e-4
    out = _export(save_tiny_checkpoint(tmp_path / "run", contrast="flatten"), tmp_path / "export")
    assert export.read_card(out)["stablehlo"]["contrast"] == "flatten"
    shaded = np.clip(_page().astype(np.float32) * np.linspace(0.5, 1.0, _page().shape[1])[None, :], 0, 255)
    Image.fromarray(shaded.astype(np.uint8)).save(tmp_path / "shaded.png")
    model = binarizers.ModelBinarizer(out, tile=TILE)
    assert model.contrast == "flatten"
    expected = np.asarray(model.probability(np.asarray(Image.open(tmp_path / "shaded.png"))))
    result = _run_without_binjax([out / "run_stablehlo.py", "shaded.png", "shaded_bw.png", "--probabilities=prob.npy"],
                                 tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "prob.npy"), expected, rtol=0, atol=1e-3)
    plain = np.asarray(binarizers.ModelBinarizer(out, tile=TILE, contrast="none").probability(
        np.asarray(Image.open(tmp_path / "shaded.png"))))
    assert np.abs(expected - plain).max() > 1e-2  # flattening really changed what the model saw


def test_the_runner_adds_the_paper_channel_as_binjax(tmp_path):
    """A model that takes the page's paper estimate as an extra channel (config.data.context=
    'paper'): the card records it, and the runner computes the channel as binjax.page_context does."""
    from skimage import data

    from binjax import page_context
    from binjax.portable import run_stablehlo

    for page in (data.page()[..., None], data.astronaut()):
        ours, theirs = run_stablehlo.paper_channel(page).astype(int), page_context.paper_channel(page)
        assert np.abs(ours - theirs).max() <= 1 and (ours != theirs).mean() < 1e-3  # box-filter rounding
    out = _export(save_tiny_checkpoint(tmp_path / "run", context="paper", contrast="stretch"), tmp_path / "export")
    card = export.read_card(out)["stablehlo"]
    assert (card["context"], card["contrast"], card["input"]["shape"][-1]) == ("paper", "stretch", "2")
    shaded = np.clip(_page().astype(np.float32) * np.linspace(0.5, 1.0, _page().shape[1])[None, :], 0, 255)
    Image.fromarray(shaded.astype(np.uint8)).save(tmp_path / "shaded.png")
    page = np.asarray(Image.open(tmp_path / "shaded.png"))
    expected = np.asarray(binarizers.ModelBinarizer(out, tile=TILE).probability(page))
    result = _run_without_binjax([out / "run_stablehlo.py", "shaded.png", "shaded_bw.png", "--probabilities=prob.npy"],
                                 tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "prob.npy"), expected, rtol=0, atol=1e-3)
