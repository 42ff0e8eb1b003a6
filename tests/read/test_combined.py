"""`digitlab read --digits RUN_DIR`: a CTC run and a single-digit run read a line together
(inference.combined)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.errors import UsageError
from digitlab.inference.combined import DIGIT_FLOOR, SEG_WEIGHT, digit_shares, scores, tilings
from digitlab.inference.reader import Reader, resolve_method
from digitlab.training.sequence import log_likelihoods
from helpers import digit_line


def fake_run(task: str, classes: str = "0123456789"):
    """What resolve_method looks at: the run's task and its class names."""
    return SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(task=task)),
                           classes=tuple(classes))


# ---------------------------------------------------------------- the parts of the method


def test_tilings_find_the_best_run_of_parts_for_each_count_and_for_a_given_text():
    # boundaries 0..3: three narrow parts, two pairs and the whole
    ranges = [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3), (0, 3)]
    any_digit = np.array([-0.1, -0.2, -0.3, -0.5, -2.0, -4.0])
    found = tilings(ranges, any_digit, 3)
    assert found[3] == pytest.approx((-0.6, [0, 1, 2]))
    assert found[2][1] == [3, 2] and found[2][0] == pytest.approx(-0.8)  # not 0+4: -2.1
    assert found[1] == (-4.0, [5]) and set(found) == {1, 2, 3}
    per_class = np.full((6, 10), -9.0)
    per_class[[0, 1, 2], [1, 4, 7]] = -0.1  # the narrow parts read 1, 4, 7
    per_class[3, 4] = -0.3  # the first pair reads 4
    assert tilings(ranges, per_class, 3, (1, 4, 7))[3][1] == [0, 1, 2]
    assert tilings(ranges, per_class, 3, (4, 7))[2] == pytest.approx((-0.4, [3, 2]))
    assert tilings(ranges, per_class, 3, (1, 4, 7, 7)) == {}  # 4 digits in 3 parts: none


def test_the_cut_decides_between_close_readings_when_the_counts_agree():
    texts = [(1, 7), (7, 7), (1, 7, 7)]
    ctc = np.array([-0.9, -0.6, -3.0])  # the sequence model leans to "77" ...
    cut = np.array([-0.1, -2.5, -5.0])  # ... the single-digit model is sure of "17"
    total, with_cut = scores(texts, ctc, cut)
    assert with_cut and int(total.argmax()) == 0
    assert total == pytest.approx(ctc + SEG_WEIGHT * cut)


def test_the_sequence_model_stands_when_the_counts_disagree():
    texts = [(5, 2, 9), (5, 9)]  # touching digits the cuts could not part: "529" read as "59"
    ctc = np.array([-0.2, -4.0])
    cut = np.array([-2 * DIGIT_FLOOR, -0.3])
    total, with_cut = scores(texts, ctc, cut)
    assert not with_cut and int(total.argmax()) == 0 and total is ctc
    # counts agree but no proposal is possible for both models: the sequence model again
    total, with_cut = scores([(1, 2), (3, 4)], np.array([-0.1, -math.inf]),
                             np.array([-math.inf, -0.1]))
    assert not with_cut and int(total.argmax()) == 0


def test_each_digit_gets_the_share_of_the_proposals_that_read_it_there():
    texts = [(1, 7), (7, 7), (1, 1), (1, 7, 7)]
    total = np.log(np.array([0.6, 0.2, 0.1, 0.1]))
    shares = digit_shares(texts, total, 0)
    assert shares == pytest.approx([0.7, 0.8])  # "1" at 0: 17, 11; "7" at 1: 17, 77


def test_log_likelihoods_are_the_ctc_forward_sums():
    # two frames, classes {0, 1} and the blank: "0" is read by 0-0, 0-_ and _-0
    frames = np.log(np.array([[0.5, 0.2, 0.3], [0.4, 0.1, 0.5]]))
    ll = log_likelihoods(frames, [(0,), (0, 1), (1, 1)])
    assert ll[0] == pytest.approx(math.log(0.5 * 0.4 + 0.5 * 0.5 + 0.3 * 0.4))
    assert ll[1] == pytest.approx(math.log(0.5 * 0.1))
    assert ll[2] == -math.inf  # a repeat needs a blank between: three frames at least


# ---------------------------------------------------------------- choosing the method


def test_digits_makes_auto_combined_and_is_refused_where_it_cannot_help():
    ctc, digits = fake_run("read"), fake_run("classify")
    assert resolve_method(ctc, "auto", digits) == "combined"
    assert resolve_method(ctc, "combined", digits) == "combined"
    assert resolve_method(ctc, "auto") == "ctc"
    with pytest.raises(UsageError, match="--method combined needs a run trained with"):
        resolve_method(ctc, "combined")
    with pytest.raises(UsageError, match="--digits goes with a run trained with --task read"):
        resolve_method(digits, "auto", digits)
    with pytest.raises(UsageError, match="--digits needs a single-digit run"):
        resolve_method(ctc, "auto", ctc)
    with pytest.raises(UsageError, match="--digits is for --method combined"):
        resolve_method(ctc, "ctc", digits)
    with pytest.raises(UsageError, match="that run reads ০ ১ ২"):
        resolve_method(ctc, "auto", fake_run("classify", "০১২৩৪৫৬৭৮৯"))


