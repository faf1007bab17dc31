"""Grids, products over index sets, tensordot/inner/kron, reads by flat or per-dim index and repeat_interleave.

Compositions of movement and indexing ops as torch composes them (its ``CompositeImplicitAutograd``
decompositions), so gradients and higher derivatives follow torch's. Part of the shaping family
(``shaping.py``).
"""

from __future__ import annotations

import itertools
import warnings

import torch

from neuronix.ops import indexing, movement
from neuronix.ops.helpers import checked_dims, wrap_dim
from neuronix.ops.linalg import matmul
from neuronix.ops.registry import apply, defop, op_error, public
from neuronix.ops.shaping import _rank, _sequence
from neuronix.tensor import Tensor, unwrap


# ----- broadcasting, grids and products over index sets ------------------------------------------
@public(method=False)
def broadcast_shapes(*shapes):
    """``torch.broadcast_shapes``: the shape tensors of these shapes broadcast to (a ``torch.Size``)."""
    return torch.broadcast_shapes(*shapes)


@public(method=False)
def broadcast_tensors(*tensors):
    """``torch.broadcast_tensors``: every input expanded to their common shape (views); a tuple."""
    try:
        shape = torch.broadcast_shapes(*(unwrap(t).shape for t in tensors))
    except RuntimeError as err:
        raise op_error("broadcast_tensors", tensors, {}, err) from err
    return tuple(movement.broadcast_to(t, shape) for t in tensors)


@public(method=False)
def meshgrid(*tensors, indexing=None):
    """``torch.meshgrid``: coordinate grids of 0-d/1-d inputs; ``indexing='ij'`` (matrix) or ``'xy'`` (Cartesian).

    Without ``indexing`` torch warns and uses ``'ij'``; so does neuronix.
    """
    items, _ = _sequence("meshgrid", tensors)
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'neuronix.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    if not items:
        raise RuntimeError("neuronix.meshgrid: expects a non-empty TensorList")
    for t in items:
        if _rank(t) > 1:
            raise RuntimeError(f"neuronix.meshgrid: Expected 0D or 1D tensor in the tensor list but got a tensor of "
                               f"shape {tuple(unwrap(t).shape)}")
    order = list(range(len(items)))
    if indexing == "xy" and len(items) >= 2:  # Cartesian: the first two axes swap places
        order[0], order[1] = 1, 0
    shape = [0] * len(items)
    for i, t in enumerate(items):
        shape[order[i]] = unwrap(t).numel()
    grids = []
    for i, t in enumerate(items):
        column = [1] * len(items)
        column[order[i]] = -1
        grids.append(movement.broadcast_to(movement.reshape(t, column), shape))
    return tuple(grids)


@public(method=False)
def cartesian_prod(*tensors):
    """``torch.cartesian_prod``: every combination of one element of each 1-d input, as rows (one input: itself)."""
    for t in tensors:
        if _rank(t) != 1:
            raise RuntimeError(f"neuronix.cartesian_prod: Expect a 1D vector, but got shape {tuple(unwrap(t).shape)}")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return movement.stack([movement.reshape(g, (-1,)) for g in grids], 1)


@public(method=False)
def combinations(input, r: int = 2, with_replacement: bool = False):
    """``torch.combinations``: the length-``r`` combinations of a 1-d input's elements, as rows (itertools order)."""
    raw = unwrap(input)
    if raw.dim() != 1:
        raise RuntimeError(f"neuronix.combinations: Expect a 1D vector, but got shape {tuple(raw.shape)}")
    if r < 0:
        raise RuntimeError(f"neuronix.combinations: Expect a non-negative number, but got {r}")
    if r == 0:
        return indexing.getitem(input, torch.zeros(0, dtype=torch.long, device=raw.device))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(raw.shape[0]), r))
    index = torch.tensor(rows, dtype=torch.long, device=raw.device).reshape(len(rows), r)
    return indexing.getitem(input, index)


