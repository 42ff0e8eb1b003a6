"""Photo, scan or drawing -> a 28x28 MNIST-style digit: white ink on black, centred by mass.

MNIST digits were size-normalized to fit a 20x20 box (keeping the aspect ratio, anti-aliased)
and placed in a 28x28 frame so that their centre of mass sits at the centre. Real inputs
differ in every way that matters: an 8x8 scan or a 4000x3000 photo, dark ink on light, alpha,
unevenly lit or ruled paper, a shadow, specks. The steps, none of which may lose a stroke:

1. a working copy at a scale set by the input: small inputs are upsampled (bicubic) before
   any filtering, large ones box-averaged down to at most WORK_MAX pixels;
2. polarity from the border and the ink fraction, or from alpha (strokes.dark_ink_on_light);
3. ink: the paper's level subtracted, and on uneven paper (photos) a background removed by an
   opening sized from the measured stroke width (strokes.ink_map);
4. photos: ruled and grid lines removed, and only the digit's own components kept
   (photo.py); a digit that came out small is redone from the full-resolution pixels;
5. MNIST's normalization: the binary digit (ink over half contrast; in a reduced copy,
   over half of each stroke's own peak, and grey), thin strokes thickened to MNIST's width,
   fitted to the 20x20 box with an anti-aliasing resize and placed by its centre of mass.

`predict --show` (predictor.show) puts the input beside the 28x28 this gives. Moment-based
deskew (`data.deskew`, digitlab.data.deskew) comes after this, in the Predictor, for models
trained with it.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitlab.i18n import N_, _
from digitlab.inference.photo import FAINT, digit_components, remove_ruled_lines
from digitlab.inference.strokes import dark_ink_on_light, dilate, ink_map, odd

MAX_PIXELS = 40_000_000  # decoded pixels; more is refused as a decompression bomb
WORK_MIN = 128  # longest side of the working copy, at least (small inputs are upsampled)
WORK_MAX = 400  # ... and at most (large ones are box-averaged down by a whole factor)
PHOTO_FROM = 64  # smaller inputs (longest side) are scans: no uneven or ruled paper
BOX = 20  # MNIST's digit box inside the 28x28 frame
ZOOM_BELOW = 2 * BOX  # a digit this small in a reduced copy is redone at full resolution
FRAME = 28
# Stroke widths of 10,000 MNIST training digits at 28x28 (strokes.stroke_width of pixels
# >= 128): 5th percentile 1.66, median 2.57. Strokes thinner than MNIST's thinnest 5% are
# thickened to the median (at 1.9, the 10th percentile, 10% of MNIST itself was changed).
MIN_STROKE = 1.6
MNIST_STROKE = 2.5


class ImageError(ValueError):
    """An input that cannot be turned into a digit; the message says why."""


FILE_KINDS = {stat.S_IFDIR: N_("a directory"), stat.S_IFIFO: N_("a FIFO"),
              stat.S_IFCHR: N_("a character device"), stat.S_IFBLK: N_("a block device"),
              stat.S_IFSOCK: N_("a socket")}


def _refuse_unless_regular(mode: int, name: str) -> None:
    if not stat.S_ISREG(mode):
        kind = FILE_KINDS.get(stat.S_IFMT(mode), N_("not a regular file"))
        raise ImageError(_("{name}: {kind}, not an image file; give image files or folders")
                         .format(name=name, kind=_(kind)))


def open_regular(path: str | Path):
    """A regular file opened for binary reading. FIFOs, devices and sockets are refused by
    name from os.stat, before any open: a FIFO blocks open() until a writer comes, and
    /dev/zero never ends. The fd is opened non-blocking and checked again, in case the path
    was swapped between the stat and the open."""
    _refuse_unless_regular(os.stat(path).st_mode, str(path))
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # 0 on Windows, which has no FIFOs to open
    fd = os.open(path, os.O_RDONLY | nonblocking)
    try:
        _refuse_unless_regular(os.fstat(fd).st_mode, str(path))
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_image(source: str | Path | bytes) -> Image.Image:
    """A decoded Pillow image, or ImageError for unreadable, truncated or oversized input,
    and for paths that are not regular files."""
    name = "<upload>" if isinstance(source, bytes) else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open_regular(source)
    except OSError as e:
        raise ImageError(_("{name}: cannot open ({error})").format(
            name=name, error=e.strerror or e)) from None
    with handle, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
        try:
            with Image.open(handle) as probe:
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise ImageError(_("{name}: {width}x{height} pixels is too large "
                                       "(limit {limit:,})").format(
                        name=name, width=width, height=height, limit=MAX_PIXELS))
                probe.load()
                image = probe.copy()
        except ImageError:
            raise
        except Image.DecompressionBombError:
            raise ImageError(_("{name}: too large to decode safely (a decompression bomb?)")
                             .format(name=name)) from None
        except UnidentifiedImageError:
            raise ImageError(_("{name}: not a recognized image format").format(name=name)) \
                from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(_("{name}: not a readable image ({error_type}: {error})").format(
                name=name, error_type=type(e).__name__, error=e)) from None
    if image.width < 1 or image.height < 1:
        raise ImageError(_("{name}: empty image").format(name=name))
    return image


# ---------------------------------------------------------------- grey levels and scale


def grey_levels(image: Image.Image) -> tuple[Image.Image, bool | None]:
    """A one-channel image ("L" or "F"), and whether ink is dark on light when that is known
    already: strokes on a transparent background are the alpha itself (ink bright)."""
    image = ImageOps.exif_transpose(image)  # phone photos carry their rotation in EXIF
    if image.mode == "La":  # premultiplied alpha converts only to LA
        image = image.convert("LA")
    if image.mode in ("RGBA", "RGBa", "LA", "PA") or (image.mode == "P" and "transparency" in
                                                       image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        opaque = alpha >= 128
        if opaque.mean() < 0.5:  # mostly transparent: the opaque strokes are the ink
            return rgba.getchannel("A"), False
        # mostly opaque (a photo with transparent padding): transparent = the paper's colour
        paper = np.median(np.asarray(rgba)[opaque][:, :3], axis=0).astype(np.uint8)
        backdrop = Image.new("RGBA", rgba.size, (*map(int, paper), 255))
        image = Image.alpha_composite(backdrop, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # more than 8 bits
        values = np.asarray(image.convert("F"), dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        return Image.fromarray((values - low) / max(high - low, 1e-6), "F"), None
    if image.mode not in ("L", "RGB", "1", "P", "CMYK"):
        image = image.convert("RGB")  # YCbCr, LAB, HSV, ...: through RGB, which all reach
    return image.convert("L"), None


def working_copy(grey: Image.Image) -> tuple[np.ndarray, float]:
    """float32 [0, 1] at the working scale, and that scale (working pixels per input pixel):
    small inputs upsampled (bicubic, before any filtering, so that a 1-pixel stroke of an
    8x8 scan becomes many pixels wide), large ones box-averaged by a whole factor."""
    longest = max(grey.size)
    if longest < WORK_MIN:
        factor = -(-WORK_MIN // longest)
        grey = grey.resize((grey.width * factor, grey.height * factor),
                           Image.Resampling.BICUBIC)
        scale = float(factor)
    elif longest > WORK_MAX:
        factor = -(-longest // WORK_MAX)
        grey = grey.reduce(factor)
        scale = 1.0 / factor
    else:
        scale = 1.0
    values = np.asarray(grey, dtype=np.float32)
    if grey.mode != "F":
        values = values / 255.0
    return np.clip(values, 0.0, 1.0), scale


# ---------------------------------------------------------------- the digit


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive at the bottom right."""
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


