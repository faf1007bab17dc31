"""Shape, stacking, splitting and diagonals: the head of the shaping family (torch's shape-and-indexing surface).

Almost everything here is a composition of movement and indexing ops (reshape, cat, narrow, expand,
index_select, matmul), exactly as torch composes them (they are ``CompositeImplicitAutograd`` in
torch), so values, gradients and every higher derivative follow torch's with nothing new to verify.
Grids, products (kron, tensordot, inner), reads by index and repeat_interleave are in ``shaping_products.py``;
the primitives with their own rules in ``shaping_scatter.py`` (writes into a tensor: index_put,
index_copy, masked_scatter, scatter_reduce, the ``*_scatter`` ops, block_diag); the ``*_copy``
variants and ``Tensor.new_*`` factories in ``shaping_copies.py``; all are imported at the end.
"""

from __future__ import annotations

import warnings

import torch

from neuronix.ops import indexing, movement
from neuronix.ops.helpers import checked_dims, wrap_dim
from neuronix.ops.registry import apply, defop, op_error, public
from neuronix.tensor import unwrap


def _rank(x) -> int:
    return unwrap(x).dim()


def _sequence(op: str, tensors: tuple) -> tuple[list, bool]:
    """``f(x)``, ``f(x, y)`` and ``f([x, y])`` alike (atleast_*, meshgrid): the tensors and whether one was given."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return list(tensors[0]), False
    return list(tensors), len(tensors) == 1


# ----- atleast_*d and the stacks built on them ------------------------------------------------------
def _atleast(op: str, tensors: tuple, reshape_to):
    items, single = _sequence(op, tensors)
    out = [reshape_to(t) for t in items]
    return out[0] if single else tuple(out)


def _at_least_1d(t):
    return movement.reshape(t, (1,)) if _rank(t) == 0 else t


def _at_least_2d(t):
    n = _rank(t)
    if n == 0:
        return movement.reshape(t, (1, 1))
    return movement.unsqueeze(t, 0) if n == 1 else t


def _at_least_3d(t):
    n = _rank(t)
    if n == 0:
        return movement.reshape(t, (1, 1, 1))
    if n == 1:
        return movement.unsqueeze(movement.unsqueeze(t, 0), -1)
    return movement.unsqueeze(t, -1) if n == 2 else t


@public(method=False)
def atleast_1d(*tensors):
    """``torch.atleast_1d``: 0-d tensors as shape ``(1,)``; one tensor in, one out; several (or a list): a tuple."""
    return _atleast("atleast_1d", tensors, _at_least_1d)


@public(method=False)
def atleast_2d(*tensors):
    """``torch.atleast_2d``: 0-d as ``(1, 1)``, 1-d ``(n,)`` as ``(1, n)``."""
    return _atleast("atleast_2d", tensors, _at_least_2d)


@public(method=False)
def atleast_3d(*tensors):
    """``torch.atleast_3d``: 0-d as ``(1, 1, 1)``, ``(n,)`` as ``(1, n, 1)``, ``(m, n)`` as ``(m, n, 1)``."""
    return _atleast("atleast_3d", tensors, _at_least_3d)


@public(method=False)
def hstack(tensors):
    """``torch.hstack``: join along dim 1 (dim 0 when the inputs are 1-d), after ``atleast_1d``."""
    parts = [_at_least_1d(t) for t in movement._tensor_sequence(tensors, "hstack")]
    return movement.cat(parts, 0 if parts and _rank(parts[0]) == 1 else 1)


@public(method=False)
def vstack(tensors):
    """``torch.vstack``: join along dim 0 after ``atleast_2d``."""
    return movement.cat([_at_least_2d(t) for t in movement._tensor_sequence(tensors, "vstack")], 0)


row_stack = public(vstack, name="row_stack", method=False)


@public(method=False)
def dstack(tensors):
    """``torch.dstack``: join along dim 2 after ``atleast_3d``."""
    return movement.cat([_at_least_3d(t) for t in movement._tensor_sequence(tensors, "dstack")], 2)


@public(method=False)
def column_stack(tensors):
    """``torch.column_stack``: 0-d and 1-d inputs become columns ``(n, 1)``; all are joined along dim 1."""
    parts = movement._tensor_sequence(tensors, "column_stack")
    return movement.cat([movement.reshape(t, (unwrap(t).numel(), 1)) if _rank(t) <= 1 else t for t in parts], 1)


# ----- splits: torch decides the pieces, each one a narrow of the input ------------------------------
def _cuts(op: str, input, dim: int, split) -> tuple[int, list[tuple[int, int]]]:
    """The wrapped dim and the ``(start, length)`` of each piece ``split(tensor, dim)`` makes of ``input``.

    torch's own split runs twice: on the input (its errors, named for ``op``) and on a stride-0
    expansion of ``arange`` along ``dim``, whose pieces' storage offsets are their starts (pieces may
    overlap or run backwards for tensor_split's indices, so starts are not running sums of sizes).
    """
    raw = unwrap(input)
    try:
        split(raw, dim)
        d = wrap_dim(dim, raw.dim())
        positions = torch.arange(raw.shape[d]).reshape([-1 if i == d else 1 for i in range(raw.dim())])
        pieces = split(positions.expand(raw.shape), d)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error(op, (input,), {"dim": dim}, err) from err
    return d, [(p.storage_offset(), p.shape[d]) for p in pieces]


def _narrowed(op: str, input, dim: int, split) -> tuple:
    """The pieces ``split(tensor, dim)`` makes of ``input``, each a differentiable narrow (a view)."""
    d, cuts = _cuts(op, input, dim, split)
    src = unwrap(input).shape
    return tuple(apply(indexing._NARROW, input, dim=d, start=start, length=length, src=src) for start, length in cuts)


# torch's unsafe_split/unsafe_chunk pieces share the input's storage but are not views to autograd (no view
# bookkeeping: writing one in place is allowed, and reaches the input's values unchecked); the gradient is narrow's
_UNSAFE_PIECE = defop(
    "unsafe_piece",
    lambda x, kind, size, dim, index, start, length, src: getattr(torch, kind)(x, size, dim)[index],
    lambda g, out, x, kind, size, dim, index, start, length, src: indexing._narrow_grad(
        g, out, x, dim, start, length, src),
    saves=(),
)


def _unsafe_pieces(kind: str, input, size, dim: int) -> tuple:
    d, cuts = _cuts(kind, input, dim, lambda r, dd: getattr(torch, kind)(r, size, dd))
    src = unwrap(input).shape
    return tuple(apply(_UNSAFE_PIECE, input, kind=kind, size=size, dim=d, index=i, start=start, length=length, src=src)
                 for i, (start, length) in enumerate(cuts))


def _sections(indices_or_sections):
    """tensor_split's second argument as torch reads it: an int, a 0-d int tensor (sections), or indices."""
    value = unwrap(indices_or_sections)
    if isinstance(value, torch.Tensor):
        return int(value) if value.dim() == 0 else [int(i) for i in value.tolist()]
    return value if isinstance(value, int) else [int(i) for i in value]


