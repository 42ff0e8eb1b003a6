"""The drawing page in the CLI's language (--lang, $DIGITLAB_LANG): every string of the page
and of app.js goes through the gettext catalog, the page says which language it is in, and
the run's own class names (7, ৭, Sneaker) reach the answer, the bars and the hint.

The Bengali catalog may not hold the page's messages yet, so most checks translate with a
stand-in catalog that changes every message visibly, and one compares the page with what
digitlab.i18n gives for each message, whatever the real catalog holds."""

from __future__ import annotations

import gettext
import html
import io
import json
import re
import socket
import warnings
from html.parser import HTMLParser

import pytest
from PIL import Image, ImageDraw

from digitlab import i18n
from digitlab.inference.predictor import Predictor
from digitlab.serve import page as page_module
from digitlab.serve.app import STATIC, create_app
from digitlab.serve.schema import class_value
from helpers import with_classes

with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

BENGALI = tuple("০১২৩৪৫৬৭৮৯")
ENGLISH = tuple("0123456789")
FIELD = re.compile(r"(\{[^{}]*\})")


@pytest.fixture(scope="module")
def predictor(digits_run) -> Predictor:
    return Predictor.load(digits_run, device="cpu")


def client_for(predictor: Predictor) -> TestClient:
    return TestClient(create_app(predictor), base_url="http://127.0.0.1:8000",
                      raise_server_exceptions=False)


def get_page(predictor: Predictor) -> str:
    with client_for(predictor) as c:
        response = c.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    return response.text


def page_data(text: str) -> dict:
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', text,
                      re.S)
    assert found, "the page carries no #page-data block"
    return json.loads(found[1])


def drawn_one() -> bytes:
    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).line([(150, 50), (140, 230)], fill="white", width=20)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def blank() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (280, 280), "black").save(buffer, "PNG")
    return buffer.getvalue()


def predict(predictor: Predictor, data: bytes):
    with client_for(predictor) as c:
        return c.post("/predict", files={"file": ("drawing.png", data, "image/png")})


# ---------------------------------------------------------------- a stand-in catalog


def marked(message: str) -> str:
    """A "translation" that differs from the English everywhere but in its {fields}, with an
    '&' that must arrive escaped."""
    parts = FIELD.split(message)
    return "«&" + "".join(p if FIELD.fullmatch(p) else p.upper() for p in parts) + "»"


class Marked(gettext.NullTranslations):
    def gettext(self, message):
        return marked(message)

    def ngettext(self, singular, plural, n):
        return marked(singular if n == 1 else plural)


@pytest.fixture
def stand_in(monkeypatch):
    """Bengali selected, with the stand-in catalog."""
    monkeypatch.setattr(i18n, "_translation", Marked())
    monkeypatch.setattr(i18n, "_language", "bn")


