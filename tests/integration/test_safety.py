"""Safe to open, safe to stop: a Run cannot run code, names cannot escape the Run, updates are all or nothing, a
killed command leaves nothing behind that the next one does not clean, Ctrl-C is one line. Real processes, real
kills (SIGKILL at a chosen point), real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from layerscope.errors import LayerscopeError, RunError
from layerscope.run import Run
from tests.conftest import cli, one_line_error

SCRIPT = Path(sys.executable).with_name("layerscope")


def _files(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".lock"}


def _copy(run: Run, to: Path) -> Path:
    return Path(shutil.copytree(run.path, to))


def _edit(path: Path, change) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _python(code: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter, from the checkout (so ``tests`` imports)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parents[2],
    )


# -- a Run cannot run code ---------------------------------------------------------------------------------------


@pytest.fixture
def hostile_run(tiny_run, tmp_path):
    """A copy of the tiny Run whose manifest names ``os:system`` as the model, with a command that would create a
    sentinel file."""
    path = _copy(tiny_run, tmp_path / "hostile")
    sentinel = tmp_path / "ran"
    _edit(path, lambda m: m.update(model={"class": "os:system", "args": {"command": f"touch {sentinel}"}}))
    return path, sentinel


def test_a_manifest_naming_os_system_runs_nothing(hostile_run, capsys):
    path, sentinel = hostile_run
    code, out, _ = cli(capsys, "info", path)
    assert code == 0 and "os:system" in out  # info shows the class; it never imports it
    for args in (
        ["attribute", path, "--image", "0"],
        ["project", path, "--layer", "conv1", "--method", "pca", "--recompute"],
        ["topk", path, "--layer", "conv1", "--unit", "0", "--k", "20"],
        ["featurevis", path, "--layer", "fc1", "--unit", "0", "--out", path.parent / "fv.png", "--steps", "2"],
        ["ablate", path, "--unit", "conv2:1"],
    ):
        line = one_line_error(capsys, *args)
        assert "os:system, not layerscope's own" in line and "--trust-model-code" in line, line
    assert not sentinel.exists()
    # trusted, it is still no nn.Module: refused before anything is called
    line = one_line_error(capsys, "attribute", path, "--image", "0", "--trust-model-code")
    assert "os:system is not a torch.nn.Module subclass; nothing was called" in line
    assert not sentinel.exists()


def test_serve_refuses_a_hostile_model_before_starting(hostile_run):
    path, sentinel = hostile_run
    proc = subprocess.run(
        [str(SCRIPT), "serve", str(path), "--no-browser", "--port", "8791"], capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "--trust-model-code" in lines[0], proc.stderr
    assert not sentinel.exists()


def test_a_class_from_elsewhere_needs_trust_and_never_searches_the_current_directory(tiny_run, tmp_path, capsys):
    path = _copy(tiny_run, tmp_path / "run")
    sentinel = tmp_path / "imported"
    (tmp_path / "evilmodels.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    _edit(path, lambda m: m["model"].update({"class": "evilmodels:Net"}))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert "evilmodels:Net, not layerscope's own" in one_line_error(capsys, "attribute", path, "--image", "0")
        assert not sentinel.exists()  # the module beside the user was not even imported
        os.environ["LAYERSCOPE_TRUSTED_MODELS"] = "somethingelse:*"
        assert "not layerscope's own" in one_line_error(capsys, "attribute", path, "--image", "0")
    finally:
        os.environ.pop("LAYERSCOPE_TRUSTED_MODELS", None)
        os.chdir(cwd)
    assert not sentinel.exists()


def test_the_allow_list_trusts_a_class(tiny_run, tmp_path, monkeypatch):
    path = _copy(tiny_run, tmp_path / "run")
    _edit(path, lambda m: m["model"].update({"class": "tests.models:Nope"}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(LayerscopeError, match="not layerscope's own"):
        Run(path).load_model()
    (tmp_path / "config" / "layerscope").mkdir(parents=True)
    (tmp_path / "config" / "layerscope" / "trusted-models").write_text("# my models\ntests.*\n")
    with pytest.raises(LayerscopeError, match="cannot import model class 'tests.models:Nope'"):
        Run(path).load_model()  # trusted now: imported (and the class is not there)


# -- names that become paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../tmp/x", "a/b", ".hidden", "x" * 300, "fc\x001", ""])
def test_a_layer_name_that_is_not_a_plain_name_is_refused(tiny_run, tmp_path, capsys, name):
    path = _copy(tiny_run, tmp_path / "run")
    _edit(path, lambda m: m["layers"][4].update(name=name))
    before = _files(tmp_path)
    with pytest.raises(RunError, match=r"layers\[4\]\.name .* is not a plain name"):
        Run(path)
    line = one_line_error(capsys, "project", path, "--layer", name or "x", "--method", "pca", "--recompute")
    assert "layers[4].name" in line
    assert _files(tmp_path) == before
    assert not Path("/tmp/x").exists() or name != "../../../../tmp/x"


# -- updates are all or nothing ----------------------------------------------------------------------------------


def test_two_concurrent_recomputes_leave_one_consistent_result(tiny_run, tmp_path):
    path = _copy(tiny_run, tmp_path / "run")
    procs = [
        subprocess.Popen(
            [str(SCRIPT), "project", str(path), "--layer", "conv1", "--method", "pca", "--recompute", "--seed", seed],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
    run = Run(path)
    meta = run.projection_meta("conv1", "pca")
    embedding, scores = np.asarray(run.projection("conv1", "pca")), np.asarray(run.features("conv1"))
    np.testing.assert_array_equal(embedding, scores[:, :2])  # projection and features from the same fit
    assert meta["params"]["random_state"] in (1, 2)
    files = run.manifest["files"]
    generations = {files[f"features/conv1.{part}.npy"].split(".g")[1] for part in ("pca", "pca_components")}
    assert generations == {files["projections/conv1/pca.npy"].split(".g")[1]}
    # only the committed files are left: the other process's ones were replaced and removed
    assert sorted(p.name for p in (path / "projections" / "conv1").iterdir()) == [
        Path(files["projections/conv1/pca.npy"]).name
    ]


def _unnamed(path: Path) -> list[Path]:
    """Files in the Run that no manifest names: temporary files and arrays of updates that never committed."""
    named = set(json.loads((path / "manifest.json").read_text()).get("files", {}).values())
    return [
        p
        for p in sorted(path.rglob("*"))
        if p.name.endswith(".tmp") or (".g" in p.name and p.relative_to(path).as_posix() not in named)
    ]


KILL_AT_FIFTH_ARRAY = """
    import os, signal, sys
    import numpy as np
    import layerscope.run as run_module
    calls = []
    real_save = np.save

    def save(f, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # half of the fifth array written, then killed: no cleanup can run
            f.write(b"\\x93NUMPY partial")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(f, array, *args, **kwargs)

    run_module.np.save = save
    sys.argv = ["layerscope", *sys.argv[1:]]
    from layerscope.cli import main
    main()
"""


def test_a_topk_killed_mid_write_leaves_the_previous_topk_and_its_leftovers_are_cleaned(tiny_run, tmp_path, capsys):
    path = _copy(tiny_run, tmp_path / "run")
    before = {name: np.asarray(Run(path).topk(name).values) for name in ("conv1", "conv2", "fc1")}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_AT_FIFTH_ARRAY), "topk", str(path), "--layer", "fc1"]
        + ["--unit", "0", "--k", "12", "--store"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(_unnamed(path)) >= 5, "the kill should have left staged arrays and a temporary file"
    assert any(p.name.endswith(".tmp") for p in _unnamed(path))
    code, _, err = cli(capsys, "info", path)  # the next command that opens the Run
    assert code == 0, err
    assert _unnamed(path) == []
    run = Run(path)
    assert run.manifest["topk"]["k"] == 9
    for name, values in before.items():
        np.testing.assert_array_equal(run.topk(name).values, values)


KILL_BETWEEN_RENAMES = """
    import os, signal, sys
    import layerscope.run as run_module
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if ".old-" in str(dst):  # the old Run is moved aside; the new one is not in place yet
            os.kill(os.getpid(), signal.SIGKILL)

    run_module.os.replace = replace
    sys.argv = ["layerscope", *sys.argv[1:]]
    from layerscope.cli import main
    main()
"""


def test_train_force_killed_between_its_renames_gets_the_old_run_back(tiny_run, tmp_path, capsys):
    out = _copy(tiny_run, tmp_path / "run")
    manifest = (out / "manifest.json").read_text()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_BETWEEN_RENAMES), "train", "--preset", "tiny", "--epochs", "1"]
        + ["--out", str(out), "--force", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() and list(tmp_path.glob(".run.old-*"))
    code, _, err = cli(capsys, "info", out)
    assert code == 0, err
    assert "moved back the Run" in err
    assert (out / "manifest.json").read_text() == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_queries_do_not_write_into_the_run(tiny_run, tmp_path, capsys):
    path = _copy(tiny_run, tmp_path / "run")
    before = _files(path)
    code, out, err = cli(capsys, "topk", path, "--layer", "fc1", "--unit", "3", "--k", "12", "--json")
    assert code == 0, err
    assert len(json.loads(out)["images"]) == 12  # more than the Run stores: computed, not stored
    code, out, err = cli(capsys, "topk", path, "--layer", "fc1", "--unit", "3", "--k", "4", "--json")
    assert code == 0, err
    stored = Run(path).topk("fc1")
    assert [r["index"] for r in json.loads(out)["images"]] == stored.indices[3, :4].tolist()
    fv = tmp_path / "fv.png"
    code, _, err = cli(capsys, "featurevis", path, "--layer", "fc1", "--unit", "1", "--out", fv, "--steps", "4")
    assert code == 0 and fv.is_file(), err
    assert _files(path) == before
    code, _, err = cli(
        capsys, "featurevis", path, "--layer", "fc1", "--unit", "1", "--out", fv, "--steps", "4", "--store"
    )
    assert code == 0, err
    assert (path / "featurevis" / "fc1" / "1.npz").is_file()  # asked for: stored


# -- numbers from the command line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--lr", "nan", "--out", "{new}"], "--lr nan is out of range"),
        (["train", "--lr", "inf", "--out", "{new}"], "--lr inf is out of range"),
        (["train", "--epochs", "100000000000", "--out", "{new}"], "--epochs 100000000000 is out of range"),
        (["train", "--epochs", "1e30", "--out", "{new}"], "Invalid value for '--epochs'"),
        (["train", "--image-size", "0", "--out", "{new}"], "--image-size 0 is out of range"),
        (["serve", "{run}", "--port", "99999", "--no-browser"], "--port 99999 is out of range"),
        (["ablate", "{run}", "--unit", "fc2:0-100000000000"], "at most 1,048,576 units at once"),
        (["ablate", "{run}", "--unit", "conv2:40"], "unit 40 is out of range"),
        (["ablate", "{run}", "--unit", "fc2:1", "--scale", "nan"], "--scale nan is out of range"),
        (["topk", "{run}", "--layer", "fc1", "--unit", "0", "--k", "1000000000"], "--k 1000000000 is out of range"),
        (["attribute", "{run}", "--image", "-1"], "--image -1 is out of range"),
        (["attribute", "{run}", "--image", "0", "--target", "10"], "--target 10 is out of range"),
        (["export-json", "{run}", "{dir}"], "is a directory"),
        (["project", "{run}", "--layer", "fc1", "--seed", "-1"], "--seed -1 is out of range"),
        (["info", "{run}", "--bogus"], "No such option: --bogus (see 'layerscope info --help')"),
    ],
)
def test_numbers_out_of_range_are_one_line(tiny_run, tmp_path, capsys, args, fragment):
    before = _files(tiny_run.path)
    args = [a.format(run=tiny_run.path, new=tmp_path / "new", dir=tmp_path) for a in args]
    assert fragment in one_line_error(capsys, *args)
    assert _files(tiny_run.path) == before
    assert not (tmp_path / "new").exists()


# -- Ctrl-C ------------------------------------------------------------------------------------------------------


def _wait_for(proc: subprocess.Popen[str], text: str) -> str:
    """Read the process's stderr until ``text`` appears (or the process ends)."""
    seen = ""
    assert proc.stderr is not None
    while text not in seen:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    return seen


def test_ctrl_c_while_training_is_one_line_and_leaves_no_run(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [str(SCRIPT), "train", "--preset", "tiny", "--out", str(out), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    _wait_for(proc, "epoch 1:")
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=300)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    assert [line for line in rest.splitlines() if line.strip()][-1] == "interrupted; nothing was left half-written."
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_ctrl_c_before_the_command_starts_is_one_line():
    proc = _python(
        """
        import os, signal, sys
        sys.argv = ["layerscope", "info", "."]
        import layerscope.cli  # what the console script does first
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()
        """
    )
    assert proc.returncode == 130 and proc.stderr == "interrupted.\n", proc.stderr


def test_serve_says_it_stopped(tiny_run):
    import socket
    import time

    proc = subprocess.Popen(
        [str(SCRIPT), "serve", str(tiny_run.path), "--no-browser", "--port", "8793"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert proc.stdout is not None
        assert "http://127.0.0.1:8793/" in proc.stdout.readline()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # until the server accepts connections
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 8793)) == 0:
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"stopped: the dashboard of {tiny_run.path} is no longer served." in err
