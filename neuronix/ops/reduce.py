"""Reductions and scans. ``sum_to_shape`` lives here: the engine's one broadcast-undo rule.

Every reduction takes torch's ``dim`` (None, int or tuple) and ``keepdim``. Forwards get the
user's ``dim`` as torch expects it; VJPs get ``dims`` (sorted non-negative) and the input
``shape`` so they can re-insert the reduced dims (``_unreduce`` / ``_keep``).
"""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

import torch

from neuronix.autograd import mode
from neuronix.ops import elementwise as ew
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor

# torch.return_types.max & co.: named tuples with ``.values`` and ``.indices``
MaxResult = namedtuple("max", ("values", "indices"))
MinResult = namedtuple("min", ("values", "indices"))


def _dims(dim, ndim: int) -> tuple[int, ...]:
    """Normalise ``dim`` (None, int or sequence) to a sorted tuple of non-negative dims.

    ``None`` and an empty sequence mean every dim (torch's rule for sum/mean/amax); a 0-d
    tensor accepts dim 0 / -1 and reduces nothing. Dims out of range or repeated come back as
    given: the op's torch kernel then rejects them inside ``apply``, whose error names the op
    and its input (an error raised here could not).
    """
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    rank = builtins.max(ndim, 1)
    out = []
    for d in dim:
        if not -rank <= d < rank:
            return tuple(dim)
        out.append(d % rank)
    if len(set(out)) != len(out):
        return tuple(dim)
    return () if ndim == 0 else tuple(sorted(out))


def _keep(g, shape, dims, keepdim):
    """``g`` with the reduced dims re-inserted as size 1 (a no-op when ``keepdim``)."""
    if keepdim or len(shape) == 0:
        return g
    return g.reshape([1 if i in dims else s for i, s in enumerate(shape)])


def _unreduce(g, shape, dims, keepdim):
    """Broadcast a reduced gradient back to ``shape`` (re-inserting the reduced dims)."""
    return _keep(g, shape, dims, keepdim).expand(shape)


def _count(shape, dims) -> int:
    return math.prod(shape[d] for d in dims)


def _nondiff_dtype(dtype) -> bool:
    """An integer/bool result ``dtype`` is outside the graph, as in torch."""
    return dtype is not None and not (dtype.is_floating_point or dtype.is_complex)


def _reduce(spec, input, dim, keepdim, **attrs):
    shape = tuple(input.shape)
    dims = _dims(dim, len(shape))
    if _nondiff_dtype(attrs.get("dtype")):
        with mode.no_grad():
            return apply(spec, input, dims=dims, keepdim=keepdim, shape=shape, **attrs)
    return apply(spec, input, dims=dims, keepdim=keepdim, shape=shape, **attrs)


# ----- sum, mean ----------------------------------------------------------------------
_SUM = defop(
    "sum",
    lambda x, dims, keepdim, shape, dtype: torch.sum(x, dims, keepdim=keepdim, dtype=dtype),
    lambda g, out, x, dims, keepdim, shape, dtype: _unreduce(g, shape, dims, keepdim),
    saves=(),
)


