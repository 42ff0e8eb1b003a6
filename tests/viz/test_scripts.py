"""digitlab.scripts on made-up class names and confusion matrices: the script of a class
name, its digit value, and the per-script report (accuracy, right digit in the wrong script,
the confusions between scripts) that evaluation.json and report.html show."""

from __future__ import annotations

import pytest
import torch

from digitlab.scripts import class_script, digit_value, has_bengali, script_report

LATIN = tuple("0123456789")
BENGALI = tuple("০১২৩৪৫৬৭৮৯")
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


@pytest.mark.parametrize(("name", "script"), [
    ("7", "latin"), ("৭", "bengali"), ("১২", "bengali"), ("Sneaker", "latin"),
    ("T-shirt/top", "latin"), ("-", None), ("", None), ("7৭", None), ("٧", None),  # Arabic-Indic
])
def test_class_script(name, script):
    assert class_script(name) == script


@pytest.mark.parametrize(("name", "value"), [
    ("7", 7), ("৭", 7), ("০", 0), ("১২", 12), ("Sneaker", None), ("²", None), ("", None)])
def test_digit_value(name, value):
    assert digit_value(name) == value


def test_has_bengali():
    assert has_bengali("true ৭") and has_bengali("অ্যাকুরেসি")
    assert not has_bengali("true 7") and not has_bengali("")


@pytest.mark.parametrize("classes", [LATIN, BENGALI, FASHION, ("a", "b", "-")],
                         ids=["latin", "bengali", "fashion", "letters"])
def test_single_script_classes_have_no_report(classes):
    assert script_report(torch.eye(len(classes), dtype=torch.long), classes) is None


def test_report_on_a_made_up_bilingual_matrix():
    classes = ("1", "2", "১", "২")
    confusion = torch.tensor([[8, 1, 1, 0],   # "1": one read as "2", one as "১" (value right)
                              [0, 9, 1, 0],   # "2": one as "১" (another script, another value)
                              [2, 0, 6, 2],   # "১": two as "1" (value right), two as "২"
                              [0, 3, 0, 7]])  # "২": three as "2" (value right)
    report = script_report(confusion, classes)
    assert report["per_script"] == {
        "latin": {"classes": 2, "images": 20, "accuracy": 17 / 20,
                  "value_right_script_wrong": 1 / 20},
        "bengali": {"classes": 2, "images": 20, "accuracy": 13 / 20,
                    "value_right_script_wrong": 5 / 20}}
    assert report["confusions"] == [  # most frequent first; ties in class order
        {"true": "২", "predicted": "2", "count": 3},
        {"true": "১", "predicted": "1", "count": 2},
        {"true": "1", "predicted": "১", "count": 1},
        {"true": "2", "predicted": "১", "count": 1}]


def test_report_on_the_twenty_classes_takes_lists_and_empty_scripts():
    classes = LATIN + BENGALI
    confusion = [[0] * 20 for _ in range(20)]
    confusion[7][17] = 4  # every "7" read as "৭"; no Bengali test image at all
    report = script_report(confusion, classes)
    assert report["per_script"]["latin"] == {"classes": 10, "images": 4, "accuracy": 0.0,
                                             "value_right_script_wrong": 1.0}
    assert report["per_script"]["bengali"] == {"classes": 10, "images": 0, "accuracy": None,
                                               "value_right_script_wrong": None}
    assert report["confusions"] == [{"true": "7", "predicted": "৭", "count": 4}]


def test_classes_of_no_script_are_left_out():
    classes = ("7", "৭", "?")
    confusion = torch.tensor([[1, 0, 5], [0, 1, 0], [3, 2, 0]])
    report = script_report(confusion, classes)
    assert report["per_script"]["latin"]["images"] == 6  # its row, whatever it was read as
    assert report["per_script"]["latin"]["value_right_script_wrong"] == 0.0
    assert report["confusions"] == []  # "?" is in no script: nothing crosses
