"""The command line as a user runs it: a real process, real files, exit codes and one-line errors."""

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import make_idx_dir, sheet_tiles


def layerscope(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "layerscope.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_info_layers_and_project(tiny_run):
    data = json.loads(layerscope("info", tiny_run.path, "--json").stdout)
    assert 0.5 < data["test_accuracy"] <= 1
    assert [layer["name"] for layer in data["layers"]] == ["input", "conv1", "conv2", "pool", "fc1", "fc2", "out"]
    assert data["computed"]["projections"]["conv2"] == ["pca"] or "pca" in data["computed"]["projections"]["conv2"]
    text = layerscope("info", tiny_run.path).stdout
    assert "Test accuracy" in text and "32x24x24" in text
    layers = layerscope("layers", tiny_run.path).stdout.split("\n")
    assert layers[1].split() == ["conv1", "conv", "16x26x26"]
    proc = layerscope("project", tiny_run.path, "--layer", "out", "--method", "isomap")
    assert "isomap of out: 4,000 points" in proc.stdout and "kNN accuracy" in proc.stdout


def test_train_on_an_idx_directory(tmp_path):
    data = make_idx_dir(tmp_path / "toy", n_train=64, n_test=32, size=12)
    out = tmp_path / "run"
    layerscope("train", "--dataset", data, "--class-names", "a,b,c", "--out", out, "--epochs", "2", "--device", "cpu")
    info = json.loads(layerscope("info", out, "--json").stdout)
    assert info["dataset"]["class_names"] == ["a", "b", "c"]
    assert info["dataset"]["image_shape"] == [1, 12, 12]
    assert len(info["history"]) == 2
    assert {layer["name"]: layer["shape"] for layer in info["layers"]}["pool"] == [32, 4, 4]


def test_truncated_idx_exits_2_and_writes_nothing(tmp_path):
    data = make_idx_dir(tmp_path / "toy")
    images = data / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])
    proc = layerscope("train", "--dataset", data, "--out", tmp_path / "run", check=False)
    assert_one_line_error(proc, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "run").exists()


def test_missing_dataset_file(tmp_path):
    data = make_idx_dir(tmp_path / "toy")
    (data / "train-labels-idx1-ubyte").unlink()
    assert_one_line_error(layerscope("train", "--dataset", data, "--out", tmp_path / "r", check=False), "train labels")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["project", "{run}", "--layer", "fc3"], ["unknown layer 'fc3'", "layerscope layers"]),
        (["project", "{run}", "--layer", "fc1", "--method", "mds"], ["unknown projection method 'mds'"]),
        (["train", "--out", "{run}"], ["already exists; pass --force"]),
        (["info", "{missing}"], ["no such Run"]),
        (["train", "--preset", "huge", "--out", "{missing}"], ["unknown preset 'huge'"]),
        (["train", "--augment", "-1", "--out", "{missing}"], ["--augment -1 is out of range"]),
    ],
)
def test_bad_input_exits_2_and_leaves_the_run_untouched(tiny_run, tmp_path, args, fragments):
    before = {p: p.read_bytes() for p in tiny_run.path.rglob("*") if p.is_file() and p.name != ".lock"}
    args = [a.format(run=tiny_run.path, missing=tmp_path / "missing") for a in args]
    assert_one_line_error(layerscope(*args, check=False), *fragments)
    after = {p: p.read_bytes() for p in tiny_run.path.rglob("*") if p.is_file() and p.name != ".lock"}
    assert before == after
    assert not (tmp_path / "missing").exists()


