"""torch's ``*_copy`` view variants, the ``Tensor.new_*`` factories, ``nelement`` and the index-valued ops.

A ``<view>_copy`` is the view followed by a contiguous copy (torch's functionalization uses them
so no output aliases an input): the view's gradient, then the clone's identity gradient. Each checks its
dims up front (``_dims``), so an out-of-range dim names the ``_copy`` the user called, not the view inside it.
"""

from __future__ import annotations

import torch

from neuronix.factories import _factory
from neuronix.ops import indexing, movement
from neuronix.ops.compare import nondiff
from neuronix.ops.helpers import checked_dims, undifferentiable
from neuronix.ops.registry import op_error, public
from neuronix.tensor import Tensor, unwrap


def _dims(name: str, input, attrs: dict, *dims: int, extra: int = 0) -> tuple[int, ...]:
    """``dims`` of ``input`` (of its result's rank, ``extra`` more) checked as torch's ``<name>``, named for it."""
    return checked_dims(name, (input,), attrs, *dims, ndim=unwrap(input).dim() + extra)


def _copied(result):
    """A contiguous copy of a view (or of each view of a tuple), differentiable."""
    if isinstance(result, tuple):
        return tuple(_copied(r) for r in result)
    return movement.clone(result, memory_format=torch.contiguous_format)


@public(method=False)
def alias_copy(input):
    """``torch.alias_copy``: a copy of ``input``."""
    return _copied(input)


@public(method=False)
def detach_copy(input):
    """``torch.detach_copy``: a copy of the value. As torch's, it requires grad when ``input`` does and a backward
    through it raises (torch defines no derivative for it); ``detach`` is the spelling that leaves the graph."""
    return undifferentiable("detach_copy", unwrap(input).clone(memory_format=torch.contiguous_format), input)