def _one_of(op: str, positional, keywords: dict):
    """The split argument given positionally or as one of torch's keywords (``sections=``, ``indices=``, ...)."""
    given = [v for v in (positional, *keywords.values()) if v is not None]
    if len(given) != 1:
        raise TypeError(f"neuronix.{op}(): pass the sections or indices once, positionally or as one of "
                        f"{', '.join(k + '=' for k in keywords)}")
    return given[0]


@public
def tensor_split(input, indices_or_sections=None, dim: int = 0, *, sections=None, indices=None,
                 tensor_indices_or_sections=None):
    """``torch.tensor_split``: ``n`` near-equal pieces (the first ``size % n`` one longer) or pieces cut at indices."""
    sections = _sections(_one_of("tensor_split", indices_or_sections, {
        "sections": sections, "indices": indices, "tensor_indices_or_sections": tensor_indices_or_sections}))
    return _narrowed("tensor_split", input, dim, lambda r, d: torch.tensor_split(r, sections, d))


def _directional_split(op: str, torch_split, input, indices_or_sections, dim_of, keywords: dict):
    sections = _sections(_one_of(op, indices_or_sections, keywords))
    raw = unwrap(input)
    try:
        torch_split(raw, sections)  # torch's rank and divisibility checks, in torch's words
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error(op, (input,), {}, err) from err
    return _narrowed(op, input, dim_of(raw.dim()), lambda r, d: torch.tensor_split(r, sections, d))


@public
def hsplit(input, indices_or_sections=None, *, sections=None, indices=None):
    """``torch.hsplit``: ``tensor_split`` along dim 1 (dim 0 for 1-d inputs); an int must divide the size."""
    return _directional_split("hsplit", torch.hsplit, input, indices_or_sections, lambda n: 1 if n > 1 else 0,
                              {"sections": sections, "indices": indices})


