"""Inside the network, in headless chromium over all 70,000 MNIST images: the weights graph, unit cards, feature maps.

    python benchmarks/inside.py [--run DIR] [--repeats 7]

Without --run, a Run is made from the shipped weights in a temporary directory (capture with top-k, PCA of input
and dense layers), as `layerscope demo` prepares it. Figures:
- building the graph figure on the server, with fc1's 4,608 x 64 weights filtered to the strongest per node;
- edge slider moved -> graph redrawn in the browser (server + transfer + draw), every conv layer expanded;
- a click on a unit -> its card with weights, top-9 images and guided backprop drawn (feature visualisation cached);
- a unit's card on first open -> its feature visualisation shown (256 optimisation steps in the background);
- selecting another image -> all 80 feature maps redrawn.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import Table  # noqa: E402
from dashboard import bench_run, browsing  # noqa: E402

NET = "#net-graph .js-plotly-plot"


def main() -> None:

    from layerscope.dashboard import create_app
    from layerscope.dashboard.inside import _column
    from layerscope.dashboard.unit_figures import network_figure

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    table = Table("inside")
    run = bench_run(args.run, table)

    app = create_app(run)
    state = app.layerscope_state
    # -- server side: the graph figure ---------------------------------------------------------------------------
    for expanded, label in (([], "conv layers collapsed"), (state.conv_layers, "every conv layer expanded")):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            columns = [
                _column(state, name, expanded, state.values(name)[0] if name != "input" else None)
                for name in state.layers
            ]
            fig = network_figure(columns, [state.edges(name) for name in state.layers[1:]], per_node=3)
            times.append(time.perf_counter() - t0)
        drawn = sum(sum(v is None for v in t.x) for t in fig.data if t.name == "weights")
        table.add(
            f"graph figure built, 3 edges/node, {label}",
            statistics.median(times) * 1000,
            "ms",
            f"median of {len(times)}; {drawn} edges drawn",
        )

    with browsing(app) as (context, url):

        def open_page() -> tuple[Any, float]:
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(url + "?view=network")  # the view with the graph, feature maps and unit card
            page.wait_for_selector(f"{NET} .scatterlayer", timeout=300_000)
            page.wait_for_selector("#fmap-area .fmap", timeout=300_000)
            page.wait_for_selector("#unit-guided img", timeout=300_000)
            return page, time.perf_counter() - t0

        opens = []
        for _ in range(2):  # the first open also warms the server's caches; the last page stays open
            page, seconds = open_page()
            opens.append(seconds)
            if len(opens) < 2:
                page.close()
        table.add(
            "page -> graph, feature maps and unit card drawn",
            opens[0],
            "s",
            f"first open after the server started; a second open {opens[1]:.1f} s",
        )
        for layer in state.conv_layers:
            page.check(f"#net-expand input[value='{layer}']")
        page.wait_for_timeout(1500)

        def edges() -> int:
            return int(
                page.evaluate(
                    f"""() => document.querySelector('{NET}').data.filter(t => t.name === 'weights')
                       .reduce((n, t) => n + t.x.filter(v => v === null).length, 0)"""
                )
            )

        for k in ("1", "3", "6", "12"):
            times = []
            for _ in range(3):
                page.locator("#net-edges [role=slider]").press("Home")  # 0 edges per node
                page.wait_for_function(
                    f"() => document.querySelector('{NET}').data.filter(t => t.name === 'weights').length === 0"
                )
                t0 = time.perf_counter()
                # the value a drag of the slider ends on (the keyboard moves it one step, one update, at a time)
                page.evaluate("k => window.dash_clientside.set_props('net-edges', {value: k})", int(k))
                page.wait_for_function(
                    f"() => document.querySelector('{NET}').data.filter(t => t.name === 'weights').length > 0"
                )
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                times.append(time.perf_counter() - t0)
            table.add(
                f"edge slider -> graph redrawn, {k} edges/node",
                statistics.median(times) * 1000,
                "ms",
                f"median of 3; {edges():,} edges, all conv layers expanded",
            )

        # a unit card whose feature visualisation is cached vs one computed on first open
        def open_unit(layer: str, unit: int) -> float:
            t0 = time.perf_counter()
            page.locator("#unit-layer").click()
            page.get_by_role("dialog").get_by_role("option", name=layer, exact=True).click()
            page.fill("#unit-index", str(unit))
            page.wait_for_function(
                "t => document.querySelector('#unit-title').textContent.includes(t)",
                arg=f"{layer} · {'channel' if layer in state.conv_layers else 'neuron'} {unit}",
            )
            page.wait_for_selector("#unit-featurevis img", timeout=120_000)
            page.wait_for_selector("#unit-topk .topk-thumb")
            page.wait_for_selector("#unit-guided img")
            return time.perf_counter() - t0

        first = [open_unit("fc1", u) for u in (11, 12, 13)]
        table.add("unit card, first open -> feature vis shown", statistics.median(first), "s", "median of 3; fc1")
        again = [open_unit("fc1", u) for u in (11, 12, 13)]
        table.add("unit card, cached -> everything drawn", statistics.median(again) * 1000, "ms", "median of 3; fc1")
        table.ratio(
            "unit card, first open / cached",
            statistics.median(first),
            statistics.median(again),
            "what computing the feature visualisation adds",
        )

        fmaps = []
        sprite = "() => document.querySelectorAll('#fmap-area .fmap-grid')[1].style.getPropertyValue('--sprite')"
        for i in range(args.repeats):
            before = page.evaluate(sprite)
            t0 = time.perf_counter()
            page.fill("#search", str(10 + i))  # the header's search selects an image in any view
            page.press("#search", "Enter")
            page.wait_for_function(f"b => ({sprite})() !== b", arg=before)
            fmaps.append(time.perf_counter() - t0)
        table.add(
            "select an image -> 80 feature maps redrawn",
            statistics.median(fmaps) * 1000,
            "ms",
            f"median of {len(fmaps)}",
        )


if __name__ == "__main__":
    main()
