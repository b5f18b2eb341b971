"""What each visitor makes, apart from what everyone shares.

The Run and everything computed into it (projections, top images, feature visualisations) belong to every page. What
a visitor makes — the digit being drawn, the drawings kept, the placements of those drawings, which finished
background jobs the page has shown — belongs to the page that made it. Each page load draws a random session id
(assets/session.js) and sends it with every request to its own server in the ``X-Layerscope-Session`` header; the
server keeps one `Scratch` per id.

Why a header and not a cookie: a cookie belongs to the browser, not the page, and a dashboard shown in a notebook's
iframe (``show()``: 127.0.0.1 inside a page from localhost:8888) is a third-party frame, where browsers do not send
cookies. A header set by the page's own script goes wherever the page's requests go.

Requests without the header (a script, ``curl``, Flask's test client) share one scratch, `Sessions.default`, which is
also what code outside any request (a notebook calling ``DashboardState`` directly) works on. Sessions are bounded: at
most ``limit`` pages (the least recently used goes first) and none idle for more than ``idle`` seconds, so a thousand
visits do not grow the server without end.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
import numpy as np

from layerscope.errors import LayerscopeError

__all__ = ["HEADER", "IDLE_SECONDS", "MAX_KEPT", "MAX_SESSIONS", "Scratch", "Sessions"]

HEADER = "X-Layerscope-Session"
MAX_SESSIONS = 64  # pages kept at once; one holds a few drawings with every layer's output (~0.1-1 MB each)
IDLE_SECONDS = 2 * 3600.0  # a page not heard from for this long is forgotten
MAX_KEPT = 50  # kept drawings per page
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(eq=False)
class Scratch:
    """One page's own state: drawings by key ("draw:live", "draw:1", ...) as (H, W) uint8, every layer's output and
    the class probabilities for each, the stroke version the live drawing shows, placements of its drawings, and the
    finished background jobs it has shown."""

    born: float = field(default_factory=time.monotonic)
    drawings: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    live_version: int = -1  # the stroke version (assets/draw.js counts them) the live drawing shows
    kept: int = 0  # drawings kept so far: the next is "draw:<kept + 1>"
    # (drawing, layer, method) -> (the layer's output it was placed from, where); see DashboardState.place
    placed: dict[tuple[str, str, str], tuple[np.ndarray, tuple[float, float] | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _shown: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)

    def seen(self, job: Any) -> bool:
        """Whether this page has nothing left to show of ``job``: it finished before the page opened, or the page has
        drawn its result (`mark_seen`). Pages poll while a job is unfinished or unseen."""
        return bool(job.finished) and (job.ended <= self.born or job in self._shown)

    def mark_seen(self, job: Any) -> None:
        self._shown.add(job)


class Sessions:
    """The scratch of every page, by session id, bounded in number and idle time."""

    def __init__(
        self,
        limit: int = MAX_SESSIONS,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.idle, self.clock = limit, idle, clock
        self.default = Scratch()  # requests without a session id, and code outside any request
        self._pages: OrderedDict[str, tuple[Scratch, float]] = OrderedDict()  # id -> (scratch, last heard), LRU first
        self._lock = threading.Lock()

    def get(self, session: str | None) -> Scratch:
        """The scratch of ``session`` (a 32-hex-digit id; None: `default`), made on first use. A malformed id is a
        one-line ``LayerscopeError``."""
        if session is None:
            return self.default
        if not _ID.fullmatch(session):
            raise LayerscopeError(f"the {HEADER} header is not a session id (32 hex digits); reload the page.")
        now = self.clock()
        with self._lock:
            entry = self._pages.pop(session, None)
            scratch = entry[0] if entry is not None and now - entry[1] <= self.idle else Scratch()
            while self._pages and (
                len(self._pages) >= self.limit or now - next(iter(self._pages.values()))[1] > self.idle
            ):
                self._pages.popitem(last=False)  # the least recently heard from, or one idle too long
            self._pages[session] = (scratch, now)
        return scratch

    def current(self) -> Scratch:
        """The scratch of the request being answered (its session header), or `default` outside a request."""
        if not flask.has_request_context():
            return self.default
        return self.get(flask.request.headers.get(HEADER))

    def touch(self) -> None:
        """Make or refresh the scratch of the request being answered: a Flask ``before_request`` hook, so that a page's
        scratch is born with the page's first request (the card of the image it opens on) and a job that the page
        starts later counts as finishing after it opened, however soon it ends (`Scratch.seen`). A malformed id is
        left to the callbacks to refuse."""
        with contextlib.suppress(LayerscopeError):
            self.current()

    def scratches(self) -> list[Scratch]:
        """Every page's scratch, the least recently used first, then `default`."""
        with self._lock:
            return [scratch for scratch, _ in self._pages.values()] + [self.default]

    def __len__(self) -> int:
        return len(self._pages)
