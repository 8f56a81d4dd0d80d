"""Binarizing files on disk: the library side of launch/binarize.py.

Which files (``expand_inputs``: files, folders, globs), where their outputs go without ever
overwriting an input (``plan_outputs``), and the loop that reads, binarizes and writes them,
page by page, skipping unreadable files and pages (``binarize_files``). Binarizers come from
binjax.binarizers; documents with pages (multi-page TIFFs) from binjax.documents.

Output names: ``<stem><suffix>.<ext>``. Two inputs with the same stem (``page.png``,
``page.tif``) keep their source extension in the stem, ``page_png<suffix>.<ext>`` and
``page_tif<suffix>.<ext>``; only those that collide do. A document of n > 1 pages gives
``<stem>_p001<suffix>.<ext>`` ... (three digits or more), or, with ``multipage_tiff`` and a TIFF
output, one multi-page TIFF ``<stem><suffix>.tif`` with the pages in order.
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from binjax import documents, imageio, temp_files
from binjax.binarizers import Binarizer

PathLike = str | os.PathLike

# What a folder argument contributes (explicit files and globs may have any extension).
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
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
            problems.append(f"{folder}: no images in this folder ({', '.join(FOLDER_EXTENSIONS)})")
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
    outputs: tuple[pathlib.Path, ...]  # one per page, or one multi-page TIFF for all of them
    pages: int


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
        if pages == 1 or (multipage_tiff and extension.lower() in (".tif", ".tiff")):
            outputs = (folder(src) / f"{stem}{suffix}{extension}",)
        else:
            digits = max(3, len(str(pages)))
            outputs = tuple(folder(src) / f"{stem}_p{i:0{digits}d}{suffix}{extension}" for i in range(1, pages + 1))
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


def page_output(job: Job, index: int) -> pathlib.Path:
    """The output name of one page: its own file, or for a page of a multi-page TIFF output the
    numbered name it would have as a file of its own (for files written beside it)."""
    if len(job.outputs) > 1 or job.pages == 1:
        return job.outputs[index]
    out = job.outputs[0]
    return out.with_name(f"{out.stem}_p{index + 1:0{max(3, len(str(job.pages)))}d}{out.suffix}")


def binarize_files(binarizer: Binarizer, jobs: Sequence[Job], *, foreground: Literal["white", "black"] = "black",
                   bits: int = 1, progress: bool = True, page_fn=None) -> Report:
    """Binarizes each job's pages, one page in memory at a time; returns what was written and skipped.

    Inputs are read at the binarizer's channels (grey, RGB, RGBA, 16-bit, palette: see
    imageio.load_image); outputs have the input's size, ink ``foreground`` ('black' = ink 0),
    1- or 8-bit. A file or page that cannot be read or binarized is skipped with a message naming
    it (printed to stderr at once) and the loop goes on; a multi-page TIFF output is written
    only when all its pages are. Temporary files that killed runs left in the output folders are
    removed first. page_fn(src, dst, image) -> ink, when given, binarizes instead of the binarizer
    (e.g. quality.PageReport: probability maps and quality estimates from the same pass); dst is
    the page's own output name, numbered (scan_p002.tif) for the pages of a multi-page TIFF.
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

    def binarized(job: Job, index: int) -> np.ndarray:
        image = documents.load_page(job.src, binarizer.channels, index, job.pages)  # errors name the page
        try:
            if page_fn is None:
                return np.asarray(binarizer(image), dtype=bool)
            return np.asarray(page_fn(job.src, page_output(job, index), image), dtype=bool)
        except ValueError as e:  # e.g. a method that refuses a blank page
            if job.pages == 1:
                raise
            raise ValueError(f"{job.src} page {index + 1} of {job.pages}: {e}") from None

    bar = tqdm.tqdm(total=sum(job.pages for job in jobs), unit="page", desc="binarize", disable=not progress,
                    dynamic_ncols=True)
    for job in jobs:
        job.outputs[0].parent.mkdir(parents=True, exist_ok=True)
        if len(job.outputs) == 1 and job.pages > 1:  # one multi-page TIFF: all pages or nothing
            def pages(job=job):
                for index in range(job.pages):
                    yield binarized(job, index)
                    bar.update(1)
            try:
                documents.save_tiff_pages(job.outputs[0], pages(), foreground=foreground, bits=bits)
                written += 1
            except (ValueError, OSError) as e:  # ImageError is a ValueError and names the file
                skip(job.src, e)
            continue
        for index, dst in enumerate(job.outputs):
            try:
                imageio.save_mask(dst, binarized(job, index), foreground=foreground, bits=bits)
                written += 1
            except (ValueError, OSError) as e:
                skip(job.src, e)
            bar.update(1)
    bar.close()
    return Report(written, skipped)
