"""NN_data.json (the report's section 5.2): reading, validating, importing into a Run and writing it back."""

import json

import numpy as np
import pytest

from layerscope.data.datasets import TEST
from layerscope.errors import RunError
from layerscope.interop import FILE_METHOD, NNDataError, export_nn_data, import_nn_data, read_nn_data
from layerscope.run import Run, open_run
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
    # values that passed validation and crashed later, in scikit-learn or in float32
    "activation of 1e300": (
        lambda d: d["activations"]["dense_2"]["x_4"].__setitem__(3, 1e300),
        "activations['dense_2']['x_4'] holds 1e+300, which is not a finite number of at most 1e+15 in size",
    ),
    "coordinate of -1e20": (
        lambda d: d["projections"]["conv2d_1"]["x_2"].__setitem__(1, -1e20),
        "projections['conv2d_1']['x_2'] holds -1e+20, which is not a finite number",
    ),
    "activation as a string 'nan'": (
        lambda d: d["activations"]["dense_1"]["x_5"].__setitem__(0, "nan"),
        "activations['dense_1']['x_5'] holds nan, which is not a finite number",
    ),
    "activation beyond float64": (
        lambda d: d["activations"]["dense_1"]["x_5"].__setitem__(0, 10**400),
        "activations['dense_1']['x_5'] is not a list of numbers",
    ),
    "zero-width activations": (
        lambda d: d["activations"].update(dense_2={n: [] for n in d["activations"]["dense_2"]}),
        "activations['dense_2']['x_0'] is an empty list",
    ),
    "empty image": (lambda d: d["images"].update(x_3=[[]]), "image 'x_3' has shape (1, 0)"),
    "image beyond float64": (
        lambda d: d["images"]["x_3"][0].__setitem__(0, 10**400),
        "image 'x_3' is not a rectangular array of numbers",
    ),
    # names: layers become file names inside the Run, instances are shown and stored
    "300-character layer name": (
        lambda d: d["activations"].update({"d" * 300: d["activations"].pop("dense_2")}),
        "activations layer name 'ddddd",
    ),
    "layer name with a NUL": (
        lambda d: d["projections"].update({"conv\x00": d["projections"].pop("conv2d_1")}),
        "projections layer name 'conv\\x00' is not a plain name",
    ),
    "layer name that climbs out": (
        lambda d: d["projections"].update({"../evil": d["projections"].pop("conv2d_1")}),
        "projections layer name '../evil' is not a plain name",
    ),
    "layer named input": (
        lambda d: d["activations"].update(input=d["activations"].pop("dense_2")),
        "activations layer name 'input' is what layerscope calls the input images",
    ),
    "300-character instance name": (
        lambda d: d["images"].update({"x" * 300: d["images"]["x_0"]}),
        "images instance 'xxxxxxxxxx",
    ),
    "instance name with a newline": (
        lambda d: d["prediction_results"].update({"x\n1": [1, 1]}),
        "prediction_results instance 'x\\n1' is not a name of 1 to 200 printable characters",
    ),
    "empty instance name": (
        lambda d: d["digit_to_instances"]["3"].append(""),
        "digit_to_instances['3'] instance '' is not a name of 1 to 200 printable characters",
    ),
    "instance name that is an object": (
        lambda d: d["digit_to_instances"]["3"].append({"a": 1}),
        "digit_to_instances['3'] holds {'a': 1}, which is not an instance name",
    ),
    "class key of 300 characters": (
        lambda d: d["digit_to_instances"].update({"9" * 300: []}),
        "digit_to_instances key '99999",
    ),
    "label that is a long list": (
        lambda d: d["prediction_results"].update(x_1=[list(range(10_000)), 1]),
        "prediction_results['x_1'] has real label [0, 1, 2, 3, ...], which is not a key",
    ),
    "label nested 500 deep": (
        lambda d: d["prediction_results"].update(x_1=[1, json.loads("[" * 500 + "]" * 500)]),
        "prediction_results['x_1'] has predicted label [[[...]]], which is not a key",
    ),
    "pair that is a long list": (
        lambda d: d["prediction_results"].update(x_1=list(range(10_000))),
        "prediction_results['x_1'] must be [real label, predicted label], found [0, 1, 2, 3, ...].",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_name_the_key_and_instance(tmp_path, case):
    change, message = MALFORMED[case]
    source = nn_data.write(tmp_path / "NN_data.json", _break(change))
    with pytest.raises(NNDataError) as error:
        import_nn_data(source, tmp_path / "run")
    text = str(error.value)
    assert message in text and "\n" not in text and text.startswith("NN_data.json: ")
    assert len(text) < 400  # values and names are quoted cut short
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NN_data.json"]  # no Run, no leftover staging directory


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


# -- text that json.loads reads but NN_data.json must not hold ---------------------------------------------------------


def _raw(tmp_path, text: str):
    source = tmp_path / "NN_data.json"
    source.write_text(text)
    return source


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(tmp_path, literal):
    text = json.dumps(nn_data.hand_made()).replace("0.015625", literal, 1)  # one activation value (1/64)
    assert literal in text
    with pytest.raises(NNDataError, match=rf"^NN_data.json: holds the literal {literal}, which is not JSON"):
        read_nn_data(_raw(tmp_path, text))


def test_a_number_too_large_for_float64_is_refused(tmp_path):
    data = nn_data.hand_made()
    data["activations"]["dense_1"]["x_9"][2] = 12345.0
    text = json.dumps(data).replace("12345.0", "1e999")  # json.loads reads it as inf
    with pytest.raises(NNDataError, match=r"activations\['dense_1'\]\['x_9'\] holds inf, which is not a finite"):
        read_nn_data(_raw(tmp_path, text))


def test_deep_nesting_is_refused(tmp_path):
    with pytest.raises(NNDataError, match=r"^NN_data.json: nests lists or objects too deeply to be read"):
        read_nn_data(_raw(tmp_path, "[" * 200_000 + "]" * 200_000))


def test_an_integer_of_5000_digits_is_refused(tmp_path):
    with pytest.raises(
        NNDataError, match=r"holds a number that cannot be read \(Exceeds the limit \(4300 digits\)"
    ) as e:
        read_nn_data(_raw(tmp_path, '{"images": ' + "7" * 5000 + "}"))
    assert "set_int_max_str_digits" not in str(e.value)  # Python's advice is not the user's next step


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from layerscope.interop import seed_json

    source = nn_data.write(tmp_path / "NN_data.json")
    monkeypatch.setattr(seed_json, "MAX_FILE_BYTES", source.stat().st_size - 1)
    with pytest.raises(NNDataError, match=rf"is {source.stat().st_size:,} bytes; layerscope reads NN_data.json files"):
        read_nn_data(source)


def test_too_many_classes_or_layers(tmp_path, monkeypatch):
    from layerscope.interop import seed_json

    source = nn_data.write(tmp_path / "NN_data.json")
    monkeypatch.setattr(seed_json, "MAX_CLASSES", 9)
    with pytest.raises(NNDataError, match="digit_to_instances has 10 keys; layerscope handles at most 9"):
        read_nn_data(source)
    monkeypatch.setattr(seed_json, "MAX_CLASSES", 10)
    monkeypatch.setattr(seed_json, "MAX_LAYERS", 1)
    with pytest.raises(NNDataError, match="activations has 2 layers; layerscope reads at most 1"):
        read_nn_data(source)


@pytest.mark.parametrize("odd", ["--1", "²", "٣"])
def test_keys_that_only_look_like_numbers_are_kept_as_text(tmp_path, odd):
    """str.isdigit() is true for '²' (which int() refuses) and '٣' (which it reads as 3), and '--1'.lstrip('-') is
    digits: such keys crashed the sort by number or came back as numbers; now they keep the file's order, and a
    round trip writes them back as text."""
    data = nn_data.hand_made()
    data["digit_to_instances"][odd] = []
    read = read_nn_data(nn_data.write(tmp_path / "NN_data.json", data))
    assert read.class_keys == [str(d) for d in range(10)] + [odd]
    run = import_nn_data(tmp_path / "NN_data.json", tmp_path / "run")
    export_nn_data(run, tmp_path / "again.json")
    written = json.loads((tmp_path / "again.json").read_text())
    assert written["digit_to_instances"][odd] == [] and written["prediction_results"]["x_3"] == [3, 3]


def test_negative_number_keys_sort_as_numbers(tmp_path):
    data = nn_data.hand_made()
    data["digit_to_instances"]["-1"] = []
    assert read_nn_data(nn_data.write(tmp_path / "NN_data.json", data)).class_keys[:2] == ["-1", "0"]


def test_a_bad_layerscope_key_is_ignored_as_other_readers_ignore_it(tmp_path):
    data = nn_data.hand_made()
    names = list(data["prediction_results"])
    data["layerscope"] = {
        "class_names": 5,  # used to raise TypeError
        "probabilities": {n: [1e300] * 10 for n in names},  # used to overflow float32
    }
    read = read_nn_data(nn_data.write(tmp_path / "NN_data.json", data))
    assert read.class_names == read.class_keys and read.probabilities is None
    data["layerscope"]["class_names"] = [f"digit {d}" for d in range(9)] + ["bad\x00name"]
    assert read_nn_data(nn_data.write(tmp_path / "NN_data.json", data)).class_names == read.class_keys
    data["layerscope"]["class_names"] = [f"digit {d}" for d in range(10)]
    assert read_nn_data(nn_data.write(tmp_path / "NN_data.json", data)).class_names[3] == "digit 3"
