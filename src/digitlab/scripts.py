"""The script (writing system) a class name is written in, and the confusions between scripts.

A bilingual digit model (mnist+cmaterdb: "0".."9" then "০".."৯") has two classes per digit
value. `class_script` tells "7" (latin) from "৭" (bengali) by the Unicode names of its
characters; `digit_value` reads both as 7 (int() reads the decimal digits of any script). A
model can read the right digit in the wrong script: `script_report` counts that per script,
with the exact accuracy on each script's images and the confusions that cross scripts.
"""

from __future__ import annotations

import unicodedata

import torch

from digitlab.i18n import N_

SCRIPTS = {"latin": N_("Latin"), "bengali": N_("Bengali")}  # key -> name, in report order
# The start of the Unicode name of each script's letters and digits: "DIGIT SEVEN" is 7,
# "BENGALI DIGIT SEVEN" is ৭; signs and punctuation ("-", "/") belong to no script.
PREFIXES = (("BENGALI ", "bengali"), ("DIGIT ", "latin"), ("LATIN ", "latin"))


def char_script(char: str) -> str | None:
    """"latin" or "bengali" for one character; None for a space, a sign or another script."""
    name = unicodedata.name(char, "")
    return next((script for prefix, script in PREFIXES if name.startswith(prefix)), None)


def class_script(name: str) -> str | None:
    """The script of a class name ("7" and "Sneaker" latin, "৭" bengali); None when it has
    no letter or digit of a known script, or mixes two."""
    found = {char_script(char) for char in name} - {None}
    return found.pop() if len(found) == 1 else None


def has_bengali(text: str) -> bool:
    return any(char_script(char) == "bengali" for char in text)


def digit_value(name: str) -> int | None:
    """The number a class name writes in decimal digits of any one script (7 for "7" and for
    "৭"); None for other names ("Sneaker", "²")."""
    return int(name) if name.isdecimal() else None


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None  # None (null in JSON): no images of that script


def script_report(confusion: torch.Tensor | list, classes: tuple[str, ...]) -> dict | None:
    """For classes in two or more scripts, per script: its classes and test images, the exact
    accuracy on those images (over all classes), and the share read as the right digit value in
    another script; then every confusion between scripts (true, predicted, count), most
    frequent first. None for classes in a single script. `confusion`: rows true, columns
    predicted."""
    scripts = [class_script(name) for name in classes]
    present = [script for script in SCRIPTS if script in scripts]
    if len(present) < 2:
        return None
    values = [digit_value(name) for name in classes]
    counts = torch.as_tensor(confusion).tolist()
    per_script = {}
    for script in present:
        rows = [i for i, s in enumerate(scripts) if s == script]
        images = sum(sum(counts[i]) for i in rows)
        value_right = sum(counts[i][j] for i in rows for j in range(len(classes))
                          if scripts[j] not in (None, script)
                          and values[i] is not None and values[j] == values[i])
        per_script[script] = {"classes": len(rows), "images": images,
                              "accuracy": _rate(sum(counts[i][i] for i in rows), images),
                              "value_right_script_wrong": _rate(value_right, images)}
    crossed = [{"true": classes[i], "predicted": classes[j], "count": counts[i][j]}
               for i in range(len(classes)) for j in range(len(classes))
               if counts[i][j] and None not in (scripts[i], scripts[j])
               and scripts[i] != scripts[j]]
    crossed.sort(key=lambda pair: -pair["count"])  # stable: ties stay in class order
    return {"per_script": per_script, "confusions": crossed}


__all__ = ["SCRIPTS", "char_script", "class_script", "digit_value", "has_bengali",
           "script_report"]
