"""Synthetic degraded documents: the default dataset, generated on the fly, no download.

A page is printed paragraphs (several font faces, sizes, weights, stretch, slant, small
rotation) and cursive-like handwriting (looped pen trajectories with varying pen width),
laid out with random margins, spacing, columns and blank gaps, then aged: uneven
illumination, stains, bleed-through from a back page, paper texture, faded and broken ink,
blur, (near-)Gaussian and salt-and-pepper noise, JPEG artefacts. With channels=3 paper and inks are
tinted (sepia paper, brown iron-gall ink, blue-black ink, ...). binjax/data/clutter.py adds, when
asked, the dark things that are not ink (strong bleed-through, scan borders, ruled lines, stamps...).

The ground truth is the clean ink mask of the front-side text and strokes, made before the
page is aged: bleed-through, stains, shading and noise are never foreground. Only ink that is
gone (broken strokes) leaves the mask, as in DIBCO ground truth; faded ink stays in it.

Worker-safe: numpy, Pillow and importlib only, no JAX; every page is a pure function of its
seed, so `SyntheticDocuments` is a picklable random-access source for `grain.MapDataset.source`.
"""

from __future__ import annotations

import importlib.util
import io
import math
import operator
import pathlib
import threading

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from binjax.data import paper_fields
from binjax.data.handwriting import handwritten_paragraph, scribbles

# Font faces beyond Pillow's built-in Aileron: matplotlib (a project dependency) ships serif,
# italic, bold and monospace TTFs; located without importing matplotlib. If matplotlib is
# absent only Aileron is used, so pages differ between such environments (same within one).
_MPL_FONT_FILES = (
    "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSans.ttf",
    "DejaVuSansMono.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBol.ttf",
    "cmr10.ttf", "cmti10.ttf", "cmb10.ttf", "cmtt10.ttf", "cmss10.ttf",
)


def _find_font_files() -> tuple[str | None, ...]:
    """None stands for Pillow's scalable default font; the rest are paths that exist."""
    files: list[str | None] = [None]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        ttf_dir = pathlib.Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
        files += [str(ttf_dir / n) for n in _MPL_FONT_FILES if (ttf_dir / n).is_file()]
    return tuple(files)


FONT_FILES = _find_font_files()
_font_cache = threading.local()  # FreeType faces are not shared between grain read threads.


def load_font(index: int, size: int) -> ImageFont.FreeTypeFont:
    """FONT_FILES[index] at `size` pixels, loaded once per reader thread."""
    cache = _font_cache.__dict__.setdefault("fonts", {})
    key = (index, size)
    if key not in cache:
        path = FONT_FILES[index]
        cache[key] = (ImageFont.load_default(size=size) if path is None
                      else ImageFont.truetype(path, size))
    return cache[key]


_LETTERS = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
_LETTER_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4,
                      2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07])
_LETTER_P = _LETTER_P / _LETTER_P.sum()
_WORD_LEN_P = np.array([3, 17, 21, 16, 11, 9, 7, 6, 4, 3, 2, 1], float)
_WORD_LEN_P = _WORD_LEN_P / _WORD_LEN_P.sum()
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def page_seed(seed: int, index: int) -> int:
    """The `render_page` seed of page `index` of a collection seeded `seed` (SeedSequence mix)."""
    words = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint32)
    return int(words[0]) << 32 | int(words[1])


def render_page(seed: int, height: int, width: int, channels: int = 1, *,
                lines: list | None = None, clutter=None) -> dict[str, np.ndarray]:
    """Renders one degraded page: {'image': uint8 HxWxC, 'mask': uint8 HxW, 1 = ink}.

    lines: when a list is given, every printed line of the front page is appended to it as
    {'text', 'box' [x0, y0, x1, y1] in page pixels, 'column', 'inside' (the box lies within the
    page)}, in reading order (column by column, top to bottom): the page's transcript for OCR
    scoring. Recording only reads what the generator draws anyway, so the pixels are the same
    with or without it. Handwriting is pen trajectories, not letters: it has no transcript.

    clutter: a binjax.data.clutter.Clutter (or None): dark things that are not ink (strong
    bleed-through, scan borders, gutters, ruled lines, frames, ring stains, stamps, measured
    paper and ink colours), drawn from a random stream of their own, so the front page's layout
    and mask are those of the same seed without clutter (off-page border pixels aside).
    """
    if channels not in (1, 3):
        raise ValueError(f"render_page: channels must be 1 or 3, got {channels}")
    if height < 8 or width < 8:
        raise ValueError(f"render_page: page must be at least 8x8, got {height}x{width}")
    rng = np.random.default_rng(seed)
    print_alpha, hand_alpha = layout_ink(rng, height, width, lines=lines)
    if lines is not None:
        for line in lines:
            x0, y0, x1, y1 = line["box"]
            line["inside"] = bool(x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height)
    extra = clutter.for_page(seed, height, width, channels) if clutter is not None else None
    return _degrade(rng, print_alpha, hand_alpha, channels, extra)


