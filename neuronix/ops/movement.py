"""Shape and movement ops: reshapes, permutations, broadcasts, joins, flips.

Each op's VJP is itself a movement op (a reshape undoes a reshape, a permutation its
inverse, a narrow undoes a join), so every derivative of every order stays in this file.
Indexing, splitting and gather/scatter live in ``indexing.py``.
"""

from __future__ import annotations

import warnings

import torch

from neuronix.ops.helpers import PerInput, wrap_dim
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap


def _size_args(size) -> tuple:
    """Accept ``f(2, 3)`` and ``f((2, 3))`` alike, as torch does."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(size[0])
    return tuple(size)


def _sizes(op: str, name: str, positional: tuple, keyword) -> tuple:
    """torch's three spellings of a sizes/dims argument: ``f(x, 2, 3)``, ``f(x, (2, 3))``, ``f(x, name=(2, 3))``."""
    if keyword is None:
        return _size_args(positional)
    if positional:
        raise TypeError(f"neuronix.{op}(): got multiple values for argument '{name}' (positionally and by keyword)")
    return _size_args((keyword,)) if isinstance(keyword, int) else tuple(keyword)



# ----- reshapes: every VJP is ``g.reshape(input shape)`` --------------------------------------
def _reshaping(name: str, forward):
    """An op that only changes the shape; ``src`` (the input shape) is how its VJP undoes it."""
    return defop(
        name,
        lambda x, src, **kw: forward(x, **kw),
        lambda g, out, x, src, **kw: g.reshape(src),
        saves=(),
    )


_RESHAPE = _reshaping("reshape", lambda x, shape: x.reshape(shape))
_VIEW = _reshaping("view", lambda x, shape: x.view(shape))
_SQUEEZE = _reshaping("squeeze", lambda x, dim: x.squeeze() if dim is None else x.squeeze(dim))
_UNSQUEEZE = _reshaping("unsqueeze", lambda x, dim: x.unsqueeze(dim))
_FLATTEN = _reshaping("flatten", lambda x, start_dim, end_dim: x.flatten(start_dim, end_dim))
_UNFLATTEN = _reshaping("unflatten", lambda x, dim, sizes: x.unflatten(dim, sizes))


@public
def reshape(input, *sizes, shape=None):
    """``torch.reshape``: a view when possible, a copy otherwise (``-1`` infers one size)."""
    return apply(_RESHAPE, input, shape=_sizes("reshape", "shape", sizes, shape), src=input.shape)


@public(function=False)
def view(self, *sizes, size=None, dtype=None):
    """``Tensor.view``: a view of the same data with another shape (no copy)."""
    if dtype is not None or (len(sizes) == 1 and isinstance(sizes[0], torch.dtype)):
        raise NotImplementedError("view(dtype) reinterprets bits and is not differentiable; use .data.view(dtype)")
    return apply(_VIEW, self, shape=_sizes("view", "size", sizes, size), src=self.shape)


@public(function=False)
def view_as(self, other):
    """``Tensor.view_as``: ``self.view(other.shape)``."""
    return view(self, other.shape)


@public(function=False)
def reshape_as(self, other):
    """``Tensor.reshape_as``: ``self.reshape(other.shape)``."""
    return reshape(self, other.shape)


@public
def squeeze(input, dim=None):
    """``torch.squeeze``: drop size-1 dims (all of them, or those in ``dim``: an int or a tuple)."""
    if isinstance(dim, list):
        dim = tuple(dim)
    return apply(_SQUEEZE, input, dim=dim, src=input.shape)


@public
def unsqueeze(input, dim: int):
    """``torch.unsqueeze``: insert a size-1 dim at ``dim`` (in ``[-ndim - 1, ndim]``)."""
    return apply(_UNSQUEEZE, input, dim=dim, src=input.shape)