@public
def sum(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Sum over ``dim`` (None, int or tuple), as ``torch.sum``; ``dtype`` casts before summing."""
    return _reduce(_SUM, input, dim, keepdim, dtype=dtype)


def sum_to_shape(g, shape):
    """Sum ``g`` over the dims that broadcasting expanded so it has ``shape`` (differentiable)."""
    lead = g.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"sum_to_shape: gradient of shape {tuple(g.shape)} has fewer dims than its input {tuple(shape)}")
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if dims:
        g = sum(g, dims, keepdim=True)
    return g.reshape(shape) if lead else g


_MEAN = defop(
    "mean",
    lambda x, dims, keepdim, shape, dtype: torch.mean(x, dims, keepdim=keepdim, dtype=dtype),
    lambda g, out, x, dims, keepdim, shape, dtype: _unreduce(g, shape, dims, keepdim) / _count(shape, dims),
    saves=(),
)


@public
def mean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Mean over ``dim`` (None, int or tuple), as ``torch.mean`` (floating inputs or ``dtype``)."""
    return _reduce(_MEAN, input, dim, keepdim, dtype=dtype)


# ----- prod ---------------------------------------------------------------------------
def _prod_others(x, dim: int, plain: bool):
    """``out[i] = prod_{j != i} x[j]`` along ``dim``, without dividing (exact with zeros and infinities).

    ``plain`` (the fused kernel of a plain backward): the product of the elements before ``i``
    times the product of those after it, two cumulative products. Otherwise (the rule, recorded
    under create_graph) the product of ``x`` broadcast to an extra axis with ones on the diagonal,
    so its own derivative is again ``prod``'s, zeros included.
    """
    raw = x.data
    n = raw.shape[dim]
    if plain:
        ones = torch.ones_like(raw.narrow(dim, 0, 1))
        before = torch.cat([ones, raw.narrow(dim, 0, n - 1)], dim).cumprod(dim)
        after = torch.cat([ones, raw.narrow(dim, 1, n - 1).flip(dim)], dim).cumprod(dim).flip(dim)
        return before * after
    shape = tuple(raw.shape)
    rows = x.reshape(shape[:dim] + (1, n) + shape[dim + 1 :])
    diagonal = torch.eye(n, dtype=torch.bool, device=raw.device).reshape((n, n) + (1,) * (len(shape) - dim - 1))
    return prod(ew.where(diagonal, 1.0, rows), dim + 1)


def _prod_vjp(g, out, x, dim, keepdim, dtype, plain=False):
    shape = tuple(x.shape)
    if len(shape) == 0:
        return g
    if dim is None:
        g_full = g.expand(shape)
        zeros = int((x.data == 0).sum())
        if zeros == 0:
            return g_full * (out / x)
        if zeros > 1 and plain:
            # every product of the others holds a zero: exactly 0, as torch's plain backward gives
            # (whatever g holds); recorded, the products below keep the second derivative
            return ew.zero_gradient(g_full)
        return g_full * _prod_others(x.reshape(-1), 0, plain).reshape(shape)
    g_k = _keep(g, shape, (dim,), keepdim)
    if not bool((x.data == 0).any()):
        return g_k * (_keep(out, shape, (dim,), keepdim) / x)
    return g_k * _prod_others(x, dim, plain)


_PROD = defop(
    "prod",
    lambda x, dim, keepdim, dtype: torch.prod(x, dtype=dtype) if dim is None else torch.prod(x, dim, keepdim, dtype=dtype),
    _prod_vjp,
    saves_out=True,
    # torch's own backward of prod differs by mode where x holds zeros (a plain pass skips the
    # terms holding another zero): the plain form is the fused kernel, the rule the recorded one
    fused=lambda g, out, x, needs, **attrs: (_prod_vjp(g, out, x, plain=True, **attrs),),
    fused_values_recorded=False,
)


@public
def prod(input, dim: int | None = None, keepdim: bool = False, *, dtype=None):
    """Product of all elements, or over the single ``dim``, as ``torch.prod``.

    The gradient is the product of the other elements (exact with zeros, as torch).
    """
    if dim is not None:
        if not isinstance(dim, int):
            raise TypeError(f"prod: dim must be an int or None (torch.prod reduces one dim at a time), got {dim!r}")
        dim = _dims(dim, input.ndim)
        dim = dim[0] if dim else 0
    if _nondiff_dtype(dtype):
        with mode.no_grad():
            return apply(_PROD, input, dim=dim, keepdim=keepdim, dtype=dtype)
    return apply(_PROD, input, dim=dim, keepdim=keepdim, dtype=dtype)


# ----- max / min / amax / amin --------------------------------------------------------
def _even_split(g, out, x, dims, keepdim, shape):
    """Gradient of amax/amin over ``dims`` shared evenly by the tied elements (torch's rule).

    Written as torch's amax/amin backward is, ``(g / count) * mask``: an infinite upstream gradient
    gives the other elements NaN there, and a NaN maximum (no element equals it) gives NaN
    everywhere, as torch. The full ``max()``/``min()`` and the ``dim`` forms select instead.
    """
    mask = x.data == _keep(out.data, shape, dims, keepdim)
    count = mask.sum(dims, keepdim=True) if len(shape) else mask
    return (_unreduce(g, shape, dims, keepdim) / count) * mask


_AMAX = defop(
    "amax",
    lambda x, dims, keepdim, shape: torch.amax(x, dims, keepdim),
    _even_split,
    saves_out=True,
)
_AMIN = defop(
    "amin",
    lambda x, dims, keepdim, shape: torch.amin(x, dims, keepdim),
    _even_split,
    saves_out=True,
)


@public
def amax(input, dim=(), keepdim: bool = False):
    """Maximum over ``dim`` (default: all); tied maxima share the gradient evenly."""
    return _reduce(_AMAX, input, dim, keepdim)


@public
def amin(input, dim=(), keepdim: bool = False):
    """Minimum over ``dim`` (default: all); tied minima share the gradient evenly."""
    return _reduce(_AMIN, input, dim, keepdim)


def _distribute(g, out, x):
    """Gradient of the full ``max()``/``min()``: shared evenly by the elements equal to the result,
    or by the NaN elements when the result is NaN; exactly 0 elsewhere, whatever ``g`` holds (torch's
    rule on CPU: a scatter into zeros, not a product with the mask)."""
    xd, od = x.data, out.data
    hit = torch.where(od.isnan(), xd.isnan(), xd == od)
    return ew.masked((g / hit.sum()).expand(xd.shape), hit)


_MAX_ALL = defop("max", torch.max, _distribute, saves_out=True)
_MIN_ALL = defop("min", torch.min, _distribute, saves_out=True)


def _select_vjp(g, out, x, dim, keepdim, shape, aux):
    """Gradient of max/min along ``dim``: all of it to the element ``aux`` (the indices) names,
    exactly 0 elsewhere (torch scatters into zeros)."""
    if len(shape) == 0:
        return g
    index = aux if keepdim else aux.unsqueeze(dim)
    hit = torch.zeros(shape, dtype=torch.bool, device=index.device).scatter_(dim, index, True)
    return ew.masked(_unreduce(g, shape, (dim,), keepdim), hit)


_MAX_DIM = defop(
    "max_dim",
    lambda x, dim, keepdim, shape: tuple(torch.max(x, dim, keepdim)),
    _select_vjp,
    saves=(),
    aux=True,
)
_MIN_DIM = defop(
    "min_dim",
    lambda x, dim, keepdim, shape: tuple(torch.min(x, dim, keepdim)),
    _select_vjp,
    saves=(),
    aux=True,
)


def _extremum(name, full, along, binary, result_type, input, dim, keepdim, other):
    if other is not None or isinstance(dim, (Tensor, torch.Tensor)):
        return binary(input, dim if other is None else other)
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}(): keepdim=True needs an int dim")
        return apply(full, input)
    if not isinstance(dim, int):
        raise TypeError(f"{name}(): dim must be an int (or a tensor for the elementwise form), got {dim!r}")
    shape = tuple(input.shape)
    dims = _dims(dim, len(shape))
    values, indices = apply(along, input, dim=dims[0] if dims else 0, keepdim=keepdim, shape=shape)
    return result_type(values, Tensor._make(indices, None))


