"""Documents in and out (#17): PDFs rendered page by page, bilevel PDF/TIFF/PNG out with their
resolution, resumable bulk runs with a manifest, and the same outputs on 8 devices as on one."""

import csv
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from binjax import baselines, binarize, binarizers, documents, manifest, pdf, temp_files
from binjax.data import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
# Pages of one scanned document: (height, width, dpi), each page its own size and resolution.
PAGES = [(64, 48, 150), (48, 80, 100), (56, 56, 200)]


def _scan_pdf(path: pathlib.Path) -> list[np.ndarray]:
    """A scanned PDF: one lossless grey image per page at its dpi (img2pdf); returns the pages."""
    import img2pdf

    greys, streams = [], []
    for seed, (h, w, dpi) in enumerate(PAGES):
        grey = synthetic.render_page(seed, h, w, channels=1)["image"][..., 0]
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="PNG", dpi=(dpi, dpi))
        greys.append(grey)
        streams.append(buffer.getvalue())
    path.write_bytes(img2pdf.convert(streams))
    return greys


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    return folder, _scan_pdf(folder / "doc.pdf")


def _jobs(folder, out, extension):
    files = binarize.expand_inputs([str(folder)]).files
    jobs, conflicts = binarize.plan_outputs(files, out_dir=out, extension=extension)
    assert not conflicts
    return jobs


def _render(path: pathlib.Path, index: int, dpi: float) -> np.ndarray:
    import pypdfium2

    with pdf.PdfDocument(path) as document:
        assert isinstance(document._pdf, pypdfium2.PdfDocument)
        image, resolution = document.render(index, 1, dpi)
    assert resolution == (dpi, dpi)
    return image[..., 0]


def test_scanned_pdf_renders_at_its_own_resolution(scans):
    folder, greys = scans
    assert documents.page_count(folder / "doc.pdf") == 3
    with documents.open_document(folder / "doc.pdf", 1, dpi=72) as document:
        for index, (grey, (h, w, dpi)) in enumerate(zip(greys, PAGES)):
            image, resolution = document.page(index)
            assert resolution == (dpi, dpi) and image.shape == (h, w, 1)
            assert np.array_equal(image[..., 0], grey)  # the scan's own pixels, not resampled


def test_a_page_that_is_not_a_scan_renders_at_the_dpi_asked(tmp_path):
    import img2pdf

    buffer = io.BytesIO()
    Image.fromarray(synthetic.render_page(0, 32, 64, channels=3)["image"]).save(buffer, format="PNG")
    square = img2pdf.get_layout_fun((img2pdf.mm_to_pt(100), img2pdf.mm_to_pt(100)), fit=img2pdf.FitMode.into)
    (tmp_path / "poster.pdf").write_bytes(img2pdf.convert([buffer.getvalue()], layout_fun=square))
    with documents.open_document(tmp_path / "poster.pdf", 3, dpi=72) as document:
        image, resolution = document.page(0)  # the image covers half the page: drawn, not a scan
    assert resolution == (72, 72) and image.shape == (283, 283, 3)  # 100 mm = 283.5 pt at 72 dpi
    assert (image[:60] == 255).all() and image[141].std() > 0  # white margins, the picture between


def _one_bit_scan_pdf(path: pathlib.Path, bits: np.ndarray, image: dict, fill: bytes = b"") -> None:
    """A one-page PDF whose page is one 1-bit image at 144 dpi (2 px a point), written by pikepdf
    with the image dictionary's entries as given (/Decode, /ImageMask ...)."""
    import pikepdf

    document = pikepdf.new()
    h, w = bits.shape
    stream = pikepdf.Stream(document, np.packbits(bits, axis=1).tobytes(), Type=pikepdf.Name.XObject,
                            Subtype=pikepdf.Name.Image, Width=w, Height=h, BitsPerComponent=1, **image)
    page = pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, w // 2, h // 2],
                              Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream)),
                              Contents=pikepdf.Stream(document, fill + f"q {w // 2} 0 0 {h // 2} 0 0 cm /Im0 Do Q".encode()))
    document.pages.append(pikepdf.Page(page))
    document.save(path)


def _pdfium_view(path: pathlib.Path, dpi: float, index: int = 0) -> np.ndarray:
    """A page as PDFium's renderer shows it (what a viewer shows), grey."""
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    try:
        return np.array(document[index].render(scale=dpi / 72, grayscale=True).to_numpy())
    finally:
        document.close()


