"""``layerscope ablate`` through the real entry point: before -> after, saving, and one-line errors."""

from __future__ import annotations

import json
import shutil

from tests.conftest import cli, one_line_error


def test_ablate_prints_before_and_after_and_saves(tiny_run, tmp_path, capsys):
    path = tmp_path / "run"
    shutil.copytree(tiny_run.path, path)
    code, out, err = cli(capsys, "ablate", path, "--unit", "fc2:0-63")
    assert code == 0, err
    before = tiny_run.manifest["metrics"]["test_accuracy"]
    assert "ablation fc2 0–63 × 0: 1,000 test images" in out
    assert f"accuracy {before:.2%} → " in out
    assert "accuracy per class" in out and all(f" {d} " in out for d in tiny_run.class_names)
    assert "biggest confusion changes" in out
    code, out, err = cli(
        capsys, "ablate", path, "--unit", "fc2:3", "--unit", "conv2:7,9", "--scale", "0.5", "--save", "pair"
    )
    assert code == 0, err
    assert "ablation fc2 3 × 0.5; conv2 7, 9 × 0.5" in out and "saved as 'pair'" in out
    saved = json.loads((path / "manifest.json").read_text())["ablations"]["pair"]
    assert saved["ablations"] == [
        {"layer": "fc2", "units": [3], "scale": 0.5},
        {"layer": "conv2", "units": [7, 9], "scale": 0.5},
    ]
    assert 0 <= saved["result"]["accuracy_after"] <= 1


def test_ablate_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    run = tiny_run.path
    assert "unknown layer 'fc3'" in one_line_error(capsys, "ablate", run, "--unit", "fc3:1")
    assert "unit 70 is out of range: 'fc2' has units 0 to 63." in one_line_error(
        capsys, "ablate", run, "--unit", "fc2:70"
    )
    assert "write LAYER:UNITS" in one_line_error(capsys, "ablate", run, "--unit", "fc2")
    assert "whole numbers" in one_line_error(capsys, "ablate", run, "--unit", "fc2:a")
    assert "no such Run" in one_line_error(capsys, "ablate", tmp_path / "missing", "--unit", "fc2:1")
    no_model = tmp_path / "no-model"
    shutil.copytree(run, no_model)
    manifest = json.loads((no_model / "manifest.json").read_text())
    (no_model / "manifest.json").write_text(json.dumps(dict(manifest, model=None)))
    assert "has no model" in one_line_error(capsys, "ablate", no_model, "--unit", "fc2:1")
    code, _, err = cli(capsys, "ablate", run)
    assert code == 2 and "--unit" in err  # typer's usage error for the missing option
