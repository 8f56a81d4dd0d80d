"""The binarize launcher: every input kind, names and sizes kept, inputs never overwritten, bad files skipped."""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from binjax import baselines, binarize, checkpointing, imageio, sharding, train
from binjax.data import synthetic
from configs import default as default_config

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
SIZES = {"grey": (48, 64), "rgb": (40, 72), "rgba": (56, 40), "grey16": (32, 80), "palette": (64, 64)}


def _binarize(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def _digest(folder: pathlib.Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _outputs(folder: pathlib.Path) -> list[str]:
    """The files binarize wrote into folder, besides the manifest it always keeps there."""
    return sorted(p.name for p in folder.iterdir() if p.name != "manifest.csv")


@pytest.fixture
def inputs(tmp_path) -> pathlib.Path:
    """One file of each kind imageio handles, plus a corrupt one."""
    folder = tmp_path / "in"
    folder.mkdir()
    pages = {k: synthetic.render_page(i, h, w, channels=3) for i, (k, (h, w)) in enumerate(SIZES.items())}
    grey = lambda k: pages[k]["image"][..., 0]  # noqa: E731
    Image.fromarray(grey("grey")).save(folder / "grey.png")
    Image.fromarray(pages["rgb"]["image"]).save(folder / "rgb.jpg", quality=95)
    alpha = np.full(SIZES["rgba"], 255, np.uint8)
    alpha[:, :8] = 0  # a transparent strip: paper
    Image.fromarray(np.dstack([pages["rgba"]["image"], alpha])).save(folder / "rgba.png")
    Image.fromarray(grey("grey16").astype(np.uint16) * 257).save(folder / "grey16.png")  # mode I;16
    Image.fromarray(pages["palette"]["image"]).quantize(16).save(folder / "palette.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    with Image.open(folder / "grey16.png") as im:
        assert im.mode.startswith("I")
    with Image.open(folder / "palette.png") as im:
        assert im.mode == "P"
    return folder


def test_folder_with_every_kind_of_image_and_a_corrupt_file(inputs, tmp_path):
    before = _digest(inputs)
    out = tmp_path / "out"
    result = _binarize(inputs, "--method=otsu", f"--out={out}")
    assert result.returncode == 1, result.stderr
    assert f"{inputs / 'corrupt.png'}" in result.stderr and "skipped" in result.stderr
    assert _outputs(out) == sorted(f"{k}.png" for k in SIZES)
    for kind, (h, w) in SIZES.items():
        with Image.open(out / f"{kind}.png") as im:
            assert im.mode == "1" and im.size == (w, h), kind
        ink = imageio.load_mask(out / f"{kind}.png", "black").astype(bool)  # ink black
        src = next(inputs.glob(f"{kind}.*"))
        expected = baselines.binarize_classic(imageio.load_image(src, 1)[..., 0], "otsu")
        assert np.array_equal(ink, expected), kind
    assert _digest(inputs) == before


def test_eight_bit_tiff_with_white_ink_and_globs(inputs, tmp_path):
    out = tmp_path / "tif"
    result = _binarize(inputs / "*.png", "--method=sauvola:window=15", f"--out={out}", "--format=tif",
                       "--bits=8", "--foreground=white")
    assert result.returncode == 1  # the glob includes corrupt.png
    assert _outputs(out) == ["grey.tif", "grey16.tif", "palette.tif", "rgba.tif"]
    with Image.open(out / "grey.tif") as im:
        assert im.mode == "L" and im.size == SIZES["grey"][::-1]
        values = np.asarray(im)
    assert set(np.unique(values)) <= {0, 255}
    expected = baselines.binarize_classic(imageio.load_image(inputs / "grey.png", 1)[..., 0], "sauvola", window=15)
    assert np.array_equal(values == 255, expected)  # ink white

    only_jpg = _binarize(inputs / "*.jpg", "--method=otsu", f"--out={tmp_path / 'jpg'}")
    assert only_jpg.returncode == 0, only_jpg.stderr
    assert _outputs(tmp_path / "jpg") == ["rgb.png"]
    nothing = _binarize(inputs / "*.webp", "--method=otsu", f"--out={tmp_path / 'none'}")
    assert nothing.returncode == 1 and "no files match" in nothing.stderr


def test_never_overwrites_an_input(inputs, tmp_path):
    before = _digest(inputs)
    for args in (["--suffix="], [f"--out={inputs}"], [f"--out={inputs}", "--format=png", "--suffix="]):
        result = _binarize(inputs, "--method=otsu", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "would overwrite the input" in result.stderr and f"{inputs / 'grey.png'}" in result.stderr
        assert _digest(inputs) == before  # nothing written, nothing replaced
    # rgb.jpg -> rgb.png beside it is fine on its own; next to an input named rgb.png both keep
    # their extension in the output name instead.
    (inputs / "rgb.png").write_bytes((inputs / "grey.png").read_bytes())
    before = _digest(inputs)
    clash = _binarize(inputs / "rgb.jpg", inputs / "rgb.png", "--method=otsu", "--suffix=")
    assert clash.returncode == 0, clash.stderr
    assert (inputs / "rgb_jpg.png").exists() and (inputs / "rgb_png.png").exists()
    assert {k: v for k, v in _digest(inputs).items() if k in before} == before


def test_suffix_writes_beside_inputs_and_a_second_run_skips_earlier_outputs(inputs):
    (inputs / "corrupt.png").unlink()
    first = _binarize(inputs, "--method=otsu", "--suffix=_bin")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in inputs.glob("*_bin.png")) == sorted(f"{k}_bin.png" for k in SIZES)
    second = _binarize(inputs, "--method=otsu", "--suffix=_bin")  # *_bin.png are outputs, not inputs
    assert second.returncode == 0, second.stderr
    assert not list(inputs.glob("*_bin_bin.png"))


def test_help_and_usage_errors(tmp_path):
    help_run = _binarize("--help")
    assert help_run.returncode == 0
    for flag in ("--checkpoint", "--method", "--out", "--suffix", "--format", "--bits", "--foreground", "--device"):
        assert flag in help_run.stdout
    # Neither --checkpoint nor --method: the released default model binarizes, offline.
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(REPO / "data" / "samples" / "synthetic_00_grey_in.png", scans / "page.png")
    default = _binarize(scans, f"--out={tmp_path / 'o'}")
    assert default.returncode == 0, default.stderr[-3000:]
    assert (tmp_path / "o" / "page.png").exists()
    both = _binarize(scans, "--method=otsu", "--checkpoint=dibco_lite", f"--out={tmp_path / 'o2'}")
    assert both.returncode != 0 and "not both" in both.stderr
    no_out = _binarize(tmp_path, "--method=otsu")
    assert no_out.returncode != 0 and "--suffix" in no_out.stderr
    missing = _binarize(tmp_path / "missing.png", "--method=otsu", f"--out={tmp_path / 'o'}")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_plan_outputs_detects_name_collisions(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    files = [a / "page.png", b / "page.jpg"]
    for f in files:
        f.write_bytes(b"")
    # The same stem: both keep their extension in the output name, only because they collide.
    jobs, conflicts = binarize.plan_outputs(files, out_dir=tmp_path / "out", suffix="_bin", extension=".png")
    assert not conflicts and [j.outputs[0].name for j in jobs] == ["page_png_bin.png", "page_jpg_bin.png"]
    jobs, conflicts = binarize.plan_outputs(files + [b / "other.png"], out_dir=tmp_path / "out", extension=".png")
    assert [j.outputs[0].name for j in jobs] == ["page_png.png", "page_jpg.png", "other.png"]
    # The same name in two folders: only separate runs help, and the message says so.
    (b / "page.png").write_bytes(b"")
    jobs, conflicts = binarize.plan_outputs([a / "page.png", b / "page.png"], out_dir=tmp_path / "out")
    assert len(jobs) == 1 and "also the output of" in conflicts[0] and "separate runs" in conflicts[0]
    jobs, conflicts = binarize.plan_outputs(files, out_dir=None, suffix="", extension=".png")
    assert [j.src for j in jobs] == [b / "page.jpg"] and "would overwrite the input" in conflicts[0]
    # An output that is a hard link to an input is the input, whatever its path.
    out = tmp_path / "out"
    out.mkdir()
    os.link(a / "page.png", out / "page.png")
    jobs, conflicts = binarize.plan_outputs(files[:1], out_dir=out, extension=".png")
    assert not jobs and "would overwrite the input" in conflicts[0]


def test_model_checkpoint_on_cpu(inputs, tmp_path):
    """A tiny untrained grey U-Net (built, not trained) binarizes an RGBA and a 16-bit page."""
    config = default_config.get_config("smoke")
    mesh = sharding.make_mesh(config.mesh, devices=jax.devices()[:1])
    state = train.make_steps(config, mesh).init()
    saver = checkpointing.Checkpointer(tmp_path / "workdir", every_steps=1, best_metric=None)
    saver.maybe_save(1, state, {}, config, force=True)
    saver.wait_until_finished()
    saver.close()
    out = tmp_path / "out"
    result = _binarize(inputs / "rgba.png", inputs / "grey16.png", f"--checkpoint={tmp_path / 'workdir'}",
                       f"--out={out}", "--device=cpu", "--tile=32", "--batch=2", "--flip_tta", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for kind in ("rgba", "grey16"):
        with Image.open(out / f"{kind}.png") as im:
            assert im.mode == "1" and im.size == SIZES[kind][::-1]
