"""Linear algebra: matmul and its strict forms (mm, bmm, mv, dot), outer, einsum.

``matmul`` is one primitive whose forward is ``torch.matmul`` for every rank combination
(1-D @ 1-D, 1-D/2-D @ N-D, N-D @ 1-D/2-D, broadcast batch dims); its VJPs are again
matmuls (or elementwise products where a side is a vector), so higher derivatives come
from recording them, and broadcast batch dims are summed by the engine.
``einsum``'s VJP for each operand is another einsum: the upstream gradient contracted
with the other operands, written back to the operand's subscripts.
"""

from __future__ import annotations

import functools
import math
import string
from collections import Counter

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops.helpers import PerInput
from neuronix.ops.movement import clone, transpose
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap


def _mT(x):
    return transpose(x, -2, -1)


# ----- matmul ------------------------------------------------------------------------
# ``ndims`` (both operands' ranks) lets each rule read only the other operand: as torch's, a matmul
# with a constant operand keeps just that one (``reads``), so changing the other in place is no error.
def _matmul_grad_input(g, out, a, b, ndims):
    a_ndim, b_ndim = ndims
    if a_ndim == 1 and b_ndim == 1:
        return g * b
    if b_ndim == 1:  # (..., n, k) @ (k,): every entry of the gradient is one product
        return g.unsqueeze(-1) * b
    if a_ndim == 1:  # (k,) @ (..., k, m): the engine sums the batch dims
        return matmul(b, g) if b_ndim == 2 else matmul(b, g.unsqueeze(-1)).squeeze(-1)
    return matmul(g, _mT(b))


def _matmul_grad_other(g, out, a, b, ndims):
    a_ndim, b_ndim = ndims
    if a_ndim == 1 and b_ndim == 1:
        return g * a
    if a_ndim == 1:
        return a.unsqueeze(-1) * g.unsqueeze(-2)
    if a_ndim > 2 and b_ndim <= 2:
        # fold the batch into the rows: one (k, rows) @ (rows, m) product, as torch does
        rows = a.reshape(math.prod(a.shape[:-1]), a.shape[-1])
        return matmul(_mT(rows), g.reshape(rows.shape[0]) if b_ndim == 1 else g.reshape(rows.shape[0], g.shape[-1]))
    if b_ndim == 1:
        return matmul(_mT(a), g) if a_ndim == 2 else matmul(_mT(a), g.unsqueeze(-1)).squeeze(-1)
    return matmul(_mT(a), g)


_MATMUL = defop("matmul", lambda a, b, ndims: torch.matmul(a, b), _matmul_grad_input, _matmul_grad_other,
                reads=((1,), (0,)))


def _shape_error(op: str, a, b, why: str) -> RuntimeError:
    return RuntimeError(f"neuronix.{op}: cannot multiply shapes {tuple(a.shape)} and {tuple(b.shape)}: {why}")


def _check_matmul(op: str, a, b) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise _shape_error(op, a, b, "both arguments need at least 1 dimension (use mul for scalars)")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        where = "size" if b.ndim == 1 else "second-to-last dim"
        raise _shape_error(op, a, b, f"the last dim of input ({k_a}) must equal the {where} of other ({k_b})")
    if (a.ndim > 2 or b.ndim > 2) and a.shape[:-2] != b.shape[:-2]:  # equal batch dims need no check
        try:
            torch.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
        except RuntimeError:
            raise _shape_error(
                op, a, b, f"batch dims {tuple(a.shape[:-2])} and {tuple(b.shape[:-2])} are not broadcastable"
            ) from None


@public
def matmul(input, other):
    """Matrix product with torch's rules: 1-D @ 1-D is a dot product, a 1-D side is a vector
    (prepended/appended dim removed afterwards), batch dims broadcast."""
    return _matmul("matmul", input, other)


def _matmul(op: str, input, other):
    a, b = unwrap(input), unwrap(other)
    _check_matmul(op, a, b)
    if a.ndim != b.ndim:
        input, other = _folded_as_torch(input, other)
    return apply(_MATMUL, input, other, ndims=(a.ndim, b.ndim))