# A 1-bit image's samples mean ink or paper only with its dictionary: DeviceGray 0 is black, a
# /Decode [1 0] turns that round, and an /ImageMask paints the fill colour where its (decoded)
# sample is 0 and leaves the page white elsewhere.
ONE_BIT_IMAGES = {
    "grey": ({"ColorSpace": "/DeviceGray"}, 0),
    "grey, /Decode [1 0]": ({"ColorSpace": "/DeviceGray", "Decode": [1, 0]}, 1),
    "/ImageMask": ({"ImageMask": True}, 0),
    "/ImageMask, /Decode [1 0]": ({"ImageMask": True, "Decode": [1, 0]}, 1),
}


@pytest.mark.parametrize("kind", list(ONE_BIT_IMAGES))
def test_one_bit_scans_come_out_ink_dark_as_a_viewer_shows_them(tmp_path, kind):
    import pikepdf

    image, ink_sample = ONE_BIT_IMAGES[kind]
    image = {key: pikepdf.Name(value) if isinstance(value, str) else value for key, value in image.items()}
    ink = synthetic.render_page(0, 48, 64, channels=1)["mask"].astype(bool)
    _one_bit_scan_pdf(tmp_path / "scan.pdf", np.where(ink, ink_sample, 1 - ink_sample).astype(np.uint8), image)
    with documents.open_document(tmp_path / "scan.pdf", 1, dpi=72) as document:
        page, resolution = document.page(0)
    assert resolution == (144, 144) and page.shape == (48, 64, 1)  # the scan's resolution, not --dpi
    assert np.array_equal(page[..., 0] < 128, ink)  # ink dark, paper light
    assert np.array_equal(page[..., 0], _pdfium_view(tmp_path / "scan.pdf", 144))


def test_a_stencil_in_a_colour_is_rendered_in_that_colour(tmp_path):
    import pikepdf

    ink = synthetic.render_page(1, 32, 48, channels=1)["mask"].astype(bool)
    _one_bit_scan_pdf(tmp_path / "blue.pdf", (~ink).astype(np.uint8), {"ImageMask": pikepdf.Boolean(True)},
                      fill=b"0 0 0.6 rg ")  # dark blue ink, as some archives stamp their scans
    with documents.open_document(tmp_path / "blue.pdf", 3) as document:
        page, _ = document.page(0)
    assert page[ink].tolist() == [[0, 0, 153]] * int(ink.sum()) and (page[~ink] == 255).all()


def test_a_scan_pdfium_cannot_hand_to_pil_is_rendered_instead(scans, monkeypatch, caplog):
    import logging

    import pypdfium2

    folder, greys = scans
    failures = iter([KeyError("bitmap format 0"), KeyError("bitmap format 0"), NotImplementedError("JPX")])

    def to_pil(self):
        raise next(failures)

    monkeypatch.setattr(pypdfium2.PdfBitmap, "to_pil", to_pil)
    monkeypatch.setattr(pdf, "_FALLBACKS_LOGGED", set())
    with documents.open_document(folder / "doc.pdf", 1, dpi=72) as document, caplog.at_level(logging.DEBUG):
        for index, (grey, (h, w, dpi)) in enumerate(zip(greys, PAGES)):
            image, resolution = document.page(index)
            assert resolution == (dpi, dpi) and image.shape == (h, w, 1)  # rendered at the scan's dpi
            assert np.array_equal(image[..., 0], _pdfium_view(folder / "doc.pdf", dpi, index)[:h, :w])
    said = [record.getMessage() for record in caplog.records if "is rendered, not taken as it is" in record.getMessage()]
    assert len(said) == 2 and "KeyError" in said[0] and "NotImplementedError: JPX" in said[1]  # once per kind


