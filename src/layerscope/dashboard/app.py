"""The dashboard: ``create_app(run)`` builds the Dash app; ``serve`` runs it on 127.0.0.1 by default.

The server answers only to its own host names and pages (guard.py): loopback, the address it is bound to and the
names in ``allow_hosts``. Bound to every interface (``host="0.0.0.0"``) it cannot know the machine's names, so a team
server needs them given: ``layerscope serve RUN --host 0.0.0.0 --allow-host team.example``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Sequence
from typing import Any

from dash import Dash
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from layerscope.dashboard import (
    activations,
    attention_card,
    compare_card,
    draw,
    gallery,
    groups,
    inside,
    interventions,
    model_graph,
    projection,
    projection_raster,
    raster,
    sidebar,
    timeline_card,
    workspace,
)
from layerscope.dashboard.guard import LOOPBACK, allowed_hosts, install_guard
from layerscope.dashboard.layout import build_layout
from layerscope.dashboard.live import register_live
from layerscope.dashboard.messages import on_callback_error
from layerscope.dashboard.state import DashboardState
from layerscope.run import Run

__all__ = ["create_app", "serve", "show"]

ASSET_MAX_AGE = 365 * 24 * 3600  # seconds a browser keeps the dashboard's scripts and style sheet


class _Handler(WSGIRequestHandler):
    # a client that stops sending mid-request (a declared body that never comes) lets go of its thread after this
    timeout = 60

    def setup(self) -> None:
        super().setup()
        # an answer goes out as it is written: otherwise Nagle's algorithm holds its body back until the browser
        # acknowledges the headers, which the browser delays by up to 40 ms (delayed ACK), on every request
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def create_app(
    run: Run | str | os.PathLike[str],
    allow_hosts: Sequence[str] | None = None,
    device: str = "cpu",
    compare: Run | str | os.PathLike[str] | None = None,
) -> Dash:
    """A Dash app over one Run. Large arrays stay on the server; the browser gets indices and small figures.

    The app answers requests for loopback names (127.0.0.1, localhost, ::1) and for the host names or addresses in
    ``allow_hosts``, at any port; any other Host is refused (403), as is a state-changing request from another site's
    page, and a body over ``guard.MAX_BODY`` (413). A value of ``allow_hosts`` that is not a host name or address is
    a one-line ``LayerscopeError``. Work over the whole dataset (projections, top images, feature visualisation)
    runs on ``device``; one image at a time runs on the CPU, where a single forward pass is fastest.

    With ``compare``, a second Run of the same images (a one-line ``LayerscopeError`` otherwise) is shown in
    projection B beside ``run`` in projection A, with the comparison of the two (compare_card.py)."""
    hosts = allowed_hosts(None, allow_hosts)  # checked before the Run is read
    state = DashboardState(run if isinstance(run, Run) else Run(run), device=device)
    if compare is not None:
        state.compare_with(compare if isinstance(compare, Run) else Run(compare))
    app = Dash(
        __name__,
        title=f"layerscope · {state.run.manifest['dataset']['name']}",
        assets_folder=os.path.join(os.path.dirname(__file__), "assets"),
        update_title="",
        # the views but Explore are laid out when they first open (views.py): their callbacks' components are not
        # in the first layout; tests/unit/test_dashboard_layout.py checks every callback against the whole page
        suppress_callback_exceptions=True,
        # an exception a callback lets out is one sentence in the page's notice, not a 500 (messages.py)
        on_error=on_callback_error,
    )
    install_guard(app.server, hosts, hosts - frozenset(LOOPBACK))
    # the page names each of its assets with the file's modification time (?m=...): a changed file has a new address,
    # so the browser keeps what it has for a year instead of asking again at each page open (1.6 MB of scripts)
    app.server.config["SEND_FILE_MAX_AGE_DEFAULT"] = ASSET_MAX_AGE
    state.url_prefix = app.config.requests_pathname_prefix
    app.server.before_request(state.sessions.touch)
    if projection_raster.is_large(state):
        # Datashader compiles its aggregation on first use (numba: seconds): done now, not in the page's first
        # request. Imported here first: pandas imported in a thread while plotly looks for it here fails half-made
        import datashader  # noqa: F401

        classes = len(state.class_names)
        threading.Thread(target=raster.warm_up, args=(classes,), name="layerscope-raster-warm-up", daemon=True).start()
    app.layout = build_layout(state)
    for feature in (
        workspace,
        sidebar,
        gallery,
        projection,
        projection_raster,
        groups,
        activations,
        timeline_card,
        compare_card,
    ):
        feature.callbacks.register(app, state)
    if state.has_model:
        inside.callbacks.register(app, state)
        model_graph.callbacks.register(app, state)
        attention_card.callbacks.register(app, state)
        draw.callbacks.register(app, state)
        register_live(app, state)
        interventions.callbacks.register(app, state)
    app.layerscope_state = state  # type: ignore[attr-defined]
    return app


def _bound_names(host: str, allow_hosts: Sequence[str] | None) -> list[str]:
    """``allow_hosts`` and the address the server binds, which it answers to as well (unless it binds them all)."""
    return [*(allow_hosts or []), *([host] if host.strip() not in ("0.0.0.0", "::", "") else [])]


def serve(
    run: Run | str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8050,
    open_browser: bool = True,
    allow_hosts: Sequence[str] | None = None,
    device: str = "cpu",
    compare: Run | str | os.PathLike[str] | None = None,
) -> None:
    """Serve the dashboard until interrupted. It answers to loopback names, to ``host`` and to ``allow_hosts``; with
    ``host="0.0.0.0"`` give the names people will type (``allow_hosts=["team.example"]``, ``--allow-host``). With
    ``compare``, Run B beside ``run`` (`create_app`)."""
    app = create_app(run, allow_hosts=_bound_names(host, allow_hosts), device=device, compare=compare)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    _warm_up(app)
    app.run(host=host, port=port, debug=False, request_handler=_Handler)


def _warm_up(app: Dash) -> None:
    """The model side imported and the model loaded in a background thread (`DashboardState.warm_up`), while the
    first page, which needs neither, is served."""
    state: DashboardState = app.layerscope_state

    def work() -> None:
        try:
            state.warm_up()
        except Exception:  # the views that need the model say what is wrong when they ask for it
            logging.getLogger(__name__).debug("warming up the model side failed", exc_info=True)

    threading.Thread(target=work, name="layerscope-warm-up", daemon=True).start()


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
    run: Run | str | os.PathLike[str],
    port: int | None = None,
    height: int = 900,
    host: str = "127.0.0.1",
    allow_hosts: Sequence[str] | None = None,
    trust_model_code: bool = False,
) -> DashboardURL:
    """Serve the dashboard of ``run`` (a Run, a Run directory or an NN_data.json file) in a background thread and
    show it: inline in a notebook, as a printed URL elsewhere. Returns the URL. Showing again on the same port
    replaces the dashboard there; the server ends with the Python process. It answers to loopback names, ``host``
    and ``allow_hosts`` (a notebook on a remote machine reached by name needs that name here). A Run whose model is
    not layerscope's own needs ``trust_model_code=True`` (see ``Run``)."""
    from layerscope.run import open_run

    opened = open_run(run, trust_model_code=trust_model_code)
    opened.check_model_code()
    app = create_app(opened, allow_hosts=_bound_names(host, allow_hosts))
    if port is None:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    old = _SHOWN.pop((host, port), None)
    if old is not None:
        old.shutdown()
        old.server_close()
    server = make_server(host, port, app.server, threaded=True, request_handler=_Handler)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log in the notebook's output
    threading.Thread(target=server.serve_forever, daemon=True, name=f"layerscope-{port}").start()
    _warm_up(app)
    _SHOWN[(host, port)] = server
    url = DashboardURL(f"http://{host}:{port}/")
    if _kernel() is not None:
        from IPython.display import IFrame, display

        display(IFrame(url, width="100%", height=height))
    else:
        print(f"layerscope dashboard: {url}")
    return url
