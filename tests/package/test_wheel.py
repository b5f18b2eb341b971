"""The wheel: what ``pip install layerscope`` gets, not the editable checkout the rest of the suite uses.

The wheel is built from the source tree, installed into a clean venv (no system site-packages, no PYTHONPATH, run
from a directory outside the checkout), and its own ``layerscope demo`` serves the dashboard. The tests prove that
the installed package is the wheel's and not the checkout, that the page's every stylesheet and script (Dash's
bundles and all of dashboard/assets/) is referenced and served, and that the Draw panel's route answers a stroke
with a prediction made by the shipped weights. A file missing from ``[tool.setuptools.package-data]`` fails here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

pytestmark = pytest.mark.package

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = REPO_ROOT / "src" / "layerscope" / "dashboard" / "assets"
TORCH = "torch==2.13.0"  # pinned: an unpinned torch pulls a multi-GB CUDA build; this CPU build is on local disk
PAGE_DEADLINE_S = 600  # the first demo start prepares the MNIST Run from the shipped weights (~25-60 s on 2 cores)
# no proxy for the local server, whatever the environment says
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _tail(text: str, chars: int = 4000) -> str:
    return text if len(text) <= chars else "...\n" + text[-chars:]


def _clean_env(cache: Path, venv: Path | None = None) -> dict[str, str]:
    """The environment of a user's shell: nothing that points Python at the checkout or the test's venv."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", LAYERSCOPE_CACHE=str(cache))
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(what: str, command: list[object], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``command``; its output (stdout and stderr together) is shown only when it fails."""
    try:
        proc = subprocess.run(
            [str(c) for c in command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        output = e.output.decode(errors="replace") if isinstance(e.output, bytes) else e.output or ""
        pytest.fail(f"{what} took over {timeout:.0f} s:\n{_tail(output)}")
    assert proc.returncode == 0, f"{what} failed (exit code {proc.returncode}):\n{_tail(proc.stdout)}"
    return proc.stdout


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path  # a working directory outside the checkout
    env: dict[str, str]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from the source tree and installed, torch first, into a clean venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    # the build reads a copy of the tree: a build in the checkout writes build/ there, and a build/lib left from an
    # earlier build would put into the wheel files that package-data no longer names, hiding the very bug tested here
    source = tmp / "source"
    shutil.copytree(
        REPO_ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    for path in REPO_ROOT.iterdir():  # pyproject.toml, README.md, LICENSE (its metadata), ...
        if path.is_file():
            shutil.copy2(path, source / path.name)
    home = tmp / "home"
    home.mkdir()
    env = _clean_env(tmp / "cache")
    wheels = tmp / "wheels"
    _run("pip wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, source], home, env, 900)
    (wheel,) = wheels.glob("layerscope-*.whl")
    venv = tmp / "venv"
    _run("python -m venv", [sys.executable, "-m", "venv", venv], home, env, 300)
    python = venv / "bin" / "python"
    # --no-compile: byte-compiling torch and the dependencies takes a minute on 2 cores; what the demo imports
    # compiles when it is imported
    _run(f"pip install {TORCH}", [python, "-m", "pip", "install", "--no-compile", TORCH], home, env, 1200)
    _run("pip install the wheel", [python, "-m", "pip", "install", "--no-compile", wheel], home, env, 1800)
    return Installed(wheel, venv, home, _clean_env(tmp / "cache", venv))


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a POST when ``body`` is given."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="GET" if body is None else "POST")
    try:
        with HTTP.open(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:PORT/
    port: int
    page: str  # the HTML of /
    log: Path


@pytest.fixture(scope="module")
def served(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The installed ``layerscope demo`` serving on a free port, until the module's tests are done."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    command = [str(installed.venv / "bin" / "layerscope"), "demo", "--no-browser", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=installed.home, env=installed.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + PAGE_DEADLINE_S
        while True:
            try:
                status, body = _request(url)
                if status == 200:
                    break
            except OSError:  # not listening yet
                pass
            assert proc.poll() is None, f"layerscope demo exited ({proc.returncode}):\n{_tail(log.read_text())}"
            assert time.monotonic() < deadline, f"no page in {PAGE_DEADLINE_S} s:\n{_tail(log.read_text())}"
            time.sleep(0.5)
        yield Served(url, port, body.decode(), log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class _Page(HTMLParser):
    """What a page references (``<link href>``, ``<script src>``) and its Dash config."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.config_text = ""
        self._in_config = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("href"):
            self.refs.append(str(a["href"]))
        elif tag == "script" and a.get("src"):
            self.refs.append(str(a["src"]))
        self._in_config = tag == "script" and a.get("id") == "_dash-config"

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config_text += data

    def handle_endtag(self, tag: str) -> None:
        self._in_config = False


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_the_wheel_holds_every_file_the_package_reads_at_run_time(installed: Installed) -> None:
    """The wheel has the dashboard's assets, the shipped weights, the bundled MNIST and py.typed."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    package = REPO_ROOT / "src" / "layerscope"
    wanted = [package / "py.typed", *ASSETS.iterdir(), *(package / "models" / "weights").iterdir()]
    wanted += [*(package / "data" / "mnist").glob("*.gz"), package / "data" / "mnist" / "README.md"]
    missing = sorted(p.relative_to(package.parent).as_posix() for p in wanted if p.is_file())
    missing = [name for name in missing if name not in names]
    assert not missing, f"the wheel {installed.wheel.name} lacks {missing}: see [tool.setuptools.package-data]"


def test_the_installed_layerscope_is_the_wheels_not_the_checkout(installed: Installed) -> None:
    """``import layerscope`` in the venv finds the venv's copy, with its assets folder beside it."""
    code = "import layerscope, layerscope.dashboard.app as a; print(layerscope.__file__); print(a.__file__)"
    python = installed.venv / "bin" / "python"
    lines = _run("import layerscope", [python, "-c", code], installed.home, installed.env, 300).split()
    package, app = Path(lines[-2]).resolve(), Path(lines[-1]).resolve()
    assert package.is_relative_to(installed.venv.resolve()), package
    assert not package.is_relative_to(REPO_ROOT), package
    folder = app.parent / "assets"
    installed_assets = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    missing = sorted({p.name for p in ASSETS.iterdir()} - installed_assets)
    assert not missing, f"the installed dashboard at {app.parent} lacks assets {missing}"


def test_the_page_references_and_serves_every_stylesheet_and_script(served: Served) -> None:
    """Every ``<link href>`` and ``<script src>`` of the page answers 200, and every file of dashboard/assets/ is
    among them (Dash references only the assets it finds installed), served as it is in the source tree."""
    refs = _parse(served.page).refs
    assert any(urlsplit(r).path.startswith("/_dash-component-suites/") for r in refs), refs
    failed = []
    for ref in refs:
        status, _ = _request(urljoin(served.url, ref))
        if status != 200:
            failed.append(f"{ref}: {status}")
    assert not failed, f"the page's references that do not answer 200: {failed}"
    paths = {urlsplit(r).path for r in refs}
    sources = sorted(p for p in ASSETS.iterdir() if p.suffix in (".css", ".js"))
    assert sources, f"no css or js in {ASSETS}"
    missing = [p.name for p in sources if f"/assets/{p.name}" not in paths]
    assert not missing, f"the installed dashboard's page does not reference the assets {missing}; it has {refs}"
    for path in sources:
        status, body = _request(urljoin(served.url, f"assets/{path.name}"))
        assert status == 200 and body == path.read_bytes(), f"/assets/{path.name} is not the source's file"


def test_the_draw_panel_answers_a_stroke_with_a_prediction(served: Served) -> None:
    """A vertical line posted as assets/draw.js posts strokes (to the route it names, with the page's Origin) is
    answered 200 with 10 class probabilities summing to 1, and the shipped model reads it as a 1."""
    page = _parse(served.page)
    status, script = _request(urljoin(served.url, "assets/draw.js"))
    assert status == 200
    found = re.search(r'const ROUTE = "([^"]+)"', script.decode())
    assert found, "assets/draw.js names no ROUTE to post strokes to"
    config = json.loads(page.config_text) if page.config_text else {}
    prefix = config.get("requests_pathname_prefix") or "/"  # as draw.js finds it
    # one stroke of a pen moving down the middle, points rounded as draw.js rounds them
    stroke = [[round(0.5 + 0.004 * math.sin(i), 4), round(0.15 + 0.7 * i / 24, 4)] for i in range(25)]
    version = int(time.time() * 1000)  # draw.js: max(version + 1, Date.now())
    body = {"strokes": [stroke], "version": version, "figure": True, "panels": [], "maps": []}
    headers = {
        "Content-Type": "application/json",
        "Origin": f"http://127.0.0.1:{served.port}",
        "Host": f"127.0.0.1:{served.port}",
    }
    status, answer_bytes = _request(urljoin(served.url, prefix + found.group(1)), json.dumps(body).encode(), headers)
    assert status == 200, f"POST {prefix}{found.group(1)}: {status} {answer_bytes[:300]!r}"
    answer = json.loads(answer_bytes)
    assert answer["version"] == version and not answer.get("stale") and not answer.get("empty"), answer
    probs = answer["bars"]["x"]
    assert len(probs) == 10 and all(0 <= p <= 1 for p in probs) and math.isclose(sum(probs), 1, abs_tol=1e-4), probs
    predicted = max(range(10), key=probs.__getitem__)
    assert answer["caption"].startswith(f"predicted {predicted} "), answer["caption"]
    assert predicted == 1, f"the shipped model reads a vertical line as {predicted}: {probs}"
    assert answer["preview"].startswith("data:image/png;base64,") and answer["figure"]["data"][0]["type"] == "bar"
