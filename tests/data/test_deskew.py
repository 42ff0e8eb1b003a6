"""data.deskew: one torch function for the training tensors, predict, serve and export."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitlab.config import DataConfig
from digitlab.data import load_dataset
from digitlab.data.deskew import deskew


def slanted_stroke(top: tuple[int, int], bottom: tuple[int, int], width: int = 3) -> np.ndarray:
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([top, bottom], fill=255, width=width)
    return np.asarray(image).copy()


def columns(image: torch.Tensor) -> int:
    cols = (image >= 128).nonzero()[:, -1]
    return int(cols.max() - cols.min()) + 1


def slant(image: torch.Tensor) -> float:
    ink = image.double()
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    total = ink.sum()
    cy, cx = (rows * ink).sum() / total, (cols * ink).sum() / total
    return float(((rows - cy) * (cols - cx) * ink).sum() / ((rows - cy) ** 2 * ink).sum())


@pytest.mark.parametrize("ends", [((18, 4), (10, 24)), ((8, 4), (19, 24)), ((16, 3), (11, 25))])
def test_a_slanted_stroke_stands_upright(ends):
    before = torch.from_numpy(slanted_stroke(*ends))
    after = deskew(before)
    assert after.shape == (28, 28) and after.dtype == torch.uint8
    assert columns(after) <= 5 < columns(before)
    assert abs(slant(after)) < 0.05 < abs(slant(before))
    assert abs(int(after.sum()) - int(before.sum())) < 0.1 * int(before.sum())  # ink is kept


def test_upright_and_blank_digits_are_left_alone():
    upright = torch.zeros(28, 28, dtype=torch.uint8)
    upright[4:24, 12:15] = 255
    assert torch.equal(deskew(upright), upright)
    blank = torch.zeros(3, 28, 28, dtype=torch.uint8)
    assert torch.equal(deskew(blank), blank)  # no division by zero, no NaN


@pytest.mark.parametrize("shape", [(28, 28), (5, 28, 28), (5, 1, 28, 28)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shape_and_dtype_are_kept(shape, dtype):
    images = torch.randint(0, 256, shape).to(dtype)
    out = deskew(images)
    assert out.shape == images.shape and out.dtype == dtype
    assert torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 255


def test_a_batch_is_each_image_on_its_own():
    a = torch.from_numpy(slanted_stroke((18, 4), (10, 24)))
    b = torch.from_numpy(slanted_stroke((8, 4), (19, 24)))
    together = deskew(torch.stack([a, b]))
    assert torch.equal(together[0], deskew(a)) and torch.equal(together[1], deskew(b))


def test_load_dataset_deskews_both_splits():
    plain = load_dataset(DataConfig(name="digits"))
    straight = load_dataset(DataConfig(name="digits", deskew=True))
    assert torch.equal(straight.train.images, deskew(plain.train.images))
    assert torch.equal(straight.test.images, deskew(plain.test.images))
    assert torch.equal(straight.train.labels, plain.train.labels)
    assert not torch.equal(straight.train.images, plain.train.images)
