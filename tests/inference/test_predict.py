"""`digitlab predict` and the Predictor: output formats, folders, bad files and checkpoints,
plus a fuzz of the preprocessing with hypothesis (never anything but a digit or ImageError)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from digitlab.cli import main
from digitlab.errors import CheckpointError
from digitlab.inference.predictor import Predictor
from digitlab.inference.preprocess import ImageError, preprocess


@pytest.fixture(scope="module")
def run_dir(digits_run) -> Path:
    return digits_run


# ---------------------------------------------------------------- test images


def photo(shape: str, seed: int = 0, size=(320, 260)) -> Image.Image:
    """Dark strokes on light, unevenly lit, noisy paper, off-centre."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    gray = np.clip(230 - 60 * xx / w - 40 * yy / h + rng.normal(0, 4, (h, w)), 0, 255)
    image = Image.fromarray(gray.astype(np.uint8), "L").convert("RGB")
    draw = ImageDraw.Draw(image)
    ink = (25, 25, 35)
    if shape == "1":
        draw.line([(90, 40), (90, 220)], fill=ink, width=9)
    elif shape == "0":
        draw.ellipse((60, 40, 170, 220), outline=ink, width=9)
    elif shape == "7":
        draw.line([(60, 40), (170, 40)], fill=ink, width=9)
        draw.line([(170, 40), (100, 220)], fill=ink, width=9)
    return image


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return [save(photo(s, i), tmp_path / "in" / f"{s}.png") for i, s in enumerate("107")]


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


# ---------------------------------------------------------------- output formats


