"""Binarizing files on disk: the library side of launch/binarize.py.

Which files (``expand_inputs``: files, folders, globs), where their outputs go without ever
overwriting an input (``plan_outputs``), and the loop that reads, binarizes and writes them,
page by page, skipping unreadable files and pages (``binarize_files``). Binarizers come from
binjax.binarizers; documents with pages (multi-page TIFFs, PDFs) from binjax.documents.

Output names: ``<stem><suffix>.<ext>``. Two inputs with the same stem (``page.png``,
``page.tif``) keep their source extension in the stem, ``page_png<suffix>.<ext>`` and
``page_tif<suffix>.<ext>``; only those that collide do. A document of n > 1 pages gives
``<stem>_p001<suffix>.<ext>`` ... (three digits or more), or one file with the pages in order:
always for a PDF output ``<stem><suffix>.pdf``, and with ``multipage_tiff`` for a TIFF output.

Bulk runs: with ``resume`` a page whose output exists is not redone. Every output is renamed
into place only when complete (a numbered page when it is written, a multi-page TIFF or PDF
when all its pages are), so an output that exists is a finished one, and a killed run is
resumed page by page for numbered outputs and document by document for multi-page ones. A
manifest (binjax.manifest) lists each page once as it is done, and a model's quality.csv is
written from it (``binarize_with_manifest``), also when a run stops on an exception.
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from binjax import documents, imageio, pdf, quality, temp_files
from binjax.binarizers import Binarizer
from binjax.manifest import Manifest, read_rows

PathLike = str | os.PathLike

# What a folder argument contributes (explicit files and globs may have any extension).
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pdf")
_GLOB_CHARS = re.compile(r"[*?\[]")


class Inputs(NamedTuple):
    files: list[pathlib.Path]
    problems: list[str]  # missing paths, empty globs: reported, and the exit status is 1
    notes: list[str]  # files left out on purpose (earlier outputs): said once, not an error


def expand_inputs(args: Sequence[str], *, skip_stem_suffix: str = "") -> Inputs:
    """(image files, problems, notes) from files, folders (their images, not recursive) and globs.

    Globs are expanded here too (quoted ones reach us unexpanded; '**' recurses). Files are
    kept in argument order without duplicates. Files whose stem ends with ``skip_stem_suffix``
    are left out, named files and globs too (a shell expands ``dir/*.png`` before we see it):
    they are the outputs of an earlier run with that suffix; one note says how many. binjax's
    temporary files are never inputs. A missing path or a glob matching nothing is a problem
    (reported, not fatal).
    """
    files: list[pathlib.Path] = []
    seen: set[pathlib.Path] = set()
    problems: list[str] = []
    earlier_outputs: list[pathlib.Path] = []

    def add(path: pathlib.Path) -> None:
        if temp_files.is_temp_file(path):
            return
        if skip_stem_suffix and path.stem.endswith(skip_stem_suffix):
            earlier_outputs.append(path)
            return
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    def add_folder(folder: pathlib.Path) -> None:
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in FOLDER_EXTENSIONS)
        if not found:
            problems.append(f"{folder}: no images or PDFs in this folder ({', '.join(FOLDER_EXTENSIONS)})")
        for p in found:
            add(p)

    import glob  # noqa: PLC0415

    for arg in args:
        path = pathlib.Path(arg).expanduser()
        if path.is_dir():
            add_folder(path)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARS.search(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            matched = [pathlib.Path(m) for m in matches if os.path.isfile(m)]
            if not matched:
                problems.append(f"{arg}: no files match this pattern")
            for p in matched:
                add(p)
        else:
            problems.append(f"{arg}: no such file or folder")
    notes = []
    if earlier_outputs:
        notes.append(f"left out {len(earlier_outputs)} file(s) whose name ends in the suffix {skip_stem_suffix!r}: "
                     f"outputs of an earlier run (e.g. {earlier_outputs[0]}); rename them to binarize them")
    return Inputs(files, problems, notes)


class Job(NamedTuple):
    """One input document and where its pages go."""

    src: pathlib.Path
    outputs: tuple[pathlib.Path, ...]  # one per page, or one multi-page TIFF or PDF for all of them
    pages: int

    @property
    def one_file(self) -> bool:
        """All pages go to one multi-page output (written only when complete)."""
        return len(self.outputs) == 1 and self.pages > 1


def one_file_for_all_pages(extension: str, multipage_tiff: bool = True) -> bool:
    """Whether a document's pages go to one file of this extension (PDF: always)."""
    extension = extension.lower()
    return extension == ".pdf" or (multipage_tiff and extension in (".tif", ".tiff"))


def plan_outputs(inputs: Sequence[pathlib.Path], *, out_dir: PathLike | None, suffix: str = "",
                 extension: str = ".png", multipage_tiff: bool = True) -> tuple[list[Job], list[str]]:
    """The jobs (see the module docstring for the names) and the conflicts that forbid the run.

    A conflict is an output that is (or would replace) one of the inputs, or two inputs that
    would still write the same file after the extension is kept in colliding stems (the same
    name in two folders sent to one ``out_dir``); a caller must refuse to run when there is
    any, so an input is never overwritten.
    """
    if out_dir is None and suffix is None:
        raise ValueError("give an output folder or a suffix for outputs beside the inputs")
    suffix = suffix or ""
    resolved_inputs = {p.resolve(): p for p in inputs}
    # (device, inode) catches what paths miss: hard links, and case-insensitive file systems.
    input_inodes = {(st.st_dev, st.st_ino): p for p in inputs if (st := _stat(p)) is not None}

    def folder(src):
        return pathlib.Path(out_dir) if out_dir is not None else src.parent

    # Stems that would collide in one output folder keep their source extension.
    by_target: dict[pathlib.Path, list[pathlib.Path]] = {}
    for src in inputs:
        by_target.setdefault((folder(src) / src.stem).resolve(), []).append(src)
    collide = {src for group in by_target.values() if len(group) > 1 for src in group}

    jobs, conflicts = [], []
    writers: dict[pathlib.Path, pathlib.Path] = {}
    for src in inputs:
        stem = f"{src.stem}_{src.suffix.lstrip('.').lower()}" if src in collide else src.stem
        pages = documents.page_count(src)
        if pages == 1 or one_file_for_all_pages(extension, multipage_tiff):
            outputs = (folder(src) / f"{stem}{suffix}{extension}",)
        else:
            outputs = tuple(folder(src) / f"{stem}{_page_tag(i, pages)}{suffix}{extension}" for i in range(pages))
        problem = None
        for dst in outputs:
            key = dst.resolve()
            clash = resolved_inputs.get(key)
            if clash is None and (st := _stat(dst)) is not None:
                clash = input_inodes.get((st.st_dev, st.st_ino))
            if clash is not None:
                problem = f"{src}: its output {dst} would overwrite the input {clash}; choose another --out or --suffix"
            elif key in writers:
                problem = (f"{src}: its output {dst} is also the output of {writers[key]} (the same name in "
                           "two folders): binarize those folders in separate runs with different --out")
            if problem:
                break
        if problem:
            conflicts.append(problem)
            continue
        writers.update((dst.resolve(), src) for dst in outputs)
        jobs.append(Job(src, outputs, pages))
    return jobs, conflicts


def _stat(path: pathlib.Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


class Report(NamedTuple):
    written: int  # output files
    skipped: list[str]  # one message per file or page that could not be binarized
    done_earlier: int = 0  # pages not redone with resume: their outputs exist


def page_output(job: Job, index: int) -> pathlib.Path:
    """The output name of one page: its own file, or for a page of a multi-page TIFF or PDF
    output the numbered name it would have as a file of its own (for files written beside it)."""
    if not job.one_file:
        return job.outputs[index]
    out = job.outputs[0]
    return out.with_name(f"{out.stem}{_page_tag(index, job.pages)}{out.suffix}")


def _page_tag(index: int, pages: int) -> str:
    """'_p001' for page index 0: at least three digits, as many as the page count needs."""
    return f"_p{index + 1:0{max(3, len(str(pages)))}d}"


def pages_done(job: Job) -> set[int]:
    """The pages (0-based) whose outputs exist: finished, since every output is renamed into
    place only when complete."""
    if job.one_file:
        return set(range(job.pages)) if job.outputs[0].exists() else set()
    return {index for index, dst in enumerate(job.outputs) if dst.exists()}


def _estimates_of(page_fn, dst: pathlib.Path) -> dict:
    """The quality estimates (and probability map) a quality.PageReport page_fn recorded for
    this page, for its manifest row; {} for any other page_fn."""
    rows = getattr(page_fn, "rows", None)
    if not rows or rows[-1].get("output") != str(dst):
        return {}
    return {key: value for key, value in rows[-1].items() if key not in ("input", "output")}


def binarize_files(binarizer: Binarizer, jobs: Sequence[Job], *, foreground: Literal["white", "black"] = "black",
                   bits: int = 1, progress: bool = True, page_fn=None, dpi: float = pdf.DEFAULT_DPI,
                   resume: bool = False, manifest: Manifest | None = None) -> Report:
    """Binarizes each job's pages, one page in memory at a time; returns what was written and skipped.

    Inputs are read at the binarizer's channels (grey, RGB, RGBA, 16-bit, palette: see
    imageio.load_image; PDF pages rendered at their scan's resolution, else at ``dpi``); outputs
    have the input's size and resolution, ink ``foreground`` ('black' = ink 0), 1- or 8-bit. A
    file or page that cannot be read or binarized is skipped with a message naming it (printed to
    stderr at once) and the loop goes on; a multi-page TIFF or PDF output is written only when
    all its pages are. Temporary files that killed runs left in the output folders are removed
    first. resume: pages whose outputs exist are not redone. manifest: a row per page as it is
    done (and for pages done earlier that it does not list yet). page_fn(src, dst, image) -> ink,
    when given, binarizes instead of the binarizer (e.g. quality.PageReport: probability maps and
    quality estimates from the same pass; the manifest takes its estimates); dst is the page's
    own output name, numbered (scan_p002.tif) for the pages of a multi-page output.
    """
    import tqdm  # noqa: PLC0415

    skipped: list[str] = []
    written = 0
    for out_folder in sorted({dst.parent for job in jobs for dst in job.outputs}):
        removed = temp_files.remove_stale_temp_files(out_folder)
        if removed:
            print(f"removed {len(removed)} temporary file(s) left in {out_folder} by a run that was killed",
                  file=sys.stderr)

    def skip(src: pathlib.Path, error: Exception) -> None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise error  # a full disk fails every file that follows: stop (launch.cli says so)
        message = str(error) if str(error).startswith(str(src)) else f"{src}: {error}"
        skipped.append(message)
        tqdm.tqdm.write(f"skipped {message}", file=sys.stderr)

    def binarized(document: documents.Document, job: Job, index: int):
        image, resolution = document.page(index)  # errors name the page
        try:
            if page_fn is None:
                return np.asarray(binarizer(image), dtype=bool), resolution
            return np.asarray(page_fn(job.src, page_output(job, index), image), dtype=bool), resolution
        except ValueError as e:  # e.g. a method that refuses a blank page
            if job.pages == 1:
                raise
            raise ValueError(f"{job.src} page {index + 1} of {job.pages}: {e}") from None

    def save_page(dst: pathlib.Path, ink: np.ndarray, resolution) -> None:
        if dst.suffix.lower() == ".pdf":  # a one-page document as a PDF
            pdf.save_pdf_pages(dst, [(ink, resolution)], foreground=foreground, bits=bits, dpi=dpi)
        else:
            imageio.save_mask(dst, ink, foreground=foreground, bits=bits, dpi=resolution)

    def record(job: Job, index: int, dst: pathlib.Path, shape=None, resolution=None, seconds=None,
               estimates=None) -> None:
        if manifest is not None:
            manifest.add({"source": job.src, "page": index + 1, "pages": job.pages, "output": dst,
                          "width": shape and shape[1], "height": shape and shape[0], "dpi": resolution,
                          "seconds": seconds, **(estimates or {})})

    done = {job.src: pages_done(job) if resume else set() for job in jobs}
    done_earlier = 0
    for job in jobs:
        for index in sorted(done[job.src]):
            done_earlier += 1
            if manifest is not None and not manifest.has(job.src, index + 1):
                record(job, index, job.outputs[0] if job.one_file else job.outputs[index])
    bar = tqdm.tqdm(total=sum(job.pages - len(done[job.src]) for job in jobs), unit="page", desc="binarize",
                    disable=not progress, dynamic_ncols=True)
    for job in jobs:
        todo = [index for index in range(job.pages) if index not in done[job.src]]
        if not todo:
            continue
        job.outputs[0].parent.mkdir(parents=True, exist_ok=True)
        try:
            document = documents.open_document(job.src, binarizer.channels, count=job.pages, dpi=dpi)
        except (ValueError, OSError) as e:  # a corrupt or encrypted PDF: named, and the run goes on
            skip(job.src, e)
            bar.update(len(todo))
            continue
        with document:
            if job.one_file:  # one multi-page TIFF or PDF: all pages or nothing
                rows, marks = [], []

                def pages(job=job, document=document, rows=rows, marks=marks):
                    for index in range(job.pages):
                        marks.append(time.perf_counter())  # a page's time runs to the next one's ask
                        ink, resolution = binarized(document, job, index)
                        rows.append((index, ink.shape, resolution, _estimates_of(page_fn, page_output(job, index))))
                        yield ink, resolution
                        bar.update(1)

                try:
                    if job.outputs[0].suffix.lower() == ".pdf":
                        pdf.save_pdf_pages(job.outputs[0], pages(), foreground=foreground, bits=bits, dpi=dpi)
                    else:
                        documents.save_tiff_pages(job.outputs[0], pages(), foreground=foreground, bits=bits)
                    written += 1
                except (ValueError, OSError) as e:  # ImageError is a ValueError and names the file
                    skip(job.src, e)
                    bar.update(job.pages - len(rows))
                    continue
                marks.append(time.perf_counter())
                for (index, shape, resolution, estimates), start, end in zip(rows, marks, marks[1:]):
                    record(job, index, job.outputs[0], shape, resolution, end - start, estimates)
                continue
            for index in todo:
                dst = job.outputs[index]
                start = time.perf_counter()
                try:
                    ink, resolution = binarized(document, job, index)
                    save_page(dst, ink, resolution)
                    written += 1
                    record(job, index, dst, ink.shape, resolution, time.perf_counter() - start,
                           _estimates_of(page_fn, page_output(job, index)))
                except (ValueError, OSError) as e:
                    skip(job.src, e)
                bar.update(1)
    bar.close()
    return Report(written, skipped, done_earlier)


def binarize_with_manifest(binarizer: Binarizer, jobs: Sequence[Job], *, manifest_path: PathLike,
                           quality_csv: PathLike | None = None, resume: bool = False, **options) -> Report:
    """binarize_files with a manifest at manifest_path (appended to with resume) and, when
    quality_csv is given, quality.csv rewritten from the manifest at the end of the run, and also
    when it stops on an exception (Ctrl-C, a full disk): it lists every page done so far, this
    run's and with resume earlier runs'. options: those of binarize_files.
    """
    try:
        with Manifest(manifest_path, resume=resume) as rows:
            report = binarize_files(binarizer, jobs, resume=resume, manifest=rows, **options)
    except BaseException:
        if quality_csv:
            try:
                write_quality_view(manifest_path, quality_csv)
            except Exception as e:  # noqa: BLE001 -- the error that stopped the run is the one to raise
                print(f"could not write {quality_csv} from {manifest_path}: {e}", file=sys.stderr)
        raise
    if quality_csv:
        write_quality_view(manifest_path, quality_csv)
    return report


def write_quality_view(manifest_path: PathLike, quality_csv: PathLike) -> pathlib.Path:
    """quality.csv as a view of the manifest: its pages with a quality estimate, the least
    confident first (quality.write_quality_csv), replaced whole.

    A page of a multi-page TIFF or PDF output is named as quality.PageReport names it, by the
    numbered file it would have on its own (scan_p002.tif): its output is a PDF or is shared by
    several rows of its source. (The one miss: a multi-page TIFF whose run was killed after the
    first of its rows, in the instant they are written, shows that page under the TIFF's name
    until a resumed run lists the others.)
    """
    rows = []
    for row in read_rows(manifest_path):
        try:
            rows.append((row, int(row["page"]), int(row["pages"]), float(row["quality"])))
        except (KeyError, TypeError, ValueError):
            continue  # no estimate (a classic method's page), or not a row of ours
    sharing = Counter((row["source"], row["output"]) for row, *_ in rows)
    view = []
    for row, page, pages, score in rows:
        output = pathlib.Path(row["output"])
        if pages > 1 and (output.suffix.lower() == ".pdf" or sharing[row["source"], row["output"]] > 1):
            output = output.with_name(f"{output.stem}{_page_tag(page - 1, pages)}{output.suffix}")
        page_row = {"input": row["source"], "output": str(output), "quality": score}
        page_row.update({key: float(row[key]) if row.get(key) else "" for key in quality.ESTIMATE_KEYS})
        if row.get("probability"):
            page_row["probability"] = row["probability"]
        view.append(page_row)
    return quality.write_quality_csv(quality_csv, view)