def find_digit(grey: Image.Image, dark_ink: bool | None, name: str,
               region: tuple[int, int, int, int] | None = None):
    """(ink map with only the digit left, its bounding box, stroke width) at a working scale
    set by the input; a digit found small in a reduced copy is looked for again in the
    full-resolution pixels around it."""
    source = grey if region is None else grey.crop(region)
    values, scale = working_copy(source)
    photo = max(grey.size) >= PHOTO_FROM
    if dark_ink is None:
        dark_ink = dark_ink_on_light(values, photo)
    ink, stroke = ink_map(1.0 - values if dark_ink else values, photo, dark_ink)
    if photo:
        ink = remove_ruled_lines(ink, stroke)
    mask = ink > 0.5
    if mask.sum() < 4:
        raise ImageError(_("{name}: no digit found (the image looks blank)").format(name=name))
    keep = digit_components(ink, stroke, photo)
    if scale >= 1:
        # as MNIST: the binary digit (ink over half contrast), anti-aliased only by the
        # resize to 20x20; upsampled or native pixels resolve every stroke
        digit = (keep & mask).astype(np.float32)
        return digit, bounding_box(digit > 0), stroke
    # a reduced copy: a stroke thinner than the reduction is a faint grey line that never
    # reaches full contrast, so each stroke is measured against its own peak nearby
    peak = np.maximum(dilate(ink, odd(2 * stroke + 1)), 2 * FAINT)
    box = bounding_box(keep & (ink > 0.5 * peak))
    if region is None and max(box[2] - box[0], box[3] - box[1]) < ZOOM_BELOW:
        top, left, bottom, right = (int(round(v / scale)) for v in box)
        margin = max(bottom - top, right - left) // 2 + int(3 * stroke / scale)
        zoomed = (max(left - margin, 0), max(top - margin, 0),
                  min(right + margin, grey.width), min(bottom + margin, grey.height))
        return find_digit(grey, dark_ink, name, zoomed)
    return np.minimum(ink / peak, 1.0) * keep, box, stroke