def test_text_lines(run_dir, images, capsys):
    assert main(["predict", str(run_dir), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(images)
    for line, path in zip(lines, images, strict=True):
        file, label, confidence = line.split("\t")
        assert file == str(path)
        assert label in "0123456789" and len(label) == 1
        assert 0.0 < float(confidence) <= 1.0


def test_json(run_dir, images, capsys):
    assert main(["predict", str(run_dir), "--json", *map(str, images)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == [str(p) for p in images]
    for r in results:
        assert {"file", "label", "confidence", "probabilities"} <= set(r)
        assert isinstance(r["label"], int) and 0 <= r["label"] <= 9
        assert len(r["probabilities"]) == 10
        assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-4)
        assert r["confidence"] == pytest.approx(max(r["probabilities"]), abs=1e-5)
        assert r["probabilities"].index(max(r["probabilities"])) == r["label"]


def test_top_k(run_dir, images, capsys):
    assert main(["predict", str(run_dir), "--top-k", "3", *map(str, images)]) == 0
    for line in capsys.readouterr().out.strip().splitlines():
        file, label, confidence, top = line.split("\t")
        pairs = [item.split(":") for item in top.split()]
        assert len(pairs) == 3
        assert pairs[0][0] == label
        probs = [float(p) for _, p in pairs]
        assert probs == sorted(probs, reverse=True)
    assert main(["predict", str(run_dir), "--top-k", "3", "--json", str(images[0])]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert [t["label"] for t in result["top_k"]][0] == result["label"]  # ints, like "label"
    assert len(result["top_k"]) == 3


def test_top_k_zero_is_a_usage_error(run_dir, images, capsys):
    assert main(["predict", str(run_dir), "--top-k", "0", str(images[0])]) == 2
    assert "--top-k" in capsys.readouterr().err


def test_show_writes_one_png_per_input(run_dir, images, tmp_path, capsys):
    out = tmp_path / "shown"
    assert main(["predict", str(run_dir), "--show", str(out), *map(str, images)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == len(images)
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 100


def test_folder_is_searched_recursively(run_dir, tmp_path, capsys):
    root = tmp_path / "folder"
    expected = [save(photo("1", 1), root / "a.png"),
                save(photo("0", 2), root / "sub" / "b.jpg"),
                save(photo("7", 3), root / "sub" / "deeper" / "c.PNG")]
    (root / "notes.txt").write_text("not an image")
    assert main(["predict", str(run_dir), str(root)]) == 0
    files = [line.split("\t")[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert sorted(files) == sorted(str(p) for p in expected)


def test_empty_folder_is_a_usage_error(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run_dir), str(tmp_path / "empty")]) == 2
    assert "no image files" in capsys.readouterr().err


def test_unreadable_file_is_reported_and_skipped(run_dir, images, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    blank = save(Image.new("RGB", (100, 100), "white"), tmp_path / "blank.png")
    missing = tmp_path / "missing.png"
    argv = [str(images[0]), str(broken), str(blank), str(missing), str(images[1])]
    assert main(["predict", str(run_dir), *argv]) == 1
    captured = capsys.readouterr()
    printed = [line.split("\t")[0] for line in captured.out.strip().splitlines()]
    assert printed == [str(images[0]), str(images[1])]
    for bad in (broken, blank, missing):
        assert str(bad) in captured.err
    assert "no digit" in captured.err
    assert "3 of 5" in captured.err


def test_checkpoint_file_works_like_the_run(run_dir, images, capsys):
    assert main(["predict", str(run_dir), "--json", str(images[0])]) == 0
    from_run = json.loads(capsys.readouterr().out)
    checkpoint = Predictor.load(run_dir).path
    assert main(["predict", str(checkpoint), "--json", str(images[0])]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file == from_run


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_checkpoint_exits_2_naming_it(run_dir, images, tmp_path, capsys, damage):
    data = (run_dir / "checkpoints" / "last.safetensors").read_bytes()
    bad = tmp_path / f"{damage}.safetensors"
    bad.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00junk" * 100,
                     "empty": b""}[damage])
    assert main(["predict", str(bad), str(images[0])]) == 2
    captured = capsys.readouterr()
    assert str(bad) in captured.err and captured.out == ""
    with pytest.raises(CheckpointError):
        Predictor.load(bad)


def test_missing_run_dir_exits_2(tmp_path, images, capsys):
    assert main(["predict", str(tmp_path / "no-such-run"), str(images[0])]) == 2
    assert "no-such-run" in capsys.readouterr().err


def test_wrong_architecture_is_a_clear_error(run_dir, images, tmp_path, capsys):
    from digitlab.config import Config, apply_overrides
    from digitlab.models import build_model
    from digitlab.training.checkpoint import load_checkpoint, save_checkpoint

    _, meta = load_checkpoint(Predictor.load(run_dir).path)  # says model.name = seed-mlp
    meta = {k: v for k, v in meta.items() if k not in ("format", "optimizer")}
    cnn = build_model(apply_overrides(Config(), {"model.name": "cnn"}).model, 10)
    wrong = tmp_path / "cnn-weights-mlp-config.safetensors"
    save_checkpoint(wrong, cnn, None, meta)
    with pytest.raises(CheckpointError, match="architecture"):
        Predictor.load(wrong)
    assert main(["predict", str(wrong), str(images[0])]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "architecture" in err


# ---------------------------------------------------------------- the Predictor itself


def test_predictor_api(run_dir):
    predictor = Predictor.load(run_dir, device="cpu")
    assert predictor.classes == tuple("0123456789")
    digit, probs = predictor.predict_file(encoded(photo("1"), "PNG"))
    assert digit.dtype == np.uint8 and digit.shape == (28, 28)
    assert probs.shape == (10,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    batch = predictor.probabilities(np.stack([digit, digit, np.zeros_like(digit)]))
    assert batch.shape == (3, 10)
    assert np.allclose(batch[0].numpy(), probs.numpy(), atol=1e-6)
    info = predictor.describe()
    assert info["model"] == "seed-mlp" and info["dataset"] == "digits"
    assert 0.85 <= info["test_accuracy"] <= 1.0


def rendered_digit(digit: int, size: int, stroke: int) -> bytes:
    image = Image.new("RGB", (400, 320), (228, 226, 218))
    font = ImageFont.load_default(size=size)
    ImageDraw.Draw(image).text((80, 20), str(digit), font=font, fill=(25, 25, 35),
                               stroke_width=stroke, stroke_fill=(25, 25, 35))
    return encoded(image, "JPEG")


def test_reads_rendered_digits_better_than_chance(run_dir):
    """Printed digits (not handwriting, and the model saw only sklearn's 8x8 digits): the
    3-epoch MLP gets 6-7 of 10 per style; chance is 1. A floor for the whole pipeline."""
    try:
        ImageFont.load_default(size=150)
    except (TypeError, OSError, ImportError):
        pytest.skip("this Pillow cannot scale its default font (needs FreeType)")
    predictor = Predictor.load(run_dir, device="cpu")
    for size, stroke in [(180, 0), (150, 5)]:
        guesses = [int(predictor.predict_file(rendered_digit(d, size, stroke))[1].argmax())
                   for d in range(10)]
        hits = sum(g == d for d, g in enumerate(guesses))
        assert hits >= 5, f"font size {size}, stroke {stroke}: guessed {guesses}"


# ---------------------------------------------------------------- fuzz: preprocess


def image_bytes() -> st.SearchStrategy[bytes]:
    """Small real images in many modes and formats, possibly truncated."""
    modes = st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16", "F"])
    formats = st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])

    @st.composite
    def build(draw):
        mode, fmt = draw(modes), draw(formats)
        w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
        seed = draw(st.integers(0, 2**32 - 1))
        pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGBA")
        if draw(st.booleans()):  # a stroke on a flat background instead of noise
            image = Image.new("RGBA", (w, h), (240, 240, 240, 255))
            ImageDraw.Draw(image).line([(0, 0), (w - 1, h - 1)], fill=(0, 0, 0, 255))
        try:
            data = encoded(image.convert(mode), fmt)
        except (OSError, ValueError, KeyError):  # this format cannot store this mode
            data = encoded(image.convert("RGB"), "PNG")
        cut = draw(st.sampled_from([None, 0.3, 0.7, 0.95]))
        return data if cut is None else data[: int(len(data) * cut)]

    return build()


PHOTOS = {fmt: encoded(photo("7", 9), fmt) for fmt in ("PNG", "JPEG")}
FUZZ_EXAMPLES = int(os.environ.get("DIGITLAB_FUZZ_EXAMPLES", "60"))
FUZZ_INPUT = st.one_of(
    st.binary(max_size=2048),
    st.just(b""),
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF"])
    .flatmap(lambda magic: st.binary(max_size=512).map(lambda tail: magic + tail)),
    image_bytes(),
    st.sampled_from(["PNG", "JPEG"]).flatmap(  # a real photo cut anywhere
        lambda fmt: st.integers(0, len(PHOTOS[fmt])).map(lambda n: PHOTOS[fmt][:n])),
)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FUZZ_INPUT)
def test_fuzz_preprocess_gives_a_digit_or_image_error(data):
    try:
        digit = preprocess(data)
    except ImageError:
        return
    assert digit.dtype == np.uint8 and digit.shape == (28, 28)


@pytest.mark.parametrize("mode,fmt", [(m, f) for f in ("PNG", "JPEG", "GIF", "BMP")
                                      for m in ("L", "RGB", "RGBA", "1", "P")
                                      if not (f == "JPEG" and m in ("RGBA", "P"))])
@pytest.mark.parametrize("color", [0, 255])
def test_one_pixel_images(mode, fmt, color):
    data = encoded(Image.new("L", (1, 1), color).convert(mode), fmt)
    with pytest.raises(ImageError, match="no digit"):
        preprocess(data)
