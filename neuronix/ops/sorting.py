"""Sorting, selection, order statistics and scans: sort, topk, kthvalue, median, mode, cummax, logcumsumexp.

The value-selecting ops (sort, topk, kthvalue, median/nanmedian/mode along a dim) are primitives whose
forward is torch's kernel and whose indices come back as ``aux``: the gradient goes, as torch's
``value_selecting_reduction_backward``, into zeros at exactly those indices, so at ties the element torch
chose is the one that learns. The scatter is a neuronix op, so second derivatives are recorded too.

The other families of this part live beside it (imported at the bottom): ``sorting_stats`` (quantiles,
NaN-ignoring reductions, var_mean/std_mean, aminmax), ``sorting_calculus`` (diff, gradient, trapezoid) and
``sorting_search`` (unique, histc, bucketize, searchsorted, isin: no derivative).
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops.helpers import wrap_dim
from neuronix.ops.indexing import scatter, scatter_add
from neuronix.ops.movement import cat
from neuronix.ops.reduce import _distribute
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor

# torch.return_types.<op>: named tuples with torch's type names and field names
SortResult = namedtuple("sort", ("values", "indices"))
TopkResult = namedtuple("topk", ("values", "indices"))
KthvalueResult = namedtuple("kthvalue", ("values", "indices"))
MedianResult = namedtuple("median", ("values", "indices"))
NanmedianResult = namedtuple("nanmedian", ("values", "indices"))
ModeResult = namedtuple("mode", ("values", "indices"))
CummaxResult = namedtuple("cummax", ("values", "indices"))
CumminResult = namedtuple("cummin", ("values", "indices"))


def scatter_selected(g, shape, dim: int, keepdim: bool, indices):
    """torch's ``value_selecting_reduction_backward``: ``g`` written into zeros of ``shape`` at ``indices``
    along ``dim`` (exactly 0 elsewhere, whatever ``g`` holds). Differentiable in ``g`` (a gather)."""
    if len(shape) == 0:
        return g
    if not keepdim:
        g, indices = g.unsqueeze(dim), indices.unsqueeze(dim)
    return scatter(torch.zeros(shape, dtype=g.dtype, device=g.device), dim, indices, g)


def _selected_vjp(g, out, x, dim, keepdim, shape, aux, **_):
    return scatter_selected(g, shape, dim, keepdim, aux)


def _selecting(name: str, kernel):
    """A primitive returning ``(values, indices)`` from torch's ``kernel(x, dim, keepdim, **options)``."""
    return defop(
        name,
        lambda x, dim, keepdim, shape, **options: tuple(kernel(x, dim=dim, keepdim=keepdim, **options)),
        _selected_vjp,
        saves=(),
        aux=True,
    )


def _select(spec, result_type, input, dim: int, keepdim: bool, **options):
    shape = tuple(input.shape)
    values, indices = apply(spec, input, dim=wrap_dim(dim, len(shape)), keepdim=keepdim, shape=shape, **options)
    return result_type(values, Tensor._make(indices, None))


# sort and topk keep the dim (keepdim=True for the shared rule); their kernels take no keepdim
_SORT = _selecting("sort", lambda x, dim, keepdim, descending, stable: torch.sort(
    x, dim=dim, descending=descending, stable=stable))
_TOPK = _selecting("topk", lambda x, dim, keepdim, k, largest, sorted: torch.topk(x, k, dim, largest, sorted))
_KTHVALUE = _selecting("kthvalue", lambda x, dim, keepdim, k: torch.kthvalue(x, k, dim, keepdim))
_MEDIAN_DIM = _selecting("median", lambda x, dim, keepdim: torch.median(x, dim, keepdim))
_NANMEDIAN_DIM = _selecting("nanmedian", lambda x, dim, keepdim: torch.nanmedian(x, dim, keepdim))
_MODE = _selecting("mode", lambda x, dim, keepdim: torch.mode(x, dim, keepdim))


@public
def sort(input, dim: int = -1, descending: bool = False, *, stable: bool | None = False):
    """``torch.sort``: ``(values, indices)`` along ``dim``; the gradient goes back to ``indices`` (torch's
    choice at ties, since the indices are its kernel's)."""
    return _select(_SORT, SortResult, input, dim, True, descending=descending, stable=bool(stable))


@public
def msort(input):
    """``torch.msort``: the values of ``sort`` along dim 0."""
    return sort(input, 0).values


@public
def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """``torch.topk``: the ``k`` largest (``largest=False``: smallest) elements along ``dim`` and their indices."""
    return _select(_TOPK, TopkResult, input, dim, True, k=k, largest=largest, sorted=sorted)


@public
def kthvalue(input, k: int, dim: int = -1, keepdim: bool = False):
    """``torch.kthvalue``: the ``k``-th smallest element along ``dim`` and its index."""
    return _select(_KTHVALUE, KthvalueResult, input, dim, keepdim, k=k)


@public
def mode(input, dim: int = -1, keepdim: bool = False):
    """``torch.mode``: the most frequent value along ``dim`` (the smallest of equally frequent ones) and an index."""
    return _select(_MODE, ModeResult, input, dim, keepdim)


# the full median: torch's evenly_distribute_backward (the elements equal to it share the gradient; the
# NaNs when it is NaN), the rule of the full max()/min()
_MEDIAN_ALL = defop("median_all", torch.median, _distribute, saves_out=True)
_NANMEDIAN_ALL = defop("nanmedian_all", torch.nanmedian, _distribute, saves_out=True)


