"""Device-side augmentation: random shifts, batched, seeded per epoch."""

import pytest
import torch

from digitlab.config import DataConfig
from digitlab.data import DeviceLoader, Split
from digitlab.data.augment import Augment, augment_generator, dilate3, random_shift
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
                              augment=Augment(shift=2))
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


# ---- the data.augment_* ops: affine, elastic, thickness, low resolution --------------------

MEAN, STD = 0.1307, 0.3081
BACKGROUND, INK = -MEAN / STD, (1 - MEAN) / STD
OPS = {  # one op at a time, at a strength well inside its range
    "shift": Augment(shift=2), "stretch": Augment(stretch=0.5), "rotate": Augment(rotate=20),
    "scale": Augment(scale=0.2), "aspect": Augment(aspect=0.3), "shear": Augment(shear=20),
    "translate": Augment(translate=2.5), "elastic": Augment(elastic=2.0),
    "thickness": Augment(thickness=1.0), "lowres": Augment(lowres=1.0),
}


def strokes(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Normalized [n, 1, 28, 28] images: a random bar and a ring per image, ink bright."""
    gen = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    images = torch.zeros(n, 28, 28)
    for i in range(n):
        cy, cx, r = (torch.rand(3, generator=gen) * torch.tensor([6, 6, 4]) +
                     torch.tensor([11, 11, 4])).tolist()
        ring = ((rows - cy) ** 2 + (cols - cx) ** 2).sqrt()
        images[i] = ((ring - r).abs() < 1.2).float()
        images[i, 4:24, int(cx) - 1:int(cx) + 1] = 1.0
    return ((images - MEAN) / STD).unsqueeze(1)


def test_every_augment_knob_is_an_op():
    assert set(OPS) == set(Augment.__dataclass_fields__)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_op_keeps_shape_dtype_and_device(name, dtype):
    images = strokes().to(dtype)
    out = OPS[name](images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    assert torch.isfinite(out).all()
    assert not torch.equal(out, images)  # it did something
    assert out.min() >= BACKGROUND - 1e-4 and out.max() <= INK + 1e-4  # within pixel range


@pytest.mark.parametrize("name", OPS)
def test_each_op_is_seeded(name):
    images = strokes()

    def draw(seed):
        return OPS[name](images, torch.Generator().manual_seed(seed), BACKGROUND, INK)

    assert torch.equal(draw(5), draw(5))
    assert not torch.equal(draw(5), draw(6))


@pytest.mark.parametrize("name", OPS)
def test_a_blank_image_stays_blank(name):
    """Nothing the ops move in from outside the image, or blend in, is ink."""
    blank = torch.full((4, 1, 28, 28), BACKGROUND)
    out = OPS[name](blank, torch.Generator().manual_seed(0), BACKGROUND, INK)
    assert torch.allclose(out, blank, atol=1e-5)


def test_tiny_ranges_are_the_identity():
    images = strokes()
    tiny = Augment(rotate=1e-9, scale=1e-9, aspect=1e-9, shear=1e-9, translate=1e-9)
    out = tiny(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    assert torch.allclose(out, images, atol=1e-4)


def test_shift_alone_draws_what_it_drew_before_the_other_ops():
    """Runs made with only data.augment_shift keep their exact batches."""
    images = strokes()
    old = random_shift(images, 2, torch.Generator().manual_seed(9), BACKGROUND)
    new = Augment(shift=2)(images, torch.Generator().manual_seed(9), BACKGROUND, INK)
    assert torch.equal(old, new)


def test_rotation_moves_ink_by_the_angle():
    """A dot 10 px right of the centre, rotated by up to 30 degrees, stays on its circle and
    within the arc that the angle allows."""
    images = torch.full((64, 1, 28, 28), BACKGROUND)
    images[:, 0, 13:15, 23:25] = INK  # centred at (14, 24) in pixel centres: 10 px right
    out = Augment(rotate=30)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    ink = (out[:, 0] - BACKGROUND).clamp(min=0)
    rows, cols = torch.meshgrid(torch.arange(28.0) + 0.5, torch.arange(28.0) + 0.5,
                                indexing="ij")
    cy = (ink * rows).sum((1, 2)) / ink.sum((1, 2)) - 14
    cx = (ink * cols).sum((1, 2)) / ink.sum((1, 2)) - 14
    radius, angle = (cy ** 2 + cx ** 2).sqrt(), torch.rad2deg(torch.atan2(cy, cx)).abs()
    assert ((radius - 10).abs() < 0.5).all()
    assert angle.max() <= 30.5 and angle.max() > 15  # bounded, and it really rotates


def test_scale_and_aspect_change_the_size_within_their_ranges():
    images = torch.full((64, 1, 28, 28), BACKGROUND)
    images[:, 0, 9:19, 9:19] = INK  # a 10x10 square
    gen = torch.Generator().manual_seed(0)
    out = Augment(scale=0.2, aspect=0.3)(images, gen, BACKGROUND, INK)
    ink = (out[:, 0] - BACKGROUND).clamp(min=0) / (INK - BACKGROUND)
    height, width = ink.sum(1).amax(1), ink.sum(2).amax(1)  # longest column, longest row
    assert (height >= 10 * 0.8 - 0.6).all() and (height <= 10 * 1.2 + 0.6).all()
    assert (width / height).min() < 0.85 and (width / height).max() > 1.15  # stretched


def test_stretch_fills_a_square_box_with_the_digit():
    """A thin upright bar (a "1") becomes a 20x20 slab in the middle, as a scan size-normalized
    to fill its box; with probability 0.5 about half the images are stretched."""
    images = torch.full((64, 1, 28, 28), BACKGROUND)
    images[:, 0, 5:23, 12:15] = INK  # 18 rows x 3 columns
    out = Augment(stretch=1.0)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    ink = (out[:, 0] - BACKGROUND) / (INK - BACKGROUND) > 0.5
    rows, cols = ink.any(2), ink.any(1)
    assert (rows.sum(1) == 20).all() and (cols.sum(1) == 20).all()
    assert rows[:, 4:24].all() and cols[:, 4:24].all()  # centred: rows and columns 4..23
    some = Augment(stretch=0.5)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    changed = (some != images).flatten(1).any(1).sum()
    assert 16 < changed < 48


def test_elastic_displacement_is_bounded_and_smooth():
    from digitlab.data.augment import elastic_field

    field = elastic_field(32, (28, 28), 2.0, torch.Generator().manual_seed(0),
                          torch.device("cpu"))
    pixels = field * 14  # normalized units -> pixels (28 px span 2 units)
    assert pixels.abs().max() <= 2.0 * 1.35  # bicubic overshoots its control points a little
    assert pixels.abs().max() > 1.0
    step = (pixels[:, 1:] - pixels[:, :-1]).abs().max()
    assert step < 0.8  # neighbouring pixels move together (a per-pixel field: up to 4)


def test_thickness_stays_between_erosion_and_dilation():
    import torch.nn.functional as F

    images = strokes()
    out = Augment(thickness=1.0)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    dilated = F.max_pool2d(images, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
    assert torch.equal(dilate3(images), dilated) and torch.equal(-dilate3(-images), eroded)
    assert (out <= dilated + 1e-5).all() and (out >= eroded - 1e-5).all()
    ink_before, ink_after = (images - BACKGROUND).sum((1, 2, 3)), (out - BACKGROUND).sum((1, 2, 3))
    assert (ink_after > ink_before).any() and (ink_after < ink_before).any()  # both ways


def test_low_resolution_gives_a_blocky_anti_aliased_digit():
    images = strokes()
    out = Augment(lowres=1.0)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    share = (out - BACKGROUND) / (INK - BACKGROUND)
    assert torch.allclose(share * 4, (share * 4).round(), atol=1e-4)  # 2x2 box of binary
    assert (share.amax((1, 2, 3)) == 1).all()  # full ink is kept
    some = Augment(lowres=0.5)(images, torch.Generator().manual_seed(0), BACKGROUND, INK)
    changed = (some != images).flatten(1).any(1)
    assert 0 < changed.sum() < len(images)  # a share of the images, not all


KNOBS = ["augment_stretch", "augment_rotate", "augment_scale", "augment_aspect", "augment_shear",
         "augment_translate", "augment_elastic", "augment_thickness", "augment_lowres"]


@pytest.mark.parametrize("knob", KNOBS)
@pytest.mark.parametrize("value", [-0.1, 100.0, float("nan"), float("inf")])
def test_augment_knobs_are_validated(knob, value):
    with pytest.raises(ConfigError, match=f"data.{knob}"):
        DataConfig(**{knob: value})


@pytest.mark.parametrize("knob", KNOBS)
def test_augment_knobs_need_the_device_loader(knob):
    assert DataConfig(**{knob: 0.1}).augment_shift == 0  # accepted on the device loader
    with pytest.raises(ConfigError, match=f"data.{knob}.*device"):
        DataConfig(**{knob: 0.1}, loader="torch")
