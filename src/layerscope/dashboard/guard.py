"""What the dashboard's server lets in: requests for one of its own host names, state-changing requests from its own
pages, bodies of a bounded size. One Flask ``before_request`` hook, installed by ``create_app``.

Why: the server binds 127.0.0.1 and has no authentication, which is safe only if nothing but the user's own pages can
talk to it. Through DNS rebinding a page on another site (``evil.example``, whose DNS answer turns into 127.0.0.1) is
same-origin with the local server as far as the browser is concerned, but every request it makes says ``Host:
evil.example``; and a plain cross-site ``fetch`` of ``/_dash-update-component`` says ``Origin: http://evil.example``.
So:

- **Host** must be a loopback name (``127.0.0.1``, ``localhost``, ``::1``), the address the server is bound to, or a
  name from ``allow_hosts`` (``--allow-host NAME``), at any port: the name is what a rebinding attack cannot fake.
  Bound to ``0.0.0.0``, the machine's own names and addresses cannot be known reliably (aliases, several interfaces,
  a proxy in front), so a team server answers only to loopback and to the names it is given: start it with
  ``--host 0.0.0.0 --allow-host team.example`` (or ``--allow-host 10.0.0.5``) for the name people type.
- **Origin**, when a state-changing request (POST and the other unsafe methods: every Dash callback, the Draw route)
  carries one, must be the page's own origin (the host it asked for, at the same port) or a host of
  ``allow_hosts`` (a reverse proxy may rewrite Host but not Origin). ``Origin: null`` (a sandboxed frame, a
  ``file:`` page) is refused. Browsers send Origin on every cross-origin POST, so a page elsewhere cannot drive the
  callbacks; tools without Origin (curl, tests) are let through, the Host check still applies.
- **Size**: ``MAX_BODY`` bytes. A declared larger ``Content-Length`` is refused before anything is read; a chunked
  body is cut off at the limit by Flask's ``MAX_CONTENT_LENGTH``.

Every refusal is one sentence of plain text (403 or 413).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from layerscope.errors import LayerscopeError

__all__ = ["LOOPBACK", "MAX_BODY", "allowed_hosts", "host_name", "install_guard"]

log = logging.getLogger("layerscope.dashboard")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")  # bound to every interface: no name of its own to accept

# The largest legitimate requests are Dash callbacks that carry selections (JSON, measured on all 70,000 MNIST images):
# a lasso over every point sends them as [trace, point] pairs (0.63 MB) beside the current selection as indices
# (0.41 MB); the activation panels' callback sends every saved group, at most `checks.MAX_GROUP_MEMBERS` indices in
# all (4.1 MB), with the selection: 4.5 MB. 8 MiB keeps ~1.8 times that, while a 20 MB body or a declared 10 GB is
# refused. (A dataset of over 100,000 images has longer indices: its groups reach the limit sooner.)
MAX_BODY = 8 * 1024 * 1024

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,252})")  # a DNS name or an IPv4 address, lower case


def _split(value: str) -> tuple[str, int | None] | None:
    """(host, port or None) of a ``Host`` header or an ``--allow-host`` value (``name``, ``name:port``,
    ``[::1]:8050``, an address): the host lower case, without trailing dot; None when it is neither name nor address."""
    text = value.strip().lower()
    port: str | None = None
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        end = text.find("]")
        rest = text[end + 1 :] if end >= 0 else ""
        if end < 0 or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        text, port = text[1:end], rest[1:] or None
    elif text.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        text, _, port = text.partition(":")
        if not re.fullmatch(r"\d{1,5}", port):
            return None
    if ":" in text:
        try:
            text = str(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    else:
        text = text.rstrip(".")
        if not _NAME.fullmatch(text):
            return None
    return text, int(port) if port is not None else None


def host_name(value: str) -> str | None:
    """The host of a ``Host`` header or an ``--allow-host`` value, without its port; None when it is not one."""
    split = _split(value)
    return split[0] if split is not None else None


def allowed_hosts(bound: str | None = None, allow_hosts: Iterable[str] | None = None) -> frozenset[str]:
    """The host names the server answers to: loopback, the address it is bound to (unless that is every interface)
    and ``allow_hosts``; a value that is not a host name or address is a one-line ``LayerscopeError``."""
    names = set(LOOPBACK)
    extra = list(allow_hosts or [])
    if bound is not None and bound.strip() not in WILDCARDS:
        extra.append(bound)
    for value in extra:
        name = host_name(value) if isinstance(value, str) else None
        if name is None:
            raise LayerscopeError(
                f"--allow-host {value!r} is not a host name or address; give one like team.example or 10.0.0.5."
            )
        names.add(name)
    return frozenset(names)


def _refuse(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


def _origin_allowed(origin: str, scheme_asked: str, host: str, trusted: frozenset[str]) -> bool:
    """Whether a state-changing request from page ``origin`` may act on this server, asked for as
    ``scheme_asked://host``."""
    try:
        parts = urlsplit(origin)
        scheme, netloc = parts.scheme, parts.netloc
    except ValueError:
        return False
    page, asked = _split(netloc), _split(host)
    if scheme not in ("http", "https") or page is None or asked is None:
        return False
    if page[0] in trusted:  # named on purpose (--allow-host): a proxy in front may present another port or Host
        return True
    # otherwise the page's own origin only: a loopback name at another port (or scheme) is another local site
    default = 443 if scheme == "https" else 80
    return scheme == scheme_asked and page[0] == asked[0] and (page[1] or default) == (asked[1] or default)