@public(method=False)
def diagonal_copy(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """``torch.diagonal_copy``: ``diagonal`` as a copy."""
    _dims("diagonal_copy", input, {"offset": offset, "dim1": dim1, "dim2": dim2}, dim1, dim2)
    return _copied(indexing.diagonal(input, offset, dim1, dim2))


@public(method=False)
def expand_copy(input, size, *, implicit: bool = False):
    """``torch.expand_copy``: ``expand`` as a copy."""
    return _copied(movement.expand(input, tuple(size)))


@public
def narrow_copy(input, dim: int, start: int, length: int):
    """``torch.narrow_copy``: ``narrow`` as a copy."""
    ndim = unwrap(input).dim()
    if 0 < ndim <= dim:  # torch's narrow_copy checks this one with a RuntimeError (narrow's is an IndexError)
        raise op_error("narrow_copy", (input,), {"dim": dim, "start": start, "length": length}, RuntimeError(
            f"Expected dim < {ndim} (the input's number of dims) to be true, but got dim={dim}"))
    _dims("narrow_copy", input, {"dim": dim, "start": start, "length": length}, dim)
    return _copied(indexing.narrow(input, dim, start, length))


@public(method=False)
def permute_copy(input, dims):
    """``torch.permute_copy``: ``permute`` as a copy."""
    _dims("permute_copy", input, {"dims": tuple(dims)}, *dims)
    return _copied(movement.permute(input, tuple(dims)))


@public(method=False)
def select_copy(input, dim: int, index: int):
    """``torch.select_copy``: ``select`` as a copy."""
    _dims("select_copy", input, {"dim": dim, "index": index}, dim)
    return _copied(indexing.select(input, dim, index))


@public(method=False)
def slice_copy(input, dim: int = 0, start=None, end=None, step: int = 1):
    """``torch.slice_copy``: ``input[start:end:step]`` along ``dim``, as a copy."""
    (d,) = _dims("slice_copy", input, {"dim": dim, "start": start, "end": end, "step": step}, dim)
    return _copied(indexing.getitem(input, (slice(None),) * d + (slice(start, end, step),)))


@public(method=False)
def split_copy(input, split_size, dim: int = 0):
    """``torch.split_copy``: ``split`` into copies."""
    _dims("split_copy", input, {"split_size": split_size, "dim": dim}, dim)
    return _copied(indexing.split(input, split_size, dim))


@public(method=False)
def split_with_sizes_copy(input, split_sizes, dim: int = 0):
    """``torch.split_with_sizes_copy``: ``split_with_sizes`` into copies."""
    from neuronix.ops.shaping import split_with_sizes

    _dims("split_with_sizes_copy", input, {"split_sizes": split_sizes, "dim": dim}, dim)
    return _copied(split_with_sizes(input, split_sizes, dim))


@public(method=False)
def squeeze_copy(input, dim=None):
    """``torch.squeeze_copy``: ``squeeze`` as a copy."""
    if dim is not None:
        _dims("squeeze_copy", input, {"dim": dim}, *((dim,) if isinstance(dim, int) else dim))
    return _copied(movement.squeeze(input, dim))


@public(method=False)
def t_copy(input):
    """``torch.t_copy``: ``t`` as a copy."""
    return _copied(movement.t(input))


@public(method=False)
def transpose_copy(input, dim0: int, dim1: int):
    """``torch.transpose_copy``: ``transpose`` as a copy."""
    _dims("transpose_copy", input, {"dim0": dim0, "dim1": dim1}, dim0, dim1)
    return _copied(movement.transpose(input, dim0, dim1))


@public(method=False)
def unbind_copy(input, dim: int = 0):
    """``torch.unbind_copy``: ``unbind`` into copies."""
    if unwrap(input).dim():  # a 0-d input: unbind's own error (no dims to unbind)
        _dims("unbind_copy", input, {"dim": dim}, dim)
    return _copied(indexing.unbind(input, dim))


@public(method=False)
def unfold_copy(input, dimension: int, size: int, step: int):
    """``torch.unfold_copy``: ``Tensor.unfold`` as a copy."""
    from neuronix.ops.shaping import unfold

    _dims("unfold_copy", input, {"dimension": dimension, "size": size, "step": step}, dimension)
    return _copied(unfold(input, dimension, size, step))


@public(method=False)
def unsqueeze_copy(input, dim: int):
    """``torch.unsqueeze_copy``: ``unsqueeze`` as a copy."""
    _dims("unsqueeze_copy", input, {"dim": dim}, dim, extra=1)
    return _copied(movement.unsqueeze(input, dim))


@public(method=False)
def view_copy(input, size):
    """``torch.view_copy``: the elements in ``size``'s shape, as a copy (any layout: torch reshapes, never refuses)."""
    return _copied(movement.reshape(input, tuple(size)))


# ----- Tensor.new_* and nelement ----------------------------------------------------------------------
def _new(name: str):
    def method(self, *args, requires_grad: bool = False, **kwargs):
        raw = getattr(unwrap(self), name)(*(unwrap(a) for a in args), **kwargs)
        return Tensor(raw, requires_grad=requires_grad)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f"``Tensor.{name}``: a new tensor with ``self``'s dtype and device unless given "
                      "(outside the graph; ``requires_grad`` as torch).")
    return public(method, function=False, method=True)


new_zeros = _new("new_zeros")
new_ones = _new("new_ones")
new_full = _new("new_full")
new_empty = _new("new_empty")
new_tensor = _new("new_tensor")
new_empty_strided = _new("new_empty_strided")


@public(function=False)
def nelement(self) -> int:
    """``Tensor.nelement``: the number of elements (``numel``)."""
    return unwrap(self).numel()


# ----- positions (integer results, no gradient) -------------------------------------------------------
tril_indices = _factory("tril_indices")
triu_indices = _factory("triu_indices")
argwhere = nondiff("argwhere", torch.argwhere)
nonzero_static = nondiff("nonzero_static", torch.nonzero_static)
