"""Malformed Runs, generated: a manifest with any value replaced or removed, an array truncated, re-headed or made a
pickle. Whatever layerscope reads of such a Run either works or fails with one line (a LayerscopeError, exit code 2
from the CLI); nothing is unpickled, nothing outside the Run is written, memory stays bounded."""

from __future__ import annotations

import io
import json
import os
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerscope.ablation import list_ablations
from layerscope.errors import LayerscopeError
from layerscope.run import Run
from tests.conftest import cli

MEMORY_BOUND = 256 << 20  # what reading a broken 4,000-image Run may allocate, at most
FUZZ = settings(
    max_examples=int(os.environ.get("LAYERSCOPE_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# values that break a manifest: wrong types, out-of-range numbers, names that would be paths, deep nesting
odd_text = st.sampled_from(["", "../../../../tmp/x", "a/b", ".hidden", "x" * 300, "fc\x001", "²", "--1", "os:system"])
odd_number = st.sampled_from([-1, 0, 2**31 - 1, 2**63, 10**30, -(10**30), 1e300, 0.5, True])
odd_value = st.recursive(
    st.none()
    | st.booleans()
    | odd_number
    | st.integers()
    | st.floats(allow_nan=False)
    | odd_text
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5) | odd_text, inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON value."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:6]):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(manifest: dict[str, Any], path: tuple, action: str, value: Any) -> Any:
    if not path:
        return value
    *parents, last = path
    node: Any = manifest
    for key in parents:
        node = node[key]
    if action == "delete":
        del node[last]
    else:
        node[last] = value
    return manifest


class Pickled:
    """An object whose unpickling would create a file: proof that nothing was unpickled."""

    sentinel = ""

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def _exercise(path: Path) -> None:
    """What the CLI and the dashboard read of a Run, every part of it."""
    run = Run(path)
    run.computed()
    run.dataset()
    _ = run.names, run.probs, run.class_names, run.aggregates
    list_ablations(run)
    for info in run.layers:
        if info.kind == "dense":
            np.asarray(run.activations(info.name)[:5])
        if info.kind == "conv":
            np.asarray(run.channel_summary(info.name, "max")[:5])
        for method in run.manifest.get("projections", {}).get(info.name, {}):
            np.asarray(run.projection(info.name, method)[:5])
        if info.name in (run.manifest.get("topk") or {}).get("layers", []):
            run.topk(info.name)
        if run.has_features(info.name, "pca_components"):
            np.asarray(run.features(info.name, "pca_components")[:1])
    run.load_model()


def _one_line_or_fine(path: Path) -> None:
    tracemalloc.start()
    try:
        _exercise(path)
    except LayerscopeError as e:
        assert "\n" not in str(e) and str(e).strip(), repr(str(e))
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB"


def _cli_one_line_or_fine(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, _, err = cli(capsys, "info", path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("error: ")), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def pristine(tiny_run, tmp_path_factory):
    return Path(shutil.copytree(tiny_run.path, tmp_path_factory.mktemp("fuzz") / "pristine"))


@pytest.fixture
def work(pristine, tmp_path):
    """A copy of the tiny Run to break, inside a folder whose other files must stay as they are."""
    (tmp_path / "beside.txt").write_text("untouched")
    return Path(shutil.copytree(pristine, tmp_path / "run"))


def _outside(tmp_path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in tmp_path.rglob("*")
        if p.is_file() and "run" not in p.relative_to(tmp_path).parts[:1]
    }


@FUZZ
@given(data=st.data())
def test_a_broken_manifest_is_one_line_or_works(work, tmp_path, capsys, data):
    text = (work / "manifest.json").read_text()
    manifest = json.loads(text)
    before = _outside(tmp_path)
    path = data.draw(st.sampled_from(_paths(manifest)))
    action = data.draw(st.sampled_from(["delete", "replace"] if path else ["replace"]))
    broken = _mutate(manifest, path, action, data.draw(odd_value))
    try:
        (work / "manifest.json").write_text(json.dumps(broken))
        _one_line_or_fine(work)
        _cli_one_line_or_fine(capsys, work)
    finally:
        (work / "manifest.json").write_text(text)
    assert _outside(tmp_path) == before


@FUZZ
@given(data=st.data())
def test_a_damaged_array_is_one_line_or_works(work, tmp_path, capsys, data):
    run = Run(work)
    arrays = sorted({run.file(p.relative_to(work).as_posix()) for p in work.rglob("*.npy")})
    target = data.draw(st.sampled_from(arrays))
    original = target.read_bytes()
    sentinel = tmp_path / "unpickled"
    before = _outside(tmp_path)
    damage = data.draw(st.sampled_from(["truncate", "extend", "reshape", "retype", "pickle", "garbage", "empty"]))
    buffer = io.BytesIO()
    if damage == "truncate":
        buffer.write(original[: data.draw(st.integers(0, len(original) - 1))])
    elif damage == "extend":
        buffer.write(original + b"\0" * data.draw(st.integers(1, 4096)))
    elif damage == "reshape":
        shape = data.draw(st.lists(st.integers(0, 70), min_size=0, max_size=4))
        np.save(buffer, np.zeros(shape, np.float32))
    elif damage == "retype":
        dtype = data.draw(st.sampled_from(["<i8", "<f2", "|b1", "<c8", "<U3", "|S4", ">f4"]))
        np.save(buffer, np.zeros(np.load(io.BytesIO(original), mmap_mode=None).shape, dtype))
    elif damage == "pickle":
        Pickled.sentinel = str(sentinel)
        np.save(buffer, np.array([Pickled()], dtype=object), allow_pickle=True)
    elif damage == "garbage":
        buffer.write(data.draw(st.binary(max_size=256)))
    try:
        target.write_bytes(buffer.getvalue())
        _one_line_or_fine(work)
        _cli_one_line_or_fine(capsys, work)
    finally:
        target.write_bytes(original)
    assert not sentinel.exists(), "an array was unpickled"
    assert _outside(tmp_path) == before


def test_a_pickled_array_is_refused_with_one_line(work, tmp_path):
    Pickled.sentinel = str(tmp_path / "unpickled")
    target = work / "labels.npy"
    with open(target, "wb") as f:
        np.save(f, np.array([Pickled()], dtype=object), allow_pickle=True)
    with pytest.raises(LayerscopeError, match="labels.npy holds Python objects, which layerscope never unpickles"):
        Run(work).dataset()
    assert not os.path.exists(Pickled.sentinel)


@pytest.mark.parametrize(
    "relpath, damage, message",
    [
        (
            "activations/fc1.npy",
            lambda a: a[:100],
            r"activations/fc1\.npy holds 100x64 float32 where the manifest says",
        ),
        ("probs.npy", lambda a: a[:, :3], r"probs\.npy holds 4000x3 float32"),
        ("images.npy", None, r"images\.npy is truncated"),
    ],
)
def test_an_array_that_does_not_match_the_manifest_is_named(work, relpath, damage, message):
    path = work / relpath
    if damage is None:
        path.write_bytes(path.read_bytes()[:-10])
    else:
        np.save(path, np.ascontiguousarray(damage(np.load(path))))
    run = Run(work)
    with pytest.raises(LayerscopeError, match=message):
        _exercise(run.path)
