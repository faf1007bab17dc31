"""Indexing ops: ``__getitem__``, narrow/select and the splits built on them, gather/scatter,
index_select/index_add, masked_fill and diagonal.

The pattern throughout: reading part of a tensor has, as VJP, writing the gradient into
zeros of the input's shape, and that write has, as VJP, the same read. So each pair is
closed under differentiation and every derivative order works.
"""

from __future__ import annotations

import torch

from neuronix.ops.helpers import wrap_dim
from neuronix.ops.registry import apply, defop, op_error, public
from neuronix.tensor import Tensor, unwrap


def _shape(x):
    return unwrap(x).shape if isinstance(unwrap(x), torch.Tensor) else None


# ----- __getitem__ ---------------------------------------------------------------------------
def raw_index(index):
    """The index with every ``nx.Tensor`` replaced by its torch tensor (kept raw in the node)."""
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, torch.Tensor):
        # torch reads a 0-d index as a Python scalar: an integer selects, True/False adds an axis (kept or
        # emptied); nothing is saved for it, so a later in-place change of it matters to neither library
        if index.dim() == 0 and not (index.is_floating_point() or index.is_complex()):
            return bool(index) if index.dtype == torch.bool else int(index)
        return index
    if isinstance(index, tuple):
        return tuple(raw_index(i) for i in index)
    if isinstance(index, list):
        return [raw_index(i) for i in index]
    if isinstance(index, slice) and any(isinstance(b, Tensor) for b in (index.start, index.stop, index.step)):
        return slice(*(int(b) if isinstance(b, Tensor) else b for b in (index.start, index.stop, index.step)))
    return index


def _is_basic_item(i) -> bool:
    return i is None or i is Ellipsis or isinstance(i, slice) or (isinstance(i, int) and not isinstance(i, bool))


def _is_basic(index) -> bool:
    """Basic indexing (ints, slices, None, Ellipsis) picks each input element at most once."""
    return all(map(_is_basic_item, index)) if isinstance(index, tuple) else _is_basic_item(index)


def _getitem_backward_forward(g, index, basic, shape):
    z = g.new_zeros(shape)
    if basic:
        z[index] = g
        return z
    if isinstance(index, torch.Tensor) and index.dtype in (torch.int64, torch.int32) and shape[0] > 0:
        # the common case, rows picked by one integer tensor: accumulate rows directly
        rows = index.reshape(-1).to(z.device).remainder(shape[0])
        return z.index_add_(0, rows, g.reshape((rows.numel(),) + tuple(shape[1:])))
    # Advanced indices may repeat an element: map each output element to its flat input
    # position (torch's own indexing computes the map, so every index form is covered) and
    # accumulate the gradient there.
    positions = torch.arange(z.numel(), device=z.device).view(shape)[index]
    z.view(-1).index_add_(0, positions.reshape(-1), g.reshape(-1))
    return z


_GETITEM = defop(
    "getitem",
    lambda x, index, basic, shape: x[index],
    lambda g, out, x, index, basic, shape: apply(_GETITEM_BACKWARD, g, index=index, basic=basic, shape=shape),
    saves=(),
)
_GETITEM_BACKWARD = defop(
    "getitem_backward",
    _getitem_backward_forward,
    lambda g, out, x, index, basic, shape: apply(_GETITEM, g, index=index, basic=basic, shape=shape),
    saves=(),
)


def getitem(self, index):
    """``Tensor.__getitem__``: ints, slices, None, Ellipsis, bool masks, integer tensors/lists and mixes.

    Differentiable: repeated integer indices accumulate their gradients, as in torch.
    """
    index = raw_index(index)
    return apply(_GETITEM, self, index=index, basic=_is_basic(index), shape=self.shape)


def _embed(g, shape, index):
    """``zeros(shape)`` with ``g`` written at the basic ``index`` (differentiable in ``g``)."""
    return apply(_GETITEM_BACKWARD, g, index=index, basic=True, shape=shape)


def _dim_index(dim: int, item) -> tuple:
    return (slice(None),) * dim + (item,)


# ----- narrow / select and the splits built on them ------------------------------------------
def _narrow_grad(g, out, x, dim, start, length, src):
    return _embed(g, src, _dim_index(dim, slice(start, start + length)))


def _narrow_kernel(g, out, x, needs, dim, start, length, src):
    """A plain backward's narrow gradient: one zero-padding kernel writes each element once."""
    pads = [0, 0] * (len(src) - 1 - dim) + [start, src[dim] - start - length]
    return (torch.constant_pad_nd(g, pads, 0),)


_NARROW = defop(
    "narrow",
    lambda x, dim, start, length, src: x.narrow(dim, start, length),
    _narrow_grad,
    saves=(),
    fused=_narrow_kernel,
    fused_values_recorded=False,  # the same value either way: under create_graph the rule alone
)
_SELECT = defop(
    "select",
    lambda x, dim, index, src: x.select(dim, index),
    lambda g, out, x, dim, index, src: _embed(g, src, _dim_index(dim, index)),
    saves=(),
)