class SyntheticDocuments:
    """`num_pages` synthetic pages; page i is `render_page(page_seed(seed, i), ...)`.

    Random access and stateless: any order of access, any worker, gives the same page.
    """

    def __init__(self, num_pages: int, height: int, width: int, channels: int = 1, seed: int = 0,
                 clutter=None):
        if num_pages < 1:
            raise ValueError(f"SyntheticDocuments: num_pages must be >= 1, got {num_pages}")
        if channels not in (1, 3):
            raise ValueError(f"SyntheticDocuments: channels must be 1 or 3, got {channels}")
        if height < 8 or width < 8:
            raise ValueError(
                f"SyntheticDocuments: pages must be at least 8x8, got {height}x{width}")
        self.num_pages, self.height, self.width = int(num_pages), int(height), int(width)
        self.channels, self.seed = int(channels), int(seed)
        self.clutter = clutter  # binjax.data.clutter.Clutter or None (the plain generator)

    def __len__(self) -> int:
        return self.num_pages

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = operator.index(index)
        if i < 0:
            i += self.num_pages
        if not 0 <= i < self.num_pages:
            raise IndexError(
                f"SyntheticDocuments: index {index} out of range for {self.num_pages} pages")
        return render_page(page_seed(self.seed, i), self.height, self.width, self.channels,
                           clutter=self.clutter)

    def __repr__(self) -> str:
        return (f"SyntheticDocuments(num_pages={self.num_pages}, height={self.height}, "
                f"width={self.width}, channels={self.channels}, seed={self.seed}, "
                f"clutter={self.clutter!r})")


# ----------------------------------------------------------------------------- ink layout

def layout_ink(rng, height: int, width: int, scale: float = 1.0, lines: list | None = None):
    """Front-side ink coverage in [0, 1]: (printed text, handwriting), float32 HxW each.

    lines: a list to which the printed lines are appended (see render_page).
    """
    print_img = np.zeros((height, width), np.uint8)
    hand_img = Image.new("L", (width, height), 0)
    hand_draw = ImageDraw.Draw(hand_img)
    style = rng.choice(3, p=[0.45, 0.3, 0.25])          # 0 printed, 1 handwritten, 2 mixed
    density = rng.uniform(0.0, 1.0)                      # 0 sparse .. 1 dense
    interior = rng.random() < 0.3                        # a crop from inside a page: no margins
    margins = np.zeros(4) if interior else rng.uniform(0.0, 0.12, 4)
    top, bottom = int(margins[0] * height), int(height - margins[1] * height)
    left, right = int(margins[2] * width), int(width - margins[3] * width)
    n_cols = 2 if (right - left > 500 * scale and rng.random() < 0.3) else 1
    gutter = int(rng.uniform(0.03, 0.08) * width) if n_cols == 2 else 0
    col_w = (right - left - gutter) // n_cols
    size_cap = max(6.0, height / 4)
    for col in range(n_cols):
        x0 = left + col * (col_w + gutter)
        y = top - (int(rng.uniform(0, 30 * scale)) if interior else 0)
        column_end = bottom - (int(rng.uniform(0, 0.5) * height) if rng.random() < 0.2 else 0)
        first = True
        while y < column_end:
            if not first and rng.random() < 0.05 + 0.25 * (1 - density):
                y += int(rng.uniform(1, 6) * 20 * scale)     # a blank region
                continue
            first = False
            hand = style == 1 or (style == 2 and rng.random() < 0.5)
            if hand:
                y = handwritten_paragraph(rng, hand_draw, x0, y, col_w, column_end, density,
                                          scale, size_cap)
            else:
                y = _printed_paragraph(rng, print_img, x0, y, col_w, column_end, density,
                                       scale, size_cap, lines=lines, column=col)
    if rng.random() < 0.3:
        scribbles(rng, hand_draw, width, height, scale)
    return (print_img.astype(np.float32) / 255,
            np.asarray(hand_img, np.float32) / 255)


