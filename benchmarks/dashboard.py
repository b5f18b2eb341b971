"""Dashboard figures in headless chromium over all 70,000 MNIST images, optionally beside main's code.

    python benchmarks/dashboard.py [--repeats 15] [--starts 3] [--loads 5] [--run DIR] [--baseline DIR]
                                   [--sessions 20] [--seconds 60]

Starts `layerscope demo` on an empty cache (shipped weights: capture + PCA of input and dense layers, then serve)
and measures, in a real browser: demo start -> page ready; server start on the prepared Run -> page ready and ->
first 70k-point scatter drawn (median of --starts); page open on a running server -> page ready and -> first
70k-point scatter drawn (median of --loads); a full redraw of the 70k-point scatter in the browser; a layer switch
(server + transfer + draw); lasso -> linked views updated (the other projection, the brushed gallery row and, where
it is displayed, the activation panel), p50 and p95; click -> preview (the click event to the frame showing the new
caption), p50 and p95; select an image -> feature maps redrawn, p50 and p95; the server's resident memory; then
--sessions concurrent sessions for --seconds: the requests a scripted visit sent for what the server computes (its
callbacks, the layout and the dashboard's own routes, not static files; page open, a gallery click, a layer switch, a
lasso), replayed back to back from one thread per session, each with its own session id, against
127.0.0.1: p95 latency, errors and the server's memory. With --run DIR the demo is skipped and DIR is served. Rows
with a target carry it as a "goal" note (met or missed); nothing is asserted.

--baseline DIR measures a checkout of main beside the working tree, in the same run, on the same Run and the same
browser. Make that checkout once, and bring it up to date when main moves:

    git worktree add --detach /tmp/layerscope-main main    # later: git -C /tmp/layerscope-main checkout --detach main

(--detach: main is checked out here already, and git checks a branch out in one worktree only; a plain `git worktree
add DIR main` says "'main' is already checked out"). Then pass --baseline /tmp/layerscope-main, or set
$LAYERSCOPE_BENCH_BASELINE to it (its default, which `make bench` passes on:
`LAYERSCOPE_BENCH_BASELINE=/tmp/layerscope-main make bench`). The baseline's server is `python -m layerscope.cli
serve` with PYTHONPATH=DIR/src, the working tree's the same with PYTHONPATH=<this checkout>/src, each run in its
checkout; both are checked first (`import layerscope` must come from that src; where it does not, the command puts
src first on sys.path itself). The two are measured one after the other, taking turns (main, tree, tree, main, ...)
wherever that is cheap; each figure gets a row per version and a ratio main / tree (above 1: the working tree is
faster or smaller).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Table, percentile

REPO = Path(__file__).resolve().parent.parent  # the working tree this script belongs to
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# page ready: both projections and the gallery drawn. (The preview is not waited for: the page opens with it empty.)
# All three are in the Explore view, the one a page opens on, so they are visible once drawn.
# (a panel's parts: #proj-a-graph on main, #proj-a .proj-graph since the panels are one component, projection.py)
PLOT_A = "#proj-a-graph .js-plotly-plot, #proj-a .proj-graph .js-plotly-plot"
PLOT_B = "#proj-b-graph .js-plotly-plot, #proj-b .proj-graph .js-plotly-plot"
READY = [
    "#proj-a-graph .legendtext, #proj-a .proj-graph .legendtext",
    "#proj-b-graph .legendtext, #proj-b .proj-graph .legendtext",
    ".gallery .thumb",
]
EXE = [sys.executable, "-m", "layerscope.cli"]
HEADER = "X-Layerscope-Session"  # layerscope.dashboard.session.HEADER: one scratch per id (32 hex digits)
UPDATE = "/_dash-update-component"
MAIN, TREE = "main", "tree"
BASELINE_ENV = "LAYERSCOPE_BENCH_BASELINE"  # --baseline's default: lets `make bench` compare with main too
REQUEST_TIMEOUT = 120.0  # seconds one replayed request may take before it counts as an error

# Installed in every page before its own scripts: records window.__first70k, the ms from navigation start until a
# projection first shows all its points (once plotly has drawn them and the browser has painted that frame).
FIRST_SCATTER_JS = """(() => {
    const wanted = %d;
    window.__first70k = null;
    const count = gd => (gd._fullData || []).reduce(
        (n, t) => n + (t.visible === true && t.name !== 'misclassified' ? (t._length || 0) : 0), 0);
    const hooked = new WeakSet();
    const done = () => requestAnimationFrame(() => {
        if (window.__first70k === null) { window.__first70k = performance.now(); }
    });
    (function poll() {
        if (window.__first70k !== null) { return; }
        for (const gd of document.querySelectorAll('%s, %s')) {
            if (!hooked.has(gd) && typeof gd.on === 'function') {
                hooked.add(gd);
                if (count(gd) >= wanted) { done(); }  // drawn before this poll saw it: at most 10 ms late
                gd.on('plotly_afterplot', () => { if (count(gd) >= wanted) { done(); } });
            }
        }
        setTimeout(poll, 10);
    })();
})();"""

# A lasso of `count` points in projection A (plotly's own event) until the linked views show it: projection B
# highlights exactly those images (its selectedpoints, or the images its selection layer draws), the brushed row
# above the gallery names their number and, where the activation panel is displayed (main: everything on one page;
# the new layout draws it only in the Activations view), its "brushed" row is there. Gives [ms, whether the panel
# was waited for].
LASSO_JS = """([count]) => new Promise((done, fail) => {
    const a = document.querySelector('#proj-a-graph .js-plotly-plot, #proj-a .proj-graph .js-plotly-plot');
    const b = document.querySelector('#proj-b-graph .js-plotly-plot, #proj-b .proj-graph .js-plotly-plot');
    const points = [];
    for (let p = 0; p < count; p++) points.push({curveNumber: 1 + (p % 2), pointNumber: p});
    const expected = new Set(points.map(p => p.curveNumber + ':' + p.pointNumber)).size;
    const label = ': ' + expected.toLocaleString('en-US') + ' images';
    const panel = document.querySelector('#panel-area');
    const panelShown = panel !== null && panel.offsetParent !== null;
    const t0 = performance.now();
    a.emit('plotly_selected', {points: points});
    (function poll() {
        // main restyles B's selectedpoints; the tree draws them on B's selection layer (workspace.js highlight)
        const layer = b.querySelector('canvas.selection-layer');
        const n = layer && layer.style.display !== 'none' ? Number(layer.dataset.count) : b.data.slice(0, 10)
            .reduce((s, t) => s + (t.selectedpoints ? t.selectedpoints.length : 0), 0);
        const brushed = document.querySelector('#gallery-brushed');
        const gallery = brushed === null || brushed.textContent.includes(label);
        const row = document.querySelector('#panel-area .act-row');
        const linked = !panelShown || (row !== null && row.textContent.includes('brushed'));
        if (n === expected && gallery && linked) {
            requestAnimationFrame(() => done([performance.now() - t0, panelShown]));
        } else if (performance.now() - t0 > 60000) {
            fail(new Error('linked views not updated after 60 s'));
        } else { setTimeout(poll, 5); }
    })();
})"""

REDRAW_JS = """() => new Promise(done => {
    const gd = document.querySelector('#proj-a-graph .js-plotly-plot, #proj-a .proj-graph .js-plotly-plot');
    const t0 = performance.now();
    Plotly.react(gd, gd.data, Object.assign({}, gd.layout, {datarevision: Math.random()}))
        .then(() => requestAnimationFrame(() => done(performance.now() - t0)));
})"""

# A click on the k-th gallery thumbnail (not the selected one, not a digit's average) until every feature-map grid
# of #fmap-area (inside.py: one `.fmap-grid` per conv layer, its `.fmap` tiles showing slices of one strip PNG held
# in the grid's --sprite style) holds a new strip, the strips are decoded and a frame painted. The click is the
# element's own click(): in the new layout the gallery is in the Explore view, hidden while the Network view shows
# the feature maps, and a hidden element takes no pointer.
FMAPS_JS = """([k]) => new Promise((done, fail) => {
    const sprites = () => Array.from(document.querySelectorAll('#fmap-area .fmap-grid'),
                                     g => g.style.getPropertyValue('--sprite'));
    const before = sprites();
    if (!before.length) { fail(new Error('no feature-map grid in #fmap-area')); return; }
    const thumbs = Array.from(document.querySelectorAll('#gallery-body .thumb'))
        .filter(t => !t.classList.contains('selected') && !t.id.includes('mean'));
    if (!thumbs.length) { fail(new Error('no gallery thumbnail to click')); return; }
    const t0 = performance.now();
    thumbs[k % thumbs.length].click();
    (function poll() {
        const now = sprites();
        if (now.length === before.length && now.every((s, i) => s && s !== before[i])) {
            const urls = now.map(s => s.replace(/^url\\(["']?/, '').replace(/["']?\\)$/, ''));
            Promise.all(urls.map(u => { const img = new Image(); img.src = u; return img.decode(); }))
                .then(() => requestAnimationFrame(() => done(performance.now() - t0)), fail);
        } else if (performance.now() - t0 > 60000) {
            fail(new Error('feature maps not redrawn after 60 s'));
        } else { setTimeout(poll, 5); }
    })();
})"""

# Untimed, between measurements: until the Dash renderer has had no callback to run for 3 polls in a row (or `limit`
# ms passed), so that one measurement's trailing callbacks do not run into the next one's.
SETTLE_JS = """async (limit) => {
    const t0 = performance.now();
    const busy = () => {
        const c = window.store ? window.store.getState().callbacks : {};
        return ['requested', 'prioritized', 'blocked', 'executing', 'watched', 'executed', 'stored']
            .some(k => Array.isArray(c[k]) && c[k].length > 0);
    };
    let quiet = 0;
    while (quiet < 3) {
        if (performance.now() - t0 > limit) { return false; }
        quiet = busy() ? 0 : quiet + 1;
        await new Promise(r => setTimeout(r, 20));
    }
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return true;
}"""


def bench_run(path: Path | None, table: Table | None = None) -> Any:
    """The Run at ``path``, or one made from the shipped weights in a temporary directory as ``layerscope demo``
    prepares it (capture with top-k, PCA of the input and dense layers); ``table`` reports how long that took."""
    from layerscope.data import load_mnist
    from layerscope.models.pretrained import pretrained_seed_cnn
    from layerscope.pipeline import create_run
    from layerscope.run import Run

    if path is not None:
        return Run(path)
    model, spec, provenance = pretrained_seed_cnn()
    out = Path(tempfile.mkdtemp(prefix="layerscope-bench-")) / "mnist"
    atexit.register(shutil.rmtree, out.parent, ignore_errors=True)  # the Run lives as long as this process
    t0 = time.perf_counter()
    run = create_run(out, load_mnist(), model, spec, provenance=provenance, pca_kinds=("image", "dense"))
    if table is not None:
        table.add(
            "Run from the shipped weights (capture + top-k + PCA)",
            time.perf_counter() - t0,
            "s",
            f"setup, once; {len(run.labels):,} images",
        )
    return run


@contextlib.contextmanager
def browsing(app: Any) -> Iterator[tuple[Any, str]]:
    """A Dash ``app`` served from a thread of this process on a free port of 127.0.0.1, and a headless chromium
    (Playwright) context: yields ``(context, url)``; both are closed on exit."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log among the rows
    port = free_port()
    httpd = make_server("127.0.0.1", port, app.server, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(), executable_path=CHROMIUM, args=ARGS, viewport={"width": 1500, "height": 1000}
            )
            try:
                yield context, f"http://127.0.0.1:{port}/"
            finally:
                context.close()
    finally:
        httpd.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 900, log: str = "") -> None:
    """Wait until ``url`` answers; fail at once if ``process`` (the server) has exited (with the tail of ``log``,
    the file its stderr went to, in the message)."""
    end = time.time() + timeout
    while time.time() < end:
        if process is not None and process.poll() is not None:
            tail = ""
            if log and Path(log).is_file():
                tail = "\n" + "\n".join(Path(log).read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the server exited with status {process.returncode} before {url} answered{tail}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def rss_mb(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total / 1024


def page_ready(context: Any, url: str) -> tuple[float, float]:
    """Seconds from navigation until both projections and the gallery are drawn, and until the first
    projection showed all its points (``FIRST_SCATTER_JS``)."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url)
    for selector in READY:
        page.wait_for_selector(selector, timeout=300_000)
    elapsed = time.perf_counter() - start
    page.wait_for_function("() => window.__first70k !== null", timeout=300_000)
    first = float(page.evaluate("() => window.__first70k")) / 1000
    page.close()
    return elapsed, first


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the versions measured ------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One version of the code: how to start its `layerscope` (``exe``, ``env``, run in ``root``) and, once started,
    its server and page."""

    name: str  # MAIN or TREE
    root: Path  # the checkout
    exe: list[str]
    env: dict[str, str]
    imported: str  # where `import layerscope` comes from under exe and env
    logs: Path
    server: subprocess.Popen[bytes] | None = None
    url: str = ""
    page: Any = None
    starts: int = 0

    def start(self, run_dir: Path, started: list[subprocess.Popen[bytes]]) -> float:
        """Start ``serve run_dir`` on a free port (stopping the previous server); seconds until HTTP answers."""
        if self.server is not None:
            stop(self.server)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.starts += 1
        log = self.logs / f"{self.name}-serve-{self.starts}.log"
        t0 = time.perf_counter()
        with open(log, "wb") as err:
            self.server = subprocess.Popen(
                [*self.exe, "serve", str(run_dir), "--no-browser", "--port", str(port)],
                cwd=self.root,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        started.append(self.server)
        wait_http(self.url + "_dash-layout", self.server, log=str(log))
        return time.perf_counter() - t0


def side(name: str, root: Path, logs: Path) -> Side:
    """The ``layerscope`` of checkout ``root``: ``python -m layerscope.cli`` with ``PYTHONPATH=root/src``, checked
    to import from ``root/src`` (the venv's editable install of /work/main comes after PYTHONPATH on sys.path); where
    it does not, ``root/src`` is put first on sys.path by the command itself."""
    src = (root / "src").resolve()
    if not (src / "layerscope" / "__init__.py").is_file():
        raise SystemExit(f"{root} is not a layerscope checkout: {src / 'layerscope'} is missing")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p))
    probe = "import layerscope; print(layerscope.__file__)"
    first = f"import sys; sys.path.insert(0, {str(src)!r}); "
    candidates = [
        (EXE, [sys.executable, "-c", probe]),
        (
            [sys.executable, "-c", first + "import runpy; runpy.run_module('layerscope.cli', run_name='__main__')"],
            [sys.executable, "-c", first + probe],
        ),
    ]
    where = ""
    for exe, check in candidates:
        out = subprocess.run(check, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        where = out.stdout.strip()
        if out.returncode == 0 and Path(where).resolve().is_relative_to(src):
            return Side(name, root.resolve(), exe, env, where, logs)
    raise SystemExit(f"cannot make `import layerscope` come from {src} (it came from {where or 'nowhere'})")


def turns(sides: Sequence[Side], k: int) -> list[Side]:
    """The order of the k-th round: A B, then B A, so that neither version is always measured first."""
    return list(sides) if k % 2 == 0 else list(sides)[::-1]


def settle(page: Any, limit_ms: int = 30_000) -> None:
    page.evaluate(SETTLE_JS, limit_ms)


def focus(s: Side) -> Any:
    """The side's page, brought to the front and with no callback left running."""
    s.page.bring_to_front()
    settle(s.page)
    return s.page


def switch_layer(page: Any, layer: str) -> None:
    """Choose ``layer`` in projection A until its new figure is drawn and painted: dcc.Graph hands plotly the new
    figure's data (``gd.data`` is another array) and a frame has been painted after it."""
    page.evaluate(f"() => {{ window.__before = document.querySelector('{PLOT_A}').data; }}")
    page.click("#proj-a-layer, #proj-a .proj-layer")
    page.get_by_role("option", name=layer, exact=True).click()
    page.wait_for_function(
        f"l => {{ const gd = document.querySelector('{PLOT_A}');"
        " return gd && gd.data !== window.__before && gd._fullData && gd._fullData.length > 5 &&"
        " document.querySelector('#proj-a-layer, #proj-a .proj-layer').textContent.includes(l); }",
        arg=layer,
        timeout=120_000,
    )
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


# Installed before a click: the click event's time stamp, and the time of the first frame painted after the preview
# caption changed (a MutationObserver, then requestAnimationFrame: the frame that shows the new name).
CLICK_WATCH_JS = """() => {
    const caption = document.querySelector('#preview-caption');
    window.__clicked = null; window.__previewed = null;
    document.addEventListener('click', e => { window.__clicked = e.timeStamp; }, {capture: true, once: true});
    const seen = new MutationObserver(() => {
        seen.disconnect();
        requestAnimationFrame(() => { window.__previewed = performance.now(); });
    });
    seen.observe(caption, {childList: true, subtree: true, characterData: true});
}"""


def click_preview(page: Any, k: int) -> float:
    """Milliseconds from a click on the k-th thumbnail of the first gallery row until the frame that shows the
    preview naming another image, as the page saw them: from the click event's time stamp (what playwright spends
    finding the element and moving the mouse before the click is not the dashboard's) to that frame."""
    thumbs = page.locator(".gallery .thumbs").first.locator(".thumb")
    before = page.text_content("#preview-caption")
    page.evaluate(CLICK_WATCH_JS)
    thumbs.nth(k).click()
    page.wait_for_function(
        "b => document.querySelector('#preview-caption').textContent !== b && window.__previewed !== null",
        arg=before,
        timeout=60_000,
    )
    return float(page.evaluate("() => window.__previewed - window.__clicked"))


def show_network(page: Any) -> str:
    """Open the view that holds the feature maps (``#nav-network`` in the new layout; main has one page) and wait
    until its grids are in the DOM. Says which."""
    opened = "one page, no #nav-network"
    if page.query_selector("#nav-network") is not None:
        page.click("#nav-network")
        opened = "in the Network view, the gallery hidden"
    page.wait_for_selector("#fmap-area .fmap-grid", state="attached", timeout=120_000)
    settle(page, 120_000)
    return opened


# -- rows: one per version, and their ratio -------------------------------------------------------------------------

Goal = tuple[float, str]  # (the limit a value must not exceed, how the note says it: "≤ 150 ms")


@dataclass
class Rows:
    """``table``'s rows of each figure: without a baseline one row as before; with one, ``<figure> · main``,
    ``<figure> · tree`` and ``<figure>: main / tree`` (x, above 1: the working tree is faster or smaller)."""

    table: Table
    names: list[str]

    def label(self, figure: str, name: str) -> str:
        return figure if len(self.names) == 1 else f"{figure} · {name}"

    def add(
        self,
        figure: str,
        values: dict[str, float],
        unit: str,
        note: str | dict[str, str] = "",
        goal: Goal | None = None,
        ratio: bool = True,
    ) -> None:
        for name in self.names:
            value = values.get(name, float("nan"))
            text = note.get(name, "") if isinstance(note, dict) else note
            if goal is not None:
                verdict = "-" if math.isnan(value) else "met" if value <= goal[0] else "missed"
                text = f"{text}; goal {goal[1]}: {verdict}" if text else f"goal {goal[1]}: {verdict}"
            self.table.add(self.label(figure, name), value, unit, text)
        if ratio and len(self.names) == 2 and all(n in values for n in self.names):
            better = "smaller" if unit in ("MB",) else "faster"
            self.table.ratio(
                f"{figure}: main / tree",
                values[MAIN],
                values[TREE],
                f"same run; above 1: the working tree is {better}",
            )

    def percentiles(
        self,
        figure: str,
        values: dict[str, list[float]],
        unit: str,
        note: str | dict[str, str] = "",
        goals: dict[str, Goal] | None = None,
    ) -> None:
        goals = goals or {}
        notes = {name: note.get(name, "") if isinstance(note, dict) else note for name in values}
        for q, tag in ((0.5, "p50"), (0.95, "p95")):
            self.add(
                f"{figure}, {tag}",
                {name: percentile(v, q) for name, v in values.items()},
                unit,
                {name: f"n = {len(v)}" + (f"; {notes[name]}" if notes[name] else "") for name, v in values.items()},
                goals.get(tag),
            )


# -- many sessions at once: record a visit's requests, replay them from threads ---------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request a page sent to its server, not for a static file: a ``POST /_dash-update-component``, the layout
    and the callbacks' list (``GET /_dash-layout``, ``/_dash-dependencies``) or one of the dashboard's own routes
    (``GET /_layerscope/...``: the selected image's card, feature-map strips); its method, path with query, body and
    headers."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


def _dynamic(method: str, path: str) -> bool:
    """Whether a request is one a visit's replay sends (`Recorded`): what the server computes for the page."""
    if method == "POST":
        return path == UPDATE
    return method == "GET" and (path in ("/_dash-layout", "/_dash-dependencies") or path.startswith("/_layerscope/"))


_DROP = {"host", "content-length", "connection", "cookie", HEADER.lower()}


def record_visit(context: Any, url: str) -> tuple[list[Recorded], int]:
    """The requests a page sends (`Recorded`) from its open through a gallery click, a layer switch of projection A
    and a lasso in it (each waited for, then the page left to settle), in the order sent; and how many came before
    the first click (the page's open)."""
    page = context.new_page()
    requests: list[Any] = []

    def keep(request: Any) -> None:
        if _dynamic(request.method, urllib.parse.urlsplit(request.url).path):
            requests.append(request)

    page.on("request", keep)
    try:
        page.goto(url)
        for selector in READY:
            page.wait_for_selector(selector, timeout=300_000)
        settle(page, 120_000)
        opening = len(requests)
        click_preview(page, 2)
        settle(page)
        layer = "fc1" if "fc1" not in (page.text_content("#proj-a-layer, #proj-a .proj-layer") or "") else "out"
        switch_layer(page, layer)
        settle(page)
        page.evaluate(LASSO_JS, [2000])
        settle(page)
        recorded = []
        for r in requests:
            parts = urllib.parse.urlsplit(r.url)
            headers = {k: v for k, v in r.all_headers().items() if k.lower() not in _DROP and not k.startswith(":")}
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            body = (r.post_data or "").encode() if r.method == "POST" else None
            recorded.append(Recorded(r.method, path, body, headers))
        return recorded, opening
    finally:
        page.close()


@dataclass
class Load:
    latencies_ms: list[float]  # every request answered 200 or 204
    updated_ms: list[float]  # those answered 200 (204: the callback had nothing to update)
    errors: int  # answered otherwise, or not at all within REQUEST_TIMEOUT
    no_update: int  # 204: a callback that had nothing to change (Dash's PreventUpdate), not an error
    seconds: float  # from the first request sent to the last thread joined
    rss_end_mb: float
    rss_peak_mb: float
    unfinished: int  # threads still running when the join gave up (their requests are not counted)


def replay(url: str, recorded: list[Recorded], sessions: int, seconds: float, pid: int) -> Load:
    """``sessions`` threads, each with its own session id, sending ``recorded`` in order, over and over (thread i
    starting i/sessions of the way through, so that not all ask for the same thing at once), back to back for
    ``seconds``, to ``url`` on 127.0.0.1 only; the server's RSS (``pid``) sampled meanwhile."""
    base = urllib.parse.urlsplit(url)
    if base.hostname != "127.0.0.1":
        raise ValueError(f"sessions are replayed against 127.0.0.1 only, not {base.hostname}")
    end = time.monotonic() + seconds
    latencies: list[float] = []
    updated: list[float] = []
    counts = {"errors": 0, "no_update": 0}
    lock = threading.Lock()

    def visitor(i: int) -> None:
        session = secrets.token_hex(16)  # 32 hex digits, as assets/session.js draws them
        k = i * len(recorded) // sessions
        while time.monotonic() < end:
            r = recorded[k % len(recorded)]
            k += 1
            request = urllib.request.Request(
                f"http://127.0.0.1:{base.port}{r.path}",
                data=r.body,
                headers={**r.headers, HEADER: session},
                method=r.method,
            )
            t0 = time.perf_counter()
            status = 0
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = 0  # refused, reset or timed out
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if status in (200, 204):
                    latencies.append(elapsed)
                    counts["no_update"] += status == 204
                    if status == 200:
                        updated.append(elapsed)
                else:
                    counts["errors"] += 1

    threads = [threading.Thread(target=visitor, args=(i,), daemon=True) for i in range(sessions)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    peak = 0.0
    give_up = end + REQUEST_TIMEOUT + 10
    while any(t.is_alive() for t in threads) and time.monotonic() < give_up:
        with contextlib.suppress(OSError):
            peak = max(peak, rss_mb(pid))
        time.sleep(0.25)
    for t in threads:
        t.join(timeout=max(0.0, give_up - time.monotonic()))
    unfinished = sum(t.is_alive() for t in threads)
    rss_end = rss_mb(pid)
    with lock:
        return Load(
            list(latencies),
            list(updated),
            counts["errors"],
            counts["no_update"],
            time.monotonic() - t0,
            rss_end,
            max(peak, rss_end),
            unfinished,
        )


# -- the measurements -----------------------------------------------------------------------------------------------


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="lassos, clicks, feature-map redraws (p50, p95)")
    parser.add_argument("--starts", type=int, default=3, help="server starts on the prepared Run (median)")
    parser.add_argument("--loads", type=int, default=5, help="page opens on the running server (median)")
    parser.add_argument("--run", type=Path, default=None, help="serve this Run; the demo on an empty cache is skipped")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=os.environ.get(BASELINE_ENV) or None,
        help="a checkout of main (git worktree add --detach /tmp/layerscope-main main), measured beside the working "
        f"tree; default ${BASELINE_ENV}",
    )
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions replayed (0: none)")
    parser.add_argument("--seconds", type=float, default=60, help="how long the sessions are replayed")
    args = parser.parse_args()
    table = Table("dashboard")

    points = 70_000
    if args.run is not None:
        from layerscope.run import Run

        points = len(Run(args.run).labels)
    k_points = f"{points // 1000}k"
    cache = Path(tempfile.mkdtemp(prefix="layerscope-bench-"))
    logs = Path(tempfile.mkdtemp(prefix="layerscope-bench-logs-"))
    profile = tempfile.TemporaryDirectory(prefix="layerscope-bench-chromium-")
    tree = side(TREE, REPO, logs)
    sides = [side(MAIN, args.baseline, logs), tree] if args.baseline is not None else [tree]
    rows = Rows(table, [s.name for s in sides])
    if args.baseline is not None:
        table.add(
            "versions compared",
            float("nan"),
            "",
            "; ".join(f"{s.name}: {s.root} (imports {s.imported}; {revision(s.root)})" for s in sides),
        )
    started: list[subprocess.Popen[bytes]] = []  # every server, stopped however the measurements end
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile.name, executable_path=CHROMIUM, args=ARGS, viewport={"width": 1500, "height": 1000}
            )
            context.add_init_script(FIRST_SCATTER_JS % (points, PLOT_A, PLOT_B))
            # 1. the demo on an empty cache (minutes: capture and PCA of 70,000 images first), once, working tree
            demo_seconds = float("nan")
            if args.run is None:
                port = free_port()
                start = time.perf_counter()
                log = logs / "demo.log"
                with open(log, "wb") as err:
                    demo = subprocess.Popen(
                        [*tree.exe, "demo", "--no-browser", "--port", str(port), "--device", "cpu"],
                        cwd=tree.root,
                        env=dict(tree.env, LAYERSCOPE_CACHE=str(cache)),
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                try:
                    wait_http(f"http://127.0.0.1:{port}/_dash-layout", demo, log=str(log))
                    served = time.perf_counter() - start
                    ready, _ = page_ready(context, f"http://127.0.0.1:{port}/")
                    demo_seconds = served + ready
                    table.add(
                        "demo, empty cache -> page ready",
                        demo_seconds,
                        "s",
                        f"serving after {served:.1f} s; once" + ("; working tree" if len(sides) > 1 else ""),
                    )
                finally:
                    stop(demo)
                run_dir = next(cache.glob("mnist-seed-cnn-*"))
            else:
                table.skip("demo, empty cache -> page ready", f"--run {args.run} given")
                run_dir = args.run

            # 2. serve the prepared Run: process start -> HTTP, -> page ready, -> first 70k scatter; the last stays
            served_s: dict[str, list[float]] = {s.name: [] for s in sides}
            ready_s: dict[str, list[float]] = {s.name: [] for s in sides}
            first_s: dict[str, list[float]] = {s.name: [] for s in sides}
            for k in range(max(1, args.starts)):
                for s in turns(sides, k):
                    served = s.start(run_dir, started)
                    ready, first = page_ready(context, s.url)
                    served_s[s.name].append(served)
                    ready_s[s.name].append(served + ready)
                    first_s[s.name].append(served + first)
            n = max(1, args.starts)
            http_note = {
                name: f"median of {n}; HTTP answering after {statistics.median(v):.1f} s"
                for name, v in served_s.items()
            }
            rows.add(
                "server start -> page ready",
                {name: statistics.median(v) for name, v in ready_s.items()},
                "s",
                http_note,
                (6.0, "≤ 6 s"),
            )
            rows.add(
                f"server start -> first {k_points}-point scatter drawn",
                {name: statistics.median(v) for name, v in first_s.items()},
                "s",
                f"median of {n}",
            )
            if not math.isnan(demo_seconds):
                table.ratio(
                    "demo on an empty cache / server start on its Run",
                    demo_seconds,
                    statistics.median(ready_s[TREE]),
                    "what preparing the Run costs",
                )
            rows.add("server RSS, page served", {s.name: rss_mb(s.server.pid) for s in sides}, "MB", "one page open")

            # 3. page opens on the running servers (browser cache warm), taking turns
            loads: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sides}
            for k in range(max(1, args.loads)):
                for s in turns(sides, k):
                    loads[s.name].append(page_ready(context, s.url))
            rows.add(
                "page open -> page ready (server running)",
                {name: statistics.median(r for r, _ in v) for name, v in loads.items()},
                "s",
                f"median of {max(1, args.loads)}; both projections and the gallery drawn",
                (2.5, "≤ 2.5 s"),
            )
            rows.add(
                f"page open -> first {k_points}-point scatter drawn (server running)",
                {name: statistics.median(f for _, f in v) for name, v in loads.items()},
                "s",
                {
                    name: f"median of {len(v)}, max {max(f for _, f in v):.1f} s; from navigation start"
                    for name, v in loads.items()
                },
            )

            # one page per version from here on, measured in turns
            for s in sides:
                s.page = context.new_page()
                s.page.goto(s.url)
                for selector in READY:
                    s.page.wait_for_selector(selector, timeout=300_000)
                settle(s.page, 120_000)
                s.page.wait_for_timeout(1000)

            # 4. the browser alone: a full redraw of the scatter
            redraw: dict[str, list[float]] = {s.name: [] for s in sides}
            for k in range(5):
                for s in turns(sides, k):
                    redraw[s.name].append(float(focus(s).evaluate(REDRAW_JS)))
            rows.add(
                f"redraw of the {k_points} scatter (browser)",
                {name: statistics.median(v) for name, v in redraw.items()},
                "ms",
                {name: f"median of 5, max {max(v):,.0f} ms; Plotly.react in the page" for name, v in redraw.items()},
            )

            # 5. a layer switch: server + transfer + draw
            switch: dict[str, list[float]] = {s.name: [] for s in sides}
            for k, layer in enumerate(["out", "fc1", "fc2", "out", "fc2"]):
                for s in turns(sides, k):
                    page = focus(s)
                    t0 = time.perf_counter()
                    switch_layer(page, layer)
                    switch[s.name].append((time.perf_counter() - t0) * 1000)
            rows.add(
                f"layer switch -> {k_points} scatter drawn",
                {name: statistics.median(v) for name, v in switch.items()},
                "ms",
                "median of 5; server + transfer + draw",
            )

            # 6. lasso in projection A -> projection B, the brushed gallery row (and the activation panel) updated
            lasso: dict[str, list[float]] = {s.name: [] for s in sides}
            panel: dict[str, bool] = {}
            for k in range(args.repeats):
                count = [500, 2000, 5000][k % 3] + k
                for s in turns(sides, k):
                    ms, panel[s.name] = focus(s).evaluate(LASSO_JS, [count])
                    lasso[s.name].append(float(ms))
            rows.percentiles(
                "lasso -> linked views updated",
                lasso,
                "ms",
                {
                    name: "lassos of 500-5,000 points; projection B + brushed gallery row"
                    + (" + activation panel" if shown else "; the activation panel is in a hidden view")
                    for name, shown in panel.items()
                },
                {"p50": (400.0, "≤ 400 ms")},
            )

            # 7. a gallery click -> the preview shows that image
            clicks: dict[str, list[float]] = {s.name: [] for s in sides}
            for k in range(args.repeats):
                for s in turns(sides, k):
                    clicks[s.name].append(click_preview(focus(s), 1 + k))
            rows.percentiles(
                "click -> preview",
                clicks,
                "ms",
                "gallery thumbnail click: from the click event to the frame that shows the new caption",
                {"p50": (150.0, "≤ 150 ms"), "p95": (300.0, "≤ 300 ms")},
            )

            # 8. select an image (a gallery thumbnail) -> the feature maps show it, in the view that holds them
            where = {s.name: show_network(s.page) for s in sides}
            fmaps: dict[str, list[float]] = {s.name: [] for s in sides}
            for k in range(args.repeats):
                for s in turns(sides, k):
                    fmaps[s.name].append(float(focus(s).evaluate(FMAPS_JS, [3 + 2 * k])))
            grids = {
                s.name: int(s.page.evaluate("() => document.querySelectorAll('#fmap-area .fmap').length"))
                for s in sides
            }
            rows.percentiles(
                "select an image -> feature maps redrawn",
                fmaps,
                "ms",
                {
                    name: f"gallery thumbnail click until all {grids[name]} maps are new, decoded and painted; "
                    + where[name]
                    for name in where
                },
                {"p50": (400.0, "≤ 400 ms")},
            )
            rows.add(
                "server RSS, after the interactions",
                {s.name: rss_mb(s.server.pid) for s in sides},
                "MB",
                "all of the above",
            )
            for s in sides:
                s.page.close()
                s.page = None

            # 9. many sessions at once: one scripted visit's requests, replayed from threads
            if args.sessions > 0:
                what = f"{args.sessions} sessions for {args.seconds:g} s"
                results: dict[str, Load] = {}
                visits: dict[str, tuple[int, int]] = {}
                for s in sides:
                    assert s.server is not None
                    recorded, opening = record_visit(context, s.url)
                    visits[s.name] = (len(recorded), opening)
                    results[s.name] = replay(s.url, recorded, args.sessions, args.seconds, s.server.pid)
                rows.add(
                    f"{what}: request p95",
                    {
                        name: percentile(r.latencies_ms, 0.95) if r.latencies_ms else float("nan")
                        for name, r in results.items()
                    },
                    "ms",
                    {
                        name: (
                            f"p50 {percentile(r.latencies_ms, 0.5):,.0f} ms, p95 of the 200s alone "
                            f"{percentile(r.updated_ms, 0.95) if r.updated_ms else float('nan'):,.0f} ms; "
                            f"{len(r.latencies_ms):,} answered, "
                            f"{len(r.latencies_ms) / r.seconds:.1f}/s; a visit = {visits[name][0]} requests "
                            f"({visits[name][1]} at page open, then a click, a layer switch, a lasso), back to back"
                            if r.latencies_ms
                            else "no request answered"
                        )
                        for name, r in results.items()
                    },
                    (1000.0, "≤ 1 s"),
                )
                rows.add(
                    f"{what}: errors",
                    {name: float(r.errors) for name, r in results.items()},
                    "errors",
                    {
                        name: f"not 200/204 or no answer in {REQUEST_TIMEOUT:.0f} s; {r.no_update:,} answered 204 "
                        "(no update)" + (f"; {r.unfinished} threads not joined" if r.unfinished else "")
                        for name, r in results.items()
                    },
                    (0.0, "0"),
                    ratio=False,
                )
                rows.add(
                    f"{what}: server RSS at the end",
                    {name: r.rss_end_mb for name, r in results.items()},
                    "MB",
                    {name: f"peak sampled {r.rss_peak_mb:,.0f} MB" for name, r in results.items()},
                    (1536.0, "≤ 1.5 GB"),
                )
            else:
                table.skip("concurrent sessions", "--sessions 0")
            context.close()
    finally:
        for process in started:
            if process.poll() is None:
                stop(process)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
        profile.cleanup()


def revision(root: Path) -> str:
    """``root``'s commit and whether its tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"{head or '?'}{', with uncommitted changes' if dirty else ''}"


if __name__ == "__main__":
    main()