class VisibleText(HTMLParser):
    """Text nodes and the attributes a person meets (title, aria-label), outside <script>."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        self.in_script = tag == "script"
        self.texts += [v for k, v in attrs if k in ("title", "aria-label", "alt") and v]

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if not self.in_script and data.strip():
            self.texts.append(data.strip())


# ---------------------------------------------------------------- English, as it was


def test_english_page_keeps_its_strings(predictor):
    text = get_page(predictor)
    assert '<html lang="en">' in text
    for expected in ("<title>digitlab: draw a digit</title>", "<h1>digitlab: draw a digit</h1>",
                     "Draw one digit, 0 to 9, in the black square with a mouse, a pen or a "
                     "finger. The model guesses while you draw.",
                     'aria-label="drawing area: draw one digit here"',
                     'title="Clear the drawing (Esc)">Clear</button>',
                     "Draw a digit in the black square.", 'aria-label="prediction"',
                     'aria-label="the 28x28 image the model saw"',
                     "what the model saw (28×28)", "<h2>Probabilities</h2>",
                     'API: <code>POST /predict</code>, <code>POST /read</code>; its schema is '
                     '<a href="/openapi.json">/openapi.json</a>.',
                     '<h2 id="number-heading">A whole number</h2>',
                     'aria-label="writing area: write a number here"',
                     'title="Clear the number (Esc)">Clear</button>',
                     'title="Read the number now">Read</button>',
                     "Write a number in the wide black box.",
                     '<div class="layout">',
                     "own config (no preset) · model seed-mlp · trained on digits · test "
                     "accuracy "):
        assert expected in text, expected
    assert re.search(r"test accuracy \d+\.\d\d% · 3 epochs</div>", text)
    data = page_data(text)
    assert data["lang"] == "en" and data["classes"] == list(ENGLISH)
    assert data["messages"]["not_sure"] == "not sure: best guess at {percent}"
    assert data["messages"]["sure"] == "{percent} sure"
    assert data["task"] == "classify" and data["method"] == "segment"
    assert "${" not in text  # every template field was filled


def test_the_template_itself_is_not_served(predictor):
    with client_for(predictor) as c:
        assert c.get("/static/index.html").status_code == 404
        assert c.get("/static/app.js").status_code == 200


# ---------------------------------------------------------------- Bengali


def test_every_page_message_goes_through_the_catalog(predictor, stand_in):
    text = get_page(predictor)
    assert '<html lang="bn">' in text
    for message in page_module.HTML_MESSAGES.values():
        assert html.escape(marked(message)) in text, message
    assert html.escape(marked(page_module.JS_MESSAGES["draw"])) in text  # the first status
    digits = marked(page_module.DIGIT_RANGE).format(first="0", last="9")
    assert html.escape(marked(page_module.HINT_DIGITS).format(digits=digits)) in text
    assert html.escape(marked(page_module.API_LINE)).format(
        endpoint="<code>POST /predict</code>, <code>POST /read</code>",
        schema='<a href="/openapi.json">/openapi.json</a>') in text
    assert html.escape(marked("{epochs} epochs").format(epochs=3)) in text
    assert not re.search("«&(?!amp;)", text)  # escaped in the HTML, \u0026 in the JSON


def test_no_english_is_left_on_the_page(predictor, stand_in):
    """Every word a person reads is the catalog's, but the run's own names (model, data set)
    and the API's paths."""
    parser = VisibleText()
    parser.feed(get_page(predictor))
    own = ("seed-mlp", "digits", "POST /predict", "POST /read", "/openapi.json")
    left = []
    for seen in parser.texts:
        for name in own:
            seen = seen.replace(name, "")
        if re.search(r"[a-z]{2,}", seen):
            left.append(seen)
    assert parser.texts and not left


def test_app_js_gets_its_messages_through_the_catalog(predictor, stand_in):
    data = page_data(get_page(predictor))
    messages = data["messages"]
    assert data["lang"] == "bn"
    for key, message in page_module.JS_MESSAGES.items():
        assert messages[key] == marked(message), key
    assert messages["no_digit_detail"] == marked(page_module.NO_DIGIT_DETAIL).format(
        name="<upload>")
    assert messages["no_digits_detail"] == marked(page_module.NO_DIGITS_DETAIL).format(
        name="<upload>")


def test_app_js_uses_exactly_the_messages_it_is_given():
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    used = set(re.findall(r"\btext\.(\w+)", js))
    assert used == set(page_module.JS_MESSAGES) | {"no_digit_detail", "no_digits_detail"}
    assert 'getElementById("page-data")' in js
    # no English sentence of the page is left in the script
    for message in page_module.JS_MESSAGES.values():
        for part in FIELD.split(message):
            assert len(part.strip()) < 12 or part.strip() not in js, part


def test_the_page_uses_the_real_catalog(predictor):
    """What digitlab.i18n gives for each message, once the catalog holds it (English until
    then), is what the page shows."""
    i18n.set_language("bn")
    text = get_page(predictor)
    assert '<html lang="bn">' in text
    for message in page_module.HTML_MESSAGES.values():
        assert html.escape(i18n._(message)) in text, message
    data = page_data(text)
    for key, message in page_module.JS_MESSAGES.items():
        assert data["messages"][key] == i18n._(message), key


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_a_blank_drawing_is_recognised_in_either_language(predictor, lang):
    """app.js tells "no digit" from other errors by the server's own message."""
    i18n.set_language(lang)
    expected = page_data(get_page(predictor))["messages"]["no_digit_detail"]
    response = predict(predictor, blank())
    assert response.status_code == 400 and response.json()["detail"] == expected


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_a_blank_number_is_recognised_in_either_language(predictor, lang):
    """... and "no digits" from /read the same way."""
    i18n.set_language(lang)
    expected = page_data(get_page(predictor))["messages"]["no_digits_detail"]
    with client_for(predictor) as c:
        response = c.post("/read", files={"file": ("number.png", blank(), "image/png")})
    assert response.status_code == 400 and response.json()["detail"] == expected


