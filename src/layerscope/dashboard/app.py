"""The dashboard: ``create_app(run)`` builds the Dash app; ``serve`` runs it on 127.0.0.1 by default."""

from __future__ import annotations

import os
import threading
import webbrowser

from dash import Dash

from layerscope.dashboard.callbacks import register, register_jobs
from layerscope.dashboard.inside import register_inside
from layerscope.dashboard.layout import build_layout
from layerscope.dashboard.state import DashboardState
from layerscope.run import Run

__all__ = ["create_app", "serve"]


def create_app(run: Run | str | os.PathLike[str]) -> Dash:
    """A Dash app over one Run. Large arrays stay on the server; the browser gets indices and small figures."""
    state = DashboardState(run if isinstance(run, Run) else Run(run))
    app = Dash(
        __name__,
        title=f"layerscope · {state.run.manifest['dataset']['name']}",
        assets_folder=os.path.join(os.path.dirname(__file__), "assets"),
        update_title="",
    )
    app.layout = build_layout(state)
    register(app, state)
    register_jobs(app, state)
    register_inside(app, state)
    app.layerscope_state = state  # type: ignore[attr-defined]
    return app


def serve(
    run: Run | str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8050, open_browser: bool = True
) -> None:
    """Serve the dashboard until interrupted."""
    app = create_app(run)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    app.run(host=host, port=port, debug=False)