@public
def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """``torch.flatten``: merge dims ``start_dim..end_dim`` into one (a 0-d tensor becomes 1-d)."""
    return apply(_FLATTEN, input, start_dim=start_dim, end_dim=end_dim, src=input.shape)


@public
def unflatten(input, dim: int, sizes):
    """``torch.unflatten``: split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    return apply(_UNFLATTEN, input, dim=dim, sizes=tuple(sizes), src=input.shape)


# ----- permutations ---------------------------------------------------------------------------
def _inverse_permutation(dims, ndim: int) -> list[int]:
    inverse = [0] * ndim
    for i, d in enumerate(dims):
        inverse[d % ndim] = i
    return inverse


_PERMUTE = defop(
    "permute",
    lambda x, dims: x.permute(dims),
    lambda g, out, x, dims: g.permute(_inverse_permutation(dims, g.ndim)),
    saves=(),
)
_TRANSPOSE = defop(
    "transpose",
    lambda x, dim0, dim1: x.transpose(dim0, dim1),
    lambda g, out, x, dim0, dim1: g.transpose(dim0, dim1),
    saves=(),
)
_MOVEDIM = defop(
    "movedim",
    lambda x, source, destination: x.movedim(source, destination),
    lambda g, out, x, source, destination: g.movedim(destination, source),
    saves=(),
)


@public
def permute(input, *order, dims=None):
    """``torch.permute``: reorder the dims (``x.permute(2, 0, 1)``, ``nx.permute(x, (2, 0, 1))`` or ``dims=``)."""
    return apply(_PERMUTE, input, dims=_sizes("permute", "dims", order, dims))


@public
def transpose(input, dim0: int, dim1: int):
    """``torch.transpose``: swap two dims (a view)."""
    return apply(_TRANSPOSE, input, dim0=dim0, dim1=dim1)


@public
def swapaxes(input, axis0: int, axis1: int):
    """``torch.swapaxes``: ``transpose`` under numpy's argument names."""
    return transpose(input, axis0, axis1)


@public
def swapdims(input, dim0: int, dim1: int):
    """``torch.swapdims``: an alias of ``transpose``."""
    return transpose(input, dim0, dim1)


@public
def t(input):
    """``torch.t``: transpose a 2-D tensor; 0-d and 1-d tensors are returned as they are."""
    if input.ndim > 2:
        raise RuntimeError(
            f"neuronix.t: expects a tensor with <= 2 dimensions, but got a {input.ndim}-D tensor of shape "
            f"{tuple(input.shape)}; use transpose(dim0, dim1) or .mT for batches of matrices"
        )
    return transpose(input, 0, -1)


@public
def movedim(input, source, destination):
    """``torch.movedim``: move dim(s) ``source`` to position(s) ``destination``."""
    if isinstance(source, list):
        source = tuple(source)
    if isinstance(destination, list):
        destination = tuple(destination)
    return apply(_MOVEDIM, input, source=source, destination=destination)


moveaxis = public(movedim, name="moveaxis")


def T(self):
    """``Tensor.T``: the dims reversed (a transpose for matrices); torch deprecates it for other ranks."""
    if self.ndim == 2:
        return transpose(self, 0, 1)
    warnings.warn(
        "The use of `x.T` on tensors of dimension other than 2 to reverse their shape is deprecated; "
        "use `x.mT` to transpose batches of matrices or `x.permute(...)` to reverse the dims",
        UserWarning,
        stacklevel=2,
    )
    return permute(self, tuple(range(self.ndim - 1, -1, -1)))


def mT(self):
    """``Tensor.mT``: transpose of the last two dims (batches of matrices)."""
    if self.ndim < 2:
        raise RuntimeError(
            f"neuronix.mT: tensor.mT is only supported on matrices or batches of matrices; got a {self.ndim}-D tensor "
            f"of shape {tuple(self.shape)}"
        )
    return transpose(self, -2, -1)