# kron reshapes its inputs with torch's ``_unsafe_view``, which autograd does not track as a view: writing an
# input in place after the forward raises nothing in torch. A reshaped copy keeps that (nothing to refuse) and
# gives the gradient of the forward's own values (torch's reads the new ones: silently wrong)
_UNSAFE_VIEW = defop(
    "unsafe_view",
    lambda x, shape, src: x.reshape(shape).clone(),
    lambda g, out, x, shape, src: g.reshape(src),
    saves=(),
)


@public
def kron(input, other):
    """``torch.kron``: the Kronecker product (ranks padded with leading ones), as torch: one broadcast product."""
    a, b = unwrap(input), unwrap(other)
    n = max(a.dim(), b.dim())
    sa = (1,) * (n - a.dim()) + tuple(a.shape)
    sb = (1,) * (n - b.dim()) + tuple(b.shape)
    left = [s for pair in zip(sa, (1,) * n) for s in pair]
    right = [s for pair in zip((1,) * n, sb) for s in pair]
    product = apply(_UNSAFE_VIEW, input, shape=left, src=a.shape) * apply(_UNSAFE_VIEW, other, shape=right, src=b.shape)
    return movement.reshape(product, [x * y for x, y in zip(sa, sb)])


def _contraction_dims(dims, na: int, nb: int):
    """tensordot's ``dims``: an int ``k`` (the last k of a with the first k of b), two lists, or a tensor of either."""
    value = unwrap(dims)
    if isinstance(value, torch.Tensor):
        value = int(value) if value.dim() == 0 else value.tolist()
    if isinstance(value, int):
        if value < 0:
            raise RuntimeError(f"neuronix.tensordot: expects dims >= 0, but got dims={value}")
        if value > min(na, nb):
            raise RuntimeError(f"neuronix.tensordot: expects dims < ndim_a or ndim_b, but got dims={value}")
        return list(range(na - value, na)), list(range(value))
    first, second = value
    first = [first] if isinstance(first, int) else list(first)
    second = [second] if isinstance(second, int) else list(second)
    return first, second


@public(method=False)
def tensordot(a, b, dims=2, out=None):
    """``torch.tensordot``: sum the products over the paired dims ``dims``; the free dims of ``a`` then of ``b``.

    As torch: a size-1 contracted dim facing a larger one is summed first, then one matrix product.
    """
    if out is not None:
        raise TypeError("neuronix.tensordot: out= is not supported (neuronix tensors are never written into by ops)")
    ra, rb = unwrap(a), unwrap(b)
    da, db = _contraction_dims(dims, ra.dim(), rb.dim())
    if len(da) != len(db):
        raise RuntimeError(f"neuronix.tensordot: both dimension lists should have same length, got {da} and {db}")
    for d, t in ((da, ra), (db, rb)):  # torch's IndexError for a dim out of range, with both inputs
        checked_dims("tensordot", (a, b), {"dims": (da, db)}, *d, ndim=t.dim())
    da = [wrap_dim(d, ra.dim()) for d in da]
    db = [wrap_dim(d, rb.dim()) for d in db]
    for i, j in zip(da, db):
        si, sj = ra.shape[i], rb.shape[j]
        if sj == 1:
            a = movement_sum(a, i)
        elif si == 1:
            b = movement_sum(b, j)
        elif si != sj:
            raise RuntimeError(f"neuronix.tensordot: contracted dimensions need to match, but first has size {si} in "
                               f"dim {i} and second has size {sj} in dim {j}")
    free_a = [d for d in range(ra.dim()) if d not in da]
    free_b = [d for d in range(rb.dim()) if d not in db]
    size_a = [unwrap(a).shape[d] for d in free_a]
    size_b = [unwrap(b).shape[d] for d in free_b]
    k = 1
    for d in da:
        k *= unwrap(a).shape[d]
    left = movement.reshape(movement.permute(a, free_a + da), (_prod(size_a), k))
    right = movement.reshape(movement.permute(b, db + free_b), (k, _prod(size_b)))
    return movement.reshape(matmul(left, right), size_a + size_b)


def _prod(sizes) -> int:
    n = 1
    for s in sizes:
        n *= s
    return n


