"""Finite differences and integrals along a dim: diff, gradient, trapezoid (trapz), cumulative_trapezoid.

Each is torch's own composition (slices, differences, sums, cat) in neuronix ops, term for term, so values
round as torch's do and every derivative is torch's, of every order. Argument errors are torch's: the
arguments are first tried on ``meta`` copies (shapes only, no data), whose errors name what is valid.
"""

from __future__ import annotations

import torch

from neuronix.ops.compare import logical_xor
from neuronix.ops.helpers import wrap_dim
from neuronix.ops.movement import cat, clone
from neuronix.ops.reduce import cumsum, sum
from neuronix.ops.registry import op_error, public
from neuronix.tensor import Tensor


def _meta(value):
    if isinstance(value, (Tensor, torch.Tensor)):
        raw = value.data if isinstance(value, Tensor) else value
        return raw.to("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value


def check_on_meta(name: str, torch_fn, args: tuple, kwargs: dict) -> None:
    """Raise torch's own error for ``torch_fn(*args, **kwargs)`` (tried on shapes only), naming the op."""
    try:
        torch_fn(*_meta(args), **{k: _meta(v) for k, v in kwargs.items()})
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error(name, args, kwargs, err) from err
    except NotImplementedError:  # no meta kernel: the composition below meets torch's checks itself
        pass


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
    check_on_meta("diff", torch.diff, (input, n, dim, prepend, append), {})
    d = wrap_dim(dim, input.ndim)
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
    check_on_meta("gradient", torch.gradient, (input,), {"spacing": spacing, "dim": dim, "edge_order": edge_order})
    dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    if isinstance(spacing, (list, tuple)):
        steps = list(spacing)
    else:
        steps = [spacing] * len(dims)
    result = []
    for d, step in zip(dims, steps):
        d = wrap_dim(d, input.ndim)
        if isinstance(step, (Tensor, torch.Tensor)):
            result.append(_coordinates(input, d, step if isinstance(step, Tensor) else Tensor(step), edge_order))
        else:
            result.append(_uniform_spacing(input, d, step, edge_order))
    return tuple(result)


# ----- trapezoid / cumulative_trapezoid ---------------------------------------------------------------------
def _spacing(name: str, y, x, dx, d: int):
    """The step between samples: ``dx`` (a number, default 1) or the differences of ``x`` shaped as torch
    shapes them (a 1-d ``x`` along ``dim``; a shorter one padded with leading dims)."""
    if x is None:
        return 1.0 if dx is None else dx
    if isinstance(x, torch.Tensor):  # a torch tensor passed as the sample points: a constant
        x = Tensor(x)
    if dx is not None:
        raise TypeError(f"{name}(): pass the sample points x or the spacing dx, not both")
    if x.ndim == 1:
        shape = [1] * y.ndim
        shape[d] = x.shape[0]
        x = x.reshape(shape)
    elif x.ndim < y.ndim:
        x = x.reshape([1] * (y.ndim - x.ndim) + list(x.shape))
    return _slice(x, d, 1) - _slice(x, d, 0, -1)


@public(method=False)
def trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """``torch.trapezoid``: the trapezoid rule along ``dim``, with sample points ``x`` or spacing ``dx``."""
    kwargs = {"dim": dim} if dx is None else {"dx": dx, "dim": dim}
    check_on_meta("trapezoid", torch.trapezoid, (y,) if x is None else (y, x), kwargs)
    d = wrap_dim(dim, y.ndim)
    if y.shape[d] == 0:  # torch: a fresh zero (numpy's value), outside the graph
        shape = list(y.shape)
        del shape[d]
        return Tensor(torch.zeros(shape, dtype=y.dtype, device=y.device))
    h = _spacing("trapezoid", y, x, dx, d)
    if not isinstance(h, Tensor):
        return (sum(y, d) - (_at(y, d, 0) + _at(y, d, -1)) * 0.5) * h
    return sum((_slice(y, d, 0, -1) + _slice(y, d, 1)) * h, d) / 2.0


trapz = public(trapezoid, name="trapz", method=False)


@public(method=False)
def cumulative_trapezoid(y, x=None, *, dx=None, dim: int = -1):
    """``torch.cumulative_trapezoid``: the running trapezoid rule along ``dim`` (one element fewer)."""
    kwargs = {"dim": dim} if dx is None else {"dx": dx, "dim": dim}
    check_on_meta("cumulative_trapezoid", torch.cumulative_trapezoid, (y,) if x is None else (y, x), kwargs)
    d = wrap_dim(dim, y.ndim)
    h = _spacing("cumulative_trapezoid", y, x, dx, d)
    pairs = _slice(y, d, 0, -1) + _slice(y, d, 1)
    if not isinstance(h, Tensor):
        return cumsum(h / 2.0 * pairs, d)
    return cumsum(pairs * h, d) / 2.0
