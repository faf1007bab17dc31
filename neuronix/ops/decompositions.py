"""Linear algebra beyond matmul: BLAS-style fused products and torch.linalg (factorisations, solves, norms).

This module holds the compositions (each built from neuronix ops, so its first and higher derivatives
are those of its parts, as torch's composite-implicit kernels are); the factorisations with their own
rules live in ``linalg_factor.py`` (primitives) and the norms and other torch.linalg compositions in
``linalg_more.py``, both imported at the end.

The ``add*`` products follow torch's scaling rules: ``beta * input + alpha * product``, where
``beta == 0`` ignores ``input``'s values (NaN and inf in it do not propagate) but keeps it in the graph
with gradient ``grad * 0`` (torch's ``maybe_multiply``), and a factor of 1 multiplies nothing.
"""

from __future__ import annotations

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops import reduce as red
from neuronix.ops.indexing import diagonal
from neuronix.ops.linalg import bmm, dot, matmul, mm, mv, outer
from neuronix.ops.movement import roll
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap

# ``input`` when ``beta == 0``: zeros of its shape in the forward (its values are never read), and the
# gradient ``g * 0`` (inf or NaN upstream gives NaN, as torch's ``maybe_multiply(grad, 0)``).
_IGNORED = defop("ignored_input", lambda x: torch.zeros_like(x), lambda g, out, x: g * 0.0, saves=())


def _scaled(x, factor):
    return x if factor == 1 else x * factor


def _with_input(input, product, beta, alpha, op: str):
    """``beta * input + alpha * product`` with torch's treatment of ``beta == 0`` and of factors 1."""
    shape = tuple(unwrap(product).shape)
    try:
        torch.broadcast_shapes(tuple(unwrap(input).shape), shape)
    except RuntimeError:
        raise RuntimeError(f"neuronix.{op}: input of shape {tuple(unwrap(input).shape)} does not broadcast to the "
                           f"product's shape {shape}") from None
    scaled = _scaled(product, alpha)
    if beta == 0:
        base = apply(_IGNORED, input) if isinstance(input, Tensor) else torch.zeros_like(unwrap(input))
    else:
        base = _scaled(input, beta)
    out = ew.add(base, scaled)
    if tuple(out.shape) != shape:  # torch's result has the product's shape; the input only broadcasts to it
        raise RuntimeError(f"neuronix.{op}: input of shape {tuple(unwrap(input).shape)} does not broadcast to the "
                           f"product's shape {shape}")
    return out


@public
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (``mat1`` (n, k), ``mat2`` (k, m); ``input`` broadcasts to (n, m))."""
    return _with_input(input, mm(mat1, mat2), beta, alpha, "addmm")


@public
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat @ vec)`` (``mat`` (n, k), ``vec`` (k,); ``input`` broadcasts to (n,))."""
    return _with_input(input, mv(mat, vec), beta, alpha, "addmv")


@public
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)``."""
    return _with_input(input, outer(vec1, vec2), beta, alpha, "addr")


@public
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * (batch1 @ batch2)``, batched (``batch1`` (b, n, k), ``batch2`` (b, k, m))."""
    return _with_input(input, bmm(batch1, batch2), beta, alpha, "baddbmm")


@public
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * sum_b(batch1[b] @ batch2[b])``: the batched products summed over the batch."""
    return _with_input(input, red.sum(bmm(batch1, batch2), 0), beta, alpha, "addbmm")


@public
def trace(input):
    """The sum of the main diagonal of a 2-D tensor."""
    if input.ndim != 2:
        raise RuntimeError(f"neuronix.trace: expected a matrix (2-D tensor), got shape {tuple(input.shape)}")
    return red.sum(diagonal(input))


@public
def vdot(input, other):
    """``sum(conj(input) * other)`` of two 1-D tensors: the dot product for real tensors."""
    return dot(input, other)


# ----- cross products ----------------------------------------------------------------------------
def _cross(input, other, dim: int):
    """``a x b`` along ``dim`` (size 3) as torch's kernel computes it: ``a1 * b2 - a2 * b1`` and its rotations."""
    if input.ndim != other.ndim:
        raise RuntimeError(f"neuronix.linalg.cross: inputs must have the same number of dimensions, got shapes "
                           f"{tuple(input.shape)} and {tuple(other.shape)}")
    shape = torch.broadcast_shapes(tuple(input.shape), tuple(other.shape))
    if not -len(shape) <= dim < len(shape) or shape[dim] != 3:
        size = shape[dim] if -len(shape) <= dim < len(shape) else None
        raise RuntimeError(f"neuronix.linalg.cross: inputs of shapes {tuple(input.shape)} and {tuple(other.shape)} "
                           f"need size 3 at dim {dim}, got {size}")
    a = input.expand(shape) if tuple(input.shape) != shape else input
    b = other.expand(shape) if tuple(other.shape) != shape else other
    return ew.sub(ew.mul(roll(a, -1, dim), roll(b, -2, dim)), ew.mul(roll(a, -2, dim), roll(b, -1, dim)))