def _folded_as_torch(x, y):
    """``(x, y)``, the batched operand replaced by a recorded copy where torch's matmul keeps a copy of it.

    With a batched operand and a vector or matrix one that requires grad, torch folds the batch into
    the rows of one matrix (``reshape(-1, n)``, of the operand's ``mT`` when it is the right-hand one)
    and keeps that for the small operand's gradient: a copy where the strides allow no view. Then the
    operand itself may change in place afterwards; a copy here keeps the same, and the same values.
    """
    swap = y.ndim > x.ndim
    big, small = (y, x) if swap else (x, y)
    if big.ndim < 3 or small.ndim > 2 or not (isinstance(small, Tensor) and small.requires_grad):
        return x, y
    data = big.data.mT if swap else big.data
    if data.numel() == 0 or all(data.stride(i) == data.stride(i + 1) * data.shape[i + 1] for i in range(data.ndim - 1)):
        return x, y  # the fold is a view of the operand: torch keeps the operand
    big = clone(big)
    return (small, big) if swap else (big, small)


def _check_ranks(op: str, a, b, ranks: tuple[int, int], what: str) -> None:
    a, b = unwrap(a), unwrap(b)
    if (a.ndim, b.ndim) != ranks:
        raise _shape_error(op, a, b, f"{op} expects {what}, got {a.ndim}-D and {b.ndim}-D tensors")


@public
def mm(input, mat2):
    """``(n, k) @ (k, m)``: the product of two matrices (no broadcasting)."""
    _check_ranks("mm", input, mat2, (2, 2), "two matrices (2-D)")
    return _matmul("mm", input, mat2)


@public
def bmm(input, mat2):
    """``(b, n, k) @ (b, k, m)``: batched matrix product (equal batch sizes, no broadcasting)."""
    _check_ranks("bmm", input, mat2, (3, 3), "two batches of matrices (3-D)")
    a, b = unwrap(input), unwrap(mat2)
    if a.shape[0] != b.shape[0]:
        raise _shape_error("bmm", a, b, f"batch sizes must be equal, got {a.shape[0]} and {b.shape[0]}")
    return _matmul("bmm", input, mat2)


@public
def mv(input, vec):
    """``(n, k) @ (k,)``: matrix-vector product."""
    _check_ranks("mv", input, vec, (2, 1), "a matrix (2-D) and a vector (1-D)")
    return _matmul("mv", input, vec)


@public
def dot(input, tensor):
    """Inner product of two 1-D tensors of the same size."""
    _check_ranks("dot", input, tensor, (1, 1), "two 1-D tensors")
    a, b = unwrap(input), unwrap(tensor)
    if a.shape[0] != b.shape[0]:
        raise _shape_error("dot", a, b, f"both vectors must have the same size, got {a.shape[0]} and {b.shape[0]}")
    return _matmul("dot", input, tensor)


@public
def outer(input, vec2):
    """``input[i] * vec2[j]``: outer product of two 1-D tensors."""
    _check_ranks("outer", input, vec2, (1, 1), "two 1-D tensors")
    return ew.mul(input.unsqueeze(-1), vec2)


# ----- einsum ------------------------------------------------------------------------
_LETTERS = string.ascii_uppercase + string.ascii_lowercase  # torch's label order (sublist ints 0..51)


def _einsum_error(equation: str, why: str) -> ValueError:
    return ValueError(f"neuronix.einsum({equation!r}): {why}")


def _from_sublists(args) -> tuple[str, list]:
    """``einsum(op0, [0, 1], op1, [1, 2], [0, 2])`` as an equation string and operands."""

    def labels(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)

    pairs = args[: len(args) - len(args) % 2]
    operands, terms = list(pairs[0::2]), [labels(s) for s in pairs[1::2]]
    arrow = "->" + labels(args[-1]) if len(args) % 2 else ""
    return ",".join(terms) + arrow, operands


