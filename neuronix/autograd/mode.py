"""Grad-recording mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` — per thread.

As in torch, the mode belongs to the thread that sets it: a ``no_grad`` block or a
``backward()`` running in one thread never turns recording off in another. The flag is a
``contextvars.ContextVar``: every thread runs in its own context, so a new thread starts
with the default (recording on), and reading it (``is_grad_enabled()``, the var's own
``get``) costs about half a ``threading.local`` attribute read — it is read on every op.
(An asyncio task also keeps the mode it was created with.) ``mode.grad_enabled`` still
answers, through the module ``__getattr__``, for code that is not on a hot path.
"""

from __future__ import annotations

import contextvars
import functools
import inspect

_enabled = contextvars.ContextVar("neuronix_grad_enabled", default=True)

is_grad_enabled = _enabled.get  # True when ops record a graph in this thread (as ``torch.is_grad_enabled``)
_set = _enabled.set


def __getattr__(name: str):
    if name == "grad_enabled":
        return _enabled.get()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Switch:
    """Switches recording to ``mode`` for a ``with`` body or a decorated function."""

    mode = True

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _set(self.mode)

    def __exit__(self, *exc) -> None:
        _set(self.prev)

    def __call__(self, fn):
        mode = self.mode
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = is_grad_enabled()  # per call: recursion and nesting keep their own previous mode
            _set(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _set(prev)

        return wrapper


def _wrap_generator(fn, mode: bool):
    """A decorated generator runs its body under ``mode`` at every resumption, as torch's.

    The caller's mode is restored each time the generator yields, so the mode never leaks
    into the code that iterates it.
    """

    def under_mode(step, *args):
        prev = is_grad_enabled()
        _set(mode)
        try:
            return step(*args)
        finally:
            _set(prev)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        gen = fn(*args, **kwargs)
        try:
            request = under_mode(gen.send, None)
            while True:
                try:
                    value = yield request
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as err:  # thrown in by the caller: delivered under the mode too
                    request = under_mode(gen.throw, err)
                else:
                    request = under_mode(gen.send, value)
        except StopIteration as stop:
            return stop.value

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
        self.prev = is_grad_enabled()
        self.mode = bool(mode)
        _set(self.mode)

    def __enter__(self) -> None:
        return None

    def __call__(self, fn):
        _set(self.prev)  # used as a decorator: undo the switch made by the constructor
        return super().__call__(fn)
