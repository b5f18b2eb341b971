"""import-json and export-json as a user runs them: a real process, real files, exit codes and one-line errors."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from tests import nn_data
from tests.integration.test_cli import assert_one_line_error, layerscope


def test_import_json_then_info_and_project(tmp_path):
    source = nn_data.write(tmp_path / "NN_data.json")
    out = tmp_path / "run"
    proc = layerscope("import-json", source, "--out", out)
    assert "40 instances, 10 aggregates, 10 classes" in " ".join(proc.stdout.split())  # rich wraps lines
    info = json.loads(layerscope("info", out, "--json").stdout)
    assert info["model"] is None
    assert [(layer["name"], layer["kind"]) for layer in info["layers"]][1:] == [
        ("conv2d_1", "projection"),
        ("dense_1", "dense"),
        ("dense_2", "dense"),
    ]
    assert "Model none: imported from" in layerscope("info", out).stdout
    # a layer with activations can be projected by layerscope too, without a model
    proc = layerscope("project", out, "--layer", "dense_2", "--method", "pca")
    assert "pca of dense_2: 40 points" in proc.stdout
    # an existing Run is refused unless --force
    proc = layerscope("import-json", source, "--out", out, check=False)
    assert_one_line_error(proc, "already exists", "--force")


def test_import_json_errors_exit_2_and_write_nothing(tmp_path):
    data = nn_data.hand_made()
    del data["images"]["x_12"]
    source = nn_data.write(tmp_path / "NN_data.json", data)
    proc = layerscope("import-json", source, "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "instance 'x_12' is used in prediction_results but has no image")
    assert not (tmp_path / "run").exists()
    (tmp_path / "broken.json").write_text("{")
    proc = layerscope("import-json", tmp_path / "broken.json", "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "broken.json: is not JSON")
    proc = layerscope("import-json", tmp_path / "absent.json", "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "absent.json: no such file")
    assert not (tmp_path / "run").exists()


def test_import_json_of_hostile_files_exits_2_in_one_line(tmp_path):
    """Files that used to end in a RecursionError or pass NaN on to scikit-learn, through a real process."""
    (tmp_path / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    proc = layerscope("import-json", tmp_path / "deep.json", "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "deep.json: nests lists or objects too deeply")
    data = nn_data.hand_made()
    data["activations"]["dense_1"]["x_0"][0] = float("nan")  # json.dumps writes the literal NaN
    proc = layerscope("import-json", nn_data.write(tmp_path / "nan.json", data), "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "nan.json: holds the literal NaN, which is not JSON")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep.json", "nan.json"]


def test_export_json_as_the_report_chose(tiny_run, tmp_path):
    target = tmp_path / "NN_data.json"
    proc = layerscope("export-json", tiny_run.path, target, "--per-class", "30")
    assert "wrote" in proc.stdout and "averages" in proc.stdout
    data = json.loads(target.read_text())
    assert set(data) == {
        "digit_to_instances",
        "prediction_results",
        "activations",
        "projections",
        "images",
        "layerscope",
    }
    assert list(data["activations"]) == ["fc1", "fc2", "out"]  # dense layers
    assert list(data["projections"]) == ["conv1", "conv2", "pool", "fc1", "fc2", "out"]  # every layer
    assert all(len(points) == 300 for points in data["projections"].values())
    assert all(members[0] == f"average-{digit}" for digit, members in data["digit_to_instances"].items())
    image = data["images"]["average-3"]
    assert len(image) == 28 and len(image[0]) == 28 and 0 <= min(map(min, image)) <= max(map(max, image)) <= 1
    wrong = [name for name, (true, predicted) in data["prediction_results"].items() if true != predicted]
    assert wrong and all(name in data["activations"]["fc1"] for name in wrong)
    # the file opens again, and an existing file is kept unless --force
    layerscope("import-json", target, "--out", tmp_path / "back")
    proc = layerscope("export-json", tiny_run.path, target, check=False)
    assert_one_line_error(proc, "already exists")
    proc = layerscope("export-json", tiny_run.path, tmp_path / "x.json", "--method", "mds", check=False)
    assert_one_line_error(proc, "unknown projection method 'mds'")


def test_serve_opens_an_nn_data_file(tmp_path):
    """`layerscope serve NN_data.json` imports the file into the cache and serves it on 127.0.0.1."""
    source = nn_data.write(tmp_path / "NN_data.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LAYERSCOPE_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "layerscope.cli", "serve", str(source), "--no-browser", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("w") as stderr, subprocess.Popen(command, env=env, stdout=stderr, stderr=stderr) as server:
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(url + "_dash-layout", timeout=5) as response:
                        layout = response.read().decode()
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.5)
            assert "NN_data" in layout and "(no model)" in layout
            assert len(list((tmp_path / "cache").iterdir())) == 1  # imported once into the cache
            assert f"http://127.0.0.1:{port}/" in log.read_text()
        finally:
            server.terminate()