@public(namespace="linalg", name="cross")
def linalg_cross(input, other, *, dim=-1):
    """``torch.linalg.cross``: the cross product of 3-vectors along ``dim`` (inputs broadcast)."""
    return _cross(input, other, dim)


@public(name="cross")
def cross(input, other, dim=None):
    """``torch.cross``: as ``linalg.cross``, with ``dim=None`` meaning the first dim of size 3 (torch's
    deprecated default; it warns)."""
    if dim is None:
        shape = torch.broadcast_shapes(tuple(input.shape), tuple(other.shape))
        dim = next((i for i, s in enumerate(shape) if s == 3), -1)
        if tuple(input.shape) == tuple(other.shape):  # torch finds the dim in the unbroadcast inputs
            dim = next((i for i, s in enumerate(input.shape) if s == 3), -1)
    return _cross(input, other, dim)


# ----- distances, covariance ---------------------------------------------------------------------
def vector_norm_of(x, ord, dim, keepdim=False, dtype=None):
    """``torch.linalg.vector_norm`` (reduce.py's norm primitive: its rule handles zeros, ties and inf)."""
    tdim = None if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    return red._reduce(red._NORM, x, dim, keepdim, tdim=tdim, ord=float(ord), dtype=dtype)


@public
def dist(input, other, p=2):
    """``torch.dist``: the ``p``-norm of ``input - other`` (broadcast), a 0-d tensor."""
    return vector_norm_of(ew.sub(input, other), p, None)


def _euclidean(x1, x2):
    """torch's ``_euclidean_dist`` (the matrix-product route of cdist with p=2): ``|a|^2 - 2 a.b + |b|^2``,
    clamped at 0, square-rooted."""
    n1 = red.sum(ew.pow(x1, 2), -1, keepdim=True)
    n2 = red.sum(ew.pow(x2, 2), -1, keepdim=True)
    from neuronix.ops.movement import cat

    left = cat([ew.mul(x1, -2), n1, ew.anchored(torch.ones_like(unwrap(n1)), n1)], -1)
    right = cat([x2, ew.anchored(torch.ones_like(unwrap(n2)), n2), n2], -1)
    return ew.sqrt(ew.clamp_min(matmul(left, right.mT), 0))


_CDIST_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")


@public(method=False)
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """``torch.cdist``: the ``p``-norm distance between every row of ``x1`` (..., P, M) and of ``x2`` (..., R, M);
    with p=2 torch's matrix-product route where ``compute_mode`` picks it (either side over 25 rows)."""
    if compute_mode not in _CDIST_MODES:
        raise ValueError(f"neuronix.cdist: {compute_mode} is not a valid value for compute_mode; valid: {_CDIST_MODES}")
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"neuronix.cdist: x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must be at least 2-D "
                           "with the same number of columns")
    if p < 0:
        raise RuntimeError(f"neuronix.cdist: only supports non-negative p values, got {p}")
    r1, r2 = x1.shape[-2], x2.shape[-2]
    mm_route = p == 2 and (compute_mode == "use_mm_for_euclid_dist"
                           or (compute_mode == _CDIST_MODES[0] and (r1 > 25 or r2 > 25)))
    if mm_route:
        return _euclidean(x1, x2)
    return vector_norm_of(ew.sub(x1.unsqueeze(-2), x2.unsqueeze(-3)), p, -1)


@public
def cov(input, *, correction=1, fweights=None, aweights=None):
    """``torch.cov``: covariance of the rows (variables) of a 2-D ``input`` over its columns (observations);
    a 1-D input is one variable. ``fweights`` (int counts) and ``aweights`` weigh the observations."""
    if input.ndim > 2:
        raise RuntimeError(f"neuronix.cov: expected input to have two or fewer dimensions, got {input.ndim}")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    n = x.shape[1]
    w = fweights
    if aweights is not None:
        w = aweights if w is None else ew.mul(w, aweights)
    if w is None:
        avg = red.mean(x, 1)
        norm = n - correction
    else:
        w_sum = red.sum(w)
        avg = ew.div(red.sum(ew.mul(x, w), 1), w_sum)
        if correction == 0:
            norm = w_sum
        elif aweights is None:
            norm = ew.sub(w_sum, correction)
        else:
            norm = ew.sub(w_sum, ew.div(ew.mul(red.sum(ew.mul(w, aweights)), correction), w_sum))
    if isinstance(norm, (int, float)):
        norm = max(norm, 0)
    else:
        norm = ew.where(unwrap(norm) <= 0, 0.0, norm)
    centred = ew.sub(x, avg.unsqueeze(1))
    other = centred if w is None else ew.mul(centred, w)
    return ew.div(mm(centred, other.t()), norm).squeeze()


@public
def corrcoef(input):
    """``torch.corrcoef``: the Pearson correlation coefficients of the rows, clipped to [-1, 1] as torch."""
    c = cov(input)
    if c.ndim == 0:
        return ew.div(c, c)
    std = ew.sqrt(diagonal(c))
    c = ew.div(c, std.unsqueeze(1))
    c = ew.div(c, std.unsqueeze(0))
    return ew.clamp(c, -1, 1)


from neuronix.ops import linalg_factor, linalg_more  # noqa: E402,F401  (registration side effects)
