"""Dashboard figures in headless chromium over all 70,000 MNIST images.

    python benchmarks/dashboard.py [--repeats 15]

Starts `layerscope demo` on an empty cache (shipped weights: capture + PCA of input and dense layers, then serve)
and measures, in a real browser: demo start -> page ready; server start on the prepared Run -> page ready; a full
redraw of the 70k-point scatter in the browser; a layer switch (server + transfer + draw); lasso -> linked views
updated (the other projection and the activation panel); click -> preview; the server's resident memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
READY = ["#proj-a-graph .legendtext", "#proj-b-graph .legendtext", ".thumb", "#preview-caption b"]


def bench_run(path: Path | None, row: Callable[[str, str], None]) -> Any:
    """The Run at ``path``, or one made from the shipped weights in a temporary directory as ``layerscope demo``
    prepares it (capture with top-k, PCA of the input and dense layers); ``row`` reports how long that took."""
    from layerscope.data import load_mnist
    from layerscope.models.pretrained import pretrained_seed_cnn
    from layerscope.pipeline import create_run
    from layerscope.run import Run

    if path is not None:
        return Run(path)
    model, spec, provenance = pretrained_seed_cnn()
    out = Path(tempfile.mkdtemp(prefix="layerscope-bench-")) / "mnist"
    t0 = time.perf_counter()
    run = create_run(out, load_mnist(), model, spec, provenance=provenance, pca_kinds=("image", "dense"))
    row("Run from the shipped weights (capture + top-k + PCA)", f"{time.perf_counter() - t0:.1f} s")
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 600) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def rss_mb(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    return total / 1024


def page_ready(context, url: str) -> float:
    """Seconds from navigation until both projections, the gallery and the preview are drawn."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url)
    for selector in READY:
        page.wait_for_selector(selector, timeout=300_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"  {name:<44} {value:>12}  {note}", flush=True)

    cache = Path(tempfile.mkdtemp(prefix="layerscope-bench-"))
    env = dict(os.environ, LAYERSCOPE_CACHE=str(cache))
    exe = [sys.executable, "-m", "layerscope.cli"]
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(), executable_path=CHROMIUM, args=ARGS, viewport={"width": 1500, "height": 1000}
        )
        # 1. the demo on an empty cache
        port = free_port()
        start = time.perf_counter()
        demo = subprocess.Popen(
            [*exe, "demo", "--no-browser", "--port", str(port), "--device", "cpu"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/_dash-layout")
            served = time.perf_counter() - start
            ready = page_ready(context, f"http://127.0.0.1:{port}/")
            row("demo, empty cache -> page ready", f"{served + ready:.1f} s", f"serving after {served:.1f} s")
        finally:
            demo.terminate()
            demo.wait()
        run_dir = next(cache.glob("mnist-seed-cnn-*"))

        # 2. serve the prepared Run
        port = free_port()
        start = time.perf_counter()
        server = subprocess.Popen(
            [*exe, "serve", str(run_dir), "--no-browser", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_http(url + "_dash-layout")
            ready = page_ready(context, url)
            row("server start -> page ready", f"{time.perf_counter() - start:.1f} s", f"page alone {ready:.1f} s")
            page = context.new_page()
            page.goto(url)
            for selector in READY:
                page.wait_for_selector(selector, timeout=300_000)
            page.wait_for_timeout(1000)

            redraw = [
                page.evaluate("""() => new Promise(done => {
                const gd = document.querySelector('#proj-a-graph .js-plotly-plot');
                const t0 = performance.now();
                Plotly.react(gd, gd.data, Object.assign({}, gd.layout, {datarevision: Math.random()}))
                    .then(() => requestAnimationFrame(() => done(performance.now() - t0)));
            })""")
                for _ in range(5)
            ]
            row(
                "redraw of the 70k scatter (browser)",
                f"{statistics.median(redraw):.0f} ms",
                f"median of 5, max {max(redraw):.0f} ms",
            )

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
                switch.append(time.perf_counter() - t0)
            row(
                "layer switch -> 70k scatter drawn",
                f"{statistics.median(switch) * 1000:.0f} ms",
                f"median of {len(switch)} (server + transfer + draw)",
            )

            lasso = []
            for k in range(args.repeats):
                count = [500, 2000, 5000][k % 3] + k
                ms = page.evaluate(
                    """([count]) => new Promise(done => {
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
                        } else { setTimeout(poll, 5); }
                    })();
                })""",
                    [count],
                )
                lasso.append(ms)
            row(
                "lasso -> linked views updated, p50",
                f"{pct(lasso, 0.5):.0f} ms",
                f"p95 {pct(lasso, 0.95):.0f} ms over {len(lasso)} lassos of 500-5,000 points",
            )

            clicks = []
            thumbs = page.locator(".gallery .thumbs").first.locator(".thumb")
            for k in range(args.repeats):
                before = page.text_content("#preview-caption")
                t0 = time.perf_counter()
                thumbs.nth(1 + k).click()
                page.wait_for_function("b => document.querySelector('#preview-caption').textContent !== b", arg=before)
                clicks.append((time.perf_counter() - t0) * 1000)
            row("click -> preview, p50", f"{pct(clicks, 0.5):.0f} ms", f"p95 {pct(clicks, 0.95):.0f} ms")
            row("server RSS", f"{rss_mb(server.pid):.0f} MB", "after the interactions above")
        finally:
            server.terminate()
            server.wait()
        context.close()
    shutil.rmtree(cache, ignore_errors=True)
    print("\nfigure | value | note")
    for name, value, note in rows:
        print(f"{name} | {value} | {note}")


if __name__ == "__main__":
    main()