def test_pdf_in_png_tif_and_pdf_out_keep_pages_sizes_and_dpi(scans, tmp_path):
    folder, greys = scans
    otsu = binarizers.ClassicBinarizer("otsu")
    expected = [baselines.binarize_classic(grey, "otsu") for grey in greys]

    report = binarize.binarize_files(otsu, _jobs(folder, tmp_path / "png", ".png"), progress=False)
    assert report.written == 3 and not report.skipped
    for index, (h, w, dpi) in enumerate(PAGES):
        with Image.open(tmp_path / "png" / f"doc_p{index + 1:03d}.png") as im:
            assert im.mode == "1" and im.size == (w, h)
            assert tuple(round(v) for v in im.info["dpi"]) == (dpi, dpi)
            ink = ~np.asarray(im)
        assert np.array_equal(ink, expected[index])

    binarize.binarize_files(otsu, _jobs(folder, tmp_path / "tif", ".tif"), progress=False)
    with Image.open(tmp_path / "tif" / "doc.tif") as im:
        assert im.n_frames == 3
        for index, (h, w, dpi) in enumerate(PAGES):
            im.seek(index)
            assert im.size == (w, h) and im.info["compression"] == "group4"
            assert tuple(round(v) for v in im.info["dpi"]) == (dpi, dpi)
            png = np.asarray(Image.open(tmp_path / "png" / f"doc_p{index + 1:03d}.png"))
            assert np.array_equal(np.asarray(im.convert("1")), png)

    binarize.binarize_files(otsu, _jobs(folder, tmp_path / "pdf", ".pdf"), progress=False)
    out = tmp_path / "pdf" / "doc.pdf"
    assert b"/CCITTFaxDecode" in out.read_bytes()
    assert documents.page_count(out) == 3
    with pdf.PdfDocument(out) as document:
        for index, (h, w, dpi) in enumerate(PAGES):
            page = document._pdf[index]
            assert page.get_size() == pytest.approx((w / dpi * 72, h / dpi * 72))  # pixels / dpi
            assert pdf.embedded_dpi(page) == dpi
    for index, (h, w, dpi) in enumerate(PAGES):  # the bilevel pages come back pixel for pixel
        png = np.asarray(Image.open(tmp_path / "png" / f"doc_p{index + 1:03d}.png"))
        assert np.array_equal(_render(out, index, dpi) > 127, png)

    # Single images: a one-page PDF each, sized by the image's dpi, or by --dpi when it has none.
    Image.fromarray(greys[0]).save(folder / "tagged.png", dpi=(120, 120))
    Image.fromarray(greys[1]).save(folder / "plain.png")
    jobs = [job for job in _jobs(folder, tmp_path / "single", ".pdf") if job.src.suffix == ".png"]
    binarize.binarize_files(otsu, jobs, progress=False, dpi=50)
    for name, grey, dpi in (("tagged", greys[0], 120), ("plain", greys[1], 50)):
        with pdf.PdfDocument(tmp_path / "single" / f"{name}.pdf") as document:
            assert len(document) == 1 and pdf.embedded_dpi(document._pdf[0]) == dpi
        assert np.array_equal(_render(tmp_path / "single" / f"{name}.pdf", 0, dpi) < 128,
                              baselines.binarize_classic(grey, "otsu"))


def test_bad_pdfs_are_one_line_each_and_the_rest_is_written(scans, tmp_path):
    import pikepdf

    folder, _ = scans
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\nthis is no PDF")
    with pikepdf.open(folder / "doc.pdf") as document:
        document.save(folder / "locked.pdf", encryption=pikepdf.Encryption(owner="o", user="secret"))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", str(folder), "--method=otsu",
                             f"--out={out}", "--format=pdf"], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert sum(line.startswith("skipped ") for line in lines) == 2, result.stderr
    assert any(f"skipped {folder / 'corrupt.pdf'}: corrupt, not a PDF or without pages" in line for line in lines)
    assert any(f"skipped {folder / 'locked.pdf'}: encrypted PDF" in line for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["doc.pdf", "manifest.csv"]
    rows = manifest.read_rows(out / "manifest.csv")
    assert [(r["page"], r["output"]) for r in rows] == [(str(i), str(out / "doc.pdf")) for i in (1, 2, 3)]
    assert [r["dpi"] for r in rows] == [str(dpi) for _, _, dpi in PAGES]
    assert all(float(r["seconds"]) > 0 and r["quality"] == "" for r in rows)  # no model, no estimate


class _Killed(Exception):
    """What a kill looks like to the loop: not a page error, so nothing after it runs."""


def _dies_on_page(n):
    otsu = binarizers.ClassicBinarizer("otsu")
    calls = []

    def page_fn(src, dst, image):
        calls.append(dst.name)
        if len(calls) == n:
            raise _Killed
        return otsu(image)
    return page_fn, calls


@pytest.mark.parametrize("extension", [".png", ".pdf"])
def test_a_killed_run_resumes_where_it_stopped_and_lists_each_page_once(scans, tmp_path, extension):
    folder, _ = scans
    _scan_pdf(folder / "second.pdf")
    out = tmp_path / "out"
    jobs = _jobs(folder, out, extension)
    page_fn, calls = _dies_on_page(5)  # doc.pdf done; second.pdf killed on its 2nd page
    with pytest.raises(_Killed), manifest.Manifest(out / "manifest.csv") as rows:
        binarize.binarize_files(binarizers.ClassicBinarizer("otsu"), jobs, progress=False, page_fn=page_fn,
                                manifest=rows)
    written = sorted(p.name for p in out.iterdir())
    if extension == ".png":
        assert written == ["doc_p001.png", "doc_p002.png", "doc_p003.png", "manifest.csv", "second_p001.png"]
    else:  # the killed document's PDF is not there at all, not even as a temporary file
        assert written == ["doc.pdf", "manifest.csv"]
    with open(out / "manifest.csv", "a") as f:
        f.write(f"{folder / 'second.pdf'},2,3,cut sh")  # a row the kill cut short
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == extension}

    page_fn, calls = _dies_on_page(0)  # never dies
    with manifest.Manifest(out / "manifest.csv", resume=True) as rows:
        report = binarize.binarize_files(binarizers.ClassicBinarizer("otsu"), jobs, progress=False, page_fn=page_fn,
                                         resume=True, manifest=rows)
    redone = ["second_p002", "second_p003"] if extension == ".png" else ["second_p001", "second_p002", "second_p003"]
    assert [name.split(".")[0] for name in calls] == redone
    assert report.done_earlier == 6 - len(redone) and not report.skipped
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in before} == before  # not rewritten
    rows = manifest.read_rows(out / "manifest.csv")
    assert sorted((pathlib.Path(r["source"]).name, int(r["page"])) for r in rows) == [
        (name, page) for name in ("doc.pdf", "second.pdf") for page in (1, 2, 3)]
    assert all(pathlib.Path(r["output"]).exists() for r in rows)


