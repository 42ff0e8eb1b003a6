"""/predict in the OpenAPI schema (GET /openapi.json): its answer, its two request bodies and
its refusals. The answer carries the class three ways, for a bilingual model (20 classes:
"0".."9", then "০".."৯") as much as for MNIST's ten."""

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

PREDICT_RESPONSES = {
    400: {"description": "not a usable image, or no digit found"},
    403: {"description": "a POST from another origin"},
    413: {"description": "body over 2 MB (JSON: over 64 kB)"},
    415: {"description": "unsupported content type"},
    421: {"description": "bound to loopback, and the Host header names another machine"},
    422: {"description": "malformed pixels, JSON or form"},
    503: {"description": "the model's output is not finite"},
}