def _median(full, along, result_type, name, input, dim, keepdim):
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim=True needs an int dim (torch.{name}(input) reduces every element)")
        return apply(full, input)
    return _select(along, result_type, input, dim, keepdim)


@public
def median(input, dim: int | None = None, keepdim: bool = False):
    """``torch.median``: the lower of the two middle values (NaN if any); with ``dim``, ``(values, indices)``."""
    return _median(_MEDIAN_ALL, _MEDIAN_DIM, MedianResult, "median", input, dim, keepdim)


@public
def nanmedian(input, dim: int | None = None, keepdim: bool = False):
    """``torch.nanmedian``: ``median`` of the non-NaN values."""
    return _median(_NANMEDIAN_ALL, _NANMEDIAN_DIM, NanmedianResult, "nanmedian", input, dim, keepdim)


# ----- cummax / cummin: the gradient accumulates at the running arg (torch's cummaxmin_backward) -----
def _cumulative_arg_vjp(g, out, x, dim, aux):
    if x.numel() == 0:
        return x  # torch returns the (empty) input itself: in the graph under create_graph, as torch's
    if g.ndim == 0:
        return g
    return scatter_add(torch.zeros(aux.shape, dtype=g.dtype, device=g.device), dim, aux, g)


_CUMMAX = defop("cummax", lambda x, dim: tuple(torch.cummax(x, dim)), _cumulative_arg_vjp, aux=True)
_CUMMIN = defop("cummin", lambda x, dim: tuple(torch.cummin(x, dim)), _cumulative_arg_vjp, aux=True)


def _running(spec, result_type, input, dim: int):
    values, indices = apply(spec, input, dim=wrap_dim(dim, input.ndim))
    return result_type(values, Tensor._make(indices, None))


@public
def cummax(input, dim: int):
    """``torch.cummax``: running maximum along ``dim`` and where it was reached; the gradient goes there."""
    return _running(_CUMMAX, CummaxResult, input, dim)


@public
def cummin(input, dim: int):
    """``torch.cummin``: running minimum along ``dim`` and where it was reached."""
    return _running(_CUMMIN, CumminResult, input, dim)


# ----- logcumsumexp ---------------------------------------------------------------------------------------
def _reverse_logcumsumexp(x, dim: int):
    return torch.logcumsumexp(x.flip(dim), dim).flip(dim)


def _logcumsumexp_kernel(g, out, x, dim):
    """torch's backward: the positive and negative parts of ``g`` carried in log space (a reversed
    logcumsumexp of ``log|g| - out``), so an input at -inf, or far below the running total, gets an exact
    finite gradient instead of ``inf * 0``. Its values are the gradient's (plain backward and recorded)."""
    if g.ndim == 0 or g.numel() == 0:
        return g
    lowest = torch.finfo(g.dtype).min
    log_abs = g.abs().log()
    positive = torch.where(g > 0, log_abs, lowest)
    negative = torch.where(g < 0, log_abs, lowest)
    up = (_reverse_logcumsumexp(positive - out, dim) + x).exp()
    down = (_reverse_logcumsumexp(negative - out, dim) + x).exp()
    return up - down


PAIR_BUDGET = 2**24  # elements of the (i, j) pair terms the recorded logcumsumexp rule builds at a time


def _logcumsumexp_rule(g, out, x, dim):
    """The recorded gradient ``sum_{j >= i} g_j exp(x_i - out_j)``, linear in ``g`` (the kernel's ``log|g|``
    has no derivative at ``g = 0``, where forward mode differentiates it). Each ``exp`` is at most 1
    (``out_j >= x_i``); the pairs ``j < i`` are -inf before the ``exp``, so they add exact zeros at every
    order. Only under create_graph or forward mode (the values are the kernel's): the pairs along ``dim``
    are built for a block of ``i`` at a time, at most ``PAIR_BUDGET`` elements."""
    if g.ndim == 0 or g.numel() == 0:
        return g
    n = x.shape[dim]
    trailing = (1,) * (x.ndim - dim - 1)
    block = max(1, PAIR_BUDGET // x.numel())
    j = torch.arange(n, device=x.device)
    parts = []
    for start in range(0, n, block):
        rows = min(block, n - start)
        later = (j >= torch.arange(start, start + rows, device=x.device)[:, None]).reshape((rows, n) + trailing)
        gap = ew.where(later, x.narrow(dim, start, rows).unsqueeze(dim + 1) - out.unsqueeze(dim), -torch.inf)
        parts.append((g.unsqueeze(dim) * gap.exp()).sum(dim + 1))
    return parts[0] if len(parts) == 1 else cat(parts, dim)


_LOGCUMSUMEXP = defop(
    "logcumsumexp",
    lambda x, dim: torch.logcumsumexp(x, dim),
    _logcumsumexp_rule,
    saves_out=True,
    fused=lambda g, out, x, needs, dim: (_logcumsumexp_kernel(g, out, x, dim),),
)


@public
def logcumsumexp(input, dim: int):
    """``torch.logcumsumexp``: ``log(cumsum(exp(input)))`` along ``dim``, computed stably."""
    return apply(_LOGCUMSUMEXP, input, dim=wrap_dim(dim, input.ndim))


from neuronix.ops import sorting_calculus, sorting_search, sorting_stats  # noqa: E402,F401  (registration side effects)