def random_words(rng, n: int) -> list[str]:
    """n pseudo-words with English word lengths and letter frequencies (a few numbers, capitalized
    or upper-case, some with punctuation)."""
    lengths = rng.choice(np.arange(1, 13), size=n, p=_WORD_LEN_P)
    letters = "".join(_LETTERS[rng.choice(26, size=int(lengths.sum()), p=_LETTER_P)])
    ends = np.cumsum(lengths)
    kinds = rng.random((n, 3))
    words = []
    for i in range(n):
        w = letters[ends[i] - lengths[i]:ends[i]]
        if kinds[i, 0] < 0.04:
            w = str(int(rng.integers(1, 10 ** min(lengths[i], 5))))
        elif kinds[i, 0] < 0.07:
            w = w.upper()
        elif kinds[i, 0] < 0.2:
            w = w.capitalize()
        if kinds[i, 1] < 0.1:
            w += ",.;:!?-"[int(kinds[i, 2] * 7)]
        words.append(w)
    return words


def _printed_paragraph(rng, canvas, x0, y0, col_w, y_end, density, scale, size_cap, *,
                       lines: list | None = None, column: int = 0) -> int:
    """Renders a paragraph into `canvas` (uint8 coverage) at (x0, y0); returns the next y.

    lines: a list to which each line's text and page box are appended (no random draws).
    """
    size = int(min(size_cap, math.exp(rng.uniform(math.log(11), math.log(46))) * scale))
    size = max(size, 6)
    heading = rng.random() < 0.12
    if heading:
        size = int(min(size_cap, size * rng.uniform(1.3, 2.0)))
    font = load_font(int(rng.integers(len(FONT_FILES))), size)
    stroke = int(rng.random() < 0.15) * max(1, size // 20)
    stretch = rng.uniform(0.8, 1.25)
    shear = rng.uniform(-0.25, 0.25) if rng.random() < 0.2 else rng.uniform(-0.03, 0.03)
    angle = rng.normal(0, 0.6) if rng.random() < 0.7 else rng.uniform(-4, 4)
    line_h = int(size * rng.uniform(1.05, 1.25 + 0.7 * (1 - density))) + 1
    n_lines = 1 if heading else int(rng.integers(1, 4 + int(8 * density)))
    n_lines = max(1, min(n_lines, (y_end - y0) // line_h + 1))
    src_w = max(8, int(col_w / stretch))
    para = Image.new("L", (src_w, n_lines * line_h + size), 0)
    draw = ImageDraw.Draw(para)
    space = font.getlength(" ")
    words = random_words(rng, 8 * n_lines)
    wi = 0
    drawn = []  # (text, box in the paragraph image) for `lines`
    for line in range(n_lines):
        indent = space * rng.uniform(2, 6) if (line == 0 and rng.random() < 0.5) else 0.0
        fill = 1.0 if rng.random() < 0.4 + 0.6 * density else rng.uniform(0.15, 1.0)
        if line == n_lines - 1 and n_lines > 1:
            fill = min(fill, rng.uniform(0.2, 1.0))
        budget, text, used = (src_w - indent) * fill, [], 0.0
        while True:
            if wi == len(words):
                words += random_words(rng, 32)
            wl = font.getlength(words[wi])
            if used + wl > budget and text:
                break
            text.append(words[wi])
            used += wl + space
            wi += 1
        jitter = rng.normal(0, 0.04 * size)
        draw.text((indent, line * line_h + jitter), " ".join(text), font=font, fill=255,
                  stroke_width=stroke, stroke_fill=255)
        if lines is not None:
            drawn.append((" ".join(text), draw.textbbox((indent, line * line_h + jitter), " ".join(text),
                                                        font=font, stroke_width=stroke)))
    out = _affine(para, stretch, shear, angle)
    paste_max(canvas, np.asarray(out), x0, y0)
    if lines is not None:
        fwd, lo = _affine_forward(para.size, stretch, shear, angle)
        for text, (bx0, by0, bx1, by1) in drawn:
            corners = fwd @ np.array([[bx0, bx1, bx0, bx1], [by0, by0, by1, by1]], float)
            corners = corners - lo[:, None] + np.array([[x0], [y0]], float)
            box = [*corners.min(axis=1), *corners.max(axis=1)]
            lines.append({"text": text, "box": [round(float(v), 1) for v in box], "column": int(column)})
    return y0 + n_lines * line_h + int(line_h * rng.uniform(0.2, 1.5))


def _affine_forward(size: tuple[int, int], stretch: float, shear: float, angle_deg: float):
    """(fwd, lo) of `_affine`: a source point p lands at fwd @ p - lo in its output."""
    t = math.radians(angle_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    fwd = rot @ np.array([[stretch, -shear], [0.0, 1.0]])
    w, h = size
    corners = fwd @ np.array([[0, w, 0, w], [0, 0, h, h]], float)
    return fwd, corners.min(axis=1)


def _affine(img: Image.Image, stretch: float, shear: float, angle_deg: float) -> Image.Image:
    """Horizontal stretch, shear (positive slants tops right) and rotation; sized to fit."""
    t = math.radians(angle_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    fwd = rot @ np.array([[stretch, -shear], [0.0, 1.0]])
    w, h = img.size
    corners = fwd @ np.array([[0, w, 0, w], [0, 0, h, h]], float)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    inv = np.linalg.inv(fwd)
    off = inv @ lo
    size = (max(1, int(math.ceil(hi[0] - lo[0]))), max(1, int(math.ceil(hi[1] - lo[1]))))
    return img.transform(size, Image.Transform.AFFINE,
                         (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                         resample=Image.Resampling.BILINEAR)


def paste_max(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """canvas = max(canvas, patch) where the patch, its top-left corner at (x, y), overlaps it."""
    h, w = canvas.shape
    ys, xs = max(0, -y), max(0, -x)
    ye, xe = min(patch.shape[0], h - y), min(patch.shape[1], w - x)
    if ye > ys and xe > xs:
        region = canvas[y + ys:y + ye, x + xs:x + xe]
        np.maximum(region, patch[ys:ye, xs:xe], out=region)


# ----------------------------------------------------------------------------- degradation

def _random_colours(rng):
    """Paper, print ink and handwriting ink reflectances as RGB in [0, 1]."""
    paper_l = rng.uniform(0.6, 0.97)
    yellow = rng.uniform(0.0, 0.35) if rng.random() < 0.7 else 0.0
    paper = paper_l * np.array([1.0, 1 - 0.35 * yellow, 1 - 0.9 * yellow])
    inks = np.array([[0.1, 0.1, 0.1], [0.3, 0.2, 0.12], [0.12, 0.14, 0.3], [0.38, 0.27, 0.18]])
    def ink():
        base = inks[rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])]
        return np.clip(base * rng.uniform(0.4, 1.6) + rng.normal(0, 0.03, 3), 0.0, 0.6 * paper)
    return paper, ink(), ink()


def channel_colour(rgb: np.ndarray, channels: int) -> np.ndarray:
    """An RGB colour as `channels` values: itself, or its ITU-R 601 luma for grey pages."""
    rgb = np.asarray(rgb, np.float32)
    return rgb if channels == 3 else np.array([rgb @ _LUMA], np.float32)


FADED_SHARE = 0.5   # the share of pages whose ink fades (clutter.Clutter.faded_ink may change it)


def _degrade(rng, print_alpha: np.ndarray, hand_alpha: np.ndarray, channels: int, clutter=None):
    """Ages a page of ink coverage into {'image', 'mask'}.

    clutter: a page's clutter (binjax.data.clutter.PageClutter) or None: it may replace the
    colours, multiplies things under the front ink (before the ink is composited) and over it
    (after the stains), and blanks the mask off the page. It draws from its own random stream.

    Every field that is the same in all channels (paper texture, bleed-through, light) is
    multiplied in HxW; the page is HxWxC only from one outer product on, and the inks are
    composited only at pixels that have ink.
    """
    h, w = print_alpha.shape
    on = rng.random(9)
    paper_rgb, ink1_rgb, ink2_rgb = _random_colours(rng)
    if clutter is not None:
        paper_rgb, ink1_rgb, ink2_rgb = clutter.colours(paper_rgb, ink1_rgb, ink2_rgb)
    paper, ink1, ink2 = (channel_colour(c, channels) * 255 for c in (paper_rgb, ink1_rgb, ink2_rgb))

    # Faded and broken ink. `fade` lowers contrast but the ink is still there, so it stays in
    # the mask. `presence` < 1 is ink gone (abraded, flaked off): as in DIBCO ground truth,
    # which marks the ink that is on the page, a pixel is foreground only when at least half
    # of its ink survives (coverage * presence >= 0.5).
    presence = None
    if on[0] < 0.35:
        cut = rng.uniform(-1.6, -0.5)
        presence = np.clip((paper_fields.smooth_noise(rng, h, w, rng.uniform(3, 10)) - cut) * 2, 0.0, 1.0)
    fade = None
    if on[1] < (clutter.settings.faded_ink if clutter is not None else FADED_SHARE):
        n = paper_fields.smooth_noise(rng, h, w, rng.uniform(40, 200))
        fade = 1 - rng.uniform(0.15, 0.5) * np.clip(n * 0.5 + 0.5, 0, 1)
    cover = np.maximum(print_alpha, hand_alpha)
    if presence is not None:
        cover *= presence
    mask = (cover >= 0.5).astype(np.uint8)

    # Paper (a grey level per pixel, times the paper colour): mottling and fine grain.
    field = paper_fields.smooth_noise(rng, h, w, rng.uniform(30, 120))
    field *= np.float32(0.03 * rng.uniform(0.3, 1.5))
    field += 1
    field += paper_fields.normal_noise(rng, (h, w)) * np.float32(0.02 * rng.uniform(0.2, 1.5))
    # Bleed-through: the back page's ink, mirrored, blurred and faint; its colour is a darker
    # paper colour, so it too is a grey-level factor. Made and blurred at a third of the size.
    if on[2] < 0.4:
        bh, bw = max(8, h // 3), max(8, w // 3)
        back = np.maximum(*layout_ink(rng, bh, bw, scale=1 / 3))
        back = Image.fromarray((back * 255).astype(np.uint8))
        back = back.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
        back = back.resize((w, h), Image.Resampling.BILINEAR)
        strength = rng.uniform(0.15, 0.65) * (1 - rng.uniform(0.3, 0.7)) / 255
        field *= 1 - np.asarray(back, np.float32)[:, ::-1] * np.float32(strength)
    # Light and, in grey, stains multiply paper and ink alike: one grey-level factor.
    light = paper_fields.illumination(rng, h, w) if on[4] < 0.55 else None
    stain = paper_fields.stains(rng, h, w) if on[3] < 0.45 else None
    shading = clutter.settings.paper_shading if clutter is not None else 1.0
    if shading != 1.0:   # shallower light falloff and stains: lighter paper (no draw changes)
        light = None if light is None else np.float32(1 - shading) + np.float32(shading) * light
        stain = None if stain is None else (stain[0] * np.float32(shading), stain[1])
    if stain is not None:
        stain_level, tint = stain
        if channels == 1:
            grey = 1 - stain_level * np.float32(1 - float(channel_colour(tint, 1)[0]))
            light = grey if light is None else light * grey
            stain = None

    a1, a2 = print_alpha, hand_alpha
    if presence is not None or fade is not None:
        scale = (presence if presence is not None else 1) * (fade if fade is not None else 1)
        a1, a2 = a1 * scale, a2 * scale
    paper_level = field * (1 - a1)
    if hand_alpha.any():
        paper_level *= 1 - a2
    if light is not None:
        paper_level *= light
    page = paper_level[..., None] * paper
    if clutter is not None:   # ruled lines, frames, bleed-through: the front ink covers them
        clutter.under_ink(page, paper, ink1)
    inked = np.flatnonzero(np.maximum(print_alpha, hand_alpha).ravel())
    if inked.size:
        b1, b2 = a1.ravel()[inked], a2.ravel()[inked]
        lit = light.ravel()[inked] if light is not None else 1
        flat = page.reshape(-1, channels)
        flat[inked] += (lit * b1 * (1 - b2))[:, None] * ink1 + (lit * b2)[:, None] * ink2
    if stain is not None:    # stains in colour: smooth blobs of tint, over paper and ink
        for c in range(channels):
            page[..., c] *= 1 - stain_level * np.float32(1 - tint[c])
    if clutter is not None:   # ring stains, stamps, gutter shadows, scan borders: over the ink
        mask = clutter.over_ink(page, mask, paper)
    if on[6] < 0.5:   # sensor noise; blurred below when blur is on, like correlated scan noise
        noise = paper_fields.normal_noise(rng, (h, w))
        noise *= np.float32(rng.uniform(2, 14))
        page += noise[..., None]
    img = np.clip(page, 0, 255, out=page).astype(np.uint8)
    if on[5] < 0.4:
        pil = Image.fromarray(img[..., 0] if channels == 1 else img)
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5))))
    img = img.reshape(h, w, channels)
    if on[7] < 0.2:
        img = img.copy()
        n = int(rng.uniform(0.0005, 0.01) * h * w)
        img[rng.integers(0, h, n), rng.integers(0, w, n)] = np.where(
            rng.random(n) < 0.5, 0, 255).astype(np.uint8)[:, None]
    if on[8] < 0.4:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if channels == 1 else img).save(
            buf, format="JPEG", quality=int(rng.integers(15, 85)))
        img = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return {"image": np.ascontiguousarray(img.reshape(h, w, channels)), "mask": mask}
