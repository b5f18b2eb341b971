"""Dashboard figures in headless chromium over all 70,000 MNIST images.

    python benchmarks/dashboard.py [--repeats 15] [--starts 3] [--loads 5] [--run DIR]

Starts `layerscope demo` on an empty cache (shipped weights: capture + PCA of input and dense layers, then serve)
and measures, in a real browser: demo start -> page ready; server start on the prepared Run -> page ready and ->
first 70k-point scatter drawn (median of --starts); page open on a running server -> first 70k-point scatter drawn
(median of --loads); a full redraw of the 70k-point scatter in the browser; a layer switch (server + transfer +
draw); lasso -> linked views updated (the other projection and the activation panel), p50 and p95; click ->
preview, p50 and p95; the server's resident memory. With --run DIR the demo is skipped and DIR is served.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import Table

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
READY = ["#proj-a-graph .legendtext", "#proj-b-graph .legendtext", ".thumb"]
EXE = [sys.executable, "-m", "layerscope.cli"]

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
        for (const gd of document.querySelectorAll('#proj-a-graph .js-plotly-plot, #proj-b-graph .js-plotly-plot')) {
            if (!hooked.has(gd) && typeof gd.on === 'function') {
                hooked.add(gd);
                if (count(gd) >= wanted) { done(); }  // drawn before this poll saw it: at most 10 ms late
                gd.on('plotly_afterplot', () => { if (count(gd) >= wanted) { done(); } });
            }
        }
        setTimeout(poll, 10);
    })();
})();"""

LASSO_JS = """([count]) => new Promise((done, fail) => {
    const a = document.querySelector('#proj-a-graph .js-plotly-plot');
    const b = document.querySelector('#proj-b-graph .js-plotly-plot');
    const points = [];
    for (let p = 0; p < count; p++) points.push({curveNumber: 1 + (p % 2), pointNumber: p});
    const expected = new Set(points.map(p => p.curveNumber + ':' + p.pointNumber)).size;
    const t0 = performance.now();
    a.emit('plotly_selected', {points: points});
    (function poll() {
        const n = b.data.slice(0, 10)
            .reduce((s, t) => s + (t.selectedpoints ? t.selectedpoints.length : 0), 0);
        const row = document.querySelector('#panel-area .act-row');
        if (n === expected && row && row.textContent.includes('brushed')) {
            requestAnimationFrame(() => done(performance.now() - t0));
        } else if (performance.now() - t0 > 60000) {
            fail(new Error('linked views not updated after 60 s'));
        } else { setTimeout(poll, 5); }
    })();
})"""

REDRAW_JS = """() => new Promise(done => {
    const gd = document.querySelector('#proj-a-graph .js-plotly-plot');
    const t0 = performance.now();
    Plotly.react(gd, gd.data, Object.assign({}, gd.layout, {datarevision: Math.random()}))
        .then(() => requestAnimationFrame(() => done(performance.now() - t0)));
})"""


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


def wait_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 900) -> None:
    """Wait until ``url`` answers; fail at once if ``process`` (the server) has exited."""
    end = time.time() + timeout
    while time.time() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before {url} answered")
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


