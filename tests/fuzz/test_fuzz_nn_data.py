"""Malformed NN_data.json files, made by mutating a small valid one: each reads (and imports), or is one line of
``LayerscopeError``; never a traceback, never a Run or a leftover written when it fails."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerscope.errors import LayerscopeError
from layerscope.interop import import_nn_data, read_nn_data
from layerscope.interop.seed_json import MAX_VALUE
from layerscope.names import is_path_name
from layerscope.run import Run
from tests import nn_data
from tests.conftest import one_line_error
from tests.fuzz import sandbox, tree

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

# Text a JSON encoder cannot produce from Python values, put in where a placeholder string stands
RAW = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep_object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "5000 digits": "7" * 5000,
    "1e999": "1e999",
    "-1e999": "-1e999",
    "nested 70": "[" * 70 + "0.5" + "]" * 70,
}


def small_document() -> dict[str, Any]:
    """``nn_data.hand_made()`` cut to one instance per digit (x_7 still misclassified) and 4x4 images: still valid,
    and read in milliseconds."""
    data = nn_data.hand_made()
    keep = {f"x_{i}" for i in range(10)} | {f"avg_{d}" for d in range(10)}

    def cut(values: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in values.items() if name in keep}

    return {
        "digit_to_instances": {k: [n for n in v if n in keep] for k, v in data["digit_to_instances"].items()},
        "prediction_results": cut(data["prediction_results"]),
        "activations": {layer: cut(values) for layer, values in data["activations"].items()},
        "projections": {layer: cut(values) for layer, values in data["projections"].items()},
        "images": {name: [row[:4] for row in image[:4]] for name, image in cut(data["images"]).items()},
    }


names = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec="ascii"), min_size=120, max_size=320),
    st.sampled_from(["", "input", "../x", "a/b", ".hidden", "x\x00y", "x\n1", "\ud800", "²", "--1", "-1", "٣", "x_3"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),  # json.dumps writes NaN and Infinity literals
    st.integers(-(2**70), 2**70),
    st.sampled_from([1e300, -1e300, 1e30, MAX_VALUE, MAX_VALUE * 1.5, 0.5, 0, 1, -1, 7.0, 255, 2**31 - 1, 10**400]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, names, st.sampled_from([f"@RAW:{k}" for k in RAW]))
values = st.one_of(
    leaves,
    st.lists(numbers, max_size=12),  # activation- and coordinate-like
    st.lists(st.lists(st.floats(0, 1), min_size=0, max_size=5), max_size=5),  # image-like
    st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=3), max_leaves=8
    ),
)


def _mutate(data: st.DataObject, document: dict[str, Any]) -> dict[str, Any]:
    """One change at a random place: replace, delete, rename, append or wrap a value."""
    box: dict[str, Any] = {"doc": document}
    parent: Any = box
    key: Any = "doc"
    for _ in range(data.draw(st.sampled_from([5, 4, 3, 2, 1]), label="depth")):  # deep mostly, the top now and then
        node = parent[key]
        if isinstance(node, dict) and node:
            parent, key = node, data.draw(st.sampled_from(sorted(node)), label="key")
        elif isinstance(node, list) and node:
            parent, key = node, data.draw(st.integers(0, len(node) - 1), label="index")
        else:
            break
    node = parent[key]
    operation = data.draw(st.sampled_from(["replace", "delete", "rename", "append", "wrap"]), label="operation")
    if operation == "replace" or (operation == "delete" and parent is box):
        parent[key] = data.draw(values, label="value")
    elif operation == "delete":
        del parent[key]
    elif operation == "rename" and isinstance(parent, dict) and parent is not box:
        parent[data.draw(names, label="new name")] = parent.pop(key)
    elif operation == "append" and isinstance(node, list):
        node.append(data.draw(values, label="value"))
    elif operation == "append" and isinstance(node, dict):
        node[data.draw(names, label="new key")] = data.draw(values, label="value")
    else:
        parent[key] = [node]
    return box["doc"]


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A small valid NN_data.json, mutated 1 to 3 times, then possibly cut or with a byte changed."""
    data = draw(st.data())
    document = small_document()
    for _ in range(draw(st.integers(1, 3))):
        document = _mutate(data, document)
    text = json.dumps(document)
    for key, raw in RAW.items():
        text = text.replace(json.dumps(f"@RAW:{key}"), raw)
    encoded = text.encode()
    damage = draw(st.sampled_from(["none"] * 14 + ["cut", "byte"]))
    if damage != "none" and encoded:
        at = draw(st.integers(0, len(encoded) - 1))
        encoded = (
            encoded[:at] if damage == "cut" else encoded[:at] + bytes([draw(st.integers(0, 255))]) + encoded[at + 1 :]
        )
    return encoded


