"""Class balance and splits: LeCun's equal-count batches, the long-tail simulation, weighted
sampling, balancing weights, the validation hold-out, and the balance modes end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from digitlab.cli import main
from digitlab.config import build_config
from digitlab.data import SOURCES, Split, make_loader
from digitlab.data.balance import (
    balancing_weights,
    class_sizes,
    lecun_batch_size,
    lecun_order,
    make_imbalanced,
    val_split,
    weighted_order,
)
from digitlab.data.loader import epoch_order
from digitlab.errors import ConfigError
from digitlab.training.setup import training_splits
from helpers import TINY


@pytest.fixture(autouse=True)
def _no_analysis(no_analysis, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def labels_with_counts(counts: list[int], seed: int = 0) -> torch.Tensor:
    """Labels with counts[c] samples of class c, shuffled."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def indexed_split(labels: torch.Tensor) -> Split:
    """A split whose image i carries i in its first two pixels, so samples can be traced."""
    n = len(labels)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    index = torch.arange(n)
    images[:, 0, 0] = (index % 256).to(torch.uint8)
    images[:, 0, 1] = (index // 256).to(torch.uint8)
    return Split(images, labels)


def ids(split: Split) -> list[int]:
    return (split.images[:, 0, 0].long() + 256 * split.images[:, 0, 1].long()).tolist()


# ---- lecun order ----------------------------------------------------------------------------

COUNTS = [51, 30, 20, 7, 3]


@pytest.mark.parametrize("batch_size", [10, 13, 5])
@pytest.mark.parametrize("epoch", [0, 3])
def test_lecun_batches_are_balanced(batch_size, epoch):
    labels = labels_with_counts(COUNTS)
    c = len(COUNTS)
    size = lecun_batch_size(batch_size, c)
    per_class = size // c
    order = lecun_order(labels, c, batch_size, seed=1, epoch=epoch)
    assert len(order) % size == 0
    batches = order.view(-1, size)
    assert len(batches) == math.ceil(max(COUNTS) / per_class)
    for batch in batches:
        assert torch.bincount(labels[batch], minlength=c).tolist() == [per_class] * c
    used = set(order.tolist())
    for cls in range(c):  # every sample of every class is used at least once
        members = set((labels == cls).nonzero().squeeze(1).tolist())
        assert members <= used
    largest = (labels == 0).nonzero().squeeze(1)
    appearances = torch.bincount(order, minlength=len(labels))[largest]
    assert appearances.min() >= 1 and appearances.max() <= 2


def test_lecun_batch_size_rounds_to_classes():
    assert lecun_batch_size(64, 10) == 60
    assert lecun_batch_size(60, 10) == 60
    assert lecun_batch_size(5, 10) == 10  # at least one of each class
    assert lecun_batch_size(13, 5) == 10


def test_lecun_order_is_seeded_per_epoch():
    labels = labels_with_counts(COUNTS)
    a = lecun_order(labels, 5, 10, seed=3, epoch=0)
    assert torch.equal(a, lecun_order(labels, 5, 10, seed=3, epoch=0))
    assert not torch.equal(a, lecun_order(labels, 5, 10, seed=3, epoch=1))
    assert not torch.equal(a, lecun_order(labels, 5, 10, seed=4, epoch=0))


def test_lecun_loader_batches_are_balanced():
    labels = labels_with_counts([40, 25, 12, 9, 6, 30, 18, 5, 22, 14], seed=2)
    loader = make_loader(indexed_split(labels), "device", 64, torch.device("cpu"), 0.0, 1.0,
                         shuffle=True, seed=5, balance="lecun", num_classes=10)
    batches = list(loader)
    assert len(batches) == len(loader) == math.ceil(40 / 6)
    for images, batch_labels in batches:
        assert images.shape == (60, 1, 28, 28)
        assert torch.bincount(batch_labels, minlength=10).tolist() == [6] * 10


# ---- imbalance simulation -------------------------------------------------------------------

def balanced_labels(per_class: int = 100, classes: int = 10) -> torch.Tensor:
    return labels_with_counts([per_class] * classes, seed=9)


@pytest.mark.parametrize("profile", ["exponential", "step"])
def test_make_imbalanced_follows_class_sizes(profile):
    split = indexed_split(balanced_labels())
    sub = make_imbalanced(split, 10, 10.0, profile, seed=7)
    counts = torch.bincount(sub.labels, minlength=10).tolist()
    assert counts == class_sizes(100, 10, 10.0, profile)
    assert max(counts) / min(counts) == pytest.approx(10, rel=0.05)
    again = make_imbalanced(split, 10, 10.0, profile, seed=7)
    assert torch.equal(sub.images, again.images) and torch.equal(sub.labels, again.labels)
    other = make_imbalanced(split, 10, 10.0, profile, seed=8)
    assert ids(other) != ids(sub)
    kept = ids(sub)  # a subset of the original samples, with their own labels
    assert len(set(kept)) == len(kept)
    assert torch.equal(split.labels[kept], sub.labels)


def test_class_sizes_profiles():
    exp = class_sizes(1000, 10, 10.0, "exponential")
    assert exp[0] == 1000 and exp[-1] == 100
    assert all(a > b for a, b in zip(exp, exp[1:], strict=False))
    assert exp[1] == round(1000 * 10 ** (-1 / 9))
    assert class_sizes(1000, 10, 10.0, "step") == [1000] * 5 + [100] * 5
    assert class_sizes(1000, 10, 1.0, "exponential") == [1000] * 10
    assert min(class_sizes(5, 10, 1000.0, "exponential")) >= 1


def test_make_imbalanced_ratio_one_is_identity():
    split = indexed_split(balanced_labels())
    assert make_imbalanced(split, 10, 1.0, "exponential", seed=0) is split


# ---- weighted sampler and weights -----------------------------------------------------------

def test_weighted_order_is_roughly_uniform_over_classes():
    counts = class_sizes(1000, 10, 20.0, "exponential")  # 1000 ... 50
    labels = labels_with_counts(counts)
    order = weighted_order(labels, 10, seed=0, epoch=0)
    assert len(order) == len(labels)
    drawn = torch.bincount(labels[order], minlength=10).float()
    expected = len(labels) / 10
    assert ((drawn - expected).abs() / expected).max() < 0.25
    assert torch.equal(order, weighted_order(labels, 10, seed=0, epoch=0))
    assert not torch.equal(order, weighted_order(labels, 10, seed=0, epoch=1))


def test_sqrt_order_gives_each_class_a_share_in_proportion_to_its_square_root():
    counts = [6400, 6400, 400, 400]  # square roots 80, 80, 20, 20: shares 0.4, 0.4, 0.1, 0.1
    labels = labels_with_counts(counts)
    order = weighted_order(labels, 4, seed=0, epoch=0, power=0.5)
    assert len(order) == len(labels)
    shares = torch.bincount(labels[order], minlength=4).float() / len(order)
    assert torch.allclose(shares, torch.tensor([0.4, 0.4, 0.1, 0.1]), atol=0.01)
    assert torch.equal(order, epoch_order(labels, 0, 0, "sqrt", num_classes=4))
    assert not torch.equal(order, epoch_order(labels, 0, 0, "sampler", num_classes=4))


def test_balancing_weights_formula():
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    w = balancing_weights(labels, 3)
    assert torch.allclose(w, torch.tensor([10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)]))
    # every class contributes N / C in total
    per_class = torch.zeros(3).index_add_(0, labels, w[labels])
    assert torch.allclose(per_class, torch.full((3,), 10 / 3))
    assert torch.allclose(balancing_weights(torch.arange(4).repeat(5), 4), torch.ones(4))
    missing = balancing_weights(torch.tensor([0, 0, 1, 1]), 3)  # an absent class: no inf
    assert torch.isfinite(missing).all()


