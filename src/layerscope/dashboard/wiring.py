"""Callbacks written once, at module level, and bound to each app's own state.

A feature module declares its callbacks on a module-level ``Callbacks`` (``callbacks = Callbacks()``): a server
callback is a plain function whose first parameter is the ``DashboardState`` and whose others are the callback's
Inputs and States, in order; a clientside one is its JavaScript. ``create_app`` binds each module's callbacks to the
state of the app it builds (``callbacks.register(app, state)``), so several dashboards live in one process, nothing
module-wide changes per request, and a test calls the function itself with a state, without a browser or a server.

A feature may also answer plain GET requests (``callbacks.route``): what the page's scripts fetch on the hot paths,
an image by URL or the selected image's card, where a Dash callback would make the renderer walk the page's
components for each answer (see live.py). A route is a function of the state and the request's arguments that
returns a Flask response; a ``LayerscopeError`` it raises is a 400 whose JSON body says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dash import ClientsideFunction, Dash
from flask import Response, jsonify, request

from layerscope.dashboard.state import DashboardState
from layerscope.errors import LayerscopeError

__all__ = ["Callbacks"]

F = TypeVar("F", bound=Callable[..., Any])
When = Callable[[DashboardState], bool]
Route = Callable[[DashboardState, Mapping[str, str]], Response]


def _bound(function: Callable[..., Any], state: DashboardState) -> Callable[..., Any]:
    def bound(*args: Any) -> Any:
        return function(state, *args)

    # Dash names a callback after its function (in its errors and its debug tools)
    bound.__name__, bound.__qualname__, bound.__doc__ = function.__name__, function.__qualname__, function.__doc__
    bound.__module__ = function.__module__
    return bound


@dataclass(frozen=True)
class _Declared:
    """One callback as declared: a server function or a clientside script, its dependencies and Dash's options."""

    target: Callable[..., Any] | str | ClientsideFunction
    dependencies: tuple[Any, ...]
    options: dict[str, Any]
    when: When | None
    clientside: bool

    def register(self, app: Dash, state: DashboardState) -> None:
        if self.when is not None and not self.when(state):
            return
        dependencies = self.dependencies
        if len(dependencies) == 1 and callable(dependencies[0]):  # they depend on the Run: what it has to show
            dependencies = tuple(dependencies[0](state))
        if self.clientside:
            app.clientside_callback(self.target, *dependencies, **self.options)
        else:
            app.callback(*dependencies, **self.options)(_bound(self.target, state))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Route:
    """A GET route: ``rule`` under the app's ``routes_pathname_prefix`` answered by ``function(state, args)``."""

    rule: str
    function: Route
    when: When | None

    def register(self, app: Dash, state: DashboardState) -> None:
        if self.when is not None and not self.when(state):
            return

        def answer() -> Any:
            try:
                return self.function(state, request.args)
            except LayerscopeError as e:
                return jsonify(error=str(e)), 400

        endpoint = "layerscope_" + self.rule.replace("/", "_")
        app.server.add_url_rule(app.config.routes_pathname_prefix + self.rule, endpoint, answer, methods=["GET"])


@dataclass
class Callbacks:
    """The callbacks of one feature module, registered on an app, in the order declared, by ``register``."""

    declared: list[_Declared] = field(default_factory=list)
    routes: list[_Route] = field(default_factory=list)

    def callback(self, *dependencies: Any, when: When | None = None, **options: Any) -> Callable[[F], F]:
        """Like ``dash.callback``; the function gets the app's state first and is returned as it is. ``when``: a
        test of the state, for a callback only some Runs have (the feature maps of a model with conv layers).
        Dependencies that depend on the Run (the views it offers) are given as one function of the state that
        returns them."""

        def declare(function: F) -> F:
            self.declared.append(_Declared(function, dependencies, options, when, clientside=False))
            return function

        return declare

    def clientside(
        self, script: str | ClientsideFunction, *dependencies: Any, when: When | None = None, **options: Any
    ) -> None:
        """Like ``Dash.clientside_callback``: ``script`` runs in the browser."""
        self.declared.append(_Declared(script, dependencies, options, when, clientside=True))

    def route(self, rule: str, when: When | None = None) -> Callable[[Route], Route]:
        """A GET route at ``rule`` (``"_layerscope/fmap"``) under the app's prefix, answered by the function with
        the app's state and the request's arguments; ``when`` as for ``callback``."""

        def declare(function: Route) -> Route:
            self.routes.append(_Route(rule, function, when))
            return function

        return declare

    def register(self, app: Dash, state: DashboardState) -> None:
        for declared in self.declared:
            declared.register(app, state)
        for route in self.routes:
            route.register(app, state)
