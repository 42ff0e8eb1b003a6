"""`digitlab predict RUN_DIR --kaggle-csv test.csv --out submission.csv`: a Kaggle "Digit
Recognizer" submission.

test.csv holds `pixel0,...,pixel783` per line, already in MNIST's form (28x28, white ink on
black), so the pixels go to the model as given, without the photo preprocessing. The
submission is `ImageId,Label`, ImageId counting the test lines from 1, written atomically; an
existing file is replaced only with `force` (--force), as `digitlab export` does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from digitlab.data.csvfile import read_digits_csv
from digitlab.errors import DigitlabError
from digitlab.i18n import _
from digitlab.inference.predictor import Predictor, as_label
from digitlab.io import atomic_write_text, check_destination

HEADER = "ImageId,Label"


def predict_labels(predictor: Predictor, images: torch.Tensor, batch_size: int) -> list:
    """The most likely class of each uint8 [28, 28] image, in batches (memory, not speed), as
    Kaggle wants it: the digit value (as_label: 7 for "7" and for "৭"), a name otherwise."""
    labels = []
    for start in range(0, len(images), batch_size):
        probs = predictor.probabilities(images[start:start + batch_size])
        if not bool(torch.isfinite(probs).all()):
            row = int((~torch.isfinite(probs)).any(dim=1).nonzero()[0, 0])
            raise DigitlabError(_("the model's output is not finite (NaN or Infinity) for "
                                  "ImageId {image_id}; its weights overflow: retrain with a "
                                  "lower learning rate").format(image_id=start + row + 1))
        labels += [as_label(predictor.classes[i]) for i in probs.argmax(dim=1).tolist()]
    return labels


def submission_text(labels: list) -> str:
    return "\n".join([HEADER, *(f"{image_id},{label}"
                                for image_id, label in enumerate(labels, start=1))]) + "\n"


def write_submission(predictor: Predictor, test_csv: str | Path, out: str | Path,
                     force: bool = False, batch_size: int = 1000) -> int:
    """Predict every line of Kaggle's test.csv and write the submission; returns the count."""
    out = Path(out)
    check_destination(out, force, "submission.csv")
    images, _labels = read_digits_csv(test_csv, labelled=False)
    labels = predict_labels(predictor, images, batch_size)
    check_destination(out, force, "submission.csv")  # again: predicting took a while
    atomic_write_text(out, submission_text(labels))
    return len(labels)


def submit(source: str | Path, test_csv: str | Path, out: str | Path, force: bool = False,
           device: str = "auto") -> int:
    """`predict --kaggle-csv`: load the run, write the submission; returns the count."""
    check_destination(Path(out), force, "submission.csv")  # before loading anything
    predictor = Predictor.load(source, device=device)
    return write_submission(predictor, test_csv, out, force,
                            batch_size=predictor.cfg.data.test_batch_size)
