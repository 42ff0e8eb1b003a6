"""Photo -> MNIST-style 28x28: drawn, photo-like test images (never MNIST digits) must come
out white on black, fitted to the 20x20 box and centred by mass; bad input is an ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.inference.preprocess import (
    MAX_PIXELS,
    ImageError,
    open_image,
    preprocess,
    to_mnist,
    working_copy,
)
from digitlab.inference.strokes import stroke_width

INK_LEVEL = 64  # a pixel counts as ink in the 28x28 output from this level up


# ---------------------------------------------------------------- photo-like test images


def paper(size: tuple[int, int], rng: np.random.Generator, mode: str = "RGB",
          noise: float = 4.0) -> Image.Image:
    """Light, unevenly lit paper: brighter at the top left, darker at the bottom right,
    slightly yellow in RGB, with sensor noise."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gray = 235 - 70 * xx / w - 50 * yy / h + rng.normal(0, noise, (h, w))
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    if mode == "L":
        return Image.fromarray(gray, "L")
    tint = [gray, np.clip(gray.astype(int) - 8, 0, 255), np.clip(gray.astype(int) - 20, 0, 255)]
    return Image.fromarray(np.stack(tint, -1).astype(np.uint8), "RGB")


def draw_digit(draw: ImageDraw.ImageDraw, shape: str, box: tuple, width: int, fill) -> None:
    """Digit-like strokes inside box: "1" a vertical line, "7" a bar and a slanted stroke,
    "0" an ellipse."""
    x0, y0, x1, y1 = box
    if shape == "1":
        cx = (x0 + x1) / 2
        draw.line([(cx, y0), (cx, y1)], fill=fill, width=width)
    elif shape == "7":
        draw.line([(x0, y0), (x1, y0)], fill=fill, width=width)
        draw.line([(x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=fill, width=width)
    elif shape == "0":
        draw.ellipse(box, outline=fill, width=width)
    else:
        raise ValueError(shape)


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def photo(shape: str, size=(400, 300), box=(40, 30, 140, 250), width=6, mode="RGB",
          seed=0) -> Image.Image:
    """Dark ink on light paper; box is where the digit goes (usually off-centre)."""
    image = paper(size, np.random.default_rng(seed), "L" if mode == "L" else "RGB")
    draw_digit(ImageDraw.Draw(image), shape, box, width,
               25 if mode == "L" else (20, 22, 35))
    return image


def center_of_mass(digit: np.ndarray) -> tuple[float, float]:
    ink = digit.astype(np.float64)
    rows, cols = np.indices(ink.shape)
    return float((rows * ink).sum() / ink.sum()), float((cols * ink).sum() / ink.sum())


def longest_ink_side(digit: np.ndarray) -> int:
    rows, cols = np.nonzero(digit >= INK_LEVEL)
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def assert_mnist_like(digit: np.ndarray) -> None:
    assert digit.dtype == np.uint8 and digit.shape == (28, 28)
    # white ink on black: everything away from the digit is background, most pixels exactly 0
    rows, cols = np.nonzero(digit >= INK_LEVEL)
    away = np.ones_like(digit, dtype=bool)
    away[max(rows.min() - 2, 0): rows.max() + 3, max(cols.min() - 2, 0): cols.max() + 3] = False
    assert digit[away].max(initial=0) <= 10, "the background should be black"
    assert np.median(digit) == 0
    assert digit.max() >= 200, "the ink should be bright"
    assert 19 <= longest_ink_side(digit) <= 21, "the digit should fill the 20x20 box"
    cy, cx = center_of_mass(digit)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, f"center of mass at ({cy:.2f}, {cx:.2f})"


# ---------------------------------------------------------------- good input


CASES = [  # (size, box, stroke width): off-centre, small and big, thin and thick
    ((400, 300), (40, 30, 140, 250), 6),
    ((640, 480), (300, 100, 420, 420), 25),
    ((200, 200), (120, 20, 180, 120), 2),
    ((1000, 800), (100, 100, 700, 700), 40),
]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("shape", ["1", "7", "0"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_photo_like_input_becomes_mnist_like(shape, mode, fmt, case):
    size, box, width = CASES[case]
    data = encode(photo(shape, size, box, width, mode, seed=case), fmt)
    digit = preprocess(data)
    assert_mnist_like(digit)


def test_file_path_and_bytes_agree(tmp_path):
    image = photo("7")
    path = tmp_path / "seven.png"
    image.save(path)
    np.testing.assert_array_equal(preprocess(path), preprocess(path.read_bytes()))
    np.testing.assert_array_equal(preprocess(str(path)), to_mnist(image))


def test_strokes_on_transparent_background_use_alpha_as_ink():
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    draw_digit(ImageDraw.Draw(image), "0", (60, 40, 200, 260), 14, (0, 0, 0, 255))
    digit = preprocess(encode(image, "PNG"))
    assert_mnist_like(digit)


def test_opaque_rgba_photo_is_read_like_rgb():
    rgb = photo("1", mode="RGB")
    rgba = rgb.convert("RGBA")
    np.testing.assert_array_equal(preprocess(encode(rgba, "PNG")), preprocess(encode(rgb, "PNG")))


def test_heavy_noise_and_strong_gradient():
    rng = np.random.default_rng(3)
    image = paper((500, 400), rng, "RGB", noise=12)
    draw_digit(ImageDraw.Draw(image), "7", (260, 60, 420, 330), 12, (30, 30, 40))
    assert_mnist_like(preprocess(encode(image, "JPEG")))


@pytest.mark.parametrize("shape", ["1", "7", "0"])
def test_inverted_input_gives_nearly_the_same_digit(shape):
    dark_on_light = photo(shape, mode="L", seed=5)
    # white ink on a dark, unevenly lit background: the same strokes, polarity reversed
    light_on_dark = Image.fromarray(255 - np.asarray(dark_on_light), "L")
    a = preprocess(encode(dark_on_light, "PNG")).astype(np.int16)
    b = preprocess(encode(light_on_dark, "PNG")).astype(np.int16)
    assert_mnist_like(b.astype(np.uint8))
    assert np.abs(a - b).mean() < 8
    assert ((a >= INK_LEVEL) == (b >= INK_LEVEL)).mean() > 0.97


def test_exif_rotation_is_honoured():
    # a "1" drawn sideways (a horizontal bar) with EXIF orientation 6 (rotate 90 on display)
    image = paper((400, 300), np.random.default_rng(1), "RGB")
    ImageDraw.Draw(image).line([(60, 150), (340, 150)], fill=(20, 20, 30), width=10)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    digit = preprocess(buffer.getvalue())
    rows, cols = np.nonzero(digit >= INK_LEVEL)
    assert np.ptp(rows) > 3 * np.ptp(cols), "the stroke should be upright after EXIF rotation"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("mode,color", [("L", 255), ("L", 0), ("RGB", (240, 235, 220)),
                                        ("RGBA", (0, 0, 0, 0))])
def test_blank_image_says_no_digit(mode, color):
    with pytest.raises(ImageError, match="no digit"):
        preprocess(encode(Image.new(mode, (200, 150), color), "PNG"))


def test_blank_paper_with_gradient_and_noise_says_no_digit():
    with pytest.raises(ImageError, match="no digit"):
        preprocess(encode(paper((300, 300), np.random.default_rng(2)), "JPEG"))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n",
                                  bytes(range(256)) * 4], ids=["empty", "text", "png-magic",
                                                               "binary"])
def test_non_image_bytes_raise(data):
    with pytest.raises(ImageError):
        preprocess(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_files_raise(fmt, fraction):
    data = encode(photo("0", seed=4), fmt)
    with pytest.raises(ImageError):
        preprocess(data[: int(len(data) * fraction)])


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="nope.png"):
        open_image(missing)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR (with a valid CRC) claims width x height pixels."""
    data = bytearray(encode(Image.new("L", (8, 8), 255), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_huge_image_header_is_refused_before_decoding():
    side = int(MAX_PIXELS ** 0.5) + 1000  # over preprocess's limit, under Pillow's own
    with pytest.raises(ImageError, match="too large"):
        preprocess(png_claiming(side, side))


def test_decompression_bomb_header_is_refused():
    # 20000 x 20000 = 400 M pixels: past Pillow's own bomb limit, refused while opening
    with pytest.raises(ImageError, match="(?i)too large|decompression bomb"):
        preprocess(png_claiming(20000, 20000))


# ---------------------------------------------------------------- small scans, thin strokes


def ink_rows_and_cols(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit >= INK_LEVEL)
    return int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1


def scan_of(ink: np.ndarray) -> bytes:
    """Dark ink on white, from an ink array in [0, 1]."""
    return encode(Image.fromarray((255 * (1 - ink)).round().astype(np.uint8), "L"), "PNG")


def test_working_copy_upsamples_small_inputs_and_reduces_large_ones():
    for size, shape, scale in [((8, 8), (128, 128), 16), ((16, 12), (96, 128), 8),
                               ((300, 200), (200, 300), 1), ((1280, 960), (240, 320), 0.25)]:
        values, got = working_copy(Image.new("L", size, 200))
        assert values.shape == shape and got == scale


def test_an_8x8_scan_keeps_its_strokes():
    # a 0 as scikit-learn's digits hold it: 8x8, values 0..16, strokes 1-2 pixels wide;
    # the old grey-level opening and median filter ate it into a blob or a bar
    zero = np.array([[0, 0, 5, 13, 9, 1, 0, 0], [0, 0, 13, 15, 10, 15, 5, 0],
                     [0, 3, 15, 2, 0, 11, 8, 0], [0, 4, 12, 0, 0, 8, 8, 0],
                     [0, 5, 8, 0, 0, 9, 8, 0], [0, 4, 11, 0, 1, 12, 7, 0],
                     [0, 2, 14, 5, 10, 12, 0, 0], [0, 0, 6, 13, 10, 0, 0, 0]]) / 16
    digit = preprocess(scan_of(zero))
    assert ink_rows_and_cols(digit)[0] == 20  # fills the box's height
    assert digit[13:16, 13:16].max() < INK_LEVEL  # the hole is still a hole
    cy, cx = center_of_mass(digit)
    for row, col in [(cy - 7, cx), (cy + 7, cx), (cy, cx - 4), (cy, cx + 4)]:  # the ring
        assert digit[int(row) - 1: int(row) + 2, int(col) - 1: int(col) + 2].max() >= 200


def test_a_16x16_binary_digit_and_a_1_pixel_stroke_survive():
    seven = Image.new("L", (16, 16), 0)
    ImageDraw.Draw(seven).line([(3, 2), (13, 2), (6, 14)], fill=255, width=1)
    ink = np.asarray(seven, dtype=np.float32) / 255
    digit = preprocess(scan_of(ink))
    assert ink_rows_and_cols(digit)[0] >= 19
    assert (digit[4:8] >= INK_LEVEL).sum() >= 10  # the bar, across the top
    assert (digit[18:24] >= INK_LEVEL).any()  # the foot of the stem


def test_an_mnist_style_28x28_comes_back_nearly_unchanged():
    layer = Image.new("L", (112, 112), 0)  # a 2 drawn at 4x, then MNIST's own procedure
    ImageDraw.Draw(layer).line([(30, 30), (55, 18), (78, 32), (34, 92), (84, 92)],
                               fill=255, width=10, joint="curve")
    mnist_like = to_mnist(layer)
    again = preprocess(encode(Image.fromarray(mnist_like), "PNG"))
    assert np.abs(again.astype(int) - mnist_like.astype(int)).mean() < 16
    assert ((again >= INK_LEVEL) == (mnist_like >= INK_LEVEL)).mean() > 0.93


@pytest.mark.parametrize("width,least,most", [(1, 1.9, 3.6), (3, 1.9, 3.6), (40, 2.7, 8)])
def test_thin_strokes_are_thickened_to_mnists_width_thick_ones_kept(width, least, most):
    image = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(image).line([(60, 40), (240, 40), (120, 260)], fill=0, width=width)
    digit = preprocess(encode(image, "PNG"))
    assert least <= stroke_width(digit >= 128) <= most
    assert ink_rows_and_cols(digit)[0] in (19, 20, 21)


def test_the_digit_keeps_its_aspect_ratio():
    image = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(image).rectangle((50, 100, 250, 200), outline=0, width=8)  # 2:1
    height, width = ink_rows_and_cols(preprocess(encode(image, "PNG")))
    assert width in (19, 20, 21) and 9 <= height <= 12


@pytest.mark.parametrize("source", ["8x8", "photo", "mnist-like"])
def test_stroke_cores_come_out_full_ink_as_in_mnist(source):
    # MNIST's strokes are saturated over about 43% of their ink. Scaling by the resized
    # digit's peak, which the Lanczos filter's overshoot sets, left about 3% of ours saturated
    # and the strokes a dim grey; the median of the stroke cores is now full ink.
    if source == "8x8":
        ink = np.zeros((8, 8))
        ink[1:7, 2:4] = ink[1:3, 2:6] = 1.0  # a thick, blocky 7-like shape
        digit = preprocess(scan_of(ink))
    elif source == "photo":
        digit = to_mnist(photo("7"))
    else:
        layer = Image.new("L", (112, 112), 0)
        ImageDraw.Draw(layer).line([(30, 30), (84, 30), (50, 92)], fill=255, width=10)
        digit = to_mnist(layer)
    strokes = digit[digit >= INK_LEVEL]
    assert 0.25 <= (strokes >= 250).mean() <= 0.8
