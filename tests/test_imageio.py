"""binjax.imageio: every file mode we claim to handle decodes to the right uint8 values."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from binjax import imageio
from binjax.imageio import ImageError, load_image, load_mask, save_mask

H, W = 12, 20


def _ramp16() -> np.ndarray:
    """A 16-bit ramp touching 0, 65535 and values whose /257 rounding differs from >> 8."""
    values = np.linspace(0, 65535, H * W).astype(np.uint16)
    values[1] = 257 * 200 + 128  # round(v/257) = 200, v >> 8 = 201
    return values.reshape(H, W)


def _round257(v: np.ndarray) -> np.ndarray:
    return np.floor(v.astype(np.float64) / 257 + 0.5).astype(np.uint8)


def _grey8() -> np.ndarray:
    return (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)


def _rgb8() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _png_rgb16(path, rgb16: np.ndarray) -> None:
    """Writes a 48-bit PNG by hand (Pillow cannot encode one)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    header = struct.pack(">IIBBBBB", rgb16.shape[1], rgb16.shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- load_image


@pytest.mark.parametrize("ext", ["png", "tif", "bmp"])
def test_grey8_round_trip_and_channel_repeat(tmp_path, ext):
    grey = _grey8()
    path = tmp_path / f"g.{ext}"
    Image.fromarray(grey).save(path)
    one = load_image(path, 1)
    three = load_image(path, 3)
    assert one.dtype == np.uint8 and one.shape == (H, W, 1)
    assert one.flags.writeable and three.flags.writeable  # not read-only Pillow buffers
    np.testing.assert_array_equal(one[..., 0], grey)
    np.testing.assert_array_equal(three, np.repeat(grey[..., None], 3, -1))


def test_rgb_to_grey_is_601_luma(tmp_path):
    rgb = _rgb8()
    path = tmp_path / "c.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(load_image(path, 3), rgb)
    grey = load_image(path, 1)[..., 0]
    np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb).convert("L")))
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert np.abs(grey - expected).max() <= 1


def test_jpeg_loads(tmp_path):
    path = tmp_path / "c.JPG"  # upper-case extension too
    Image.fromarray(np.full((H, W, 3), 200, np.uint8)).save(path, format="JPEG", quality=95)
    assert np.abs(load_image(path, 1).astype(int) - 200).max() <= 2


@pytest.mark.parametrize("kind", ["png", "tif", "tif_big_endian", "mode_I"])
def test_16bit_grey_scaled_by_257_with_rounding(tmp_path, kind):
    ramp = _ramp16()
    path = tmp_path / ("g16.png" if kind == "png" else "g16.tif")
    if kind == "tif_big_endian":
        import tifffile

        tifffile.imwrite(path, ramp.astype(">u2"))
        with Image.open(path) as im:
            assert im.mode == "I;16B"
    elif kind == "mode_I":
        Image.fromarray(ramp.astype(np.int32)).save(path)
        with Image.open(path) as im:
            assert im.mode == "I"
    else:
        Image.fromarray(ramp).save(path)
        with Image.open(path) as im:
            assert im.mode.startswith("I;16")
    got = load_image(path, 1)[..., 0]
    np.testing.assert_array_equal(got, _round257(ramp))
    assert got[0, 0] == 0 and got[-1, -1] == 255 and got.flat[1] == 200


def test_48bit_rgb_tiff_read_exactly_with_tifffile(tmp_path):
    import tifffile

    rgb16 = np.stack([_ramp16(), _ramp16()[::-1], np.full((H, W), 257 * 77 + 128, np.uint16)], -1)
    path = tmp_path / "rgb16.tiff"
    tifffile.imwrite(path, rgb16, photometric="rgb")
    got = load_image(path, 3)
    np.testing.assert_array_equal(got, _round257(rgb16))
    np.testing.assert_array_equal(load_image(path, 1)[..., 0], imageio.rgb_to_grey(_round257(rgb16)))


def test_48bit_rgb_png_within_one_level(tmp_path):
    rgb16 = np.stack([_ramp16()] * 3, -1)
    path = tmp_path / "rgb16.png"
    _png_rgb16(path, rgb16)
    got = load_image(path, 3)  # Pillow keeps the high byte: documented, at most 1 level off
    assert np.abs(got.astype(int) - _round257(rgb16)).max() <= 1


