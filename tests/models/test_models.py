"""Each model family's structure: the layers its knobs build, and model.init.

That every model builds, runs forward and backward and gives no NaN is swept once, over the
whole registry, in tests/test_registry.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from digitlab.config import ModelConfig
from digitlab.models import INIT_SCHEMES, MODELS, build_model


def layers_of(model: nn.Module, *types: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, types)]


def test_seed_mlp_is_the_tutorial_model():
    model = build_model(ModelConfig(), 10)
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                        "fc3.weight", "fc3.bias"]
    assert sum(p.numel() for p in model.parameters()) == 109_386
    assert model.fc1.weight.shape == (128, 784)
    assert model.fc2.weight.shape == (64, 128)
    assert model.fc3.weight.shape == (10, 64)


def test_mlp_hidden_dropout_batchnorm():
    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), dropout=0.3), 10)
    linears = layers_of(model, nn.Linear)
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 32), (32, 16), (16, 10)]
    drops = layers_of(model, nn.Dropout)
    assert len(drops) == 2 and all(m.p == 0.3 for m in drops)
    assert not layers_of(model, nn.BatchNorm1d)

    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), batchnorm=True), 10)
    assert [m.num_features for m in layers_of(model, nn.BatchNorm1d)] == [32, 16]
    linears = layers_of(model, nn.Linear)
    assert linears[0].bias is None and linears[1].bias is None  # batchnorm has the shift
    assert linears[2].bias is not None
    assert not layers_of(model, nn.Dropout)


@pytest.mark.parametrize("pool,pool_type", [("max", nn.MaxPool2d), ("avg", nn.AvgPool2d)])
def test_cnn_channels_kernel_pool(pool, pool_type):
    model = build_model(ModelConfig(name="cnn", channels=(4, 8, 6), kernel_size=5, pool=pool), 10)
    convs = layers_of(model, nn.Conv2d)
    assert [m.out_channels for m in convs] == [4, 8, 6]
    assert [m.in_channels for m in convs] == [1, 4, 8]
    assert all(m.kernel_size == (5, 5) and m.padding == (2, 2) for m in convs)
    pools = layers_of(model, nn.MaxPool2d, nn.AvgPool2d)
    assert len(pools) == 3 and all(type(m) is pool_type for m in pools)
    head = layers_of(model, nn.Linear)[-1]
    assert head.in_features == 6 * 3 * 3  # 28 -> 14 -> 7 -> 3
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_batchnorm_and_dropout():
    model = build_model(ModelConfig(name="cnn", channels=(4,), batchnorm=True, dropout=0.25), 10)
    assert layers_of(model, nn.Conv2d)[0].bias is None
    assert layers_of(model, nn.BatchNorm2d)
    assert any(m.p == 0.25 for m in layers_of(model, nn.Dropout))


@pytest.mark.parametrize("batchnorm", [False, True])
def test_smallcnn_is_the_public_small_cnn(batchnorm):
    """conv 5x5 -> pool -> relu -> conv 3x3 -> pool -> relu -> hidden linear layers -> head,
    unpadded; fast99's 16-32-256 and the public 24-32-256 are the same family."""
    model = build_model(ModelConfig(name="smallcnn", channels=(24, 32), hidden=(256,),
                                    batchnorm=batchnorm, dropout=0.1), 10)
    kinds = [type(m).__name__ for m in model if not isinstance(m, nn.Identity)]
    norm = ["BatchNorm2d"] if batchnorm else []
    assert kinds == ["Conv2d", *norm, "MaxPool2d", "ReLU", "Conv2d", *norm, "MaxPool2d", "ReLU",
                     "Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    convs = layers_of(model, nn.Conv2d)
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in convs] == [
        (1, 24, (5, 5), (0, 0)), (24, 32, (3, 3), (0, 0))]
    assert all((m.bias is None) == batchnorm for m in convs)
    linears = layers_of(model, nn.Linear)
    assert [(m.in_features, m.out_features) for m in linears] == [(800, 256), (256, 10)]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    if not batchnorm:
        # conv1 624 + conv2 6,944 + linear 205,056 + head 2,570
        assert sum(p.numel() for p in model.parameters()) == 215_194