@public
def max(input, dim=None, keepdim: bool = False, *, other=None):
    """``torch.max``: the maximum of all elements; with an int ``dim`` a named tuple
    ``(values, indices)``; with a tensor as second argument, ``maximum``.

    The full reduction shares the gradient among tied maxima (among the NaNs when there is one);
    the ``dim`` form sends it to the element at ``indices``, both as torch.
    """
    return _extremum("max", _MAX_ALL, _MAX_DIM, ew.maximum, MaxResult, input, dim, keepdim, other)


@public
def min(input, dim=None, keepdim: bool = False, *, other=None):
    """``torch.min``: the minimum of all elements; with an int ``dim`` a named tuple
    ``(values, indices)``; with a tensor as second argument, ``minimum``."""
    return _extremum("min", _MIN_ALL, _MIN_DIM, ew.minimum, MinResult, input, dim, keepdim, other)


# ----- var / std ----------------------------------------------------------------------
def _correction(unbiased, correction) -> float:
    if unbiased is not None and correction is not None:
        raise RuntimeError("var/std: pass either unbiased or correction, not both")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _var_vjp(g, out, x, dims, keepdim, shape, tdim, correction):
    dof = _count(shape, dims) - correction
    scale = 2.0 / dof if dof != 0 else math.inf
    centered = x - mean(x, dims, keepdim=True) if len(shape) else x - x
    return (_keep(g, shape, dims, keepdim) * scale) * centered


