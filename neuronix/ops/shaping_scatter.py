"""Writes into a tensor, with torch's gradients: ``*_scatter``, index_put, index_copy, index_fill, put,
masked_scatter, block_diag, scatter_reduce and index_reduce.

Each is a primitive whose rules are the reads that undo the write (the written region of the
gradient goes to the source, the rest to the input), written in neuronix ops so that every
derivative order is recorded. The reductions follow torch's ``scatter_reduce_backward`` and
``index_reduce_backward`` term by term (FunctionsManual.cpp), their choices at ties and zeros
included: amax/amin split the gradient evenly between every element equal to the result (an
input excluded by ``include_self=False`` still counts, as in torch), prod divides the result by
each factor except where it is zero (the product of the others is recomputed there).
"""

from __future__ import annotations

import torch

from neuronix.ops import indexing, movement
from neuronix.ops.helpers import PerInput, wrap_dim
from neuronix.ops.registry import apply, defop, op_error, public
from neuronix.tensor import Tensor, unwrap


def _zero_like(g):
    """A raw 0-d zero of ``g``'s dtype and device (the value a rule writes over a region)."""
    g = _raw(g)
    return torch.zeros((), dtype=g.dtype, device=g.device)


def _raw(x):
    """The raw values of a rule argument (a raw tensor on a plain backward, an nx.Tensor under create_graph)."""
    return x.data if isinstance(x, Tensor) else x


# ----- writing a view's region: diagonal_scatter, select_scatter, slice_scatter --------------------
def _view_scatter(name: str, forward, read):
    """``forward(x, src, **view)`` writes ``src`` over a view of ``x``; ``read(g, **view)`` is that view of ``g``."""

    def input_grad(g, out, x, src, **view):  # the overwritten region gets 0
        return apply(spec, g, _zero_like(g).expand(view["src_shape"]), **view)

    spec = defop(name, forward, input_grad, lambda g, out, x, src, **view: read(g, **view), saves=())
    return spec


_DIAGONAL_SCATTER = _view_scatter(
    "diagonal_scatter",
    lambda x, src, offset, dim1, dim2, src_shape: torch.diagonal_scatter(x, src, offset, dim1, dim2),
    lambda g, offset, dim1, dim2, src_shape: indexing.diagonal(g, offset, dim1, dim2),
)
_SELECT_SCATTER = _view_scatter(
    "select_scatter",
    lambda x, src, dim, index, src_shape: torch.select_scatter(x, src, dim, index),
    lambda g, dim, index, src_shape: indexing.select(g, dim, index),
)
_SLICE_SCATTER = _view_scatter(
    "slice_scatter",
    lambda x, src, dim, start, end, step, src_shape: torch.slice_scatter(x, src, dim, start, end, step),
    lambda g, dim, start, end, step, src_shape: indexing.getitem(g, (slice(None),) * dim + (slice(start, end, step),)),
)


