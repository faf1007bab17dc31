"""Reductions. ``sum_to_shape`` lives here: the engine's one broadcast-undo rule."""

from __future__ import annotations

import torch

from neuronix.ops.registry import apply, defop, public


def _dims(dim, ndim: int) -> tuple[int, ...]:
    """Normalise ``dim`` (None, int or sequence) to a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    rank = max(ndim, 1)
    out = []
    for d in dim:
        if not -rank <= d < rank:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {d})")
        out.append(d % rank)
    return tuple(sorted(set(out)))


def _unreduce(g, shape, dims, keepdim):
    """Broadcast a reduced gradient back to ``shape`` (re-inserting the reduced dims)."""
    if not keepdim and len(shape) > 0:
        g = g.reshape([1 if i in dims else s for i, s in enumerate(shape)])
    return g.expand(shape)


_SUM = defop(
    "sum",
    lambda x, dims, keepdim, shape, dtype: torch.sum(x, dims, keepdim=keepdim, dtype=dtype),
    lambda g, out, x, dims, keepdim, shape, dtype: _unreduce(g, shape, dims, keepdim),
    saves=(),
    torch_ref=torch.sum,
)


@public
def sum(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Sum over ``dim`` (None, int or tuple), as ``torch.sum``."""
    shape = input.shape
    dims = _dims(dim, len(shape))
    if len(shape) == 0:
        dims = ()
    return apply(_SUM, input, dims=dims, keepdim=keepdim, shape=shape, dtype=dtype)


def sum_to_shape(g, shape):
    """Sum ``g`` over the dims that broadcasting expanded so it has ``shape`` (differentiable)."""
    lead = g.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"sum_to_shape: gradient of shape {tuple(g.shape)} has fewer dims than its input {tuple(shape)}")
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if dims:
        g = sum(g, dims, keepdim=True)
    return g.reshape(shape) if lead else g