def _canonical(equation: str, shapes) -> tuple[list[str], str]:
    """Input subscripts and output subscripts with ``...`` spelled out as unused letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise _einsum_error(equation, f"{len(terms)} operand subscripts for {len(shapes)} operands")
    for c in eq.replace("...", "").replace("->", "").replace(",", ""):
        if c not in _LETTERS:
            raise _einsum_error(equation, f"invalid subscript {c!r}: subscripts must be letters in [a-zA-Z]")
    spare = iter(c for c in _LETTERS if c not in eq)
    widths = []
    for term, shape in zip(terms, shapes):
        named = len(term.replace("...", ""))
        if "..." in term:
            widths.append(len(shape) - named)
        elif named != len(shape):
            raise _einsum_error(equation, f"subscripts {term!r} name {named} dims but the operand has shape {tuple(shape)}")
    width = max(widths, default=0)
    if any(w < 0 for w in widths):
        raise _einsum_error(equation, f"an operand has fewer dims than named subscripts (shapes {[tuple(s) for s in shapes]})")
    ellipsis = "".join(next(spare) for _ in range(width))
    subs = [t.replace("...", ellipsis[width - (len(s) - len(t) + 3) :]) if "..." in t else t for t, s in zip(terms, shapes)]
    if arrow:
        out = rhs.replace("...", ellipsis)
        for c in out:
            if out.count(c) > 1 or not any(c in s for s in subs):
                raise _einsum_error(equation, f"output subscript {c!r} must appear once in the output and in some operand")
    else:
        counts = Counter("".join(subs))
        out = ellipsis + "".join(sorted((c for c in counts if counts[c] == 1 and c not in ellipsis), key=_LETTERS.index))
    return subs, out


def _einsum_grad(i, g, out, *operands, subs, out_subs, shapes):
    """Gradient of operand ``i``: ``g`` contracted with the other operands onto its subscripts.

    A label repeated within operand ``i`` (a diagonal) is contracted once, broadcast along its
    copies and masked to the diagonal: zeros off it, as torch's, even where ``g`` is inf or NaN
    (an identity-matrix factor would give 0 * inf = NaN there). Labels no other operand or the
    output carries were summed over, so the gradient is broadcast along them.
    """
    target = subs[i]
    shape = shapes[i]  # operand i's own values are never read: only the other operands'
    terms, tensors = [out_subs], [g]
    for j, (s, x) in enumerate(zip(subs, operands)):
        if j != i:
            terms.append(s)
            tensors.append(x)
    unique = "".join(dict.fromkeys(target))  # each label once, in the order of its first position
    available = set("".join(terms))
    kept = "".join(c for c in unique if c in available)
    grad = einsum(",".join(terms) + "->" + kept, *tensors)
    sizes = dict(zip(kept, grad.shape))
    first = {c: target.index(c) for c in unique}
    grad = grad.reshape([sizes.get(c, 1) if first[c] == pos else 1 for pos, c in enumerate(target)])
    if tuple(grad.shape) != shape:  # a dim broadcast against the others stays wide: the engine sums it
        grad = grad.expand([n if r == 1 else r for r, n in zip(grad.shape, shape)])
    if len(unique) < len(target):
        grad = ew.where(_diagonal(target, shape, g.device), grad, 0.0)
    return grad


def _diagonal(target: str, shape, device) -> torch.Tensor:
    """True where every repeated label of ``target`` takes one value (``ii``: the diagonal)."""
    mask = torch.ones((1,) * len(shape), dtype=torch.bool, device=device)
    for pos, c in enumerate(target):
        p0 = target.index(c)
        if p0 != pos:
            at = [1] * len(shape)
            at[pos], index = shape[pos], torch.arange(shape[pos], device=device)
            here = index.reshape(at)
            at = [1] * len(shape)
            at[p0] = shape[p0]
            mask = mask & (here == index.reshape(at))
    return mask


def _einsum_forward(*xs, subs, out_subs, shapes):
    return torch.einsum(",".join(subs) + "->" + out_subs, *xs)


_EINSUM = defop("einsum", _einsum_forward)
_EINSUM.vjps = PerInput(_einsum_grad)
# One operand (a transpose, sum or diagonal): its rule reads no operand, so, as torch's, nothing is kept
# and the operand may change in place afterwards.
_EINSUM_ONE = defop("einsum_one_operand", _einsum_forward, functools.partial(_einsum_grad, 0), saves=())


@public(method=False)
def einsum(equation, *operands):
    """Einstein summation, as ``torch.einsum``: ``einsum('ij,jk->ik', a, b)``, operands as
    varargs or one list, ``...`` for broadcast dims, implicit output, or the sublist form
    ``einsum(a, [0, 1], b, [1, 2], [0, 2])``. Differentiable in every operand to any order."""
    if not isinstance(equation, str):
        equation, operands = _from_sublists((equation, *operands))
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    shapes = [tuple(unwrap(x).shape) for x in operands]
    subs, out_subs = _canonical(equation, shapes)
    return apply(_EINSUM_ONE if len(operands) == 1 else _EINSUM, *operands, subs=tuple(subs), out_subs=out_subs,
                 shapes=tuple(shapes))
