"""NN_data.json (the report's section 5.2): reading, validating, importing into a Run and writing it back."""

import json

import numpy as np
import pytest

from layerscope.data.datasets import TEST
from layerscope.errors import RunError
from layerscope.interop import FILE_METHOD, NNDataError, export_nn_data, import_nn_data, read_nn_data
from layerscope.pipeline import open_run
from layerscope.run import Run
from tests import nn_data


def test_reads_the_hand_made_file(tmp_path):
    data = read_nn_data(nn_data.write(tmp_path / "NN_data.json"))
    assert data.names == [f"x_{i}" for i in range(nn_data.N)]
    assert data.layers == ["conv2d_1", "dense_1", "dense_2"]  # projections' order, activations merged in
    assert data.images.shape == (40, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [i % 10 for i in range(40)]
    assert data.predicted[7] == 1 and data.predicted[13] == 8 and (data.predicted == data.labels).sum() == 38
    assert data.activations["dense_1"].shape == (40, 8) and data.activations["dense_2"].shape == (40, 10)
    covered = np.isfinite(data.projections["conv2d_1"]).all(1)
    assert covered.tolist() == [i % 2 == 0 for i in range(40)]  # a projection of some instances only
    assert data.aggregate_names == [f"avg_{d}" for d in range(10)]
    assert data.aggregate_labels.tolist() == list(range(10))  # listed under their digit
    assert set(data.aggregate_activations) == {"dense_1"} and set(data.aggregate_projections) == {"dense_1"}
    assert data.probabilities is None
    assert (data.split == TEST).all()  # the format says nothing of splits


def test_import_makes_a_run_without_a_model(tmp_path):
    source = nn_data.write(tmp_path / "NN_data.json")
    run = import_nn_data(source, tmp_path / "run")
    raw = nn_data.hand_made()
    assert [(info.name, info.kind) for info in run.layers] == [
        ("input", "image"),
        ("conv2d_1", "projection"),
        ("dense_1", "dense"),
        ("dense_2", "dense"),
    ]
    assert not run.has_model
    with pytest.raises(RunError, match="has no model"):
        run.load_model()
    assert list(run.names[:3]) == ["x_0", "x_1", "x_2"]
    assert np.array_equal(run.activations("dense_2")[5], np.float32(raw["activations"]["dense_2"]["x_5"]))
    image = np.rint(np.asarray(raw["images"]["x_9"]) * 255)
    assert np.array_equal(run.images[9, 0], image)
    # the file's predicted class, as probabilities of 1
    assert run.probs.argmax(1)[7] == 1 and np.allclose(run.probs.sum(1), 1)
    projection = run.projection("conv2d_1", FILE_METHOD)
    assert np.isnan(projection[1]).all() and np.array_equal(projection[2], raw["projections"]["conv2d_1"]["x_2"])
    meta = run.projection_meta("conv2d_1", FILE_METHOD)
    assert meta["n_points"] == 20 and "knn_accuracy" in meta and "trustworthiness" not in meta
    assert "trustworthiness" in run.projection_meta("dense_1", FILE_METHOD)  # it has activations to compare with
    aggregates = run.aggregates
    assert aggregates is not None and aggregates.of_class(3) == 3
    assert np.array_equal(aggregates.activations["dense_1"][3], raw["activations"]["dense_1"]["avg_3"])
    assert run.manifest["metrics"]["test_accuracy"] == pytest.approx(38 / 40)


def test_open_run_imports_a_file_once(tmp_path):
    source = nn_data.write(tmp_path / "NN_data.json")
    first = open_run(source, cache_dir=tmp_path / "cache")
    mtime = (first.path / "manifest.json").stat().st_mtime_ns
    again = open_run(source, cache_dir=tmp_path / "cache")
    assert again.path == first.path and (again.path / "manifest.json").stat().st_mtime_ns == mtime
    assert open_run(first.path).path == first.path  # a Run directory opens as it is


def _break(change):
    data = nn_data.hand_made()
    change(data)
    return data


MALFORMED = {
    "missing key": (lambda d: d.pop("projections"), "has no 'projections' key"),
    "instance without image": (
        lambda d: d["images"].pop("x_12"),
        "instance 'x_12' is used in prediction_results but has no image",
    ),
    "activation instance without image": (
        lambda d: d["activations"]["dense_2"].update(ghost=[0.0] * 10),
        "instance 'ghost' is used in activations['dense_2'] but has no image",
    ),
    "ragged activations": (
        lambda d: d["activations"]["dense_1"]["x_3"].append(1.0),
        "activations['dense_1'] is ragged: instance 'x_3' has 9 values but 'x_0' has 8",
    ),
    "layer missing an instance": (
        lambda d: d["activations"]["dense_2"].pop("x_4"),
        "activations['dense_2'] has no values for instance 'x_4'",
    ),
    "wrong image size": (
        lambda d: d["images"].update(x_5=[[0.0] * 27] * 28),
        "image 'x_5' is 28x27 but image 'x_0' is 28x28",
    ),
    "ragged image": (lambda d: d["images"]["x_6"][3].pop(), "image 'x_6' is not a rectangular array"),
    "pixels not in [0, 1]": (
        lambda d: d["images"].update(x_8=[[255.0] * 28] * 28),
        "image 'x_8' has values outside [0, 1]",
    ),
    "unknown label": (
        lambda d: d["prediction_results"].update(x_1=[1, 11]),
        "prediction_results['x_1'] has predicted label 11, which is not a key of digit_to_instances",
    ),
    "listed under another digit": (
        lambda d: d["prediction_results"].update(x_2=[3, 3]),
        "instance 'x_2' is listed under '2' in digit_to_instances but prediction_results gives real label '3'",
    ),
    "projection of three numbers": (
        lambda d: d["projections"]["conv2d_1"]["x_0"].append(0.0),
        "projections['conv2d_1']['x_0'] has 3 values; a projection is [x, y]",
    ),
    "section not an object": (lambda d: d.update(activations=[]), "activations must be a JSON object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_name_the_key_and_instance(tmp_path, case):
    change, message = MALFORMED[case]
    source = nn_data.write(tmp_path / "NN_data.json", _break(change))
    with pytest.raises(NNDataError) as error:
        import_nn_data(source, tmp_path / "run")
    text = str(error.value)
    assert message in text and "\n" not in text and text.startswith("NN_data.json: ")
    assert not (tmp_path / "run").exists()


def test_not_json(tmp_path):
    source = tmp_path / "NN_data.json"
    source.write_text('{"digit_to_instances": {"0": ["x_0"]},')
    with pytest.raises(NNDataError, match=r"is not JSON \(.*line 1"):
        read_nn_data(source)
    source.write_text("[1, 2]")
    with pytest.raises(NNDataError, match="the file must be a JSON object"):
        read_nn_data(source)


def test_a_file_round_trips_through_a_run(tmp_path):
    """file -> Run -> file gives back every key, instance and value (images at 8 bits, numbers at float32)."""
    source = nn_data.write(tmp_path / "NN_data.json")
    run = import_nn_data(source, tmp_path / "run")
    export_nn_data(run, tmp_path / "again.json")
    written = json.loads((tmp_path / "again.json").read_text())
    original = nn_data.hand_made()
    for key in ("prediction_results", "activations", "projections", "images"):
        assert written[key] == original[key], key
    # the averages stay where the file put them
    assert {k: sorted(v) for k, v in written["digit_to_instances"].items()} == {
        k: sorted(v) for k, v in original["digit_to_instances"].items()
    }


def test_a_run_round_trips_through_a_file(tiny_run, tmp_path):
    """Run -> file -> Run preserves every exported value exactly; exporting the imported Run gives the same file."""
    summary = export_nn_data(tiny_run, tmp_path / "NN_data.json", per_class=20)
    data = json.loads((tmp_path / "NN_data.json").read_text())
    names = list(data["prediction_results"])
    index = np.array([int(name.split("-")[1]) for name in names])
    labels, probs = np.asarray(tiny_run.labels), np.asarray(tiny_run.probs)
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    assert set(wrong) <= set(index)  # every misclassified image is exported
    assert summary["instances"] == len(names) and summary["aggregates"] == 10
    assert summary["activation_layers"] == ["fc1", "fc2", "out"]
    assert summary["projection_layers"] == ["conv1", "conv2", "pool", "fc1", "fc2", "out"]
    # projections hold the 20 random images per digit, not the extra misclassified ones (the report's choice)
    assert len(data["projections"]["fc1"]) == 200  # the averages are not dataset images: PCA does not place them
    assert len(data["activations"]["fc1"]) == len(names) + 10  # the averages have mean activations

    back = import_nn_data(tmp_path / "NN_data.json", tmp_path / "back")
    assert np.array_equal(back.images, tiny_run.images[index])
    assert np.array_equal(back.labels, labels[index]) and np.array_equal(back.split, tiny_run.split[index])
    assert np.array_equal(back.probs, probs[index])
    for layer in ("fc1", "fc2", "out"):
        assert np.array_equal(back.activations(layer), tiny_run.activations(layer)[index]), layer
    pca = tiny_run.projection("conv2", "pca")[index]
    file = back.projection("conv2", FILE_METHOD)
    placed = np.isfinite(file).all(1)
    assert placed.sum() == 200 and np.array_equal(file[placed], pca[placed])
    assert back.class_names == tiny_run.class_names

    export_nn_data(back, tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    for key in ("digit_to_instances", "prediction_results", "activations", "projections", "images"):
        assert again[key] == data[key], key
    assert again["layerscope"]["probabilities"] == data["layerscope"]["probabilities"]


def test_run_without_model_knows_its_names_and_defaults(tiny_run):
    names = tiny_run.names
    assert names[0] == "train-0" and names[-1] == f"test-{len(names) - 1}"
    assert tiny_run.has_model and tiny_run.aggregates is None
    with pytest.raises(RunError):
        Run(tiny_run.path).projection("fc1", FILE_METHOD)


def test_labels_as_strings_or_whole_floats_are_read(tmp_path):
    data = nn_data.hand_made()
    data["prediction_results"]["x_3"] = ["3", 3.0]  # as numpy arrays of strings or floats would write them
    read = read_nn_data(nn_data.write(tmp_path / "NN_data.json", data))
    assert read.labels[3] == 3 and read.predicted[3] == 3
