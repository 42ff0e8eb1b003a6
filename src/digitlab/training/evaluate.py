"""Evaluation: the tutorial's test loop done right (eval mode, no_grad, one sync at the end)."""

from __future__ import annotations

import torch

from digitlab.i18n import _
from digitlab.models.shifted import with_test_shifts


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """[C, C] counts, rows the true class, columns the predicted one, on the labels' device."""
    pairs = labels * num_classes + predicted
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes,
                                                                           num_classes)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, loss_fn, num_classes: int) -> dict:
    """Mean loss over samples, accuracy (0..1), and the confusion matrix (true x predicted)."""
    was_training = model.training
    model.eval()
    total_loss, confusion = None, None
    for images, labels in loader:
        logits = model(images)
        batch_loss = loss_fn(logits, labels).float() * len(labels)  # batch mean -> sum
        counts = confusion_matrix(labels, logits.argmax(dim=1), num_classes)
        total_loss = batch_loss if total_loss is None else total_loss + batch_loss
        confusion = counts if confusion is None else confusion + counts
    model.train(was_training)
    confusion = confusion.cpu()  # the one host sync
    total = int(confusion.sum())
    return {
        "loss": float(total_loss) / total,
        "accuracy": float(confusion.diag().sum()) / total,
        "num_samples": total,
        "confusion": confusion,
    }


def evaluate_splits(model: torch.nn.Module, loaders: dict, loss_fn, num_classes: int) -> dict:
    """{"val_loss": ..., "val_accuracy": ..., "test_loss": ..., ...} for each named loader."""
    record = {}
    for name, loader in loaders.items():
        result = evaluate(model, loader, loss_fn, num_classes)
        record[f"{name}_loss"], record[f"{name}_accuracy"] = result["loss"], result["accuracy"]
    return record



def final_test(model: torch.nn.Module, loader, loss_fn, num_classes: int, shifts: int,
               console) -> dict:
    """The test the run reports, read as predict reads (data.test_shifts), printed. With
    shifts, "read_once" holds the plain model's accuracy too, and a line compares the two."""
    test = evaluate(with_test_shifts(model, shifts), loader, loss_fn, num_classes)
    console.print(_("Test Accuracy: {accuracy:.2f}%").format(accuracy=100 * test["accuracy"]))
    if shifts:
        test["read_once"] = evaluate(model, loader, loss_fn, num_classes)["accuracy"]
        console.print(_("data.test_shifts = {shifts}: each test digit read at 5 positions; "
                        "read once, {accuracy:.2f}%").format(shifts=shifts,
                                                               accuracy=100 * test["read_once"]))
    return test