# ---- validation split -----------------------------------------------------------------------

@pytest.mark.parametrize("val_size,expected", [(0.2, 20), (0.25, 25), (30, 30), (1, 1)])
def test_val_split_sizes(val_size, expected):
    split = indexed_split(balanced_labels(10))
    train, val = val_split(split, val_size, seed=3)
    assert len(val) == expected and len(train) == 100 - expected
    assert not set(ids(train)) & set(ids(val))
    assert set(ids(train)) | set(ids(val)) == set(range(100))
    assert torch.equal(split.labels[ids(val)], val.labels)
    again_train, again_val = val_split(split, val_size, seed=3)
    assert ids(again_val) == ids(val) and ids(again_train) == ids(train)
    if expected > 1:
        assert ids(val_split(split, val_size, seed=4)[1]) != ids(val)


def test_val_split_zero_is_no_split():
    split = indexed_split(balanced_labels(10))
    train, val = val_split(split, 0, seed=0)
    assert train is split and val is None


@pytest.mark.parametrize("val_size", [0.001, 100, 150])
def test_val_split_bad_sizes(val_size):
    split = indexed_split(balanced_labels(10))
    with pytest.raises(ConfigError, match="val_size"):
        val_split(split, val_size, seed=0)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "2.5"])
def test_val_size_config_checks(value):
    with pytest.raises(ConfigError, match="val_size"):
        build_config(sets=[f"data.val_size={value}"])


def test_cli_val_size_too_big(tmp_path, capsys):
    code = main(["train", "--dataset", "digits", "--epochs", "1", *TINY,
                 "--set", "data.val_size=5000", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "val_size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---- end to end -----------------------------------------------------------------------------

@pytest.mark.parametrize("balance", ["none", "weights", "sampler", "sqrt", "lecun"])
def test_cli_balance_modes(balance, tmp_path, capsys):
    run = tmp_path / "run"
    finetune = 0 if balance == "none" else 1
    code = main(["train", "--dataset", "digits", "--epochs", "2", *TINY,
                 "--set", "data.imbalance_ratio=10", "--set", f"data.balance={balance}",
                 "--set", f"data.balance_finetune_epochs={finetune}", "--out", str(run)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]

    # the epoch lengths: lecun's balanced epoch, then one at the true frequencies
    cfg, _ = build_config(sets=["data.name=digits", "data.imbalance_ratio=10"])
    train, _ = training_splits(SOURCES.get("digits")(cfg.data), cfg)
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.max() / counts.min() == pytest.approx(10, rel=0.1)
    plain = math.ceil(len(train) / 64)
    first = math.ceil(int(counts.max()) / 6) if balance == "lecun" else plain
    assert [r["batches"] for r in records] == [first, first + plain]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and math.isfinite(summary["test_loss"])


@pytest.mark.parametrize(("sets", "message"), [
    (["data.balance_finetune_epochs=1"], "0 when data.balance = 'none'"),
    (["data.balance=lecun", "data.balance_finetune_epochs=2"], "must be less than train.epochs"),
])
def test_finetune_epochs_checked(sets, message, tmp_path, capsys):
    argv = ["train", "--dataset", "digits", "--epochs", "2", *TINY, "--out", str(tmp_path / "r")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