def test_the_cli_refuses_a_bad_pair_with_exit_2(digits_run, tmp_path, capsys):
    digit_line(tmp_path / "a.png", [3, 1])
    assert main(["read", str(digits_run), str(tmp_path / "a.png"),
                 "--digits", str(digits_run)]) == 2
    err = capsys.readouterr().err
    assert "--digits goes with a run trained with --task read" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- end to end


def test_read_with_digits_reads_combined_with_boxes_and_shares(ctc_run, digits_run,
                                                               tmp_path, capsys):
    digit_line(tmp_path / "a.png", [3, 1, 4, 1, 5])
    assert main(["read", ctc_run, str(tmp_path / "a.png"), "--digits", str(digits_run),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["method"] == "combined" and len(result["text"]) == len(result["digits"]) > 0
    for digit in result["digits"]:
        x0, y0, x1, y1 = digit["box"]
        assert 0 <= x0 <= x1 <= 16 + 64 * 5 and 0 <= y0 <= y1 <= 80
        assert 0 < digit["probability"] <= 1 + 1e-9
    assert math.isclose(result["confidence"],
                        math.prod(d["probability"] for d in result["digits"]), rel_tol=1e-6)
    # the same reading through the Python API and evaluate --lines
    reader = Reader.load(ctc_run, "auto", "cpu", digits=digits_run)
    assert reader.method == "combined"
    assert reader.read(tmp_path / "a.png").text == result["text"]
    folder = tmp_path / "numbers"
    folder.mkdir()
    digit_line(folder / "n.png", [3, 1, 4, 1, 5])
    (folder / "labels.csv").write_text("file,text\nn.png,31415\n")
    run = tmp_path / "run"
    import shutil

    shutil.copytree(ctc_run, run)
    main(["evaluate", str(run), "--lines", str(folder), "--digits", str(digits_run)])
    capsys.readouterr()
    evaluation = json.loads((run / "evaluation-lines-numbers.json").read_text())
    assert evaluation["method"] == "combined"
    assert evaluation["digits_run"] == str(digits_run)


def test_serve_with_digits_reads_combined_and_says_so(ctc_run, digits_run, tmp_path):
    import warnings

    with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    from digitlab.inference.predictor import Predictor
    from digitlab.serve.app import create_app

    digit_line(tmp_path / "a.png", [2, 7, 1])
    app = create_app(Predictor.load(ctc_run, device="cpu"),
                     digits=Predictor.load(digits_run, device="cpu"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/model").json()["read_methods"] == ["combined"]
        assert '"method":"combined"' in c.get("/").text.replace(" ", "")
        response = c.post("/read", files={"file": ("a.png", (tmp_path / "a.png").read_bytes(),
                                                   "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Reader.load(ctc_run, "auto", "cpu", digits=digits_run).read(tmp_path / "a.png")
    assert body["method"] == "combined" and body["text"] == expected.text


def test_serve_refuses_a_bad_pair_and_lets_the_port_go(digits_run, monkeypatch):
    import socket

    from digitlab.serve import app as app_module

    opened = []

    def listen(host, port):
        opened.append(socket.socket())
        return opened[-1]

    monkeypatch.setattr(app_module, "listen", listen)
    monkeypatch.setattr(app_module, "run", lambda app, sock: pytest.fail("served a bad pair"))
    with pytest.raises(UsageError, match="--digits goes with a run trained with --task read"):
        app_module.serve(str(digits_run), device="cpu", digits=str(digits_run))
    assert opened and opened[0].fileno() == -1  # closed


def test_the_python_api_reads_numbers_as_the_cli_does(ctc_run, digits_run, tmp_path, capsys):
    from PIL import Image

    import digitlab as dl

    digit_line(tmp_path / "a.png", [2, 5, 8])
    assert main(["read", ctc_run, str(tmp_path / "a.png"), "--digits", str(digits_run),
                 "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    reader, single = dl.load_run(ctc_run, device="cpu"), dl.load_run(digits_run, device="cpu")
    assert reader.read(tmp_path / "a.png", digits=single) == expected
    assert reader.read([tmp_path], digits=single) == expected  # a folder
    image = Image.open(tmp_path / "a.png")
    (from_image,) = reader.read(image, digits=single)
    assert from_image == {k: v for k, v in expected[0].items() if k != "file"}
    assert reader.read(np.asarray(image), digits=single) == [from_image]
    assert reader.read(image)[0]["method"] == "ctc"
    assert single.read(image)[0]["method"] == "segment"
    with pytest.raises(UsageError, match="uint8 array"):
        reader.read(np.zeros((2, 20, 60), dtype=np.uint8))
    with pytest.raises(UsageError, match="--beam"):
        reader.read(image, digits=single, beam=4)