# ----- broadcasting and repetition ----------------------------------------------------------
_EXPAND = defop(
    "expand",
    lambda x, sizes: x.expand(sizes),
    lambda g, out, x, sizes: g,  # the engine's sum_to_shape undoes the broadcast
    saves=(),
)


@public(function=False)
def expand(self, *sizes, size=None):
    """``Tensor.expand``: broadcast to ``sizes`` (-1 keeps a dim) without copying."""
    return apply(_EXPAND, self, sizes=_sizes("expand", "size", sizes, size))


@public(function=False)
def expand_as(self, other):
    """``Tensor.expand_as``: ``self.expand(other.shape)``."""
    return apply(_EXPAND, self, sizes=tuple(other.shape))


@public
def broadcast_to(input, size):
    """``torch.broadcast_to``."""
    return apply(_EXPAND, input, sizes=tuple(size))


def _repeat_grad(g, out, x, repeats, src):
    # Each output dim of size r*s is r copies of the input's s: split it into (r, s), sum the r's.
    lead = len(repeats) - len(src)
    padded = (1,) * lead + tuple(src)
    split = []
    for r, s in zip(repeats, padded):
        split += [r, s]
    return g.reshape(split).sum(tuple(range(0, 2 * len(padded), 2))).reshape(src)


_REPEAT = defop("repeat", lambda x, repeats, src: x.repeat(repeats), _repeat_grad, saves=())


@public(function=False)
def repeat(self, *counts, repeats=None):
    """``Tensor.repeat``: tile the data ``repeats[i]`` times along each dim (may add leading dims)."""
    return apply(_REPEAT, self, repeats=_sizes("repeat", "repeats", counts, repeats), src=self.shape)


@public
def tile(input, *counts, dims=None):
    """``torch.tile``: ``repeat`` with ``dims`` padded by leading ones up to ``input.ndim``."""
    dims = _sizes("tile", "dims", counts, dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


# ----- joins ------------------------------------------------------------------------------------
def _is_skipped_by_cat(t) -> bool:
    # torch.cat ignores 1-d empty tensors whatever the other inputs' rank (legacy behaviour)
    return t.dim() == 1 and t.shape[0] == 0


def _cat_grad(i, g, out, *inputs, dim, sizes):
    if sizes[i] is None:
        return Tensor._make(g.data.new_zeros((0,)), None)
    start = sum(s for s in sizes[:i] if s is not None)
    return g.narrow(dim, start, sizes[i])


_CAT = defop("cat", lambda *xs, dim, sizes: torch.cat(xs, dim), saves=())
_CAT.vjps = PerInput(_cat_grad)
_STACK = defop("stack", lambda *xs, dim: torch.stack(xs, dim), saves=())
_STACK.vjps = PerInput(lambda i, g, out, *inputs, dim: g.select(dim, i))


def _tensor_sequence(tensors, op: str) -> list:
    if isinstance(tensors, (Tensor, torch.Tensor)) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"neuronix.{op}: expects a list or tuple of tensors, got {type(tensors).__name__}")
    return list(tensors)


@public(method=False)
def cat(tensors, dim: int = 0):
    """``torch.cat``: join tensors along an existing dim (1-d empty tensors are skipped, as torch)."""
    tensors = _tensor_sequence(tensors, "cat")
    raws = [unwrap(t) for t in tensors]
    ranked = [r for r in raws if isinstance(r, torch.Tensor) and not _is_skipped_by_cat(r)]
    if ranked and ranked[0].dim() > 0:
        dim = wrap_dim(dim, ranked[0].dim())
    sizes = tuple(
        # a dim out of range (left as given by _wrap_dim) is for torch's kernel to reject, naming the op
        None if not isinstance(r, torch.Tensor) or _is_skipped_by_cat(r) or not 0 <= dim < r.dim() else r.shape[dim]
        for r in raws
    )
    return apply(_CAT, *tensors, dim=dim, sizes=sizes)


concat = public(cat, name="concat", method=False)