def test_smallcnn_pool_before_relu_is_relu_before_pool():
    """The cheaper order gives the same numbers for max pooling and ReLU."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="smallcnn", channels=(4, 6), hidden=(8,)), 10)
    images = torch.randn(5, 1, 28, 28)
    conv1, _, pool1, relu1, conv2, _, pool2, relu2 = list(model)[:8]
    swapped = pool2(relu2(conv2(pool1(relu1(conv1(images))))))
    assert torch.equal(relu2(pool2(conv2(relu1(pool1(conv1(images)))))), swapped)
    assert torch.equal(model(images), model[8:](swapped))


def test_smallcnn_needs_two_widths():
    from digitlab.errors import ConfigError

    with pytest.raises(ConfigError, match="two widths for smallcnn"):
        ModelConfig(name="smallcnn", channels=(8, 16, 32))


def test_lenet5_is_the_paper_shape():
    model = build_model(ModelConfig(name="lenet5"), 10)
    convs = layers_of(model, nn.Conv2d)
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in convs] == [
        (1, 6, (5, 5)), (6, 16, (5, 5))]
    assert len(layers_of(model, nn.AvgPool2d)) == 2  # the paper's subsampling, not max
    linears = layers_of(model, nn.Linear)
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84),
                                                                   (84, 10)]


def test_resnet_stages_and_shortcuts():
    model = build_model(ModelConfig(name="resnet", channels=(4, 8)), 10)
    assert layers_of(model, nn.Linear)[-1].in_features == 8
    # two stages of two blocks; the second stage halves the size, so its first block needs a
    # 1x1 projection on the shortcut
    projections = [m for m in layers_of(model, nn.Conv2d) if m.kernel_size == (1, 1)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in projections] == [(4, 8, (2, 2))]
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ---- model.init ---------------------------------------------------------------------------

SCHEMES = [s for s in INIT_SCHEMES if s != "default"]
# The seed MLP is the tutorial's model as written: it ignores model.init (and model.dropout)
# without a word. Reported on issue #11; strict, so the case fails once it is fixed.
IGNORES_INIT = pytest.mark.xfail(strict=True, reason="seed-mlp ignores model.init silently")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", [pytest.param(n, marks=IGNORES_INIT) if n == "seed-mlp" else n
                                  for n in MODELS.names()])
def test_every_model_honours_init(name, scheme):
    """Every Linear and Conv2d is re-initialized: weights differ from PyTorch's default init
    (same seed), and biases start at zero."""
    cfg = ModelConfig(name=name, channels=(4, 8))
    torch.manual_seed(0)
    default = layers_of(build_model(cfg, 10), nn.Linear, nn.Conv2d)
    torch.manual_seed(0)
    chosen = layers_of(build_model(ModelConfig(name=name, channels=(4, 8), init=scheme), 10),
                       nn.Linear, nn.Conv2d)
    assert chosen
    for before, after in zip(default, chosen, strict=True):
        assert not torch.equal(before.weight, after.weight)
        assert torch.isfinite(after.weight).all() and after.weight.std() > 0
        assert after.bias is None or torch.count_nonzero(after.bias) == 0


def test_orthogonal_init_gives_orthonormal_rows_or_columns():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", channels=(4, 8), init="orthogonal"), 10)
    for layer in layers_of(model, nn.Linear, nn.Conv2d):
        w = layer.weight.flatten(1)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(min(w.shape)), atol=1e-4)


def test_default_init_keeps_pytorch_biases():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=(32,)), 10)
    assert torch.count_nonzero(layers_of(model, nn.Linear)[0].bias) > 0


def test_kaiming_init_scale():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=(512,), init="kaiming"), 10)
    w = layers_of(model, nn.Linear)[0].weight  # 512 x 784: std sqrt(2 / fan_in)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