def _std_vjp(g, out, x, dims, keepdim, shape, tdim, correction):
    # d std = d var / (2 std); torch zeroes it where std == 0
    g_var = ew.where(out.data == 0, 0.0, g / (out * 2))
    return _var_vjp(g_var, None, x, dims, keepdim, shape, tdim, correction)


_VAR = defop(
    "var",
    lambda x, dims, keepdim, shape, tdim, correction: torch.var(x, tdim, correction=correction, keepdim=keepdim),
    _var_vjp,
)
_STD = defop(
    "std",
    lambda x, dims, keepdim, shape, tdim, correction: torch.std(x, tdim, correction=correction, keepdim=keepdim),
    _std_vjp,
    saves_out=True,
)


def _spread(spec, input, dim, unbiased, keepdim, correction):
    if isinstance(dim, bool):  # var(x, unbiased) overload
        dim, unbiased = None, dim
    c = _correction(unbiased, correction)
    tdim = None if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    return _reduce(spec, input, dim, keepdim, tdim=tdim, correction=c)


@public
def var(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """Variance over ``dim`` with ``correction`` (default 1; ``unbiased=False`` means 0), as ``torch.var``."""
    return _spread(_VAR, input, dim, unbiased, keepdim, correction)


@public
def std(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """Standard deviation over ``dim`` with ``correction``, as ``torch.std``."""
    return _spread(_STD, input, dim, unbiased, keepdim, correction)


# ----- logsumexp ----------------------------------------------------------------------
_LOGSUMEXP = defop(
    "logsumexp",
    lambda x, dims, keepdim, shape, tdim: torch.logsumexp(x, tdim, keepdim),
    lambda g, out, x, dims, keepdim, shape, tdim: _keep(g, shape, dims, keepdim) * (x - _keep(out, shape, dims, keepdim)).exp(),
    saves_out=True,
)


@public
def logsumexp(input, dim, keepdim: bool = False):
    """``log(sum(exp(input), dim))`` computed stably, as ``torch.logsumexp``."""
    tdim = (dim,) if isinstance(dim, int) else tuple(dim)
    return _reduce(_LOGSUMEXP, input, dim, keepdim, tdim=tdim)


# ----- norm ---------------------------------------------------------------------------
def _norm_vjp(g, out, x, dims, keepdim, shape, tdim, ord, dtype):
    g_k = _keep(g, shape, dims, keepdim)
    n_k = _keep(out, shape, dims, keepdim)
    if ord == 0:
        return ew.zero_gradient(_unreduce(g, shape, dims, keepdim))  # a count of nonzeros: piecewise constant
    if ord == 1:
        return g_k * x.sign()
    zero = n_k.data == 0
    if math.isinf(ord):
        # the elements equal to the norm share the gradient (a NaN norm: the NaN elements, whose sign is 0)
        mask = (x.data.abs() == n_k.data) | (x.data.isnan() & n_k.data.isnan())
        count = mask.sum(dims, keepdim=True) if len(shape) else mask
        return x.sign() * ((g_k / count) * mask)
    if ord == 2:
        # g * (x / n), 0 where n == 0: grouped as torch's, which decides the NaN patterns at n == 0
        return g_k * ew.where(zero, 0.0, x / n_k)
    if ord < 1:
        # |x|^(p-1) is infinite at x == 0 (sign 0 times inf): the limit of the whole term is 0 there, as
        # in torch. ``g * n^(1-p)`` keeps an all-zero slice (n == 0) at 0 without dividing by it.
        scaled = x.sign() * ew.where(x.data == 0, 0.0, x.abs().pow(ord - 1))
        return scaled * (g_k * n_k.pow(1 - ord))
    scaled = x.sign() * x.abs().pow(ord - 1)
    return scaled * ew.where(zero, 0.0, g_k / n_k.pow(ord - 1))


_NORM = defop(
    "norm",
    lambda x, dims, keepdim, shape, tdim, ord, dtype: torch.linalg.vector_norm(x, ord, tdim, keepdim, dtype=dtype),
    _norm_vjp,
    saves_out=True,
)


@public
def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None):
    """``torch.norm``: the vector p-norm over ``dim`` (all dims when None).

    ``p`` is a number (2, 1, inf, -inf, 0 or any other) or ``'fro'`` (the 2-norm over at
    most two dims). The nuclear norm and matrix norms over more than two dims are not supported.
    """
    if isinstance(p, str):
        n_dims = 0 if dim is None or isinstance(dim, int) else len(dim)
        if p != "fro" or n_dims > 2:
            raise NotImplementedError(
                f"norm: p={p!r} with dim={dim!r} is a matrix norm; only vector norms (p a number, or 'fro' "
                "over at most two dims) are supported"
            )
        p = 2
    ord = float(p) if p is not None else 2.0
    tdim = None if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    return _reduce(_NORM, input, dim, keepdim, tdim=tdim, ord=ord, dtype=dtype)


# ----- cumulative sum -----------------------------------------------------------------
def _reverse_cumsum(g, dim):
    return g if g.ndim == 0 else apply(_REVERSE_CUMSUM, g, dim=dim)


_REVERSE_CUMSUM = defop(
    "reverse_cumsum",
    lambda x, dim: x.flip(dim).cumsum(dim).flip(dim),
    lambda g, out, x, dim: cumsum(g, dim),
    saves=(),
)


def _scan(spec, input, dim: int, dtype):
    """Apply a cumulative op along ``dim``; an integer ``dtype`` result stays out of the graph, as torch."""
    dims = _dims(dim, input.ndim)
    d = dims[0] if dims else 0
    if _nondiff_dtype(dtype):
        with mode.no_grad():
            return apply(spec, input, dim=d, dtype=dtype)
    return apply(spec, input, dim=d, dtype=dtype)


_CUMSUM = defop(
    "cumsum",
    lambda x, dim, dtype: torch.cumsum(x, dim, dtype=dtype),
    lambda g, out, x, dim, dtype: _reverse_cumsum(g, dim),
    saves=(),
)


@public
def cumsum(input, dim: int, *, dtype=None):
    """Cumulative sum along ``dim``, as ``torch.cumsum``."""
    return _scan(_CUMSUM, input, dim, dtype)


# ----- cumulative product -------------------------------------------------------------
def _cumprod_vjp(g, out, x, dim, dtype, plain=False):
    if x.ndim == 0:
        return g
    if not bool((x.data == 0).any()):
        return _reverse_cumsum(g * out, dim) / x
    # With zeros, out / x is undefined: d out_i / d x_k = prod_{j <= i, j != k} x_j, the cumprod
    # of x with x_k replaced by 1, along an extra axis k. Recording it keeps higher orders exact.
    shape = tuple(x.shape)
    n = shape[dim]
    trailing = (1,) * (len(shape) - dim - 1)
    rows = x.reshape(shape[:dim] + (1, n) + shape[dim + 1 :])
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    partial = cumprod(ew.where(eye.reshape((n, n) + trailing), 1.0, rows), dim + 1)
    keep = torch.ones(n, n, dtype=torch.bool, device=x.device).triu().reshape((n, n) + trailing)  # i >= k
    if plain:
        # torch's plain backward leaves out the terms whose product holds another zero rather than
        # multiplying by it (an infinite upstream gradient stays infinite there, not NaN); its
        # recorded form multiplies, and so does the rule
        keep = keep & (partial.data != 0)
    return sum(ew.masked(g.unsqueeze(dim) * partial, keep), dim + 1)


_CUMPROD = defop(
    "cumprod",
    lambda x, dim, dtype: torch.cumprod(x, dim, dtype=dtype),
    _cumprod_vjp,
    saves_out=True,
    fused=lambda g, out, x, needs, **attrs: (_cumprod_vjp(g, out, x, plain=True, **attrs),),  # as prod's
    fused_values_recorded=False,
)


@public
def cumprod(input, dim: int, *, dtype=None):
    """Cumulative product along ``dim``, as ``torch.cumprod`` (exact gradient with zeros)."""
    return _scan(_CUMPROD, input, dim, dtype)