@public
def narrow(input, dim: int, start, length: int):
    """``torch.narrow``: ``length`` elements of dim ``dim`` from ``start`` (negative ``start`` counts from the end)."""
    shape = input.shape
    dim = wrap_dim(dim, len(shape))
    start = int(unwrap(start))
    if 0 <= dim < len(shape) and -shape[dim] <= start < 0:
        start += shape[dim]
    return apply(_NARROW, input, dim=dim, start=start, length=length, src=shape)


@public
def select(input, dim: int, index: int):
    """``torch.select``: the slice at ``index`` of dim ``dim`` (that dim removed)."""
    shape = input.shape
    dim = wrap_dim(dim, len(shape))
    return apply(_SELECT, input, dim=dim, index=int(unwrap(index)), src=shape)


def _pieces(op: str, input, dim: int, sizes_of) -> tuple:
    """Narrow ``input`` into consecutive pieces along ``dim``; torch decides the sizes (and the errors)."""
    raw = unwrap(input)
    try:
        sizes = [p.shape[dim] for p in sizes_of(raw)]
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error(op, (input,), {"dim": dim}, err) from err
    dim = wrap_dim(dim, raw.dim())
    out, start = [], 0
    for size in sizes:
        out.append(apply(_NARROW, input, dim=dim, start=start, length=size, src=raw.shape))
        start += size
    return tuple(out)


@public
def split(tensor, split_size_or_sections, dim: int = 0):
    """``torch.split``: pieces of ``split_size`` (the last may be smaller) or of the listed sizes; a tuple."""
    sections = split_size_or_sections
    if not isinstance(sections, int):
        sections = [int(s) for s in sections]
    return _pieces("split", tensor, dim, lambda r: torch.split(r, sections, dim))


@public
def chunk(input, chunks: int, dim: int = 0):
    """``torch.chunk``: at most ``chunks`` pieces of equal size (the last may be smaller); a tuple."""
    return _pieces("chunk", input, dim, lambda r: torch.chunk(r, chunks, dim))


@public
def unbind(input, dim: int = 0):
    """``torch.unbind``: the tuple of slices along ``dim`` (each a ``select``)."""
    shape = input.shape
    if len(shape) == 0:
        raise IndexError("neuronix.unbind: Dimension specified as 0 but tensor has no dimensions (shape ())")
    d = wrap_dim(dim, len(shape))
    if not 0 <= d < len(shape):
        raise IndexError(
            f"neuronix.unbind: Dimension out of range (expected to be in range of [{-len(shape)}, {len(shape) - 1}], "
            f"but got {dim}) for shape {tuple(shape)}"
        )
    return tuple(apply(_SELECT, input, dim=d, index=i, src=shape) for i in range(shape[d]))


# ----- gather / scatter ------------------------------------------------------------------------
def _fit(g, shape):
    """Zero-pad ``g`` (shaped like an index) up to ``shape`` (a src larger than its index)."""
    if tuple(g.shape) == tuple(shape):
        return g
    return _embed(g, shape, tuple(slice(0, n) for n in g.shape))


_GATHER = defop(
    "gather",
    lambda x, dim, index, shape: torch.gather(x, dim, index),
    lambda g, out, x, dim, index, shape: apply(_SCATTER_ADD, g.data.new_zeros(shape), g, dim=dim, index=index, src_shape=g.shape),
    saves=(),
)
_SCATTER_ADD = defop(
    "scatter_add",
    lambda x, src, dim, index, src_shape: torch.scatter_add(x, dim, index, src),
    lambda g, out, x, src, dim, index, src_shape: g,
    lambda g, out, x, src, dim, index, src_shape: _fit(gather(g, dim, index), src_shape),
    saves=(),
)
_SCATTER = defop(
    "scatter",
    lambda x, src, dim, index, src_shape: torch.scatter(x, dim, index, src),
    lambda g, out, x, src, dim, index, src_shape: apply(_SCATTER_VALUE, g, dim=dim, index=index, value=0),
    lambda g, out, x, src, dim, index, src_shape: _fit(gather(g, dim, index), src_shape),
    saves=(),
)
_SCATTER_VALUE = defop(
    "scatter_value",
    lambda x, dim, index, value: torch.scatter(x, dim, index, value),
    lambda g, out, x, dim, index, value: apply(_SCATTER_VALUE, g, dim=dim, index=index, value=0),
    saves=(),
)


@public
def gather(input, dim: int, index, *, sparse_grad: bool = False):
    """``torch.gather``: ``out[i][j] = input[index[i][j]][j]`` (for ``dim=0``); gradients scatter-add back."""
    return apply(_GATHER, input, dim=dim, index=unwrap(index), shape=input.shape)


