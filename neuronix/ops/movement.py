"""Shape and movement ops: views, joins, splits and indexing."""

from __future__ import annotations

import torch

from neuronix.ops.registry import apply, defop, public


def _size_args(size) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike, as torch does."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(size[0])
    return tuple(size)


_RESHAPE = defop(
    "reshape",
    lambda x, shape, src: x.reshape(shape),
    lambda g, out, x, shape, src: g.reshape(src),
    saves=(),
    torch_ref=torch.reshape,
)
_VIEW = defop(
    "view",
    lambda x, shape, src: x.view(shape),
    lambda g, out, x, shape, src: g.reshape(src),
    saves=(),
    torch_ref=torch.Tensor.view,
)


@public
def reshape(input, *shape):
    """``torch.reshape``: a view when possible, a copy otherwise."""
    return apply(_RESHAPE, input, shape=_size_args(shape), src=input.shape)


@public(function=False)
def view(self, *shape):
    """``Tensor.view``: a view of the same data with another shape (no copy)."""
    if len(shape) == 1 and isinstance(shape[0], torch.dtype):
        raise NotImplementedError("view(dtype) reinterprets bits and is not differentiable; use .data.view(dtype)")
    return apply(_VIEW, self, shape=_size_args(shape), src=self.shape)


_EXPAND = defop(
    "expand",
    lambda x, sizes: x.expand(sizes),
    lambda g, out, x, sizes: g,  # the engine's sum_to_shape undoes the broadcast
    saves=(),
    torch_ref=torch.Tensor.expand,
)


@public(function=False)
def expand(self, *sizes):
    """``Tensor.expand``: broadcast to ``sizes`` (-1 keeps a dim) without copying."""
    return apply(_EXPAND, self, sizes=_size_args(sizes))


@public
def broadcast_to(input, size):
    """``torch.broadcast_to``."""
    return apply(_EXPAND, input, sizes=tuple(size))