@pytest.mark.parametrize("how", ["option", "environment"])
def test_serve_with_lang_bn_gives_a_bengali_page(digits_run, monkeypatch, how):
    from digitlab.cli import main
    from digitlab.serve import app as app_module

    apps = []
    monkeypatch.setattr(app_module, "listen", lambda host, port: socket.socket())
    monkeypatch.setattr(app_module, "run", lambda app, sock: apps.append(app))
    argv = ["serve", str(digits_run), "--device", "cpu"]
    if how == "option":
        argv = ["--lang", "bn", *argv]
    else:
        monkeypatch.setenv("DIGITLAB_LANG", "bn")
    assert main(argv) == 0
    with TestClient(apps[0], base_url="http://127.0.0.1:8000") as c:
        text = c.get("/").text
    assert '<html lang="bn">' in text and page_data(text)["lang"] == "bn"
    assert html.escape(i18n._(page_module.HTML_MESSAGES["probabilities"])) in text


# ---------------------------------------------------------------- the run's class names


@pytest.mark.parametrize("classes,top,label,text", [
    (BENGALI, 7, 7, "৭"),
    (ENGLISH, 7, 7, "7"),
    (ENGLISH + BENGALI, 17, 7, "৭"),
    (ENGLISH + BENGALI, 7, 7, "7"),
    (ENGLISH + BENGALI, 10, 0, "০"),
    (("T-shirt", "Trouser", "Sneaker"), 2, 2, "Sneaker"),
])
def test_predict_answers_with_the_runs_class_names(predictor, classes, top, label, text):
    response = predict(with_classes(predictor, classes, top), drawn_one())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == body["class_name"] == text
    assert body["label"] == label and body["index"] == top
    assert len(body["probabilities"]) == len(classes)
    assert max(range(len(classes)), key=body["probabilities"].__getitem__) == top


@pytest.mark.parametrize("classes,digits", [
    (ENGLISH, "0 to 9"),
    (BENGALI, "০ to ৯"),
    (ENGLISH + BENGALI, "0 to 9 or ০ to ৯"),
])
def test_the_page_names_the_runs_digits(predictor, classes, digits):
    text = get_page(with_classes(predictor, classes, 0))
    assert f"Draw one digit, {digits}, in the black square" in text
    assert page_data(text)["classes"] == list(classes)
    assert '<section class="number" aria-labelledby="number-heading">' in text  # not hidden


def test_a_page_for_classes_that_are_not_digits(predictor):
    classes = ("T-shirt", "Trouser", "<Sneaker>")
    text = get_page(with_classes(predictor, classes, 0))
    assert "Draw one of the model&#x27;s classes in the black square" in text
    assert "<Sneaker>" not in text and page_data(text)["classes"] == list(classes)
    assert '<section class="number" aria-labelledby="number-heading" hidden>' in text
    assert '<div class="layout">' in text  # the digit pad stays


@pytest.mark.parametrize("name,index,value", [
    ("7", 7, 7), ("৭", 17, 7), ("০", 10, 0), ("Sneaker", 7, 7), ("²", 3, 3), ("10", 10, 10),
])
def test_class_value(name, index, value):
    assert class_value(name, index) == value


def test_the_schema_explains_label_and_index(predictor):
    with client_for(predictor) as c:
        spec = c.get("/openapi.json").json()
    fields = spec["components"]["schemas"]["Prediction"]["properties"]
    assert {"label", "index", "class_name", "text"} <= set(fields)
    assert "৭" in fields["label"]["description"] and "value" in fields["label"]["description"]
    assert "index" in fields["index"]["description"]
