"""`digitlab serve`: a local page to draw a digit or write a number, and a small JSON API
around a Predictor.

    GET  /          the drawing page, in the CLI's language (page.py fills the template
                    static/index.html; every asset is served from here)
    POST /predict   multipart field `file` (an image), or JSON {"pixels": 28x28 numbers}
    POST /read      multipart field `file`: a line of digits, read as `digitlab read` reads
                    it (inference.reader): {"text", "digits", "confidence", "method"}
    GET  /model     what is loaded: model, dataset, test accuracy, config summary, its task
                    and the methods /read reads with
    GET  /healthz   {"status": "ok"}
    GET  /openapi.json  the API's schema. There is no /docs page: FastAPI's loads Swagger UI
                    from a CDN, and everything here works without the internet.

Uploads go through the same preprocessing as `digitlab predict` (crop, 20x20 box, centre of
mass), so a canvas, a scan or a photo all arrive at the model in MNIST's form. Bodies over
2 MB (JSON: 64 kB, 8 levels of nesting) are refused with 413 or 422 before they are read in
full or parsed; anything that is not a usable image is a 4xx with a JSON {"detail": "..."}.
/read has the same bounds and, as reading a large photo takes a few hundred MB for a moment,
runs at most READ_THREADS reads at once. A run trained with `--task read` (a CTC number
reader) answers /read only: its /predict is a 400 that says so.
Requests pass `guard.RequestGuard` first: on loopback only a Host naming this machine is
answered (DNS rebinding), and a POST from another origin is refused.

Probabilities carry the run's temperature (training.calibration). An answer whose confidence
is below `min_confidence` (--min-confidence, default 0.6) has "sure": false, and the page
shows "not sure" beside its best guess: a scribble should not be read as a confident digit.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from digitlab.i18n import _
from digitlab.inference.predictor import Predictor, check_min_confidence
from digitlab.inference.preprocess import FRAME, ImageError, preprocess
from digitlab.inference.reader import Reader, is_read_run, resolve_method
from digitlab.io import finite_json
from digitlab.serve.guard import (
    MAX_JSON_BODY,
    PayloadTooLarge,
    RequestGuard,
    allowed_hosts,
    is_loopback,
    parse_json,
    read_body,
    upload_bytes,
)
from digitlab.serve.listen import listen, run
from digitlab.serve.page import STATIC, TEMPLATE, render
from digitlab.serve.schema import (
    PREDICT_BODY,
    PREDICT_RESPONSES,
    READ_BODY,
    READ_RESPONSES,
    NumberReading,
    Prediction,
    class_value,
)

# Calibrated, 0.6 means a guess right about 3 times in 5: below it the page says "not sure".
DEFAULT_MIN_CONFIDENCE = 0.6
READ_THREADS = 2  # /read's reads at once: one of a 40-Mpixel upload holds ~350 MB for a moment
log = logging.getLogger("digitlab.serve")

# The page and its assets come from this server only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


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
            values.append(pixel_value(v))
    array = np.asarray(values, dtype=np.float64).reshape(FRAME, FRAME)
    if array.min() < 0 or array.max() > 255:
        raise HTTPException(422, _("pixels must lie in 0..255 (or 0..1)"))
    if array.max() <= 1.0:  # floats in [0, 1]
        array = array * 255.0
    digit = array.round().astype(np.uint8)
    if int((digit > 76).sum()) < 4:
        raise HTTPException(400, _("no digit found (the pixels are blank)"))
    return digit


def pixel_value(number: int | float) -> float:
    try:
        value = float(number)
    except OverflowError:  # an integer beyond float's range, e.g. 10**400
        raise HTTPException(422, _("pixels must lie in 0..255 (or 0..1)")) from None
    if not math.isfinite(value):
        raise HTTPException(422, _("pixels must be finite numbers"))
    return value


def answer(predictor: Predictor, digit: np.ndarray,
           min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> dict:
    """uint8 [28, 28] -> the /predict answer; 503 if the model gives NaN (broken weights)."""
    seen, probs = (batch[0] for batch in predictor.read(digit[None]))
    if not bool(probs.isfinite().all()):
        raise HTTPException(503, _("the model's output is not finite: its weights are broken; "
                                   "serve another checkpoint"))
    index = int(probs.argmax())
    name = predictor.classes[index]
    confidence = float(probs[index])
    return {"label": class_value(name, index), "index": index, "class_name": name,
            "text": name, "confidence": confidence, "sure": confidence >= min_confidence,
            "min_confidence": min_confidence, "probabilities": [float(p) for p in probs],
            "preprocessed": seen.astype(int).tolist()}


def from_image(predictor: Predictor, data: bytes, min_confidence: float) -> dict:
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
    return answer(predictor, digit, min_confidence)


def read_answer(reader: Reader, data: bytes, min_confidence: float) -> dict:
    """An uploaded line of digits -> the /read answer: ImageError (a 400) for an image that is
    not one or holds no digits, 503 when the model's output is not finite."""
    if not data:
        raise ImageError(_("the upload is empty"))
    try:
        result = reader.read(data)
    except ImageError:
        raise
    except Exception as e:  # the bytes are the client's: any failure to read them is theirs
        log.warning("reading failed", exc_info=True)
        raise ImageError(_("could not read the image ({error_type})").format(
            error_type=type(e).__name__)) from None
    if not all(math.isfinite(v) for v in (result.confidence,
                                          *(d.probability for d in result.digits))):
        raise HTTPException(503, _("the model's output is not finite: its weights are broken; "
                                   "serve another checkpoint"))
    if not result.digits:
        raise ImageError(_("{name}: no digits found (the image looks blank)").format(
            name="<upload>"))
    return dict(result.as_json(), sure=result.confidence >= min_confidence,
                min_confidence=min_confidence)


