"""/predict and /read in the OpenAPI schema (GET /openapi.json): their answers, request bodies
and refusals. /predict's answer carries the class three ways, for a bilingual model (20
classes: "0".."9", then "০".."৯") as much as for MNIST's ten; /read's gives each digit by the
run's own class name."""

from __future__ import annotations

from pydantic import BaseModel, Field

from digitlab.inference.preprocess import FRAME
from digitlab.scripts import digit_value


def class_value(name: str, index: int) -> int:
    """The `label` of class `index` named `name`: a digit's value in any script ("7" and "৭"
    are both 7, as in `digitlab predict`), else the index (Fashion-MNIST's "Sneaker" is 7)."""
    value = digit_value(name)
    return index if value is None else value


class Prediction(BaseModel):
    label: int = Field(description=(
        "the digit's value, whatever its script: 7 for both '7' and the Bengali '৭', so in a "
        "bilingual (20-class) model two classes share each label; for classes that are not "
        "digits (e.g. Fashion-MNIST), the class index"))
    index: int = Field(description=(
        "the class's index in the model's output (and in `probabilities`): tells '7' (7) from "
        "'৭' (17) in the bilingual model"))
    class_name: str = Field(description="the class's name in the run, e.g. '7', '৭', 'Sneaker'")
    text: str = Field(description="the answer as the page shows it: the class name, e.g. '৭'")
    confidence: float
    sure: bool = Field(description="confidence >= min_confidence")
    min_confidence: float
    probabilities: list[float] = Field(description="one per class, in the model's class order")
    preprocessed: list[list[int]] = Field(description="the 28x28 the model saw, 0..255")


class DigitRead(BaseModel):
    label: str = Field(description="the digit as the run names its class: '7', or '৭' in a "
                                   "Bengali run")
    probability: float
    box: list[int] = Field(min_length=4, max_length=4, description=(
        "x0, y0, x1, y1: where the digit is, in the upload's pixels (x1 and y1 exclusive)"))


class NumberReading(BaseModel):
    text: str = Field(description="the digits read, left to right: '4721', or '৪৭২১'")
    confidence: float = Field(description="the product of the digits' probabilities")
    method: str = Field(description=(
        "'segment': the line cut into digits, each read by a single-digit run; 'ctc': the "
        "whole line read by a run trained with --task read"))
    digits: list[DigitRead] = Field(description="one per digit, left to right")
    sure: bool = Field(description="confidence >= min_confidence")
    min_confidence: float


UPLOAD = {"type": "string", "format": "binary", "description": "an image: PNG, JPEG, ..."}

PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": UPLOAD}}},
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

PREDICT_RESPONSES = {
    400: {"description": "not a usable image, or no digit found"},
    403: {"description": "a POST from another origin"},
    413: {"description": "body over 2 MB (JSON: over 64 kB)"},
    415: {"description": "unsupported content type"},
    421: {"description": "bound to loopback, and the Host header names another machine"},
    422: {"description": "malformed pixels, JSON or form"},
    503: {"description": "the model's output is not finite"},
}

READ_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": {
                **UPLOAD, "description": "a photo, scan or drawing of one line of 1 to 20 "
                                        "digits: PNG, JPEG, ..."}}}},
        "image/*": {"schema": UPLOAD},
    },
}

READ_RESPONSES = {
    400: {"description": "not a usable image, too large a one, or no digits found"},
    403: PREDICT_RESPONSES[403],
    413: {"description": "body over 2 MB"},
    415: PREDICT_RESPONSES[415],
    421: PREDICT_RESPONSES[421],
    422: {"description": "a malformed form"},
    503: PREDICT_RESPONSES[503],
}
