"""`digitlab serve`: a local page to draw a digit, and a small JSON API around a Predictor.

    GET  /          the drawing page (static/index.html; every asset is served from here)
    POST /predict   multipart field `file` (an image), or JSON {"pixels": 28x28 numbers}
    GET  /model     what is loaded: model, dataset, test accuracy, config summary
    GET  /healthz   {"status": "ok"}
    GET  /docs      the OpenAPI page (FastAPI's default; it alone loads Swagger UI from a CDN)

Uploads go through the same preprocessing as `digitlab predict` (crop, 20x20 box, centre of
mass), so a canvas, a scan or a photo all arrive at the model in MNIST's form. Bodies over
2 MB are refused with 413 before they are read in full; anything that is not a usable image
is a 4xx with a JSON {"detail": "..."}.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from digitlab.i18n import _
from digitlab.inference.predictor import Predictor
from digitlab.inference.preprocess import FRAME, ImageError, preprocess

MAX_BODY = 2 * 1024 * 1024  # bytes; a drawing is a few kB, a phone photo rarely more than this
STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("digitlab.serve")

# The page and its assets come from this server only; /docs is left alone (it needs a CDN).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Prediction(BaseModel):
    label: int
    class_name: str
    confidence: float
    probabilities: list[float]
    preprocessed: list[list[int]]


class PayloadTooLarge(Exception):
    pass


PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "string", "format": "binary",
                                               "description": "an image: PNG, JPEG, ..."}}}},
        "application/json": {
            "schema": {"type": "object", "required": ["pixels"],
                       "properties": {"pixels": {
                           "type": "array", "minItems": FRAME, "maxItems": FRAME,
                           "items": {"type": "array", "minItems": FRAME, "maxItems": FRAME,
                                     "items": {"type": "number"}},
                           "description": "28x28, white ink on black (MNIST polarity); "
                                          "0..255, or 0..1 when no value exceeds 1; used as "
                                          "given, without re-centring"}}}},
    },
}


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, reading at most limit + 1 bytes; PayloadTooLarge beyond limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge
        except ValueError:
            raise HTTPException(400, _("invalid Content-Length header")) from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def replay(request: Request, body: bytes) -> Request:
    """A copy of the request whose body stream yields `body` (already read, size-checked)."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def pixels_array(payload) -> np.ndarray:
    """JSON {"pixels": 28x28 numbers} -> uint8 [28, 28]; HTTPException(422) when malformed."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise HTTPException(422, _('send JSON {{"pixels": [[...28 numbers...], ... 28 rows]}}')
                            .format())
    rows = payload["pixels"]
    shape_error = HTTPException(422, _("pixels must be {rows} rows of {columns} numbers").format(
        rows=FRAME, columns=FRAME))
    if not isinstance(rows, list) or len(rows) != FRAME:
        raise shape_error
    values = []
    for row in rows:
        if not isinstance(row, list) or len(row) != FRAME:
            raise shape_error
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise shape_error
            if not math.isfinite(v):
                raise HTTPException(422, _("pixels must be finite numbers"))
            values.append(float(v))
    array = np.asarray(values, dtype=np.float64).reshape(FRAME, FRAME)
    if array.min() < 0 or array.max() > 255:
        raise HTTPException(422, _("pixels must lie in 0..255 (or 0..1)"))
    if array.max() <= 1.0:  # floats in [0, 1]
        array = array * 255.0
    digit = array.round().astype(np.uint8)
    if int((digit > 76).sum()) < 4:
        raise HTTPException(400, _("no digit found (the pixels are blank)"))
    return digit


async def upload_bytes(request: Request, body: bytes, content_type: str) -> bytes:
    if content_type == "multipart/form-data":
        form = await replay(request, body).form(max_files=1, max_fields=10)
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise HTTPException(422, _("send the image as multipart form field 'file'"))
            return await item.read()
        finally:
            await form.close()
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return body  # a raw image body, e.g. curl --data-binary @digit.png
    raise HTTPException(415, _("send multipart/form-data with a 'file' field, or JSON "
                               '{{"pixels": ...}}').format())


def create_app(predictor: Predictor) -> FastAPI:
    app = FastAPI(title="digitlab", summary="Draw a digit; a trained model reads it.",
                  version="1")
    app.state.predictor = predictor

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(PayloadTooLarge)
    async def too_large(request: Request, exc: PayloadTooLarge):
        return JSONResponse({"detail": _("upload larger than {limit} MB").format(
            limit=MAX_BODY // (1024 * 1024))}, status_code=413)

    def answer(digit: np.ndarray) -> dict:
        probs = predictor.probabilities(digit[None])[0]
        index = int(probs.argmax())
        name = predictor.classes[index]
        return {"label": int(name) if name.isdigit() else index, "class_name": name,
                "confidence": float(probs[index]),
                "probabilities": [float(p) for p in probs],
                "preprocessed": digit.astype(int).tolist()}

    def from_image(data: bytes) -> dict:
        if not data:
            raise ImageError(_("the upload is empty"))
        try:
            digit = preprocess(data)
        except ImageError:
            raise
        except Exception as e:  # the bytes are the client's: any decoder failure is theirs
            log.warning("preprocessing failed", exc_info=True)
            raise ImageError(_("could not read the image ({error_type})").format(
                error_type=type(e).__name__)) from None
        return answer(digit)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict:
        return predictor.describe()

    @app.post("/predict", response_model=Prediction, openapi_extra={"requestBody": PREDICT_BODY},
              responses={400: {"description": "not a usable image, or no digit found"},
                         413: {"description": "body over 2 MB"},
                         415: {"description": "unsupported content type"},
                         422: {"description": "malformed pixels or form"}})
    async def predict(request: Request):
        """Classify an uploaded image (preprocessed like `digitlab predict`) or 28x28 pixels."""
        body = await read_body(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise HTTPException(422, "the body is not valid JSON") from None
            return await run_in_threadpool(answer, pixels_array(payload))
        data = await upload_bytes(request, body, content_type)
        return await run_in_threadpool(from_image, data)

    class Static(StaticFiles):
        async def get_response(self, path, scope):
            response = await super().get_response(path, scope)
            response.headers.update(PAGE_HEADERS)
            return response

    app.mount("/static", Static(directory=STATIC), name="static")
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(source: str, host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> None:
    import uvicorn

    predictor = Predictor.load(source, device=device)
    app = create_app(predictor)
    info = predictor.describe()
    accuracy = info.get("test_accuracy")
    if accuracy is not None:
        what = _("{model} ({dataset}, test accuracy {accuracy:.1f}%)").format(
            model=info["model"], dataset=info.get("dataset"), accuracy=100 * accuracy)
    else:
        what = f"{info['model']} ({info.get('dataset')})"
    shown = f"[{host}]" if ":" in host else host
    if is_loopback(host):
        scope = _("bound to {host} only (this machine); pass --host to listen elsewhere").format(
            host=host)
    else:
        scope = _("bound to {host}").format(host=host)
    print(_("digitlab: serving {model} at {url} - {scope}; Ctrl+C stops").format(
        model=what, url=f"http://{shown}:{port}/", scope=scope), flush=True)
    if not is_loopback(host):
        print(_("digitlab: warning: {host} is not a loopback address: anyone who can reach this "
                "machine can use the page and the API (there is no authentication)").format(
            host=host), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
