"""Weight initialization schemes for `model.init`."""

from __future__ import annotations

from torch import nn

INIT_SCHEMES = ("default", "kaiming", "xavier", "orthogonal")


def initialize(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialize every Linear and Conv2d weight with `scheme`; biases start at zero.

    "default" keeps PyTorch's own init (Kaiming-uniform with a = sqrt(5)), as the tutorial did.
    """
    if scheme == "default":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
