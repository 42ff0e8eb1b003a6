"""POST /read: a line of digits drawn here is read as `digitlab read` reads it (one digit a
well-separated blob, boxes left to right, finite JSON), in the run's own class names; its
refusals are 4xx JSON, never a 500 (blank, not an image, too large, too wide, cross-origin);
GET /model names the method; and a run trained with --task read answers /read only.

The shared run is tiny (a seed-mlp on the bundled 8x8 digits): what it reads is checked for
its form, and against the Reader itself, not for being right."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import re
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.config import Config
from digitlab.inference.predictor import Predictor
from digitlab.inference.reader import Reader
from digitlab.inference.segment import MAX_SIDE
from digitlab.serve.app import create_app
from digitlab.serve.guard import MAX_BODY
from helpers import with_classes

with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

BASE = "http://127.0.0.1:8000"
CELL = 280  # the number pad is four digit pads wide: 1120x280
# Digit shapes as strokes through points, in fractions of one cell (x right, y down).
ONE = [[(0.5, 0.15), (0.47, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]
ZERO = [[(0.5, 0.15), (0.3, 0.3), (0.28, 0.6), (0.45, 0.85), (0.65, 0.75), (0.72, 0.45),
         (0.62, 0.2), (0.5, 0.15)]]
FOUR = [[(0.55, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.85)]]  # two strokes


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def number(digits: list, cells: int = 4, dark_on_light: bool = False) -> Image.Image:
    """Digits drawn one a cell, like on the page's number pad: a thick white pen on black
    (or black on white, like ink on paper)."""
    ink, paper = ("black", "white") if dark_on_light else ("white", "black")
    image = Image.new("RGB", (cells * CELL, CELL), paper)
    draw = ImageDraw.Draw(image)
    for i, strokes in enumerate(digits):
        for stroke in strokes:
            draw.line([((i + fx) * CELL, fy * CELL) for fx, fy in stroke], fill=ink,
                      width=20, joint="curve")
    return image


def read(client, data: bytes, name: str = "number.png", content_type: str = "image/png",
         headers: dict | None = None):
    return client.post("/read", files={"file": (name, data, content_type)}, headers=headers)


def finite_json(response) -> dict:
    """The body, parsed without accepting NaN or Infinity."""
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON")

    return json.loads(response.text, parse_constant=refuse)


def assert_reading(body: dict, classes: tuple[str, ...], width: int, height: int) -> None:
    assert set(body) == {"text", "digits", "confidence", "method", "sure", "min_confidence"}
    assert body["method"] == "segment"
    labels = [d["label"] for d in body["digits"]]
    assert body["text"] == "".join(labels) and set(labels) <= set(classes)
    probabilities = [d["probability"] for d in body["digits"]]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert body["confidence"] == pytest.approx(math.prod(probabilities))
    assert body["sure"] is (body["confidence"] >= body["min_confidence"])
    for digit in body["digits"]:
        x0, y0, x1, y1 = digit["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, digit["box"]
    # left to right; boxes may overlap sideways (digits cut apart along a slant do)
    centres = [(d["box"][0] + d["box"][2]) / 2 for d in body["digits"]]
    assert centres == sorted(centres), "not left to right"


def assert_json_error(response, status: int | tuple[int, ...]) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = finite_json(response)["detail"]
    assert isinstance(detail, str) and detail
    return detail


@pytest.fixture(scope="module")
def predictor(digits_run) -> Predictor:
    return Predictor.load(digits_run, device="cpu")


def app_client(predictor: Predictor) -> TestClient:
    return TestClient(create_app(predictor), base_url=BASE, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(predictor):
    with app_client(predictor) as c:
        yield c


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("digits", [[ONE], [ONE, SEVEN], [ONE, SEVEN, ZERO],
                                    [ZERO, FOUR, ONE, SEVEN]])
@pytest.mark.parametrize("dark_on_light", [False, True])
def test_read_finds_each_drawn_digit_left_to_right(client, predictor, digits, dark_on_light):
    image = number(digits, dark_on_light=dark_on_light)
    response = read(client, png(image))
    assert response.status_code == 200, response.text
    body = finite_json(response)
    assert_reading(body, predictor.classes, image.width, image.height)
    assert len(body["digits"]) == len(digits)
    for i, digit in enumerate(body["digits"]):  # each box round the digit drawn in cell i
        x0, y0, x1, y1 = digit["box"]
        assert i * CELL <= x0 < x1 <= (i + 1) * CELL and y1 - y0 > CELL / 2, digit["box"]


def test_read_answers_what_the_reader_reads(client, predictor):
    data = png(number([ONE, SEVEN, ZERO]))
    expected = Reader(predictor, "segment").read(data).as_json()
    body = finite_json(read(client, data))
    assert {key: body[key] for key in expected} == pytest.approx(expected)


def test_read_takes_a_raw_image_body_and_jpeg(client):
    data = png(number([ONE, ZERO]), "JPEG")
    raw = client.post("/read", content=data, headers={"content-type": "image/jpeg"})
    assert raw.status_code == 200, raw.text
    assert finite_json(raw) == finite_json(read(client, data, "n.jpg", "image/jpeg"))
    assert len(finite_json(raw)["digits"]) == 2


def test_read_a_long_line_of_digits(client, predictor):
    image = number([ONE, SEVEN, ZERO, FOUR] * 3, cells=12)
    body = finite_json(read(client, png(image)))
    assert_reading(body, predictor.classes, image.width, image.height)
    assert len(body["digits"]) == 12


@pytest.mark.parametrize("classes,top,text", [
    (tuple("০১২৩৪৫৬৭৮৯"), 7, "৭৭৭"),
    (tuple("0123456789০১২৩৪৫৬৭৮৯"), 17, "৭৭৭"),
    (tuple("0123456789"), 4, "444"),
])
def test_read_answers_in_the_runs_class_names(predictor, classes, top, text):
    odd = with_classes(predictor, classes, top)
    with app_client(odd) as c:
        response = read(c, png(number([ONE, SEVEN, ZERO])))
    assert response.status_code == 200, response.text
    body = finite_json(response)
    assert body["text"] == text and [d["label"] for d in body["digits"]] == list(text)


def test_model_says_how_the_run_reads(client):
    info = client.get("/model").json()
    assert info["task"] == "classify" and info["read_methods"] == ["segment"]


def test_openapi_describes_read(client):
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/read"]["post"]
    assert {"multipart/form-data", "image/*"} <= set(route["requestBody"]["content"])
    assert {"400", "413", "415"} <= set(route["responses"])
    fields = spec["components"]["schemas"]["NumberReading"]["properties"]
    assert {"text", "digits", "confidence", "method"} <= set(fields)
    box = spec["components"]["schemas"]["DigitRead"]["properties"]["box"]
    assert box["minItems"] == box["maxItems"] == 4


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("colour", ["black", "white"])
def test_read_a_blank_image_is_400_no_digits(client, colour):
    detail = assert_json_error(read(client, png(Image.new("RGB", (1120, 280), colour))), 400)
    assert detail == "<upload>: no digits found (the image looks blank)"


@pytest.mark.parametrize("data", [b"hello, not an image", b"", b"\x89PNG\r\n\x1a\nbroken"])
def test_read_non_image_upload_is_400(client, data):
    assert_json_error(read(client, data), 400)


def test_read_truncated_upload_is_400(client):
    data = png(number([ONE, ZERO]), "JPEG")
    assert_json_error(read(client, data[: len(data) // 3], "n.jpg", "image/jpeg"), 400)


@pytest.mark.parametrize("size", [(20_000, 40), (40, 20_000), (MAX_SIDE + 1, 64)])
def test_read_an_image_too_wide_for_a_line_is_400(client, size):
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).line([(20, 5), (20, 35)], fill=0, width=4)  # some ink
    data = png(image)
    assert len(data) < MAX_BODY  # refused for its size in pixels, not in bytes
    detail = assert_json_error(read(client, data), 400)
    assert f"{size[0]}x{size[1]} pixels is too long for one line" in detail


def test_read_an_image_too_large_to_decode_is_400(client):
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())  # the IHDR now claims 20000x20000 (a valid CRC)
    data[16:24] = (20_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    detail = assert_json_error(read(client, bytes(data)), 400)
    assert re.search(r"(?i)too large|decompression bomb", detail)


def test_read_over_2_mb_is_413(client):
    big = png(number([ONE])) + b"\0" * MAX_BODY
    assert "2 MB" in assert_json_error(read(client, big), 413)


def test_read_without_file_field_is_422(client):
    response = client.post("/read", files={"image": ("n.png", png(number([ONE])), "image/png")})
    assert "'file'" in assert_json_error(response, 422)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_read_other_content_types_are_415(client, content_type):
    response = client.post("/read", content=b'{"pixels": []}',
                           headers={"content-type": content_type})
    assert "multipart/form-data" in assert_json_error(response, 415)


def test_read_a_cross_origin_post_is_403(client):
    response = read(client, png(number([ONE])), headers={"origin": "http://evil.example"})
    assert "cross-origin" in assert_json_error(response, 403)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "I;16", "F", "CMYK"])
def test_read_odd_image_modes_and_noise_never_500(client, predictor, mode):
    """Pure noise and every image mode Pillow decodes: an answer or a 400, finite JSON."""
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (120, 480), dtype=np.uint8))
    for image in (noise, number([ONE, ZERO], cells=2)):
        image = image.convert(mode)
        data = png(image, "TIFF" if mode in ("F", "CMYK", "I;16") else "PNG")
        response = read(client, data)
        if response.status_code == 200:
            assert_reading(finite_json(response), predictor.classes, image.width, image.height)
        else:
            assert_json_error(response, 400)


def test_read_with_nan_weights_is_a_json_503(predictor):
    model = copy.deepcopy(predictor.model)
    for parameter in model.parameters():
        parameter.data.fill_(float("nan"))
    with app_client(dataclasses.replace(predictor, model=model)) as c:
        response = read(c, png(number([ONE, ZERO])))
    assert "not finite" in assert_json_error(response, 503)
    assert not re.search(r"NaN|Infinity", response.text)


# ---------------------------------------------------------------- a run that reads numbers


@pytest.fixture(scope="module")
def read_run(predictor) -> Predictor:
    """The shared run under a config that says `--task read`: what the app makes of a CTC
    number reader, without training one."""
    cfg = Config()
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="crnn"),
                              train=dataclasses.replace(cfg.train, task="read"))
    return dataclasses.replace(predictor, cfg=cfg)


def test_a_read_run_answers_predict_with_a_clear_400(read_run):
    with app_client(read_run) as c:
        for response in (c.post("/predict", files={"file": ("d.png", png(number([ONE], 1)),
                                                            "image/png")}),
                         c.post("/predict", json={"pixels": [[255] * 28] * 28})):
            assert assert_json_error(response, 400) == "this run reads whole numbers: POST /read"
        info = c.get("/model").json()
    assert info["task"] == "read" and info["read_methods"] == ["ctc"]


def test_a_read_run_shows_only_the_number_pad(read_run):
    with app_client(read_run) as c:
        text = c.get("/").text
    assert "<title>digitlab: write a number</title>" in text
    assert '<div class="layout" hidden>' in text  # the digit pad's section
    assert 'id="number"' in text and "This model reads whole numbers" in text
    assert "API: <code>POST /read</code>; its schema is" in text
    data = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)'
                                r"</script>", text, re.S)[1])
    assert data["task"] == "read" and data["method"] == "ctc"


def test_the_page_wires_the_number_pad(client):
    html = client.get("/").text
    for element_id in ("number", "number-boxes", "number-clear", "number-read", "number-text",
                       "number-confidence", "number-digits", "number-status"):
        assert f'id="{element_id}"' in html
    assert '<canvas id="number" width="1120" height="280"' in html  # 4 digit pads wide
    js = client.get("/static/app.js").text
    assert '"/read"' in js and '"/predict"' in js
    css = client.get("/static/style.css").text
    assert re.search(r"#number \{[^}]*touch-action: none", css)
