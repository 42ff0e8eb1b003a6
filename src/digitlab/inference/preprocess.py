"""Photo (or drawing) -> a 28x28 MNIST-style digit: white ink on black, centred by mass.

MNIST digits were size-normalized to fit a 20x20 box (keeping the aspect ratio) and placed in a
28x28 frame so that their center of mass sits at the center. Real photos differ in every way
that matters: dark ink on light, unevenly lit paper, any size, anywhere in the frame, noise,
colour, alpha. Each step below removes one of those differences.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from digitlab.i18n import N_, _

MAX_PIXELS = 40_000_000  # decoded pixels; more is refused as a decompression bomb
WORK_SIZE = 512  # longest side while cleaning up; plenty for a digit, fast on a CPU
BOX = 20  # MNIST's digit box inside the 28x28 frame
FRAME = 28


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


def ink_map(image: Image.Image) -> np.ndarray:
    """Float [0, 1] map where 1 is ink, whatever the input's mode and polarity."""
    image = ImageOps.exif_transpose(image)  # phone photos carry their rotation in EXIF
    if max(image.size) > WORK_SIZE:
        image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.LANCZOS)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in
                                               image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        if alpha.min() < 0.5:  # strokes on a transparent background: the alpha is the ink
            return alpha
        image = rgba.convert("RGB")
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # a light background: dark ink on paper
        gray = 1.0 - gray
    return np.clip(gray - background_level(gray), 0.0, None)


def background_level(gray: np.ndarray) -> np.ndarray:
    """The paper's local brightness (ink bright): a grey-level opening, which erases strokes
    thinner than its window, done on a 64-pixel copy for speed and scaled back up smoothly."""
    height, width = gray.shape
    small = Image.fromarray((gray * 255).astype(np.uint8))
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    opened = small.filter(ImageFilter.MinFilter(9)).filter(ImageFilter.MaxFilter(9))
    opened = opened.filter(ImageFilter.GaussianBlur(2))
    background = opened.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(background, dtype=np.float32) / 255.0


def clean(ink: np.ndarray) -> np.ndarray:
    """Robust contrast: scale by a high percentile, drop faint noise, remove specks."""
    peak = float(np.percentile(ink, 99.5))
    if peak <= 0.05:
        return np.zeros_like(ink)
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < 0.25] = 0.0  # paper texture and sensor noise
    speckless = Image.fromarray((ink * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(3))
    return np.asarray(speckless, dtype=np.float32) / 255.0


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the area over the perimeter of the ink."""
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    perimeter = max(1, int(mask.sum()) - int(inner.sum()))
    return 2.0 * float(mask.sum()) / perimeter


MIN_STROKE = 2.0  # MNIST strokes are 2-3 pixels wide at 28x28


def thicken(crop: np.ndarray, scale: float) -> np.ndarray:
    """Dilate pen strokes that would shrink below MNIST's width once scaled down."""
    width = stroke_width(np.pad(crop > 0.3, 1))
    grow = int(round((MIN_STROKE / scale - width) / 2))  # pixels to add on each side
    if grow < 1:
        return crop
    size = 2 * min(grow, 15) + 1
    padded = Image.fromarray((np.pad(crop, grow) * 255).astype(np.uint8))
    return np.asarray(padded.filter(ImageFilter.MaxFilter(size)), dtype=np.float32) / 255.0


def center_of_mass(ink: np.ndarray) -> tuple[float, float]:
    total = float(ink.sum())
    rows, cols = np.indices(ink.shape)
    return float((rows * ink).sum()) / total, float((cols * ink).sum()) / total


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """uint8 [28, 28], white ink on black, digit fitted to 20x20 and centred by mass."""
    ink = clean(ink_map(image))
    mask = ink > 0.3
    if mask.sum() < 4:
        raise ImageError(_("{name}: no digit found (the image looks blank)").format(name=name))
    rows, cols = np.nonzero(mask)
    crop = ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    crop = thicken(crop, scale)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    digit = np.asarray(digit, dtype=np.float32)
    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    cy, cx = center_of_mass(digit) if digit.sum() > 0 else (size[1] / 2, size[0] / 2)
    top = int(round(FRAME / 2 - cy))
    left = int(round(FRAME / 2 - cx))
    top = min(max(top, 0), FRAME - size[1])  # keep the whole digit inside the frame
    left = min(max(left, 0), FRAME - size[0])
    frame[top: top + size[1], left: left + size[0]] = digit
    return np.clip(frame, 0, 255).round().astype(np.uint8)


def preprocess(source: str | Path | bytes) -> np.ndarray:
    name = "<upload>" if isinstance(source, bytes) else str(source)
    return to_mnist(open_image(source), name)
