"""Order and NaN-aware statistics: quantile, nanquantile, nansum, nanmean, var_mean, std_mean, aminmax.

``quantile`` is torch's own composition (sort, gather, lerp) written in neuronix ops, so its gradient is
torch's: to the sorted elements each quantile interpolates between, weighted ``1 - w`` and ``w`` (all of it
to one element for ``lower``/``higher``/``nearest``), and to a tensor ``q`` through the weight.
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops.indexing import gather
from neuronix.ops.movement import transpose, unsqueeze
from neuronix.ops.reduce import _count, _reduce, _spread, _std_vjp, _unreduce, _var_vjp, amax, amin
from neuronix.ops.registry import defop, op_error, public
from neuronix.ops.sorting import sort
from neuronix.ops.sorting_calculus import torch_errors
from neuronix.tensor import Tensor

AminmaxResult = namedtuple("aminmax", ("min", "max"))
INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


# ----- quantile / nanquantile -----------------------------------------------------------------------------
def _raw(t):
    return t.data if isinstance(t, Tensor) else t


def _valid_quantile_call(input, q, dim, interpolation) -> bool:
    """Whether torch's quantile accepts these arguments (when not, torch is asked, for its own error)."""
    x = _raw(input)
    if interpolation not in INTERPOLATIONS or x.numel() == 0 or x.dtype not in (torch.float32, torch.float64):
        return False
    if dim is not None and not -max(x.dim(), 1) <= dim < max(x.dim(), 1):
        return False
    if isinstance(q, (Tensor, torch.Tensor)):
        qr = _raw(q)
        return qr.dim() <= 1 and qr.dtype == x.dtype and qr.device == x.device and bool(((qr >= 0) & (qr <= 1)).all())
    return isinstance(q, (int, float)) and not isinstance(q, bool) and 0 <= q <= 1


def _quantile(name, torch_fn, input, q, dim, keepdim, interpolation, ignore_nan):
    if not _valid_quantile_call(input, q, dim, interpolation):
        args = (input, q)
        try:
            torch_fn(_raw(input), _raw(q), dim, keepdim, interpolation=interpolation)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise op_error(name, args, {"dim": dim, "keepdim": keepdim, "interpolation": interpolation}, err) from err
    x = input
    ndim = x.ndim
    # sorted as torch sorts it (same view, same kernel: the same order at ties, so the same gradient)
    if dim is None:
        ordered = sort(x.reshape(-1)).values
        kept = [1] * ndim if keepdim else []
    else:
        d = dim % max(ndim, 1) if ndim else 0
        if ndim == 0 or d == ndim - 1:
            ordered = sort(x).values if ndim else x.reshape(1)
        else:
            ordered = sort(transpose(unsqueeze(x, -1), d, -1)).values
        kept = list(x.shape)
        if ndim:
            if keepdim:
                kept[d] = 1
            else:
                del kept[d]
    ordered = ordered.reshape(kept + [ordered.shape[-1]])
    q_tensor = isinstance(q, (Tensor, torch.Tensor))
    q_vec = q.reshape(-1) if q_tensor else torch.tensor([float(q)], dtype=x.dtype, device=x.device)
    raw_sorted = ordered.data
    if ignore_nan:
        valid = (~raw_sorted.isnan()).sum(-1, keepdim=True)
        ranks = q_vec * (valid - 1).to(x.dtype)
        ranks = ew.where(_raw(ranks) < 0, 0.0, ranks)
    else:
        last = raw_sorted.shape[-1] - 1
        has_nan = raw_sorted.isnan().any(-1, keepdim=True)
        ranks = ew.where(has_nan, float(last), q_vec * float(last))
    raw_ranks = _raw(ranks)
    if interpolation == "lower":
        raw_ranks = raw_ranks.floor()
    elif interpolation == "higher":
        raw_ranks = raw_ranks.ceil()
    elif interpolation == "nearest":
        raw_ranks = raw_ranks.round()
    below = raw_ranks.long()
    values = gather(ordered, -1, below)
    if interpolation in ("linear", "midpoint"):
        weights = torch.full_like(raw_ranks, 0.5) if interpolation == "midpoint" else ranks - below.to(x.dtype)
        values = ew.lerp(values, gather(ordered, -1, raw_ranks.ceil().long()), weights)
    if q_tensor and _raw(q).dim() == 1:
        return values.unsqueeze(0).transpose(0, -1).squeeze(-1)
    return values.squeeze(-1)


