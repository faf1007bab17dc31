"""torch.linalg compositions: norms, distances, products of many matrices, powers, Vandermonde matrices,
condition numbers, ranks, tensor inverses and solves, least squares.

Each is built from neuronix ops as torch builds it (its composite-implicit kernels), so its gradients are
those of its parts: a matrix 2-norm's is svdvals' and amax's (ties shared evenly), a Frobenius norm's the
vector norm's (0 at the zero matrix).
"""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.autograd import mode
from neuronix.ops import elementwise as ew
from neuronix.ops import reduce as red
from neuronix.ops.decompositions import vector_norm_of
from neuronix.ops.helpers import checked_dims
from neuronix.ops.indexing import diagonal as _diagonal
from neuronix.ops.linalg import matmul as _matmul
from neuronix.ops.linalg_factor import _check_square, inv, inv_ex, pinv, solve, svdvals
from neuronix.ops.movement import cat, movedim
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor, unwrap

Lstsq = namedtuple("linalg_lstsq", ("solution", "residuals", "rank", "singular_values"))


@public(namespace="linalg")
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """``torch.linalg.vector_norm``: the ``ord``-norm over ``dim`` (every element when None)."""
    if isinstance(ord, str):
        raise RuntimeError(f"neuronix.linalg.vector_norm: ord must be a number, got {ord!r}")
    return vector_norm_of(x, ord, dim, keepdim, dtype)


def _matrix_dims(A, dim, op):
    if len(dim) != 2:
        raise RuntimeError(f"neuronix.{op}: dim must be a 2-tuple, got {dim!r}")
    d0, d1 = checked_dims(op, (A,), {"dim": dim}, *dim, ndim=A.ndim)  # torch's IndexError for a dim out of range
    if d0 == d1:
        raise RuntimeError(f"neuronix.{op}: dims must be different (two distinct dims of a {A.ndim}-D tensor of "
                           f"shape {tuple(A.shape)}), got {dim!r}")
    return d0, d1


