"""digitlab.data.loader: DeviceLoader semantics, normalization, and TorchLoader equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from digitlab.data import DeviceLoader, Split, TorchLoader, make_loader
from digitlab.data.balance import epoch_balance
from digitlab.data.loader import ImageDataset, epoch_batches, epoch_permutation, normalize

CPU = torch.device("cpu")
MEAN, STD = 0.1307, 0.3081


def indexed_split(n: int) -> Split:
    """Sample i has label i and every pixel equal to i % 256: a batch tells which samples
    it holds, and whether images and labels stayed paired."""
    labels = torch.arange(n, dtype=torch.int64)
    images = (labels % 256).to(torch.uint8).view(n, 1, 1).expand(n, 28, 28).contiguous()
    return Split(images, labels)


def random_split(n: int, seed: int = 0) -> Split:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
    return Split(images, torch.randint(0, 10, (n,), generator=gen))


def labels_of(loader, epoch: int | None = None) -> list[list[int]]:
    if epoch is not None:
        loader.set_epoch(epoch)
    return [labels.tolist() for _, labels in loader]


def device_loader(split, batch_size, shuffle=True, seed=0, mean=MEAN, std=STD):
    return DeviceLoader(split, batch_size, CPU, mean, std, shuffle, seed)


# ---------------------------------------------------------------- DeviceLoader


@pytest.mark.parametrize("n, batch_size", [(10, 4), (64, 64), (65, 64), (257, 16), (3, 10)])
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
def test_every_sample_once_per_epoch(n, batch_size, shuffle):
    loader = device_loader(indexed_split(n), batch_size, shuffle, mean=0.0, std=1.0)
    for epoch in range(3):
        loader.set_epoch(epoch)
        seen = []
        for images, labels in loader:
            assert images.shape == (len(labels), 1, 28, 28)
            assert images.dtype == torch.float32 and labels.dtype == torch.int64
            # images stay paired with their labels
            pixel = (images[:, 0, 0, 0] * 255).round().long()
            assert torch.equal(pixel, labels % 256)
            seen += labels.tolist()
        assert sorted(seen) == list(range(n))
        assert len(seen) == n


def test_last_partial_batch_is_kept():
    for shuffle in (True, False):
        loader = device_loader(indexed_split(10), 4, shuffle)
        assert len(loader) == 3
        assert [len(labels) for _, labels in loader] == [4, 4, 2]


@pytest.mark.parametrize("balance", ["none", "weights", "sampler", "lecun"])
@pytest.mark.parametrize("batch_size", [1, 7, 10, 64])
def test_epoch_batches_counts_what_the_loader_yields(balance, batch_size):
    """The pure count train() lays its schedules out with, without drawing any order: the
    batches the loader really yields in that epoch (a class missing, so lecun's epoch is not
    a multiple of its batch)."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([40, 25, 0, 9, 3, 61])])
    split = Split(torch.zeros(len(labels), 28, 28, dtype=torch.uint8), labels)
    loader = DeviceLoader(split, batch_size, CPU, MEAN, STD, shuffle=True, seed=3,
                          balance=balance, num_classes=10)
    for epoch in range(2):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(loader) == epoch_batches(labels, batch_size, balance, 10)
        # every batch holds the loader's batch size but the last
        assert all(len(b[1]) == loader.batch_size for b in batches[:-1])


def test_set_epoch_switches_balance_for_fine_tuning():
    """Balanced epochs first, then the last data.balance_finetune_epochs at the true
    frequencies: the loader follows epoch_balance; "weights" draws like "none"."""
    assert [epoch_balance("lecun", e, 4, 1) for e in range(4)] == ["lecun"] * 3 + ["none"]
    assert [epoch_balance("none", e, 3, 0) for e in range(3)] == ["none"] * 3
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 5])])
    split = Split(torch.zeros(len(labels), 28, 28, dtype=torch.uint8), labels)
    loader = DeviceLoader(split, 10, CPU, MEAN, STD, shuffle=True, balance="sampler",
                          num_classes=2)
    drawn = torch.cat([b[1] for b in loader])
    assert 15 < int((drawn == 1).sum()) < 40  # balanced draws: about half are the rare class
    loader.set_epoch(1, "none")
    assert sorted(torch.cat([b[1] for b in loader]).tolist()) == sorted(labels.tolist())
    loader.set_epoch(2, "weights")
    assert loader.balance == "none"
    assert sorted(torch.cat([b[1] for b in loader]).tolist()) == sorted(labels.tolist())