@public
def quantile(input, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear"):
    """``torch.quantile``: the ``q``-quantiles (a number or a 0-d/1-d tensor in [0, 1]) over ``dim`` (all
    elements when None); NaN where a slice holds a NaN. ``interpolation``: linear, lower, higher, midpoint,
    nearest (round half to even, as torch)."""
    return _quantile("quantile", torch.quantile, input, q, dim, keepdim, interpolation, ignore_nan=False)


@public
def nanquantile(input, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear"):
    """``torch.nanquantile``: ``quantile`` of the non-NaN values (NaN for an all-NaN slice)."""
    return _quantile("nanquantile", torch.nanquantile, input, q, dim, keepdim, interpolation, ignore_nan=True)


# ----- nansum / nanmean -------------------------------------------------------------------------------------
def _nansum_vjp(g, out, x, dims, keepdim, shape, dtype):
    # torch's nansum_backward: a product with the not-NaN mask (an infinite upstream gradient gives NaN
    # at the NaN inputs, as torch's)
    return _unreduce(g, shape, dims, keepdim) * (~x.data.isnan())


_NANSUM = defop(
    "nansum",
    lambda x, dims, keepdim, shape, dtype: torch.nansum(x, dims, keepdim=keepdim, dtype=dtype),
    _nansum_vjp,
)


@public
def nansum(input, dim=None, keepdim: bool = False, *, dtype=None):
    """``torch.nansum``: the sum treating NaN as 0; the NaN inputs get a zero gradient."""
    return _reduce(_NANSUM, input, dim, keepdim, dtype=dtype)


@public
def nanmean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """``torch.nanmean``: ``nansum`` divided by the number of non-NaN elements (torch's composition)."""
    raw = _raw(input)
    with torch_errors("nanmean", torch.nanmean, (input,), {"dim": dim, "keepdim": keepdim, "dtype": dtype},
                      valid=raw.is_floating_point() or raw.is_complex()):
        return nansum(input, dim, keepdim, dtype=dtype) / (~raw.isnan()).sum(dim, keepdim=keepdim)


# ----- var_mean / std_mean ----------------------------------------------------------------------------------
# Their values are torch's fused kernels' (torch.var_mean / torch.std_mean), which can differ from torch.var and
# torch.mean in the last bits (an expanded, stride-0 input: std_mean's spread is exactly 0 where std's is 1e-7,
# and the gradient at a zero std is 0): each output is its own primitive over the fused kernel, with the rule
# of var / std / mean.
def _fused(kernel, k: int):
    return lambda x, dims, keepdim, shape, tdim, correction: kernel(x, tdim, correction=correction, keepdim=keepdim)[k]


def _mean_vjp(g, out, x, dims, keepdim, shape, tdim, correction):
    return _unreduce(g, shape, dims, keepdim) / _count(shape, dims)


_VAR_OF_VAR_MEAN = defop("var_mean.var", _fused(torch.var_mean, 0), _var_vjp)
_MEAN_OF_VAR_MEAN = defop("var_mean.mean", _fused(torch.var_mean, 1), _mean_vjp, saves=())
_STD_OF_STD_MEAN = defop("std_mean.std", _fused(torch.std_mean, 0), _std_vjp, saves_out=True)
_MEAN_OF_STD_MEAN = defop("std_mean.mean", _fused(torch.std_mean, 1), _mean_vjp, saves=())


@public(method=False)
def var_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """``torch.var_mean``: ``(var, mean)`` over ``dim`` in one call (a plain tuple, as torch)."""
    return (_spread(_VAR_OF_VAR_MEAN, input, dim, unbiased, keepdim, correction),
            _spread(_MEAN_OF_VAR_MEAN, input, dim, unbiased, keepdim, correction))


@public(method=False)
def std_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """``torch.std_mean``: ``(std, mean)`` over ``dim`` in one call (a plain tuple, as torch)."""
    return (_spread(_STD_OF_STD_MEAN, input, dim, unbiased, keepdim, correction),
            _spread(_MEAN_OF_STD_MEAN, input, dim, unbiased, keepdim, correction))


# ----- aminmax ----------------------------------------------------------------------------------------------
@public
def aminmax(input, *, dim: int | None = None, keepdim: bool = False):
    """``torch.aminmax``: ``(min, max)`` over ``dim`` (all elements when None); tied extrema share the
    gradient evenly, as ``amin``/``amax``."""
    with torch_errors("aminmax", torch.aminmax, (input,), {"dim": dim, "keepdim": keepdim}):
        dims = () if dim is None else dim
        return AminmaxResult(amin(input, dims, keepdim), amax(input, dims, keepdim))

