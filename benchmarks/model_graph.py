"""The Network view of a residual net: how soon the page is ready, and how long the model graph takes to lay out.

    PYTHONPATH=. .venv/bin/python benchmarks/model_graph.py RUN [--repeats 5]

``RUN`` is a Run of a graph model, e.g. ResNet-18 on 10,000 images (``benchmarks/any_model.py --keep DIR`` writes
one). In headless chromium at 1440x900, with the server in this process (as ``layerscope serve`` runs it):

- **server start -> page ready**: ``create_app`` (the Run opened, the page laid out) until the Explore view's
  projections and gallery are drawn; goal < 10 s for ResNet-18 on 10,000 images.
- **Network view opened -> model graph drawn**: the tab clicked until cytoscape has drawn the graph's nodes (the
  first time: the view's components come from the server).
- **model graph laid out, all blocks open / all folded**: "Open all blocks" (or "Fold all blocks") clicked until
  dagre's layout stops (cytoscape's ``layoutstop``), median of ``--repeats``; the figures the issue asks for
  ("expanded and collapsed").

The model graph is new: there is no figure of the current main to set beside these.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import Table, load_average, machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CY = "document.getElementById('net-dag')._cyreg.cy"
LAYOUT_JS = f"""([button]) => new Promise(done => {{
    const cy = {CY}; const start = performance.now();
    cy.one('layoutstop', () => requestAnimationFrame(() => done(performance.now() - start)));
    document.getElementById(button).click(); }})"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.browser.conftest import ARGS, CHROMIUM, served, settle

    from layerscope.dashboard import create_app
    from layerscope.run import Run

    print(machine())
    print(load_average())
    table = Table("model_graph")
    run = Run(args.run, trust_model_code=True)
    print(f"Run {run.path}: {run.manifest['model']['class']}, {run.n_images:,} images, {len(run.graph.nodes)} nodes")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        start = time.perf_counter()
        app = create_app(run)
        with served(app) as port:
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#proj-a .proj-graph .legendtext", timeout=300_000)
            page.wait_for_selector("#proj-b .proj-graph .legendtext", timeout=300_000)
            page.wait_for_selector(".thumb", timeout=300_000)
            table.add("server start -> page ready", time.perf_counter() - start, "s", "goal < 10 s")
            settle(page)
            start = time.perf_counter()
            page.click("#nav-network")
            page.wait_for_function(
                f"() => {{ try {{ return {CY}.nodes().length > 0; }} catch (e) {{ return false; }} }}"
            )
            table.add("Network view opened -> model graph drawn", time.perf_counter() - start, "s", "first time")
            settle(page)
            # from folded to open and back, ``--repeats`` times
            opening: list[float] = []
            folding: list[float] = []
            counts = {}
            for _ in range(args.repeats):
                for button, times in (("net-open-all", opening), ("net-fold-all", folding)):
                    times.append(page.evaluate(LAYOUT_JS, [button]))
                    settle(page)
                    counts[button] = page.evaluate(f"() => {CY}.nodes().length")
            for button, name, times in (
                ("net-open-all", "all blocks open", opening),
                ("net-fold-all", "all blocks folded", folding),
            ):
                note = f"median of {len(times)}; {counts[button]} nodes drawn (blocks' frames included)"
                table.add(f"model graph laid out, {name}", sorted(times)[len(times) // 2], "ms", note)
        browser.close()


if __name__ == "__main__":
    main()
