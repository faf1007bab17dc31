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

import warnings

import torch

from neuronix.ops import elementwise as ew
from neuronix.ops import reduce as red
from neuronix.ops.helpers import checked_dims
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


def _no_out_dtype(op: str, out_dtype, input) -> None:
    """torch's ``out_dtype`` overload (a low-precision product accumulated wider) has CUDA kernels only."""
    if out_dtype is not None:
        raise RuntimeError(f"neuronix.{op}: out_dtype={out_dtype} is supported by torch on CUDA only (no kernel for "
                           f"{unwrap(input).device.type} tensors); leave it None")


@public
def addmm(input, mat1, mat2, out_dtype=None, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (``mat1`` (n, k), ``mat2`` (k, m); ``input`` broadcasts to (n, m))."""
    _no_out_dtype("addmm", out_dtype, input)
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
def baddbmm(input, batch1, batch2, out_dtype=None, *, beta=1, alpha=1):
    """``beta * input + alpha * (batch1 @ batch2)``, batched (``batch1`` (b, n, k), ``batch2`` (b, k, m))."""
    _no_out_dtype("baddbmm", out_dtype, input)
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
def _cross(input, other, dim: int, op: str = "linalg.cross"):
    """``a x b`` along ``dim`` (size 3) as torch's kernel computes it: ``a1 * b2 - a2 * b1`` and its rotations."""
    if input.ndim != other.ndim:
        raise RuntimeError(f"neuronix.{op}: inputs must have the same number of dimensions, got shapes "
                           f"{tuple(input.shape)} and {tuple(other.shape)}")
    shape = torch.broadcast_shapes(tuple(input.shape), tuple(other.shape))
    checked_dims(op, (input, other), {"dim": dim}, dim, ndim=len(shape))  # torch's IndexError for a dim out of range
    if not shape or shape[dim] != 3:
        raise RuntimeError(f"neuronix.{op}: inputs of shapes {tuple(input.shape)} and {tuple(other.shape)} "
                           f"need size 3 at dim {dim}, got {shape[dim] if shape else 'a 0-d tensor'}")
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
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated (neuronix.cross, as torch): "
                      "pass dim=", UserWarning, stacklevel=2)
        shape = torch.broadcast_shapes(tuple(input.shape), tuple(other.shape))
        dim = next((i for i, s in enumerate(shape) if s == 3), -1)
        if tuple(input.shape) == tuple(other.shape):  # torch finds the dim in the unbroadcast inputs
            dim = next((i for i, s in enumerate(input.shape) if s == 3), -1)
    return _cross(input, other, dim, "cross")


# ----- distances, covariance ---------------------------------------------------------------------
def vector_norm_of(x, ord, dim, keepdim=False, dtype=None):
    """``torch.linalg.vector_norm`` (reduce.py's norm primitive: its rule handles zeros, ties and inf)."""
    tdim = None if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
    return red._reduce(red._NORM, x, dim, keepdim, tdim=tdim, ord=float(ord), dtype=dtype)


@public
def dist(input, other, p=2):
    """``torch.dist``: the ``p``-norm of ``input - other`` (broadcast), a 0-d tensor."""
    return vector_norm_of(ew.sub(input, other), p, None)


def _pairwise_grad(g, out, x1, x2, p, which):
    """torch's ``_cdist_backward``: ``g * d|x1_i - x2_j|_p / dx1_i`` summed over ``j`` (over ``i`` with the
    opposite sign for x2), exactly 0 where a distance is 0 (even under an inf or NaN upstream gradient)."""
    diff = ew.sub(x1.unsqueeze(-2), x2.unsqueeze(-3))
    g_, dist = g.unsqueeze(-1), out.unsqueeze(-1)
    if p == 0:
        return ew.zero_gradient(x1 if which == 0 else x2)
    raw = unwrap(diff)
    sign = torch.where(raw.isnan(), raw, raw.sign())  # torch's cdist kernel: NaN at NaN (torch.sign gives 0)
    if p == 1:
        each = g_ * sign
    elif p == 2:
        each = ew.masked(g_ * diff / dist, unwrap(dist) != 0)
    elif p == float("inf"):
        each = g_ * sign * (raw.abs() == unwrap(dist))
    else:
        scaled = diff * ew.abs(diff).pow(p - 2) if p >= 2 else sign * ew.abs(diff).pow(p - 1)
        each = ew.masked(g_ * scaled / dist.pow(p - 1), unwrap(dist) != 0)
    return red.sum(each, -2) if which == 0 else -red.sum(each, -3)