def test_unshuffled_order_is_identity():
    loader = device_loader(indexed_split(10), 4, shuffle=False)
    assert labels_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader.set_epoch(5)  # epochs do not change an unshuffled order
    assert labels_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_shuffled_order_is_reproducible_and_varies():
    split = indexed_split(100)
    a, b = device_loader(split, 8, seed=3), device_loader(split, 8, seed=3)
    assert labels_of(a, 0) == labels_of(b, 0)
    assert labels_of(a, 1) == labels_of(b, 1)
    assert labels_of(a, 0) == labels_of(a, 0)  # iterating again repeats the epoch
    assert labels_of(a, 0) != labels_of(a, 1)  # a new epoch, a new order
    assert labels_of(a, 0) != labels_of(device_loader(split, 8, seed=4), 0)  # a new seed too
    assert sum(labels_of(a, 0), []) != list(range(100))  # it is shuffled at all


def test_order_depends_only_on_seed_and_epoch():
    """A loader that starts at epoch 2 (a resumed run) sees what an uninterrupted one sees."""
    split = indexed_split(50)
    straight = device_loader(split, 7, seed=11)
    for epoch in range(3):
        order = labels_of(straight, epoch)
    resumed = device_loader(split, 7, seed=11)
    assert labels_of(resumed, 2) == order
    assert sum(order, []) == epoch_permutation(50, 11, 2).tolist()


def test_shuffle_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    labels_of(device_loader(indexed_split(20), 4, seed=1), 0)
    assert torch.equal(torch.rand(3), expected)


def test_batches_equal_normalize_of_the_same_samples():
    split = random_split(37)
    loader = device_loader(split, 8, seed=2)
    loader.set_epoch(1)
    order = epoch_permutation(37, 2, 1)
    for i, (images, labels) in enumerate(loader):
        idx = order[8 * i: 8 * i + 8]
        assert torch.equal(images, normalize(split.images[idx], MEAN, STD))
        assert torch.equal(labels, split.labels[idx])


# ---------------------------------------------------------------- normalization


def torchvision_transform(mean: float, std: float):
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])


@pytest.mark.parametrize("mean, std", [(MEAN, STD), (0.5, 0.5), (0.0, 1.0)])
def test_normalize_equals_torchvision_bitwise(mean, std):
    split = random_split(16, seed=5)
    split.images[0] = 0
    split.images[1] = 255
    transform = torchvision_transform(mean, std)
    expected = torch.stack([transform(Image.fromarray(img.numpy()))
                            for img in split.images])
    ours = normalize(split.images, mean, std)
    assert ours.shape == expected.shape == (16, 1, 28, 28)
    assert ours.dtype == expected.dtype == torch.float32
    assert torch.equal(ours, expected)


def test_normalize_leaves_its_input_alone():
    images = random_split(4).images
    before = images.clone()
    normalize(images, MEAN, STD)
    assert torch.equal(images, before)


def test_image_dataset_is_the_tutorial_per_sample_path():
    split = random_split(5)
    dataset = ImageDataset(split, MEAN, STD)
    assert len(dataset) == 5
    transform = torchvision_transform(MEAN, STD)
    for i in range(5):
        image, label = dataset[i]
        assert isinstance(label, int) and label == int(split.labels[i])
        expected = transform(Image.fromarray(np.asarray(split.images[i])))
        assert torch.equal(image, expected)


# ---------------------------------------------------------------- TorchLoader


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
def test_torch_loader_yields_the_device_loader_batches(shuffle):
    split = random_split(103, seed=1)
    ours = DeviceLoader(split, 16, CPU, MEAN, STD, shuffle, seed=7)
    theirs = TorchLoader(split, 16, CPU, MEAN, STD, shuffle, seed=7)
    assert len(ours) == len(theirs) == 7
    for epoch in (0, 1):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        batches = list(zip(ours, theirs, strict=True))
        assert len(batches) == 7
        for (x1, y1), (x2, y2) in batches:
            assert x1.dtype == x2.dtype and y1.dtype == y2.dtype
            assert torch.equal(x1, x2)
            assert torch.equal(y1, y2)


def test_make_loader_picks_the_kind():
    split = random_split(10)
    assert isinstance(make_loader(split, "device", 4, CPU, MEAN, STD, True), DeviceLoader)
    assert isinstance(make_loader(split, "torch", 4, CPU, MEAN, STD, True), TorchLoader)
