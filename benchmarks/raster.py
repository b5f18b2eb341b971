"""A projection panel of a million points in chromium: its first render and a zoom, drawn as a Datashader raster
(this checkout, dashboard/raster.py) against the WebGL scatter of every point (``--baseline``, by default 8fd1029,
the commit before the raster, checked out into a temporary git worktree).

    cd benchmarks && PYTHONPATH=..:. ../.venv/bin/python raster.py [--n 1000000] [--baseline REF] [--repeats 3]

The Run: ``--n`` generated 8x8 images of 10 classes (tests/browser/test_raster.py's) through a small MLP, with the
PCA of its layers; the panel shows the PCA of ``net.4``. Two measures:

- **the panel alone**, for both versions: the figure built on the server (each version's own code, in a process of
  its own), then drawn by the version's own plotly.js in a blank page of headless chromium (software WebGL, as on
  this machine's CI): first render = build + transfer-free draw; zoom = to the central quarter of the panel, which
  the scatter redraws in the browser (``Plotly.relayout``) and the raster has drawn again on the server
  (``panel_figure`` of the view) and then in the browser (``Plotly.react``);
- **the dashboard**, this checkout only: from opening the page to both panels drawn at their plots' size, and from
  a mouse-wheel zoom to its view drawn. (The baseline's page is not timed: it lays out a thumbnail per
  misclassified image, 90,000 a digit for this untrained MLP, which is not the scatter's cost.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import Table, load_average, machine

ROOT = Path(__file__).resolve().parents[1]
LAYER, METHOD = "net.4", "pca"
SIZE = (700, 560)  # px of the blank page's plot: about a panel's at 1920 px

# run in each version's own process: its figure of the whole panel, and (the raster) of the zoomed view
FIGURE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from layerscope.dashboard import projection
from layerscope.dashboard.state import DashboardState
from layerscope.run import Run
state = DashboardState(Run(sys.argv[2], trust_model_code=True))
raster = getattr(projection, "projection_raster", None)
if raster is not None:  # Datashader compiles on first use; the dashboard does that when it starts (app.py)
    from layerscope.dashboard import raster as r
    r.warm_up()
start = time.perf_counter()
figure = projection._scatter(state, "{layer}", "{method}", "label", "all")
built = time.perf_counter() - start
out = {{"figure": figure, "built": built}}
if raster is not None:
    x0, x1, y0, y1 = figure["layout"]["meta"]["raster"]["full"]
    view = [x0 + (x1 - x0) / 4, x1 - (x1 - x0) / 4, y0 + (y1 - y0) / 4, y1 - (y1 - y0) / 4]
    start = time.perf_counter()
    zoomed = raster.panel_figure(state, "{layer}", "{method}", "label", "all", None, view, None, {size})
    out.update(zoomed=zoomed, zoom_built=time.perf_counter() - start)
json.dump(out, open(sys.argv[3], "w"))
"""

DRAW = """async ([figure, size]) => {
    const div = document.createElement('div');
    div.style.width = size[0] + 'px'; div.style.height = size[1] + 'px';
    document.body.innerHTML = ''; document.body.appendChild(div);
    window.Plotly.setPlotConfig({plotGlPixelRatio: 1});
    const start = performance.now();
    await window.Plotly.newPlot(div, figure.data, Object.assign({}, figure.layout, {width: size[0], height: size[1]}),
                                {scrollZoom: true});
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));  // painted
    window.__plot = div;
    return performance.now() - start;
}"""

ZOOM_SCATTER = """async () => {
    const gd = window.__plot, xa = gd._fullLayout.xaxis.range, ya = gd._fullLayout.yaxis.range;
    const q = (r, k) => r[0] + (r[1] - r[0]) * k;
    const start = performance.now();
    await window.Plotly.relayout(gd, {'xaxis.range': [q(xa, 0.25), q(xa, 0.75)],
                                      'yaxis.range': [q(ya, 0.25), q(ya, 0.75)]});
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - start;
}"""

ZOOM_RASTER = """async (figure) => {
    const gd = window.__plot;
    const start = performance.now();
    await window.Plotly.react(gd, figure.data, Object.assign({}, figure.layout, {width: gd._fullLayout.width,
                              height: gd._fullLayout.height}));
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - start;
}"""


def make_run(directory: Path, n: int):
    from tests.browser.test_raster import generated
    from tests.models import MLP

    from layerscope.models.loading import model_spec
    from layerscope.pipeline import create_run
    from layerscope.run import Run

    if (directory / "manifest.json").is_file():
        return Run(directory, trust_model_code=True)
    import torch

    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=8, num_classes=10, hidden=16)
    spec = model_spec("tests.models:MLP", **args)
    return create_run(directory, generated(n), MLP(**args), spec, device="cpu", pca_kinds=("image", "dense"))


def figure_of(src: Path, run: Path, out: Path) -> dict:
    script = FIGURE.format(layer=LAYER, method=METHOD, size=SIZE)
    subprocess.run([sys.executable, "-c", script, str(src), str(run), str(out)], check=True, cwd=ROOT)
    return json.loads(out.read_text())