def _one_line(error: LayerscopeError) -> None:
    text = str(error)
    assert len(text.splitlines()) == 1 and text.startswith("NN_data.json: "), repr(text)


def test_the_small_document_is_valid(tmp_path):
    data = read_nn_data(nn_data.write(tmp_path / "NN_data.json", small_document()))
    assert len(data.names) == 10 and data.images.shape == (10, 1, 4, 4) and len(data.aggregate_names) == 10
    assert data.predicted[7] == 1 and data.layers == ["conv2d_1", "dense_1", "dense_2"]


@settings(max_examples=200, **SETTINGS)
@given(documents())
def test_read_nn_data_reads_or_refuses_in_one_line(content):
    with sandbox() as tmp:
        (tmp / "NN_data.json").write_bytes(content)
        try:
            data = read_nn_data(tmp / "NN_data.json")
        except LayerscopeError as e:
            _one_line(e)
        else:  # what was read is what a Run can hold and scikit-learn can project
            n = len(data.names)
            assert n > 0 and data.labels.shape == data.predicted.shape == (n,) and data.images.shape[0] == n
            assert all(0 <= k < len(data.class_keys) for k in (*data.labels, *data.predicted))
            assert all(is_path_name(layer) and layer != "input" for layer in data.layers)
            for name in (*data.names, *data.aggregate_names):
                assert 0 < len(name) <= 200 and name.isprintable()
            for values in (*data.activations.values(), *data.aggregate_activations.values()):
                assert values.dtype == np.float32 and values.shape[1] > 0
                assert (np.abs(values[np.isfinite(values).all(1)]) <= MAX_VALUE).all()
            for values in data.activations.values():
                assert np.isfinite(values).all()  # a layer in activations has every dataset instance
        assert tree(tmp) == ["NN_data.json"]


@settings(max_examples=40, **SETTINGS)
@given(documents())
def test_import_makes_a_whole_run_or_nothing(content):
    with sandbox() as tmp:
        (tmp / "NN_data.json").write_bytes(content)
        try:
            run = import_nn_data(tmp / "NN_data.json", tmp / "run")
        except LayerscopeError as e:
            _one_line(e)
            assert tree(tmp) == ["NN_data.json"]  # no Run, no staging directory left behind
        else:
            again = Run(tmp / "run")
            assert len(again.labels) == len(run.labels) > 0
            assert sorted(p.name for p in tmp.iterdir()) == ["NN_data.json", "run"]


# -- through the real command line, in-process ------------------------------------------------------------------------


def _document_with(change) -> str:
    document = small_document()
    change(document)
    return json.dumps(document)


CLI_CASES = {
    "NaN": (
        _document_with(lambda d: d["activations"]["dense_1"]["x_1"].__setitem__(0, float("nan"))),
        "holds the literal NaN",
    ),
    "Infinity": (
        _document_with(lambda d: d["projections"]["dense_1"]["x_1"].__setitem__(0, float("inf"))),
        "holds the literal Infinity",
    ),
    "1e300": (_document_with(lambda d: d["activations"]["dense_2"]["x_2"].__setitem__(0, 1e300)), "holds 1e+300"),
    "deep nesting": ("[" * 200_000 + "]" * 200_000, "nests lists or objects too deeply"),
    "5000 digits": ('{"images": ' + "1" * 5000 + "}", "holds a number that cannot be read"),
    "300-character layer": (
        _document_with(lambda d: d["projections"].update({"p" * 300: {}})),
        "is 300 characters long",
    ),
    "NUL in a layer name": (_document_with(lambda d: d["projections"].update({"a\x00b": {}})), "is not a plain name"),
    "zero-width activations": (
        _document_with(lambda d: d["activations"].update(dense_2={n: [] for n in d["activations"]["dense_2"]})),
        "is an empty list",
    ),
    "not UTF-8": ("\udcff", "is not JSON"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_import_json_of_a_malformed_file_is_one_line(capsys, monkeypatch, tmp_path, case):
    text, fragment = CLI_CASES[case]
    source = tmp_path / "NN_data.json"
    source.write_bytes(text.encode("utf-8", "surrogateescape"))
    monkeypatch.chdir(tmp_path)
    line = one_line_error(capsys, "import-json", source, "--out", tmp_path / "run")
    assert line.startswith("error: NN_data.json: ") and fragment in line and "Traceback" not in line
    assert tree(tmp_path) == ["NN_data.json"]
