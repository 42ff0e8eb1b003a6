"""`--lang bn` reaches report.html and the figures: Bengali headings, and figure text in a
Bengali font when one is installed, else English with one notice."""

from __future__ import annotations

import re
import shutil
import warnings

import pytest
import torch

from digitlab import i18n
from digitlab.viz import fonts, plots

BENGALI = re.compile("[\u0980-\u09ff]")
HISTORY = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5 + 0.1 * e,
            "val_loss": 1.2 / e, "val_accuracy": 0.45 + 0.1 * e, "lr": 0.01} for e in (1, 2)]


def test_report_html_under_bn(digits_run, tmp_path):
    from digitlab.cli import main

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["--lang", "bn", "plot", "run", str(run)]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<html lang='bn'>" in page
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert len(headings) >= 5  # summary, per class, calibration, figures, metrics, config
    english = [h for h in headings if not BENGALI.search(h)]
    assert not english, f"headings left in English under --lang bn: {english}"


def test_report_html_stays_english_by_default(digits_run, tmp_path):
    from digitlab.viz.report import write_report

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    page = write_report(run).read_text(encoding="utf-8")
    assert "<html lang='en'>" in page and "<h2>Summary</h2>" in page
    assert not BENGALI.search(page)


def test_figures_under_bn_use_a_bengali_font(tmp_path):
    font = fonts.bengali_font()
    if font is None:
        pytest.skip("no Bengali font installed (fonts-noto-core or fonts-lohit-beng-bengali)")
    i18n.set_language("bn")
    with warnings.catch_warnings(record=True) as caught:  # every glyph found, none boxed
        warnings.simplefilter("always")
        fig = plots.curves_figure(HISTORY)
        plots.save_figure(fig, tmp_path / "curves.png")
    assert not [w for w in caught if "missing from font" in str(w.message)]
    title = fig.axes[0].title
    assert title.get_text() == i18n._("loss") and BENGALI.search(title.get_text())
    assert title.get_fontfamily()[0] == font
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_without_a_bengali_font_stay_english(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(fonts, "bengali_font", lambda: None)
    monkeypatch.setattr(fonts, "_noticed", [])
    i18n.set_language("bn")
    for name in ("a", "b"):
        fig = plots.curves_figure(HISTORY)
        assert fig.axes[0].title.get_text() == "loss"
        assert fig.axes[0].get_xlabel() == "epoch"
        plots.save_figure(fig, tmp_path / f"{name}.png")
    assert capsys.readouterr().err.count(i18n._(fonts.NO_FONT)) == 1


def test_figures_under_en_need_no_font(monkeypatch, capsys):
    monkeypatch.setattr(fonts, "_noticed", [])
    fig = plots.confusion_figure(torch.eye(3, dtype=torch.long), ("0", "1", "2"))
    assert fig.axes[0].get_xlabel() == "predicted"
    assert fonts.figure_font() is None and capsys.readouterr().err == ""
