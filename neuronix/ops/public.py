"""The public surface: which functions are ``nx.<name>`` and which are ``Tensor.<name>``."""

from __future__ import annotations

from collections.abc import Callable

FUNCTIONS: dict[str, Callable] = {}  # public ``nx.<name>`` functions
METHODS: dict[str, Callable] = {}  # public ``Tensor.<name>`` methods


def public(fn: Callable | None = None, *, method: bool = True, function: bool = True, name: str | None = None):
    """Mark ``fn`` as public API: ``nx.<name>`` (``function``) and ``Tensor.<name>`` (``method``)."""

    def mark(f: Callable) -> Callable:
        key = name or f.__name__
        if function:
            FUNCTIONS[key] = f
        if method:
            METHODS[key] = f
        return f

    return mark(fn) if fn is not None else mark
