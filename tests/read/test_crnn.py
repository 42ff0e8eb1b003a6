"""The sequence model (crnn), CTC decoding and its metrics (training.sequence), and the ONNX
export of a read model."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from digitlab.config import ModelConfig
from digitlab.models import MODELS, build_model
from digitlab.training.sequence import (
    Decoded,
    beam,
    blank_index,
    cer,
    ctc_loss,
    edit_distance,
    exact_match,
    greedy,
    greedy_exact,
    steps_for,
)

TINY = ModelConfig(name="crnn", channels=(4, 8), hidden=(16,))


@pytest.mark.parametrize("width", [16, 17, 41, 100, 333])
def test_crnn_shapes_and_blank(width):
    model = build_model(TINY, 10).eval()
    with torch.no_grad():
        logits = model(torch.rand(3, 1, 32, width))
    steps = math.ceil(width / model.columns_per_step)
    assert model.columns_per_step == 4
    assert logits.shape == (3, steps, 11)  # C + 1 outputs: the blank is index C
    assert int(steps_for(torch.tensor([width]), 4)) == steps
    assert blank_index(10) == 10 and torch.isfinite(logits).all()


def test_crnn_is_registered_and_honours_its_knobs():
    assert "crnn" in MODELS.names() and "CTC" in MODELS.describe("crnn")
    wide = build_model(ModelConfig(name="crnn", channels=(8, 16, 24), hidden=(32,),
                                   dropout=0.2), 20)
    assert wide(torch.rand(2, 1, 32, 64)).shape == (2, 16, 21)
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in wide.modules()) == 2


def peaked(paths: list[list[int]], classes: int = 10, sure: float = 8.0) -> torch.Tensor:
    """Logits [B, T, C + 1] whose most likely label at each step is the path's."""
    logits = torch.zeros(len(paths), len(paths[0]), classes + 1)
    for b, path in enumerate(paths):
        for t, label in enumerate(path):
            logits[b, t, label] = sure
    return logits


def test_greedy_collapses_repeats_and_drops_blanks():
    _ = blank_index(10)
    decoded = greedy(peaked([[3, 3, _, 3, _, _, 1, 1], [_, _, 7, 7, 7, _, _, _],
                             [_, _, _, _, _, _, _, _], [5, 5, 5, 5, 5, 5, 5, 5]]))
    assert [d.labels for d in decoded] == [[3, 3, 1], [7], [], [5]]
    assert decoded[0].spans == [(0, 2), (3, 4), (6, 8)]
    assert decoded[1].spans == [(2, 5)]
    sure = math.exp(8) / (math.exp(8) + 10)
    assert decoded[0].probs == pytest.approx([sure] * 3)
    assert decoded[0].confidence == pytest.approx(sure ** 3)
    assert decoded[2] == Decoded([], [], [], 1.0)
    short = greedy(peaked([[4, _, 2, _]]), torch.tensor([2]))  # only the first 2 steps count
    assert short[0].labels == [4]


def test_beam_agrees_with_greedy_and_beats_it_where_paths_add_up():
    _ = blank_index(10)
    logits = peaked([[3, 3, _, 3, _, 1, 1, _], [_, 9, _, 9, 9, _, 0, _]])
    for width in (1, 4, 8):
        assert [d.labels for d in beam(logits, width)] == [d.labels for d in greedy(logits)]
    assert beam(logits)[0].spans == greedy(logits)[0].spans
    # two steps where the blank is likeliest (0.6): greedy reads nothing (0.36), but the
    # paths "1 1", "1 _" and "_ 1" together read "1" (0.64)
    probs = torch.tensor([[[0.0, 0.4, 0.0, 0.6], [0.0, 0.4, 0.0, 0.6]]]).clamp(min=1e-6)
    assert greedy(probs.log())[0].labels == []
    found = beam(probs.log(), width=4)[0]
    assert found.labels == [1] and found.probs == pytest.approx([0.4], abs=1e-4)


def test_edit_distance_cer_and_exact_match():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 4]) == 2
    assert edit_distance([7, 2, 1], [1, 2, 7]) == 2
    assert cer([[1, 2, 3], [4]], [[1, 2, 4], [4, 5]]) == pytest.approx(2 / 5)
    assert cer([[]], [[]]) == 0.0
    assert exact_match([[1], [2, 2], []], [[1], [2], []]) == pytest.approx(2 / 3)


def test_greedy_exact_matches_greedy_decoding():
    torch.manual_seed(0)
    logits = torch.randn(6, 12, 4) * 3
    steps = torch.tensor([12, 12, 9, 5, 12, 1])
    read = [d.labels for d in greedy(logits, steps)]
    truth = [read[0], read[1] + [0], read[2][:-1] or [1], read[3], [2, 1], read[5]]
    targets = torch.tensor([x for t in truth for x in t])
    lengths = torch.tensor([len(t) for t in truth])
    exact = greedy_exact(logits, steps, targets, lengths, max_length=12)
    assert exact.tolist() == [r == t for r, t in zip(read, truth, strict=True)]


def test_ctc_loss_finite_and_falls_on_a_tiny_set():
    from digitlab.config import Config, apply_overrides
    from digitlab.data import load_dataset
    from digitlab.data.lines import compose
    from digitlab.training.read_loop import standardize

    cfg = apply_overrides(Config(), {"data.name": "synthetic"})
    train = load_dataset(cfg.data).train
    lines = compose(train.images, train.labels, 32, torch.Generator().manual_seed(0), 1, 4)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="crnn", channels=(8, 16), hidden=(32,)), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = steps_for(lines.widths, model.columns_per_step)
    losses = []
    for _ in range(30):
        loss = ctc_loss(model(standardize(lines.images, cfg)), steps, lines.targets,
                        lines.lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("shifts", [0, 1])
def test_onnx_export_of_a_read_model_matches_pytorch(tmp_path, shifts):
    """Any batch and width; with data.test_shifts the three heights are inside the file."""
    pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    ort = pytest.importorskip("onnxruntime", reason="parity needs onnxruntime")
    from digitlab.config import Config, apply_overrides, to_dict
    from digitlab.inference.export import export, exportable
    from digitlab.training.checkpoint import save_checkpoint

    cfg = apply_overrides(Config(), {"model.name": "crnn", "train.task": "read",
                                     "model.channels": [4, 8], "model.hidden": [16],
                                     "data.test_shifts": shifts})
    torch.manual_seed(0)
    model = build_model(cfg.model, 10)
    for module in model.modules():  # batch-norm statistics that matter in eval mode
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    checkpoint = tmp_path / "read.safetensors"
    save_checkpoint(checkpoint, model, None, {"config": to_dict(cfg), "task": "read",
                                              "classes": list("0123456789"),
                                              "mean": 0.1307, "std": 0.3081})
    out = export(checkpoint, "onnx", tmp_path / "read.onnx")
    wrapped, _predictor = exportable(checkpoint)
    from digitlab.models.shifted import LineShiftAveraged

    assert isinstance(wrapped.model, LineShiftAveraged) == bool(shifts)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["digitlab.task"] == "read" and meta["digitlab.columns_per_step"] == "4"
    for batch, width in ((1, 16), (3, 97), (2, 250)):  # any batch, any width
        pixels = torch.rand(batch, 1, 32, width)
        got = torch.from_numpy(session.run(["logits"], {"pixels": pixels.numpy()})[0])
        with torch.no_grad(), warnings.catch_warnings():
            want = wrapped(pixels)
        assert got.shape == (batch, math.ceil(width / 4), 11)
        assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max())