_CDIST = defop("cdist",
               lambda x1, x2, p: torch.cdist(x1, x2, p, compute_mode="donot_use_mm_for_euclid_dist"),
               lambda g, out, x1, x2, p: _pairwise_grad(g, out, x1, x2, p, 0),
               lambda g, out, x1, x2, p: _pairwise_grad(g, out, x1, x2, p, 1),
               saves_out=True)


def _euclidean_grad(g, out, x1, x2, which):
    """torch's ``_euclidean_dist_backward``: ``ratio = g / d`` (0 where d == 0), then
    ``x1 * sum_j ratio - ratio @ x2`` (and its mirror for x2); differentiable, as torch's."""
    ratio = ew.masked(g / out, unwrap(out) != 0)
    if which == 0:
        return x1 * red.sum(ratio, -1, keepdim=True) - matmul(ratio, x2)
    return x2 * red.sum(ratio, -2).unsqueeze(-1) - matmul(ratio.mT, x1)


_EUCLIDEAN = defop("euclidean_dist", lambda x1, x2: torch.cdist(x1, x2, 2.0, compute_mode="use_mm_for_euclid_dist"),
                   lambda g, out, x1, x2: _euclidean_grad(g, out, x1, x2, 0),
                   lambda g, out, x1, x2: _euclidean_grad(g, out, x1, x2, 1),
                   saves_out=True)


_CDIST_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist")


@public(method=False)
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """``torch.cdist``: the ``p``-norm distance between every row of ``x1`` (..., P, M) and of ``x2`` (..., R, M).

    With p=2 torch takes a matrix-product route where ``compute_mode`` picks it (always, or when either side
    has over 25 rows): its gradient then has a derivative of its own, and torch works on copies of the inputs
    (so writing them in place afterwards is no error). The direct route's gradient has none in torch."""
    if compute_mode not in _CDIST_MODES:
        raise ValueError(f"neuronix.cdist: {compute_mode} is not a valid value for compute_mode; valid: {_CDIST_MODES}")
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"neuronix.cdist: x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must be at least 2-D "
                           "with the same number of columns")
    if p < 0:
        raise RuntimeError(f"neuronix.cdist: only supports non-negative p values, got {p}")
    r1, r2 = x1.shape[-2], x2.shape[-2]
    batch = torch.broadcast_shapes(tuple(x1.shape[:-2]), tuple(x2.shape[:-2]))
    x1 = x1.expand(batch + tuple(x1.shape[-2:])) if tuple(x1.shape[:-2]) != batch else x1
    x2 = x2.expand(batch + tuple(x2.shape[-2:])) if tuple(x2.shape[:-2]) != batch else x2
    mm_route = p == 2 and (compute_mode == "use_mm_for_euclid_dist"
                           or (compute_mode == _CDIST_MODES[0] and (r1 > 25 or r2 > 25)))
    if mm_route and x1.numel() and x2.numel():
        return apply(_EUCLIDEAN, x1.clone(), x2.clone())
    return apply(_CDIST, x1, x2, p=float(p))


def _check_weights(name: str, w, observations: int, integral: bool) -> None:
    """torch's checks of cov's weights: 1-D (or 0-d), one per observation, of the right kind, none negative."""
    if w is None:
        return
    raw = unwrap(w)
    if raw.ndim > 1:
        raise RuntimeError(f"neuronix.cov(): expected {name} to have one or fewer dimensions, got shape {tuple(raw.shape)}")
    if raw.numel() != observations:
        raise RuntimeError(f"neuronix.cov(): expected {name} to have the same numel as there are observations in "
                           f"the input ({observations}), got {raw.numel()}")
    if integral and (raw.is_floating_point() or raw.is_complex()):
        raise RuntimeError(f"neuronix.cov(): expected fweights to have integral dtype, got {raw.dtype}")
    if not integral and not raw.is_floating_point():
        raise RuntimeError(f"neuronix.cov(): expected aweights to have floating point dtype, got {raw.dtype}")
    if raw.numel() and not bool(raw.min() >= 0):  # NaN fails too, as torch's min(w) >= 0
        raise RuntimeError(f"neuronix.cov(): {name} cannot be negative")


@public
def cov(input, *, correction=1, fweights=None, aweights=None):
    """``torch.cov``: covariance of the rows (variables) of a 2-D ``input`` over its columns (observations);
    a 1-D input is one variable. ``fweights`` (int counts) and ``aweights`` weigh the observations."""
    if input.ndim > 2:
        raise RuntimeError(f"neuronix.cov: expected input to have two or fewer dimensions, got {input.ndim}")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    n = x.shape[1]
    _check_weights("fweights", fweights, n, integral=True)
    _check_weights("aweights", aweights, n, integral=False)
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


from neuronix.ops import linalg_factor, linalg_lu, linalg_more, linalg_triangular  # noqa: E402,F401  (registration side effects)
