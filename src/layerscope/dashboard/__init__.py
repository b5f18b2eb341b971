"""The local web dashboard (Plotly Dash) over a Run."""

from layerscope.dashboard.app import create_app, serve

__all__ = ["create_app", "serve"]
