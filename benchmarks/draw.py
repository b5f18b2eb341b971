"""The Draw panel, in headless chromium over all 70,000 MNIST images: a stroke -> prediction bars redrawn.

    python benchmarks/draw.py [--run DIR] [--strokes 20]

Without --run, a Run is made from the shipped weights in a temporary directory (capture with top-k, PCA of input
and dense layers), as `layerscope demo` prepares it. Figures:
- server alone, per stroke: strokes -> digit (render 280x280 + MNIST preprocessing) -> forward pass -> prediction
  bars, as the strokes callback does it, JSON included;
- server alone, everything one stroke updates: the above plus the preview, the open activation panel (fc2), the
  80 feature maps, the nearest training images of every layer and the star in the PCA projections;
- browser: synthetic pointer events on the canvas (moves 16 ms apart, so the throttled updates happen while
  drawing), from pointer-up until the Draw card's bars show that stroke, p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import Table, percentile  # noqa: E402
from dashboard import bench_run, browsing  # noqa: E402

STROKE_JS = """async ([points, wait]) => {
    const canvas = document.getElementById('draw-canvas');
    const gd = document.querySelector('#draw-probs .js-plotly-plot');
    const box = canvas.getBoundingClientRect();
    const fire = (type, p) => canvas.dispatchEvent(new PointerEvent(type, {
        bubbles: true, cancelable: true, pointerId: 1, pointerType: 'mouse', isPrimary: true, buttons: 1,
        clientX: box.left + p[0] * box.width, clientY: box.top + p[1] * box.height}));
    const sleep = ms => new Promise(r => setTimeout(r, ms));
    fire('pointerdown', points[0]);
    for (const p of points.slice(1)) { await sleep(wait); fire('pointermove', p); }
    const up = performance.now();
    fire('pointerup', points[points.length - 1]);
    // the version this stroke's final update carries: assets/draw.js counts its pushes
    return await new Promise(resolve => {
        const check = () => {
            const meta = gd.layout && gd.layout.meta;
            if (meta && meta.draw >= window.__pushes) { resolve(performance.now() - up); return true; }
            return false;
        };
        if (!check()) { gd.on('plotly_afterplot', () => { if (!resolve.done) { resolve.done = check(); } }); }
    });
}"""

COUNT_PUSHES_JS = """() => {
    const original = window.dash_clientside.set_props;
    window.__pushes = 0;
    window.dash_clientside.set_props = function (id, props) {
        if (id === 'draw-strokes' && props.data) { window.__pushes = props.data.version; }
        return original.apply(this, arguments);
    };
}"""


def strokes_for(k: int, rng: np.random.Generator) -> list[list[float]]:
    """A stroke of 10 points: lines, arcs and hooks at varied places, so each one changes the digit."""
    t = np.linspace(0, 1, 10)
    x0, y0 = rng.uniform(0.25, 0.75, 2)
    kind = k % 3
    if kind == 0:
        xs, ys = x0 + 0.05 * t, 0.15 + 0.7 * t
    elif kind == 1:
        a = np.pi * (0.2 + 1.4 * t)
        xs, ys = x0 + 0.2 * np.cos(a), y0 + 0.2 * np.sin(a)
    else:
        xs, ys = 0.2 + 0.6 * t, y0 + 0.1 * np.sin(3 * t)
    return [[float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1))] for x, y in zip(xs, ys, strict=True)]


def main() -> None:
    from plotly.utils import PlotlyJSONEncoder

    from layerscope.dashboard import create_app
    from layerscope.dashboard.callbacks import _panel
    from layerscope.dashboard.draw import caption, digit_from_strokes, neighbour_rows, probability_figure
    from layerscope.dashboard.inside import _fmap_tiles
    from layerscope.dashboard.state import LIVE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--strokes", type=int, default=20)
    args = parser.parse_args()

    table = Table("draw")
    run = bench_run(args.run, table)

    app = create_app(run)
    state = app.layerscope_state
    rng = np.random.default_rng(0)
    drawn: list[list[list[float]]] = []
    strokes_only, everything = [], []
    state.set_drawing(LIVE, digit_from_strokes([[(0.5, 0.2), (0.5, 0.8)]]))  # model loaded, indexes built
    neighbour_rows(state, LIVE, 0)
    for k in range(args.strokes + 3):
        drawn = [] if k % 3 == 0 else drawn
        drawn.append(strokes_for(k, rng))
        t0 = time.perf_counter()
        state.set_drawing(LIVE, digit_from_strokes([[(p[0], p[1]) for p in s] for s in drawn]))
        json.dumps(
            [state.thumbnail(LIVE, 112), caption(state, LIVE), probability_figure(state, LIVE)], cls=PlotlyJSONEncoder
        )
        t1 = time.perf_counter()
        parts = [
            probability_figure(state, LIVE),  # the preview's bars
            _panel(state, "fc2", [], {}, None, None, "none"),
            _fmap_tiles(state, LIVE, "channel", None),
            neighbour_rows(state, LIVE, 0)[0],
            [state.place(LIVE, layer) for layer in ("fc2", "input")],
        ]
        json.dumps(parts, cls=PlotlyJSONEncoder)
        t2 = time.perf_counter()
        if k >= 3:  # warm
            strokes_only.append(t1 - t0)
            everything.append(t2 - t0)
    table.percentiles("server: stroke -> digit, forward, bars", [t * 1000 for t in strokes_only], "ms", "JSON included")
    table.percentiles(
        "server: all a stroke updates, one after another",
        [t * 1000 for t in everything],
        "ms",
        "bars, preview, fc2 panel, 80 feature maps, nearest images, PCA star",
    )
    table.ratio(
        "server: all a stroke updates / the bars alone, p50",
        percentile(everything, 0.5),
        percentile(strokes_only, 0.5),
        "what the heavier views add to a finished stroke",
    )

    with browsing(app) as (context, url):
        page = context.new_page()
        page.goto(url)
        for selector in ("#proj-a-graph .legendtext", "#draw-probs .js-plotly-plot", "#fmap-area .fmap"):
            page.wait_for_selector(selector, timeout=120_000)
        page.evaluate(COUNT_PUSHES_JS)
        page.locator("#draw-canvas").scroll_into_view_if_needed()
        times = []
        for k in range(args.strokes + 2):
            if k % 3 == 0:
                page.click("#draw-clear")
                page.wait_for_timeout(600)
            ms = page.evaluate(STROKE_JS, [strokes_for(k, rng), 16])
            page.wait_for_timeout(300)  # let the panels, feature maps and projections catch up
            if k >= 2:
                times.append(ms / 1000)
        table.percentiles(
            "browser: pointer-up -> Draw card bars show the stroke",
            [t * 1000 for t in times],
            "ms",
            "synthetic strokes, moves 16 ms apart",
        )


if __name__ == "__main__":
    main()
