"""Device-side augmentation: random shifts, batched, seeded per epoch."""

import pytest
import torch

from digitlab.config import DataConfig
from digitlab.data import DeviceLoader, Split
from digitlab.data.augment import augment_generator, random_shift
from digitlab.errors import ConfigError


def test_random_shift_moves_each_image_by_at_most_max_shift():
    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0  # one bright pixel in the middle of every image
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0), fill=0.0)
    assert shifted.shape == images.shape
    rows, cols = (shifted[:, 0] == 1.0).nonzero()[:, 1:].T
    assert len(rows) == 64  # the pixel survived in every image
    assert ((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all()
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) > 5  # shifts vary


def test_random_shift_fills_with_background():
    images = torch.ones(8, 1, 28, 28)
    shifted = random_shift(images, 3, torch.Generator().manual_seed(1), fill=-0.5)
    assert set(shifted.unique().tolist()) <= {1.0, -0.5}


def test_shifts_repeat_for_the_same_seed_and_epoch():
    split = Split(torch.randint(0, 256, (100, 28, 28), dtype=torch.uint8),
                  torch.randint(0, 10, (100,)))

    def batches(epoch):
        loader = DeviceLoader(split, 32, torch.device("cpu"), 0.1307, 0.3081, True, seed=3,
                              augment_shift=2)
        loader.set_epoch(epoch)
        return [images for images, _ in loader]

    first, again, other = batches(0), batches(0), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert augment_generator(torch.device("cpu"), 3, 0).initial_seed() != \
        augment_generator(torch.device("cpu"), 3, 1).initial_seed()


def test_augment_needs_the_device_loader():
    with pytest.raises(ConfigError, match="augment_shift"):
        DataConfig(augment_shift=2, loader="torch")
    with pytest.raises(ConfigError, match="augment_shift"):
        DataConfig(augment_shift=9)