@public
def scatter_add(input, dim: int, index, src):
    """``torch.scatter_add``: ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    return apply(_SCATTER_ADD, input, src, dim=dim, index=unwrap(index), src_shape=_shape(src))


@public
def scatter(input, dim: int, index, src=None, *, value=None, reduce=None):
    """``torch.scatter``: ``input`` with ``src`` (a tensor) or ``value`` (a number) written at ``index``."""
    if src is None and value is None:
        raise TypeError("neuronix.scatter: pass src (a tensor) or value (a number)")
    if reduce is not None:
        args = (input,) if src is None else (input, src)
        if any(isinstance(a, Tensor) and a.requires_grad for a in args):
            raise NotImplementedError(
                f"neuronix.scatter: reduce={reduce!r} has no gradient (as in torch); use scatter_add or compute it under no_grad"
            )
        fill = unwrap(src) if src is not None else value
        return Tensor._make(torch.scatter(unwrap(input), dim, unwrap(index), fill, reduce=reduce), None)
    if src is not None and not isinstance(unwrap(src), torch.Tensor):
        src, value = None, src
    if src is None:
        return apply(_SCATTER_VALUE, input, dim=dim, index=unwrap(index), value=unwrap(value))
    return apply(_SCATTER, input, src, dim=dim, index=unwrap(index), src_shape=_shape(src))


# ----- index_select / index_add -------------------------------------------------------------------
_INDEX_SELECT = defop(
    "index_select",
    lambda x, dim, index, shape: torch.index_select(x, dim, index),
    lambda g, out, x, dim, index, shape: apply(
        _INDEX_ADD, g.data.new_zeros(shape), g, dim=dim, index=index, alpha=1, source_shape=g.shape
    ),
    saves=(),
)


def _index_add_source_grad(g, out, x, source, dim, index, alpha, source_shape):
    picked = index_select(g, dim, index)
    if alpha != 1:
        picked = picked * alpha
    return picked.reshape(source_shape) if picked.shape != source_shape else picked


_INDEX_ADD = defop(
    "index_add",
    lambda x, source, dim, index, alpha, source_shape: torch.index_add(x, dim, index, source, alpha=alpha),
    lambda g, out, x, source, dim, index, alpha, source_shape: g,
    _index_add_source_grad,
    saves=(),
)


@public
def index_select(input, dim: int, index):
    """``torch.index_select``: the entries ``index`` (1-d int tensor) of dim ``dim``; repeats accumulate gradients."""
    return apply(_INDEX_SELECT, input, dim=dim, index=unwrap(index), shape=input.shape)


@public
def index_add(input, dim: int, index, source, *, alpha=1):
    """``torch.index_add``: ``input`` with ``alpha * source`` added at the entries ``index`` of dim ``dim``."""
    return apply(_INDEX_ADD, input, source, dim=dim, index=unwrap(index), alpha=alpha, source_shape=_shape(source))


# ----- masked_fill ----------------------------------------------------------------------------
_MASKED_FILL = defop(
    "masked_fill",
    lambda x, value, mask: x.masked_fill(mask, value),
    lambda g, out, x, value, mask: apply(_MASKED_FILL, g, 0, mask=mask),
    lambda g, out, x, value, mask: apply(_MASKED_FILL, g, 0, mask=~mask),  # the engine sums it to 0-d
    saves=(),
)


@public
def masked_fill(input, mask, value):
    """``torch.masked_fill``: ``value`` (a number or a 0-d tensor, differentiable) where the bool ``mask`` is True."""
    return apply(_MASKED_FILL, input, value, mask=unwrap(mask))


# ----- diagonal -----------------------------------------------------------------------------------
def _diagonal_backward_forward(g, offset, dim1, dim2, shape):
    z = g.new_zeros(shape)
    z.diagonal(offset, dim1, dim2).copy_(g)
    return z


_DIAGONAL = defop(
    "diagonal",
    lambda x, offset, dim1, dim2, shape: torch.diagonal(x, offset, dim1, dim2),
    lambda g, out, x, **attrs: apply(_DIAGONAL_BACKWARD, g, **attrs),
    saves=(),
)
_DIAGONAL_BACKWARD = defop(
    "diagonal_backward",
    _diagonal_backward_forward,
    lambda g, out, x, **attrs: apply(_DIAGONAL, g, **attrs),
    saves=(),
)


@public
def diagonal(input, offset: int = 0, dim1: int = 0, dim2: int = 1):
    """``torch.diagonal``: the ``offset`` diagonal of dims ``dim1``/``dim2``, appended as the last dim."""
    return apply(_DIAGONAL, input, offset=offset, dim1=dim1, dim2=dim2, shape=input.shape)


# ----- masked_select ----------------------------------------------------------------------------
@public
def masked_select(input, mask):
    """``torch.masked_select``: the 1-d tensor of elements where ``mask`` is True (both broadcast first)."""
    m = unwrap(mask)
    if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
        raise TypeError(f"neuronix.masked_select: mask must be a bool tensor, got {getattr(m, 'dtype', type(m).__name__)}")
    try:
        shape = torch.broadcast_shapes(input.shape, m.shape)
    except RuntimeError as err:
        raise RuntimeError(
            f"neuronix.masked_select: input of shape {tuple(input.shape)} and mask of shape {tuple(m.shape)} "
            f"do not broadcast: {err}"
        ) from err
    if input.shape != shape:
        input = input.expand(shape)
    if not shape:  # a 0-d mask would index as a Python bool; torch keeps (and version-checks) the mask itself
        input, shape = input.reshape(1), (1,)
    return getitem(input, m.expand(shape))
