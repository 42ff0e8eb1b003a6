"""benchmarks/script_pairs.py: the two-class model learns a pair it can tell apart, and the
script runs end to end on the shared data. No accuracy of the real pairs is asserted: that is
the measurement."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import torch

from helpers import REPO

SCRIPT = REPO / "benchmarks" / "script_pairs.py"


def load_script():
    spec = importlib.util.spec_from_file_location("script_pairs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bars(count: int, vertical: bool) -> torch.Tensor:
    """Digit-like images, [count, 1, 28, 28] in [0, 1]: a vertical or a horizontal bar."""
    images = torch.zeros(count, 1, 28, 28)
    offsets = torch.arange(count) % 5 - 2
    for i, offset in enumerate(offsets.tolist()):
        if vertical:
            images[i, 0, 6:22, 13 + offset:16 + offset] = 1
        else:
            images[i, 0, 13 + offset:16 + offset, 6:22] = 1
    return images


def test_a_pair_that_differs_in_shape_is_parted():
    module = load_script()
    cfg, _sources = module.build_config(module.preset_path("bilingual"), [], {"seed": 0})
    latin, bengali = bars(40, vertical=True), bars(40, vertical=False)
    model = module.train_pair(cfg, latin, bengali, steps=60, seed=0)
    assert not model.training
    # the margin is Bengali minus Latin: below zero for every Latin image, above for Bengali
    assert (module.margins(model, cfg, latin) < 0).all()
    assert (module.margins(model, cfg, bengali) > 0).all()


def test_pair_images_takes_one_class_as_floats():
    from digitlab.data.dataset import Split

    module = load_script()
    pixels = torch.zeros(3, 28, 28, dtype=torch.uint8)
    pixels[:, 0, 0] = 255
    split = Split(pixels, torch.tensor([1, 0, 1]))
    images = module.pair_images(split, 1)
    assert images.shape == (2, 1, 28, 28) and images.dtype == torch.float32
    assert images.max() == 1.0 and images.min() == 0.0


def test_the_script_runs_on_the_shared_data(cmater_dir, mnist_dir):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(cmater_dir.parent), "--steps", "3",
         "--pairs", "0:0"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 / ০" in done.stdout
    assert "of 100" in done.stdout and "of 980" in done.stdout  # both test splits' zeros


def test_the_script_refuses_bad_arguments_in_one_line():
    for args in (["--pairs", "0-0"], ["--pairs", "0:10"], ["--pairs", ""], ["--steps", "0"]):
        done = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", "nowhere", *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and args[0] in done.stderr, (args, done.stderr)
