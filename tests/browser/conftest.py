"""A real dashboard on all 70,000 MNIST images, served on 127.0.0.1, driven by Playwright in Debian's chromium."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from layerscope.dashboard import create_app
from layerscope.data import load_mnist
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.pipeline import create_run

# ms: the longest a test waits for background work (a refit, an ablation, top-k, a feature visualisation). CI runs
# on a busy 2-core machine, where a one-second job has taken over a minute.
BUSY = 240_000
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


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory: pytest.TempPathFactory):
    """The shipped weights over the whole bundled MNIST; PCA of input and dense layers (as the demo prepares it)."""
    model, spec, provenance = pretrained_seed_cnn()
    out = tmp_path_factory.mktemp("dash") / "mnist"
    return create_run(out, load_mnist(), model, spec, device="cpu", provenance=provenance, pca_kinds=("image", "dense"))


@contextlib.contextmanager
def served(app) -> Iterator[int]:
    """A Dash ``app`` on a free port of 127.0.0.1, in a thread, as ``layerscope serve`` runs it; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def serving(run, compare=None) -> Iterator[str]:
    """The dashboard of ``run`` (beside Run ``compare``, when given) on a free port of 127.0.0.1; yields its URL."""
    with served(create_app(run, compare=compare)) as port:
        yield f"http://127.0.0.1:{port}/"


@contextlib.contextmanager
def opened(browser_context, url: str) -> Iterator[Any]:
    """A page on ``url`` with its projections and gallery drawn; no script or console error may happen on it."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("#proj-a .proj-graph .legendtext", timeout=BUSY)
    page.wait_for_selector("#proj-b .proj-graph .legendtext", timeout=BUSY)
    page.wait_for_selector(".thumb", timeout=BUSY)
    yield page
    page.close()
    assert not errors, errors


@pytest.fixture(scope="session")
def server(mnist_run) -> Iterator[str]:
    with serving(mnist_run) as url:
        yield url


@pytest.fixture(scope="session")
def playwright():
    """Playwright, started once: its sync API cannot run twice in one thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser_context(playwright, tmp_path_factory: pytest.TempPathFactory):
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium")),
        executable_path=CHROMIUM,
        args=ARGS,
        viewport={"width": 1500, "height": 1000},
    )
    yield context
    context.close()


@pytest.fixture
def page(browser_context, server):
    with opened(browser_context, server) as page:
        yield page


NET = "#net-graph .js-plotly-plot"
# the network graph has its nodes drawn (its view opened, its figure arrived)
NET_DRAWN = f"""() => {{ const gd = document.querySelector('{NET}');
    return gd && gd._fullData && gd._fullData.some(t => (t.mode || '').startsWith('markers')); }}"""


def node_position(page, layer, unit):
    """Where plotly drew the node of ``layer``/``unit`` (-1: a collapsed layer), in page pixels."""
    return page.evaluate(
        """([sel, layer, unit]) => { const gd = document.querySelector(sel);
               const t = gd._fullData.find(t => t.mode.startsWith('markers') && t.name === layer);
               const i = Array.from(t.customdata).findIndex(c => c[1] === unit);
               const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
               const box = gd.querySelector('.main-svg').getBoundingClientRect();
               return [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i])]; }""",
        [NET, layer, unit],
    )


def click_node(page, layer, unit):
    """Move the mouse onto the node and click it, once plotly hovers it (its click reports the hovered point). The
    graph is scrolled into view first: the model graph's card above it puts its lower half below the fold."""
    page.locator(NET).scroll_into_view_if_needed()
    x, y = node_position(page, layer, unit)
    page.mouse.move(x, y, steps=4)
    page.wait_for_function(
        """([sel, layer, unit]) => (document.querySelector(sel)._hoverdata || [])
               .some(p => p.customdata && p.customdata[0] === layer && p.customdata[1] === unit)""",
        arg=[NET, layer, unit],
    )
    page.mouse.click(x, y)


# true once the renderer has no callback waiting, running or just answered (its redux store, window.store)
_QUIET = """() => {
    const c = window.store ? window.store.getState().callbacks : {};
    return !['requested', 'prioritized', 'blocked', 'executing', 'watched', 'executed', 'stored']
        .some(k => Array.isArray(c[k]) && c[k].length > 0);
}"""


def settle(page):
    """Wait until the page's callbacks have answered: three looks in a row, 50 ms apart, find none under way."""
    page.wait_for_function(
        f"""() => {{ const quiet = ({_QUIET})(); window.__quiet = quiet ? (window.__quiet || 0) + 1 : 0;
                   return window.__quiet >= 3; }}""",
        polling=50,
        timeout=BUSY,
    )


def show(page, view):
    """Open ``view`` ("explore", "activations", "network", "draw", "intervene") by its tab, as a user would, and wait
    until it is there: the first time a view opens its components come from the server (views.py), and the callbacks
    of its new components answer."""
    page.click(f"#nav-{view}")
    page.wait_for_selector(f"#view-{view}.active")
    page.wait_for_function(f"() => !document.querySelector('#view-{view} .view-waiting')", timeout=BUSY)
    settle(page)
