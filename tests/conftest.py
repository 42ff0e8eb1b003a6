"""Shared fixtures: an isolated cache, no inherited data folder, the shared MNIST files,
a switch that makes the network unreachable, a tiny fake IDX folder, and `no_analysis`.

Every test gets DIGITLAB_CACHE pointed at one session-scoped temporary folder (so nothing is
ever written to ~/.cache/digitlab) and DIGITLAB_DATA removed (so a test sees only the data
it asks for). Tests that need an empty cache of their own use `fresh_cache`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import (
    block_network,
    cmaterdb_dir_or_skip,
    holds_idx_gz,
    mnist_dir_or_skip,
    tiny_arrays,
    write_idx_folder,
)

# One CPU thread per process (unless the caller chose): the models here are tiny, and on a
# busy 2-core machine two spinning OpenMP threads made a one-second run take half a minute.
# Set before torch is imported, so that subprocesses (DDP ranks, the CLI) inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digitlab-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, session_cache):
    from digitlab.i18n import set_language

    monkeypatch.setenv("DIGITLAB_CACHE", str(session_cache))
    monkeypatch.delenv("DIGITLAB_DATA", raising=False)
    monkeypatch.delenv("DIGITLAB_LANG", raising=False)
    # Plain, deterministic console output: no forced colours, a fixed width for rich.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    yield
    set_language("en")  # a test that ran `--lang bn` must not leave Bengali behind


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path) -> Path:
    """An empty DIGITLAB_CACHE for this test only."""
    cache = tmp_path / "fresh-cache"
    cache.mkdir()
    monkeypatch.setenv("DIGITLAB_CACHE", str(cache))
    return cache


@pytest.fixture
def mnist_dir() -> Path:
    """The shared MNIST folder ($DIGITLAB_DATA if set, else ../shared/data/mnist), or skip."""
    return mnist_dir_or_skip()


@pytest.fixture
def cmater_dir() -> Path:
    """The shared CMATERdb folder (cmaterdb-bangla/ beside the MNIST one), or skip."""
    return cmaterdb_dir_or_skip()


@pytest.fixture
def fashion_dir(mnist_dir) -> Path:
    folder = mnist_dir.parent / "fashion-mnist"
    if not holds_idx_gz(folder):
        pytest.skip(f"shared Fashion-MNIST folder {folder} not found")
    return folder


@pytest.fixture
def offline(monkeypatch):
    """Every outgoing connection and DNS lookup in this process fails at once."""
    block_network(monkeypatch)


@pytest.fixture
def tiny_idx_dir(tmp_path) -> Path:
    """A folder with four tiny gzipped IDX files under MNIST's names (not the official ones:
    12 train and 5 test images of 28x28, see helpers.tiny_arrays)."""
    return write_idx_folder(tmp_path / "tiny-idx", tiny_arrays())


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, session_cache) -> Path:
    """A seed-mlp trained 3 epochs on the bundled digits (~94% test accuracy, seconds on a
    CPU); trained once per session and shared by the predict, serve, export and browser tests."""
    from digitlab.cli import main

    run = tmp_path_factory.getbasetemp() / "shared-run-digits-mlp"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        code = main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(run)])
    assert code == 0, "training the shared test model failed"
    return run


@pytest.fixture(scope="session")
def ctc_run(tmp_path_factory, session_cache) -> str:
    """A CTC number reader trained for 2 epochs on lines of the bundled digits (seconds);
    shared by the read tests."""
    from digitlab.cli import main

    run = tmp_path_factory.getbasetemp() / "shared-run-ctc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        code = main(["train", "--task", "read", "--dataset", "digits", "--epochs", "2",
                     "--out", str(run)])
    assert code == 0, "training the shared CTC test model failed"
    return str(run)


@pytest.fixture(scope="session")
def bangla_run(tmp_path_factory, session_cache) -> Path:
    """configs/bangla.toml trained on the shared CMATERdb files (about half a minute on two
    cores); shared by the accuracy gate, the Bengali predict tests and the browser test.
    Skipped when the shared folder is absent."""
    from digitlab.cli import main

    folder = cmaterdb_dir_or_skip()
    run = tmp_path_factory.getbasetemp() / "shared-run-bangla"
    config = Path(__file__).resolve().parents[1] / "configs" / "bangla.toml"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        block_network(mp)  # the files are local: nothing may be downloaded
        code = main(["train", "--config", str(config), "--data-dir", str(folder),
                     "--out", str(run)])
    assert code == 0, "training the bangla preset failed"
    return run


@pytest.fixture
def no_analysis(monkeypatch):
    """Skip the end-of-run analysis (evaluation.json, plots/, report.html) in runs that only
    compare numbers: it costs seconds per run.

    analyze() is defined in digitlab.viz.analysis; a module that did `from ... import analyze`
    holds its own reference, so every digitlab module holding the real function gets the stub
    too, wherever the call lives (the training loop, or the train command)."""
    # Loaded before patching: a module first imported under the patch would keep the stub.
    import digitlab.cli  # noqa: F401
    import digitlab.training.loop  # noqa: F401
    from digitlab.viz import analysis

    real = analysis.analyze

    def skipped(*args, **kwargs) -> dict:
        return {}

    for name, module in list(sys.modules.items()):
        if name.startswith("digitlab") and getattr(module, "analyze", None) is real:
            monkeypatch.setattr(module, "analyze", skipped)
