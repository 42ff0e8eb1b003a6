"""The drawing page in the CLI's language: static/index.html is a template whose `${name}`
fields are filled here, html-escaped, with the page's messages translated through the same
gettext catalog as the CLI (`digitlab --lang bn serve RUN` gives a Bengali page, with
<html lang="bn">). app.js gets its messages, and the run's class names, from a JSON block in
the page (<script id="page-data" type="application/json">): a data block, which the page's
Content-Security-Policy allows, since nothing in it runs.

The page has two drawing areas: the square digit pad (POST /predict) and the wide number pad
(POST /read). A run trained with `--task read` reads whole numbers only: its page shows the
number pad alone, under a title and hint of its own; a run whose classes are not digits
(Fashion-MNIST) shows the digit pad alone.

The page is rendered once, when the app is made: the language and the model do not change
while a server runs.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from digitlab.i18n import N_, _, language, ngettext
from digitlab.inference.predictor import Predictor
from digitlab.inference.reader import is_read_run
from digitlab.io import dumps_json
from digitlab.scripts import digit_value

STATIC = Path(__file__).resolve().parent / "static"
TEMPLATE = STATIC / "index.html"

# index.html's ${name} fields: plain text, escaped when filled in.
HTML_MESSAGES = {
    "title": N_("digitlab: draw a digit"),
    "pad_label": N_("drawing area: draw one digit here"),
    "clear_title": N_("Clear the drawing (Esc)"),
    "clear": N_("Clear"),
    "result_label": N_("prediction"),
    "preview_label": N_("the 28x28 image the model saw"),
    "preview_caption": N_("what the model saw (28×28)"),
    "probabilities": N_("Probabilities"),
    "number_heading": N_("A whole number"),
    "number_hint": N_("Write a number, one digit after another, in the wide black box. It is "
                      "read when you lift the pen, and each digit found is framed."),
    "number_label": N_("writing area: write a number here"),
    "number_clear_title": N_("Clear the number (Esc)"),
    "read": N_("Read"),
    "read_title": N_("Read the number now"),
    "number_result_label": N_("the number read"),
}
# A run trained with --task read has no digit pad: its page is titled and introduced so.
READ_RUN_TITLE = N_("digitlab: write a number")
READ_RUN_HINT = N_("This model reads whole numbers: write one in the wide black box with a "
                   "mouse, a pen or a finger.")
# The hint names the digits the model reads ("0 to 9", "0 to 9 or ০ to ৯"); a model whose
# classes are not digits (Fashion-MNIST) gets the second one.
HINT_DIGITS = N_("Draw one digit, {digits}, in the black square with a mouse, a pen or a "
                 "finger. The model guesses while you draw.")
HINT_OTHER = N_("Draw one of the model's classes in the black square with a mouse, a pen or "
                "a finger. The model guesses while you draw.")
DIGIT_RANGE = N_("{first} to {last}")
EITHER_RANGE = N_("{digits} or {more}")
# Its fields are filled with markup after the message is escaped.
API_LINE = N_("API: {endpoint}; its schema is {schema}.")

# What app.js shows: str.format-style templates it fills itself ({percent}, {status}).
JS_MESSAGES = {
    "draw": N_("Draw a digit in the black square."),
    "no_digit": N_("No digit yet: draw a bigger stroke."),
    "keep_drawing": N_("Keep drawing, or Clear to start again."),
    "server_answered": N_("The server answered {status}."),
    "unreachable": N_("Cannot reach the digitlab server."),
    "sure": N_("{percent} sure"),
    "not_sure": N_("not sure: best guess at {percent}"),
    "threshold": N_("answers below {percent} are marked not sure"),
    "write": N_("Write a number in the wide black box."),
    "no_digits": N_("No digits yet: write them bigger."),
    "keep_writing": N_("Keep writing, or Clear to start again."),
    "method": N_("read by {method}"),
}
# The error /predict gives a blank drawing (inference.preprocess, where the message lives):
# app.js compares the answer's detail with it, in whatever language the server speaks.
NO_DIGIT_DETAIL = N_("{name}: no digit found (the image looks blank)")
NO_DIGITS_DETAIL = N_("{name}: no digits found (the image looks blank)")  # /read's, from segment
UPLOAD_NAME = "<upload>"  # what preprocess calls an image given as bytes


def digit_ranges(classes: tuple[str, ...]) -> list[tuple[str, str]] | None:
    """The runs of consecutive digits among the class names, as (first, last): [("0", "9")]
    for MNIST, [("0", "9"), ("০", "৯")] for the bilingual classes; None when a class is not
    one decimal digit (of any script)."""
    if not classes or not all(len(name) == 1 and digit_value(name) is not None
                              for name in classes):
        return None
    ranges = [[classes[0], classes[0]]]
    for name in classes[1:]:
        last = ranges[-1][1]
        if digit_value(name) == digit_value(last) + 1 and ord(name) == ord(last) + 1:
            ranges[-1][1] = name
        else:
            ranges.append([name, name])
    return [(first, last) for first, last in ranges]


def hint(classes: tuple[str, ...]) -> str:
    ranges = digit_ranges(classes)
    if ranges is None:
        return _(HINT_OTHER)
    digits = _(DIGIT_RANGE).format(first=ranges[0][0], last=ranges[0][1])
    for first, last in ranges[1:]:
        more = _(DIGIT_RANGE).format(first=first, last=last)
        digits = _(EITHER_RANGE).format(digits=digits, more=more)
    return _(HINT_DIGITS).format(digits=digits)


def model_line(info: dict) -> str:
    """The footer's one line about the model, from Predictor.describe()."""
    if info.get("preset"):
        parts = [_("{preset} preset").format(preset=info["preset"])]
    else:
        parts = [_("own config (no preset)")]
    parts.append(_("model {model}").format(model=info["model"]))
    if info.get("dataset"):
        parts.append(_("trained on {dataset}").format(dataset=info["dataset"]))
    if info.get("test_accuracy") is not None:
        parts.append(_("test accuracy {accuracy:.2f}%").format(
            accuracy=100 * info["test_accuracy"]))
    if info.get("epoch"):
        parts.append(ngettext("{epochs} epoch", "{epochs} epochs", info["epoch"]).format(
            epochs=info["epoch"]))
    return " \u00b7 ".join(parts)