def chromium(playwright):
    from tests.browser.conftest import ARGS, CHROMIUM

    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def bench_panel(browser, name: str, src: Path, run: Path, tmp: Path, repeats: int, table: Table) -> dict[str, float]:
    got = figure_of(src, run, tmp / f"{name}.json")
    plotly = src / "layerscope" / "dashboard" / "assets" / "plotly.min.js"
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.set_content("<html><body></body></html>")
    page.add_script_tag(path=str(plotly))
    figure, raster = got["figure"], "zoomed" in got
    payload = len(json.dumps(figure)) / 1e6
    draws, zooms = [], []
    for _ in range(repeats):
        draws.append(page.evaluate(DRAW, [figure, list(SIZE)]) / 1000)
        if raster:
            zooms.append(got["zoom_built"] + page.evaluate(ZOOM_RASTER, got["zoomed"]) / 1000)
        else:
            zooms.append(page.evaluate(ZOOM_SCATTER) / 1000)
    page.close()
    draw, zoom = statistics.median(draws), statistics.median(zooms)
    kind = "raster" if raster else "WebGL scatter"
    table.add(f"{name}: figure built on the server ({kind})", got["built"], "s", f"{payload:.1f} MB of JSON")
    table.add(f"{name}: drawn in chromium", draw, "s", f"median of {repeats}; {load_average()}")
    table.add(f"{name}: first render (built + drawn)", got["built"] + draw, "s", "goal: at most 3 s")
    note = "server draws the view, then Plotly.react" if raster else "Plotly.relayout of every point"
    table.add(f"{name}: zoom to the central quarter", zoom, "s", f"{note}; median of {repeats}; goal: at most 1 s")
    return {"first": got["built"] + draw, "zoom": zoom}


def bench_page(browser, run, table: Table) -> None:
    import logging

    from werkzeug.serving import make_server

    from layerscope.dashboard import create_app

    start = time.perf_counter()
    app = create_app(run)
    table.add("this checkout: the dashboard's app built", time.perf_counter() - start, "s", "reads the Run, lays out")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    graph = "#proj-{} .proj-graph .js-plotly-plot"
    drawn = "sel => { const gd = document.querySelector(sel); return !!(gd && gd.querySelector('image')); }"
    fitted = """sel => { const gd = document.querySelector(sel); const m = gd && gd.layout && gd.layout.meta;
        return !!(m && m.raster && gd._fullLayout && Math.abs(m.raster.size[0] - gd._fullLayout.xaxis._length) <= 1
                  && gd.querySelector('image')); }"""
    try:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{httpd.server_port}/")
        for panel in "ab":
            page.wait_for_function(drawn, arg=graph.format(panel), timeout=300_000)
        table.add(
            "this checkout: page opened to both rasters drawn",
            time.perf_counter() - start,
            "s",
            f"1920x1080, the rasters laid out with the page (800 x 520 px); {load_average()}",
        )
        for panel in "ab":
            page.wait_for_function(fitted, arg=graph.format(panel), timeout=300_000)
        table.add(
            "this checkout: ... and drawn again at their plots' size",
            time.perf_counter() - start,
            "s",
            "as the page measures each plot",
        )
        box = page.evaluate(
            "sel => { const r = document.querySelector(sel).getBoundingClientRect(); return [r.x, r.y, r.width,"
            " r.height]; }",
            graph.format("a"),
        )
        view = page.evaluate("sel => document.querySelector(sel).layout.meta.raster.view", graph.format("a"))
        page.mouse.move(box[0] + box[2] / 2, box[1] + box[3] / 2)
        start = time.perf_counter()
        page.mouse.wheel(0, -600)
        page.wait_for_function(
            "([sel, v]) => { const m = document.querySelector(sel).layout.meta;"
            " return m.raster.view[1] - m.raster.view[0] < 0.95 * (v[1] - v[0]); }",
            arg=[graph.format("a"), view],
            timeout=300_000,
        )
        table.add(
            "this checkout: mouse-wheel zoom to its view drawn",
            time.perf_counter() - start,
            "s",
            "includes plotly's wait for the wheel to stop",
        )
        page.close()
    finally:
        httpd.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--baseline", default="8fd1029", help="the commit drawn as a WebGL scatter")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the Run is made (kept and reused)")
    parser.add_argument("--parts", default="panel,page", help="panel (both versions), page (this checkout)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine())
    table = Table("raster")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        start = time.perf_counter()
        run = make_run((args.dir or tmp) / f"generated-{args.n}", args.n)
        table.add(f"Run of {args.n:,} generated images made", time.perf_counter() - start, "s", "reused when kept")
        tree = tmp / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), args.baseline], check=True
        )
        try:
            with sync_playwright() as playwright:
                browser = chromium(playwright)
                if "panel" in args.parts:
                    old = bench_panel(browser, args.baseline, tree / "src", run.path, tmp, args.repeats, table)
                    new = bench_panel(browser, "this checkout", ROOT / "src", run.path, tmp, args.repeats, table)
                    first = f"first render: {args.baseline} / this checkout"
                    table.ratio(first, old["first"], new["first"], "same run")
                    table.ratio(f"zoom: {args.baseline} / this checkout", old["zoom"], new["zoom"], "same run")
                if "page" in args.parts:
                    bench_page(browser, run, table)
                browser.close()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
