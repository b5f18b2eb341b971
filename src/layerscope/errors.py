"""The one exception type layerscope raises for bad input.

Every message is a single line that says what is wrong and what to do next; the CLI prints it and exits with code 2.
"""

from __future__ import annotations


class LayerscopeError(Exception):
    """Bad input: a corrupt file, an unknown layer, a Run from a newer version, ..."""


class IdxError(LayerscopeError):
    """An IDX file that cannot be read."""


class RunError(LayerscopeError):
    """A Run directory that is missing, incomplete or from a newer format version."""


class LayerNotFoundError(LayerscopeError):
    """A layer name the model or Run does not have."""


class ModelMismatchError(LayerscopeError):
    """A model that does not fit the dataset: wrong input shape or number of classes."""
