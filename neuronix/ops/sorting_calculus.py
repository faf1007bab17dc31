"""Finite differences and integrals along a dim: diff, gradient, trapezoid (trapz), cumulative_trapezoid.

Each is torch's own composition (slices, differences, sums, cat) in neuronix ops, term for term, so values
round as torch's do and every derivative is torch's, of every order. Argument errors are torch's
(``torch_errors``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from neuronix.ops.compare import logical_xor
from neuronix.ops.helpers import wrap_dim
from neuronix.ops.movement import cat, clone
from neuronix.ops.reduce import cumsum, sum
from neuronix.ops.registry import op_error, public
from neuronix.tensor import Tensor


def _raw(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_raw(v) for v in value)
    return value


@contextmanager
def torch_errors(name: str, torch_fn, args: tuple, kwargs: dict, valid: bool = True):
    """Torch's own errors for a composed op, naming it: where the arguments are known to be invalid (``valid``
    false), or where the composition fails, torch's function is called on the raw values and its error is
    raised (an op of the composition would name itself, with another reason). Valid calls never run it."""
    def raise_torchs() -> None:
        try:
            torch_fn(*_raw(args), **_raw(kwargs))
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise op_error(name, args, kwargs, err) from err

    if not valid:
        raise_torchs()
    try:
        yield
    except (RuntimeError, ValueError, TypeError, IndexError):
        raise_torchs()
        raise


def _slice(t, dim: int, start=None, stop=None):
    """``t`` sliced ``start:stop`` along ``dim`` (torch's ``at::slice``, through neuronix indexing)."""
    return t[(slice(None),) * dim + (slice(start, stop),)]


def _at(t, dim: int, i: int):
    return t[(slice(None),) * dim + (i,)]


# ----- diff -------------------------------------------------------------------------------------------------
@public
def diff(input, n: int = 1, dim: int = -1, prepend=None, append=None):
    """``torch.diff``: the ``n``-th forward difference along ``dim`` (``prepend``/``append`` joined first;
    ``logical_xor`` for bool tensors)."""
    d = wrap_dim(dim, input.ndim)
    compatible = all(t is None or (t.ndim == input.ndim and all(a == b for i, (a, b) in enumerate(zip(t.shape, input.shape))
                                                                 if i != d)) for t in (prepend, append))
    with torch_errors("diff", torch.diff, (input, n, dim, prepend, append), {},
                      valid=n >= 0 and input.ndim >= 1 and compatible):
        x = input
        if n == 0:
            return clone(x)  # torch: a fresh copy (zeros_like + copy_), identity gradient
        if prepend is not None or append is not None:
            x = cat([t for t in (prepend, x, append) if t is not None], d)
        size = x.shape[d]
        out_len = size - 1
        for _ in range(min(n, size)):
            right, left = x.narrow(d, 1, out_len), x.narrow(d, 0, out_len)
            x = logical_xor(right, left) if x.dtype == torch.bool else right - left
            out_len -= 1
        return x


# ----- gradient ---------------------------------------------------------------------------------------------
def _uniform_spacing(x, d: int, h, edge_order: int):
    """torch's gradient_helper_float: central differences inside, one-sided ones at the two ends."""
    center = (_slice(x, d, 2) - _slice(x, d, 0, -2)) / h
    if edge_order == 1:
        first = (_slice(x, d, 1, 2) - _slice(x, d, 0, 1)) / h
        last = (_slice(x, d, -1) - _slice(x, d, -2, -1)) / h
    else:
        first = (-1.5 * _slice(x, d, 0, 1) + 2 * _slice(x, d, 1, 2) - 0.5 * _slice(x, d, 2, 3)) / h
        last = (0.5 * _slice(x, d, -3, -2) - 2 * _slice(x, d, -2, -1) + 1.5 * _slice(x, d, -1)) / h
    return cat([first, center / 2, last], d)


def _coordinates(x, d: int, coords, edge_order: int):
    """torch's gradient_helper: second-order differences on the sample points ``coords`` (1-d)."""
    shape = [1] * x.ndim
    shape[d] = -1
    h = coords.diff(1, 0)
    h1, h2 = _slice(h, 0, 0, -1), _slice(h, 0, 1)
    a = (-h2 / (h1 * (h1 + h2))).reshape(shape)
    b = ((h2 - h1) / (h1 * h2)).reshape(shape)
    c = (h1 / (h2 * (h1 + h2))).reshape(shape)
    center = a * _slice(x, d, 0, -2) + b * _slice(x, d, 1, -1) + c * _slice(x, d, 2)
    if edge_order == 1:
        first = (_slice(x, d, 1, 2) - _slice(x, d, 0, 1)) / h[0]
        last = (_slice(x, d, -1) - _slice(x, d, -2, -1)) / h[-1]
    else:
        a = -(2.0 * h[0] + h[1]) / (h[0] * (h[0] + h[1]))
        b = (h[0] + h[1]) / (h[0] * h[1])
        c = (-h[0]) / (h[1] * (h[0] + h[1]))
        first = a * _slice(x, d, 0, 1) + b * _slice(x, d, 1, 2) + c * _slice(x, d, 2, 3)
        a = (h[-1]) / (h[-2] * (h[-1] + h[-2]))
        b = -(h[-1] + h[-2]) / (h[-1] * h[-2])
        c = (2 * h[-1] + h[-2]) / (h[-1] * (h[-1] + h[-2]))
        last = a * _slice(x, d, -3, -2) + b * _slice(x, d, -2, -1) + c * _slice(x, d, -1)
    return cat([first, center, last], d)


@public(method=False)
def gradient(input, *, spacing=1, dim=None, edge_order: int = 1):
    """``torch.gradient``: the derivative estimate along each of ``dim`` (all dims when None), a tuple.

    ``spacing``: a number (the same step everywhere), a list of numbers (one step per dim) or a list of
    1-d tensors (the sample coordinates along each dim)."""
    dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    steps = list(spacing) if isinstance(spacing, (list, tuple)) else [spacing] * len(dims)
    sizes_ok = all(-input.ndim <= d < input.ndim and input.shape[d] >= edge_order + 1 for d in dims)
    valid = edge_order in (1, 2) and len(steps) == len(dims) and sizes_ok and input.dtype != torch.uint8
    kwargs = {"spacing": spacing, "dim": dim, "edge_order": edge_order}
    with torch_errors("gradient", torch.gradient, (input,), kwargs, valid=valid):
        result = []
        for d, step in zip(dims, steps):
            d = wrap_dim(d, input.ndim)
            if isinstance(step, (Tensor, torch.Tensor)):
                coords = step if isinstance(step, Tensor) else Tensor(step)
                result.append(_coordinates(input, d, coords, edge_order))
            else:
                result.append(_uniform_spacing(input, d, step, edge_order))
        return tuple(result)


# ----- trapezoid / cumulative_trapezoid ---------------------------------------------------------------------
def _valid_samples(y, x, dx, dim: int) -> bool:
    """What torch checks that the composition would not: no bool samples, x and dx not both, a 1-d x's length
    (a length-2 x would broadcast its one step silently)."""
    if y.dtype == torch.bool or (x is not None and (x.dtype == torch.bool or dx is not None)):
        return False
    return x is None or x.ndim != 1 or (-y.ndim <= dim < y.ndim and x.shape[0] == y.shape[dim])


def _spacing(y, x, dx, d: int):
    """The step between samples: ``dx`` (a number, default 1) or the differences of ``x`` shaped as torch
    shapes them (a 1-d ``x`` along ``dim``; a shorter one padded with leading dims)."""
    if x is None:
        return 1.0 if dx is None else dx
    if isinstance(x, torch.Tensor):  # a torch tensor passed as the sample points: a constant
        x = Tensor(x)
    if x.ndim == 1:
        shape = [1] * y.ndim
        shape[d] = x.shape[0]
        x = x.reshape(shape)
    elif x.ndim < y.ndim:
        x = x.reshape([1] * (y.ndim - x.ndim) + list(x.shape))
    return _slice(x, d, 1) - _slice(x, d, 0, -1)


def _trapezoid(name: str, torch_fn, y, x, dx, dim: int):
    kwargs = {"dim": dim} if dx is None else {"dx": dx, "dim": dim}
    with torch_errors(name, torch_fn, (y,) if x is None else (y, x), kwargs, valid=_valid_samples(y, x, dx, dim)):
        d = wrap_dim(dim, y.ndim)
        if y.shape[d] == 0:  # torch: a fresh zero (numpy's value), outside the graph
            shape = list(y.shape)
            del shape[d]
            return Tensor(torch.zeros(shape, dtype=y.dtype, device=y.device))
        h = _spacing(y, x, dx, d)
        if not isinstance(h, Tensor):
            return (sum(y, d) - (_at(y, d, 0) + _at(y, d, -1)) * 0.5) * h
        return sum((_slice(y, d, 0, -1) + _slice(y, d, 1)) * h, d) / 2.0


@public(method=False)
def trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """``torch.trapezoid``: the trapezoid rule along ``dim``, with sample points ``x`` or spacing ``dx``."""
    return _trapezoid("trapezoid", torch.trapezoid, y, x, dx, dim)


@public(method=False)
def trapz(y, x=None, *, dx=None, dim: int = -1):
    """``torch.trapz``: the older name of ``trapezoid``."""
    return _trapezoid("trapz", torch.trapz, y, x, dx, dim)


@public(method=False)
def cumulative_trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """``torch.cumulative_trapezoid``: the running trapezoid rule along ``dim`` (one element fewer)."""
    kwargs = {"dim": dim} if dx is None else {"dx": dx, "dim": dim}
    with torch_errors("cumulative_trapezoid", torch.cumulative_trapezoid, (y,) if x is None else (y, x), kwargs,
                      valid=_valid_samples(y, x, dx, dim)):
        d = wrap_dim(dim, y.ndim)
        h = _spacing(y, x, dx, d)
        pairs = _slice(y, d, 0, -1) + _slice(y, d, 1)
        if not isinstance(h, Tensor):
            return cumsum(h / 2.0 * pairs, d)
        return cumsum(pairs * h, d) / 2.0
