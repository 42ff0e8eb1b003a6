"""`digitlab bench --parts bangla`: its tables from a result, and the whole part end to end on
the shared files with the presets shrunk to a one-epoch toy (the real presets take minutes)."""

from __future__ import annotations

from pathlib import Path

from digitlab.cli import main
from digitlab.inference import bangla_bench


def made_result() -> dict:
    runs = [{"seed": s, "test_accuracy": a, "train_seconds": t}
            for s, a, t in ((0, 0.991, 40.0), (1, 0.993, 41.0), (2, 0.995, 42.0))]
    per_script = {"latin": {"classes": 10, "images": 10_000, "accuracy": 0.9931,
                            "value_right_script_wrong": 0.0012},
                  "bengali": {"classes": 10, "images": 1000, "accuracy": 0.987,
                              "value_right_script_wrong": None}}
    return {"runs": runs, "mean_accuracy": 0.993, "mean_seconds": 41.0,
            "photos": {"count": 1000, "tensors": 0.991, "photos": 0.984, "gap_pp": 0.7},
            "bilingual": {"train_seconds": 150.0, "test_accuracy": 0.99,
                          "latin_png": {"count": 2000, "tensors": 0.9885, "images": 0.9025},
                          "scripts": {"per_script": per_script, "confusions": [
                              {"true": "৭", "predicted": "9", "count": 3},
                              {"true": "0", "predicted": "০", "count": 2}]}}}


def rendered(table) -> str:
    from rich.console import Console

    console = Console(width=150, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_tables_show_every_seed_the_mean_the_photo_gap_and_the_scripts():
    runs, photos, bilingual = (rendered(t) for t in bangla_bench.tables(made_result()))
    for text in ("99.10%", "99.30%", "99.50%", "41.0 s", "mean"):
        assert text in runs
    assert "98.40%" in photos and "0.70 pp" in photos
    assert "99.31%" in bilingual and "0.12%" in bilingual and "10,000" in bilingual
    assert "৭->9 3" in bilingual and "0->০ 2" in bilingual
    assert "Bengali" in bilingual and " - " in bilingual  # no rate without images: a dash
    assert "PNG through predict" in bilingual and "90.25%" in bilingual and "98.85%" in bilingual


def test_the_part_trains_both_presets_and_measures_them(monkeypatch, cmater_dir, mnist_dir,
                                                       no_analysis):
    folder = cmater_dir
    from digitlab.training import bench

    trained = []

    def toy(name, seed, data_dir, out: Path) -> dict:
        trained.append((name, seed))
        code = main(["train", "--config", str(bench.preset_path(name)), "--data-dir", data_dir,
                     "--seed", str(seed), "--epochs", "1", "--set", "model.channels=[4,8]",
                     "--out", str(out)])
        assert code == 0
        import json

        return json.loads((out / "summary.json").read_text(encoding="utf-8"))

    monkeypatch.setattr(bench, "train_preset", toy)
    from rich.console import Console

    result = bangla_bench.run_bangla(str(folder.parent), Console(quiet=True), photos=40,
                                     latin_pngs=30)
    assert trained == [("bangla", 0), ("bangla", 1), ("bangla", 2), ("bilingual", 0)]
    assert len(result["runs"]) == 3 and 0 < result["mean_accuracy"] <= 1
    assert result["photos"]["count"] == 40 and 0 <= result["photos"]["photos"] <= 1
    per_script = result["bilingual"]["scripts"]["per_script"]
    assert per_script["latin"]["images"] == 10_000 and per_script["bengali"]["images"] == 1000
    latin = result["bilingual"]["latin_png"]
    assert latin["count"] == 30 and 0 <= latin["images"] <= 1 and 0 <= latin["tensors"] <= 1
