"""DNS rebinding, as chromium lives it: a name of another site that resolves to 127.0.0.1 (chromium's host resolver
rules stand in for the attacker's DNS) gets neither the page nor the right to draw into the dashboard.

Chromium's own Private Network Access checks would stop the attacker's fetch before it left the browser; they are
switched off here, as browsers without them (Firefox, Safari, older Chromium) behave, so the server's guard is what
is tested."""

import json
import socket
import threading

import pytest
from werkzeug.serving import make_server

from layerscope.dashboard import create_app
from layerscope.dashboard.live import ROUTE
from layerscope.dashboard.state import LIVE
from tests.browser.conftest import ARGS, CHROMIUM

pytestmark = pytest.mark.browser

REBINDING = [
    "--host-resolver-rules=MAP evil.example 127.0.0.1",
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks",
]
STROKE = {"strokes": [[[0.5, 0.15], [0.5, 0.5], [0.5, 0.85]]], "version": 1}


@pytest.fixture
def served(tiny_run):
    app = create_app(tiny_run)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = make_server("127.0.0.1", port, app.server, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield app, port
    httpd.shutdown()


def drawn(state):
    """The scratches (a page's, or the default one) that hold a live drawing."""
    return [s for s in state.sessions.scratches() if LIVE in s.drawings]


def test_a_rebound_name_gets_no_page_and_cannot_draw(served, playwright, tmp_path):
    app, port = served
    state = app.layerscope_state
    # a browser of its own: the resolver rules are the browser's, not a page's
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path), executable_path=CHROMIUM, args=[*ARGS, *REBINDING]
    )
    try:
        page = context.new_page()
        response = page.goto(f"http://evil.example:{port}/")
        assert response is not None and response.status == 403
        assert "does not answer to the host 'evil.example:" in page.text_content("body")
        # the attacker's page, as first served by its own site; then its scripts post to the same name, which now
        # resolves to the local server: same-origin for the browser, so JSON and the status are theirs to send
        page.route(
            f"http://evil.example:{port}/attack",
            lambda route: route.fulfill(body="<html><body>hello</body></html>", content_type="text/html"),
        )
        page.goto(f"http://evil.example:{port}/attack")
        status = page.evaluate(
            """([route, body]) => fetch('/' + route, {method: 'POST', body: body,
                   headers: {'Content-Type': 'application/json'}}).then(r => r.status)""",
            [ROUTE, json.dumps(STROKE)],
        )
        assert status == 403
        assert not drawn(state)  # nothing was drawn, in any page's scratch or outside one
        # the dashboard's own page, by its own address, draws
        page.goto(f"http://127.0.0.1:{port}/")
        status = page.evaluate(
            """([route, body]) => fetch('/' + route, {method: 'POST', body: body,
                   headers: {'Content-Type': 'application/json'}}).then(r => r.status)""",
            [ROUTE, json.dumps(STROKE)],
        )
        # drawn into that page's own scratch (its session header, assets/session.js), not the shared default
        assert status == 200 and len(drawn(state)) == 1 and drawn(state)[0] is not state.sessions.default
        assert drawn(state)[0].live_version == 1
    finally:
        context.close()