def install_guard(server: Flask, hosts: frozenset[str], trusted: frozenset[str] = frozenset()) -> None:
    """Check every request of ``server`` against ``hosts`` (see the module's docstring); ``trusted``: the names given
    by ``allow_hosts``, whose pages may post from any port."""
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    shown = ", ".join(sorted(hosts))

    @server.before_request
    def guard() -> Response | None:
        host = request.headers.get("Host")
        if host is None:  # HTTP/1.0 without Host: no browser sends that, so no rebinding page either
            host = request.host
        elif host_name(host) not in hosts:
            return _refuse(
                403,
                f"this dashboard does not answer to the host {host[:80]!r} (it answers to {shown}); "
                "open it by one of those, or start it with --allow-host NAME for a name of your own.",
            )
        if request.method in UNSAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and not _origin_allowed(origin, request.scheme, host, trusted):
                return _refuse(
                    403,
                    f"a page at {origin[:80]!r} may not change this dashboard; only its own pages may "
                    "(--allow-host NAME adds a name).",
                )
        length = request.content_length
        if length is not None and length > MAX_BODY:  # refused before a byte of it is read
            return _refuse(413, f"the request body of {length:,} bytes is over the limit of {MAX_BODY:,} bytes.")
        return None

    @server.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        """Werkzeug's own error pages (a chunked body over the limit, malformed JSON, an unknown URL) as one
        sentence of text, like the refusals above."""
        if error.code is None or error.code < 400:
            return error
        if error.code == 413:
            return _refuse(413, f"the request body is over the limit of {MAX_BODY:,} bytes.")
        texts = {
            400: "the request is malformed; reload the page.",
            404: f"there is no page at {request.path[:80]!r}; the dashboard is at /.",
            405: f"{request.method} is not allowed on {request.path[:80]!r}.",
        }
        code = error.code or 500
        return _refuse(code, texts.get(code, f"the request failed ({code} {error.name})."))

    @server.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        """An exception no view caught. Dash's callbacks have their own net (messages.on_callback_error), so what
        reaches here from its dispatch is a request body it could not take apart (no "output", an input that is not
        a list): the client's fault, 400. Anything else is the server's, 500; both are one sentence."""
        log.error("%s %s failed", request.method, request.path[:200], exc_info=error)
        if request.path.endswith("_dash-update-component"):
            return _refuse(400, "the callback request is malformed; reload the page.")
        return _refuse(500, "the server could not answer this request; its log says why.")
