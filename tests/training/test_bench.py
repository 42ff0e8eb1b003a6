"""`digitlab bench`: the parts run and what they report is plausible; bad parts are refused.

No timed thresholds (speed lives in benchmarks/): the checks are the figures' definitions,
their consistency with one another, and bounds that hold on any machine.
"""

import json
import time

import pytest
import torch

from digitlab.cli import main
from digitlab.config import DataConfig
from digitlab.data import SOURCES
from digitlab.inference.bench import run_bench
from helpers import flat

# Far above anything a CPU or GPU trains or predicts with the seed MLP: a rate above it means
# a broken clock or a wrong count, not a fast machine.
IMPOSSIBLE_RATE = 1e8  # images/s
CPU = torch.device("cpu")


def split_sizes(name: str) -> tuple[int, int]:
    dataset = SOURCES.get(name)(DataConfig(name=name))
    return len(dataset.train), len(dataset.test)


def check_predict(predict: dict, test_size: int, wall: float) -> None:
    batch, single = predict["batch_images_per_second"], predict["single_images_per_second"]
    # batches of 1000 pay the per-call cost once per 1000 images, one at a time per image
    assert IMPOSSIBLE_RATE > batch > single > 0
    assert batch > test_size / wall  # it went through the test split within the command


def test_bench_seed_and_predict_json(capsys):
    started = time.perf_counter()
    code = main(["bench", "--dataset", "synthetic", "--epochs", "1", "--parts", "seed,predict",
                 "--json"])
    wall = time.perf_counter() - started
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["dataset"], result["epochs"], result["seed"]) == ("synthetic", 1, 42)
    assert "cores" in result["machine"] and torch.__version__ in result["machine"]
    train_size, test_size = split_sizes("synthetic")
    tutorial, ours = result["tutorial"], result["digitlab"]
    for side in (tutorial, ours):
        assert 0 < side["train_seconds"] < wall  # the training loop alone, inside the command
        assert train_size / side["train_seconds"] < IMPOSSIBLE_RATE
        # the synthetic digits are easy: one epoch of the seed recipe is far above chance (0.1)
        assert 0.5 < side["test_accuracy"] <= 1
    # the same model, recipe and epochs: the pipelines differ in speed, not in what they learn
    assert abs(tutorial["test_accuracy"] - ours["test_accuracy"]) <= 0.1
    assert result["speedup"] == pytest.approx(tutorial["train_seconds"] / ours["train_seconds"])
    check_predict(result["predict"], test_size, wall)


def test_bench_table_shows_the_figures(capsys):
    started = time.perf_counter()
    result = run_bench(epochs=1, dataset="digits", parts=("seed", "predict"))
    wall = time.perf_counter() - started
    text = flat(capsys.readouterr().out)
    train_size, test_size = split_sizes("digits")
    for name in ("tutorial", "digitlab"):
        seconds, accuracy = result[name]["train_seconds"], result[name]["test_accuracy"]
        samples_per_second = result["epochs"] * train_size / seconds  # the column's definition
        assert train_size / wall < samples_per_second < IMPOSSIBLE_RATE
        assert 0.0 <= accuracy <= 1.0
        row = f"{name} {seconds:.2f} {samples_per_second:,.0f} {100 * accuracy:.2f}%"
        assert row in text, text
    assert f"speedup: {result['speedup']:.1f}x" in text
    assert "goal: 7x" not in text  # the goal is MNIST's; on 1,797 images fixed costs dominate
    predict = result["predict"]
    check_predict(predict, test_size, wall)
    assert (f"predict: {predict['batch_images_per_second']:,.0f} images/s in batches of 1000, "
            f"{predict['single_images_per_second']:,.0f} images/s one at a time") in text


def test_bench_unknown_part(capsys):
    assert main(["bench", "--parts", "seed,speed"]) == 2
    assert "speed" in capsys.readouterr().err


def test_small_cnn_reference_learns_and_repeats():
    """The plain-loop reference fast99 is timed against: the public model, trained on the
    split it is given, the same result for the same seed."""
    from digitlab.training.bench import SMALL_CNN, run_small_cnn, small_cnn_runs, spread

    assert (SMALL_CNN.name, SMALL_CNN.channels, SMALL_CNN.hidden) == ("smallcnn", (24, 32),
                                                                      (256,))
    dataset = SOURCES.get("synthetic")(DataConfig(name="synthetic"))
    started = time.perf_counter()
    first = run_small_cnn(dataset, 0, 0.1307, 0.3081, CPU)
    wall = time.perf_counter() - started
    assert 0 < first["train_seconds"] < wall
    assert first["test_accuracy"] > 0.5  # one epoch of easy synthetic digits: far above chance
    assert run_small_cnn(dataset, 0, 0.1307, 0.3081, CPU)["test_accuracy"] == first["test_accuracy"]
    both = small_cnn_runs(dataset, [0, 1], 0.1307, 0.3081, CPU)
    accuracies = [r["test_accuracy"] for r in both["runs"]]
    assert both["accuracy"] == spread(accuracies)
    assert [r["seed"] for r in both["runs"]] == [0, 1]


def test_fast99_line_is_the_ratio_of_mean_times():
    from digitlab.inference.bench import against_small_cnn

    fast99 = {"train_seconds": {"mean": 2.4}, "accuracy": {"mean": 0.992}}
    small = {"train_seconds": {"mean": 4.8}, "accuracy": {"mean": 0.99, "min": 0.9895,
                                                          "max": 0.9905}}
    line = against_small_cnn(fast99, small)
    assert line == ("fast99 against the public small CNN (plain loop, 1 epoch): 2.40 s vs 4.80 s "
                    "of training, 0.50x (goal: <= 0.85x); test accuracy 99.20% vs 99.00% "
                    "(min 98.95, max 99.05)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_bench_on_a_missing_gpu_is_refused(capsys):
    assert main(["bench", "--device", "cuda", "--dataset", "synthetic", "--parts", "seed"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available here" in err and len(err.strip().splitlines()) == 1


def test_spread_has_the_sample_std():
    from digitlab.training.bench import spread

    assert spread([0.99, 0.991, 0.992]) == pytest.approx(
        {"mean": 0.991, "min": 0.99, "max": 0.992, "std": 0.001})
    assert spread([2.5])["std"] == 0.0