@public
def vsplit(input, indices_or_sections=None, *, sections=None, indices=None):
    """``torch.vsplit``: ``tensor_split`` along dim 0 of an at least 2-d input."""
    return _directional_split("vsplit", torch.vsplit, input, indices_or_sections, lambda n: 0,
                              {"sections": sections, "indices": indices})


@public
def dsplit(input, indices_or_sections=None, *, sections=None, indices=None):
    """``torch.dsplit``: ``tensor_split`` along dim 2 of an at least 3-d input."""
    return _directional_split("dsplit", torch.dsplit, input, indices_or_sections, lambda n: 2,
                              {"sections": sections, "indices": indices})


@public
def split_with_sizes(input, split_sizes, dim: int = 0):
    """``torch.split_with_sizes``: pieces of the listed sizes (they must add up to the dim's size)."""
    sizes = [int(s) for s in split_sizes]
    return _narrowed("split_with_sizes", input, dim, lambda r, d: torch.split_with_sizes(r, sizes, d))


@public
def unsafe_split(input, split_size, dim: int = 0):
    """``torch.unsafe_split``: ``split`` into pieces autograd does not track as views of ``input``."""
    return _unsafe_pieces("unsafe_split", input, int(split_size), dim)


@public
def unsafe_chunk(input, chunks: int, dim: int = 0):
    """``torch.unsafe_chunk``: ``chunk`` into pieces autograd does not track as views of ``input``."""
    return _unsafe_pieces("unsafe_chunk", input, int(chunks), dim)


@public
def unsafe_split_with_sizes(input, split_sizes, dim: int = 0):
    """``torch.unsafe_split_with_sizes``: ``split_with_sizes`` into pieces autograd does not track as views."""
    return _unsafe_pieces("unsafe_split_with_sizes", input, tuple(int(s) for s in split_sizes), dim)


@public(function=False)
def sum_to_size(self, *sizes, size=None):
    """``Tensor.sum_to_size``: sum down to ``size``, a shape ``self`` broadcasts from (``x.sum_to_size(2, 1)``)."""
    from neuronix.ops.reduce import sum as reduce_sum

    target = movement._sizes("sum_to_size", "size", sizes, size)
    shape = tuple(unwrap(self).shape)
    lead = len(shape) - len(target)
    if lead < 0 or any(t not in (1, s) for t, s in zip(target, shape[lead:])):
        raise RuntimeError(f"neuronix.sum_to_size: size {list(target)} is not expandable to size {list(shape)}")
    if not target:  # torch sums (a new tensor) even a 0-d self
        return reduce_sum(self)
    out = self
    dims = tuple(lead + i for i, (t, s) in enumerate(zip(target, shape[lead:])) if t == 1 and s != 1)
    if dims:
        out = reduce_sum(out, dims, keepdim=True)
    if lead:
        out = reduce_sum(out, tuple(range(lead)))
    return out


@public
def ravel(input):
    """``torch.ravel``: the elements as a 1-d tensor: a view of a contiguous input, else of a contiguous copy."""
    return movement.reshape(movement.contiguous(input), (-1,))


