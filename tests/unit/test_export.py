"""Exports: the CSV rows of a selection and a projection's coordinates agree with the Run's own arrays, cell by cell."""

import csv
import io

import numpy as np
import pytest

from layerscope.errors import LayerNotFoundError, LayerscopeError, RunError
from layerscope.export import coordinates, export_name, selection_table
from layerscope.interop import FILE_METHOD, import_nn_data
from tests import nn_data


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A Run from the hand-made NN_data.json: predicted classes only, conv2d_1 projected for even instances only."""
    tmp = tmp_path_factory.mktemp("export")
    return import_nn_data(nn_data.write(tmp / "NN_data.json"), tmp / "run")


def rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def test_selection_rows_are_the_runs_values_in_the_order_given(tiny_run):
    run = tiny_run
    chosen = [3999, 0, 17, 3000, 17, 2999]  # test first, a repeat, both sides of the train/test boundary
    fc2, out = run.projection("fc2", "pca"), run.projection("out", "pca")
    header, got = rows(selection_table(run, chosen, {"fc2_pca": fc2, "out_pca": out}))
    assert header == [
        "index",
        "name",
        "split",
        "true_label",
        "predicted",
        "confidence",
        "fc2_pca_x",
        "fc2_pca_y",
        "out_pca_x",
        "out_pca_y",
    ]
    probs, labels, split = np.asarray(run.probs), np.asarray(run.labels), np.asarray(run.split)
    assert [int(r["index"]) for r in got] == chosen
    assert [r["split"] for r in got] == ["test", "train", "train", "test", "train", "train"]
    assert split[3999] == 1 and split[2999] == 0
    for r, i in zip(got, chosen, strict=True):
        assert r["name"] == run.names[i]
        assert r["true_label"] == run.class_names[labels[i]]
        assert r["predicted"] == run.class_names[probs[i].argmax()]
        assert np.float32(r["confidence"]) == probs[i].max()  # the float32 itself, not a rounding of it
        assert (np.float32(r["fc2_pca_x"]), np.float32(r["fc2_pca_y"])) == tuple(fc2[i])
        assert (np.float32(r["out_pca_x"]), np.float32(r["out_pca_y"])) == tuple(out[i])
    wrong = np.flatnonzero(probs.argmax(1) != labels)
    assert len(wrong)  # after 3 epochs on 3,000 images some are misclassified: predicted is not a copy of true_label
    _, missed = rows(selection_table(run, wrong[:5]))
    assert all(r["predicted"] != r["true_label"] for r in missed)


def test_a_run_with_predictions_only_leaves_confidence_and_unplaced_points_empty(imported):
    run = imported
    header, got = rows(selection_table(run, range(run.n_images), {"conv": run.projection("conv2d_1", FILE_METHOD)}))
    assert header[-3:] == ["confidence", "conv_x", "conv_y"]
    assert all(r["confidence"] == "" for r in got)
    raw = nn_data.hand_made()
    assert got[7]["name"] == "x_7" and got[7]["true_label"] == "7" and got[7]["predicted"] == "1"  # nn_data.WRONG
    assert got[13]["predicted"] == "8" and got[12]["predicted"] == "2"
    for i, r in enumerate(got):
        if f"x_{i}" in nn_data.SUBSET:
            assert [float(r["conv_x"]), float(r["conv_y"])] == raw["projections"]["conv2d_1"][f"x_{i}"]
        else:
            assert r["conv_x"] == r["conv_y"] == ""
    assert {r["split"] for r in got} == {"test"}  # the format says nothing of splits


def test_names_with_commas_and_quotes_survive(imported):
    data = nn_data.hand_made()
    data["prediction_results"]['a, "quoted" one'] = data["prediction_results"].pop("x_3")
    data["images"]['a, "quoted" one'] = data["images"].pop("x_3")
    for values in (*data["activations"].values(), *data["projections"].values()):
        if "x_3" in values:
            values['a, "quoted" one'] = values.pop("x_3")
    for members in data["digit_to_instances"].values():
        members[:] = ['a, "quoted" one' if m == "x_3" else m for m in members]
    tmp = imported.path.parent
    run = import_nn_data(nn_data.write(tmp / "quoted.json", data), tmp / "quoted")
    i = int(np.flatnonzero(run.names == 'a, "quoted" one')[0])
    _, got = rows(selection_table(run, [i]))
    assert got[0]["name"] == 'a, "quoted" one' and got[0]["true_label"] == "3"


def test_empty_selection_is_the_header_alone(tiny_run):
    assert selection_table(tiny_run, []) == "index,name,split,true_label,predicted,confidence\n"


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([5, 4000], "image index 4000 is out of range: give one from 0 to 3999"),
        ([-1], "image index -1 is out of range"),
        (np.array([2, 7, 9000]), "image index 9000 is out of range"),
        ([1.5], "image index 1.5 is not a whole number"),
        ([3.0], "image index 3.0 is not a whole number"),
        (["3"], "image index '3' is not a whole number"),
        ([True, False], "image index True is not a whole number"),
        ([[1, 2]], "must be a flat list of numbers, not a 2-D array"),
    ],
)
def test_bad_indices_are_refused_in_one_line(tiny_run, indices, message):
    with pytest.raises(LayerscopeError) as info:
        selection_table(tiny_run, indices)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_caller_arrays_keep_their_precision_in_the_shortest_text(tiny_run):
    n = tiny_run.n_images
    given = {
        "f32": np.full((n, 2), 0.1, np.float32),  # "0.1", not float64's "0.10000000149011612"
        "f64": np.full((n, 2), 1 / 3),
        "int": np.full((n, 2), 7),
    }
    _, (row,) = rows(selection_table(tiny_run, [5], given))
    assert row["f32_x"] == "0.1" and float(row["f64_y"]) == 1 / 3 and float(row["int_x"]) == 7


def test_a_projection_of_the_wrong_shape_is_refused(tiny_run):
    with pytest.raises(LayerscopeError, match=r"'fc2' is a 10x2 float32 array; give \(4000, 2\) numbers"):
        selection_table(tiny_run, [0], {"fc2": np.zeros((10, 2), np.float32)})


def test_coordinates_csv_and_npy_hold_the_stored_projection(tiny_run):
    run = tiny_run
    stored = np.asarray(run.projection("fc1", "pca"))
    back = np.load(io.BytesIO(coordinates(run, "fc1", "pca", "npy")), allow_pickle=False)
    assert back.dtype == np.float32 and back.shape == (run.n_images, 2)
    np.testing.assert_array_equal(back, stored)
    header, got = rows(coordinates(run, "fc1", "pca").decode())
    assert header == ["index", "name", "split", "true_label", "x", "y"]
    assert len(got) == run.n_images
    np.testing.assert_array_equal(np.array([[r["x"], r["y"]] for r in got], np.float32), stored)
    assert [int(r["index"]) for r in got] == list(range(run.n_images))
    assert [r["true_label"] for r in got] == [run.class_names[k] for k in run.labels]
    assert got[0]["split"] == "train" and got[-1]["split"] == "test"


def test_coordinates_of_a_partial_projection_keep_nan_in_npy_and_empty_cells_in_csv(imported):
    stored = np.asarray(imported.projection("conv2d_1", FILE_METHOD))
    back = np.load(io.BytesIO(coordinates(imported, "conv2d_1", FILE_METHOD, "npy")))
    np.testing.assert_array_equal(back, stored)  # NaN where the file has no point (assert_array_equal: NaN == NaN)
    _, got = rows(coordinates(imported, "conv2d_1", FILE_METHOD).decode())
    assert [r["x"] == "" for r in got] == list(np.isnan(stored[:, 0]))
    assert sum(r["x"] != "" for r in got) == len(nn_data.SUBSET)


def test_a_missing_projection_says_how_to_compute_it(tiny_run):
    hint = r"no tsne projection of 'fc2'.*; compute it with 'layerscope project .* --layer fc2 --method tsne'"
    with pytest.raises(RunError, match=hint):
        coordinates(tiny_run, "fc2", "tsne")
    with pytest.raises(LayerNotFoundError, match="unknown layer 'fc9'"):
        coordinates(tiny_run, "fc9", "pca", "npy")
    with pytest.raises(LayerscopeError, match="unknown export format 'xlsx'; use csv or npy"):
        coordinates(tiny_run, "fc2", "pca", "xlsx")


def test_export_names_are_safe_file_names(tiny_run, imported):
    assert export_name(tiny_run, ("fc2", "pca"), "csv") == "mnist-fc2-pca.csv"
    assert export_name(tiny_run, "selection", ".npy") == "mnist-selection.npy"
    assert export_name(tiny_run, ("layer1.0.conv1", "t-SNE"), "csv") == "mnist-layer1.0.conv1-t-SNE.csv"
    assert export_name(tiny_run, ("../../etc", "pass wd\x00"), "c/s v") == "mnist-etc-pass-wd.csv"
    assert export_name(imported, ("conv2d_1", FILE_METHOD), "csv") == "NN_data-conv2d_1-file.csv"