def page_data(predictor: Predictor, method: str) -> dict:
    """What app.js reads from the page: its messages, the run's class names, its task
    ("classify", or "read": no digit pad) and the method /read reads with."""
    messages = {key: _(message) for key, message in JS_MESSAGES.items()}
    messages["no_digit_detail"] = _(NO_DIGIT_DETAIL).format(name=UPLOAD_NAME)
    messages["no_digits_detail"] = _(NO_DIGITS_DETAIL).format(name=UPLOAD_NAME)
    return {"lang": language(), "classes": list(predictor.classes), "messages": messages,
            "task": "read" if is_read_run(predictor) else "classify",
            "method": method}


def script_json(value: object) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' that could end the element."""
    text = dumps_json(value)  # ASCII: every other character is a \\u escape already
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(predictor: Predictor, method: str) -> str:
    """index.html for `predictor`, in the current language; method: the one /read reads with."""
    read_run = is_read_run(predictor)
    fields = {key: html.escape(_(message)) for key, message in HTML_MESSAGES.items()}
    fields["status"] = html.escape(_(JS_MESSAGES["draw"]))
    fields["number_status"] = html.escape(_(JS_MESSAGES["write"]))
    fields["hint"] = html.escape(_(READ_RUN_HINT) if read_run else hint(predictor.classes))
    fields["digit_hidden"] = " hidden" if read_run else ""  # the digit pad's section
    # ... and the number pad's, for a run whose classes are not digits (Fashion-MNIST)
    numbers = read_run or digit_ranges(predictor.classes) is not None
    fields["number_hidden"] = "" if numbers else " hidden"
    if read_run:
        fields["title"] = html.escape(_(READ_RUN_TITLE))
    fields["model"] = html.escape(model_line(predictor.describe()))
    endpoints = ["POST /read"] if read_run else ["POST /predict", "POST /read"]
    fields["api"] = html.escape(_(API_LINE)).format(
        endpoint=", ".join(f"<code>{endpoint}</code>" for endpoint in endpoints),
        schema='<a href="/openapi.json">/openapi.json</a>')
    fields["lang"] = html.escape(language())
    fields["data"] = script_json(page_data(predictor, method))
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(fields)