def movement_sum(x, dim: int):
    """``x.sum(dim, keepdim=True)``: tensordot's early sum of a broadcast (size-1) contracted dim."""
    from neuronix.ops.reduce import sum as reduce_sum

    return reduce_sum(x, dim, keepdim=True)


@public
def inner(input, other):
    """``torch.inner``: sums of products over the last dims (a scalar operand multiplies)."""
    ra, rb = unwrap(input), unwrap(other)
    if ra.dim() == 0 or rb.dim() == 0:
        return input * other
    if ra.shape[-1] != rb.shape[-1]:
        raise RuntimeError(f"neuronix.inner: inner() the last dimension must match on both input tensors but got "
                           f"shapes {list(ra.shape)} and {list(rb.shape)}")
    return tensordot(input, other, ([-1], [-1]))


# ----- reading by flat or per-dim indices -------------------------------------------------------------
@public
def take(input, index):
    """``torch.take``: elements of the flattened input at ``index`` (negative counts from the end); index's shape."""
    idx = unwrap(index)
    # a flat integer index (a 0-d one too: getitem would read it as a Python int, a view torch's take is not)
    picked = indexing.getitem(movement.reshape(input, (-1,)), idx.reshape(-1))
    return movement.reshape(picked, idx.shape)


@public
def take_along_dim(input, indices, dim=None):
    """``torch.take_along_dim``: ``gather`` along ``dim`` after broadcasting both (all but ``dim``); flat when None."""
    idx = unwrap(indices)
    if dim is None:
        return indexing.gather(movement.reshape(input, (-1,)), 0, idx.reshape(-1))
    raw = unwrap(input)
    if raw.dim() != idx.dim():
        raise RuntimeError(f"neuronix.take_along_dim: input and indices should have the same number of dimensions, "
                           f"but got {raw.dim()} dimensions for input, and {idx.dim()} dimensions for indices")
    if idx.dtype != torch.long:
        raise RuntimeError(f"neuronix.take_along_dim: dtype of indices should be Long but got {idx.dtype}")
    (d,) = checked_dims("take_along_dim", (input, indices), {"dim": dim}, dim, ndim=raw.dim())
    sizes = list(raw.shape)
    if raw.dim():
        sizes[d] = idx.shape[d]
    try:
        shape = list(torch.broadcast_shapes(tuple(sizes), idx.shape))
    except RuntimeError as err:
        raise op_error("take_along_dim", (input, indices), {"dim": dim}, err) from err
    # torch gathers with a broadcast copy of the index, so writing ``indices`` afterwards changes no gradient
    idx = idx.broadcast_to(shape).clone()
    if raw.dim():
        shape[d] = raw.shape[d]
    return indexing.gather(movement.broadcast_to(input, shape), d, idx)


@public
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """``torch.repeat_interleave``: each element (or slice along ``dim``) ``repeats`` times; flat when ``dim`` is None.

    ``repeats`` is an int or a tensor (one count, or one per element); as torch, the result is an
    ``index_select`` of the input, so repeated elements add up their gradients. With ``input`` alone
    (an int tensor of counts) the result is the repeated positions (no gradient).
    """
    if repeats is None:
        return Tensor._make(torch.repeat_interleave(unwrap(input), output_size=output_size), None)
    raw = unwrap(input)
    if dim is None:
        input, dim = movement.reshape(input, (-1,)), 0
        raw = unwrap(input)
    (d,) = checked_dims("repeat_interleave", (input, repeats), {"dim": dim}, dim, ndim=raw.dim())
    counts = unwrap(repeats)
    n = raw.shape[d] if raw.dim() else 1
    try:
        if isinstance(counts, torch.Tensor):
            if counts.dim() == 0 or counts.shape == (1,):
                counts = counts.reshape(()).expand(n)
        else:
            counts = torch.full((n,), int(counts), dtype=torch.long, device=raw.device)
        index = torch.repeat_interleave(counts.to(raw.device), output_size=output_size)
        if counts.numel() != n:
            torch.repeat_interleave(raw, unwrap(repeats), dim)  # torch's error for a count per element mismatch
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error("repeat_interleave", (input, repeats), {"dim": dim}, err) from err
    return indexing.index_select(input, d, index)
