"""`digitlab bench`: the parts run and report; bad parts are refused."""

import json

from digitlab.cli import main


def test_bench_seed_and_predict_json(capsys):
    code = main(["bench", "--dataset", "synthetic", "--epochs", "1", "--parts", "seed,predict",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tutorial"]["train_seconds"] > 0 and result["digitlab"]["train_seconds"] > 0
    assert result["speedup"] > 0
    assert 0 <= result["tutorial"]["test_accuracy"] <= 1
    assert result["predict"]["batch_images_per_second"] > 0
    assert result["predict"]["single_images_per_second"] > 0
    assert "cores" in result["machine"]


def test_bench_table(capsys):
    assert main(["bench", "--dataset", "synthetic", "--epochs", "1", "--parts", "predict"]) == 0
    assert "images/s" in capsys.readouterr().out


def test_bench_unknown_part(capsys):
    assert main(["bench", "--parts", "seed,speed"]) == 2
    assert "speed" in capsys.readouterr().err
