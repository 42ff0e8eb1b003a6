"""The web app: routes, /predict's two input forms and its refusals (4xx JSON, never 500),
the request guard (Host on loopback, same-origin POSTs, JSON size and depth), a fuzz of
/predict, and one real uvicorn process on loopback."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from digitlab.errors import UsageError
from digitlab.inference.predictor import Predictor
from digitlab.serve.app import DEFAULT_MIN_CONFIDENCE, STATIC, create_app, is_loopback
from digitlab.serve.guard import MAX_BODY, MAX_JSON_BODY, MAX_JSON_DEPTH, host_name, nesting_exceeds
from helpers import free_port, stop_process

with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def run_dir(digits_run) -> Path:
    return digits_run


BASE = "http://127.0.0.1:8000"  # the Host a browser on this machine sends


def app_client(predictor: Predictor, base_url: str = BASE, host: str = "127.0.0.1",
               min_confidence: float = DEFAULT_MIN_CONFIDENCE):
    """A TestClient for an app bound to `host`; a crash is answered as the server would, 500."""
    return TestClient(create_app(predictor, host=host, min_confidence=min_confidence),
                      base_url=base_url, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def predictor(run_dir) -> Predictor:
    return Predictor.load(run_dir, device="cpu")


@pytest.fixture(scope="module")
def client(predictor) -> TestClient:
    with app_client(predictor) as c:
        yield c


# ---------------------------------------------------------------- inputs


def drawn_one(fmt: str = "PNG") -> bytes:
    """A "1" drawn like on the page: a thick white stroke on a black square."""
    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).line([(150, 50), (140, 230)], fill="white", width=20)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR (with a valid CRC) claims width x height pixels."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def upload(client, data: bytes, name: str = "digit.png", content_type: str = "image/png"):
    return client.post("/predict", files={"file": (name, data, content_type)})


def assert_prediction(body: dict) -> None:
    assert isinstance(body["label"], int) and 0 <= body["label"] <= 9
    probs = body["probabilities"]
    assert len(probs) == 10 and all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert body["confidence"] == pytest.approx(max(probs))
    assert probs.index(max(probs)) == body["label"]
    assert body["min_confidence"] == DEFAULT_MIN_CONFIDENCE
    assert body["sure"] is (body["confidence"] >= body["min_confidence"])
    digit = np.asarray(body["preprocessed"])
    assert digit.shape == (28, 28)
    assert digit.dtype.kind == "i" and digit.min() >= 0 and digit.max() <= 255


def assert_json_error(response, status: int | tuple[int, ...]) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


# ---------------------------------------------------------------- pages and metadata

EXTERNAL = re.compile(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|@font-face")


def test_index_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<title>digitlab: draw a digit</title>" in html
    for element_id in ("pad", "clear", "label", "confidence", "bars", "preview"):
        assert f'id="{element_id}"' in html
    assert "http://" not in html and "https://" not in html
    # every script and stylesheet comes from this server
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith(("/static/", "data:")) or ref == "/openapi.json", ref
    assert "default-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("name,kind", [("app.js", "javascript"), ("style.css", "text/css")])
def test_static_assets_are_served_and_local(client, name, kind):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert not EXTERNAL.search(response.text), EXTERNAL.search(response.text)
    assert response.text == (STATIC / name).read_text(encoding="utf-8")


def test_page_wiring(client):
    js = client.get("/static/app.js").text
    css = client.get("/static/style.css").text
    assert '"/predict"' in js and "FormData" in js and '"file"' in js
    assert "pointerdown" in js and "pointerup" in js and "toBlob" in js
    assert "touch-action: none" in css and "pixelated" in css


def test_static_does_not_escape_its_folder(client):
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_model(client):
    info = client.get("/model").json()
    assert info["model"] == "seed-mlp" and info["dataset"] == "digits"
    assert 0.85 <= info["test_accuracy"] <= 1.0
    assert info["config"]["model"] == "seed-mlp"
    assert info["min_confidence"] == 0.6 and info["temperature"] == 1.0  # no validation split


def test_predict_says_not_sure_below_min_confidence(client, predictor):
    confidence = upload(client, drawn_one()).json()["confidence"]
    assert confidence < 1.0
    for threshold, sure in ((confidence, True), ((confidence + 1) / 2, False)):
        with app_client(predictor, min_confidence=threshold) as c:
            body = upload(c, drawn_one()).json()
            assert body["sure"] is sure and body["min_confidence"] == threshold
            assert body["confidence"] == confidence  # the best guess is still given
            assert c.get("/model").json()["min_confidence"] == threshold


def test_the_temperature_changes_the_confidence_not_the_answer(client, predictor):
    plain = upload(client, drawn_one()).json()
    with app_client(dataclasses.replace(predictor, temperature=4.0)) as c:
        softer = upload(c, drawn_one()).json()
        assert c.get("/model").json()["temperature"] == 4.0
    assert softer["label"] == plain["label"] and softer["confidence"] < plain["confidence"]


@pytest.mark.parametrize("threshold", [0.0, -1.0, 1.5, float("nan")])
def test_a_bad_min_confidence_is_refused(predictor, threshold):
    with pytest.raises(UsageError, match="--min-confidence"):
        create_app(predictor, min_confidence=threshold)


def test_model_shows_no_absolute_path(client, run_dir):
    response = client.get("/model")
    assert response.json()["checkpoint"] == f"{run_dir.name}/checkpoints/last.safetensors"
    assert str(run_dir.parent) not in response.text
    assert str(Path.home()) not in response.text and "/tmp" not in response.text


@pytest.mark.parametrize("path,shown", [(Path("/home/me/secret/model.safetensors"),
                                         "model.safetensors"), (None, None)])
def test_model_names_a_loose_checkpoint_by_its_file_name(predictor, path, shown):
    with app_client(dataclasses.replace(predictor, path=path)) as c:
        response = c.get("/model")
    assert response.json()["checkpoint"] == shown and "secret" not in response.text


def test_model_with_non_finite_metadata_is_null(predictor):
    meta = dict(predictor.meta, metrics={"test_accuracy": float("nan")}, epoch=float("inf"))
    odd = dataclasses.replace(predictor, meta=meta, mean=float("inf"))
    with app_client(odd) as c:
        response = c.get("/model")
    assert response.status_code == 200
    info = response.json()
    assert info["test_accuracy"] is None and info["epoch"] is None
    assert info["normalization"]["mean"] is None
    assert not re.search(r"NaN|Infinity", response.text)


def test_model_with_nan_weights_is_a_json_503(predictor):
    model = copy.deepcopy(predictor.model)
    for parameter in model.parameters():
        parameter.data.fill_(float("nan"))
    with app_client(dataclasses.replace(predictor, model=model)) as c:
        response = c.post("/predict", json={"pixels": [[255] * 28] * 28})
        assert "not finite" in assert_json_error(response, 503)
        assert not re.search(r"NaN|Infinity|null", response.text)
        assert_json_error(upload(c, drawn_one()), 503)


def test_openapi_without_docs_pages(client):
    # Swagger UI and ReDoc load from a CDN; they are off, the schema stays
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    spec = client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/predict"]
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    assert {"403", "413", "421", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])


def test_no_response_names_another_host(client):
    """Everything the app serves works offline: no http(s) URL in any page, asset or schema."""
    paths = [route.path for route in client.app.routes
             if "GET" in getattr(route, "methods", ()) and "{" not in route.path]
    paths += [f"/static/{f.name}" for f in STATIC.iterdir()] + ["/docs", "/redoc"]
    assert {"/", "/model", "/healthz", "/openapi.json", "/static/app.js"} <= set(paths)
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert not re.search(r"(?i)https?://|//cdn|unpkg|jsdelivr", response.text), path


# ---------------------------------------------------------------- POST /predict


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_predict_upload(client, fmt):
    response = upload(client, drawn_one(fmt))
    assert response.status_code == 200
    body = response.json()
    assert_prediction(body)
    digit = np.asarray(body["preprocessed"])
    assert digit[0].max() == 0 and digit.max() > 200  # white ink on black, fitted


def test_predict_upload_agrees_with_the_predictor(client, run_dir):
    data = drawn_one()
    body = upload(client, data).json()
    digit, probs = Predictor.load(run_dir, device="cpu").predict_file(data)
    assert body["preprocessed"] == digit.astype(int).tolist()
    assert np.allclose(body["probabilities"], probs.numpy(), atol=1e-6)


def test_predict_raw_image_body(client):
    response = client.post("/predict", content=drawn_one(), headers={"content-type": "image/png"})
    assert response.status_code == 200
    assert_prediction(response.json())


def test_predict_pixels_0_255_and_0_1_agree(client):
    digit = np.asarray(upload(client, drawn_one()).json()["preprocessed"])
    as_255 = client.post("/predict", json={"pixels": digit.tolist()})
    as_01 = client.post("/predict", json={"pixels": (digit / 255.0).tolist()})
    assert as_255.status_code == as_01.status_code == 200
    assert_prediction(as_255.json())
    assert as_255.json()["preprocessed"] == digit.tolist()
    assert as_01.json()["label"] == as_255.json()["label"]
    assert as_01.json()["probabilities"] == pytest.approx(as_255.json()["probabilities"],
                                                          abs=1e-6)


BAD_PIXELS = {
    "27 rows": [[0] * 28] * 27,
    "short row": [[0] * 28] * 27 + [[0] * 27],
    "flat": [0] * 784,
    "strings": [["1"] * 28] * 28,
    "booleans": [[True] * 28] * 28,
    "nested": [[[0]] * 28] * 28,
    "negative": [[-1] * 28] * 28,
    "over 255": [[256] * 28] * 28,
    "not a list": "pixels",
    "null": None,
}


@pytest.mark.parametrize("case", list(BAD_PIXELS))
def test_predict_bad_pixels_is_422(client, case):
    assert_json_error(client.post("/predict", json={"pixels": BAD_PIXELS[case]}), 422)


@pytest.mark.parametrize("body", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_predict_non_finite_pixels_is_422(client, body):
    rows = [[0] * 28 for _ in range(27)] + [[0] * 27 + ["__X__"]]
    raw = json.dumps({"pixels": rows}).replace('"__X__"', body.decode()).encode()
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert_json_error(response, 422)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"pixel": []}', b"\xff\xfe"])
def test_predict_malformed_json_is_422(client, raw):
    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert_json_error(response, 422)


def pixels_json(last: str) -> bytes:
    """{"pixels": 28x28} with zeros but a stroke, and `last` written verbatim as the last value."""
    rows = [[0] * 28 for _ in range(28)]
    for row in rows[4:24]:
        row[14] = 255
    return json.dumps({"pixels": rows})[:-len("0]]}")].encode() + last.encode() + b"]]}"


def post_json(client, raw: bytes, **headers):
    return client.post("/predict", content=raw,
                       headers={"content-type": "application/json", **headers})


def test_pixels_json_helper_is_a_valid_request(client):
    assert post_json(client, pixels_json("0")).status_code == 200


@pytest.mark.parametrize("number", [str(10**400), str(-10**400), "9" * 5000, "1e400"])
def test_predict_huge_number_in_pixels_is_422(client, number):
    # 10**400 parses as a Python int that float() cannot hold: an OverflowError, a 500, before
    assert_json_error(post_json(client, pixels_json(number)), 422)


@pytest.mark.parametrize("levels", [1000, 5000, 30000])
def test_predict_deeply_nested_json_is_422(client, levels):
    # json.loads raised RecursionError (a 500) from about 1000 levels
    raw = b"[" * levels + b"]" * levels
    assert "nests deeper" in assert_json_error(post_json(client, raw), 422)
    nested_pixels = b'{"pixels": ' + b"[" * levels + b"0" + b"]" * levels + b"}"
    assert_json_error(post_json(client, nested_pixels), 422)


def test_predict_100000_levels_of_nesting_is_refused_by_size(client):
    raw = b"[" * 100_000 + b"]" * 100_000
    assert "64 kB" in assert_json_error(post_json(client, raw), 413)


def test_predict_json_depth_limit_is_exact(client):
    def nested(depth: int) -> bytes:  # {"pixels": ..., "x": [[...]]} nesting `depth` deep
        inner = b"[" * (depth - 1) + b"]" * (depth - 1)
        return pixels_json("0")[:-1] + b', "x": ' + inner + b"}"

    assert post_json(client, nested(MAX_JSON_DEPTH)).status_code == 200
    assert_json_error(post_json(client, nested(MAX_JSON_DEPTH + 1)), 422)


def test_predict_json_over_64_kb_is_413_before_parsing(client):
    raw = pixels_json("0")[:-1] + b', "pad": "' + b"x" * MAX_JSON_BODY + b'"}'
    assert "64 kB" in assert_json_error(post_json(client, raw), 413)


def test_predict_json_at_full_precision_and_indented_fits(client):
    rows = [[(i * 28 + j) % 97 / 97 + 1e-17 if 4 <= i < 24 else 0.0 for j in range(28)]
            for i in range(28)]
    raw = json.dumps({"pixels": rows}, indent=4).encode()
    assert len(raw) < MAX_JSON_BODY
    assert post_json(client, raw).status_code == 200


def test_predict_brackets_inside_strings_do_not_count(client):
    raw = pixels_json("0")[:-1] + rb', "note": "[[[[[[[[[[{{{{{{{{ \\\" [[[[[[[[[["}'
    json.loads(raw)  # valid JSON: the escaped quote does not end the string
    assert post_json(client, raw).status_code == 200


@pytest.mark.parametrize("text,depth", [
    ("[]", 1), ('{"a": [{"b": []}]}', 4), ('["[[[[", "]]]]"]', 1), (r'["\\", [["x"]]]', 3),
    (r'["\\\"[[[[", []]', 2), ('"unterminated [[[[', 0), ("]]]][[", 0),
])
def test_nesting_exceeds(text, depth):
    body = text.encode()
    assert not nesting_exceeds(body, depth)
    assert nesting_exceeds(body, depth - 1) == (depth > 0)


def test_predict_blank_is_400_no_digit(client):
    blank = io.BytesIO()
    Image.new("RGB", (280, 280), "black").save(blank, "PNG")
    assert "no digit" in assert_json_error(upload(client, blank.getvalue()), 400)
    assert "no digit" in assert_json_error(
        client.post("/predict", json={"pixels": [[0] * 28] * 28}), 400)


@pytest.mark.parametrize("data", [b"hello, not an image", b"", b"\x89PNG\r\n\x1a\nbroken"])
def test_predict_non_image_upload_is_400(client, data):
    assert_json_error(upload(client, data), 400)


def test_predict_truncated_upload_is_400(client):
    data = drawn_one("JPEG")
    assert_json_error(upload(client, data[: len(data) // 2], "digit.jpg", "image/jpeg"), 400)


def test_predict_without_file_field_is_422(client):
    response = client.post("/predict", files={"image": ("d.png", drawn_one(), "image/png")})
    assert "'file'" in assert_json_error(response, 422)


def test_predict_unsupported_content_type_is_415(client):
    response = client.post("/predict", content=b"1 2 3", headers={"content-type": "text/plain"})
    assert_json_error(response, 415)


def test_predict_over_2_mb_is_413(client):
    big = drawn_one() + b"\0" * MAX_BODY  # a valid PNG followed by padding: over the limit
    assert "2 MB" in assert_json_error(upload(client, big), 413)


def test_predict_over_2_mb_without_content_length_is_413(client):
    def chunks():  # chunked transfer: no Content-Length, the server must count
        for _ in range(3):
            yield b"\0" * (MAX_BODY // 2)

    response = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    assert "content-length" not in response.request.headers
    assert_json_error(response, 413)


def test_predict_just_under_2_mb_is_read(client):
    padded = drawn_one() + b"\0" * (MAX_BODY - 1024 - len(drawn_one()))
    response = client.post("/predict", content=padded, headers={"content-type": "image/png"})
    assert response.status_code == 200  # PNG readers ignore trailing bytes


@pytest.mark.parametrize("side", [8000, 20000])
def test_predict_oversized_image_header_is_refused(client, side):
    detail = assert_json_error(upload(client, png_claiming(side, side)), 400)
    assert re.search(r"(?i)too large|decompression bomb", detail)


def json_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(json_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(json_depth, value), default=0)
    return 0


TRICKY_TEXT = st.text(alphabet='[]{}"\\ a\u00e9\u0995', max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.integers() | TRICKY_TEXT,
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(TRICKY_TEXT, children, max_size=3), max_leaves=20),
       st.booleans())
def test_nesting_exceeds_agrees_with_the_parsed_depth(value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    depth = json_depth(value)
    assert not nesting_exceeds(body, depth)
    assert nesting_exceeds(body, depth - 1) == (depth > 0)


# ---------------------------------------------------------------- the request guard


@pytest.mark.parametrize("header,name", [
    ("localhost", "localhost"), ("LocalHost:8000", "localhost"), ("127.0.0.1:1", "127.0.0.1"),
    ("[::1]:8080", "[::1]"), ("[::1]", "[::1]"), ("evil.example:80", "evil.example"),
    ("", None), ("a b", None), ("user@host", None), ("[::1", None), ("host:port", None),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("base", ["http://localhost", "http://localhost:8000",
                                  "http://127.0.0.1:1234", "http://[::1]:8000"])
def test_loopback_server_answers_names_of_this_machine(predictor, base):
    with app_client(predictor, base) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.post("/predict", json={"pixels": [[255] * 28] * 28}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
@pytest.mark.parametrize("base", ["http://evil.example", "http://evil.example:8000",
                                  "http://testserver", "http://192.168.1.10:8000"])
def test_loopback_server_refuses_other_hosts(predictor, host, base):
    """DNS rebinding: evil.example resolved to 127.0.0.1 still sends Host: evil.example."""
    with app_client(predictor, base, host=host) as c:
        for response in (c.get("/"), c.get("/model"), c.get("/static/app.js"),
                         c.post("/predict", json={"pixels": [[255] * 28] * 28},
                                headers={"origin": base})):
            assert "localhost" in assert_json_error(response, 421)


def test_server_off_loopback_answers_any_host(predictor):
    with app_client(predictor, "http://digits.lan:8000", host="0.0.0.0") as c:
        assert c.get("/healthz").status_code == 200
        assert c.post("/predict", json={"pixels": [[255] * 28] * 28},
                      headers={"origin": "http://digits.lan:8000"}).status_code == 200
        assert_json_error(c.post("/predict", json={"pixels": [[255] * 28] * 28},
                                 headers={"origin": "http://evil.example"}), 403)


@pytest.mark.parametrize("headers", [
    {"origin": "http://evil.example"}, {"origin": "http://127.0.0.1:8001"},
    {"origin": "http://localhost:8000"}, {"origin": "null"}, {"origin": "garbage"},
    {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
])
def test_cross_origin_post_is_403(client, headers):
    for response in (upload_with(client, headers), client.post(
            "/predict", json={"pixels": [[255] * 28] * 28}, headers=headers)):
        assert "cross-origin" in assert_json_error(response, 403)


@pytest.mark.parametrize("headers", [
    {}, {"origin": BASE}, {"origin": "https://127.0.0.1:8000"},
    {"origin": BASE, "sec-fetch-site": "same-origin"}, {"sec-fetch-site": "same-origin"},
    {"sec-fetch-site": "none"},
])
def test_same_origin_or_scripted_post_is_answered(client, headers):
    """What the page sends (Origin: its own), curl and scripts (no Origin) are all served."""
    response = upload_with(client, headers)
    assert response.status_code == 200, response.text
    assert_prediction(response.json())


def test_cross_origin_reads_are_answered(client):
    # a GET changes nothing, and the browser withholds the answer from the other page
    assert client.get("/healthz", headers={"origin": "http://evil.example"}).status_code == 200


def upload_with(client, headers: dict):
    return client.post("/predict", files={"file": ("d.png", drawn_one(), "image/png")},
                       headers=headers)


# ---------------------------------------------------------------- fuzz: /predict

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats(allow_nan=False,
                                                                    allow_infinity=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=6),
                                                                       children, max_size=3),
    max_leaves=60,
)
GRIDS = st.lists(st.lists(st.one_of(st.integers(-2, 300), st.floats(-1, 300)), min_size=27,
                          max_size=29), min_size=27, max_size=29)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048),
                 st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"])
                 .flatmap(lambda m: st.binary(max_size=256).map(lambda t: m + t)),
                 st.integers(0, 2000).map(lambda n: drawn_one("JPEG")[:n])))
def test_fuzz_upload_never_500(client, data):
    response = upload(client, data)
    assert response.status_code < 500
    if response.status_code == 200:
        assert_prediction(response.json())
    else:
        assert_json_error(response, (400, 413, 415, 422))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries({"pixels": JSON_VALUES}),
                 st.fixed_dictionaries({"pixels": GRIDS})))
def test_fuzz_json_never_500(client, payload):
    response = client.post("/predict", json=payload)  # json=None sends no body: 415
    assert response.status_code < 500
    if response.status_code == 200:
        assert_prediction(response.json())
    else:
        assert_json_error(response, (400, 415, 422) if payload is None else (400, 422))


# ---------------------------------------------------------------- a real server


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")


@pytest.mark.parametrize("host,warned", [("127.0.0.1", False), ("::1", False),
                                         ("0.0.0.0", True), ("192.168.1.10", True)])
def test_serve_announces_where_it_listens(run_dir, monkeypatch, capsys, host, warned):
    from digitlab.serve import app as app_module

    calls = []  # no socket is bound: these addresses need not be this machine's
    monkeypatch.setattr(app_module, "listen",
                        lambda host, port: calls.append((host, port)) or socket.socket())
    monkeypatch.setattr(app_module, "run", lambda app, sock: calls.append(app))
    app_module.serve(str(run_dir), host=host, port=8123, device="cpu")
    bound, app = calls
    assert bound == (host, 8123)
    assert app.state.predictor.cfg.model.name == "seed-mlp"
    with TestClient(app, base_url="http://evil.example:8123") as c:  # the guard knows the bind
        assert c.get("/healthz").status_code == (200 if warned else 421)
    lines = capsys.readouterr().out.strip().splitlines()
    shown = f"[{host}]" if ":" in host else host
    assert f"http://{shown}:8123/" in lines[0]
    assert len(lines) == (2 if warned else 1)
    if warned:
        assert "warning" in lines[1] and "not a loopback" in lines[1]
    else:
        assert f"bound to {host} only" in lines[0] and "--host" in lines[0]


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory) -> Path:
    """A tiny run whose config names a preset, as configs/*.toml do."""
    from digitlab.cli import main

    run = tmp_path_factory.mktemp("preset") / "run"
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--set", "train.preset=robust",
                 "--out", str(run)])
    assert code == 0
    return run


@pytest.mark.parametrize("preset", ["robust", None])
def test_serve_says_which_preset_the_run_came_from(preset, preset_run, run_dir, monkeypatch,
                                                   capsys):
    from digitlab.serve import app as app_module

    monkeypatch.setattr(app_module, "listen", lambda host, port: socket.socket())
    monkeypatch.setattr(app_module, "run", lambda app, sock: None)
    run = preset_run if preset else run_dir
    app_module.serve(str(run), host="127.0.0.1", port=8123, device="cpu")
    line = capsys.readouterr().out.splitlines()[0]
    if preset:
        assert "the robust preset: seed-mlp" in line
    else:
        assert "from a config of your own (no preset)" in line
    app = app_module.create_app(Predictor.load(run, device="cpu"), host="127.0.0.1")
    with TestClient(app, base_url="http://127.0.0.1:8123") as c:
        assert c.get("/model").json()["preset"] == preset


def start_server(run_dir: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`python -m digitlab serve RUN_DIR --port P` on loopback; (process, base URL) once
    /healthz answers, within 60 s."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitlab", "serve", str(run_dir), "--port", str(port),
         "--device", "cpu", *extra],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n"
                                 f"{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    stop_process(proc)
    raise AssertionError(f"the server did not answer within 60 s:\n{log.read_text()}")


def test_real_server_on_loopback(run_dir, tmp_path):
    log = tmp_path / "serve.log"
    proc, base = start_server(run_dir, log)
    try:
        response = httpx.post(f"{base}/predict", timeout=30,
                              files={"file": ("one.png", drawn_one(), "image/png")})
        assert response.status_code == 200
        assert_prediction(response.json())
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and 'id="pad"' in page.text
        bad = httpx.post(f"{base}/predict", timeout=10,
                         files={"file": ("x.png", b"nope", "image/png")})
        assert bad.status_code == 400
        # what a browser sends from the page, from another site, and after DNS rebinding
        port = base.rsplit(":", 1)[1]
        one = {"file": ("one.png", drawn_one(), "image/png")}
        assert httpx.post(f"{base}/predict", timeout=30, files=one,
                          headers={"origin": base}).status_code == 200
        assert httpx.post(f"{base}/predict", timeout=10, files=one,
                          headers={"origin": "http://evil.example"}).status_code == 403
        rebound = httpx.get(f"{base}/model", timeout=10,
                            headers={"host": f"evil.example:{port}"})
        assert rebound.status_code == 421 and "detail" in rebound.json()
    finally:
        stop_process(proc)
    first = log.read_text(errors="replace").splitlines()[0]
    assert "127.0.0.1" in first and "http://127.0.0.1:" in first
    assert "warning" not in first.lower()
