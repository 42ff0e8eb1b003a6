"""Splits and class balance: validation hold-out, long-tailed training sets, balanced orders.

Everything here is a pure function of (labels, seed, epoch), so runs and resumes repeat exactly.
The balance modes (data.balance): "none"; "weights" balances in the loss; "sampler", "sqrt" and
"lecun" change which samples an epoch draws (`draws_balanced`): "sampler" gives every class an
equal share, "sqrt" a share in proportion to the square root of its size (half-way, on a log
scale, between the true frequencies and equal shares), "lecun" equal batches. The last
data.balance_finetune_epochs epochs go back to the true frequencies (`epoch_balance`).
"""

from __future__ import annotations

import math

import torch

from digitlab.data.dataset import Split
from digitlab.errors import ConfigError
from digitlab.i18n import _

VAL_SEED_OFFSET = 7919  # keeps the validation draw independent of the epoch permutations
IMBALANCE_SEED_OFFSET = 104729


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def epoch_generator(seed: int, epoch: int, offset: int = 0,
                    device: torch.device | str = "cpu") -> torch.Generator:
    """The random stream of one epoch, seeded by (seed, epoch) alone: a resumed run draws the
    same orders and augmentations as one that never stopped. `offset` keeps independent
    streams (orders, shifts) apart."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch + offset)


def draws_balanced(balance: str) -> bool:
    """The modes that balance which samples an epoch draws; "weights" balances in the loss
    and draws like "none"."""
    return balance in ("sampler", "sqrt", "lecun")


def epoch_balance(balance: str, epoch: int, epochs: int, finetune_epochs: int) -> str:
    """The balance mode in force in `epoch` (0-based): the configured one, then "none" for
    the last `finetune_epochs` epochs (fine-tuning at the true class frequencies)."""
    return balance if epoch < epochs - finetune_epochs else "none"


def val_count(n: int, val_size: float) -> int:
    """How many of n training samples data.val_size holds out: a fraction (< 1) or a count."""
    if val_size == 0:
        return 0
    k = round(n * val_size) if val_size < 1 else int(val_size)
    if not 1 <= k < n:
        raise ConfigError(_("data.val_size = {val_size} leaves {remaining} of {total} training "
                            "samples; choose a smaller fraction or count").format(
            val_size=val_size, remaining=n - k, total=n))
    return k


def val_split(split: Split, val_size: float, seed: int) -> tuple[Split, Split | None]:
    """(train, val): val_size < 1 is a fraction, otherwise a count, drawn at random (seeded)."""
    if val_size == 0:
        return split, None
    n = len(split)
    k = val_count(n, val_size)
    order = torch.randperm(n, generator=_gen(seed + VAL_SEED_OFFSET))
    val, train = order[:k].sort().values, order[k:].sort().values
    return (Split(split.images[train], split.labels[train]),
            Split(split.images[val], split.labels[val]))


def class_sizes(max_size: int, num_classes: int, ratio: float, profile: str) -> list[int]:
    """Per-class sizes falling from max_size to max_size / ratio.

    exponential: n_c = max_size * ratio^(-c / (C - 1)); step: the second half of the classes
    gets max_size / ratio, the first half keeps max_size."""
    if profile == "step":
        return [max_size if c < num_classes // 2 else max(1, round(max_size / ratio))
                for c in range(num_classes)]
    return [max(1, round(max_size * ratio ** (-c / max(1, num_classes - 1))))
            for c in range(num_classes)]


def make_imbalanced(split: Split, num_classes: int, ratio: float, profile: str,
                    seed: int) -> Split:
    """A long-tailed subset of `split` (the same one for the same seed)."""
    if ratio == 1:
        return split
    counts = torch.bincount(split.labels, minlength=num_classes)
    sizes = class_sizes(int(counts.max()), num_classes, ratio, profile)
    gen = _gen(seed + IMBALANCE_SEED_OFFSET)
    keep = []
    for c in range(num_classes):
        members = (split.labels == c).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=gen)]
        keep.append(members[: min(sizes[c], len(members))])
    index = torch.cat(keep).sort().values
    return Split(split.images[index], split.labels[index])


def balancing_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """N / (C * n_c): each class contributes equally to the loss in expectation."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    return len(labels) / (num_classes * counts.clamp(min=1))


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch `epoch`; depends only on (seed, epoch), so a resumed run matches."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


def weighted_order(labels: torch.Tensor, num_classes: int, seed: int, epoch: int,
                   power: float = 1.0) -> torch.Tensor:
    """WeightedRandomSampler semantics: N draws with replacement, P(i) ~ n_class(i)^-power, so
    class c gets a share ~ n_c^(1 - power) of the epoch: equal shares at power 1 ("sampler"),
    shares ~ sqrt(n_c) at power 0.5 ("sqrt")."""
    weights = balancing_weights(labels, num_classes).pow(power)[labels]
    return torch.multinomial(weights, len(labels), replacement=True,
                             generator=epoch_generator(seed, epoch))


def lecun_batch_size(batch_size: int, num_classes: int) -> int:
    """lecun batches hold the same count of every class: the batch rounds down to k * C."""
    return max(1, batch_size // num_classes) * num_classes


def lecun_rows(labels: torch.Tensor, num_classes: int, batch_size: int) -> int:
    """Rows of a lecun epoch (batches when every class is present): the largest class, used
    once, in steps of batch_size / C."""
    per_class = lecun_batch_size(batch_size, num_classes) // num_classes
    return math.ceil(int(torch.bincount(labels, minlength=num_classes).max()) / per_class)


def lecun_epoch_size(labels: torch.Tensor, num_classes: int, batch_size: int) -> int:
    """Samples in one lecun epoch, len(lecun_order(...)), without drawing it."""
    present = int((torch.bincount(labels, minlength=num_classes) > 0).sum())
    per_class = lecun_batch_size(batch_size, num_classes) // num_classes
    return lecun_rows(labels, num_classes, batch_size) * per_class * present


def lecun_order(labels: torch.Tensor, num_classes: int, batch_size: int, seed: int,
                epoch: int) -> torch.Tensor:
    """Per-class circular buffers; each batch takes batch_size / C from every class, until every
    sample of the largest class has been used once. Smaller classes wrap around (reshuffled
    each pass), so nothing is left on the floor and every batch is balanced."""
    gen = epoch_generator(seed, epoch)
    per_class = lecun_batch_size(batch_size, num_classes) // num_classes
    members = [(labels == c).nonzero().squeeze(1) for c in range(num_classes)]
    members = [m for m in members if len(m) > 0]
    num_batches = lecun_rows(labels, num_classes, batch_size)
    needed = num_batches * per_class
    columns = []
    for m in members:
        rounds = math.ceil(needed / len(m))
        passes = [m[torch.randperm(len(m), generator=gen)] for _ in range(rounds)]
        columns.append(torch.cat(passes)[:needed].view(num_batches, per_class))
    return torch.cat(columns, dim=1).reshape(-1)  # batch b = row b of every class, side by side
