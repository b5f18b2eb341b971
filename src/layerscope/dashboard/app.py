"""The dashboard: ``create_app(run)`` builds the Dash app; ``serve`` runs it on 127.0.0.1 by default."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import webbrowser
from typing import Any

from dash import Dash
from werkzeug.serving import BaseWSGIServer, make_server

from layerscope.dashboard.callbacks import register, register_jobs
from layerscope.dashboard.draw import register_draw
from layerscope.dashboard.inside import register_inside
from layerscope.dashboard.interventions import register_interventions
from layerscope.dashboard.layout import build_layout
from layerscope.dashboard.live import register_live
from layerscope.dashboard.state import DashboardState
from layerscope.run import Run

__all__ = ["create_app", "serve", "show"]


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
    if state.has_model:
        register_inside(app, state)
        register_draw(app, state)
        register_live(app, state)
        register_interventions(app, state)
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


_SHOWN: dict[tuple[str, int], BaseWSGIServer] = {}  # dashboards started by show(), by address


class DashboardURL(str):
    """The URL of a shown dashboard; a notebook shows it as a link that opens the page in a new tab."""

    def _repr_html_(self) -> str:
        return f'<a href="{self}" target="_blank">layerscope dashboard at {self}</a> (opens in a new tab)'


def _kernel() -> Any:
    """The IPython kernel's shell when running in a notebook (Jupyter, VS Code, Colab), else None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def show(
    run: Run | str | os.PathLike[str], port: int | None = None, height: int = 900, host: str = "127.0.0.1"
) -> DashboardURL:
    """Serve the dashboard of ``run`` (a Run, a Run directory or an NN_data.json file) in a background thread and
    show it: inline in a notebook, as a printed URL elsewhere. Returns the URL. Showing again on the same port
    replaces the dashboard there; the server ends with the Python process."""
    from layerscope.pipeline import open_run

    app = create_app(open_run(run))
    if port is None:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    old = _SHOWN.pop((host, port), None)
    if old is not None:
        old.shutdown()
        old.server_close()
    server = make_server(host, port, app.server, threaded=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log in the notebook's output
    threading.Thread(target=server.serve_forever, daemon=True, name=f"layerscope-{port}").start()
    _SHOWN[(host, port)] = server
    url = DashboardURL(f"http://{host}:{port}/")
    if _kernel() is not None:
        from IPython.display import IFrame, display

        display(IFrame(url, width="100%", height=height))
    else:
        print(f"layerscope dashboard: {url}")
    return url
