"""What the page says when a request cannot be answered: one sentence, never a 500.

Callbacks check what they are sent (``checks``) and say what is wrong where the answer would be. This module is the
net below them: Dash's ``on_error`` hands it any exception a callback lets out, and it shows one sentence in the
page's notice (``ids.PAGE_ERROR``) while the callback's outputs stay as they were.
"""

from __future__ import annotations

import logging

from dash import set_props

from layerscope.dashboard import ids
from layerscope.errors import LayerscopeError

__all__ = ["UNEXPECTED", "on_callback_error", "sentence"]

log = logging.getLogger("layerscope.dashboard")
UNEXPECTED = "this view could not be updated"  # how the sentence for an exception nobody checked for begins
MAX_TEXT = 300


def sentence(error: BaseException) -> str:
    """``error`` as one line of at most ``MAX_TEXT`` characters: a ``LayerscopeError`` says what to do; anything
    else was not foreseen and says so, with its type."""
    if isinstance(error, LayerscopeError):
        text = str(error)
    else:
        text = f"{UNEXPECTED} ({type(error).__name__}: {error}); the rest of the page keeps working."
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def on_callback_error(error: Exception) -> None:
    """Dash's ``on_error``: the sentence in the page's notice; None leaves every output of the callback unchanged."""
    if isinstance(error, LayerscopeError):
        log.info("refused: %s", error)
    else:  # a bug or an input no check foresaw: its traceback belongs in the server's log
        log.error("a dashboard callback failed", exc_info=error)
    set_props(ids.PAGE_ERROR, {"children": sentence(error)})
