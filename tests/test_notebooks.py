"""The notebooks in notebooks/{en,bn}: committed without outputs, mirrored across the two
languages, and executed end to end (on the bundled digits set, in a temporary folder)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers import REPO

NOTEBOOKS = REPO / "notebooks"
NAMES = ["01-quickstart.ipynb", "02-activations-and-losses.ipynb"]
PATHS = [NOTEBOOKS / lang / name for lang in ("en", "bn") for name in NAMES]
CELL_TIMEOUT = 120  # seconds; each notebook takes a few seconds on the digits set


def read(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


def markdown(notebook: dict) -> str:
    return "\n".join("".join(c["source"]) for c in notebook["cells"]
                     if c["cell_type"] == "markdown")


def test_every_notebook_is_listed():
    found = sorted(p.relative_to(NOTEBOOKS).as_posix() for p in NOTEBOOKS.rglob("*.ipynb"))
    assert found == sorted(p.relative_to(NOTEBOOKS).as_posix() for p in PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    notebook = read(path)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: strip the outputs before committing"
            assert cell["execution_count"] is None, f"{path.name}: an execution count is left"


@pytest.mark.parametrize("name", NAMES)
def test_the_languages_mirror_each_other(name):
    from helpers import bengali_share

    english, bengali = read(NOTEBOOKS / "en" / name), read(NOTEBOOKS / "bn" / name)
    assert code_cells(bengali) == code_cells(english), "the code cells must be the same"
    assert f"../bn/{name}" in markdown(english) and f"../en/{name}" in markdown(bengali)
    assert bengali_share(markdown(bengali)) > 0.5, f"bn/{name} reads mostly as English"


@pytest.mark.parametrize("name", NAMES)
def test_the_notebooks_read_the_ci_switch(name):
    setup = code_cells(read(NOTEBOOKS / "en" / name))[0]
    assert 'os.environ.get("DIGITLAB_NOTEBOOK_DATASET", "mnist")' in setup


def test_the_notebooks_come_from_the_generator():
    pytest.importorskip("nbformat", reason="pip install -e '.[dev]' for nbformat")
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_notebooks.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # edit tools/make_notebooks.py, then run it


# Every line of the Python API snippet (README, docs/*/python-api.md) as working code.
API_NAMES = ["dl.Config()", "set=", "dl.Config.from_toml(", '.summary["test_accuracy"]',
             ".metrics", ".model", ".predict(", '.plot("curves")', "dl.load_run(",
             "@MODELS.register(", "model=MyNet()", "data=(train_x, train_y, test_x, test_y)"]


@pytest.mark.parametrize("lang", ["en", "bn"])
@pytest.mark.parametrize("name", API_NAMES)
def test_the_quickstart_covers_the_python_api(lang, name):
    code = "\n".join(code_cells(read(NOTEBOOKS / lang / NAMES[0]))).replace("'", '"')
    assert name in code, f"{lang}/{NAMES[0]} never uses {name}"


def execute(path, tmp_path, monkeypatch):
    """The notebook run with nbclient in tmp_path (runs are written there), on digits."""
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' for nbclient")
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' for nbformat")
    pytest.importorskip("ipykernel", reason="pip install -e '.[dev]' for ipykernel")
    monkeypatch.setenv("DIGITLAB_NOTEBOOK_DATASET", "digits")
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    return notebook


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def images_in(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code"
               for o in c.outputs)


def all_text(notebook) -> str:
    return "\n".join(text_of(c) for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_quickstart_runs(lang, tmp_path, monkeypatch):
    notebook = execute(NOTEBOOKS / lang / NAMES[0], tmp_path, monkeypatch)
    text = all_text(notebook)
    assert float(re.search(r"test accuracy: ([\d.]+)", text)[1]) > 0.7, text
    assert "scikit-learn digits: 1,437 training and 360 test images" in text
    assert "Linear(in_features=784" in text and "parameters" in text
    right = re.search(r"right: (\d+) of 24", text)
    assert right and int(right[1]) >= 12, text
    assert re.search(r"my_seven\.png reads as: \d", text), text
    assert "same run: True" in text
    assert (tmp_path / "my_seven.png").is_file()
    assert "eval mode: True" in text  # run.model
    assert "the TOML file and set= give the same config: True" in text
    assert float(re.search(r"cnn test accuracy: ([\d.]+)", text)[1]) > 0.7, text
    assert float(re.search(r"my-net test accuracy: ([\d.]+)", text)[1]) > 0.7, text
    assert "recorded as: my-net on user" in text  # the registered class, the user's tensors
    predicted = re.search(r"^predicted: \[(.*)\]$", text, re.M)
    truth = re.search(r"^truth: +\[(.*)\]$", text, re.M)
    pairs = list(zip(predicted[1].split(", "), truth[1].split(", "), strict=True))
    assert len(pairs) == 12 and sum(p == t for p, t in pairs) >= 6, text
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/summary.json")]
    assert sorted(s["dataset"] for s in summaries) == ["digits", "digits", "user"]
    assert images_in(notebook) >= 6  # samples, 2 x curves, confusion, predictions, the drawing
    # kept small by what it trains, not by a clock (timings belong in benchmarks): 299 batches
    batches = sum(s["batches"] for s in summaries)
    assert batches <= 400, f"the quickstart trains {batches} batches on digits; keep it small"


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_activations_and_losses_runs(lang, tmp_path, monkeypatch):
    notebook = execute(NOTEBOOKS / lang / NAMES[1], tmp_path, monkeypatch)
    text = all_text(notebook)
    relu = re.search(r"^relu\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", text, re.M)
    assert relu and [float(g) for g in relu.groups()] == [0.0, 0.0, 1.0, 1.0], text
    cross_entropy = re.search(r"^cross-entropy\s+(\S+)\s+(\S+)\s+(\S+)$", text, re.M)
    assert cross_entropy, text
    losses = [float(v) for v in cross_entropy.groups()]
    assert losses[0] > losses[1] > losses[2] > 0  # a higher true logit, a lower loss
    rows = re.findall(r"^\s*(\S+)\s+([\d.]+)\s+([\d.]+)%$", text, re.M)
    assert [float(lr) for lr, _, _ in rows] == [1e-4, 1e-3, 1e-2], text
    assert all(0 <= float(acc) <= 100 for _, _, acc in rows)
    assert max(float(acc) for _, _, acc in rows) > 50, text
    assert re.search(r"best learning rate: \S+", text)
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 3
    assert images_in(notebook) >= 2  # the activations and the losses
    batches = sum(json.loads(p.read_text())["batches"]
                  for p in (tmp_path / "runs").glob("*/summary.json"))
    assert batches <= 100, f"the notebook trains {batches} batches on digits; keep it small"  # 69