@public(method=False)
def concatenate(tensors, axis: int = 0, *, dim: int | None = None):
    """``torch.concatenate``: ``cat`` under numpy's argument name (torch takes ``dim=`` too)."""
    return cat(tensors, axis if dim is None else dim)


@public(method=False)
def stack(tensors, dim: int = 0):
    """``torch.stack``: join equally shaped tensors along a new dim."""
    tensors = _tensor_sequence(tensors, "stack")
    if tensors and isinstance(unwrap(tensors[0]), torch.Tensor):
        dim = wrap_dim(dim, unwrap(tensors[0]).dim() + 1)
    return apply(_STACK, *tensors, dim=dim)


# ----- reorderings that are their own kind of inverse -----------------------------------------
_FLIP = defop("flip", lambda x, dims: x.flip(dims), lambda g, out, x, dims: g.flip(dims), saves=())
_ROLL = defop(
    "roll",
    lambda x, shifts, dims: torch.roll(x, shifts, dims),
    lambda g, out, x, shifts, dims: apply(_ROLL, g, shifts=tuple(-s for s in shifts), dims=dims),
    saves=(),
)


@public
def flip(input, *order, dims=None):
    """``torch.flip``: reverse the order of elements along ``dims`` (``x.flip(0, 1)`` or ``dims=(0, 1)``)."""
    return apply(_FLIP, input, dims=_sizes("flip", "dims", order, dims))


@public
def fliplr(input):
    """``torch.fliplr``: flip dim 1 (needs at least 2 dims)."""
    if input.ndim < 2:
        raise RuntimeError(f"neuronix.fliplr: input must be >= 2-d, got shape {tuple(input.shape)}")
    return flip(input, (1,))


@public
def flipud(input):
    """``torch.flipud``: flip dim 0 (needs at least 1 dim)."""
    if input.ndim < 1:
        raise RuntimeError(f"neuronix.flipud: input must be >= 1-d, got shape {tuple(input.shape)}")
    return flip(input, (0,))


@public
def roll(input, shifts, dims=None):
    """``torch.roll``: rotate elements along ``dims`` (flattened when ``dims`` is None)."""
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if isinstance(dims, list):
        dims = tuple(dims)
    return apply(_ROLL, input, shifts=shifts, dims=() if dims is None else dims)


# ----- copies and triangles ------------------------------------------------------------------
_CONTIGUOUS = defop(
    "contiguous", lambda x, memory_format: x.contiguous(memory_format=memory_format), lambda g, out, x, memory_format: g,
    saves=(),
)
_CLONE = defop(
    "clone", lambda x, memory_format: x.clone(memory_format=memory_format), lambda g, out, x, memory_format: g,
    saves=(),
)
_TRIL = defop(
    "tril", lambda x, diagonal: x.tril(diagonal), lambda g, out, x, diagonal: g.tril(diagonal), saves=())
_TRIU = defop(
    "triu", lambda x, diagonal: x.triu(diagonal), lambda g, out, x, diagonal: g.triu(diagonal), saves=())


@public(function=False)
def contiguous(self, memory_format=torch.contiguous_format):
    """``Tensor.contiguous``: ``self`` when already laid out so, else a copy (identity gradient)."""
    if self.data.is_contiguous(memory_format=memory_format):
        return self
    return apply(_CONTIGUOUS, self, memory_format=memory_format)


@public
def clone(input, *, memory_format=torch.preserve_format):
    """``torch.clone``: a copy that stays in the graph (identity gradient)."""
    return apply(_CLONE, input, memory_format=memory_format)


@public
def tril(input, diagonal: int = 0):
    """``torch.tril``: zero the elements above the ``diagonal``-th diagonal of the last two dims."""
    return apply(_TRIL, input, diagonal=diagonal)


@public
def triu(input, diagonal: int = 0):
    """``torch.triu``: zero the elements below the ``diagonal``-th diagonal of the last two dims."""
    return apply(_TRIU, input, diagonal=diagonal)