class _Darkness:
    """A stand-in model: the ink probability is the page's darkness (estimates differ page by
    page, as a model's do); Ctrl-C on its n-th page (never for n=0)."""

    name = description = "darkness"
    channels = 1
    options = {"threshold": 0.5}

    def __init__(self, interrupted_on_page=0):
        self.pages, self.interrupted_on_page = 0, interrupted_on_page

    def probability(self, image):
        self.pages += 1
        if self.pages == self.interrupted_on_page:
            raise KeyboardInterrupt
        return 1.0 - image[..., 0].astype(np.float32) / 255.0

    def __call__(self, image):
        return self.probability(image) > 0.5


@pytest.mark.parametrize("extension", [".png", ".tif", ".pdf"])
def test_quality_csv_is_the_manifests_view_after_ctrl_c_and_on_resume(scans, tmp_path, extension):
    from binjax import quality

    folder, _ = scans
    _scan_pdf(folder / "second.pdf")
    out = tmp_path / "out"
    jobs = _jobs(folder, out, extension)

    def run(model, resume):
        report = quality.PageReport(model, probability_suffix="_prob")
        return binarize.binarize_with_manifest(model, jobs, manifest_path=out / "manifest.csv", page_fn=report,
                                               quality_csv=out / "quality.csv", resume=resume, progress=False)

    def listed():
        with open(out / "quality.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["input", "output", "quality", *quality.ESTIMATE_KEYS, "probability"]
        scores = [float(row["quality"]) for row in rows]
        assert scores == sorted(scores)  # the least confident first
        for row in rows:  # every page under its own name, its map beside it, as PageReport names them
            page = pathlib.Path(row["output"])
            assert row["probability"] == str(page.with_name(f"{page.stem}_prob.png"))
            assert pathlib.Path(row["probability"]).exists()
        return sorted(pathlib.Path(row["output"]).name for row in rows)

    with pytest.raises(KeyboardInterrupt):
        run(_Darkness(interrupted_on_page=5), resume=False)  # doc.pdf done, Ctrl-C on second.pdf's 2nd page
    first = ["doc_p001", "doc_p002", "doc_p003"] + (["second_p001"] if extension == ".png" else [])
    assert listed() == [name + extension for name in first]
    assert not [p for p in out.iterdir() if temp_files.is_temp_file(p)]

    (out / "quality.csv").unlink()  # as a SIGKILL leaves it: the manifest still has every page done
    run(_Darkness(), resume=True)
    assert listed() == [f"{stem}_p{page:03d}{extension}" for stem in ("doc", "second") for page in (1, 2, 3)]


def test_an_older_manifest_keeps_its_columns_when_resumed(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("source,page,pages,output,width,height,dpi,seconds,quality\n"
                    "a.png,1,1,out/a.png,4,4,300,0.5,91.5\n")
    with manifest.Manifest(path, resume=True) as rows:
        rows.add({"source": "b.png", "page": 1, "pages": 1, "output": "out/b.png", "quality": 80.0,
                  "expected_fm": 80.0, "unsure_per_ink": 0.25, "ink_fraction": 0.1})
    lines = path.read_text().splitlines()
    assert lines[2] == "b.png,1,1,out/b.png,,,,,80"  # no column the header does not name
    binarize.write_quality_view(path, tmp_path / "quality.csv")
    assert (tmp_path / "quality.csv").read_text().splitlines() == [
        "input,output,quality,expected_fm,unsure_per_ink,ink_fraction", "b.png,out/b.png,80,,,",
        "a.png,out/a.png,91.5,,,"]


def test_launcher_reads_a_list_of_inputs_and_resumes(scans, tmp_path):
    folder, _ = scans
    listing = tmp_path / "list.txt"
    listing.write_text(f"# the archive\n{folder / 'doc.pdf'}\n\n")
    out = tmp_path / "out"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", "--method=otsu",
                               f"--out={out}", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)

    first = run(f"--inputs_from={listing}", "--format=tif")
    assert first.returncode == 0, first.stderr
    again = run(f"--inputs_from={listing}", "--format=tif", "--resume")
    assert again.returncode == 0 and "3 page(s) were done by an earlier run" in again.stderr, again.stderr
    assert len(manifest.read_rows(out / "manifest.csv")) == 3
    missing = run(f"--inputs_from={tmp_path / 'nope.txt'}")
    assert missing.returncode == 2 and "--inputs_from" in missing.stderr and "nope.txt" in missing.stderr
    bad_dpi = run(str(folder), "--dpi=0")
    assert bad_dpi.returncode == 2 and "--dpi=0" in bad_dpi.stderr


def test_eight_devices_give_one_devices_outputs(scans, tmp_path):
    """The launcher shards each batch of tiles over every device; the pages must not change."""
    import jax

    from binjax import quality
    from conftest import save_tiny_checkpoint

    assert jax.device_count() == 8
    folder, _ = scans
    workdir = save_tiny_checkpoint(tmp_path / "tiny")
    results = {}
    for all_devices in (True, False):
        model = binarizers.ModelBinarizer(workdir, tile=32, batch_size=3, all_devices=all_devices)
        assert model.num_devices == (8 if all_devices else 1)
        out = tmp_path / f"out{int(all_devices)}"
        report = quality.PageReport(model, probability_suffix="_prob")
        with manifest.Manifest(out / "manifest.csv") as rows:
            binarize.binarize_files(model, _jobs(folder, out, ".png"), progress=False, page_fn=report, manifest=rows)
        results[all_devices] = (
            [np.asarray(Image.open(out / f"doc_p{i:03d}_prob.png"), int) for i in (1, 2, 3)],
            [float(r["quality"]) for r in manifest.read_rows(out / "manifest.csv")])
    for sharded, single in zip(results[True][0], results[False][0]):
        assert np.abs(sharded - single).max() <= 1  # 8-bit probability maps: rounding at most
    assert results[True][1] == pytest.approx(results[False][1], abs=1e-3)


def test_document_benchmark_times_the_job_file_to_file(tmp_path):
    from binjax import benchmark

    source = benchmark.make_scanned_pdf(tmp_path / "scans.pdf", 2, height=96, width=64, dpi=150)
    row = benchmark.document_throughput(binarizers.ClassicBinarizer("otsu"), source, tmp_path / "out")
    assert row["pages"] == 2 and row["page"] == "96x64" and row["output"] == "pdf"
    assert row["s_per_page"] > 0 and row["megapixels_per_s"] == pytest.approx(96 * 64 / 1e6 / row["s_per_page"])
    assert documents.page_count(tmp_path / "out" / "scans.pdf") == 2
    assert len(manifest.read_rows(tmp_path / "out" / "manifest.csv")) == 2


def test_document_benchmark_flags_are_checked_before_any_work():
    for args, expected in ((["--what=train"], "need --config"), (["--what=document", "--document_pages=0"],
                                                                 "--document_pages=0"),
                           (["--what=pages"], "--what=pages")):
        result = subprocess.run([sys.executable, "-m", "launch.benchmark", *args], cwd=REPO, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr[-500:])
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
