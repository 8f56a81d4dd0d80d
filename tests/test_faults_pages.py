"""Fault injection on the page side (#14): binarize and evaluate never crash on a page.

Each case runs the launchers end to end in a child process (classic methods: no model cost), so
a crash in doxapy's C++ fails the test instead of killing pytest: tiny pages through every
classic method, bad flags, a 3-page TIFF, a truncated page, a page without ink, an inverted
ground truth, kill -9 during binarize then a rerun.
"""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from binjax import baselines, binarize, binarizers, documents, imageio, temp_files
from binjax.data import synthetic
from binjax.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")


def _launch(module, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", f"launch.{module}", "--noprogress" if module == "binarize" else
                           "--nopreviews", *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _grey(seed, h, w):
    return synthetic.render_page(seed, h, w, channels=1)["image"][..., 0]


def _outputs(folder: pathlib.Path) -> list[str]:
    """The files binarize wrote into folder, besides the manifest it always keeps there."""
    return sorted(p.name for p in folder.iterdir() if p.name != "manifest.csv")


# ----------------------------------------------------------------------------- classic methods

_TINY_PAGES = """
import numpy as np
from binjax import baselines
rng = np.random.default_rng(0)
for h, w in [(1, 1), (1, 9), (9, 1), (2, 2), (5, 5), (20, 80), (37, 37), (38, 200)]:
    page = rng.integers(150, 256, (h, w)).astype(np.uint8)
    page[h // 2, ::3] = 20
    for method in baselines.list_methods():
        for params in ({}, {"window": 3}, {"window": 75}, {"window": 151}):
            if params and "window" not in baselines.METHODS[method].defaults:
                continue
            print(method, h, w, params, flush=True)  # the last line names the case that died
            try:
                ink = baselines.binarize_classic(page, method, **params)
            except ValueError as e:
                assert method == "gatos" and "SIGFPE" in str(e), (method, e)  # refused, not crashed
                continue
            assert ink.shape == (h, w) and ink.dtype == bool
print("survived")
"""


@pytest.mark.slow
def test_every_classic_method_survives_tiny_pages_and_huge_windows():
    # doxapy 0.9.2 died here (SIGSEGV, heap-corruption aborts) or hung (bataineh, 1 px wide).
    result = subprocess.run([sys.executable, "-c", _TINY_PAGES], cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=120)
    last = result.stdout.strip().splitlines()[-1:]
    assert result.returncode == 0 and last == ["survived"], (result.returncode, last, result.stderr[-2000:])


def test_windows_are_clamped_to_the_page():
    grey = _grey(0, 30, 200)
    # A window wider than the page's shorter side runs as the largest odd one that fits (29).
    np.testing.assert_array_equal(baselines.binarize_classic(grey, "sauvola", window=301),
                                  baselines.binarize_classic(grey, "sauvola", window=29))


# ----------------------------------------------------------------------------- flags, up front

@pytest.mark.parametrize("options, flag", [
    (dict(threshold=float("nan")), "--threshold"), (dict(threshold=2.0), "--threshold"),
    (dict(threshold=0.0), "--threshold"), (dict(tile=0), "--tile"), (dict(overlap=1.0), "--overlap"),
    (dict(overlap=-0.1), "--overlap"), (dict(batch_size=0), "--batch")])
def test_inference_options_are_refused_naming_the_flag(options, flag):
    with pytest.raises(ConfigError, match=flag):
        binarizers.check_inference_options(**options)
    with pytest.raises(ConfigError, match=flag):  # before any model loads or page is read
        binarizers.make_binarizers(methods=["otsu"], **options)


@pytest.mark.parametrize("spec, words", [
    ("sauvola:window=0", "window=0"), ("sauvola:k=abc", "name=number"), ("sauvola:wndow=5", "'wndow'"),
    ("niblack:k=nan", "k=nan"), ("otsu:window=15", "'window'")])
def test_method_parameters_are_checked_before_any_page(spec, words):
    with pytest.raises(ConfigError, match=words):
        binarizers.make_binarizers(methods=[spec])


@pytest.mark.slow
def test_launchers_refuse_bad_flags_in_one_line(tmp_path):
    Image.fromarray(_grey(0, 40, 40)).save(tmp_path / "a.png")
    for module, args, flag in [
            ("binarize", [tmp_path / "a.png", "--method=otsu", "--threshold=nan", f"--out={tmp_path / 'o'}"], "--threshold"),
            ("binarize", [tmp_path / "a.png", "--method=sauvola:window=0", f"--out={tmp_path / 'o'}"], "window=0"),
            ("evaluate", ["--checkpoint=none", "--method=otsu", "--overlap=1.0", f"--data={tmp_path}",
                          f"--out={tmp_path / 'e'}"], "--overlap")]:
        result = _launch(module, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], \
            (module, result.stderr)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- binarize

def _three_page_tiff(path):
    pages = [Image.fromarray(_grey(i, 48 + 8 * i, 64)) for i in range(3)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return [np.asarray(p) for p in pages]


@pytest.mark.slow
def test_every_page_of_a_multipage_tiff_is_binarized(tmp_path):
    pages = _three_page_tiff(tmp_path / "scan.tif")
    expected = [baselines.binarize_classic(p, "otsu") for p in pages]
    png = _launch("binarize", tmp_path / "scan.tif", "--method=otsu", f"--out={tmp_path / 'png'}")
    assert png.returncode == 0, png.stderr
    assert _outputs(tmp_path / "png") == [f"scan_p00{i}.png" for i in (1, 2, 3)]
    for i in range(3):
        ink = imageio.load_mask(tmp_path / "png" / f"scan_p00{i + 1}.png", "black").astype(bool)
        np.testing.assert_array_equal(ink, expected[i])
    tif = _launch("binarize", tmp_path / "scan.tif", "--method=otsu", f"--out={tmp_path / 'tif'}", "--format=tif")
    assert tif.returncode == 0, tif.stderr
    assert _outputs(tmp_path / "tif") == ["scan.tif"]  # one document, pages in order
    assert documents.page_count(tmp_path / "tif" / "scan.tif") == 3
    for i, page in documents.iter_pages(tmp_path / "tif" / "scan.tif", 1):
        np.testing.assert_array_equal(page[..., 0] == 0, expected[i])
    split = _launch("binarize", tmp_path / "scan.tif", "--method=otsu", f"--out={tmp_path / 'split'}",
                    "--format=tif", "--nomultipage_tiff")
    assert split.returncode == 0, split.stderr
    assert len(list((tmp_path / "split").glob("scan_p00?.tif"))) == 3


@pytest.mark.slow
def test_a_truncated_page_of_a_tiff_is_skipped_by_name_and_the_others_written(tmp_path):
    _three_page_tiff(tmp_path / "full.tif")
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "scan.tif").write_bytes(data[:-1000])  # page 3's pixels cut short; its header stays
    result = _launch("binarize", tmp_path / "scan.tif", "--method=otsu", f"--out={tmp_path / 'out'}")
    assert result.returncode == 1 and "page 3 of 3" in result.stderr and "truncated" in result.stderr, result.stderr
    assert _outputs(tmp_path / "out") == ["scan_p001.png", "scan_p002.png"]
    # As one multi-page TIFF the document is all or nothing: no file with a page missing.
    tif = _launch("binarize", tmp_path / "scan.tif", "--method=otsu", f"--out={tmp_path / 'tif'}", "--format=tif")
    assert tif.returncode == 1 and "page 3 of 3" in tif.stderr
    assert _outputs(tmp_path / "tif") == []


def test_evaluate_refuses_a_multipage_tiff(tmp_path):
    _three_page_tiff(tmp_path / "scan_in.tif")
    _three_page_tiff(tmp_path / "scan_gt.tif")
    from binjax import evaluate

    with pytest.raises(ValueError, match=r"scan_in.tif is a multi-page TIFF \(3 pages\)"):
        evaluate.open_pages(str(tmp_path))


@pytest.mark.slow
def test_suffix_rerun_on_a_glob_skips_its_own_outputs_and_says_so_once(tmp_path):
    for i in range(2):
        Image.fromarray(_grey(i, 40, 40)).save(tmp_path / f"page{i}.png")
    first = _launch("binarize", tmp_path / "*.png", "--method=otsu", "--suffix=_bin")
    assert first.returncode == 0, first.stderr
    second = _launch("binarize", tmp_path / "*.png", "--method=otsu", "--suffix=_bin")
    assert second.returncode == 0, second.stderr
    assert not list(tmp_path.glob("*_bin_bin.png"))
    assert second.stderr.count("earlier run") == 1 and "left out 2 file(s)" in second.stderr


def test_temp_files_of_dead_processes_are_removed_and_never_inputs(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".page.png.binjax-tmp-{dead.pid}"
    live = tmp_path / f".other.png.binjax-tmp-{os.getpid()}"
    stale.write_bytes(b"partial")
    live.write_bytes(b"being written")
    assert temp_files.is_temp_file(stale) and not temp_files.is_temp_file(tmp_path / "page.png")
    assert binarize.expand_inputs([str(stale), str(tmp_path / "*")]).files == []
    assert temp_files.remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_atomic_write_renames_on_success_and_removes_its_temp_file_on_failure(tmp_path):
    target = tmp_path / "page.png"
    with temp_files.atomic_write(target) as tmp:
        assert tmp == temp_files.temp_path(target)  # the pid-named name stale-file cleanup knows
        tmp.write_bytes(b"first")
    with pytest.raises(KeyboardInterrupt), temp_files.atomic_write(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C mid-write: the old file stays whole
    assert target.read_bytes() == b"first" and sorted(tmp_path.iterdir()) == [target]


def _writers(folder):
    """Each of binjax's writers of finished files, writing one small page into folder."""
    from binjax import pdf, quality

    mask = np.eye(8, dtype=bool)
    return {"save_mask": lambda: imageio.save_mask(folder / "m.png", mask),
            "save_tiff_pages": lambda: documents.save_tiff_pages(folder / "d.tif", [mask, mask]),
            "save_pdf_pages": lambda: pdf.save_pdf_pages(folder / "d.pdf", [(mask, (72, 72))]),
            "probability map": lambda: quality._save_grey(folder / "p.png", np.zeros((8, 8), np.uint8))}


@pytest.mark.parametrize("writer", list(_writers(None)))
def test_a_writer_that_fails_mid_file_leaves_nothing_behind(tmp_path, monkeypatch, writer):
    import io

    import img2pdf

    class DiskFull(OSError):
        pass

    save, convert = Image.Image.save, img2pdf.convert

    def save_then_fail(image, fp, *args, **kwargs):
        save(image, fp, *args, **kwargs)
        if type(fp) is not io.BytesIO:  # in-memory pages (a PDF's G4 streams) are no file yet
            raise DiskFull("no space left")  # the bytes are in the temporary file, then it fails

    def convert_then_fail(*args, **kwargs):
        convert(*args, **kwargs)
        raise DiskFull("no space left")

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    monkeypatch.setattr(img2pdf, "convert", convert_then_fail)
    folder = tmp_path / writer.replace(" ", "_")
    folder.mkdir()
    with pytest.raises(DiskFull):
        _writers(folder)[writer]()
    assert list(folder.iterdir()) == []


@pytest.mark.slow
def test_kill_9_during_binarize_then_a_rerun_cleans_up(tmp_path):
    pages = [Image.fromarray(_grey(i % 4, 64, 64)) for i in range(150)]
    pages[0].save(tmp_path / "long.tif", save_all=True, append_images=pages[1:])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "launch.binarize", "--noprogress", str(tmp_path / "long.tif"),
               "--method=otsu", f"--out={out}", "--format=tif"]
    child = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob(".*binjax-tmp-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, "binarize ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert list(out.glob(".long.tif.binjax-tmp-*")) and not (out / "long.tif").exists()
    rerun = _launch("binarize", tmp_path / "long.tif", "--method=otsu", f"--out={out}", "--format=tif")
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 temporary file(s)" in rerun.stderr
    assert _outputs(out) == ["long.tif"] and documents.page_count(out / "long.tif") == 150


# ----------------------------------------------------------------------------- evaluate

@pytest.fixture
def pairs(tmp_path):
    """p0 good, p1 truncated, p2 a ground truth without ink, p3 good: DIBCO layout, ink black."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for i in range(4):
        page = synthetic.render_page(i, 64, 80, channels=1)
        Image.fromarray(page["image"][..., 0]).save(folder / f"p{i}_in.png")
        mask = page["mask"] if i != 2 else np.zeros_like(page["mask"])
        imageio.save_mask(folder / f"p{i}_gt.png", mask, foreground="black", bits=8)
    data = (folder / "p1_in.png").read_bytes()
    (folder / "p1_in.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    return folder


@pytest.mark.slow
def test_evaluate_skips_a_truncated_page_and_scores_the_others(pairs, tmp_path):
    out = tmp_path / "eval"
    result = _launch("evaluate", "--checkpoint=none", "--method=otsu,sauvola", f"--data={pairs}", f"--out={out}")
    assert result.returncode == 1, result.stderr
    assert "skipped page p1" in result.stderr and "p1_in.png" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pages"] == ["p0", "p2", "p3"] and [s["page"] for s in summary["skipped_pages"]] == ["p1"]
    markdown = (out / "summary.md").read_text()
    assert "1 page(s) skipped" in markdown and "p1" in markdown
    for name in ("otsu", "sauvola"):
        entry = summary["binarizers"][name]
        # p2 has no ink: NRM and MPM (and DRD) are undefined there, not NaN for the whole set.
        for key in ("drd", "nrm", "mpm"):
            assert isinstance(entry["mean"][key], float) and math.isfinite(entry["mean"][key]), (name, key)
        assert entry["excluded"]["nrm"] == ["p2"] and entry["excluded"]["mpm"] == ["p2"]
    assert "left out of that mean: p2" in markdown


def test_inverted_ground_truth_is_named_with_the_flag(tmp_path):
    from binjax import evaluate

    page = synthetic.render_page(0, 64, 80, channels=1)
    Image.fromarray(page["image"][..., 0]).save(tmp_path / "p_in.png")
    imageio.save_mask(tmp_path / "p_gt.png", page["mask"], foreground="white", bits=8)  # white ink
    pages = evaluate.open_pages(str(tmp_path), mask_foreground="black")
    summary = evaluate.evaluate_pages(binarizers.make_binarizers(methods=["otsu"]), pages, tmp_path / "e",
                                      previews=False, progress=False)
    (warning,) = summary["warnings"]
    assert "p_gt.png" in warning and "--mask_foreground=white" in warning
    assert evaluate.polarity_warning(page["mask"].astype(bool), "p") is None  # ordinary ground truth
