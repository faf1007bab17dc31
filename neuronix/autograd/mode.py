"""Grad-recording mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

One module-level flag, read on every op; a plain attribute read is the cheapest
check Python offers on the hot path.
"""

from __future__ import annotations

import functools

grad_enabled = True


def is_grad_enabled() -> bool:
    """True when ops record a graph (as ``torch.is_grad_enabled``)."""
    return grad_enabled


class _Switch:
    """Switches recording to ``mode`` for a ``with`` body or a decorated function."""

    mode = True

    def __enter__(self) -> None:
        global grad_enabled
        self.prev = grad_enabled
        grad_enabled = self.mode

    def __exit__(self, *exc) -> None:
        global grad_enabled
        grad_enabled = self.prev

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            switch = _Switch()  # one per call: recursion and nesting keep their own previous mode
            switch.mode = mode
            with switch:
                return fn(*args, **kwargs)

        return wrapper


class _NoArgSwitch(_Switch):
    """``@nx.no_grad`` works with or without parentheses, as torch's."""

    def __new__(cls, fn=None):
        switch = super().__new__(cls)
        return switch if fn is None else switch(fn)

    def __init__(self, fn=None) -> None:
        pass


class no_grad(_NoArgSwitch):
    """Ops inside record no graph (as ``torch.no_grad``): a context manager or a decorator."""

    mode = False


class enable_grad(_NoArgSwitch):
    """Ops inside record a graph even within ``no_grad`` (as ``torch.enable_grad``)."""

    mode = True


class set_grad_enabled(_Switch):
    """Sets recording on or off at once (as ``torch.set_grad_enabled``).

    As a context manager it restores the previous mode on exit; as a decorator it
    leaves the current mode alone and applies ``mode`` inside each call.
    """

    def __init__(self, mode: bool) -> None:
        global grad_enabled
        self.prev = grad_enabled
        self.mode = bool(mode)
        grad_enabled = self.mode

    def __enter__(self) -> None:
        return None

    def __call__(self, fn):
        global grad_enabled
        grad_enabled = self.prev  # used as a decorator: undo the switch made by the constructor
        return super().__call__(fn)
