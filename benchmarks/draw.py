"""The Draw panel, in headless chromium over all 70,000 MNIST images: a stroke -> prediction bars redrawn.

    python benchmarks/draw.py [--run DIR] [--strokes 20]

Without --run, a Run is made from the shipped weights in a temporary directory (capture with top-k, PCA of input
and dense layers), as `layerscope demo` prepares it. Figures:
- server alone, per stroke: strokes -> digit (render 280x280 + MNIST preprocessing) -> forward pass -> prediction
  bars, as the strokes callback does it, JSON included;
- server alone, everything one stroke updates: the above plus the preview, the open activation panel (fc2), the
  80 feature maps, the nearest training images of every layer and the star in the PCA projections;
- browser, fast path (dashboard/live.py): synthetic pointer events on the canvas (moves 16 ms apart, strokes 300 ms
  apart), from pointer-up until the bars, captions, preview, the open panel's live row and the feature maps show
  that stroke, p50 and p95;
- browser, pen resting: from pointer-up until the Dash callbacks have redrawn every view (nearest images, the
  projections' star), 400 ms of rest included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import Table, median_seconds, percentile  # noqa: E402
from dashboard import bench_run, browsing  # noqa: E402

STROKE_JS = """async ([points, wait]) => {
    const canvas = document.getElementById('draw-canvas');
    const box = canvas.getBoundingClientRect();
    const fire = (type, p) => canvas.dispatchEvent(new PointerEvent(type, {
        bubbles: true, cancelable: true, pointerId: 1, pointerType: 'mouse', isPrimary: true, buttons: 1,
        clientX: box.left + p[0] * box.width, clientY: box.top + p[1] * box.height}));
    const sleep = ms => new Promise(r => setTimeout(r, ms));
    const before = canvas.dataset.ended;
    const settledBefore = canvas.dataset.settled || '';
    fire('pointerdown', points[0]);
    for (const p of points.slice(1)) { await sleep(wait); fire('pointermove', p); }
    const up = performance.now();
    fire('pointerup', points[points.length - 1]);
    // assets/draw.js marks the version of the first request sent after the stroke ended, and the version shown
    while (canvas.dataset.ended === before || Number(canvas.dataset.shown || 0) < Number(canvas.dataset.ended)) {
        if (performance.now() - up > 20000) {
            throw new Error('stroke not shown after 20 s: ' + JSON.stringify({before, ...canvas.dataset}));
        }
        await new Promise(r => setTimeout(r, 2));
    }
    const shown = performance.now() - up;
    const live = {
        rows: document.querySelectorAll('[data-live-layer]').length,
        maps: document.querySelectorAll('#fmap-area .fmap-grid[data-live="1"]').length,
    };
    return [shown, live, up, settledBefore];
}"""

# the Dash callbacks once the pen rests: from pointer-up until the renderer has no callback left to run for the views
# a finished drawing updates (an interval's polling, e.g. while a placement is prepared, does not count)
SETTLED_JS = """async ([start, settledBefore]) => {
    const views = ['draw-neighbours', 'panel-area', 'fmap-area', 'proj-graph', 'draw-placed',
                   'draw-probs', 'preview-probs'];
    const busy = () => {
        const c = window.store.getState().callbacks;
        return ['requested', 'prioritized', 'blocked', 'executing', 'watched', 'executed', 'stored']
            .some(k => Array.isArray(c[k]) && c[k].some(cb => views.some(v => String(cb.callback.output).includes(v))));
    };
    const gd = document.querySelector('#draw-probs .js-plotly-plot');
    const canvas = document.getElementById('draw-canvas');
    // the Dash update assets/draw.js sent for this stroke, once the pen rested (or at once for a first stroke)
    const pushed = () => (canvas.dataset.settled || '') !== settledBefore;
    while (!(pushed() && gd.layout.meta && gd.layout.meta.draw >= Number(canvas.dataset.settled)) || busy()) {
        if (performance.now() - start > 60000) {
            const c = window.store.getState().callbacks;
            const pending = Object.keys(c).filter(k => Array.isArray(c[k]))
                .map(k => [k, c[k].map(cb => String(cb.callback.output))]);
            throw new Error('the page did not settle in 60 s: ' + JSON.stringify(
                {meta: gd.layout.meta, settled: canvas.dataset.settled, pending}));
        }
        await new Promise(r => setTimeout(r, 5));
    }
    return performance.now() - start;
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
    from layerscope.dashboard.activations import _panel
    from layerscope.dashboard.draw import caption, digit_from_strokes, neighbour_rows, probability_figure
    from layerscope.dashboard.inside import _fmap_values
    from layerscope.dashboard.live import live_update
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
    # what the page asks the fast path for: the fc2 panel's live row, every conv layer's maps
    panels = [{"layer": "fc2", "order": list(range(64)), "lo": 0.0, "hi": 5.0}]
    maps = [{"layer": layer, "scale": "channel"} for layer in state.conv_layers]
    for k in range(args.strokes + 3):
        drawn = [] if k % 3 == 0 else drawn
        drawn.append(strokes_for(k, rng))
        t0 = time.perf_counter()
        json.dumps(live_update(state, {"strokes": drawn, "version": k + 1, "panels": panels, "maps": maps}))
        t1 = time.perf_counter()
        parts = [
            caption(state, LIVE),
            probability_figure(state, LIVE),  # the preview's bars
            _panel(state, "fc2", [], {}, None, None, "none"),
            _fmap_values(state, LIVE, "channel"),
            neighbour_rows(state, LIVE, 0)[0],
            [state.placements.place(LIVE, layer) for layer in ("fc2", "input")],
        ]
        json.dumps(parts, cls=PlotlyJSONEncoder)
        t2 = time.perf_counter()
        if k >= 3:  # warm
            strokes_only.append(t1 - t0)
            everything.append(t2 - t0)
    table.percentiles(
        "server: fast path, one request (live_update)",
        [t * 1000 for t in strokes_only],
        "ms",
        "digit, forward, bars, previews, fc2 row colours, 3 feature-map strips; JSON included",
    )
    table.percentiles(
        "server: fast path + every Dash view of a resting pen",
        [t * 1000 for t in everything],
        "ms",
        "+ caption, bars figure, fc2 panel, feature-map tiles, nearest images, PCA star",
    )
    table.ratio(
        "server: every view / the fast path alone, p50",
        percentile(everything, 0.5),
        percentile(strokes_only, 0.5),
        "what the Dash callbacks add once the pen rests",
    )

    # placing a drawing in each projection of fc2 the Run holds: the rebuild (once per projection), then a drawing
    from layerscope.errors import LayerscopeError
    from layerscope.projections import fit_placement
    from layerscope.run import Run

    values = state.drawing_outputs[LIVE]["fc2"].reshape(1, -1)
    for method in ("pca", "lda", "tsne", "umap"):
        if run.projection_meta("fc2", method) is None:
            table.skip(f"place a drawing in the {method} of fc2", "the Run has no such projection (projections.py)")
            continue
        t0 = time.perf_counter()
        try:
            placement = fit_placement(Run(run.path), "fc2", method)
        except LayerscopeError as e:  # e.g. a Run made before the fitted PCA map was kept
            table.skip(f"place a drawing in the {method} of fc2", str(e))
            continue
        rebuild = time.perf_counter() - t0
        one, _ = median_seconds(lambda p=placement: p.transform(values), 5, warmup=1)
        table.add(
            f"place: rebuild for the {method} of fc2, once",
            rebuild,
            "s",
            f"{len(state.labels):,} points; own rows placed {placement.disagreement_:.4f} of the spread away (median)",
        )
        table.add(f"place: one drawing in the {method} of fc2", one * 1000, "ms", "median of 5")

    with browsing(app) as (context, url):
        page = context.new_page()
        page.goto(url)
        for selector in ("#proj-a .proj-graph .legendtext", "#draw-probs .js-plotly-plot", "#fmap-area .fmap"):
            page.wait_for_selector(selector, timeout=120_000)
        page.locator("#draw-canvas").scroll_into_view_if_needed()
        quick, rested, shown = [], [], set()
        for k in range(args.strokes + 2):
            if k % 3 == 0:
                page.click("#draw-clear")
                page.wait_for_timeout(1500)
            # strokes in quick succession (300 ms apart), as a digit is drawn; every 4th, the pen rests
            ms, live, up, settled_before = page.evaluate(STROKE_JS, [strokes_for(k, rng), 16])
            rest = k % 4 == 3
            if rest:
                settled = page.evaluate(SETTLED_JS, [up, settled_before])
            page.wait_for_timeout(1500 if rest else 300)
            if k >= 2:
                quick.append(ms)
                shown.add((live["rows"], live["maps"]))
                if rest:
                    rested.append(settled)
        rows, maps = max(shown)
        table.percentiles(
            "browser: pointer-up -> bars, caption, preview, panel row, feature maps show the stroke",
            quick,
            "ms",
            f"fast path; {rows} panel row(s) and {maps} feature-map layers restyled; moves 16 ms apart",
        )
        table.percentiles(
            "browser: pointer-up -> every view redrawn by Dash, pen resting",
            rested,
            "ms",
            "nearest images, projections' star, panels, feature maps; includes the 400 ms rest",
        )


if __name__ == "__main__":
    main()