def thickening(stroke: float, scale: float) -> int:
    """The dilation window (1: none) that brings strokes which would come out thinner than
    MNIST's (MIN_STROKE at 28x28) to MNIST's median width, sized from the measured width."""
    if stroke * scale >= MIN_STROKE:
        return 1
    return max(1, int(round(MNIST_STROKE / scale - stroke)) + 1)


def cut(ink: np.ndarray, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """ink[top:bottom, left:right], with zeros where that reaches past the image."""
    window = np.zeros((bottom - top, right - left), dtype=np.float32)
    rows = slice(max(top, 0), min(bottom, ink.shape[0]))
    cols = slice(max(left, 0), min(right, ink.shape[1]))
    window[rows.start - top: rows.stop - top, cols.start - left: cols.stop - left] = \
        ink[rows, cols]
    return window


def center_of_mass(ink: np.ndarray) -> tuple[float, float]:
    total = float(ink.sum())
    rows, cols = np.indices(ink.shape)
    return float((rows * ink).sum()) / total, float((cols * ink).sum()) / total


def stroke_level(digit: np.ndarray, peak: float) -> float:
    """The grey level that becomes full ink: the median of the stroke cores (pixels above half
    the peak). MNIST's strokes are saturated over about 43% of their ink; scaling by the peak
    instead, which the resize filter's overshoot sets, would leave almost none saturated."""
    return float(np.median(digit[digit > 0.5 * peak]))


def fit_frame(ink: np.ndarray, box: tuple[int, int, int, int], stroke: float) -> np.ndarray:
    """MNIST's normalization: thin strokes thickened, the digit's box (grown with them)
    fitted to 20x20 keeping its aspect ratio, anti-aliased, placed by centre of mass."""
    top, left, bottom, right = box
    grow = thickening(stroke, BOX / max(bottom - top, right - left))
    top, left = top - grow // 2, left - grow // 2
    bottom, right = bottom + grow - 1 - grow // 2, right + grow - 1 - grow // 2
    height, width = bottom - top, right - left
    scale = BOX / max(height, width)
    reach = int(np.ceil(3 / scale)) + grow  # the resize filter's support, and the growth
    window = cut(ink, top - reach, left - reach, bottom + reach, right + reach)
    if grow > 1:
        window = dilate(window, grow)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray(window, "F").resize(
        size, Image.Resampling.LANCZOS, box=(reach, reach, reach + width, reach + height))
    digit = np.clip(np.asarray(digit, dtype=np.float32), 0.0, None)
    peak = float(digit.max())
    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    if peak <= 0:
        return frame.astype(np.uint8)
    digit = np.minimum(digit / stroke_level(digit, peak), 1.0) * 255.0
    cy, cx = center_of_mass(digit)
    top = min(max(int(round(FRAME / 2 - cy)), 0), FRAME - size[1])  # keep the digit inside
    left = min(max(int(round(FRAME / 2 - cx)), 0), FRAME - size[0])
    frame[top: top + size[1], left: left + size[0]] = digit
    return frame.round().astype(np.uint8)


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """uint8 [28, 28], white ink on black, digit fitted to 20x20 and centred by mass."""
    grey, dark_ink = grey_levels(image)
    ink, box, stroke = find_digit(grey, dark_ink, name)
    return fit_frame(ink, box, stroke)


def preprocess(source: str | Path | bytes) -> np.ndarray:
    name = "<upload>" if isinstance(source, bytes) else str(source)
    return to_mnist(open_image(source), name)
