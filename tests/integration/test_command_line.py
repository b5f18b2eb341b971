"""The command line speaks one language and answers at once: the same --device and --unit everywhere, plain help,
no heavy imports for --version, --help and info, a busy port handled, and `python -m layerscope`."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from layerscope.layers import parse_unit, parse_units
from tests.conftest import cli, one_line_error

COMMANDS = (
    "train",
    "import-model",
    "info",
    "layers",
    "project",
    "featurevis",
    "ablate",
    "topk",
    "attribute",
    "serve",
    "import-json",
    "export-json",
    "demo",
)
# commands that run a model: one --device, with one default
WITH_DEVICE = ("train", "import-model", "project", "featurevis", "ablate", "topk", "attribute", "serve", "demo")


def test_units_are_written_one_way():
    assert parse_units("7", "fc1") == ("fc1", (7,))
    assert parse_units("fc2:3,7") == ("fc2", (3, 7))
    assert parse_units("fc2:0-3,9", "fc2") == ("fc2", (0, 1, 2, 3, 9))
    assert parse_units("features.3:1") == ("features.3", (1,))
    assert parse_unit("conv2:24") == ("conv2", 24)
    for text, layer, fragment in (
        ("3", None, "which layer?"),
        ("fc2", None, "write LAYER:UNITS"),
        ("fc1:3", "fc2", "names layer 'fc1' but --layer is 'fc2'"),
        (":3", None, "LAYER:UNITS"),
        ("fc2:x", None, "whole numbers"),
        ("fc2:5-2", None, "whole numbers"),
    ):
        with pytest.raises(Exception, match=re.escape(fragment)):
            parse_units(text, layer)
    with pytest.raises(Exception, match="takes one unit"):
        parse_unit("fc2:3,7")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_and_names_every_value(command, capsys):
    code, out, err = cli(capsys, command, "--help")
    assert code == 0, err
    assert "<bool>" not in out and "<int>" not in out and "<str>" not in out and "list[" not in out, out
    options = [line.split() for line in out.splitlines() if line.strip().startswith("--")]
    assert options and all(len(words) >= 2 for words in options), out  # each has a value name or a help text
    assert any(words[0] == "--help" for words in options)
    if command in WITH_DEVICE:
        device = next(line for line in out.split("\n  --") if line.startswith("device"))
        assert "DEVICE" in device and "[default: auto]" in " ".join(device.split()), device
    else:
        assert "--device" not in out


def test_topk_takes_the_unit_as_number_or_layer_and_number(tiny_run, capsys):
    code, by_layer, err = cli(capsys, "topk", tiny_run.path, "--layer", "fc1", "--unit", "5", "--json")
    assert code == 0, err
    code, by_name, err = cli(capsys, "topk", tiny_run.path, "--unit", "fc1:5", "--json")
    assert code == 0, err
    assert json.loads(by_layer) == json.loads(by_name) and json.loads(by_name)["unit"] == 5
    assert "which layer?" in one_line_error(capsys, "topk", tiny_run.path, "--unit", "5")
    assert "--layer is 'fc2'" in one_line_error(capsys, "topk", tiny_run.path, "--unit", "fc1:5", "--layer", "fc2")
    assert "one unit" in one_line_error(capsys, "topk", tiny_run.path, "--unit", "fc1:5,6")


def test_ablate_takes_units_of_a_layer_either_way(tiny_run, capsys):
    code, named, err = cli(capsys, "ablate", tiny_run.path, "--unit", "fc2:3,7", "--device", "cpu")
    assert code == 0, err
    code, of_layer, err = cli(capsys, "ablate", tiny_run.path, "--layer", "fc2", "--unit", "3,7", "--device", "cpu")
    assert code == 0, err

    def figures(text: str) -> str:  # the report without its timing
        return re.sub(r"in \d+\.\d+ s", "", text)

    assert "ablation fc2 3, 7" in named and figures(named) == figures(of_layer)


def _imports_torch(*args: str) -> tuple[int, bool]:
    """(exit code, whether torch was imported) of ``layerscope ARGS`` in a fresh interpreter."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('\\ntorch imported: %s\\n' % ('torch' in sys.modules)))\n"
        "sys.argv = ['layerscope', *sys.argv[1:]]\n"
        "from layerscope.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    return proc.returncode, "torch imported: True" in proc.stderr


def test_version_help_and_info_start_without_torch(tiny_run):
    assert _imports_torch("--version") == (0, False)
    assert _imports_torch("--help") == (0, False)
    assert _imports_torch("info", str(tiny_run.path)) == (0, False)
    assert _imports_torch("layers", str(tiny_run.path), "--json") == (0, False)
    assert _imports_torch("topk", str(tiny_run.path), "--unit", "fc1:0") == (0, True)  # a command that needs it


def test_the_dashboards_first_page_needs_no_torch(tiny_run):
    # importing torch is most of a server's start: the first page is served without it, and the model side is
    # imported (and the model loaded) by the warm-up that serve() starts beside the server
    code = (
        "import sys\n"
        "from layerscope.dashboard.app import create_app\n"
        f"app = create_app({str(tiny_run.path)!r})\n"
        "client = app.server.test_client()\n"
        "for path in ('/', '/_dash-layout', '/_dash-dependencies', '/_layerscope/selected?image=0'):\n"
        "    assert client.get(path).status_code == 200, path\n"
        "print('before', 'torch' in sys.modules)\n"
        "app.layerscope_state.warm_up()\n"
        "print('after', 'torch' in sys.modules, type(app.layerscope_state.__dict__.get('model')).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "before False" in proc.stdout and "after True" in proc.stdout, proc.stdout
    assert "after True NoneType" not in proc.stdout  # the model itself is loaded, not only torch


def test_python_dash_m_layerscope_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "layerscope", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "layerscope 0.1.0", proc.stderr
    proc = subprocess.run([sys.executable, "-m", "layerscope", "info"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Missing argument 'RUN'" in proc.stderr
    assert "Usage: layerscope" not in proc.stderr  # one line, not a usage panel


def test_a_busy_port_moves_on_to_the_next_free_one(capsys):
    from layerscope.cli import _free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        chosen = _free_port("127.0.0.1", port)
    assert chosen != port and port < chosen < port + 20
    assert f"port {port} is in use; serving on {chosen} instead" in " ".join(capsys.readouterr().err.split())