@public
def diagonal_scatter(input, src, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """``torch.diagonal_scatter``: ``input`` with its ``offset`` diagonal of dims ``dim1``/``dim2`` replaced by ``src``."""
    return apply(_DIAGONAL_SCATTER, input, src, offset=offset, dim1=dim1, dim2=dim2, src_shape=unwrap(src).shape)


@public
def select_scatter(input, src, dim: int, index: int):
    """``torch.select_scatter``: ``input`` with the slice ``index`` of dim ``dim`` replaced by ``src``."""
    return apply(_SELECT_SCATTER, input, src, dim=dim, index=int(unwrap(index)), src_shape=unwrap(src).shape)


@public
def slice_scatter(input, src, dim: int = 0, start=None, end=None, step: int = 1):
    """``torch.slice_scatter``: ``input`` with ``input[start:end:step]`` along ``dim`` replaced by ``src``."""
    d = wrap_dim(dim, unwrap(input).dim())
    return apply(_SLICE_SCATTER, input, src, dim=d, start=start, end=end, step=step, src_shape=unwrap(src).shape)


# ----- index_put / put ----------------------------------------------------------------------------
def _put_input_grad(g, out, x, values, indices, accumulate):
    if accumulate:
        return g
    return apply(_INDEX_PUT, g, _zero_like(g), indices=indices, accumulate=False)  # the overwritten places get 0


_INDEX_PUT = defop(
    "index_put_tensors",  # ("index_put" is __setitem__'s twin, ops/inplace.py)
    lambda x, values, indices, accumulate: torch.index_put(x, indices, values, accumulate),
    _put_input_grad,
    lambda g, out, x, values, indices, accumulate: indexing.getitem(g, indices),  # the engine sums broadcast values
    saves=(),
)


@public
def index_put(input, indices, values, accumulate: bool = False):
    """``torch.index_put``: ``input`` with ``values`` written (or, with ``accumulate``, added) at ``input[indices]``."""
    index = tuple(None if i is None else unwrap(i) for i in indices)
    return apply(_INDEX_PUT, input, values, indices=index, accumulate=accumulate)


@public
def put(input, index, source, accumulate: bool = False):
    """``torch.put``: ``source`` written (or added) at the flat positions ``index`` of ``input`` (negative wrap)."""
    flat = apply(_INDEX_PUT, movement.reshape(input, (-1,)), movement.reshape(source, (-1,)),
                 indices=(unwrap(index).reshape(-1),), accumulate=accumulate)
    return movement.reshape(flat, unwrap(input).shape)


# ----- index_copy / index_fill --------------------------------------------------------------------
_INDEX_FILL = defop(
    "index_fill",
    lambda x, value, dim, index: torch.index_fill(x, dim, index, value),
    lambda g, out, x, value, dim, index: apply(_INDEX_FILL, g, 0, dim=dim, index=index),
    # as torch: each filled position once, however often the index repeats it
    lambda g, out, x, value, dim, index: indexing.index_select(g, dim, torch.unique(index)).sum(),
    saves=(),
)
_INDEX_COPY = defop(
    "index_copy",
    lambda x, source, dim, index: torch.index_copy(x, dim, index, source),
    lambda g, out, x, source, dim, index: apply(_INDEX_FILL, g, 0, dim=dim, index=index),
    lambda g, out, x, source, dim, index: indexing.index_select(g, dim, index),
    saves=(),
)


@public
def index_fill(input, dim: int, index, value):
    """``torch.index_fill``: the entries ``index`` of dim ``dim`` set to ``value`` (a number or a 0-d tensor)."""
    if isinstance(unwrap(value), torch.Tensor) and unwrap(value).dim() != 0:
        raise RuntimeError(f"neuronix.index_fill: only supports a 0-dimensional value tensor, but got tensor with "
                           f"{unwrap(value).dim()} dimension(s)")
    return apply(_INDEX_FILL, input, value, dim=wrap_dim(dim, unwrap(input).dim()), index=unwrap(index))


@public
def index_copy(input, dim: int, index, source):
    """``torch.index_copy``: the entries ``index`` of dim ``dim`` replaced by the slices of ``source``."""
    return apply(_INDEX_COPY, input, source, dim=wrap_dim(dim, unwrap(input).dim()), index=unwrap(index))


# ----- masked_scatter -----------------------------------------------------------------------------
def _masked_scatter_source_grad(g, out, x, source, mask, source_shape):
    """torch's masked_scatter_backward: the masked gradient in order, zero-padded to source's size."""
    picked = indexing.masked_select(g, mask)
    spare = _prod(source_shape) - _raw(picked).numel()
    if spare > 0:
        picked = movement.cat([picked, _raw(g).new_zeros(spare)], 0)
    return movement.reshape(picked, source_shape)


_MASKED_SCATTER = defop(
    "masked_scatter",
    lambda x, source, mask, source_shape: torch.masked_scatter(x, mask, source),
    lambda g, out, x, source, mask, source_shape: indexing.masked_fill(g, mask, 0.0),
    _masked_scatter_source_grad,
    saves=(),
)


def _prod(sizes) -> int:
    n = 1
    for s in sizes:
        n *= s
    return n


@public
def masked_scatter(input, mask, source):
    """``torch.masked_scatter``: ``source``'s elements, in order, written where the (broadcast) ``mask`` is True."""
    m = unwrap(mask)
    if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
        raise RuntimeError(f"neuronix.masked_scatter: expected a bool mask, got {getattr(m, 'dtype', type(m).__name__)}")
    return apply(_MASKED_SCATTER, input, source, mask=m, source_shape=tuple(unwrap(source).shape))


# ----- block_diag -----------------------------------------------------------------------------------
def _block_grad(i, g, out, *inputs, corners, shapes):
    (r, c), (h, w) = corners[i], _as_matrix(shapes[i])
    return movement.reshape(indexing.getitem(g, (slice(r, r + h), slice(c, c + w))), shapes[i])


def _as_matrix(shape) -> tuple[int, int]:
    """How block_diag lays a 0-d, 1-d or 2-d input out: ``(1, 1)``, ``(1, n)`` or as it is."""
    return (1, 1) if len(shape) == 0 else (1, shape[0]) if len(shape) == 1 else tuple(shape)


_BLOCK_DIAG = defop("block_diag", lambda *xs, corners, shapes: torch.block_diag(*xs), saves=())
_BLOCK_DIAG.vjps = PerInput(_block_grad)


@public(method=False)
def block_diag(*tensors):
    """``torch.block_diag``: the 0-, 1- or 2-d inputs as the blocks of a block-diagonal matrix."""
    shapes = tuple(tuple(unwrap(t).shape) for t in tensors)
    corners, r, c = [], 0, 0
    for s in shapes:
        corners.append((r, c))
        if len(s) <= 2:
            h, w = _as_matrix(s)
            r, c = r + h, c + w
    return apply(_BLOCK_DIAG, *tensors, corners=tuple(corners), shapes=shapes)


# ----- scatter_reduce / index_reduce -----------------------------------------------------------------
class _Along:
    """The gather/scatter family a reduction runs along: scatter_reduce's index has src's shape and uses
    gather/scatter_add/scatter; index_reduce's is 1-d and uses index_select/index_add/index_fill."""

    def __init__(self, per_element: bool, dim: int, index, reduce: str, include_self: bool) -> None:
        self.per_element, self.dim, self.index = per_element, dim, index
        self.reduce, self.include_self = reduce, include_self

    def pick(self, t):
        return indexing.gather(t, self.dim, self.index) if self.per_element else indexing.index_select(t, self.dim, self.index)

    def add_into(self, base, t):
        if self.per_element:
            return indexing.scatter_add(base, self.dim, self.index, t)
        return indexing.index_add(base, self.dim, self.index, t)

    def zero_at(self, t):
        if self.per_element:
            return apply(indexing._SCATTER_VALUE, t, dim=self.dim, index=self.index, value=0)
        return apply(_INDEX_FILL, t, 0, dim=self.dim, index=self.index)

    def refusal(self) -> str:
        """torch's message where prod's source gradient cannot be differentiated again."""
        op, name = ("scatter_reduce", "src") if self.per_element else ("index_reduce", "source")
        return (f"{op}(): Double backward is unsupported for {name} when >1 zeros in {name} are scattered to the same "
                f"position in self")

    def again(self, x, src):
        """The same reduction with other operands (prod's rules recompute it with zeros masked)."""
        spec = _SCATTER_REDUCE if self.per_element else _INDEX_REDUCE
        return apply(spec, x, src, dim=self.dim, index=self.index, reduce=self.reduce, include_self=self.include_self)


def _reduce_grads(g, out, x, src, along: _Along):
    """(input gradient, source gradient) as torch's scatter_reduce_backward / index_reduce_backward."""
    xr, sr = _raw(x), _raw(src)
    if along.reduce == "sum":
        grad_self, grad_src = g, along.pick(g)
    elif along.reduce == "mean":
        count = (torch.ones_like if along.include_self else torch.zeros_like)(_raw(g))
        count = along.add_into(count, torch.ones_like(sr))
        count = _raw(count)
        count = count.masked_fill(count == 0, 1)
        grad_self = g / count
        grad_src = along.pick(g) / along.pick(count)
    elif along.reduce in ("amax", "amin"):
        value = along.pick(_raw(out))
        self_is_result = (xr == _raw(out)).to(xr.dtype)
        src_is_result = (sr == value).to(xr.dtype)
        share = g / _raw(along.add_into(self_is_result, src_is_result))
        grad_self = self_is_result * share
        grad_src = src_is_result * along.pick(share)
    elif along.reduce == "prod":
        masked_self = indexing.masked_fill(x, xr == 0, 1.0)
        grad_self = g * along.again(masked_self, src) / masked_self
        src_zero = sr == 0
        zeros_there = _raw(along.pick(along.add_into(torch.zeros_like(xr), src_zero.to(xr.dtype))))
        single_zero = src_zero & (zeros_there == 1)
        others = along.again(x, indexing.masked_fill(src, single_zero, 1.0))
        grad_src = _where(single_zero, along.pick(g * others),
                          along.pick(g * out) / indexing.masked_fill(src, src_zero, 1.0))
        if bool((zeros_there > 1).any()):  # as torch: this gradient has no derivative (its DelayedError)
            grad_src = _delayed_error(grad_src, along.refusal())
    else:  # torch's forward also takes "max"/"min" (amax/amin), its backward does not
        raise RuntimeError(f"neuronix: Expected 'reduce' to be one of 'sum', 'prod', 'mean', 'amax', 'amin' but got "
                           f"{along.reduce} (the gradient of scatter_reduce/index_reduce, as torch's)")
    if not along.include_self:
        grad_self = along.zero_at(grad_self)
    return grad_self, grad_src


def _refuse(g, out, x, message):
    raise RuntimeError(message)


# torch's DelayedError node: the value passes, differentiating through it raises (its edge stays, so torch
# reaches it, and raises, from any input below it)
_DELAYED_ERROR = defop("delayed_error", lambda x, message: x.clone(), _refuse, saves=())


def _delayed_error(value, message: str):
    return apply(_DELAYED_ERROR, value, message=message)


def _where(condition, a, b):
    from neuronix.ops.elementwise import where

    return where(condition, a, b)


def _reduction(name: str, forward, per_element: bool):
    def along(dim, index, reduce, include_self):
        return _Along(per_element, dim, index, reduce, include_self)

    return defop(
        name,
        forward,
        lambda g, out, x, src, **a: _reduce_grads(g, out, x, src, along(**a))[0],
        lambda g, out, x, src, **a: _reduce_grads(g, out, x, src, along(**a))[1],
        saves_out=True,
    )


_SCATTER_REDUCE = _reduction(
    "scatter_reduce",
    lambda x, src, dim, index, reduce, include_self: torch.scatter_reduce(x, dim, index, src, reduce,
                                                                          include_self=include_self),
    per_element=True,
)
_INDEX_REDUCE = _reduction(
    "index_reduce",
    lambda x, src, dim, index, reduce, include_self: torch.index_reduce(x, dim, index, src, reduce,
                                                                        include_self=include_self),
    per_element=False,
)


@public
def scatter_reduce(input, dim: int, index, src, reduce: str, *, include_self: bool = True):
    """``torch.scatter_reduce``: ``src`` reduced (sum, prod, mean, amax, amin) into ``input`` at ``index`` along ``dim``."""
    idx = unwrap(index)
    if (isinstance(unwrap(src), torch.Tensor) and tuple(unwrap(src).shape) != tuple(idx.shape)
            and any(isinstance(t, Tensor) and t.requires_grad for t in (input, src))):
        try:  # torch's own shape errors first
            torch.scatter_reduce(unwrap(input), dim, idx, unwrap(src), reduce, include_self=include_self)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise op_error("scatter_reduce", (input, src), {"dim": dim}, err) from err
        raise RuntimeError(f"neuronix.scatter_reduce: the gradient needs index and src of one shape (as torch's "
                           f"backward), got index {tuple(idx.shape)} and src {tuple(unwrap(src).shape)}")
    d = wrap_dim(dim, unwrap(input).dim())
    return apply(_SCATTER_REDUCE, input, src, dim=d, index=idx, reduce=reduce, include_self=include_self)


@public
def index_reduce(input, dim: int, index, source, reduce: str, *, include_self: bool = True):
    """``torch.index_reduce``: the slices of ``source`` reduced (prod, mean, amax, amin) into the entries ``index``."""
    d = wrap_dim(dim, unwrap(input).dim())
    return apply(_INDEX_REDUCE, input, source, dim=d, index=unwrap(index), reduce=reduce, include_self=include_self)