def test_run_from_a_newer_version(tmp_path, tiny_run):
    manifest = json.loads((tiny_run.path / "manifest.json").read_text())
    manifest["format_version"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(layerscope("info", tmp_path, check=False), "newer layerscope", "pip install -U layerscope")


def test_serve_binds_localhost_and_warns_on_0000(tiny_run):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerscope.cli",
            "serve",
            str(tiny_run.path),
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert "warning: serving on 0.0.0.0: the page has no authentication" in " ".join(stderr.split())


def test_topk_prints_the_units_best_images_and_saves_them(tiny_run, tmp_path):
    from PIL import Image

    from layerscope.run import Run

    data = json.loads(layerscope("topk", tiny_run.path, "--layer", "conv2", "--unit", "3", "--json").stdout)
    stored = Run(tiny_run.path).topk("conv2")
    assert [row["index"] for row in data["images"]] == stored.indices[3].tolist()
    activations = [row["activation"] for row in data["images"]]
    assert activations == sorted(activations, reverse=True) and len(activations) == 9
    for row in data["images"]:  # conv2 sees 5x5 pixels: its box is 5x5 unless clipped at the border
        top, left, bottom, right = row["receptive_field"]
        y, x = row["position"]
        assert (top, left) == (y, x) and (bottom - top, right - left) == (5, 5)
    out = tmp_path / "top.png"
    text = layerscope("topk", tiny_run.path, "--unit", "fc1:0", "--out", out).stdout
    assert "top 9 images of fc1 unit 0" in text
    assert sheet_tiles(out) == [(28 * 8, 28 * 8)] * 9
    with Image.open(out) as image:  # a title above the images and a caption under each
        assert image.height > 28 * 8 + 40


def test_featurevis_writes_naive_beside_regularised_and_stores_when_asked(tiny_run, tmp_path):
    from PIL import Image

    out = tmp_path / "unit.png"
    text = layerscope("featurevis", tiny_run.path, "--layer", "fc2", "--unit", "5", "--out", out, "--store").stdout
    assert "fc2 unit 5: naive" in text and "regularised (data prior)" in text
    assert "best of the 4,000 dataset images" in text and "x the dataset's" in text
    assert sheet_tiles(out) == [(28 * 8, 28 * 8)] * 4  # naive, regularised, the top image, it accentuated
    with Image.open(out) as image:
        assert image.height > 28 * 8 + 40
    cache = tiny_run.path / "featurevis" / "fc2" / "5.npz"
    made = cache.stat().st_mtime_ns
    layerscope("featurevis", tiny_run.path, "--layer", "fc2", "--unit", "5", "--out", out)
    assert cache.stat().st_mtime_ns == made  # read back, not optimised again


def test_featurevis_from_an_image_accentuates_it_toward_the_unit(tiny_run, tmp_path):
    out = tmp_path / "accent.png"
    text = layerscope(
        "featurevis", tiny_run.path, "--unit", "out:3", "--from-image", "7", "--out", out, "--steps", "64"
    ).stdout
    before, after = (float(v) for v in re.findall(r"image train-7 (-?[\d.]+) -> accentuated (-?[\d.]+)", text)[0])
    assert after > before
    assert sheet_tiles(out) == [(28 * 8, 28 * 8)] * 2  # the real image, then accentuated
    assert not (tiny_run.path / "featurevis" / "out" / "3.npz").exists()  # nothing is stored
    bad = layerscope("featurevis", tiny_run.path, "--unit", "out:3", "--from-image", "4000", "--out", out, check=False)
    assert_one_line_error(bad, "--from-image 4000 is out of range", "0 to 3999")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["topk", "--layer", "fc1", "--unit", "64"], ["unit 64 is out of range", "0 to 63"]),
        (["topk", "--layer", "input", "--unit", "0"], ["input image"]),
        (["topk", "--layer", "fc9", "--unit", "0"], ["unknown layer 'fc9'"]),
        (["featurevis", "--layer", "conv2", "--unit", "32", "--out", "x.png"], ["0 to 31"]),
        (["featurevis", "--layer", "conv2", "--unit", "1", "--out", "x.jpg"], ["give a .png file name"]),
    ],
)
def test_unit_commands_reject_bad_input(tiny_run, args, fragments):
    assert_one_line_error(layerscope(args[0], tiny_run.path, *args[1:], check=False), *fragments)
