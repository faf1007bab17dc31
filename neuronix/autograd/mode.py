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
            switch = _Switch()
            switch.mode = mode
            with switch:
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_Switch):
    """Ops inside record no graph (as ``torch.no_grad``)."""

    mode = False


class enable_grad(_Switch):
    """Ops inside record a graph even within ``no_grad`` (as ``torch.enable_grad``)."""

    mode = True


class set_grad_enabled(_Switch):
    """Sets recording on or off at once; as a context manager it restores the old mode on exit."""

    def __init__(self, mode: bool) -> None:
        global grad_enabled
        self.prev = grad_enabled
        self.mode = bool(mode)
        grad_enabled = self.mode

    def __enter__(self) -> None:
        return None
