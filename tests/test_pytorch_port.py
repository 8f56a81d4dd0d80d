"""launch/pytorch_models.py's LiteUNet is binjax's LiteUNet: same parameters, same outputs.

launch/benchmark_pytorch.py compares binjax's speed against this port, so the port must be the
same network: given binjax's released weights (dibco_lite) it must give binjax's logits on a page,
and the benchmark's numpy sliding window must blend tiles as binjax.inference does. PyTorch is no
dependency of binjax (CI does not install it): without torch these tests skip.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from binjax import imageio, inference, pretrained
from binjax.models import create_model
from conftest import REPO_ROOT

torch = pytest.importorskip("torch", reason="PyTorch is no binjax dependency; the port is checked where it is installed")
from launch import benchmark_pytorch, pytorch_models  # noqa: E402  (both import torch)

WEIGHTS = REPO_ROOT / "binjax" / "weights" / "dibco_lite" / "weights.npz"


@pytest.fixture(scope="module")
def models():
    binjax_model, _ = pretrained.load_model("dibco_lite")
    port = pytorch_models.load_binjax_weights(pytorch_models.build("lite"), WEIGHTS)
    return binjax_model, port


@pytest.fixture(scope="module")
def page():
    """A crop of a sample page whose sides are no multiple of 16 (the models pad and crop)."""
    image = imageio.load_image(REPO_ROOT / "data" / "samples" / "synthetic_00_grey_in.png", channels=1)
    return np.ascontiguousarray(image[100:403, 50:525])


def test_parameter_counts_match_binjax():
    binjax_model = create_model("lite", in_channels=1, rngs=nnx.Rngs(0))
    binjax_count = sum(p.size for p in jax.tree.leaves(nnx.state(binjax_model, nnx.Param)))
    assert binjax_count == pytorch_models.LITE_PARAMETERS
    assert sum(p.numel() for p in pytorch_models.build("lite").parameters()) == binjax_count


def test_port_gives_binjax_logits_on_a_page(models, page):
    binjax_model, port = models
    x = page[None].astype(np.float32) / np.float32(255.0)  # NHWC
    expected = np.asarray(binjax_model(jnp.asarray(x)))[0, ..., 0]
    with torch.inference_mode():
        got = port(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())[0, 0].numpy()
    assert got.shape == expected.shape == page.shape[:2]
    assert np.abs(expected).max() > 1.0  # trained weights: real logits, not a near-constant map
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_numpy_sliding_window_is_binjax_s(models, page):
    for length, tile, overlap in [(3508, 512, 0.5), (2480, 512, 0.25), (512, 512, 0.5), (700, 128, 0.3)]:
        assert benchmark_pytorch.tile_starts(length, tile, overlap) == inference.tile_starts(length, tile, overlap)
    np.testing.assert_array_equal(benchmark_pytorch.gaussian_importance_map(128),
                                  inference.gaussian_importance_map(128))
    binjax_model, port = models
    predict = inference.make_predict_fn(binjax_model)
    forward = benchmark_pytorch.make_forward(port, channels_last=True)
    for overlap in (0.5, 0.25):
        expected = inference.sliding_window_predict(predict, page, tile=128, overlap=overlap, batch_size=4)
        got = benchmark_pytorch.sliding_window_predict(forward, page, tile=128, overlap=overlap, batch_size=4)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
