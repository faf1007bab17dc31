"""Grad-recording mode: ``no_grad``, ``enable_grad``, ``set_grad_enabled`` — per thread.

As in torch, the mode belongs to the thread that sets it: a ``no_grad`` block or a
``backward()`` running in one thread never turns recording off in another. The flag is a
``contextvars.ContextVar``: every thread runs in its own context, so a new thread starts
with the default (recording on), and reading it (``state``, the var's own ``get``) costs
about half a ``threading.local`` attribute read — it is read on every op. (An asyncio task
also keeps the mode it was created with.) Besides on and off there is ``RAW``, the state
of a plain backward pass (see below); ``is_grad_enabled()`` answers torch's question (is
recording on?) and ``mode.grad_enabled`` still answers it through the module ``__getattr__``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect

_enabled = contextvars.ContextVar("neuronix_grad_enabled", default=True)

# The third state, besides recording (True) and not (False): a plain backward pass runs the
# rules on raw torch tensors, and an op whose arguments are all raw returns a raw tensor (no
# wrapper, no node). Falsy, so every "is recording on?" test reads it as off.
RAW = None

state = _enabled.get  # True, False or RAW: the hot path reads this (``registry.apply``)
set_state = _enabled.set  # returns a token for ``reset_state``
reset_state = _enabled.reset


def is_grad_enabled() -> bool:
    """True when ops record a graph in this thread (as ``torch.is_grad_enabled``)."""
    return _enabled.get() is True


def __getattr__(name: str):
    if name == "grad_enabled":
        return _enabled.get() is True
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Switch:
    """Switches recording to ``mode`` for a ``with`` body or a decorated function."""

    mode = True

    def __enter__(self) -> None:
        self.prev = state()  # RAW included: a no_grad block inside a rule restores it
        set_state(self.mode)

    def __exit__(self, *exc) -> None:
        set_state(self.prev)

    def __call__(self, fn):
        mode = self.mode
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = state()  # per call: recursion and nesting keep their own previous mode
            set_state(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                set_state(prev)

        return wrapper


def _wrap_generator(fn, mode: bool):
    """A decorated generator runs its body under ``mode`` at every resumption, as torch's.

    The caller's mode is restored each time the generator yields, so the mode never leaks
    into the code that iterates it.
    """

    def under_mode(step, *args):
        prev = state()
        set_state(mode)
        try:
            return step(*args)
        finally:
            set_state(prev)

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
        self.prev = state()
        self.mode = bool(mode)
        set_state(self.mode)

    def __enter__(self) -> None:
        return None

    def __call__(self, fn):
        set_state(self.prev)  # used as a decorator: undo the switch made by the constructor
        return super().__call__(fn)
