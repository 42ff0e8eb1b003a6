"""`digitlab list`: every registry, as JSON names and as a table with descriptions."""

from __future__ import annotations

import json

import pytest

from digitlab.catalog import catalog
from digitlab.cli import main
from helpers import flat

EXPECTED = {
    "activations": "relu rrelu leakyrelu prelu softplus elu celu selu gelu relu6 sigmoid tanh "
                   "softsign hardtanh threshold tanhshrink softshrink hardshrink logsigmoid "
                   "softmin softmax logsoftmax silu mish hardswish",
    "models": "seed-mlp mlp lenet5 cnn smallcnn resnet",
    "losses": "cross-entropy nll bce mse l1 smooth-l1 kl-div multi-margin focal",
    "optimizers": "sgd adam adamw rmsprop adagrad adadelta adamax rprop asgd nadam radam lbfgs "
                  "sparse-adam",
    "schedulers": "none step multistep exponential cosine plateau onecycle cosine-warm-restarts",
    "datasets": "mnist fashion-mnist kmnist digits synthetic",
}
EXPECTED = {kind: names.split() for kind, names in EXPECTED.items()}


@pytest.fixture(scope="module")
def listed_json() -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list", "--json"]) == 0
    return json.loads(out.getvalue())


def test_list_json_keys(listed_json):
    assert set(listed_json) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_list_json_names(listed_json, kind):
    names = listed_json[kind]
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert len(names) == len(set(names))
    missing = [n for n in EXPECTED[kind] if n not in names]
    assert not missing, f"{kind} lacks {missing}"


def test_list_json_defaults_first(listed_json):
    assert listed_json["models"][0] == "seed-mlp"
    assert listed_json["activations"][0] == "relu"
    assert listed_json["losses"][0] == "cross-entropy"
    assert listed_json["schedulers"][0] == "none"
    assert listed_json["datasets"][0] == "mnist"


def test_list_json_matches_catalog(listed_json):
    assert listed_json == {kind: list(entries) for kind, entries in catalog().items()}


def test_every_entry_has_a_description():
    for kind, entries in catalog().items():
        for name, description in entries.items():
            assert description.strip(), f"{kind} {name} has no description"


def test_list_table(capsys):
    assert main(["list"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    text = flat(captured.out)
    for kind, entries in catalog().items():
        assert kind in text
        for name, description in entries.items():
            # a name, then its description (square brackets printed, not taken as markup)
            assert f"{name} {flat(description)}" in text, (kind, name)
    assert "activations (model.activation)" in text
    assert "optimizers (optim.name)" in text