def test_float_tiffs(tmp_path):
    import tifffile

    f = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    tifffile.imwrite(tmp_path / "f32.tif", f)
    tifffile.imwrite(tmp_path / "f64rgb.tif", np.stack([f.astype(np.float64)] * 3, -1), photometric="rgb")
    expected = np.rint(f * 255).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "f32.tif", 1)[..., 0], expected)
    np.testing.assert_array_equal(load_image(tmp_path / "f64rgb.tif", 3)[..., 1], expected)
    tifffile.imwrite(tmp_path / "big.tif", f * 1000)
    with pytest.raises(ImageError, match=r"big\.tif: float image with values in \[0, 1000\]"):
        load_image(tmp_path / "big.tif", 1)


def test_rgba_and_la_composited_over_white(tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0  # fully transparent -> white
    rgba[:, :5, 3] = 255  # opaque -> its colour
    rgba[:, 5:10, 3] = 128  # half -> mix
    Image.fromarray(rgba).save(tmp_path / "a.png")
    got = load_image(tmp_path / "a.png", 3)
    np.testing.assert_array_equal(got[0, 15], [255, 255, 255])
    np.testing.assert_array_equal(got[0, 0], [200, 0, 0])
    expected_mix = [round((200 * 128 + 255 * 127) / 255), round(255 * 127 / 255), round(255 * 127 / 255)]
    np.testing.assert_array_equal(got[0, 7], expected_mix)

    la = np.zeros((H, W, 2), np.uint8)
    la[..., 1] = 255
    la[:, :4, 1] = 0
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    got = load_image(tmp_path / "la.png", 1)[..., 0]
    assert (got[:, :4] == 255).all() and (got[:, 4:] == 0).all()


def test_palette_to_rgb_with_transparency(tmp_path):
    idx = (np.arange(H * W) % 3).astype(np.uint8).reshape(H, W)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 20, 30, 250, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "p.bmp")
    im.info["transparency"] = 2
    im.save(tmp_path / "pt.png", transparency=2)
    palette = np.array([[10, 20, 30], [250, 0, 0], [0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "p.png", 3), palette[idx])
    np.testing.assert_array_equal(load_image(tmp_path / "p.bmp", 3), palette[idx])
    with_white = palette.copy()
    with_white[2] = 255
    np.testing.assert_array_equal(load_image(tmp_path / "pt.png", 3), with_white[idx])


@pytest.mark.parametrize("ext", ["png", "tif", "bmp"])
def test_one_bit(tmp_path, ext):
    bits = (np.arange(H * W).reshape(H, W) % 3 == 0)
    Image.fromarray(bits).save(tmp_path / f"b.{ext}")
    got = load_image(tmp_path / f"b.{ext}", 1)[..., 0]
    np.testing.assert_array_equal(got, bits.astype(np.uint8) * 255)


def test_cmyk(tmp_path):
    Image.new("CMYK", (W, H), (0, 255, 0, 0)).save(tmp_path / "c.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "c.tif", 3)[0, 0], [255, 0, 255])


def test_exif_rotation_applied_and_header_size_matches(tmp_path):
    im = Image.fromarray(np.zeros((H, W, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg", 1).shape == (W, H, 1)
    assert imageio.image_size(tmp_path / "r.jpg") == (H, W)


def test_bad_channels_argument(tmp_path):
    Image.fromarray(_grey8()).save(tmp_path / "g.png")
    with pytest.raises(ValueError, match="channels"):
        load_image(tmp_path / "g.png", 2)


# ----------------------------------------------------------------------------- broken files


def test_text_renamed_png_names_the_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageError, match=r"^.*notes\.png: not an image") as info:
        load_image(path, 1)
    assert str(info.value).startswith(str(path))
    with pytest.raises(ImageError, match="notes.png"):
        load_mask(path, "white")
    with pytest.raises(ImageError, match="notes.png"):
        imageio.image_size(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_raises(tmp_path, fmt):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    full = tmp_path / "full.bin"
    Image.fromarray(noise).save(full, format=fmt)
    data = full.read_bytes()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        load_image(path, 1)
    assert str(info.value).startswith(str(path)) and "truncated" in str(info.value)


def test_corrupt_png_bytes_and_missing_file(tmp_path):
    Image.fromarray(_grey8()).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    start = data.find(b"IDAT") + 6  # past the tag and the 2-byte zlib header
    data[start:start + 4] = b"\xff" * 4  # broken deflate stream
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"bad\.png: "):
        load_image(tmp_path / "bad.png", 1)
    with pytest.raises(ImageError, match=r"nothere\.png: no such file"):
        load_image(tmp_path / "nothere.png", 1)


# ----------------------------------------------------------------------------- masks


def _mask01() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:7, 3:15] = 1
    m[9, :] = 1
    return m


@pytest.mark.parametrize("bits", [1, 8])
@pytest.mark.parametrize("ext", ["png", "tif", "TIFF"])
@pytest.mark.parametrize("foreground", ["black", "white"])
def test_save_load_mask_round_trip(tmp_path, bits, ext, foreground):
    m = _mask01()
    path = tmp_path / f"m.{ext}"
    save_mask(path, m, foreground=foreground, bits=bits)
    with Image.open(path) as im:
        assert im.mode == ("1" if bits == 1 else "L")
        ink = np.asarray(im.convert("L"))[m == 1]
    assert (ink == (0 if foreground == "black" else 255)).all()
    np.testing.assert_array_equal(load_mask(path, foreground), m)
    np.testing.assert_array_equal(load_mask(path, "white" if foreground == "black" else "black"), 1 - m)


def test_save_mask_checks(tmp_path):
    m = _mask01()
    save_mask(tmp_path / "m.png", m)
    save_mask(tmp_path / "m.png", m)  # overwrite=True by default
    with pytest.raises(FileExistsError, match=r"m\.png"):
        save_mask(tmp_path / "m.png", m, overwrite=False)
    with pytest.raises(ImageError, match=r"m\.jpg: cannot save"):
        save_mask(tmp_path / "m.jpg", m)
    with pytest.raises(ImageError, match="only 0 and 1"):
        save_mask(tmp_path / "x.png", m * 255)
    save_mask(tmp_path / "b.png", m.astype(bool)[..., None])
    np.testing.assert_array_equal(load_mask(tmp_path / "b.png", "black"), m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "m.png"]  # no temp files left


def test_mask_16bit_and_rgb_and_jpeg(tmp_path):
    m = _mask01()
    Image.fromarray(m.astype(np.uint16) * 65535).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m16.png", "white"), m)
    Image.fromarray(np.stack([m * 255] * 3, -1).astype(np.uint8)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "rgb.png", "white"), m)
    big = np.kron(m, np.ones((4, 4), np.uint8))  # JPEG needs blocks to stay recognisable
    Image.fromarray((1 - big) * 255).save(tmp_path / "m.jpg", quality=70)
    with pytest.warns(UserWarning, match=r"m\.jpg: mask is not binary"):
        got = load_mask(tmp_path / "m.jpg", "black")
    assert (got != big).mean() < 0.02


def test_mask_label_values_0_1(tmp_path):
    m = _mask01()
    Image.fromarray(m).save(tmp_path / "labels.png")  # values {0, 1}: an index mask
    Image.fromarray(m.astype(np.uint16)).save(tmp_path / "labels16.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_mask(tmp_path / "labels.png", "white"), m)
        np.testing.assert_array_equal(load_mask(tmp_path / "labels16.png", "white"), m)


def test_mask_alpha_transparent_is_background(tmp_path):
    m = _mask01()
    for colour, fg in [(0, "black"), (255, "white")]:
        rgba = np.zeros((H, W, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = m * 255  # strokes opaque, the rest transparent
        Image.fromarray(rgba).save(tmp_path / f"a{colour}.png")
        np.testing.assert_array_equal(load_mask(tmp_path / f"a{colour}.png", fg), m)


def test_mask_constant_after_threshold_warns(tmp_path):
    m = _mask01()
    Image.fromarray((m * 255).astype(np.uint16)).save(tmp_path / "wrongdepth.png")
    with pytest.warns(UserWarning, match=r"wrongdepth\.png: .*constant") as record:
        load_mask(tmp_path / "wrongdepth.png", "white")
    assert len(record) == 1


def test_mask_palette_and_one_bit(tmp_path):
    m = _mask01()
    p = Image.fromarray(m, mode="P")
    p.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 1 drawn black
    p.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "p.png", "black"), m)
    Image.fromarray(m == 0).save(tmp_path / "b.bmp")  # 1-bit, ink black
    np.testing.assert_array_equal(load_mask(tmp_path / "b.bmp", "black"), m)
    with pytest.raises(ValueError, match="foreground"):
        load_mask(tmp_path / "b.bmp", "dark")
