"""The run's own class names in the figures and report.html: Bengali digits ("০".."৯") drawn in
a Bengali font whatever the language (never a box), and for a bilingual run (Latin and
Bengali digits) the confusions between the scripts in evaluation.json and the report."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab import i18n
from digitlab.inference.labelled import LabelledFile, Readings
from digitlab.viz import fonts, images, plots
from digitlab.viz.images import mistakes_gallery
from digitlab.viz.report import write_report

LATIN = tuple("0123456789")
BENGALI = tuple("০১২৩৪৫৬৭৮৯")
BILINGUAL = LATIN + BENGALI


@pytest.fixture
def font() -> str:
    found = fonts.bengali_font()
    if found is None:
        pytest.skip("no Bengali font installed (`fc-list :lang=bn` lists none; install "
                    "fonts-noto-core or fonts-lohit-beng-bengali)")
    return found


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every figure save_figure saves (plots', and the one images imported), kept after
    saving to look at its fonts."""
    figures, real = [], plots.save_figure

    def keep(fig, path):
        figures.append(fig)
        real(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(images, "save_figure", keep)
    return figures


def missing_glyphs(caught) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def families(texts) -> set[str]:
    return {text.get_fontfamily()[0] for text in texts if text.get_text()}


@pytest.mark.parametrize("classes", [BENGALI, BILINGUAL], ids=["bengali", "bilingual"])
def test_confusion_matrix_ticks_use_the_bengali_font_in_english(classes, font, tmp_path):
    assert i18n.language() == "en"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plots.confusion_figure(torch.eye(len(classes), dtype=torch.long), classes)
        plots.save_figure(fig, tmp_path / "confusion.png")
    assert not missing_glyphs(caught)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == list(classes)
        assert [t.get_text() for t in ax.get_yticklabels()] == list(classes)
        assert families([*ax.get_xticklabels(), *ax.get_yticklabels()]) == {font}
    assert fig.axes[0].get_xlabel() == "predicted"  # the words stay English


def test_galleries_title_bengali_names_in_the_bengali_font(font, drawn, tmp_path):
    digits = torch.zeros(3, 28, 28, dtype=torch.uint8)
    labels, preds = torch.tensor([7, 17, 3]), torch.tensor([17, 7, 13])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.gallery(digits, labels, preds, torch.full((3,), 0.9), BILINGUAL,
                      tmp_path / "misclassified.png")
        plots.predictions_grid(digits, labels, preds, BILINGUAL, tmp_path / "predictions.png")
    assert not missing_glyphs(caught)
    gallery, grid = drawn
    titles = [ax.title for ax in gallery.axes if ax.title.get_text()]
    assert titles[0].get_text() == "true 7\npred ৭ (90%)"
    assert titles[1].get_text() == "true ৭\npred 7 (90%)"
    assert families(titles) == {font}
    assert grid.axes[1].title.get_text() == "True: ৭\nPred: 7"


def test_mistakes_gallery_of_evaluate_images_uses_the_bengali_font(font, drawn, tmp_path):
    from PIL import Image

    path = tmp_path / "seven.png"
    Image.new("L", (40, 40), 200).save(path)
    readings = Readings([LabelledFile(path, "৭/seven.png", "৭")], np.zeros((1, 28, 28), np.uint8),
                        torch.tensor([[0.1, 0.9]]), [])
    mistakes = [{"file": "৭/seven.png", "true": "৭", "predicted": "7", "confidence": 0.9,
                 "index": 0}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mistakes_gallery(readings, mistakes, tmp_path / "mistakes.png", "mistakes on images")
    assert not missing_glyphs(caught)
    (fig,) = drawn
    assert "true ৭" in fig.axes[0].title.get_text()
    assert families([fig.axes[0].title, fig.axes[1].title]) == {font}


def test_latin_classes_keep_matplotlibs_font():
    fig = plots.confusion_figure(torch.eye(10, dtype=torch.long), LATIN)
    assert fonts.bengali_font() not in families(fig.axes[0].get_xticklabels())


def test_without_a_bengali_font_one_line_says_the_names_are_boxes(monkeypatch, capsys):
    monkeypatch.setattr(fonts, "bengali_font", lambda: None)
    monkeypatch.setattr(fonts, "_noticed_names", [])
    for _draw in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the missing glyphs this test is about
            plots.confusion_figure(torch.eye(10, dtype=torch.long), BENGALI)
    assert capsys.readouterr().err.count(i18n._(fonts.NO_FONT_FOR_NAMES)) == 1


def test_a_font_installed_after_matplotlib_cached_its_fonts_is_found(monkeypatch):
    # apt-get install fonts-lohit-beng-bengali after matplotlib had run: its cached font list
    # lacks the font, and figures fell back to English with boxes for Bengali digits
    from matplotlib import font_manager

    files = [f for f in font_manager.findSystemFonts()
             if any(word in Path(f).name.lower() for word in fonts.BENGALI_FILES)]
    if not files:
        pytest.skip("no Bengali font file on this machine (install fonts-lohit-beng-bengali)")
    stale = [entry for entry in font_manager.fontManager.ttflist
             if entry.name not in fonts.BENGALI_FAMILIES]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    fonts.bengali_font.cache_clear()
    try:
        assert fonts.bengali_font() in fonts.BENGALI_FAMILIES
    finally:
        fonts.bengali_font.cache_clear()


def test_without_a_bengali_font_a_saved_figure_warns_once_not_per_glyph(monkeypatch, capsys,
                                                                         tmp_path):
    # a bangla run's log on a machine without the font filled with one matplotlib warning per
    # Bengali digit per figure, after the one line that already says so
    monkeypatch.setattr(fonts, "bengali_font", lambda: None)
    monkeypatch.setattr(fonts, "_noticed_names", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(2):
            fig = plots.confusion_figure(torch.eye(10, dtype=torch.long), BENGALI)
            plots.save_figure(fig, tmp_path / f"confusion-{k}.png")
    assert not missing_glyphs(caught)
    assert capsys.readouterr().err.count(i18n._(fonts.NO_FONT_FOR_NAMES)) == 1
    assert (tmp_path / "confusion-1.png").stat().st_size > 0


# ---------------------------------------------------------------- report.html


def bilingual_evaluation() -> dict:
    confusion = torch.eye(20, dtype=torch.long) * 5
    confusion[17, 17], confusion[17, 7] = 2, 3  # three Bengali sevens read as "7"
    from digitlab.viz.analysis import with_scripts

    return {"test_accuracy": 0.97, "num_samples": 100, "dataset": "mnist+cmaterdb",
            "model": "mlp", "classes": list(BILINGUAL), "confusion": confusion.tolist(),
            **with_scripts(confusion, BILINGUAL)}


def test_report_shows_the_confusions_between_the_scripts(tmp_path):
    (tmp_path / "evaluation.json").write_text(json.dumps(bilingual_evaluation()),
                                              encoding="utf-8")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "<h2>Confusions between the scripts</h2>" in page
    assert "<td>Bengali</td><td>50</td><td>94.00%</td><td>6.00%</td>" in page
    assert "<td>Latin</td><td>50</td><td>100.00%</td><td>0.00%</td>" in page
    assert "<td>৭</td><td>7</td><td>3</td>" in page


def test_report_under_bn_names_the_scripts_in_bengali(tmp_path):
    (tmp_path / "evaluation.json").write_text(json.dumps(bilingual_evaluation()),
                                              encoding="utf-8")
    i18n.set_language("bn")
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert f"<h2>{i18n._('Confusions between the scripts')}</h2>" in page


def test_single_script_report_has_no_scripts_section(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    evaluation = json.loads((run / "evaluation.json").read_text(encoding="utf-8"))
    assert "scripts" not in evaluation and evaluation["classes"] == list(LATIN)
    assert "Confusions between the scripts" not in write_report(run).read_text(encoding="utf-8")


# ---------------------------------------------------------------- a trained bilingual run


@pytest.fixture(scope="module")
def bilingual_run(tmp_path_factory):
    """One epoch of a small mlp on 20 classes: the bundled digits as "0".."9" and the same
    digits transposed as "০".."৯" (not Bengali digits, but two scripts to tell apart)."""
    import digitlab as dl
    from digitlab.config import DataConfig
    from digitlab.data import load_dataset

    digits = load_dataset(DataConfig(name="digits"))
    splits = []
    for split in (digits.train, digits.test):
        splits += [torch.cat([split.images, split.images.transpose(1, 2)]),
                   torch.cat([split.labels, split.labels + 10])]
    out = tmp_path_factory.mktemp("bilingual") / "run"
    return dl.train(set={"model.name": "mlp", "model.hidden": [64], "train.epochs": 1,
                         "train.device": "cpu", "train.out": str(out)},
                    data=tuple(splits), classes=BILINGUAL)


def test_bilingual_run_writes_scripts_into_evaluation_and_report(bilingual_run):
    evaluation = json.loads((bilingual_run.run_dir / "evaluation.json").read_text(
        encoding="utf-8"))
    assert evaluation["classes"] == list(BILINGUAL)
    assert list(evaluation["per_class"]) == list(BILINGUAL)
    scripts = evaluation["scripts"]
    assert set(scripts["per_script"]) == {"latin", "bengali"}
    confusion = torch.tensor(evaluation["confusion"])
    latin = scripts["per_script"]["latin"]
    assert latin["images"] == int(confusion[:10].sum())
    assert latin["accuracy"] == pytest.approx(float(confusion[:10].diag().sum()) / latin["images"])
    counts = [pair["count"] for pair in scripts["confusions"]]
    assert counts == sorted(counts, reverse=True)
    assert sum(counts) == int(confusion[:10, 10:].sum() + confusion[10:, :10].sum())
    page = (bilingual_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "৭" in page and "<h2>Confusions between the scripts</h2>" in page


def test_bilingual_run_api_results_carry_the_class_name(bilingual_run):
    assert bilingual_run.classes == BILINGUAL  # the names given to train(classes=...)
    sevens = torch.zeros(2, 28, 28, dtype=torch.uint8)
    results = bilingual_run.predictions(sevens, top_k=3)
    labels, _probabilities = bilingual_run.predict(sevens)
    for result, label in zip(results, labels, strict=True):
        assert result["text"] == BILINGUAL[result["index"]] and result["label"] == label
        assert label == result["index"] % 10  # the digit value, whichever the script


def test_bilingual_run_confusion_plot_uses_the_bengali_font(bilingual_run, font):
    fig = bilingual_run.plot("confusion")  # unsaved: the font is set when it is laid out
    ticks = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == list(BILINGUAL)
    assert families(ticks) == {font}
    assert (bilingual_run.run_dir / "plots" / "confusion.png").is_file()


def test_classes_needs_data_and_one_name_per_class(tmp_path):
    import digitlab as dl
    from digitlab.errors import UsageError

    images = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([0, 1, 2, 1])
    data = (images, labels, images, labels)
    with pytest.raises(UsageError, match="give data= too"):
        dl.train(set={"train.out": str(tmp_path / "a")}, classes=BENGALI)
    with pytest.raises(UsageError, match="each of the 3 classes"):
        dl.train(set={"train.out": str(tmp_path / "b")}, data=data, classes=("০", "১"))
    with pytest.raises(UsageError, match="each of the 3 classes"):
        dl.train(set={"train.out": str(tmp_path / "c")}, data=data, classes=("০", "১", "০"))
    with pytest.raises(UsageError, match="non-empty class names"):
        dl.train(set={"train.out": str(tmp_path / "d")}, data=data, classes="০১২")
    assert not any(Path(tmp_path).iterdir())  # refused before anything was written