def start_server(run_dir: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*EXE, "serve", str(run_dir), "--no-browser", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="lassos and clicks (p50, p95 of this many)")
    parser.add_argument("--starts", type=int, default=3, help="server starts on the prepared Run (median)")
    parser.add_argument("--loads", type=int, default=5, help="page opens on the running server (median)")
    parser.add_argument("--run", type=Path, default=None, help="serve this Run; the demo on an empty cache is skipped")
    args = parser.parse_args()
    table = Table("dashboard")

    points = 70_000
    if args.run is not None:
        from layerscope.run import Run

        points = len(Run(args.run).labels)
    cache = Path(tempfile.mkdtemp(prefix="layerscope-bench-"))
    profile = tempfile.TemporaryDirectory(prefix="layerscope-bench-chromium-")
    env = dict(os.environ, LAYERSCOPE_CACHE=str(cache))
    started: list[subprocess.Popen[bytes]] = []  # every server, stopped however the measurements end
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile.name, executable_path=CHROMIUM, args=ARGS, viewport={"width": 1500, "height": 1000}
            )
            context.add_init_script(FIRST_SCATTER_JS % points)
            # 1. the demo on an empty cache (minutes: capture and PCA of 70,000 images first), once
            demo_seconds = float("nan")
            if args.run is None:
                port = free_port()
                start = time.perf_counter()
                demo = subprocess.Popen(
                    [*EXE, "demo", "--no-browser", "--port", str(port), "--device", "cpu"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    wait_http(f"http://127.0.0.1:{port}/_dash-layout", demo)
                    served = time.perf_counter() - start
                    ready, _ = page_ready(context, f"http://127.0.0.1:{port}/")
                    demo_seconds = served + ready
                    table.add(
                        "demo, empty cache -> page ready", demo_seconds, "s", f"serving after {served:.1f} s; once"
                    )
                finally:
                    stop(demo)
                run_dir = next(cache.glob("mnist-seed-cnn-*"))
            else:
                table.skip("demo, empty cache -> page ready", f"--run {args.run} given")
                run_dir = args.run

            # 2. serve the prepared Run: process start -> HTTP, -> page ready, -> first 70k scatter; the last one stays
            served_s, ready_s, first_s = [], [], []
            server: subprocess.Popen[bytes] | None = None
            url = ""
            for _ in range(max(1, args.starts)):
                if server is not None:
                    stop(server)
                port = free_port()
                url = f"http://127.0.0.1:{port}/"
                start = time.perf_counter()
                server = start_server(run_dir, port)
                started.append(server)
                wait_http(url + "_dash-layout", server)
                served_s.append(time.perf_counter() - start)
                ready, first = page_ready(context, url)
                ready_s.append(served_s[-1] + ready)
                first_s.append(served_s[-1] + first)
            assert server is not None
            try:
                n = len(ready_s)
                table.add(
                    "server start -> page ready",
                    statistics.median(ready_s),
                    "s",
                    f"median of {n}; HTTP answering after {statistics.median(served_s):.1f} s",
                )
                table.add(
                    f"server start -> first {points // 1000}k-point scatter drawn",
                    statistics.median(first_s),
                    "s",
                    f"median of {n}",
                )
                if demo_seconds == demo_seconds:  # measured
                    table.ratio(
                        "demo on an empty cache / server start on its Run",
                        demo_seconds,
                        statistics.median(ready_s),
                        "what preparing the Run costs",
                    )
                table.add("server RSS, page served", rss_mb(server.pid), "MB", "one page open")

                # 3. page opens on the running server (browser cache warm)
                loads = [page_ready(context, url) for _ in range(max(1, args.loads))]
                table.add(
                    "page open -> page ready (server running)",
                    statistics.median(r for r, _ in loads),
                    "s",
                    f"median of {len(loads)}; both projections and the gallery drawn",
                )
                firsts = [f for _, f in loads]
                table.add(
                    f"page open -> first {points // 1000}k-point scatter drawn (server running)",
                    statistics.median(firsts),
                    "s",
                    f"median of {len(firsts)}, max {max(firsts):.1f} s; from navigation start",
                )

                page = context.new_page()
                page.goto(url)
                for selector in READY:
                    page.wait_for_selector(selector, timeout=300_000)
                page.wait_for_timeout(1000)

                # 4. the browser alone: a full redraw of the scatter
                redraw = [float(page.evaluate(REDRAW_JS)) for _ in range(5)]
                table.add(
                    f"redraw of the {points // 1000}k scatter (browser)",
                    statistics.median(redraw),
                    "ms",
                    f"median of 5, max {max(redraw):,.0f} ms; Plotly.react in the page",
                )

                # 5. a layer switch: server + transfer + draw
                switch = []
                for layer in ["out", "fc1", "fc2", "out", "fc2"]:
                    t0 = time.perf_counter()
                    page.click("#proj-a-layer")
                    page.get_by_role("option", name=layer, exact=True).click()
                    page.wait_for_function(
                        "l => { const gd = document.querySelector('#proj-a-graph .js-plotly-plot');"
                        " return gd && gd._fullData && gd._fullData.length > 5 &&"
                        " document.querySelector('#proj-a-quality').textContent.length > 0 &&"
                        " document.querySelector('#proj-a-layer').textContent.includes(l); }",
                        arg=layer,
                    )
                    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                    switch.append((time.perf_counter() - t0) * 1000)
                table.add(
                    f"layer switch -> {points // 1000}k scatter drawn",
                    statistics.median(switch),
                    "ms",
                    f"median of {len(switch)}; server + transfer + draw",
                )

                # 6. lasso in projection A -> projection B and the activation panel updated
                lasso = []
                for k in range(args.repeats):
                    count = [500, 2000, 5000][k % 3] + k
                    lasso.append(float(page.evaluate(LASSO_JS, [count])))
                table.percentiles(
                    "lasso -> linked views updated", lasso, "ms", "lassos of 500-5,000 points; projection B + panel"
                )

                # 7. a gallery click -> the preview shows that image
                clicks = []
                thumbs = page.locator(".gallery .thumbs").first.locator(".thumb")
                for k in range(args.repeats):
                    before = page.text_content("#preview-caption")
                    t0 = time.perf_counter()
                    thumbs.nth(1 + k).click()
                    page.wait_for_function(
                        "b => document.querySelector('#preview-caption').textContent !== b", arg=before
                    )
                    clicks.append((time.perf_counter() - t0) * 1000)
                table.percentiles("click -> preview", clicks, "ms", "gallery thumbnail click")
                table.add("server RSS, after the interactions", rss_mb(server.pid), "MB", "all of the above")
            finally:
                stop(server)
            context.close()
    finally:
        for process in started:
            if process.poll() is None:
                stop(process)
        shutil.rmtree(cache, ignore_errors=True)
        profile.cleanup()


if __name__ == "__main__":
    main()