@public(namespace="linalg")
def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """``torch.linalg.matrix_norm``: 'fro', 'nuc', +-1 (max/min column sum), +-2 (largest/smallest singular
    value), +-inf (max/min row sum), over the two dims ``dim``."""
    if A.ndim < 2:
        raise RuntimeError(f"neuronix.linalg.matrix_norm: the input must have at least 2 dimensions, got {A.ndim}")
    d0, d1 = _matrix_dims(A, tuple(dim), "linalg.matrix_norm")
    if dtype is not None:
        A = A.to(dtype)
    if ord == "fro":
        return vector_norm_of(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        vals = svdvals(movedim(A, (d0, d1), (-2, -1)))
        out = red.sum(vals, -1) if ord == "nuc" else red.amax(vals, -1) if ord == 2 else red.amin(vals, -1)
        if keepdim:
            out = out.unsqueeze(min(d0, d1)).unsqueeze(max(d0, d1))
        return out
    if ord in (1, -1, float("inf"), float("-inf")):
        summed, reduced = (d0, d1) if abs(ord) == 1 else (d1, d0)
        sums = red.sum(ew.abs(A), summed, keepdim=keepdim)
        if not keepdim and reduced > summed:
            reduced -= 1
        return red.amax(sums, reduced, keepdim) if ord > 0 else red.amin(sums, reduced, keepdim)
    raise RuntimeError(f"neuronix.linalg.matrix_norm: order {ord!r} is not supported; valid: 'fro', 'nuc', "
                       "inf, -inf, 1, -1, 2, -2")


@public(namespace="linalg")
def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """``torch.linalg.norm``: a vector norm over one dim (or the flattened input), a matrix norm over two."""
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 1:
            return vector_norm_of(A, 2 if ord is None else ord, dims, keepdim, dtype)
        return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm_of(A, 2, None, keepdim, dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm_of(A, ord, None, keepdim, dtype)
    raise RuntimeError(f"neuronix.linalg.norm: with ord={ord!r} and dim=None the input must be 1-D or 2-D, "
                       f"got {A.ndim}-D")


@public(method=False)
def nuclear_norm(input, dim=(-2, -1), keepdim=False):
    """``torch.nuclear_norm`` (deprecated in torch for ``linalg.matrix_norm(A, 'nuc')``): the sum of the singular
    values over the two dims ``dim``."""
    if isinstance(dim, bool):  # torch.nuclear_norm(input, keepdim) spelled positionally
        dim, keepdim = (-2, -1), dim
    if input.ndim >= 2:  # its dims checked as itself (matrix_norm would name itself)
        _matrix_dims(input, tuple(dim), "nuclear_norm")
    return matrix_norm(input, "nuc", tuple(dim), keepdim)


@public(method=False)
def frobenius_norm(input, dim, keepdim=False):
    """``torch.frobenius_norm`` (deprecated in torch for ``linalg.vector_norm(A, 2, dim)``): the 2-norm over ``dim``."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    checked_dims("frobenius_norm", (input,), {"dim": dim, "keepdim": keepdim}, *dims, ndim=input.ndim)
    return vector_norm_of(input, 2, dims, keepdim)


@public(namespace="linalg")
def cond(A, p=None):
    """``torch.linalg.cond``: ``S_max / S_min`` for p None/2 (``S_min / S_max`` for -2), else
    ``norm(A, p) * norm(inv(A), p)``."""
    if p in (None, 2, -2):
        s = svdvals(A)
        big, small = s.narrow(-1, 0, 1).squeeze(-1), s.narrow(-1, s.shape[-1] - 1, 1).squeeze(-1)
        return ew.div(small, big) if p == -2 else ew.div(big, small)
    _check_square("linalg.cond", A)
    # as torch: no error at a singular matrix, whose condition number is inf (torch 2.13 gives NaN or a large
    # finite number for 'nuc' there, by its LU's rounding: neuronix gives inf for every p)
    inverse, info = inv_ex(A)
    return ew.where(info.data > 0, float("inf"), ew.mul(matrix_norm(A, p), matrix_norm(inverse, p)))


@public(namespace="linalg")
def matrix_rank(A, *, atol=None, rtol=None, hermitian=False):
    """``torch.linalg.matrix_rank``: the number of singular values above the tolerance (an int64 count,
    no gradient)."""
    return Tensor._make(torch.linalg.matrix_rank(unwrap(A), atol=unwrap(atol), rtol=unwrap(rtol),
                                                 hermitian=hermitian), None)


@public(namespace="linalg")
def vecdot(x, y, *, dim=-1):
    """``torch.linalg.vecdot``: ``sum(x * y, dim)`` (inputs broadcast)."""
    return red.sum(ew.mul(x, y), dim)


@public(namespace="linalg", name="matmul")
def linalg_matmul(input, other):
    """``torch.linalg.matmul``: ``torch.matmul``."""
    return _matmul(input, other)


@public(namespace="linalg", name="diagonal")
def linalg_diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """``torch.linalg.diagonal``: ``torch.diagonal`` with the last two dims as default."""
    return _diagonal(A, offset, dim1, dim2)


@public(namespace="linalg")
def multi_dot(tensors):
    """``torch.linalg.multi_dot``: the product of matrices in the cheapest order (the first may be a row
    vector, the last a column vector)."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError("neuronix.linalg.multi_dot: expected at least 2 tensors, got " + str(len(tensors)))
    first_vec, last_vec = tensors[0].ndim == 1, tensors[-1].ndim == 1
    mats = [t.unsqueeze(0) if i == 0 and first_vec else t for i, t in enumerate(tensors)]
    if last_vec:
        mats[-1] = mats[-1].unsqueeze(-1)
    for i, t in enumerate(mats):
        if t.ndim != 2:
            raise RuntimeError(f"neuronix.linalg.multi_dot: tensor {i} must be 2-D (the first and last may be 1-D), "
                               f"got {t.ndim}-D")
    out = _chain(mats, _order(mats), 0, len(mats) - 1)
    if first_vec:
        out = out.squeeze(0)
    if last_vec:
        out = out.squeeze(-1)
    return out


def _order(mats):
    """The matrix-chain split table (the cheapest parenthesisation by scalar multiplications)."""
    dims = [mats[0].shape[0]] + [m.shape[1] for m in mats]
    n = len(mats)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def _chain(mats, split, i, j):
    if i == j:
        return mats[i]
    k = split[i][j]
    return _matmul(_chain(mats, split, i, k), _chain(mats, split, k + 1, j))


# ``A ** 0``: the identity, in the graph of ``A`` with gradient 0 (torch copies the identity into a clone of A)
_IDENTITY_OF = defop("matrix_power_zero",
                     lambda A: torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(A.shape).clone(),
                     lambda g, out, A: ew.zero_gradient(g), saves=())


@public(namespace="linalg")
def matrix_power(A, n):
    """``torch.linalg.matrix_power`` (and ``torch.matrix_power``): ``A^n`` for an integer ``n`` by repeated
    squaring, as torch multiplies; ``n < 0`` powers the inverse, ``n == 0`` the identity."""
    _check_square("linalg.matrix_power", A)
    if not isinstance(n, int):
        raise TypeError(f"neuronix.linalg.matrix_power: n must be an int, got {type(n).__name__}")
    if n == 0:
        return apply(_IDENTITY_OF, A)
    if n < 0:
        A, n = inv(A), -n
    if n == 1:
        return A.clone()
    if n == 2:
        return _matmul(A, A)
    if n == 3:
        return _matmul(_matmul(A, A), A)
    z = result = None
    while n > 0:
        bit, n = n % 2, n // 2
        z = A if z is None else _matmul(z, z)
        if bit:
            result = z if result is None else _matmul(result, z)
    return result


@public(name="matrix_power")
def torch_matrix_power(input, n):
    """``torch.matrix_power``: ``linalg.matrix_power``."""
    return matrix_power(input, n)


@public(namespace="linalg")
def vander(x, *, N=None):
    """``torch.linalg.vander``: columns ``x^0, x^1, ..., x^(N-1)`` (increasing powers, as torch's cumprod)."""
    if x.ndim < 1:
        raise RuntimeError("neuronix.linalg.vander: x must have at least one dimension")
    n = x.shape[-1] if N is None else N
    if n <= 1:
        raise RuntimeError(f"neuronix.linalg.vander: N must be greater than 1, got {n} (x of shape {tuple(x.shape)})")
    ones = ew.anchored(torch.ones(tuple(x.shape) + (1,), dtype=unwrap(x).dtype), x) if isinstance(x, Tensor) \
        and x.requires_grad else Tensor._make(torch.ones(tuple(x.shape) + (1,), dtype=unwrap(x).dtype), None)
    if n == 1:
        return ones
    powers = red.cumprod(x.unsqueeze(-1).expand(tuple(x.shape) + (n - 1,)), -1)
    return cat([ones, powers], -1)


@public(namespace="linalg")
def tensorinv(A, ind=2):
    """``torch.linalg.tensorinv``: the inverse of ``A`` seen as a matrix of its first ``ind`` dims by the rest."""
    if ind <= 0:
        raise RuntimeError(f"neuronix.linalg.tensorinv: expected a strictly positive integer for 'ind', got {ind}")
    left, right = tuple(A.shape[:ind]), tuple(A.shape[ind:])
    rows, cols = int(torch.Size(left).numel()), int(torch.Size(right).numel())
    if rows != cols:
        raise RuntimeError(f"neuronix.linalg.tensorinv: expected prod(shape[:ind]) == prod(shape[ind:]), got "
                           f"{rows} and {cols} for shape {tuple(A.shape)}")
    return inv(A.reshape(rows, cols)).reshape(right + left)


@public(namespace="linalg")
def tensorsolve(A, B, dims=None):
    """``torch.linalg.tensorsolve``: ``X`` with ``tensordot(A, X, X.ndim) == B``; ``dims`` of ``A`` are moved
    to the end first."""
    if dims is not None:
        dims = tuple(d % A.ndim for d in dims)
        A = movedim(A, dims, tuple(range(A.ndim - len(dims), A.ndim)))
    rhs = tuple(A.shape[B.ndim:])
    rows = int(torch.Size(B.shape).numel())
    cols = int(torch.Size(rhs).numel())
    if rows != cols:
        raise RuntimeError(f"neuronix.linalg.tensorsolve: expected prod(A.shape[B.ndim:]) == B.numel(), got {cols} "
                           f"and {rows}")
    return solve(A.reshape(rows, cols), B.reshape(rows)).reshape(rhs)


# ----- least squares -------------------------------------------------------------------------------
def _lstsq_grad_a(g, out, A, B, vector, rcond, driver):
    """torch's ``linalg_lstsq_backward``: as for ``pinv(A) @ B``."""
    pinvA = pinv(A)
    gX = g.unsqueeze(-1) if vector else g
    Bm = B.unsqueeze(-1) if vector else B
    return _pinv_grad_through(pinvA, A, _matmul(gX, Bm.mT if isinstance(Bm, Tensor) else Bm.mT))


def _pinv_grad_through(pinvA, A, g):
    from neuronix.ops.linalg_factor import _pinv_grad

    return _pinv_grad(g, pinvA, A, None, None, False)


def _lstsq_grad_b(g, out, A, B, vector, rcond, driver):
    pinvA = pinv(A)
    if vector:
        return _matmul(pinvA.mT, g.unsqueeze(-1)).squeeze(-1)
    return _matmul(pinvA.mT, g)


_LSTSQ = defop("linalg_lstsq",
               lambda A, B, vector, rcond, driver: torch.linalg.lstsq(A, B, rcond, driver=driver).solution,
               _lstsq_grad_a, _lstsq_grad_b)


@public(namespace="linalg")
def lstsq(A, B, rcond=None, *, driver=None):
    """``torch.linalg.lstsq``: ``(solution, residuals, rank, singular_values)`` of ``min ||A X - B||``; the
    solution's gradient is that of ``pinv(A) @ B`` (torch's), the other fields carry none."""
    a, b = unwrap(A), unwrap(B)
    vector = b.ndim == a.ndim - 1
    with mode.no_grad():
        full = torch.linalg.lstsq(a, b, rcond, driver=driver)
    solution = apply(_LSTSQ, A, B, vector=vector, rcond=rcond, driver=driver)
    return Lstsq(solution, *(Tensor._make(t, None) for t in full[1:]))