# ----- rotations and diagonals ------------------------------------------------------------------------
@public
def rot90(input, k: int = 1, dims=(0, 1)):
    """``torch.rot90``: rotate by ``k`` quarter turns in the plane ``dims`` (from the first towards the second)."""
    dims = list(dims)
    n = _rank(input)
    if len(dims) != 2:
        raise RuntimeError(f"neuronix.rot90: expected total rotation dims == 2, but got dims = {len(dims)}")
    if n < 2:
        raise RuntimeError(f"neuronix.rot90: expected total dims >= 2, but got total dims = {n}")
    d0, d1 = checked_dims("rot90", (input,), {"k": k, "dims": tuple(dims)}, *dims, ndim=n)
    if d0 == d1:
        raise RuntimeError(f"neuronix.rot90: expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return movement.transpose(movement.flip(input, (d1,)), d0, d1)
    if k == 2:
        return movement.flip(input, (d0, d1))
    if k == 3:
        return movement.transpose(movement.flip(input, (d0,)), d0, d1)
    return movement.clone(input, memory_format=torch.contiguous_format)


def _conjugate_transpose(input, what: str, batches: bool):
    """``adjoint``/``mH``/``H`` of a real tensor: the last two dims transposed (a view); a 0-d input is
    returned as it is (torch's ``conj()`` of a real tensor), with torch's deprecation warning."""
    n = _rank(input)
    if n == 0:
        warnings.warn(f"Tensor.{what} is deprecated on 0-D tensors. Consider using x.conj().", UserWarning, stacklevel=3)
        return input
    if n < 2 or (n > 2 and not batches):
        valid = "matrices or batches of matrices" if batches else "matrices (2-D tensors)"
        raise RuntimeError(f"neuronix: tensor.{what} is only supported on {valid}. Got {n}-D tensor (shape "
                           f"{tuple(unwrap(input).shape)})")
    return movement.transpose(input, -2, -1)


@public
def adjoint(input):
    """``torch.adjoint``: the conjugate transpose of the last two dims (a transpose for real tensors: a view)."""
    return _conjugate_transpose(input, "adjoint()", batches=True)


def mH(self):
    """``Tensor.mH``: ``adjoint`` (batches of matrices)."""
    return _conjugate_transpose(self, "mH", batches=True)


def H(self):
    """``Tensor.H``: the conjugate transpose of a matrix (2-D only; ``mH`` for batches)."""
    return _conjugate_transpose(self, "H", batches=False)


# ``Tensor.unfold``'s windows overlap where step < size: the gradient adds up each element's windows
# (torch's unfold_backward kernel), and the gradient of that sum is the windows again
_UNFOLD = defop(
    "unfold",
    lambda x, dimension, size, step, src: x.unfold(dimension, size, step),
    lambda g, out, x, dimension, size, step, src: apply(_UNFOLD_BACKWARD, g, dimension=dimension, size=size,
                                                        step=step, src=src),
    saves=(),
)
_UNFOLD_BACKWARD = defop(
    "unfold_backward",
    lambda g, dimension, size, step, src: torch.ops.aten.unfold_backward(g, src, dimension, size, step),
    lambda g, out, x, dimension, size, step, src: apply(_UNFOLD, g, dimension=dimension, size=size, step=step,
                                                        src=src),
    saves=(),
)


@public(function=False)
def unfold(self, dimension: int, size: int, step: int):
    """``Tensor.unfold``: the windows of ``size`` elements every ``step`` along ``dimension``, as a new last dim (a view)."""
    shape = tuple(unwrap(self).shape)
    return apply(_UNFOLD, self, dimension=wrap_dim(dimension, len(shape)), size=size, step=step, src=shape)


@public
def diag_embed(input, offset: int = 0, dim1: int = -2, dim2: int = -1):
    """``torch.diag_embed``: the last dim of ``input`` written on the ``offset`` diagonal of new dims ``dim1``, ``dim2``."""
    shape = tuple(unwrap(input).shape)
    if not shape:
        raise RuntimeError("neuronix.diag_embed: expected a tensor with at least 1 dimension, got a 0-d tensor")
    rank = len(shape) + 1
    # the dims of the result, one more than the input's: checked as torch's (IndexError), named with the input
    d1, d2 = checked_dims("diag_embed", (input,), {"offset": offset, "dim1": dim1, "dim2": dim2}, dim1, dim2, ndim=rank)
    if d1 == d2:
        raise RuntimeError(f"neuronix.diag_embed: diagonal dimensions cannot be identical {dim1}, {dim2}")
    side = shape[-1] + abs(offset)
    out = list(shape[:-1])
    for d in sorted((d1, d2)):
        out.insert(d, side)
    # the diagonal's backward writes a diagonal into zeros: exactly this op, with diagonal as its gradient
    return apply(indexing._DIAGONAL_BACKWARD, input, offset=offset, dim1=d1, dim2=d2, shape=tuple(out))


@public
def diag(input, diagonal: int = 0):
    """``torch.diag``: a 1-d input as the ``diagonal``-th diagonal of a square matrix; a 2-d input's diagonal."""
    n = _rank(input)
    if n == 1:
        return diag_embed(input, diagonal, 0, 1)
    if n == 2:  # a copy in torch, not a view (writing it in place leaves the input alone)
        return movement.clone(indexing.diagonal(input, diagonal), memory_format=torch.contiguous_format)
    raise RuntimeError(f"neuronix.diag: Supports 1D or 2D tensors. Got {n}D (shape {tuple(unwrap(input).shape)})")


@public
def diagflat(input, offset: int = 0):
    """``torch.diagflat``: the flattened input on the ``offset`` diagonal of a square matrix."""
    return diag_embed(movement.reshape(input, (-1,)), offset, 0, 1)


from neuronix.ops import shaping_copies, shaping_products, shaping_scatter  # noqa: E402,F401  (registration side effects)
