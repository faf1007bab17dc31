"""Process-wide defaults, as torch's: the default device and inference mode.

``nx.set_default_device`` is torch's own: neuronix's factories (``nx.zeros``, ``nx.randn``, ...) and
every module's parameters are made by torch's factory functions, which honour torch's default device
(and ``nx.set_default_dtype``, which is ``torch.set_default_dtype``), so one setting serves both.

``nx.inference_mode`` is, for neuronix, ``no_grad`` plus a flag that ``nx.is_inference_mode_enabled``
reads: ops record no graph inside it. Unlike torch's it does not make *inference tensors* (torch's
tensors without version counters, which torch refuses to save for backward or update in place
later): Neuronix's in-place checks read every tensor's version counter, and a tensor made for
evaluation may be used in training afterwards. ``inference_mode(False)`` turns recording *on*, as
torch's does (even inside ``no_grad``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect

import torch

from neuronix.autograd import mode as grad_mode

__all__ = ["get_default_device", "inference_mode", "is_inference_mode_enabled", "set_default_device"]

set_default_device = torch.set_default_device
get_default_device = torch.get_default_device

# per thread (and asyncio task), as the grad mode it travels with
_inference = contextvars.ContextVar("neuronix_inference_mode", default=False)


def is_inference_mode_enabled() -> bool:
    """True inside ``nx.inference_mode()`` (in this thread), as ``torch.is_inference_mode_enabled``."""
    return _inference.get()


class inference_mode:
    """Ops inside record no graph (``mode=True``) — as ``torch.inference_mode``: a context manager or a
    decorator, with or without parentheses (``@nx.inference_mode``, ``@nx.inference_mode(False)``)."""

    def __new__(cls, mode=True):
        if mode is None or isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # @nx.inference_mode on a function

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._saved: list = []

    def __enter__(self) -> None:
        # a stack, so that one instance entered twice (nested, or from a recursive decorated call) restores in order
        self._saved.append((grad_mode.state(), _inference.get()))
        grad_mode.set_state(not self.mode)
        _inference.set(self.mode)

    def __exit__(self, *exc) -> None:
        grad, inference = self._saved.pop()
        grad_mode.set_state(grad)
        _inference.set(inference)

    def clone(self) -> inference_mode:
        return type(self)(self.mode)

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.clone():
                return fn(*args, **kwargs)

        return wrapper

    def _wrap_generator(self, fn):
        """Each resumption of the generator runs under the mode; the caller's mode is restored at every yield."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with self.clone():
                    request = gen.send(None)
                while True:
                    try:
                        value = yield request
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as err:  # thrown in by the caller: delivered under the mode too
                        with self.clone():
                            request = gen.throw(err)
                    else:
                        with self.clone():
                            request = gen.send(value)
            except StopIteration as stop:
                return stop.value

        return wrapper
