"""The page draws with the dashboard's own plotly.js build (tools/plotly: plotly.js with only the trace types the
dashboard uses, a third of the full bundle's size and a fifth of its time to evaluate): the major version of
plotly.js that plotly.py's figures are made for, every trace type the figures are made of, and the full
plotly.min.js never fetched."""

from __future__ import annotations

import re
from pathlib import Path

from plotly.offline import get_plotlyjs_version

import layerscope.dashboard
from tests.browser.conftest import opened

PACKAGE = Path(layerscope.dashboard.__file__).parent


def _trace_types() -> set[str]:
    """The trace types of every figure the dashboard makes: go.Scatter, go.Heatmap, ... in its modules."""
    found: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        found |= {name.lower() for name in re.findall(r"\bgo\.([A-Z][a-z0-9]*)\(", path.read_text())}
    return found - {"figure"}


def test_the_page_draws_with_the_dashboard_s_plotly_build(browser_context, server):
    fetched: list[str] = []
    listen = lambda request: fetched.append(request.url)  # noqa: E731
    browser_context.on("request", listen)
    try:
        with opened(browser_context, server) as page:
            version = page.evaluate("() => window.Plotly.version")
            registered = set(page.evaluate("() => Object.keys(window.Plotly.PlotSchema.get().traces)"))
            drawn = set(
                page.evaluate(
                    """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
                           .flatMap(gd => (gd._fullData || []).map(t => t.type))"""
                )
            )
    finally:
        browser_context.remove_listener("request", listen)
    # figures of plotly.py 7 are drawn by plotly.js 4; a new plotly.js: `make plotly` (tools/plotly/package.json)
    assert version.split(".")[0] == get_plotlyjs_version().split(".")[0], (version, get_plotlyjs_version())
    wanted = _trace_types()
    assert {"scattergl", "heatmap", "bar", "scatter"} <= wanted  # the scan finds the figures' types
    assert wanted <= registered, wanted - registered
    assert {"scattergl", "heatmap"} <= drawn  # the projections and the confusion matrix, drawn as themselves
    assert any("/assets/plotly.min.js" in url for url in fetched)
    assert not any("package_data/plotly.min.js" in url or "plotly/plotly.min.js" in url for url in fetched), fetched
