"""Tensor factories with torch's signatures plus ``requires_grad``.

A factory that fails raises torch's error with the call that failed and, for a device this
machine cannot use (``device="cuda"`` on a CPU-only build), what torch's terse message means
and which devices would be valid. ``device_error`` is also how ``registry.apply`` explains a
failed ``.to(device)``/``.cuda()``.
"""

from __future__ import annotations

import reprlib

import torch

from neuronix.ops.registry import public
from neuronix.tensor import Tensor, _check_can_require_grad


def _unwrap(x):
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _devices() -> str:
    """The device types usable here, for error messages."""
    found = ["'cpu'"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found.append("'cuda'" + (f" ('cuda:0'..'cuda:{count - 1}')" if count > 1 else " ('cuda:0')"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("'mps'")
    found.append("'meta' (shapes only, no data)")
    return ", ".join(found)


def _device_hint(message: str) -> str:
    lower = message.lower()
    if "not compiled with cuda" in lower:
        return (f" (this PyTorch build has no CUDA support, so no tensor can be placed on a 'cuda' device; valid devices"
                f" here: {_devices()}; write device='cuda' if torch.cuda.is_available() else 'cpu' to run on both)")
    if "no cuda gpus" in lower or "nvidia driver" in lower or "invalid device ordinal" in lower:
        return (f" (CUDA is built in but the requested GPU is not usable on this machine; valid devices here: "
                f"{_devices()})")
    if "could not run" in lower and "backend" in lower:
        return f" (this PyTorch build cannot run that device's kernels; valid devices here: {_devices()})"
    return ""


def unavailable_device(err: Exception) -> bool:
    """Whether ``err`` is torch saying a requested device cannot be used here."""
    return bool(_device_hint(str(err).split("\n", 1)[0]))


def device_error(where: str, err: Exception) -> Exception:
    """``err`` (same type, as torch raised it) prefixed with the failing call, plus what its devices mean."""
    reason = str(err)
    if reason.startswith("Could not run") and " backend." in reason:
        # the rest of torch's message is its dispatch table and build advice: keep the sentence that says why
        reason = reason.split(" backend.", 1)[0] + " backend."
    message = f"{where}: {reason}{_device_hint(reason)}"
    try:
        return type(err)(message)
    except TypeError:  # an exception type whose constructor takes other arguments
        return RuntimeError(message)


_FACTORY_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, AssertionError, NotImplementedError)
_short = reprlib.Repr()
_short.maxlist = _short.maxtuple = 6
_short.maxother = _short.maxstring = 40


def _call(name: str, args, kwargs) -> str:
    parts = [_short.repr(a) for a in args] + [f"{k}={_short.repr(v)}" for k, v in kwargs.items()]
    return f"neuronix.{name}({', '.join(parts)})"


def _factory(name: str):
    torch_fn = getattr(torch, name)

    def fn(*args, requires_grad: bool = False, **kwargs):
        try:
            data = torch_fn(*(_unwrap(a) for a in args), **kwargs)
        except _FACTORY_ERRORS as err:
            raise device_error(_call(name, args, kwargs), err) from err
        if requires_grad:
            _check_can_require_grad(data, f"nx.{name}")
        return Tensor(data, requires_grad=requires_grad)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.{name}`` returning an ``nx.Tensor`` (``requires_grad`` as torch)."
    return public(fn, method=False)


tensor = _factory("tensor")
as_tensor = _factory("as_tensor")
zeros = _factory("zeros")
ones = _factory("ones")
full = _factory("full")
empty = _factory("empty")
arange = _factory("arange")
linspace = _factory("linspace")
logspace = _factory("logspace")
eye = _factory("eye")
rand = _factory("rand")
randn = _factory("randn")
randint = _factory("randint")
randperm = _factory("randperm")
zeros_like = _factory("zeros_like")
ones_like = _factory("ones_like")
full_like = _factory("full_like")
empty_like = _factory("empty_like")
rand_like = _factory("rand_like")
randn_like = _factory("randn_like")
randint_like = _factory("randint_like")
from_numpy = _factory("from_numpy")
