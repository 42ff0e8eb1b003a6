"""The activations' own knobs (model.negative_slope, model.alpha, ...) reach the modules and
the models' layers. That every activation runs forward and backward without NaN, alone and
inside a model, is swept in tests/test_registry.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from digitlab.config import ModelConfig
from digitlab.models import build_activation, build_model

ACTIVATION_PARAMS = [
    ("leakyrelu", {"negative_slope": 0.2}, {"negative_slope": 0.2}),
    ("rrelu", {"rrelu_lower": 0.05, "rrelu_upper": 0.25}, {"lower": 0.05, "upper": 0.25}),
    ("softplus", {"softplus_beta": 2.5, "softplus_threshold": 7.0},
     {"beta": 2.5, "threshold": 7.0}),
    ("elu", {"alpha": 0.7}, {"alpha": 0.7}),
    ("celu", {"alpha": 1.7}, {"alpha": 1.7}),
    ("gelu", {"gelu_approximate": "tanh"}, {"approximate": "tanh"}),
    ("hardtanh", {"hardtanh_min": -2.0, "hardtanh_max": 3.0}, {"min_val": -2.0, "max_val": 3.0}),
    ("threshold", {"threshold": 0.4, "threshold_value": -1.5}, {"threshold": 0.4, "value": -1.5}),
    ("softshrink", {"shrink_lambda": 0.3}, {"lambd": 0.3}),
    ("hardshrink", {"shrink_lambda": 0.8}, {"lambd": 0.8}),
]


@pytest.mark.parametrize("name,knobs,attrs", ACTIVATION_PARAMS,
                         ids=[p[0] for p in ACTIVATION_PARAMS])
def test_activation_params_reach_the_module(name, knobs, attrs):
    act = build_activation(ModelConfig(activation=name, **knobs), 16)
    for attr, expected in attrs.items():
        assert getattr(act, attr) == expected, attr


def test_activation_params_change_the_output():
    x = torch.linspace(-3, 3, 13)[None]
    hardtanh = build_activation(ModelConfig(activation="hardtanh", hardtanh_min=-2.0,
                                            hardtanh_max=0.5), 13)(x)
    assert hardtanh.min() == -2.0 and hardtanh.max() == 0.5
    threshold = build_activation(ModelConfig(activation="threshold", threshold=1.0,
                                             threshold_value=-7.0), 13)(x)
    assert torch.equal(threshold, torch.where(x > 1.0, x, torch.tensor(-7.0)))
    leaky = build_activation(ModelConfig(activation="leakyrelu", negative_slope=0.5), 13)(x)
    assert torch.allclose(leaky, torch.where(x > 0, x, 0.5 * x))


@pytest.mark.parametrize("per_channel,numel", [(False, 1), (True, 16)],
                         ids=["shared", "per-channel"])
def test_prelu_per_channel(per_channel, numel):
    act = build_activation(ModelConfig(activation="prelu", prelu_per_channel=per_channel), 16)
    assert isinstance(act, nn.PReLU)
    assert act.weight.numel() == numel


def test_activation_params_reach_model_layers():
    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), activation="prelu",
                                    prelu_per_channel=True), 10)
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert [p.weight.numel() for p in prelus] == [32, 16]
    model = build_model(ModelConfig(name="cnn", channels=(4, 8), activation="leakyrelu",
                                    negative_slope=0.3), 10)
    leaky = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 2 and all(m.negative_slope == 0.3 for m in leaky)
