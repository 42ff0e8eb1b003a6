"""dl.train(model=..., data=...): your own registered nn.Module and your own tensors or torch
Datasets; the run records them so that dl.load_run gives the same model back, and bad input is
one UsageError line."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import digitlab as dl
from digitlab.errors import UsageError
from digitlab.models import MODELS

OWN = {"model.channels": [4, 8], "train.device": "cpu", "train.epochs": 1}  # with model=
SMALL = {**OWN, "model.name": "cnn"}


def digits() -> tuple[torch.Tensor, ...]:
    """The bundled digits (28x28 uint8) as four plain tensors: what a user brings."""
    from digitlab.config import DataConfig
    from digitlab.data import load_dataset

    data = load_dataset(DataConfig(name="digits"))
    return data.train.images, data.train.labels, data.test.images, data.test.labels


class TinyNet(nn.Module):
    """A registered model class: MODELS builds it from (ModelConfig, num_classes)."""

    def __init__(self, cfg=None, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 7 * 7, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.max_pool2d(self.conv(x).relu(), 4), 1))


class Unregistered(TinyNet):
    pass


@pytest.fixture
def tiny_net():
    MODELS.register("test-tiny-net")(TinyNet)
    yield TinyNet
    MODELS._builders.pop("test-tiny-net", None)
    MODELS._help.pop("test-tiny-net", None)


@pytest.fixture(scope="module")
def tensors():
    return digits()


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, tensors) -> dl.Run:
    out = tmp_path_factory.mktemp("custom") / "run"
    return dl.train(set={**SMALL, "train.out": str(out)}, data=tensors)


def test_train_on_your_own_tensors(user_run, tensors):
    summary = json.loads((user_run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["dataset"] == "user" and summary["dataset_origin"] == "digitlab.train(data=...)"
    assert 0.3 < summary["test_accuracy"] <= 1  # 1 epoch of a tiny cnn on 1,437 digits
    assert len(user_run.metrics) == 1
    evaluation = json.loads((user_run.run_dir / "evaluation.json").read_text(encoding="utf-8"))
    assert sum(map(sum, evaluation["confusion"])) == len(tensors[3])  # on the user's test split
    again = dl.load_run(user_run.run_dir)
    labels, probabilities = again.predict(tensors[2][:50])
    assert probabilities.shape == (50, 10) and len(labels) == 50
    accuracy = (torch.tensor(labels) == tensors[3][:50]).float().mean()
    assert accuracy > 0.3


def test_numpy_arrays_and_datasets_give_the_same_run(tmp_path, tensors, user_run):
    arrays = tuple(t.numpy() for t in tensors)
    pairs = (torch.utils.data.TensorDataset(tensors[0], tensors[1]),
             torch.utils.data.TensorDataset(tensors[2], tensors[3]))
    for name, data in (("arrays", arrays), ("datasets", pairs)):
        run = dl.train(set={**SMALL, "train.out": str(tmp_path / name)}, data=data)
        assert run.summary["test_accuracy"] == user_run.summary["test_accuracy"], name


def test_train_your_own_registered_module(tmp_path, tiny_net, tensors):
    torch.manual_seed(0)
    net = tiny_net(None, 10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    run = dl.train(set={**OWN, "train.out": str(tmp_path / "run")}, model=net, data=tensors)
    assert run.config.model.name == "test-tiny-net"
    assert run.config.train.imports == (TinyNet.__module__,)  # imported again to load the run
    assert {k: v.equal(before[k]) for k, v in net.state_dict().items()} == dict.fromkeys(before,
                                                                                      True)
    loaded = dl.load_run(run.run_dir)
    assert type(loaded.model) is TinyNet
    first = loaded.model.state_dict()
    assert not first["conv.weight"].equal(before["conv.weight"])  # trained from net's weights
    images = tensors[2][:20]
    assert loaded.predict(images)[0] == run.predict(images)[0]
    assert torch.allclose(loaded.predict(images)[1], run.predict(images)[1])


def test_the_initial_weights_are_the_modules(tmp_path, tiny_net, tensors):
    """Two modules with the same weights train to the same run; other weights, another run."""
    accuracies = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        run = dl.train(set={**OWN, "train.out": str(tmp_path / f"r{len(accuracies)}")},
                       model=tiny_net(None, 10), data=tensors)
        accuracies.append(run.summary["test_loss"])
    assert accuracies[0] == accuracies[1] != accuracies[2]


def _bad_data(tensors) -> dict[str, tuple[object, str]]:
    x, y, tx, ty = tensors
    return {
        "three items": ((x, y, tx), "data= takes"),
        "float images": ((x.float() / 255, y, tx, ty), "must be uint8"),
        "flat images": ((x.reshape(len(x), -1), y, tx, ty), "shape [N, 28, 28]"),
        "few labels": ((x, y[:-1], tx, ty), "one per image"),
        "float labels": ((x, y.float(), tx, ty), "integer class indices"),
        "negative label": ((x, y - 1, tx, ty), "class indices 0, 1"),
        "a list": ((x, y.tolist(), tx, ty), "numpy array or a tensor"),
        "one class": ((x, torch.zeros_like(y), tx, torch.zeros_like(ty)), "single class"),
        "bad dataset": ((torch.utils.data.TensorDataset(x),
                         torch.utils.data.TensorDataset(tx)), "(image, label) pairs"),
    }


@pytest.mark.parametrize("case", list(_bad_data([torch.zeros(2, 28, 28, dtype=torch.uint8),
                                                 torch.tensor([0, 1])] * 2)))
def test_bad_data_is_one_line(tmp_path, case):
    x = torch.zeros(4, 28, 28, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    data, expected = _bad_data((x, y, x, y))[case]
    with pytest.raises(UsageError) as error:
        dl.train(set={**SMALL, "train.out": str(tmp_path / "run")}, data=data)
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()  # bad input writes nothing


def test_bad_models_are_one_line(tmp_path, tiny_net, tensors):
    out = {"train.out": str(tmp_path / "run")}
    cases = [
        (Unregistered(), {}, "not a registered model"),
        ("cnn", {}, "nn.Module instance"),
        (TinyNet(None, 3), {}, "do not fit"),  # 3 outputs for 10 classes
        (Unregistered(), {"model.name": "cnn"}, "builds a Sequential"),
    ]
    for model, extra, expected in cases:
        with pytest.raises(UsageError) as error:
            dl.train(set={**OWN, **out, **extra}, model=model, data=tensors)
        assert expected in str(error.value) and "\n" not in str(error.value), expected
    assert not (tmp_path / "run").exists()


def test_a_module_named_by_its_builder(tmp_path, tensors):
    """A model built by a registered function (the "Your own model" style) is accepted when
    model.name names that function."""
    from digitlab.config import ModelConfig
    from digitlab.models import build_model

    net = build_model(ModelConfig(name="cnn", channels=(4, 8)), 10)
    run = dl.train(set={**SMALL, "train.out": str(tmp_path / "run")}, model=net, data=tensors)
    assert type(dl.load_run(run.run_dir).model) is type(net)
    assert run.config.train.imports == ()  # a built-in model needs no import



@pytest.mark.parametrize("argv,expected", [
    (["evaluate"], "which is not on disk; evaluate it from Python"),
    (["train", "--resume"], "which is not on disk; train it again from Python"),
], ids=["evaluate", "resume"])
def test_the_cli_refuses_a_run_trained_on_your_tensors(user_run, argv, expected, capsys):
    # evaluate quietly read the dataset data.name names (MNIST by default) instead
    from helpers import cli

    before = (user_run.run_dir / "evaluation.json").read_bytes()
    code, output = cli(capsys, *argv, str(user_run.run_dir))
    assert code == 2 and expected in output and len(output.strip().splitlines()) == 1
    assert (user_run.run_dir / "evaluation.json").read_bytes() == before