async def image_error(request: Request, exc: ImageError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def too_large(request: Request, exc: PayloadTooLarge) -> JSONResponse:
    if exc.limit == MAX_JSON_BODY:
        detail = _("JSON body larger than {limit} kB").format(limit=exc.limit // 1024)
    else:
        detail = _("upload larger than {limit} MB").format(limit=exc.limit // (1024 * 1024))
    return JSONResponse({"detail": detail}, status_code=413)


class Static(StaticFiles):
    """static/, less the page's template: the page itself is GET /."""

    async def get_response(self, path, scope):
        if path == TEMPLATE.name:
            raise HTTPException(404)
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def create_app(predictor: Predictor, host: str = "127.0.0.1",
               min_confidence: float = DEFAULT_MIN_CONFIDENCE,
               digits: Predictor | None = None) -> FastAPI:
    """The app for `predictor`, served on the address `host`: on loopback, requests must name
    this machine in their Host header (see guard.RequestGuard). Answers below min_confidence,
    in (0, 1], are "sure": false. digits: a single-digit run beside a CTC `predictor`, that
    /read reads with (the combined method)."""
    check_min_confidence(min_confidence)
    method = resolve_method(predictor, "auto", digits)  # ctc for a read run; combined with digits
    app = FastAPI(title="digitlab", version="1", docs_url=None, redoc_url=None,  # /docs: a CDN
                  summary="Draw a digit or write a number; a trained model reads it.")
    app.state.predictor = predictor
    reader = Reader(predictor, method, digits=digits)
    read_run = is_read_run(predictor)
    limiter = CapacityLimiter(READ_THREADS)
    app.add_middleware(RequestGuard, hosts=allowed_hosts(host))
    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(PayloadTooLarge, too_large)
    page = render(predictor, method)  # in the language of the moment: --lang, $DIGITLAB_LANG

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/model")
    async def model() -> dict:
        return finite_json(dict(predictor.describe(), min_confidence=min_confidence,
                                task="read" if read_run else "classify",
                                read_methods=[reader.method]))

    @app.post("/predict", response_model=Prediction, openapi_extra={"requestBody": PREDICT_BODY},
              responses=PREDICT_RESPONSES)
    async def predict(request: Request):
        """Classify an uploaded image (preprocessed like `digitlab predict`) or 28x28 pixels."""
        if read_run:
            raise HTTPException(400, _("this run reads whole numbers: POST /read"))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.endswith("+json"):
            payload = parse_json(await read_body(request, MAX_JSON_BODY))
            return await run_in_threadpool(answer, predictor, pixels_array(payload),
                                           min_confidence)
        refusal = _("send multipart/form-data with a 'file' field, or JSON "
                    '{{"pixels": ...}}').format()
        data = await upload_bytes(request, await read_body(request), content_type, refusal)
        return await run_in_threadpool(from_image, predictor, data, min_confidence)

    @app.post("/read", response_model=NumberReading, openapi_extra={"requestBody": READ_BODY},
              responses=READ_RESPONSES)
    async def read(request: Request):
        """Read the number in an image of one line of digits, as `digitlab read` does."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        refusal = _("send the image as multipart/form-data with a 'file' field, or as the body")
        data = await upload_bytes(request, await read_body(request), content_type, refusal)
        return await to_thread.run_sync(read_answer, reader, data, min_confidence,
                                        limiter=limiter)

    app.mount("/static", Static(directory=STATIC), name="static")
    return app


def serve(source: str, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          min_confidence: float = DEFAULT_MIN_CONFIDENCE, digits: str | None = None) -> None:
    check_min_confidence(min_confidence)  # before the model loads: a usage error is instant
    sock = listen(host, port)  # so is a port in use; and the port is ours from here on
    try:
        partner = Predictor.load(digits, device=device) if digits is not None else None
        app = create_app(Predictor.load(source, device=device), host=host,
                         min_confidence=min_confidence, digits=partner)
        announce(app.state.predictor, host, port)
        run(app, sock)
    finally:
        sock.close()


def announce(predictor: Predictor, host: str, port: int) -> None:
    """The "serving" line: which model, at which URL, who can reach it."""
    info = predictor.describe()
    accuracy = info.get("test_accuracy")
    if accuracy is not None:
        what = _("{model} ({dataset}, test accuracy {accuracy:.1f}%)").format(
            model=info["model"], dataset=info.get("dataset"), accuracy=100 * accuracy)
    else:
        what = f"{info['model']} ({info.get('dataset')})"
    if info["preset"]:
        what = _("the {preset} preset: {model}").format(preset=info["preset"], model=what)
    else:
        what = _("{model}, from a config of your own (no preset)").format(model=what)
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
